//! The tape: a graph of operations recorded during the forward pass, walked backwards once.
//!
//! Every op appends a node holding its output value and an [`Op`] naming its inputs. Nodes are
//! appended in evaluation order, so the tape is already topologically sorted: [`Graph::backward`]
//! walks it from the loss towards the inputs, and the one `match` in `backward_node` holds every
//! gradient rule.

use ndarray::{s, Array2, ArrayView2, Axis, Zip};
use rayon::prelude::*;

use crate::params::{Grads, ParamId, ParamKind, ParamStore, SparseGrad};

/// Handle of a node on a [`Graph`]: a value computed during the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Var(pub(crate) usize);

/// Element-wise functions: each is an `f` and its derivative in terms of the input `x` and the
/// output `y`. Adding one is a variant here plus two match arms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unary {
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `log sigmoid(x) = -softplus(-x)`, stable for any `x`.
    LogSigmoid,
    /// `softplus(x) = log(1 + e^x)`, stable for any `x`.
    Softplus,
    /// `e^x`.
    Exp,
    /// `ln x` (for `x > 0`).
    Log,
    /// `-x`.
    Neg,
    /// `x^2`.
    Square,
}

#[inline]
fn softplus(x: f32) -> f32 {
    // log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large |x|.
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl Unary {
    #[inline]
    fn f(self, x: f32) -> f32 {
        match self {
            Unary::Relu => x.max(0.0),
            Unary::Sigmoid => sigmoid(x),
            Unary::Tanh => x.tanh(),
            Unary::LogSigmoid => -softplus(-x),
            Unary::Softplus => softplus(x),
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Neg => -x,
            Unary::Square => x * x,
        }
    }

    /// dy/dx given the input `x` and the output `y`.
    #[inline]
    fn df(self, x: f32, y: f32) -> f32 {
        match self {
            Unary::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Unary::Sigmoid => y * (1.0 - y),
            Unary::Tanh => 1.0 - y * y,
            Unary::LogSigmoid => sigmoid(-x),
            Unary::Softplus => sigmoid(x),
            Unary::Exp => y,
            Unary::Log => 1.0 / x,
            Unary::Neg => -1.0,
            Unary::Square => 2.0 * x,
        }
    }
}

/// Activation fused into [`Graph::linear`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// No activation: a plain affine map.
    Identity,
    /// ReLU.
    Relu,
    /// Sigmoid.
    Sigmoid,
    /// Tanh.
    Tanh,
}

impl Activation {
    fn unary(self) -> Option<Unary> {
        match self {
            Activation::Identity => None,
            Activation::Relu => Some(Unary::Relu),
            Activation::Sigmoid => Some(Unary::Sigmoid),
            Activation::Tanh => Some(Unary::Tanh),
        }
    }

    /// The activation of one value, with the same formula as the graph's ops.
    #[inline]
    pub(crate) fn apply(self, x: f32) -> f32 {
        self.unary().map_or(x, |u| u.f(x))
    }
}

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

enum Value {
    Owned(Array2<f32>),
    Param(ParamId),
}

struct Node {
    value: Value,
    op: Op,
    needs_grad: bool,
}

/// A tape of operations over the parameters of one [`ParamStore`].
///
/// Build a graph per step, run the forward pass through its methods, call
/// [`Graph::backward`] on the scalar loss, then hand the [`Grads`] to an optimizer.
///
/// ```
/// use dmtl_tensor::{Graph, ParamStore, ParamKind};
/// use ndarray::array;
/// let mut store = ParamStore::new();
/// let w = store.add("w", array![[2.0f32]], ParamKind::Dense);
/// let g = Graph::new(&store);
/// let x = g.input(array![[3.0f32]]);
/// let wv = g.param(w);
/// let y = g.mul(x, wv);               // y = 3w
/// let loss = g.sum_all(g.square(y));   // (3w)^2, d/dw = 18w = 36
/// let grads = g.backward(loss);
/// assert_eq!(grads.get(w).unwrap().values()[[0, 0]], 36.0);
/// ```
pub struct Graph<'p> {
    store: &'p ParamStore,
    nodes: std::cell::RefCell<Vec<Node>>,
}

/// Above this many entries element-wise work runs on Rayon's pool.
const PAR_MIN: usize = 1 << 15;

/// Whether element-wise work on `len` entries should be split over Rayon's pool: only when it
/// is large and the caller is not already a task of that pool (a data-parallel shard, say),
/// where splitting again would only add scheduling to a core that is already busy.
pub(crate) fn go_parallel(len: usize) -> bool {
    len >= PAR_MIN && rayon::current_thread_index().is_none()
}

fn shape(a: &ArrayView2<'_, f32>) -> (usize, usize) {
    (a.nrows(), a.ncols())
}

fn map_unary(x: ArrayView2<'_, f32>, u: Unary) -> Array2<f32> {
    // `map_collect` writes every entry once: no zero-fill of the output first.
    let z = Zip::from(&x);
    if go_parallel(x.len()) {
        z.par_map_collect(|&x| u.f(x))
    } else {
        z.map_collect(|&x| u.f(x))
    }
}

/// `dy *= f'(x, y)` element-wise, in place on the incoming gradient (it is owned and used
/// once, so no new buffer is needed).
fn unary_grad_inplace(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    dy: &mut Array2<f32>,
    u: Unary,
) {
    let z = Zip::from(dy).and(&x).and(&y);
    if go_parallel(x.len()) {
        z.par_for_each(|d, &x, &y| *d *= u.df(x, y));
    } else {
        z.for_each(|d, &x, &y| *d *= u.df(x, y));
    }
}

