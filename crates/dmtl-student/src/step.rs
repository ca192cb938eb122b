//! The gradient of one training batch, computed in data-parallel row shards.

use std::ops::Range;

use dmtl_data::Batch;
use dmtl_tensor::parallel::{data_parallel_by, Sharding};
use dmtl_tensor::{threads, Grads, ParamStore, Precision};

use crate::objective::{Objective, Targets};
use crate::two_tower::TwoTower;

/// Rows `r` of a per-row label vector (empty when the batch has no such labels).
fn cut(v: &[f32], r: Range<usize>) -> &[f32] {
    if v.is_empty() {
        v
    } else {
        &v[r]
    }
}

/// The loss of `towers` (parameters in `store`) on `batch` under `objective` and its gradient.
///
/// `teacher`, when given, holds the teacher's pCTCVR of each batch row, in batch order. The
/// batch is split into [`threads::shards_for`] row shards that run forward and backward in
/// parallel, each counted with its share of the objective's
/// [`Objective::mean_denominator`], so the result is the gradient of the whole batch's loss
/// (up to the order of float sums); an objective that couples rows is never split. When the
/// loss is not finite the gradient is empty.
///
/// # Panics
/// When the batch does not fit the towers or lacks a label the objective needs.
pub fn loss_and_grads(
    store: &ParamStore,
    towers: &TwoTower,
    objective: &dyn Objective,
    batch: &Batch,
    teacher: Option<&[f32]>,
) -> (f32, Grads) {
    loss_and_grads_in(
        store,
        Precision::F32,
        towers,
        objective,
        batch,
        teacher,
        1.0,
    )
}

/// The targets of rows `r` of `batch`, with the teacher's pCTCVR of those rows when given.
fn targets_of<'a>(batch: &'a Batch, teacher: Option<&'a [f32]>, r: Range<usize>) -> Targets<'a> {
    Targets {
        click: cut(&batch.click, r.clone()),
        duration: cut(&batch.duration, r.clone()),
        long_read: cut(&batch.long_read, r.clone()),
        teacher: teacher.map(|p| &p[r]),
        weights: None,
    }
}

/// The denominator of the mean `objective`'s loss takes over `batch`
/// ([`Objective::mean_denominator`]: its rows, or the sum of their weights); `None` when the
/// objective couples the batch's rows, which must then never be split.
///
/// # Panics
/// When `teacher` is given and shorter than the batch.
pub fn mean_weight(
    objective: &dyn Objective,
    batch: &Batch,
    teacher: Option<&[f32]>,
) -> Option<f64> {
    let n = batch.n_rows;
    objective.mean_denominator(&targets_of(batch, teacher, 0..n), n)
}

/// [`loss_and_grads`] with the towers' dense products in `precision` (bf16 operands with f32
/// accumulation for [`Precision::Bf16`] where the CPU has AVX-512 BF16, f32 elsewhere) and the
/// gradients of `scale` times the loss (the loss returned stays the batch's mean): `scale` is
/// 1 in one process, and one rank of a data-parallel job passes its block's share of the
/// global batch's [`mean_weight`].
///
/// # Panics
/// As [`loss_and_grads`].
pub fn loss_and_grads_in(
    store: &ParamStore,
    precision: Precision,
    towers: &TwoTower,
    objective: &dyn Objective,
    batch: &Batch,
    teacher: Option<&[f32]>,
    scale: f64,
) -> (f32, Grads) {
    let n = batch.n_rows;
    let targets_of = |r: Range<usize>| targets_of(batch, teacher, r);
    let shards = match objective.mean_denominator(&targets_of(0..n), n) {
        Some(_) => threads::shards_for(n),
        None => 1,
    };
    let weight = |r: Range<usize>| {
        let len = r.len();
        objective
            .mean_denominator(&targets_of(r), len)
            .unwrap_or(0.0)
    };
    let sharding = Sharding::new(shards).scaled(scale).in_precision(precision);
    let sharded = data_parallel_by(store, n, sharding, weight, |g, rows| {
        let b = &*batch.part(rows.clone());
        let s = towers.score(g, b);
        let loss = objective.loss(g, s, &targets_of(rows));
        (loss, vec![g.scalar(loss)])
    });
    (sharded.values[0], sharded.grads)
}
