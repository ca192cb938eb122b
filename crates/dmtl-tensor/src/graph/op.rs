//! How each node was computed: the recipe its backward rule follows.

use ndarray::{Array2, ArrayView2};

use super::{Activation, Unary, Var};
use crate::params::ParamId;

/// Pooling of a multi-hot bag of embedding rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Sum of the bag's rows.
    Sum,
    /// Mean of the bag's rows; an empty bag pools to zeros.
    Mean,
}

/// Gradient rule of a custom op: given the input values, the output value and the gradient of
/// the loss with respect to the output, return one gradient per input (`None`: not needed).
pub type BackwardFn = Box<
    dyn Fn(
            &[ArrayView2<'_, f32>],
            ArrayView2<'_, f32>,
            ArrayView2<'_, f32>,
        ) -> Vec<Option<Array2<f32>>>
        + Send
        + Sync,
>;

/// How a node was computed: the recipe its backward rule follows.
pub enum Op {
    /// A constant input (no gradient).
    Input,
    /// A parameter of the store.
    Param(ParamId),
    /// `table[ids]`, one row per id.
    Embedding {
        /// The table.
        table: ParamId,
        /// Row per output row.
        ids: Vec<u32>,
    },
    /// Pooled bags of rows: bag `b` is `ids[offsets[b]..offsets[b+1]]`.
    EmbeddingBag {
        /// The table.
        table: ParamId,
        /// All ids.
        ids: Vec<u32>,
        /// Bag boundaries, `n + 1` entries.
        offsets: Vec<u32>,
        /// Sum or mean.
        pooling: Pooling,
    },
    /// `op(a) . op(b)`, `op` transposing when the flag is set.
    MatMul(Var, Var, bool, bool),
    /// `act(x . w^T + b)` with `w` as `(out, in)`.
    Linear(Var, Var, Option<Var>, Activation),
    /// `a + b` with `b` broadcast over rows (`(1, n)`), columns (`(m, 1)`) or equal shapes.
    Add(Var, Var),
    /// `a - b`, same broadcasting as `Add`.
    Sub(Var, Var),
    /// `a * b` element-wise, same broadcasting as `Add`.
    Mul(Var, Var),
    /// `a * c`.
    Scale(Var, f32),
    /// `a + c`.
    AddScalar(Var, f32),
    /// An element-wise function.
    Unary(Var, Unary),
    /// Softmax of each row.
    SoftmaxRows(Var),
    /// Sum of all entries, `(1, 1)`.
    SumAll(Var),
    /// Sum of each row, `(m, 1)`.
    SumRows(Var),
    /// Columns of several matrices side by side.
    ConcatCols(Vec<Var>),
    /// Columns `start..start + len`.
    SliceCols(Var, usize, usize),
    /// `sum_j a[i,j] * b[i,j]` per row, `(m, 1)`.
    RowDot(Var, Var),
    /// `sum_k gate[:, k] * experts[k]`: MMoE's mixture.
    MixExperts(Var, Vec<Var>),
    /// A copy that stops gradients.
    Detach,
    /// A user-defined op.
    Custom(Vec<Var>, BackwardFn),
}