/// Column sums of `g`, `(1, cols)`: row after row over contiguous slices, because summing
/// along axis 0 lane by lane walks memory with a stride of a whole row.
fn col_sums(g: ArrayView2<'_, f32>) -> Array2<f32> {
    let c = g.ncols();
    let mut acc = vec![0.0f32; c];
    for row in g.rows() {
        match row.as_slice() {
            Some(r) => acc.iter_mut().zip(r).for_each(|(a, &x)| *a += x),
            None => acc.iter_mut().zip(row.iter()).for_each(|(a, &x)| *a += x),
        }
    }
    Array2::from_shape_vec((1, c), acc).expect("length is cols")
}

/// `out[i, j] = f(out[i, j], b[i, j])` with `b` equal in shape to `out`, `(1, cols)`,
/// `(rows, 1)` or `(1, 1)`, looping over contiguous rows instead of a broadcast `Zip`.
fn apply_broadcast(
    out: &mut Array2<f32>,
    b: ArrayView2<'_, f32>,
    f: impl Fn(f32, f32) -> f32 + Sync + Send,
) {
    let (r, c) = (out.nrows(), out.ncols());
    let sb = shape(&b);
    if sb == (r, c) {
        let z = Zip::from(&mut *out).and(&b);
        if go_parallel(r * c) {
            z.par_for_each(|o, &y| *o = f(*o, y));
        } else {
            z.for_each(|o, &y| *o = f(*o, y));
        }
    } else if sb == (1, c) {
        let brow = b.row(0).to_vec();
        let per_row = |mut row: ndarray::ArrayViewMut1<'_, f32>| match row.as_slice_mut() {
            Some(o) => o.iter_mut().zip(&brow).for_each(|(o, &y)| *o = f(*o, y)),
            None => row.iter_mut().zip(&brow).for_each(|(o, &y)| *o = f(*o, y)),
        };
        if go_parallel(out.len()) {
            out.axis_iter_mut(Axis(0)).into_par_iter().for_each(per_row);
        } else {
            out.axis_iter_mut(Axis(0)).for_each(per_row);
        }
    } else if sb == (r, 1) {
        let per_row = |(i, mut row): (usize, ndarray::ArrayViewMut1<'_, f32>)| {
            let y = b[[i, 0]];
            row.iter_mut().for_each(|o| *o = f(*o, y));
        };
        if go_parallel(out.len()) {
            out.axis_iter_mut(Axis(0))
                .into_par_iter()
                .enumerate()
                .for_each(per_row);
        } else {
            out.axis_iter_mut(Axis(0)).enumerate().for_each(per_row);
        }
    } else {
        let y = b[[0, 0]];
        out.mapv_inplace(|o| f(o, y));
    }
}

/// Sums `g` down to `shape` (undoing a row or column broadcast).
fn reduce_view(g: ArrayView2<'_, f32>, shape: (usize, usize)) -> Array2<f32> {
    let (r, c) = (g.nrows(), g.ncols());
    if (r, c) == shape {
        g.to_owned()
    } else if shape == (1, c) {
        col_sums(g)
    } else if shape == (r, 1) {
        g.sum_axis(Axis(1)).insert_axis(Axis(1))
    } else if shape == (1, 1) {
        Array2::from_elem((1, 1), g.sum())
    } else {
        unreachable!("broadcast shapes were checked in the forward pass")
    }
}

/// Sums `g` down to `shape` (undoing a row or column broadcast).
fn reduce_to(g: Array2<f32>, shape: (usize, usize)) -> Array2<f32> {
    let (r, c) = (g.nrows(), g.ncols());
    if (r, c) == shape {
        g
    } else if shape == (1, c) {
        col_sums(g.view())
    } else if shape == (r, 1) {
        g.sum_axis(Axis(1)).insert_axis(Axis(1))
    } else if shape == (1, 1) {
        Array2::from_elem((1, 1), g.sum())
    } else {
        unreachable!("broadcast shapes were checked in the forward pass")
    }
}

