//! The gradient of one training batch, computed in data-parallel row shards.

use std::ops::Range;

use dmtl_data::Batch;
use dmtl_tensor::parallel::data_parallel_weighted_in;
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
    loss_and_grads_in(store, Precision::F32, towers, objective, batch, teacher)
}

/// [`loss_and_grads`] with the towers' dense products in `precision` (bf16 operands with f32
/// accumulation for [`Precision::Bf16`] where the CPU has AVX-512 BF16, f32 elsewhere).
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
) -> (f32, Grads) {
    let n = batch.n_rows;
    let targets_of = |r: Range<usize>| Targets {
        click: cut(&batch.click, r.clone()),
        duration: cut(&batch.duration, r.clone()),
        long_read: cut(&batch.long_read, r.clone()),
        teacher: teacher.map(|p| &p[r]),
        weights: None,
    };
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
    let sharded = data_parallel_weighted_in(store, precision, n, shards, weight, |g, rows| {
        let b = &*batch.part(rows.clone());
        let s = towers.score(g, b);
        let loss = objective.loss(g, s, &targets_of(rows));
        (loss, vec![g.scalar(loss)])
    });
    (sharded.values[0], sharded.grads)
}
