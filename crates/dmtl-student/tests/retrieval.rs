//! Exact top-K against a brute-force full sort.

use dmtl_student::retrieval::{
    top_k, top_k_with, ExactIndex, Kernel, RetrievalError, SearchOptions, Threading, TopK,
    PAD_INDEX,
};
use ndarray::{array, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rows: usize, cols: usize, seed: u64, integers: bool) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || {
        if integers {
            // Small integers: products are exact and ties are everywhere.
            rng.gen_range(-2..=2) as f32
        } else {
            rng.gen_range(-1.0f32..1.0)
        }
    })
}

/// Scores every item by a plain f64 loop, sorts all of them, keeps the first k.
fn brute(q: &Array2<f32>, items: &Array2<f32>, k: usize, exclude: Option<&[Vec<u32>]>) -> TopK {
    let mut indices = Array2::from_elem((q.nrows(), k), PAD_INDEX);
    let mut scores = Array2::from_elem((q.nrows(), k), f32::NEG_INFINITY);
    for (r, qrow) in q.rows().into_iter().enumerate() {
        let mut all: Vec<(f32, u32)> = items
            .rows()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| exclude.is_none_or(|e| !e[r].contains(&(*i as u32))))
            .map(|(i, row)| (qrow.dot(&row), i as u32))
            .collect();
        all.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
        for (j, (s, i)) in all.into_iter().take(k).enumerate() {
            indices[[r, j]] = i;
            scores[[r, j]] = s;
        }
    }
    TopK { indices, scores }
}

/// Indices must agree exactly when scores are exact (integers); with float rounding the GEMM
/// and the dot product may differ in the last bit, so compare scores with a tolerance and
/// indices wherever the brute-force neighbours are not near-ties.
fn assert_same(got: &TopK, want: &TopK, exact: bool, what: &str) {
    assert_eq!(got.indices.dim(), want.indices.dim(), "{what}");
    if exact {
        assert_eq!(got.indices, want.indices, "{what}");
        assert_eq!(got.scores, want.scores, "{what}");
        return;
    }
    for r in 0..want.scores.nrows() {
        for j in 0..want.scores.ncols() {
            let (g, w) = (got.scores[[r, j]], want.scores[[r, j]]);
            assert!(
                (g == w) || (g - w).abs() < 1e-4,
                "{what}: query {r} rank {j}: {g} vs {w}"
            );
            let near_tie = [j.wrapping_sub(1), j + 1]
                .iter()
                .filter(|&&o| o < want.scores.ncols())
                .any(|&o| (want.scores[[r, o]] - w).abs() < 1e-4);
            if !near_tie {
                assert_eq!(
                    got.indices[[r, j]],
                    want.indices[[r, j]],
                    "{what}: query {r} rank {j}"
                );
            }
        }
        // Best first, and the tie-break: equal scores in increasing index order.
        let row: Vec<(f32, u32)> = (0..got.scores.ncols())
            .map(|j| (got.scores[[r, j]], got.indices[[r, j]]))
            .collect();
        assert!(row.windows(2).all(|p| p[0].0 > p[1].0
            || (p[0].0 == p[1].0 && p[0].1 < p[1].1)
            || p[1].1 == PAD_INDEX));
    }
}

/// Small blocks so that the tests cross many tile and task boundaries; both kernels (the
/// bf16 filter only where the CPU has it, otherwise `Auto` is the GEMM path again).
fn variants() -> Vec<SearchOptions> {
    let mut v = vec![];
    for kernel in [Kernel::Auto, Kernel::Gemm] {
        v.extend([
            SearchOptions {
                kernel,
                ..SearchOptions::default()
            },
            SearchOptions {
                query_block: 3,
                item_block: 17,
                threading: Threading::RayonTasks,
                kernel,
            },
            SearchOptions {
                query_block: 5,
                item_block: 64,
                threading: Threading::BlasThreads,
                kernel,
            },
        ]);
    }
    v
}

#[test]
fn matches_brute_force_for_many_k() {
    let (items, queries) = (random(500, 8, 1, false), random(9, 8, 2, false));
    for k in [1, 7, 16, 100, 499, 500, 600] {
        let want = brute(&queries, &items, k, None);
        for o in variants() {
            let got = top_k_with(queries.view(), items.view(), k, None, o).unwrap();
            assert_same(&got, &want, false, &format!("k={k} {o:?}"));
        }
    }
}

#[test]
fn exact_ties_break_on_lower_index() {
    // Integer vectors in few values: nearly every score is shared by many items.
    let (items, queries) = (random(700, 3, 3, true), random(40, 3, 4, true));
    for k in [1, 7, 100, 700] {
        let want = brute(&queries, &items, k, None);
        for o in variants() {
            let got = top_k_with(queries.view(), items.view(), k, None, o).unwrap();
            assert_same(&got, &want, true, &format!("ties k={k} {o:?}"));
        }
    }
    // All items identical: the answer is simply 0..k.
    let same = Array2::from_elem((50, 4), 1.0f32);
    let r = top_k(
        queries.slice(ndarray::s![..1, ..3]).view(),
        same.slice(ndarray::s![.., ..3]),
        5,
        None,
    )
    .unwrap();
    assert_eq!(r.indices.row(0).to_vec(), vec![0, 1, 2, 3, 4]);
}

