//! The machinery every loss is built on: a per-sample loss and its closed-form derivative,
//! reduced with optional weights into one `(1, 1)` node of the graph.
//!
//! A loss is one [`Graph::custom`] op: the forward pass evaluates every sample's loss and its
//! derivative together (they share the expensive `exp`/`log`), keeps the weighted, reduced
//! derivatives, and the backward rule only scales them by the incoming gradient. Each rule is
//! written in its stable closed form, which composing element-wise graph ops cannot always give
//! (ESMM's `log(1 - σ(a) σ(b))`), and the tape holds one node per loss.

use dmtl_tensor::{Graph, Var};
use ndarray::Array2;
use rayon::prelude::*;

/// How per-sample losses `l_i` with weights `w_i` (1 when absent) become one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// Weighted mean `sum_i w_i l_i / sum_i w_i`; 0 when the weights sum to 0 (or the batch is
    /// empty), with zero gradients.
    #[default]
    Mean,
    /// Weighted sum `sum_i w_i l_i`.
    Sum,
}

/// Above this many samples the per-sample work runs on Rayon's pool.
const PAR_MIN: usize = 1 << 14;

/// Panics unless `len == n`, naming the loss and what the slice holds.
pub(crate) fn check_len(loss: &str, what: &str, len: usize, n: usize) {
    assert!(
        len == n,
        "dmtl-loss: {loss}: {what} has length {len} but the logits have {n} rows"
    );
}

/// Panics unless every entry of `values` is finite and within `[lo, hi]`.
pub(crate) fn check_range(loss: &str, what: &str, values: &[f32], lo: f32, hi: f32) {
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .find(|(_, &v)| !(v >= lo && v <= hi))
    {
        panic!("dmtl-loss: {loss}: {what}[{i}] = {v} is outside [{lo}, {hi}]");
    }
}

/// Rows of a `(n, 1)` logit column, panicking with the loss name on any other shape.
fn column(g: &Graph, loss: &str, what: &str, v: Var) -> Vec<f32> {
    g.with_value(v, |a| {
        assert!(
            a.ncols() == 1,
            "dmtl-loss: {loss}: {what} must be (n, 1), got ({}, {})",
            a.nrows(),
            a.ncols()
        );
        a.iter().copied().collect()
    })
}

/// A loss over `K` logit columns of `n` rows each: `f(i, [x_1, .., x_K])` returns sample `i`'s
/// loss and its derivative with respect to each of the `K` logits. Returns a `(1, 1)` node whose
/// gradient flows back to all `K` inputs.
///
/// # Panics
/// When a logit Var is not `(n, 1)` with the same `n`, or `weights` has not `n` entries, or a
/// weight is negative or not finite. Messages name `loss`.
pub fn pointwise_loss_n<const K: usize, F>(
    g: &Graph,
    loss: &str,
    logits: [Var; K],
    weights: Option<&[f32]>,
    red: Reduction,
    f: F,
) -> Var
where
    F: Fn(usize, [f32; K]) -> (f32, [f32; K]) + Sync,
{
    let cols: Vec<Vec<f32>> = logits
        .iter()
        .enumerate()
        .map(|(k, &v)| column(g, loss, &format!("logit input {k}"), v))
        .collect();
    let n = cols.first().map_or(0, Vec::len);
    for (k, c) in cols.iter().enumerate() {
        assert!(
            c.len() == n,
            "dmtl-loss: {loss}: logit input {k} has {} rows, input 0 has {n}",
            c.len()
        );
    }
    if let Some(w) = weights {
        check_len(loss, "weights", w.len(), n);
        check_range(loss, "weights", w, 0.0, f32::MAX);
    }
    let eval = |i: usize| -> (f64, f64, [f32; K]) {
        let x: [f32; K] = std::array::from_fn(|k| cols[k][i]);
        let w = weights.map_or(1.0, |w| w[i]);
        if w == 0.0 {
            // A zero weight drops the sample, even if its loss is not finite.
            return (0.0, 0.0, [0.0; K]);
        }
        let (l, d) = f(i, x);
        (w as f64 * l as f64, w as f64, d.map(|d| d * w))
    };
    let per: Vec<(f64, f64, [f32; K])> = if n >= PAR_MIN {
        (0..n).into_par_iter().map(eval).collect()
    } else {
        (0..n).map(eval).collect()
    };
    // Sums in f64: a mean over a large batch of small losses keeps its digits.
    let (total, weight_sum) = per
        .iter()
        .fold((0.0f64, 0.0f64), |(t, s), p| (t + p.0, s + p.1));
    let denom = match red {
        Reduction::Sum => 1.0,
        Reduction::Mean => weight_sum,
    };
    let (value, scale) = if denom > 0.0 {
        (total / denom, (1.0 / denom) as f32)
    } else {
        (0.0, 0.0)
    };
    let grads: Vec<Array2<f32>> = (0..K)
        .map(|k| Array2::from_shape_fn((n, 1), |(i, _)| per[i].2[k] * scale))
        .collect();
    g.custom(
        &logits,
        Array2::from_elem((1, 1), value as f32),
        Box::new(move |_inputs, _out, dy| {
            let s = dy[[0, 0]];
            grads.iter().map(|d| Some(d.mapv(|x| x * s))).collect()
        }),
    )
}

/// [`pointwise_loss_n`] for one logit column: `f(i, x_i)` returns `(l_i, dl_i/dx_i)`.
///
/// ```
/// use dmtl_loss::{pointwise_loss, Reduction};
/// use dmtl_tensor::{Graph, ParamStore};
/// use ndarray::array;
/// let store = ParamStore::new();
/// let g = Graph::new(&store);
/// let x = g.input(array![[1.0f32], [3.0]]);
/// // Half the squared distance to 2: losses 0.5 and 0.5, derivatives -1 and 1.
/// let loss = pointwise_loss(&g, "half_square", x, None, Reduction::Sum, |_, x| {
///     (0.5 * (x - 2.0) * (x - 2.0), x - 2.0)
/// });
/// assert_eq!(g.scalar(loss), 1.0);
/// ```
///
/// # Panics
/// As [`pointwise_loss_n`].
pub fn pointwise_loss<F>(
    g: &Graph,
    loss: &str,
    logits: Var,
    weights: Option<&[f32]>,
    red: Reduction,
    f: F,
) -> Var
where
    F: Fn(usize, f32) -> (f32, f32) + Sync,
{
    pointwise_loss_n(g, loss, [logits], weights, red, |i, [x]| {
        let (l, d) = f(i, x);
        (l, [d])
    })
}

/// Number of rows of a `(n, 1)` logit column.
pub(crate) fn rows(g: &Graph, v: Var) -> usize {
    g.shape(v).0
}
