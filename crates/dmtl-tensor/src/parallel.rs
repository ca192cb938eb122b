//! Data-parallel gradients: one batch split into row shards that run forward and backward at
//! the same time, each on its own core with a one-thread BLAS, their gradients summed.
//!
//! At the reference shapes (batch 1,024, layers of 64-256 units) one two-thread GEMM runs well
//! below twice a one-thread GEMM, and every element-wise step between GEMMs leaves BLAS's second
//! thread idle. Two shards of 512 rows keep both cores on useful work for the whole step.
//!
//! The result depends on the shard count (sums are taken in another order), which
//! [`crate::threads::shards_for`] derives from the thread count alone, so a run stays
//! bit-for-bit reproducible for a given seed and thread count.

use std::ops::Range;

use ndarray::Array2;
use rayon::prelude::*;

use crate::threads;
use crate::{Grads, Graph, ParamStore, Precision, Var};

/// The summed result of [`data_parallel`].
#[derive(Debug, Clone)]
pub struct Sharded {
    /// Gradients of the batch loss (the weighted mean of the shards' losses).
    pub grads: Grads,
    /// The shards' reported values, each averaged with the shards' weights (`rows / n_rows`
    /// unless [`data_parallel_weighted`] says otherwise): batch means when every shard reports
    /// a mean over its rows.
    pub values: Vec<f32>,
}

