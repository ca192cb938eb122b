//! The backward pass: the tape walked once in reverse, and the one exhaustive `match` holding
//! every op's gradient rule.

use ndarray::{s, Array2, ArrayView2, Zip};

use super::kernels::{
    apply_broadcast, col_sums, gemm_in, reduce_to, reduce_view, shape, unary_grad_inplace,
};
use super::tape::Node;
use super::{Graph, Op, Pooling, Unary, Var};
use crate::params::{Grads, ParamId, ParamKind, SparseGrad};

impl Graph<'_> {
    /// Reverse-mode pass from the scalar `loss`: the gradient of `loss` with respect to every
    /// parameter it depends on (sparse for embedding tables).
    ///
    /// # Shapes
    /// `loss`: `(1, 1)`; each parameter's gradient has the parameter's shape (a sparse one:
    /// `(touched rows, dim)`).
    ///
    /// # Panics
    /// When `loss` is not `(1, 1)`, or a custom op's rule returns not one gradient per input
    /// or one not shaped like its input.
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
    ///
    /// # Shapes
    /// `out`: `(rows, cols)`, `seed`: `(rows, cols)`; gradients as [`Graph::backward`]'s.
    ///
    /// # Panics
    /// When `seed` is not shaped like `out` (in the first gradient rule that meets it), or as
    /// [`Graph::backward`] on a custom op's rule.
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
        let val = |v: Var| -> ArrayView2<'_, f32> { nodes[v.0].value.view(self.store) };
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
                let p = self.precision;
                let (av, bv) = (val(*a), val(*b));
                // C = op(A) op(B). dop(A) = dC op(B)^T, dop(B) = op(A)^T dC.
                let opa = if *ta { av.reversed_axes() } else { av };
                let opb = if *tb { bv.reversed_axes() } else { bv };
                if nodes[a.0].needs_grad {
                    let g = if *ta {
                        gemm_in(p, opb, dy.t())
                    } else {
                        gemm_in(p, dy.view(), opb.t())
                    };
                    send(*a, g);
                }
                if nodes[b.0].needs_grad {
                    let g = if *tb {
                        gemm_in(p, dy.t(), opa)
                    } else {
                        gemm_in(p, opa.t(), dy.view())
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
                let p = self.precision;
                if nodes[x.0].needs_grad {
                    send(*x, gemm_in(p, dz.view(), val(*w)));
                }
                if nodes[w.0].needs_grad {
                    send(*w, gemm_in(p, dz.t(), val(*x)));
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