fn gemm(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f32> {
    let (m, n) = (a.nrows(), b.ncols());
    let mut v: Vec<f32> = Vec::with_capacity(m * n);
    // SAFETY: f32 has no invalid bit patterns, and a GEMM with beta = 0 writes every entry of
    // C without reading it (OpenBLAS and matrixmultiply both document this; ndarray's own `dot`
    // relies on it), so the zero-fill a fresh buffer would need is wasted work.
    #[allow(clippy::uninit_vec)]
    unsafe {
        v.set_len(m * n)
    };
    let mut c = Array2::from_shape_vec((m, n), v).expect("m * n entries");
    ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    c
}

/// `ndarray::concatenate` along columns, row by row with slice copies: the generic version
/// goes through strided appends, which cost a sizeable share of an inference pass over a dozen
/// narrow embedding blocks.
fn concat_rows_by_slices(views: &[ArrayView2<'_, f32>]) -> Array2<f32> {
    let rows = views[0].nrows();
    let cols: usize = views.iter().map(|v| v.ncols()).sum();
    let mut out = Array2::<f32>::zeros((rows, cols));
    if cols == 0 {
        return out;
    }
    let flat = out.as_slice_mut().expect("fresh array");
    for (r, o) in flat.chunks_exact_mut(cols).enumerate() {
        let mut c = 0;
        for v in views {
            let w = v.ncols();
            let row = v.row(r);
            match row.as_slice() {
                Some(s) => o[c..c + w].copy_from_slice(s),
                None => o[c..c + w].iter_mut().zip(row).for_each(|(d, &x)| *d = x),
            }
            c += w;
        }
    }
    out
}

impl<'p> Graph<'p> {
    /// An empty tape over `store`'s parameters.
    pub fn new(store: &'p ParamStore) -> Self {
        Graph {
            store,
            nodes: std::cell::RefCell::new(Vec::with_capacity(64)),
        }
    }

    /// The store this graph reads parameters from.
    pub fn store(&self) -> &'p ParamStore {
        self.store
    }

    /// Number of nodes recorded so far.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&self, value: Array2<f32>, op: Op) -> Var {
        let needs_grad = self.op_needs_grad(&op);
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node {
            value: Value::Owned(value),
            op,
            needs_grad,
        });
        Var(nodes.len() - 1)
    }

    fn op_needs_grad(&self, op: &Op) -> bool {
        let nodes = self.nodes.borrow();
        let ng = |v: &Var| nodes[v.0].needs_grad;
        match op {
            Op::Input | Op::Detach => false,
            Op::Param(_) | Op::Embedding { .. } | Op::EmbeddingBag { .. } => true,
            Op::MatMul(a, b, ..)
            | Op::Add(a, b)
            | Op::Sub(a, b)
            | Op::Mul(a, b)
            | Op::RowDot(a, b) => ng(a) || ng(b),
            Op::Linear(x, w, b, _) => ng(x) || ng(w) || b.as_ref().is_some_and(ng),
            Op::Scale(a, _)
            | Op::AddScalar(a, _)
            | Op::Unary(a, _)
            | Op::SoftmaxRows(a)
            | Op::SumAll(a)
            | Op::SumRows(a)
            | Op::SliceCols(a, ..) => ng(a),
            Op::ConcatCols(vs) | Op::Custom(vs, _) => vs.iter().any(ng),
            Op::MixExperts(gate, es) => ng(gate) || es.iter().any(ng),
        }
    }

    /// Runs `f` on the value of `v`.
    pub fn with_value<R>(&self, v: Var, f: impl FnOnce(ArrayView2<'_, f32>) -> R) -> R {
        let nodes = self.nodes.borrow();
        match &nodes[v.0].value {
            Value::Owned(a) => f(a.view()),
            Value::Param(id) => f(self.store.value(*id)),
        }
    }

    /// A copy of the value of `v`.
    pub fn value(&self, v: Var) -> Array2<f32> {
        self.with_value(v, |a| a.to_owned())
    }

    /// The value of `v`, moved out of the graph without a copy (a parameter's is copied);
    /// for the output of an inference pass, when the graph is dropped right after.
    ///
    /// # Panics
    /// On a later use of `v` in this graph, or a backward pass through it.
    pub fn take_value(self, v: Var) -> Array2<f32> {
        let mut nodes = self.nodes.into_inner();
        match std::mem::replace(&mut nodes[v.0].value, Value::Owned(Array2::zeros((0, 0)))) {
            Value::Owned(a) => a,
            Value::Param(id) => self.store.value(id).to_owned(),
        }
    }

    /// The shape `(rows, cols)` of `v`.
    pub fn shape(&self, v: Var) -> (usize, usize) {
        self.with_value(v, |a| shape(&a))
    }

    /// The single entry of a `(1, 1)` value (a loss).
    ///
    /// # Panics
    /// When `v` is not `(1, 1)`.
    pub fn scalar(&self, v: Var) -> f32 {
        self.with_value(v, |a| {
            assert_eq!(
                shape(&a),
                (1, 1),
                "dmtl-tensor: scalar: value has shape {:?}",
                shape(&a)
            );
            a[[0, 0]]
        })
    }

    fn with2<R>(
        &self,
        a: Var,
        b: Var,
        f: impl FnOnce(ArrayView2<'_, f32>, ArrayView2<'_, f32>) -> R,
    ) -> R {
        self.with_value(a, |av| self.with_value(b, |bv| f(av, bv)))
    }

    /// A constant input `(rows, cols)`; no gradient flows into it.
    pub fn input(&self, value: Array2<f32>) -> Var {
        self.push(value, Op::Input)
    }

    /// A parameter of the store, read without copying.
    pub fn param(&self, id: ParamId) -> Var {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node {
            value: Value::Param(id),
            op: Op::Param(id),
            needs_grad: true,
        });
        Var(nodes.len() - 1)
    }

    /// Rows `ids` of embedding table `table`: `(ids.len(), dim)`. Its gradient is sparse.
    ///
    /// # Panics
    /// When an id is outside the table.
    pub fn embedding(&self, table: ParamId, ids: &[u32]) -> Var {
        let t = self.store.value(table);
        let (vocab, dim) = shape(&t);
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            panic!(
                "dmtl-tensor: embedding `{}`: id {bad} outside the table of {vocab} rows",
                self.store.get(table).name
            );
        }
        if let (Some(flat), false) = (t.as_slice(), go_parallel(ids.len() * dim)) {
            // Rows appended to a fresh buffer: no zero-fill that the copies overwrite anyway.
            let mut buf: Vec<f32> = Vec::with_capacity(ids.len() * dim);
            for &i in ids {
                let i = i as usize;
                buf.extend_from_slice(&flat[i * dim..(i + 1) * dim]);
            }
            let out = Array2::from_shape_vec((ids.len(), dim), buf).expect("one row per id");
            return self.push(
                out,
                Op::Embedding {
                    table,
                    ids: ids.to_vec(),
                },
            );
        }
        let mut out = Array2::<f32>::zeros((ids.len(), dim));
        let fill = |(r, mut row): (usize, ndarray::ArrayViewMut1<'_, f32>)| {
            row.assign(&t.row(ids[r] as usize))
        };
        if go_parallel(ids.len() * dim) {
            out.axis_iter_mut(Axis(0))
                .into_par_iter()
                .enumerate()
                .for_each(fill);
        } else {
            out.axis_iter_mut(Axis(0)).enumerate().for_each(fill);
        }
        self.push(
            out,
            Op::Embedding {
                table,
                ids: ids.to_vec(),
            },
        )
    }

    /// Pooled bags of rows of `table`: bag `b` pools `ids[offsets[b]..offsets[b + 1]]`,
    /// giving `(offsets.len() - 1, dim)`. An empty bag pools to zeros.
    ///
    /// # Panics
    /// When offsets are not non-decreasing from 0 to `ids.len()`, or an id is outside the table.
    pub fn embedding_bag(
        &self,
        table: ParamId,
        ids: &[u32],
        offsets: &[u32],
        pooling: Pooling,
    ) -> Var {
        let t = self.store.value(table);
        let (vocab, dim) = shape(&t);
        let name = &self.store.get(table).name;
        assert!(
            !offsets.is_empty()
                && offsets[0] == 0
                && *offsets.last().unwrap() as usize == ids.len()
                && offsets.windows(2).all(|w| w[0] <= w[1]),
            "dmtl-tensor: embedding_bag `{name}`: offsets must rise from 0 to ids.len() = {}",
            ids.len()
        );
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            panic!(
                "dmtl-tensor: embedding_bag `{name}`: id {bad} outside the table of {vocab} rows"
            );
        }
        let n = offsets.len() - 1;
        let mut out = Array2::<f32>::zeros((n, dim));
        let fill = |(b, mut row): (usize, ndarray::ArrayViewMut1<'_, f32>)| {
            let bag = &ids[offsets[b] as usize..offsets[b + 1] as usize];
            for &i in bag {
                row += &t.row(i as usize);
            }
            if pooling == Pooling::Mean && bag.len() > 1 {
                row.mapv_inplace(|x| x / bag.len() as f32);
            }
        };
        if go_parallel(ids.len() * dim) {
            out.axis_iter_mut(Axis(0))
                .into_par_iter()
                .enumerate()
                .for_each(fill);
        } else {
            out.axis_iter_mut(Axis(0)).enumerate().for_each(fill);
        }
        self.push(
            out,
            Op::EmbeddingBag {
                table,
                ids: ids.to_vec(),
                offsets: offsets.to_vec(),
                pooling,
            },
        )
    }

    /// Matrix product `a . b`: `(m, k) x (k, n) -> (m, n)` by BLAS GEMM.
    pub fn matmul(&self, a: Var, b: Var) -> Var {
        self.matmul_t(a, b, false, false)
    }

    /// `op(a) . op(b)` where `op` transposes when `ta` / `tb` is set, without copying.
    ///
    /// # Panics
    /// When the inner dimensions differ.
    pub fn matmul_t(&self, a: Var, b: Var, ta: bool, tb: bool) -> Var {
        let out = self.with2(a, b, |av, bv| {
            let av = if ta { av.reversed_axes() } else { av };
            let bv = if tb { bv.reversed_axes() } else { bv };
            assert_eq!(
                av.ncols(),
                bv.nrows(),
                "dmtl-tensor: matmul: shapes {:?} and {:?} do not align (transposed: {ta}, {tb})",
                shape(&av),
                shape(&bv)
            );
            gemm(av, bv)
        });
        self.push(out, Op::MatMul(a, b, ta, tb))
    }

    /// Fused `act(x . w^T + b)`: `x` is `(batch, in)`, `w` is `(out, in)` as in PyTorch,
    /// `b` is `(1, out)`; the result is `(batch, out)`.
    ///
    /// # Panics
    /// When the shapes do not fit.
    pub fn linear(&self, x: Var, w: Var, b: Option<Var>, act: Activation) -> Var {
        let mut out = self.with2(x, w, |xv, wv| {
            assert_eq!(
                xv.ncols(),
                wv.ncols(),
                "dmtl-tensor: linear: input {:?} does not fit weight {:?} (out, in)",
                shape(&xv),
                shape(&wv)
            );
            gemm(xv, wv.t())
        });
        let mut activated = false;
        if let Some(b) = b {
            self.with_value(b, |bv| {
                assert_eq!(
                    shape(&bv),
                    (1, out.ncols()),
                    "dmtl-tensor: linear: bias {:?} does not fit {} outputs",
                    shape(&bv),
                    out.ncols()
                );
                // Row by row: `+=` of a broadcast row goes through a slow strided Zip. ReLU,
                // the common case, is applied in the same pass.
                if act.unary() == Some(Unary::Relu) {
                    apply_broadcast(&mut out, bv, |o, b| (o + b).max(0.0));
                    activated = true;
                } else {
                    apply_broadcast(&mut out, bv, |o, b| o + b);
                }
            });
        }
        if let (Some(u), false) = (act.unary(), activated) {
            if go_parallel(out.len()) {
                out.par_mapv_inplace(|v| u.f(v));
            } else {
                out.mapv_inplace(|v| u.f(v));
            }
        }
        self.push(out, Op::Linear(x, w, b, act))
    }

    fn broadcast_check(&self, op: &str, a: Var, b: Var) {
        let (sa, sb) = (self.shape(a), self.shape(b));
        let ok = sa == sb || sb == (1, sa.1) || sb == (sa.0, 1) || sb == (1, 1);
        assert!(
            ok,
            "dmtl-tensor: {op}: shapes {sa:?} and {sb:?} do not broadcast (the second may be equal, (1, cols), (rows, 1) or (1, 1))"
        );
    }

    fn binary(
        &self,
        op: &str,
        a: Var,
        b: Var,
        f: impl Fn(f32, f32) -> f32 + Sync + Send,
    ) -> Array2<f32> {
        self.broadcast_check(op, a, b);
        self.with2(a, b, |av, bv| {
            let mut out = av.to_owned();
            apply_broadcast(&mut out, bv, f);
            out
        })
    }

    /// `a + b`; `b` may be `(1, cols)`, `(rows, 1)` or `(1, 1)` and is broadcast.
    pub fn add(&self, a: Var, b: Var) -> Var {
        let out = self.binary("add", a, b, |x, y| x + y);
        self.push(out, Op::Add(a, b))
    }

    /// `a - b`, broadcasting `b` as [`Graph::add`] does.
    pub fn sub(&self, a: Var, b: Var) -> Var {
        let out = self.binary("sub", a, b, |x, y| x - y);
        self.push(out, Op::Sub(a, b))
    }

    /// `a * b` element-wise, broadcasting `b` as [`Graph::add`] does.
    pub fn mul(&self, a: Var, b: Var) -> Var {
        let out = self.binary("mul", a, b, |x, y| x * y);
        self.push(out, Op::Mul(a, b))
    }

    /// `a * c` for a constant `c`.
    pub fn scale(&self, a: Var, c: f32) -> Var {
        let out = self.with_value(a, |av| av.mapv(|x| x * c));
        self.push(out, Op::Scale(a, c))
    }

    /// `a + c` for a constant `c`.
    pub fn add_scalar(&self, a: Var, c: f32) -> Var {
        let out = self.with_value(a, |av| av.mapv(|x| x + c));
        self.push(out, Op::AddScalar(a, c))
    }

    /// An element-wise function.
    pub fn unary(&self, a: Var, u: Unary) -> Var {
        let out = self.with_value(a, |av| map_unary(av, u));
        self.push(out, Op::Unary(a, u))
    }

    /// `max(a, 0)`.
    pub fn relu(&self, a: Var) -> Var {
        self.unary(a, Unary::Relu)
    }

    /// `1 / (1 + e^-a)`, stable.
    pub fn sigmoid(&self, a: Var) -> Var {
        self.unary(a, Unary::Sigmoid)
    }

    /// `tanh a`.
    pub fn tanh(&self, a: Var) -> Var {
        self.unary(a, Unary::Tanh)
    }

    /// `log sigmoid(a)`, finite for any finite `a`.
    pub fn log_sigmoid(&self, a: Var) -> Var {
        self.unary(a, Unary::LogSigmoid)
    }

    /// `log(1 + e^a)`, finite for any finite `a`.
    pub fn softplus(&self, a: Var) -> Var {
        self.unary(a, Unary::Softplus)
    }

    /// `e^a`.
    pub fn exp(&self, a: Var) -> Var {
        self.unary(a, Unary::Exp)
    }

    /// `ln a`.
    pub fn log(&self, a: Var) -> Var {
        self.unary(a, Unary::Log)
    }

    /// `-a`.
    pub fn neg(&self, a: Var) -> Var {
        self.unary(a, Unary::Neg)
    }

    /// `a^2`.
    pub fn square(&self, a: Var) -> Var {
        self.unary(a, Unary::Square)
    }

    /// Softmax of each row (max-subtracted, so stable for large entries).
    pub fn softmax_rows(&self, a: Var) -> Var {
        let out = self.with_value(a, |av| {
            let mut out = av.to_owned();
            for mut row in out.rows_mut() {
                let m = row.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                row.mapv_inplace(|x| (x - m).exp());
                let s = row.sum();
                row.mapv_inplace(|x| x / s);
            }
            out
        });
        self.push(out, Op::SoftmaxRows(a))
    }

    /// Sum of all entries, `(1, 1)`.
    pub fn sum_all(&self, a: Var) -> Var {
        let out = self.with_value(a, |av| Array2::from_elem((1, 1), av.sum()));
        self.push(out, Op::SumAll(a))
    }

    /// Mean of all entries, `(1, 1)`.
    pub fn mean_all(&self, a: Var) -> Var {
        let n = self.with_value(a, |av| av.len().max(1));
        let s = self.sum_all(a);
        self.scale(s, 1.0 / n as f32)
    }

    /// Sum of each row, `(rows, 1)`.
    pub fn sum_rows(&self, a: Var) -> Var {
        let out = self.with_value(a, |av| av.sum_axis(Axis(1)).insert_axis(Axis(1)));
        self.push(out, Op::SumRows(a))
    }

    /// Mean of each row, `(rows, 1)`.
    pub fn mean_rows(&self, a: Var) -> Var {
        let c = self.shape(a).1.max(1);
        let s = self.sum_rows(a);
        self.scale(s, 1.0 / c as f32)
    }

    /// The columns of `parts` side by side: `(rows, sum of cols)`.
    ///
    /// # Panics
    /// When `parts` is empty or the row counts differ.
    pub fn concat_cols(&self, parts: &[Var]) -> Var {
        assert!(!parts.is_empty(), "dmtl-tensor: concat_cols: no inputs");
        let out = {
            let nodes = self.nodes.borrow();
            let views: Vec<ArrayView2<'_, f32>> = parts
                .iter()
                .map(|v| match &nodes[v.0].value {
                    Value::Owned(a) => a.view(),
                    Value::Param(id) => self.store.value(*id),
                })
                .collect();
            let rows = views[0].nrows();
            if let Some(bad) = views.iter().find(|v| v.nrows() != rows) {
                panic!(
                    "dmtl-tensor: concat_cols: row counts differ ({rows} and {})",
                    bad.nrows()
                );
            }
            concat_rows_by_slices(&views)
        };
        self.push(out, Op::ConcatCols(parts.to_vec()))
    }

    /// Columns `start..start + len` of `a`.
    ///
    /// # Panics
    /// When the range exceeds the columns.
    pub fn slice_cols(&self, a: Var, start: usize, len: usize) -> Var {
        let out = self.with_value(a, |av| {
            assert!(
                start + len <= av.ncols(),
                "dmtl-tensor: slice_cols: columns {start}..{} of a {:?} matrix",
                start + len,
                shape(&av)
            );
            av.slice(s![.., start..start + len]).to_owned()
        });
        self.push(out, Op::SliceCols(a, start, len))
    }

    /// Splits `a` into consecutive column blocks of the given widths.
    pub fn split_cols(&self, a: Var, widths: &[usize]) -> Vec<Var> {
        let mut start = 0;
        widths
            .iter()
            .map(|&w| {
                let v = self.slice_cols(a, start, w);
                start += w;
                v
            })
            .collect()
    }

    /// Row-wise dot product of two `(rows, cols)` matrices: `(rows, 1)`.
    ///
    /// # Panics
    /// When the shapes differ.
    pub fn row_dot(&self, a: Var, b: Var) -> Var {
        let out = self.with2(a, b, |av, bv| {
            assert_eq!(
                shape(&av),
                shape(&bv),
                "dmtl-tensor: row_dot: shapes {:?} and {:?} differ",
                shape(&av),
                shape(&bv)
            );
            let mut out = Array2::<f32>::zeros((av.nrows(), 1));
            Zip::from(out.rows_mut())
                .and(av.rows())
                .and(bv.rows())
                .for_each(|mut o, x, y| o[0] = x.dot(&y));
            out
        });
        self.push(out, Op::RowDot(a, b))
    }

    /// MMoE's mixture `sum_k gate[:, k] * experts[k]`: `gate` is `(rows, n)`, each of the `n`
    /// experts `(rows, d)`; the result is `(rows, d)`.
    ///
    /// # Panics
    /// When the gate has not one column per expert, or the experts' shapes differ.
    pub fn mix_experts(&self, gate: Var, experts: &[Var]) -> Var {
        let (rows, n) = self.shape(gate);
        assert_eq!(
            n,
            experts.len(),
            "dmtl-tensor: mix_experts: gate has {n} columns for {} experts",
            experts.len()
        );
        let d = self.shape(experts[0]).1;
        let mut out = Array2::<f32>::zeros((rows, d));
        {
            let nodes = self.nodes.borrow();
            let view = |v: Var| match &nodes[v.0].value {
                Value::Owned(a) => a.view(),
                Value::Param(id) => self.store.value(*id),
            };
            let gv = view(gate);
            let evs: Vec<ArrayView2<'_, f32>> = experts.iter().map(|&e| view(e)).collect();
            for (k, ev) in evs.iter().enumerate() {
                assert_eq!(
                    shape(ev),
                    (rows, d),
                    "dmtl-tensor: mix_experts: expert {k} is {:?}, expected {:?}",
                    shape(ev),
                    (rows, d)
                );
            }
            // Row by row over contiguous slices (a column of the gate broadcast over a Zip is
            // slow); each entry still adds the experts in order k = 0, 1, ...
            let per_row = |(r, mut o): (usize, ndarray::ArrayViewMut1<'_, f32>)| {
                for (k, ev) in evs.iter().enumerate() {
                    let g = gv[[r, k]];
                    let er = ev.row(r);
                    match (o.as_slice_mut(), er.as_slice()) {
                        (Some(o), Some(e)) => o.iter_mut().zip(e).for_each(|(o, &e)| *o += g * e),
                        _ => o.iter_mut().zip(er.iter()).for_each(|(o, &e)| *o += g * e),
                    }
                }
            };
            if go_parallel(rows * d * n) {
                out.axis_iter_mut(Axis(0))
                    .into_par_iter()
                    .enumerate()
                    .for_each(per_row);
            } else {
                out.axis_iter_mut(Axis(0)).enumerate().for_each(per_row);
            }
        }
        self.push(out, Op::MixExperts(gate, experts.to_vec()))
    }

    /// The value of `a` with no gradient flowing back through it (stop-gradient).
    pub fn detach(&self, a: Var) -> Var {
        let v = self.value(a);
        self.push(v, Op::Detach)
    }

    /// A user-defined op: `value` is its output, computed by the caller from `inputs`, and
    /// `backward` its gradient rule (see [`BackwardFn`]). Losses are built this way.
    pub fn custom(&self, inputs: &[Var], value: Array2<f32>, backward: BackwardFn) -> Var {
        self.push(value, Op::Custom(inputs.to_vec(), backward))
    }

    /// Reverse-mode pass from the scalar `loss`: the gradient of `loss` with respect to every
    /// parameter it depends on (sparse for embedding tables).
    ///
    /// # Panics
    /// When `loss` is not `(1, 1)`.
    pub fn backward(&self, loss: Var) -> Grads {
        assert_eq!(
            self.shape(loss),
            (1, 1),
            "dmtl-tensor: backward: the loss must be (1, 1), got {:?}",
            self.shape(loss)
        );
        self.backward_with(loss, Array2::from_elem((1, 1), 1.0))
    }

    /// Reverse-mode pass seeded with `seed` as the gradient of `out` (vector-Jacobian product).
    pub fn backward_with(&self, out: Var, seed: Array2<f32>) -> Grads {
        let nodes = self.nodes.borrow();
        let mut grads: Vec<Option<Array2<f32>>> = (0..=out.0).map(|_| None).collect();
        grads[out.0] = Some(seed);
        let mut result = Grads::new(self.store.len());
        for i in (0..=out.0).rev() {
            let Some(dy) = grads[i].take() else { continue };
            if !nodes[i].needs_grad {
                continue;
            }
            self.backward_node(&nodes, i, dy, &mut grads, &mut result);
        }
        result
    }

    fn backward_node(
        &self,
        nodes: &[Node],
        i: usize,
        dy: Array2<f32>,
        grads: &mut [Option<Array2<f32>>],
        result: &mut Grads,
    ) {
        let val = |v: Var| -> ArrayView2<'_, f32> {
            match &nodes[v.0].value {
                Value::Owned(a) => a.view(),
                Value::Param(id) => self.store.value(*id),
            }
        };
        let y = val(Var(i));
        let mut send = |v: Var, g: Array2<f32>| {
            if !nodes[v.0].needs_grad {
                return;
            }
            match &mut grads[v.0] {
                Some(acc) => *acc += &g,
                slot @ None => *slot = Some(g),
            }
        };
        match &nodes[i].op {
            Op::Input | Op::Detach => {}
            Op::Param(id) => result.accumulate_dense(*id, dy),
            Op::Embedding { table, ids } => {
                let g = SparseGrad::coalesce(ids, dy.view());
                self.sparse_or_dense(*table, g, result);
            }
            Op::EmbeddingBag {
                table,
                ids,
                offsets,
                pooling,
            } => {
                let dim = dy.ncols();
                // Built by appending rows: no zero-fill and no temporary per id.
                let mut buf: Vec<f32> = Vec::with_capacity(ids.len() * dim);
                for b in 0..offsets.len() - 1 {
                    let (s0, s1) = (offsets[b] as usize, offsets[b + 1] as usize);
                    let scale = match pooling {
                        Pooling::Sum => 1.0,
                        Pooling::Mean => 1.0 / (s1 - s0).max(1) as f32,
                    };
                    let row = dy.row(b);
                    for _ in s0..s1 {
                        buf.extend(row.iter().map(|&x| x * scale));
                    }
                }
                let rows_grad =
                    Array2::from_shape_vec((ids.len(), dim), buf).expect("one row per id");
                let g = SparseGrad::coalesce(ids, rows_grad.view());
                self.sparse_or_dense(*table, g, result);
            }
            Op::MatMul(a, b, ta, tb) => {
                let (av, bv) = (val(*a), val(*b));
                // C = op(A) op(B). dop(A) = dC op(B)^T, dop(B) = op(A)^T dC.
                let opa = if *ta { av.reversed_axes() } else { av };
                let opb = if *tb { bv.reversed_axes() } else { bv };
                if nodes[a.0].needs_grad {
                    let g = if *ta {
                        gemm(opb, dy.t())
                    } else {
                        gemm(dy.view(), opb.t())
                    };
                    send(*a, g);
                }
                if nodes[b.0].needs_grad {
                    let g = if *tb {
                        gemm(dy.t(), opa)
                    } else {
                        gemm(opa.t(), dy.view())
                    };
                    send(*b, g);
                }
            }
            Op::Linear(x, w, b, act) => {
                let dz = match act.unary() {
                    None => dy,
                    Some(Unary::Relu) => {
                        let mut dz = dy;
                        // Contiguous slices vectorise; the generic Zip does not.
                        if let (Some(d), Some(yv)) = (dz.as_slice_mut(), y.as_slice()) {
                            for (d, &y) in d.iter_mut().zip(yv) {
                                *d = if y > 0.0 { *d } else { 0.0 };
                            }
                        } else {
                            Zip::from(&mut dz).and(&y).for_each(|d, &y| {
                                if y <= 0.0 {
                                    *d = 0.0
                                }
                            });
                        }
                        dz
                    }
                    // Sigmoid and tanh derivatives are functions of the output alone.
                    Some(u) => {
                        let mut dz = dy;
                        unary_grad_inplace(y, y, &mut dz, u);
                        dz
                    }
                };
                if nodes[x.0].needs_grad {
                    send(*x, gemm(dz.view(), val(*w)));
                }
                if nodes[w.0].needs_grad {
                    send(*w, gemm(dz.t(), val(*x)));
                }
                if let Some(b) = b {
                    send(*b, col_sums(dz.view()));
                }
            }
            Op::Add(a, b) => {
                let sb = shape(&val(*b));
                let (na, nb) = (nodes[a.0].needs_grad, nodes[b.0].needs_grad);
                if nb {
                    // The incoming gradient is only copied when both sides keep it whole.
                    if na || sb != shape(&dy.view()) {
                        send(*b, reduce_view(dy.view(), sb));
                    } else {
                        send(*b, dy);
                        return;
                    }
                }
                send(*a, dy);
            }
            Op::Sub(a, b) => {
                let sb = shape(&val(*b));
                if nodes[b.0].needs_grad {
                    let mut gb = reduce_view(dy.view(), sb);
                    gb.mapv_inplace(|x| -x);
                    send(*b, gb);
                }
                send(*a, dy);
            }
            Op::Mul(a, b) => {
                let (av, bv) = (val(*a), val(*b));
                if nodes[b.0].needs_grad {
                    send(*b, reduce_to(&dy * &av, shape(&bv)));
                }
                if nodes[a.0].needs_grad {
                    let mut ga = dy;
                    apply_broadcast(&mut ga, bv, |d, b| d * b);
                    send(*a, ga);
                }
            }
            Op::Scale(a, c) => {
                let mut g = dy;
                g.mapv_inplace(|x| x * c);
                send(*a, g)
            }
            Op::AddScalar(a, _) => send(*a, dy),
            Op::Unary(a, u) => {
                let mut g = dy;
                unary_grad_inplace(val(*a), y, &mut g, *u);
                send(*a, g)
            }
            Op::SoftmaxRows(a) => {
                // dx = y * dy - y * (sum_j dy_j y_j), row by row in place.
                let mut dx = dy;
                for (mut d, yr) in dx.rows_mut().into_iter().zip(y.rows()) {
                    match (d.as_slice_mut(), yr.as_slice()) {
                        (Some(d), Some(yr)) => {
                            d.iter_mut().zip(yr).for_each(|(d, &y)| *d *= y);
                            let s: f32 = d.iter().sum();
                            d.iter_mut().zip(yr).for_each(|(d, &y)| *d -= y * s);
                        }
                        _ => {
                            d.zip_mut_with(&yr, |d, &y| *d *= y);
                            let s = d.sum();
                            d.zip_mut_with(&yr, |d, &y| *d -= y * s);
                        }
                    }
                }
                send(*a, dx);
            }
            Op::SumAll(a) => {
                let sa = shape(&val(*a));
                send(*a, Array2::from_elem(sa, dy[[0, 0]]));
            }
            Op::SumRows(a) => {
                let sa = shape(&val(*a));
                send(
                    *a,
                    dy.broadcast(sa).expect("(rows, 1) broadcasts").to_owned(),
                );
            }
            Op::ConcatCols(parts) => {
                let mut start = 0;
                for p in parts {
                    let w = val(*p).ncols();
                    if nodes[p.0].needs_grad {
                        send(*p, dy.slice(s![.., start..start + w]).to_owned());
                    }
                    start += w;
                }
            }
            Op::SliceCols(a, start, len) => {
                let mut g = Array2::<f32>::zeros(val(*a).raw_dim());
                g.slice_mut(s![.., *start..*start + *len]).assign(&dy);
                send(*a, g);
            }
            Op::RowDot(a, b) => {
                let (av, bv) = (val(*a), val(*b));
                if nodes[a.0].needs_grad {
                    send(*a, &bv * &dy);
                }
                if nodes[b.0].needs_grad {
                    send(*b, &av * &dy);
                }
            }
            Op::MixExperts(gate, experts) => {
                let gv = val(*gate);
                let mut dgate = Array2::<f32>::zeros(gv.raw_dim());
                for (k, e) in experts.iter().enumerate() {
                    let ev = val(*e);
                    if nodes[e.0].needs_grad {
                        let mut ge = dy.clone();
                        apply_broadcast(&mut ge, gv.slice(s![.., k..k + 1]), |d, g| d * g);
                        send(*e, ge);
                    }
                    Zip::from(dgate.column_mut(k))
                        .and(dy.rows())
                        .and(ev.rows())
                        .for_each(|d, dyr, er| *d = dyr.dot(&er));
                }
                send(*gate, dgate);
            }
            Op::Custom(inputs, backward) => {
                let views: Vec<ArrayView2<'_, f32>> = inputs.iter().map(|v| val(*v)).collect();
                let gs = backward(&views, y, dy.view());
                assert_eq!(
                    gs.len(),
                    inputs.len(),
                    "dmtl-tensor: custom op returned {} gradients for {} inputs",
                    gs.len(),
                    inputs.len()
                );
                for (v, g) in inputs.iter().zip(gs) {
                    if let Some(g) = g {
                        assert_eq!(
                            g.raw_dim(),
                            views[inputs.iter().position(|x| x == v).unwrap()].raw_dim(),
                            "dmtl-tensor: custom op gradient shape differs from its input"
                        );
                        send(*v, g);
                    }
                }
            }
        }
    }

    fn sparse_or_dense(&self, table: ParamId, g: SparseGrad, result: &mut Grads) {
        match self.store.get(table).kind {
            ParamKind::Embedding => result.accumulate_sparse(table, g),
            ParamKind::Dense => {
                let vocab = self.store.value(table).nrows();
                result.accumulate_dense(table, g.to_dense(vocab));
            }
        }
    }
}