/// The row ranges of `n_rows` split into `shards` contiguous parts whose sizes differ by at
/// most one (earlier parts are the larger).
pub fn shard_ranges(n_rows: usize, shards: usize) -> Vec<Range<usize>> {
    let shards = shards.clamp(1, n_rows.max(1));
    let (base, extra) = (n_rows / shards, n_rows % shards);
    let mut start = 0;
    (0..shards)
        .map(|s| {
            let len = base + usize::from(s < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

/// Computes the gradient of a batch's mean loss over `n_rows` rows in
/// [`threads::shards_for`]`(n_rows)` shards.
///
/// `shard(g, rows)` builds the forward pass of the batch rows `rows` on the fresh graph `g` and
/// returns the loss to differentiate, a `(1, 1)` **mean over those rows**, plus any values to
/// report (losses, say; means over the rows as well). The shards' gradients are weighted by
/// `rows.len() / n_rows`, so the result is the gradient of the mean over the whole batch, as if
/// it ran in one piece (up to the order of floating-point sums). When the loss of any shard is
/// not finite the backward passes are skipped and `grads` is empty: such a step must not be
/// applied anyway.
///
/// With one shard, `shard` runs on the calling thread with BLAS's configured threads; with
/// more, each runs on a Rayon task with a one-thread BLAS.
///
/// # Shapes
/// `shard`'s loss: `(1, 1)`; gradients as [`Graph::backward`]'s.
///
/// # Panics
/// When a shard's loss is not `(1, 1)`.
pub fn data_parallel<F>(store: &ParamStore, n_rows: usize, shard: F) -> Sharded
where
    F: Fn(&Graph<'_>, Range<usize>) -> (Var, Vec<f32>) + Sync,
{
    data_parallel_in(store, n_rows, threads::shards_for(n_rows), shard)
}

/// [`data_parallel`] with an explicit shard count (clamped to `1..=n_rows`).
///
/// # Panics
/// As [`data_parallel`].
pub fn data_parallel_in<F>(store: &ParamStore, n_rows: usize, shards: usize, shard: F) -> Sharded
where
    F: Fn(&Graph<'_>, Range<usize>) -> (Var, Vec<f32>) + Sync,
{
    data_parallel_weighted(store, n_rows, shards, |r| r.len() as f64, shard)
}

/// Each part's share of a mean over its parts: `weights[i] / sum(weights)`, or, when that sum
/// is not positive and finite (no weight anywhere), `rows[i] / sum(rows)`. With one part, 1.
///
/// [`data_parallel_weighted`] weighs its shards with it and the epoch loop of `dmtl-train` the
/// ranks of a data-parallel job, so that the ranks compute what one process's shards compute,
/// to the bit. `weights` and `rows` are of equal length.
///
/// # Panics
/// When `weights` and `rows` differ in length.
pub fn shares_of(weights: &[f64], rows: &[usize]) -> Vec<f64> {
    assert_eq!(weights.len(), rows.len(), "one weight per part");
    if weights.len() == 1 {
        return vec![1.0];
    }
    let total: f64 = weights.iter().sum();
    if total > 0.0 && total.is_finite() {
        weights.iter().map(|w| w / total).collect()
    } else {
        let n = rows.iter().sum::<usize>().max(1) as f64;
        rows.iter().map(|&r| r as f64 / n).collect()
    }
}

/// [`data_parallel_in`] for a loss that is a weighted mean `sum_i w_i l_i / sum_i w_i` over the
/// rows: `weight(rows)` gives `sum_i w_i` over `rows`, and each shard's loss (the weighted mean
/// over its own rows) counts with its share of the batch's total weight, so the summed
/// gradient is again that of the batch's weighted mean. A shard whose weight is 0 adds nothing;
/// when every weight is 0 the shards count by rows.
///
/// # Panics
/// As [`data_parallel`].
pub fn data_parallel_weighted<W, F>(
    store: &ParamStore,
    n_rows: usize,
    shards: usize,
    weight: W,
    shard: F,
) -> Sharded
where
    W: Fn(Range<usize>) -> f64,
    F: Fn(&Graph<'_>, Range<usize>) -> (Var, Vec<f32>) + Sync,
{
    data_parallel_by(store, n_rows, Sharding::new(shards), weight, shard)
}

/// How [`data_parallel_by`] splits a batch and differentiates it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sharding {
    /// Row shards (clamped to `1..=n_rows`); [`threads::shards_for`] gives one process's.
    pub shards: usize,
    /// The gradients are those of `scale` times the loss (the values reported stay unscaled
    /// means): 1 in one process; a rank of a data-parallel job passes its block's share of the
    /// global batch, which seeds the backward pass exactly as one process seeds the same
    /// block's shard (see [`shares_of`]).
    pub scale: f64,
    /// The arithmetic of the shards' dense products (each shard's graph is built
    /// [`Graph::with_precision`] it).
    pub precision: Precision,
}

impl Sharding {
    /// `shards` row shards, scale 1, f32 products.
    pub fn new(shards: usize) -> Sharding {
        Sharding {
            shards,
            scale: 1.0,
            precision: Precision::F32,
        }
    }

    /// One process's shards of a batch of `n_rows` rows ([`threads::shards_for`]), scale 1,
    /// f32 products.
    pub fn for_rows(n_rows: usize) -> Sharding {
        Sharding::new(threads::shards_for(n_rows))
    }

    /// The same with the gradients of `scale` times the loss.
    pub fn scaled(self, scale: f64) -> Sharding {
        Sharding { scale, ..self }
    }

    /// The same with the dense products in `precision`.
    pub fn in_precision(self, precision: Precision) -> Sharding {
        Sharding { precision, ..self }
    }
}

/// [`data_parallel_weighted`] as `sharding` says: its shard count, the scale of the gradients
/// and the precision of the dense products.
///
/// # Panics
/// As [`data_parallel`].
pub fn data_parallel_by<W, F>(
    store: &ParamStore,
    n_rows: usize,
    sharding: Sharding,
    weight: W,
    shard: F,
) -> Sharded
where
    W: Fn(Range<usize>) -> f64,
    F: Fn(&Graph<'_>, Range<usize>) -> (Var, Vec<f32>) + Sync,
{
    let Sharding {
        shards,
        scale,
        precision,
    } = sharding;
    let ranges = shard_ranges(n_rows, shards);
    let weights: Vec<f64> = if ranges.len() == 1 {
        vec![1.0]
    } else {
        let w: Vec<f64> = ranges.iter().map(|r| weight(r.clone())).collect();
        let rows: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
        shares_of(&w, &rows)
    };
    let run = |(r, weight): (Range<usize>, f64)| -> (f64, Vec<f32>, Option<Grads>) {
        let g = Graph::with_precision(store, precision);
        let (loss, values) = shard(&g, r);
        let l = g.scalar(loss);
        let grads = l
            .is_finite()
            .then(|| g.backward_with(loss, Array2::from_elem((1, 1), (scale * weight) as f32)));
        (weight, values, grads)
    };
    let jobs: Vec<(Range<usize>, f64)> = ranges.into_iter().zip(weights).collect();
    let parts: Vec<(f64, Vec<f32>, Option<Grads>)> = if jobs.len() == 1 {
        jobs.into_iter().map(run).collect()
    } else {
        threads::with_blas_threads(1, || jobs.into_par_iter().map(run).collect())
    };
    let width = parts.iter().map(|p| p.1.len()).max().unwrap_or(0);
    let mut values = vec![0.0f64; width];
    for (w, vals, _) in &parts {
        for (acc, &v) in values.iter_mut().zip(vals) {
            *acc += w * f64::from(v);
        }
    }
    let all_finite = parts.iter().all(|p| p.2.is_some());
    let mut grads = Grads::new(store.len());
    if all_finite {
        let mut it = parts.into_iter().filter_map(|p| p.2);
        if let Some(first) = it.next() {
            grads = first;
        }
        for other in it {
            grads.merge(other);
        }
    }
    Sharded {
        grads,
        values: values.into_iter().map(|v| v as f32).collect(),
    }
}

/// Inference over `n_rows` rows in [`threads::shards_for`]`(n_rows)` row shards at once: `f`
/// builds the output `(rows.len(), cols)` of the rows `rows` on a fresh graph, and the shards'
/// outputs are stacked in row order. Each row's output is the same as from one pass over all
/// rows, since no op mixes rows; only the GEMMs' blocking may round differently.
///
/// # Shapes
/// `f`'s output: `(rows.len(), cols)` -> `(n_rows, cols)`.
///
/// # Panics
/// When the shards' outputs differ in columns or `f` panics.
pub fn forward_rows<F>(store: &ParamStore, n_rows: usize, f: F) -> Array2<f32>
where
    F: Fn(&Graph<'_>, Range<usize>) -> Var + Sync,
{
    forward_rows_in(store, n_rows, threads::shards_for(n_rows), f)
}

/// [`forward_rows`] with an explicit shard count (clamped to `1..=n_rows`).
///
/// # Panics
/// As [`forward_rows`].
pub fn forward_rows_in<F>(store: &ParamStore, n_rows: usize, shards: usize, f: F) -> Array2<f32>
where
    F: Fn(&Graph<'_>, Range<usize>) -> Var + Sync,
{
    let run = |r: Range<usize>| {
        let g = Graph::new(store);
        let out = f(&g, r);
        g.take_value(out)
    };
    let ranges = shard_ranges(n_rows, shards);
    if ranges.len() == 1 {
        return run(0..n_rows);
    }
    let parts: Vec<Array2<f32>> =
        threads::with_blas_threads(1, || ranges.into_par_iter().map(run).collect());
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(ndarray::Axis(0), &views).expect("every shard has the same columns")
}
