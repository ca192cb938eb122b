//! The bf16 filter of `Kernel::Auto` returns exactly the top K of the exact scores, on data
//! built to make the filter's job hard: near-ties within the bf16 error, exact ties, zero
//! vectors, norms spread over many orders of magnitude, tiny and odd shapes, non-finite and
//! huge components. On a CPU without AVX-512 BF16 the same tests run the GEMM path.

use dmtl_student::retrieval::{
    bf16_filter_supported, top_k_with, Kernel, SearchOptions, Threading, TopK, PAD_INDEX,
};
use ndarray::{Array1, Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

fn normal(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || StandardNormal.sample(&mut *rng))
}

/// The exact score the filter path reports: f32 products summed in f64 (sixteen running sums
/// over the components, added pairwise, then the tail, in the same order), rounded once to f32.
fn exact(q: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0f64; 16];
    let full = q.len() / 16 * 16;
    for d in 0..full {
        acc[d % 16] += q[d] as f64 * x[d] as f64;
    }
    for w in [8, 4, 2, 1] {
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    let mut s = acc[0];
    for d in full..q.len() {
        s += q[d] as f64 * x[d] as f64;
    }
    s as f32
}

/// Full sort of every item by exact score, higher first, lower index among equals.
fn brute(q: &Array2<f32>, items: &Array2<f32>, k: usize, exclude: Option<&[Vec<u32>]>) -> TopK {
    let mut indices = Array2::from_elem((q.nrows(), k), PAD_INDEX);
    let mut scores = Array2::from_elem((q.nrows(), k), f32::NEG_INFINITY);
    for (r, qrow) in q.rows().into_iter().enumerate() {
        let qs = qrow.to_vec();
        let mut all: Vec<(f32, u32)> = items
            .rows()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| exclude.is_none_or(|e| !e[r].contains(&(*i as u32))))
            .map(|(i, row)| (exact(&qs, &row.to_vec()), i as u32))
            .filter(|c| !c.0.is_nan())
            .collect();
        all.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
        for (j, (s, i)) in all.into_iter().take(k).enumerate() {
            indices[[r, j]] = i;
            scores[[r, j]] = s;
        }
    }
    TopK { indices, scores }
}

fn options() -> Vec<SearchOptions> {
    let auto = SearchOptions::default();
    assert_eq!(auto.kernel, Kernel::Auto);
    vec![
        auto,
        SearchOptions {
            item_block: 40,
            ..auto
        },
        SearchOptions {
            query_block: 7,
            item_block: 1,
            threading: Threading::BlasThreads,
            kernel: Kernel::Auto,
        },
    ]
}

/// Exact equality with the brute force: indices, and scores bit for bit.
fn check(q: &Array2<f32>, items: &Array2<f32>, ks: &[usize], what: &str) {
    for &k in ks {
        let want = brute(q, items, k, None);
        for o in options() {
            let got = top_k_with(q.view(), items.view(), k, None, o).unwrap();
            if bf16_filter_supported() {
                assert_eq!(got, want, "{what}, k={k}, {o:?}");
            } else {
                // The GEMM path rounds differently; the indices still agree away from ties.
                assert_eq!(got.indices.dim(), want.indices.dim(), "{what}");
            }
        }
    }
}

#[test]
fn reports_the_kernel_in_use() {
    // Not an assertion on the hardware: says which path the other tests exercised.
    eprintln!("bf16 filter supported: {}", bf16_filter_supported());
}

#[test]
fn random_normal_vectors_at_several_sizes() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (n, d) in [(5000, 64), (777, 13), (40, 1), (100, 65), (33, 2)] {
        let items = normal(n, d, &mut rng);
        let q = normal(30, d, &mut rng);
        check(&q, &items, &[1, 10, 100], &format!("normal {n}x{d}"));
    }
}

#[test]
fn k_at_and_beyond_the_corpus_and_tiny_corpora() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for n in [1, 5, 16, 31, 33, 300] {
        let items = normal(n, 64, &mut rng);
        let q = normal(13, 64, &mut rng);
        check(&q, &items, &[n, n + 3, 1], &format!("corpus {n}"));
    }
}

#[test]
fn near_ties_within_the_bf16_error() {
    // Items differ from one base vector by ~2^-12 of its components: after rounding to bf16
    // most are identical, so the filter cannot rank them and must pass them all on. Far items
    // around them, and queries both along the base and random.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let d = 64;
    let base: Array1<f32> = normal(1, d, &mut rng).row(0).to_owned();
    let mut items = normal(4000, d, &mut rng);
    for (i, mut row) in items.axis_iter_mut(Axis(0)).enumerate() {
        if i % 3 != 0 {
            for (x, &b) in row.iter_mut().zip(&base) {
                *x = b * (1.0 + rng.gen_range(-1.0f32..1.0) * 2f32.powi(-12));
            }
        }
    }
    let mut q = normal(20, d, &mut rng);
    for mut row in q.axis_iter_mut(Axis(0)).take(10) {
        let s: f32 = rng.gen_range(0.5..2.0);
        row.assign(&(&base * s));
    }
    check(&q, &items, &[1, 100, 1500], "near ties");
}

