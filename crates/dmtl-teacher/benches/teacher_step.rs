//! The teacher at the reference shapes of BENCHMARKS.md: one training step (forward, backward,
//! Adam) and scoring, in impressions per second.
//!
//! `cargo bench -p dmtl-teacher --bench teacher_step`
//!
//! 13 fields x 16 (vocabularies of the reference workload, multi-hot bags of 1-8 and 1-5 ids),
//! MMoE with 4 experts [256, 128], gates per task, towers [64] -> 1; batch 1,024; batches are
//! built in memory beforehand and cycled, CTR ~10 %, P(long read | click) = 0.4 as in the
//! PyTorch reference (`shared/anchors/torch_reference.py`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dmtl_data::{Batch, Dataset, FieldData, Kind, Schema, Vocabularies, Vocabulary};
use dmtl_teacher::{Teacher, TeacherConfig};
use dmtl_tensor::optim::Adam;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const B: usize = 1024;

/// (name, side, table size, largest bag or 0 for categorical).
const FIELDS: [(&str, &str, usize, usize); 13] = [
    ("user_id", "user", 100_000, 0),
    ("age", "user", 8, 0),
    ("gender", "user", 3, 0),
    ("city", "user", 400, 0),
    ("user_tags", "user", 2_000, 8),
    ("hour", "context", 24, 0),
    ("network", "context", 4, 0),
    ("item_id", "item", 200_000, 0),
    ("category", "item", 40, 0),
    ("sub_category", "item", 400, 0),
    ("author", "item", 20_000, 0),
    ("item_tags", "item", 2_000, 5),
    ("length_bucket", "item", 10, 0),
];

fn reference_schema() -> (Schema, Vocabularies) {
    let mut toml = String::from(
        "[labels]\nclick = \"click\"\nduration = \"duration\"\n[ids]\nuser = \"user_id\"\nitem = \"item_id\"\n",
    );
    let mut vocabs = Vec::new();
    for (name, side, n, bag) in FIELDS {
        let kind = if bag > 0 { "multi_hot" } else { "categorical" };
        toml.push_str(&format!(
            "[[columns]]\nname = \"{name}\"\nside = \"{side}\"\nkind = \"{kind}\"\n"
        ));
        let k = if bag > 0 {
            Kind::MultiHot
        } else {
            Kind::Categorical
        };
        // A hashed vocabulary of n - 1 buckets has a table of n rows (with the OOV row).
        vocabs.push(Vocabulary::hashed(name, k, n as u64 - 1));
    }
    let schema = Schema::from_toml_str(&toml, "reference schema").expect("valid schema");
    (schema, Vocabularies::from_vec(vocabs))
}

/// `n` random impressions of the reference workload.
fn random_dataset(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let fields = FIELDS
        .iter()
        .map(|&(_, _, vocab, bag)| {
            if bag == 0 {
                FieldData::Ids((0..n).map(|_| rng.gen_range(0..vocab as u32)).collect())
            } else {
                let mut ids = Vec::new();
                let mut offsets = vec![0u32];
                for _ in 0..n {
                    for _ in 0..rng.gen_range(1..=bag) {
                        ids.push(rng.gen_range(0..vocab as u32));
                    }
                    offsets.push(ids.len() as u32);
                }
                FieldData::Bag { ids, offsets }
            }
        })
        .collect();
    let click: Vec<f32> = (0..n).map(|_| f32::from(rng.gen_bool(0.1))).collect();
    let duration: Vec<f32> = click
        .iter()
        .map(|&c| c * rng.gen::<f32>() * (50.0 / 0.6))
        .collect();
    let long_read = click
        .iter()
        .zip(&duration)
        .map(|(&c, &d)| f32::from(c > 0.5 && d > 50.0))
        .collect();
    Dataset {
        fields,
        click,
        duration,
        long_read,
        user_group: Vec::new(),
        user_ids: Vec::new(),
        item_group: Vec::new(),
        item_ids: Vec::new(),
        n_rows: n,
    }
}

fn batches(data: &Dataset) -> Vec<Batch> {
    data.batches(B, None, true).collect()
}

fn bench(c: &mut Criterion) {
    dmtl_tensor::threads::init(None);
    let (schema, vocabs) = reference_schema();
    let data = random_dataset(32 * B, 1);
    let train_batches = batches(&data);
    let mut teacher = Teacher::new(TeacherConfig::default(), &schema, &vocabs).expect("teacher");
    let mut adam = Adam::new(1e-3);

    let mut g = c.benchmark_group("teacher");
    g.sample_size(20);
    g.throughput(Throughput::Elements(B as u64));
    let mut i = 0;
    g.bench_function("train_step_mmoe_b1024", |b| {
        b.iter(|| {
            let batch = &train_batches[i % train_batches.len()];
            i += 1;
            teacher.train_step(&mut adam, batch, None)
        })
    });

    // Scoring one batch at a time: each GEMM may use every BLAS thread.
    let mut i = 0;
    g.bench_function("score_batch_sequential_b1024", |b| {
        b.iter(|| {
            let batch = &train_batches[i % train_batches.len()];
            i += 1;
            teacher.predict_batch(batch).expect("fits")
        })
    });

    // Scoring a log: batches in parallel, single-threaded BLAS inside each.
    let log = random_dataset(16 * B, 2);
    g.throughput(Throughput::Elements(log.n_rows as u64));
    g.bench_function("predict_16_batches_parallel_b1024", |b| {
        b.iter(|| teacher.predict(&log).expect("fits"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