#[test]
fn exclusions_are_skipped_and_short_rows_padded() {
    let (items, queries) = (random(300, 6, 5, true), random(6, 6, 6, true));
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut exclude: Vec<Vec<u32>> = (0..6)
        .map(|_| {
            (0..rng.gen_range(0..120))
                .map(|_| rng.gen_range(0..300))
                .collect()
        })
        .collect();
    exclude[2] = (0..300).rev().collect(); // everything excluded: a row of padding
    for k in [1, 7, 250, 300] {
        let want = brute(&queries, &items, k, Some(&exclude));
        for o in variants() {
            let got = top_k_with(queries.view(), items.view(), k, Some(&exclude), o).unwrap();
            assert_same(&got, &want, true, &format!("exclude k={k} {o:?}"));
        }
    }
    let r = top_k(queries.view(), items.view(), 3, Some(&exclude)).unwrap();
    assert_eq!(r.indices.row(2).to_vec(), vec![PAD_INDEX; 3]);
    assert!(r.scores.row(2).iter().all(|&s| s == f32::NEG_INFINITY));
}

#[test]
fn one_query_and_more_queries_than_a_block() {
    let items = random(3000, 16, 7, false);
    let one = random(1, 16, 8, false);
    let many = random(600, 16, 9, false);
    for o in variants() {
        let got = top_k_with(one.view(), items.view(), 10, None, o).unwrap();
        assert_same(
            &got,
            &brute(&one, &items, 10, None),
            false,
            &format!("one {o:?}"),
        );
    }
    let want = brute(&many, &items, 20, None);
    let got = top_k(many.view(), items.view(), 20, None).unwrap();
    assert_same(&got, &want, false, "600 queries");
    let got = top_k_with(
        many.view(),
        items.view(),
        20,
        None,
        SearchOptions {
            query_block: 64,
            item_block: 256,
            threading: Threading::BlasThreads,
            kernel: Kernel::Gemm,
        },
    )
    .unwrap();
    assert_same(&got, &want, false, "600 queries, blas threads");
}

#[test]
fn nan_scores_are_never_returned() {
    let items = array![
        [1.0f32, 0.0],
        [f32::NAN, 0.0],
        [0.0, 1.0],
        [f32::INFINITY, 0.0]
    ];
    let q = array![[1.0f32, 0.0], [0.0, 1.0]];
    let r = top_k(q.view(), items.view(), 4, None).unwrap();
    // Query 0: inf * 1 = inf ranks first, NaN is dropped, 0 * 1 ... row 2 scores 0.
    assert_eq!(r.indices.row(0).to_vec(), vec![3, 0, 2, PAD_INDEX]);
    // Query 1: 0 * NaN and 0 * inf are NaN, so items 1 and 3 are ineligible.
    assert_eq!(r.indices.row(1).to_vec(), vec![2, 0, PAD_INDEX, PAD_INDEX]);
    assert_eq!(
        r.scores.row(1).to_vec(),
        vec![1.0, 0.0, f32::NEG_INFINITY, f32::NEG_INFINITY]
    );
}

#[test]
fn errors_instead_of_panics() {
    let items = random(10, 4, 1, false);
    let q = random(2, 3, 1, false);
    assert_eq!(
        top_k(q.view(), items.view(), 1, None).unwrap_err(),
        RetrievalError::DimensionMismatch {
            queries: 3,
            items: 4
        }
    );
    let q = random(2, 4, 1, false);
    assert_eq!(
        top_k(q.view(), items.view(), 0, None).unwrap_err(),
        RetrievalError::ZeroK
    );
    assert_eq!(
        top_k(q.view(), items.view(), 1, Some(&[vec![1]])).unwrap_err(),
        RetrievalError::ExcludeCount {
            lists: 1,
            queries: 2
        }
    );
    assert_eq!(
        top_k(q.view(), items.view(), 1, Some(&[vec![1], vec![10]])).unwrap_err(),
        RetrievalError::ExcludeOutOfRange {
            query: 1,
            item: 10,
            n_items: 10
        }
    );
    assert!(matches!(
        ExactIndex::new(items.clone())
            .unwrap()
            .with_ids(vec!["a".into()]),
        Err(RetrievalError::IdCount { ids: 1, items: 10 })
    ));
    // Empty corpus or no queries: well-formed, padded or empty results.
    let empty = Array2::<f32>::zeros((0, 4));
    let r = top_k(q.view(), empty.view(), 2, None).unwrap();
    assert_eq!(r.indices, Array2::from_elem((2, 2), PAD_INDEX));
    let r = top_k(empty.view(), items.view(), 2, None).unwrap();
    assert_eq!(r.indices.dim(), (0, 2));
}

#[test]
fn index_search_matches_function_and_maps_ids() {
    let items = random(1000, 8, 11, false);
    let q = random(5, 8, 12, false);
    let ids: Vec<String> = (0..1000).map(|i| format!("item-{i}")).collect();
    // A transposed (column-major) item matrix is stored in standard layout by the index.
    let fortran = items.t().to_owned().reversed_axes();
    let index = ExactIndex::new(fortran).unwrap().with_ids(ids).unwrap();
    let a = index.search(q.view(), 10, None).unwrap();
    let b = top_k(q.view(), items.view(), 10, None).unwrap();
    assert_eq!(a, b);
    let best = a.indices[[0, 0]];
    assert_eq!(index.id(best), Some(format!("item-{best}").as_str()));
    assert_eq!(index.id(PAD_INDEX), None);
    assert_eq!((index.len(), index.dim()), (1000, 8));
}