#[test]
fn exact_ties_and_zero_vectors() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    // Small integers: products exact, ties everywhere; a third of the items and two queries
    // are zero vectors (every score 0).
    let mut items = Array2::from_shape_simple_fn((1000, 64), || rng.gen_range(-2..=2) as f32);
    for mut row in items.axis_iter_mut(Axis(0)).step_by(3) {
        row.fill(0.0);
    }
    let mut q = Array2::from_shape_simple_fn((14, 64), || rng.gen_range(-1..=1) as f32);
    q.row_mut(0).fill(0.0);
    q.row_mut(5).fill(0.0);
    check(&q, &items, &[1, 50, 999, 1000], "ties and zeros");
    // Nothing but zeros: indices 0..k, scores 0.
    let z = Array2::<f32>::zeros((100, 64));
    let r = top_k_with(z.view(), z.view(), 7, None, SearchOptions::default()).unwrap();
    assert!(r
        .indices
        .rows()
        .into_iter()
        .all(|row| row.to_vec() == (0..7).collect::<Vec<u32>>()));
}

#[test]
fn norms_over_many_orders_of_magnitude() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut items = normal(3000, 64, &mut rng);
    for mut row in items.axis_iter_mut(Axis(0)) {
        let s = 10f32.powf(rng.gen_range(-6.0..6.0));
        row.mapv_inplace(|x| x * s);
    }
    let mut q = normal(25, 64, &mut rng);
    for mut row in q.axis_iter_mut(Axis(0)) {
        let s = 10f32.powf(rng.gen_range(-30.0..12.0));
        row.mapv_inplace(|x| x * s);
    }
    check(&q, &items, &[1, 100], "skewed norms");
    // Subnormal components, which the bf16 hardware flushes to zero.
    let tiny = items.mapv(|x| x * 1e-38);
    check(&q, &tiny, &[1, 100], "subnormal items");
}

#[test]
fn non_finite_and_huge_components() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let mut items = normal(600, 64, &mut rng);
    items[[3, 5]] = f32::NAN;
    items[[40, 0]] = f32::INFINITY;
    items[[41, 63]] = f32::NEG_INFINITY;
    items[[100, 7]] = 1e30;
    items[[200, 1]] = 3e18;
    let q = normal(16, 64, &mut rng);
    check(&q, &items, &[1, 10, 600], "bad items");
    // Queries the filter does not take go through the GEMM path: scores may differ from the
    // f64 brute force in the last bits, so compare indices of the clean queries only.
    let mut q2 = q.clone();
    q2[[2, 2]] = f32::NAN;
    q2[[3, 3]] = 1e20;
    let clean = [0usize, 1, 4, 5, 15];
    for o in options() {
        let got = top_k_with(q2.view(), items.view(), 10, None, o).unwrap();
        let want = brute(&q2, &items, 10, None);
        for &r in &clean {
            assert_eq!(got.indices.row(r), want.indices.row(r), "query {r}, {o:?}");
        }
        // The NaN query scores NaN everywhere: nothing is eligible.
        assert!(got.indices.row(2).iter().all(|&i| i == PAD_INDEX));
        // Query 3 is dominated by its huge component: the best item has the largest x_3.
        let best = got.indices[[3, 0]] as usize;
        let want_best = (0..600)
            .filter(|&i| !exact(&q2.row(3).to_vec(), &items.row(i).to_vec()).is_nan())
            .max_by(|&a, &b| {
                let (sa, sb) = (
                    exact(&q2.row(3).to_vec(), &items.row(a).to_vec()),
                    exact(&q2.row(3).to_vec(), &items.row(b).to_vec()),
                );
                sa.partial_cmp(&sb).unwrap().then(b.cmp(&a))
            })
            .unwrap();
        assert_eq!(best, want_best, "{o:?}");
    }
}

#[test]
fn exclusions_with_the_filter() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let items = normal(2000, 64, &mut rng);
    let q = normal(15, 64, &mut rng);
    // Exclude each query's own best 30 items (the ones the filter meets first as candidates)
    // plus random ones.
    let top = brute(&q, &items, 30, None);
    let exclude: Vec<Vec<u32>> = (0..15)
        .map(|r| {
            let mut l = top.indices.row(r).to_vec();
            l.extend((0..50).map(|_| rng.gen_range(0..2000u32)));
            l
        })
        .collect();
    for k in [1, 25, 1990] {
        let want = brute(&q, &items, k, Some(&exclude));
        for o in options() {
            let got = top_k_with(q.view(), items.view(), k, Some(&exclude), o).unwrap();
            if bf16_filter_supported() {
                assert_eq!(got, want, "k={k} {o:?}");
            }
        }
    }
}
