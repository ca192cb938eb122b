//! The tape: its nodes and their values, inputs and parameters, and reading values back.

use ndarray::{Array2, ArrayView2};

use super::kernels::shape;
use super::{Op, Var};
use crate::params::{ParamId, ParamStore};
use crate::precision::Precision;

/// A node's value: computed by its op, or a parameter read from the store without a copy.
pub(super) enum Value {
    Owned(Array2<f32>),
    Param(ParamId),
}

impl Value {
    /// The value as a view, a parameter's borrowed from `store`.
    pub(super) fn view<'a>(&'a self, store: &'a ParamStore) -> ArrayView2<'a, f32> {
        match self {
            Value::Owned(a) => a.view(),
            Value::Param(id) => store.value(*id),
        }
    }
}

/// One entry of the tape.
pub(super) struct Node {
    pub(super) value: Value,
    pub(super) op: Op,
    /// Whether a gradient flows into this node (it depends on a parameter).
    pub(super) needs_grad: bool,
}

/// A tape of operations over the parameters of one [`ParamStore`].
///
/// Build a graph per step, run the forward pass through its methods, call
/// [`Graph::backward`] on the scalar loss, then hand the [`Grads`](crate::Grads) to an
/// optimizer. Every value is a 2-d `f32` matrix, `(rows, cols)`; each method's `# Shapes`
/// section gives its inputs' and output's shapes, and its `# Panics` section the shape errors
/// it panics on (besides a [`Var`] of another graph, see there).
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
    pub(super) store: &'p ParamStore,
    pub(super) nodes: std::cell::RefCell<Vec<Node>>,
    /// The arithmetic of the dense products, as this CPU runs it.
    pub(super) precision: Precision,
}

impl<'p> Graph<'p> {
    /// An empty tape over `store`'s parameters.
    pub fn new(store: &'p ParamStore) -> Self {
        Graph::with_precision(store, Precision::F32)
    }

    /// An empty tape over `store`'s parameters whose dense products ([`Op::MatMul`],
    /// [`Op::Linear`], forward and backward) run in `precision`, as this CPU can
    /// ([`Precision::on_this_cpu`]: bf16 becomes f32 without AVX-512 BF16).
    pub fn with_precision(store: &'p ParamStore, precision: Precision) -> Self {
        Graph {
            store,
            nodes: std::cell::RefCell::new(Vec::with_capacity(64)),
            precision: precision.on_this_cpu(),
        }
    }

    /// The arithmetic this tape's dense products run in.
    pub fn precision(&self) -> Precision {
        self.precision
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

    pub(super) fn push(&self, value: Array2<f32>, op: Op) -> Var {
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
    ///
    /// # Shapes
    /// `v`: any `(rows, cols)`, passed to `f` as it is.
    ///
    /// # Panics
    /// When `f` records a node on this graph (the tape is borrowed while `f` runs).
    pub fn with_value<R>(&self, v: Var, f: impl FnOnce(ArrayView2<'_, f32>) -> R) -> R {
        let nodes = self.nodes.borrow();
        f(nodes[v.0].value.view(self.store))
    }

    /// A copy of the value of `v`.
    ///
    /// # Shapes
    /// `v`: `(rows, cols)` -> `(rows, cols)`.
    pub fn value(&self, v: Var) -> Array2<f32> {
        self.with_value(v, |a| a.to_owned())
    }

    /// The value of `v`, moved out of the graph without a copy (a parameter's is copied);
    /// for the output of an inference pass; the graph is consumed.
    ///
    /// # Shapes
    /// `v`: `(rows, cols)` -> `(rows, cols)`.
    pub fn take_value(self, v: Var) -> Array2<f32> {
        let mut nodes = self.nodes.into_inner();
        match std::mem::replace(&mut nodes[v.0].value, Value::Owned(Array2::zeros((0, 0)))) {
            Value::Owned(a) => a,
            Value::Param(id) => self.store.value(id).to_owned(),
        }
    }

    /// The shape `(rows, cols)` of `v`.
    ///
    /// # Shapes
    /// `v`: `(rows, cols)` -> `(rows, cols)` as a pair.
    pub fn shape(&self, v: Var) -> (usize, usize) {
        self.with_value(v, |a| shape(&a))
    }

    /// The single entry of a `(1, 1)` value (a loss).
    ///
    /// # Shapes
    /// `v`: `(1, 1)`.
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

    pub(super) fn with2<R>(
        &self,
        a: Var,
        b: Var,
        f: impl FnOnce(ArrayView2<'_, f32>, ArrayView2<'_, f32>) -> R,
    ) -> R {
        self.with_value(a, |av| self.with_value(b, |bv| f(av, bv)))
    }

    /// A constant input; no gradient flows into it.
    ///
    /// # Shapes
    /// `value`: `(rows, cols)` -> `(rows, cols)`.
    pub fn input(&self, value: Array2<f32>) -> Var {
        self.push(value, Op::Input)
    }

    /// A parameter of the store, read without copying.
    ///
    /// # Shapes
    /// The parameter's: `(out, in)` for a weight, `(1, out)` for a bias, `(vocab, dim)` for
    /// a table.
    ///
    /// # Panics
    /// When `id` is not a parameter of this graph's store (at the first read of the value).
    pub fn param(&self, id: ParamId) -> Var {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node {
            value: Value::Param(id),
            op: Op::Param(id),
            needs_grad: true,
        });
        Var(nodes.len() - 1)
    }
}
