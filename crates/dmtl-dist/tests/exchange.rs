//! The gradient exchange against brute force: sums over simulated ranks (threads), the
//! identity over one process, and rejected input.

mod common;

use common::{dense_of, grads, store, Hub};
use dmtl_dist::{sum_over_ranks, DistError, Gathered, Layout, Local};
use dmtl_tensor::{Grad, Grads, ParamKind, ParamStore};

/// Every gradient's bits, for comparing results across ranks.
fn bits(g: &Grads) -> Vec<(usize, Vec<u32>, Vec<u32>)> {
    g.iter()
        .map(|(id, g)| {
            let rows = match g {
                Grad::Sparse(s) => s.rows.clone(),
                Grad::Dense(_) => vec![u32::MAX],
            };
            (id.0, rows, g.values().iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

fn check_against_brute_force(store: &ParamStore, ranks: &[Grads], weights: &[f32], got: &Grads) {
    for (id, p) in store.iter() {
        let present = ranks.iter().any(|g| g.get(id).is_some());
        assert_eq!(got.get(id).is_some(), present, "{}", p.name);
        if !present {
            continue;
        }
        let mut want = ndarray::Array2::<f64>::zeros(p.value.dim());
        for (g, &w) in ranks.iter().zip(weights) {
            want.scaled_add(f64::from(w), &dense_of(store, g, id));
        }
        let have = dense_of(store, got, id);
        let err = (&have - &want).iter().fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(err < 1e-5, "{}: max error {err}", p.name);
        if p.kind == ParamKind::Embedding {
            let Some(Grad::Sparse(s)) = got.get(id) else {
                panic!("{}: an embedding gradient must stay sparse", p.name)
            };
            // The rows: the union of every rank's rows, ascending; each row's value the f32
            // sum in rank order.
            let mut union: Vec<u32> = Vec::new();
            let mut seq = ndarray::Array2::<f32>::zeros(p.value.dim());
            for (g, &w) in ranks.iter().zip(weights) {
                match g.get(id) {
                    Some(Grad::Sparse(r)) => {
                        union.extend(&r.rows);
                        for (k, &row) in r.rows.iter().enumerate() {
                            let mut dst = seq.row_mut(row as usize);
                            dst.zip_mut_with(&r.values.row(k), |a, &b| *a += b * w);
                        }
                    }
                    Some(Grad::Dense(d)) => {
                        union.extend(0..d.nrows() as u32);
                        seq.zip_mut_with(d, |a, &b| *a += b * w);
                    }
                    None => {}
                }
            }
            union.sort_unstable();
            union.dedup();
            assert_eq!(s.rows, union, "{}", p.name);
            for (k, &row) in s.rows.iter().enumerate() {
                for (a, b) in s.values.row(k).iter().zip(seq.row(row as usize)) {
                    assert_eq!(a.to_bits(), b.to_bits(), "{} row {row}", p.name);
                }
            }
        }
    }
}

#[test]
fn sum_over_thread_ranks_matches_brute_force_and_is_identical_on_every_rank() {
    let store = store();
    let layout = Layout::new(&store);
    for n in [1, 2, 3, 5] {
        let ranks: Vec<Grads> = (0..n)
            .map(|r| grads(&store, 11 * n as u64 + r as u64, r == 1))
            .collect();
        let weights: Vec<f32> = (0..n).map(|r| (r + 1) as f32 / 7.0).collect();
        let results = Hub::run(n, |c| {
            let r = dmtl_dist::Collective::rank(c);
            sum_over_ranks(c, &layout, &ranks[r], weights[r], &[r as f32, 1.0]).unwrap()
        });
        let want_extras = [(0..n).sum::<usize>() as f32, n as f32];
        for s in &results {
            check_against_brute_force(&store, &ranks, &weights, &s.grads);
            assert_eq!(s.extras, want_extras);
            assert_eq!(bits(&s.grads), bits(&results[0].grads), "{n} ranks");
        }
    }
}

#[test]
fn one_process_returns_its_gradients_scaled_by_its_weight() {
    let store = store();
    let layout = Layout::new(&store);
    let g = grads(&store, 3, false);
    let same = sum_over_ranks(&Local, &layout, &g, 1.0, &[2.5]).unwrap();
    assert_eq!(bits(&same.grads), bits(&g));
    assert_eq!(same.extras, vec![2.5]);
    let half = sum_over_ranks(&Local, &layout, &g, 0.5, &[]).unwrap();
    check_against_brute_force(&store, std::slice::from_ref(&g), &[0.5], &half.grads);
}

#[test]
fn the_stats_count_what_travels() {
    let store = store();
    let layout = Layout::new(&store);
    let g = grads(&store, 5, true);
    let s = sum_over_ranks(&Local, &layout, &g, 1.0, &[1.0, 2.0]).unwrap();
    // Dense: 3 x 4 + 1 x 4 entries, two flags, two extras.
    assert_eq!(s.stats.reduced_floats, 12 + 4 + 2 + 2);
    assert_eq!(s.stats.reduced_bytes(), 4 * 20);
    let mut rows = 0;
    let mut want = 4 * 2; // one header word per table
    for (id, p) in store.iter().filter(|(_, p)| p.kind == ParamKind::Embedding) {
        let n = g.get(id).map_or(0, |g| g.values().nrows());
        rows += n;
        want += n * (4 + 4 * p.value.ncols());
    }
    assert_eq!(s.stats.sparse_rows, rows);
    assert_eq!(s.stats.gathered_bytes, want);
}

#[test]
fn dense_flattening_round_trips() {
    let store = store();
    let layout = Layout::new(&store);
    let g = grads(&store, 9, false);
    let buf = layout.flatten_dense(&g, 1.0, &[4.0]);
    assert_eq!(buf.len(), layout.reduced_len(1));
    let mut out = Grads::new(store.len());
    assert_eq!(layout.unflatten_dense(&buf, &mut out), &[4.0]);
    for (id, p) in store.iter() {
        let want = if p.kind == ParamKind::Dense {
            g.get(id)
        } else {
            None
        };
        assert_eq!(out.get(id), want, "{}", p.name);
    }
}

fn merge_parts(layout: &Layout, rows: Vec<Vec<u32>>, values: Vec<Vec<f32>>) -> DistError {
    let mut out = Grads::new(4);
    layout
        .merge_sparse(
            0,
            &Gathered::from_parts(rows),
            &Gathered::from_parts(values),
            &mut out,
        )
        .unwrap_err()
}

#[test]
fn merging_rejects_rows_that_do_not_fit_and_names_the_rank() {
    let store = store();
    let layout = Layout::new(&store);
    let (ok_rows, ok_values) = layout.pack_sparse(&grads(&store, 1, false), 1.0);
    // emb.user (40 rows, dim 3) gets row 40 from rank 1.
    let e = merge_parts(
        &layout,
        vec![ok_rows.clone(), vec![2, 0, 40]],
        vec![ok_values.clone(), vec![0.0; 3]],
    );
    assert!(
        matches!(
            e,
            DistError::Layout {
                rank: 0,
                from: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("row 40"), "{e}");
    // A header shorter than the number of tables.
    let e = merge_parts(&layout, vec![vec![0]], vec![vec![]]);
    assert!(matches!(e, DistError::Layout { from: 0, .. }), "{e}");
    // Rows announced but not sent.
    let e = merge_parts(&layout, vec![vec![3, 0, 1]], vec![vec![0.0; 3]]);
    assert!(matches!(e, DistError::Layout { from: 0, .. }), "{e}");
    // Values past what the header announces.
    let e = merge_parts(
        &layout,
        vec![ok_rows, vec![0, 0]],
        vec![ok_values, vec![1.0]],
    );
    assert!(matches!(e, DistError::Layout { from: 1, .. }), "{e}");
}
