//! bf16 user vectors against the f32 ones, on both backends this CPU runs: the f32 fallback
//! bit for bit, the bf16 kernel by direction per user and by top-100 retrieval.

use dmtl_student::retrieval::top_k;
use dmtl_student::synthetic::{random_dataset, reference_fields, schema_and_vocabs};
use dmtl_student::{Precision, Similarity, Student, StudentConfig};
use dmtl_tensor::bf16::{self, Backend};

/// The tests of this file that compute vectors run one at a time: each changes the process-wide BLAS thread
/// count for its sharded passes, and the bit-for-bit comparisons below hold for one fixed
/// thread set-up, not while another test changes it underneath.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cosine(a: ndarray::ArrayView1<f32>, b: ndarray::ArrayView1<f32>) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    ab / (aa.sqrt() * bb.sqrt()).max(1e-300)
}

fn student(seed: u64, similarity: Similarity) -> Student {
    let fields = reference_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 16);
    let config = StudentConfig {
        seed,
        similarity,
        ..StudentConfig::default()
    };
    Student::new(config, &schema, &vocabs).unwrap()
}

/// The backends `Precision::Bf16` can run here: the f32 fallback (what a CPU without AVX-512
/// BF16 runs) on every CPU, the bf16 kernel where the CPU has it.
fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::F32];
    if bf16::available() {
        v.push(Backend::Bf16);
    }
    v
}

/// `Precision::Bf16` picks the bf16 kernel exactly where the CPU has AVX-512 BF16 and the
/// f32 fallback elsewhere; asking for the kernel on a CPU without it is an error.
#[test]
fn bf16_precision_picks_the_backend_the_cpu_runs() {
    let s = student(5, Similarity::Dot);
    let enc = s.user_encoder(Precision::Bf16).unwrap();
    assert_eq!(enc.precision(), Precision::Bf16);
    let want = if bf16::available() {
        Backend::Bf16
    } else {
        Backend::F32
    };
    assert_eq!(enc.backend(), want);
    assert_eq!(
        s.user_encoder(Precision::F32).unwrap().backend(),
        Backend::F32
    );
    for backend in [Backend::F32, Backend::Bf16] {
        match s.user_encoder_on(backend) {
            Ok(enc) => {
                assert_eq!(enc.backend(), backend);
                assert_eq!(enc.precision(), Precision::Bf16);
            }
            Err(e) => assert!(
                backend == Backend::Bf16 && !bf16::available(),
                "{backend:?}: {e}"
            ),
        }
    }
}

/// `Precision::F32` and the f32 fallback of `Precision::Bf16` are the f32 path itself, bit
/// for bit; every user's bf16 vector points the same way as its f32 one (cosine > 0.999), and
/// under the cosine similarity its norm is still `1 / temperature`.
#[test]
fn bf16_user_vectors_follow_f32_ones() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut worst = 1f64;
    for (seed, similarity) in [
        (1, Similarity::Dot),
        (2, Similarity::Cosine { temperature: 0.1 }),
        (3, Similarity::Dot),
    ] {
        let s = student(seed, similarity);
        let data = random_dataset(&reference_fields(), 1031, seed + 10);
        for rows in [vec![5u32], (0..1031).collect::<Vec<u32>>()] {
            let batch = data.batch(&rows);
            let want = s.user_vectors_batch(&batch).unwrap();
            let f32_enc = s.user_encoder(Precision::F32).unwrap();
            assert_eq!(f32_enc.backend(), Backend::F32);
            assert_eq!(f32_enc.user_vectors_batch(&batch).unwrap(), want);
            for backend in backends() {
                let enc = s.user_encoder_on(backend).unwrap();
                let got = enc.user_vectors_batch(&batch).unwrap();
                assert_eq!(got.dim(), want.dim());
                if backend == Backend::F32 {
                    assert_eq!(got, want, "seed {seed}, {} rows: fallback", rows.len());
                    continue;
                }
                for (g, w) in got.rows().into_iter().zip(want.rows()) {
                    let c = cosine(g, w);
                    worst = worst.min(c);
                    assert!(c > 0.999, "cosine {c}");
                    if let Similarity::Cosine { temperature } = similarity {
                        let n = g.dot(&g).sqrt();
                        assert!((n * temperature - 1.0).abs() < 1e-5, "norm {n}");
                    }
                }
            }
        }
    }
    println!("bf16 vs f32 user vectors: lowest cosine {worst:.6}");
}

/// Top-100 items by bf16 user vectors mostly agree with those by f32 ones; under the f32
/// fallback they are the same items with the same scores.
#[test]
fn bf16_top_100_recall() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = student(4, Similarity::Dot);
    let data = random_dataset(&reference_fields(), 4000, 21);
    let items = s
        .item_vectors(&data, &(0..4000).collect::<Vec<u32>>())
        .unwrap();
    let batch = data.batch(&(0..300).collect::<Vec<u32>>());
    let want = s.user_vectors_batch(&batch).unwrap();
    let k = 100;
    let a = top_k(want.view(), items.view(), k, None).unwrap();
    for backend in backends() {
        let enc = s.user_encoder_on(backend).unwrap();
        let got = enc.user_vectors_batch(&batch).unwrap();
        let b = top_k(got.view(), items.view(), k, None).unwrap();
        if backend == Backend::F32 {
            assert_eq!(b, a, "fallback top-{k}");
            continue;
        }
        let mut hits = 0usize;
        for q in 0..want.nrows() {
            let truth: std::collections::HashSet<u32> = a.indices.row(q).iter().copied().collect();
            hits += b
                .indices
                .row(q)
                .iter()
                .filter(|i| truth.contains(i))
                .count();
        }
        let recall = hits as f64 / (k * want.nrows()) as f64;
        println!("bf16 vs f32 user vectors: recall@100 = {recall:.4}");
        assert!(recall >= 0.95, "recall@100 {recall}");
    }
}
