//! Every kernel against a full sort of its own scores, on data built to make the bf16
//! filter's job hard: near-ties within the bf16 error, exact ties, zero vectors, norms spread
//! over many orders of magnitude, tiny and odd shapes, non-finite and huge components.
//!
//! [`Kernel::Bf16Filter`] (where the CPU has AVX-512 BF16) must return exactly the top K of
//! the exact scores; [`Kernel::Gemm`], which is what [`Kernel::Auto`] runs on other CPUs,
//! exactly the top K of one GEMM's scores; [`Kernel::Auto`] exactly what the kernel it resolves
//! to returns. All of them run on a CPU with AVX-512 BF16, so both paths are tested there.

use dmtl_student::retrieval::{
    bf16_filter_supported, top_k_with, Kernel, RetrievalError, SearchOptions, Threading, TopK,
    PAD_INDEX,
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

/// Top K of a full sort of the scores `score(query, item)`, higher first, lower index among
/// equals, NaN scores and excluded items left out.
fn full_sort(
    nq: usize,
    ni: usize,
    k: usize,
    exclude: Option<&[Vec<u32>]>,
    score: impl Fn(usize, usize) -> f32,
) -> TopK {
    let mut indices = Array2::from_elem((nq, k), PAD_INDEX);
    let mut scores = Array2::from_elem((nq, k), f32::NEG_INFINITY);
    for r in 0..nq {
        let mut all: Vec<(f32, u32)> = (0..ni)
            .filter(|&i| exclude.is_none_or(|e| !e[r].contains(&(i as u32))))
            .map(|i| (score(r, i), i as u32))
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

/// Full sort of every item by exact score: what the bf16 filter must return.
fn brute(q: &Array2<f32>, items: &Array2<f32>, k: usize, exclude: Option<&[Vec<u32>]>) -> TopK {
    let rows: Vec<Vec<f32>> = items.rows().into_iter().map(|r| r.to_vec()).collect();
    let qs: Vec<Vec<f32>> = q.rows().into_iter().map(|r| r.to_vec()).collect();
    full_sort(q.nrows(), items.nrows(), k, exclude, |r, i| {
        exact(&qs[r], &rows[i])
    })
}

/// Every item's score as the GEMM path with options `o` computes it, NaN where none: a search
/// for all items returns them all (the tiling does not depend on K). Each must be within the
/// error of an f32 dot product summed in any order of the exact score, so the scores are the
/// items' own; which bits a BLAS rounds to depends on its blocking, and is not checked.
fn gemm_scores(q: &Array2<f32>, items: &Array2<f32>, o: SearchOptions) -> Array2<f32> {
    let (nq, ni) = (q.nrows(), items.nrows());
    let o = SearchOptions {
        kernel: Kernel::Gemm,
        ..o
    };
    let all = top_k_with(q.view(), items.view(), ni, None, o).unwrap();
    let u = 2f64.powi(-24);
    let n = q.ncols() as f64 + 2.0;
    let gamma = n * u / (1.0 - n * u);
    let mut s = Array2::from_elem((nq, ni), f32::NAN);
    for r in 0..nq {
        let qr = q.row(r).to_vec();
        for j in 0..ni {
            let i = all.indices[[r, j]];
            if i == PAD_INDEX {
                break;
            }
            let (i, got) = (i as usize, all.scores[[r, j]]);
            assert!(i < ni, "query {r}: item {i} of {ni}, {o:?}");
            assert!(s[[r, i]].is_nan(), "query {r}: item {i} twice, {o:?}");
            let x = items.row(i).to_vec();
            let want = exact(&qr, &x);
            if want.is_finite() {
                let abs: f64 = qr
                    .iter()
                    .zip(&x)
                    .map(|(a, b)| (*a as f64 * *b as f64).abs())
                    .sum();
                let bound = gamma * abs + u * (want as f64).abs() + n * 1e-38;
                let err = (got as f64 - want as f64).abs();
                assert!(err <= bound, "query {r} item {i}: {got} vs {want}, {o:?}");
            } else {
                assert_eq!(got, want, "query {r} item {i}, {o:?}");
            }
            s[[r, i]] = got;
        }
        for i in 0..ni {
            let eligible = !exact(&qr, &items.row(i).to_vec()).is_nan();
            assert_eq!(!s[[r, i]].is_nan(), eligible, "query {r} item {i}, {o:?}");
        }
    }
    s
}

/// Full sort of every item by its score under the GEMM path with options `o`: what that path
/// must return, bit for bit.
fn brute_gemm(scores: &Array2<f32>, k: usize, exclude: Option<&[Vec<u32>]>) -> TopK {
    full_sort(scores.nrows(), scores.ncols(), k, exclude, |r, i| {
        scores[[r, i]]
    })
}

/// The kernels this CPU runs: the GEMM path everywhere (as `Auto` on other CPUs), the bf16
/// filter where the CPU has it, and `Auto`.
fn kernels() -> Vec<Kernel> {
    let mut v = vec![Kernel::Auto, Kernel::Gemm];
    if bf16_filter_supported() {
        v.push(Kernel::Bf16Filter);
    }
    v
}

fn options() -> Vec<SearchOptions> {
    let auto = SearchOptions::default();
    assert_eq!(auto.kernel, Kernel::Auto);
    let mut v = vec![];
    for kernel in kernels() {
        v.extend([
            SearchOptions { kernel, ..auto },
            SearchOptions {
                item_block: 40,
                kernel,
                ..auto
            },
            SearchOptions {
                query_block: 7,
                item_block: 1,
                threading: Threading::BlasThreads,
                kernel,
            },
        ]);
    }
    v
}

/// The result a search with options `o` must give: the exact brute force where `o` resolves
/// to the bf16 filter, the full sort of the GEMM path's scores where it resolves to the GEMM.
fn expected(
    o: SearchOptions,
    q: &Array2<f32>,
    items: &Array2<f32>,
    k: usize,
    exclude: Option<&[Vec<u32>]>,
) -> TopK {
    match o.kernel.resolve().unwrap() {
        Kernel::Bf16Filter => brute(q, items, k, exclude),
        Kernel::Gemm => brute_gemm(&gemm_scores(q, items, o), k, exclude),
        Kernel::Auto => panic!("Auto resolves to a concrete kernel"),
    }
}

/// Exact equality with the brute force of the kernel in use: indices, and scores bit for bit.
fn check(q: &Array2<f32>, items: &Array2<f32>, ks: &[usize], what: &str) {
    for o in options() {
        // The GEMM path's scores once per tiling, not once per K.
        let gemm = (o.kernel.resolve() == Ok(Kernel::Gemm)).then(|| gemm_scores(q, items, o));
        for &k in ks {
            let got = top_k_with(q.view(), items.view(), k, None, o).unwrap();
            let want = match &gemm {
                Some(scores) => brute_gemm(scores, k, None),
                None => expected(o, q, items, k, None),
            };
            assert_eq!(got, want, "{what}, k={k}, {o:?}");
        }
    }
}

/// The CPU's own answer: x86-64 with AVX-512F and AVX-512 BF16.
fn cpu_has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `Auto` names the kernel it runs: the bf16 filter exactly where the CPU has AVX-512 BF16,
/// otherwise the GEMM path; asking for the filter on a CPU without it is an error. Both kinds
/// of CPU are asked on this one (`resolve_on`), and this CPU answers as its kind. `Auto`'s
/// result is that of the kernel it names: here, and on the other kind of CPU, whose path
/// runs here under its resolved name.
#[test]
fn reports_the_kernel_in_use() {
    let supported = bf16_filter_supported();
    assert_eq!(supported, cpu_has_avx512_bf16());
    eprintln!("bf16 filter supported: {supported}");
    for cpu in [false, true] {
        assert_eq!(Kernel::Gemm.resolve_on(cpu), Ok(Kernel::Gemm));
        let auto = if cpu {
            Kernel::Bf16Filter
        } else {
            Kernel::Gemm
        };
        assert_eq!(Kernel::Auto.resolve_on(cpu), Ok(auto));
        match Kernel::Bf16Filter.resolve_on(cpu) {
            Ok(k) => assert!(cpu && k == Kernel::Bf16Filter, "{k:?}"),
            Err(e) => assert!(!cpu && matches!(e, RetrievalError::BadOption(_)), "{e}"),
        }
    }
    for kernel in [Kernel::Auto, Kernel::Gemm, Kernel::Bf16Filter] {
        assert_eq!(kernel.resolve(), kernel.resolve_on(supported), "{kernel:?}");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let items = normal(300, 24, &mut rng);
    let q = normal(5, 24, &mut rng);
    let opts = |kernel| SearchOptions {
        kernel,
        ..SearchOptions::default()
    };
    let run = |kernel| top_k_with(q.view(), items.view(), 10, None, opts(kernel));
    let gemm = run(Kernel::Gemm).unwrap();
    assert_eq!(gemm, expected(opts(Kernel::Gemm), &q, &items, 10, None));
    for cpu in [false, true] {
        if cpu && !supported {
            continue;
        }
        // What `Auto` runs on a CPU of this kind.
        let auto = run(Kernel::Auto.resolve_on(cpu).unwrap()).unwrap();
        let want = if cpu {
            brute(&q, &items, 10, None)
        } else {
            gemm.clone()
        };
        assert_eq!(auto, want, "Auto on a CPU with the filter: {cpu}");
    }
    assert_eq!(
        run(Kernel::Auto).unwrap(),
        run(Kernel::Auto.resolve().unwrap()).unwrap()
    );
    if !supported {
        assert!(matches!(
            run(Kernel::Bf16Filter),
            Err(RetrievalError::BadOption(_))
        ));
    }
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
    for o in options() {
        let r = top_k_with(z.view(), z.view(), 7, None, o).unwrap();
        assert!(
            r.indices
                .rows()
                .into_iter()
                .all(|row| row.to_vec() == (0..7).collect::<Vec<u32>>()),
            "{o:?}"
        );
        assert!(r.scores.iter().all(|&s| s == 0.0), "{o:?}");
    }
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
    // Queries the filter does not take go through the GEMM path even under the filter: their
    // rows are the GEMM brute force's, the other rows the exact one's.
    let mut q2 = q.clone();
    q2[[2, 2]] = f32::NAN;
    q2[[3, 3]] = 1e20;
    let unbounded = [2usize, 3];
    let sub = q2.select(Axis(0), &unbounded);
    for o in options() {
        let got = top_k_with(q2.view(), items.view(), 10, None, o).unwrap();
        let want = expected(o, &q2, &items, 10, None);
        let gemm_sub = expected(
            SearchOptions {
                kernel: Kernel::Gemm,
                ..o
            },
            &sub,
            &items,
            10,
            None,
        );
        for r in 0..q2.nrows() {
            let want = match unbounded.iter().position(|&u| u == r) {
                // The GEMM path over the unbounded queries alone.
                Some(j) if o.kernel.resolve().unwrap() == Kernel::Bf16Filter => {
                    (gemm_sub.indices.row(j), gemm_sub.scores.row(j))
                }
                _ => (want.indices.row(r), want.scores.row(r)),
            };
            assert_eq!(got.indices.row(r), want.0, "query {r}, {o:?}");
            assert_eq!(got.scores.row(r), want.1, "query {r}, {o:?}");
        }
        // The NaN query scores NaN everywhere: nothing is eligible.
        assert!(got.indices.row(2).iter().all(|&i| i == PAD_INDEX));
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
        for o in options() {
            let got = top_k_with(q.view(), items.view(), k, Some(&exclude), o).unwrap();
            assert_eq!(
                got,
                expected(o, &q, &items, k, Some(&exclude)),
                "k={k} {o:?}"
            );
        }
    }
}
