//! Forward pass of the dense ops: products, the fused linear layer, element-wise and
//! broadcast arithmetic, reductions, column blocks, the expert mixture, custom ops.

use ndarray::{s, Array2, ArrayView2, Axis, Zip};

use super::kernels::{
    apply_broadcast, concat_rows_by_slices, for_each_row, gemm_in, go_parallel, map_unary, shape,
};
use super::{Activation, BackwardFn, Graph, Op, Unary, Var};

impl Graph<'_> {
    /// Matrix product `a . b` by BLAS GEMM (bf16 operands with f32 accumulation on a tape
    /// built [`Graph::with_precision`] bf16).
    ///
    /// # Shapes
    /// `a`: `(m, k)`, `b`: `(k, n)` -> `(m, n)`.
    ///
    /// # Panics
    /// When the inner dimensions differ.
    pub fn matmul(&self, a: Var, b: Var) -> Var {
        self.matmul_t(a, b, false, false)
    }

    /// `op(a) . op(b)` where `op` transposes when `ta` / `tb` is set, without copying.
    ///
    /// # Shapes
    /// `op(a)`: `(m, k)`, `op(b)`: `(k, n)` -> `(m, n)`; `a` is `(k, m)` when `ta` is set, `b`
    /// is `(n, k)` when `tb` is.
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
            gemm_in(self.precision, av, bv)
        });
        self.push(out, Op::MatMul(a, b, ta, tb))
    }

    /// Fused `act(x . w^T + b)`, the weight stored as in PyTorch.
    ///
    /// # Shapes
    /// `x`: `(batch, in)`, `w`: `(out, in)`, `b`: `(1, out)` -> `(batch, out)`.
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
            gemm_in(self.precision, xv, wv.t())
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

    /// `a + b`, `b` broadcast over rows, columns or both.
    ///
    /// # Shapes
    /// `a`: `(rows, cols)`, `b`: `(rows, cols)`, `(1, cols)`, `(rows, 1)` or `(1, 1)` ->
    /// `(rows, cols)`.
    ///
    /// # Panics
    /// When `b` has none of those shapes.
    pub fn add(&self, a: Var, b: Var) -> Var {
        let out = self.binary("add", a, b, |x, y| x + y);
        self.push(out, Op::Add(a, b))
    }

    /// `a - b`, broadcasting `b` as [`Graph::add`] does.
    ///
    /// # Shapes
    /// As [`Graph::add`]: `a`: `(rows, cols)`, `b` broadcast to it -> `(rows, cols)`.
    ///
    /// # Panics
    /// When `b` does not broadcast to `a`'s shape.
    pub fn sub(&self, a: Var, b: Var) -> Var {
        let out = self.binary("sub", a, b, |x, y| x - y);
        self.push(out, Op::Sub(a, b))
    }

    /// `a * b` element-wise, broadcasting `b` as [`Graph::add`] does.
    ///
    /// # Shapes
    /// As [`Graph::add`]: `a`: `(rows, cols)`, `b` broadcast to it -> `(rows, cols)`.
    ///
    /// # Panics
    /// When `b` does not broadcast to `a`'s shape.
    pub fn mul(&self, a: Var, b: Var) -> Var {
        let out = self.binary("mul", a, b, |x, y| x * y);
        self.push(out, Op::Mul(a, b))
    }

    /// `a * c` for a constant `c`.
    ///
    /// # Shapes
    /// `a`: `(rows, cols)` -> `(rows, cols)`.
    pub fn scale(&self, a: Var, c: f32) -> Var {
        let out = self.with_value(a, |av| av.mapv(|x| x * c));
        self.push(out, Op::Scale(a, c))
    }

    /// `a + c` for a constant `c`.
    ///
    /// # Shapes
    /// `a`: `(rows, cols)` -> `(rows, cols)`.
    pub fn add_scalar(&self, a: Var, c: f32) -> Var {
        let out = self.with_value(a, |av| av.mapv(|x| x + c));
        self.push(out, Op::AddScalar(a, c))
    }

    /// An element-wise function; the methods below are its named cases.
    ///
    /// # Shapes
    /// `a`: `(rows, cols)` -> `(rows, cols)`, here and in every element-wise method below.
    pub fn unary(&self, a: Var, u: Unary) -> Var {
        let out = self.with_value(a, |av| map_unary(av, u));
        self.push(out, Op::Unary(a, u))
    }

    /// `max(a, 0)`; `a`: `(rows, cols)` -> `(rows, cols)`.
    pub fn relu(&self, a: Var) -> Var {
        self.unary(a, Unary::Relu)
    }

    /// `1 / (1 + e^-a)`, stable; `a`: `(rows, cols)` -> `(rows, cols)`.
    pub fn sigmoid(&self, a: Var) -> Var {
        self.unary(a, Unary::Sigmoid)
    }

    /// `tanh a`; `a`: `(rows, cols)` -> `(rows, cols)`.
    pub fn tanh(&self, a: Var) -> Var {
        self.unary(a, Unary::Tanh)
    }

    /// `log sigmoid(a)`, finite for any finite `a`; `a`: `(rows, cols)` -> `(rows, cols)`.
    pub fn log_sigmoid(&self, a: Var) -> Var {
        self.unary(a, Unary::LogSigmoid)
    }

    /// `log(1 + e^a)`, finite for any finite `a`; `a`: `(rows, cols)` -> `(rows, cols)`.
    pub fn softplus(&self, a: Var) -> Var {
        self.unary(a, Unary::Softplus)
    }

    /// `e^a`; `a`: `(rows, cols)` -> `(rows, cols)`.
    pub fn exp(&self, a: Var) -> Var {
        self.unary(a, Unary::Exp)
    }

    /// `ln a`; `a`: `(rows, cols)` -> `(rows, cols)`.
    pub fn log(&self, a: Var) -> Var {
        self.unary(a, Unary::Log)
    }

    /// `-a`; `a`: `(rows, cols)` -> `(rows, cols)`.
    pub fn neg(&self, a: Var) -> Var {
        self.unary(a, Unary::Neg)
    }

    /// `a^2`; `a`: `(rows, cols)` -> `(rows, cols)`.
    pub fn square(&self, a: Var) -> Var {
        self.unary(a, Unary::Square)
    }

    /// Softmax of each row (max-subtracted, so stable for large entries).
    ///
    /// # Shapes
    /// `a`: `(rows, cols)` -> `(rows, cols)`.
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

    /// Sum of all entries.
    ///
    /// # Shapes
    /// `a`: `(rows, cols)` -> `(1, 1)`.
    pub fn sum_all(&self, a: Var) -> Var {
        let out = self.with_value(a, |av| Array2::from_elem((1, 1), av.sum()));
        self.push(out, Op::SumAll(a))
    }

    /// Mean of all entries (0 for an empty `a`).
    ///
    /// # Shapes
    /// `a`: `(rows, cols)` -> `(1, 1)`.
    pub fn mean_all(&self, a: Var) -> Var {
        let n = self.with_value(a, |av| av.len().max(1));
        let s = self.sum_all(a);
        self.scale(s, 1.0 / n as f32)
    }

    /// Sum of each row.
    ///
    /// # Shapes
    /// `a`: `(rows, cols)` -> `(rows, 1)`.
    pub fn sum_rows(&self, a: Var) -> Var {
        let out = self.with_value(a, |av| av.sum_axis(Axis(1)).insert_axis(Axis(1)));
        self.push(out, Op::SumRows(a))
    }

    /// Mean of each row.
    ///
    /// # Shapes
    /// `a`: `(rows, cols)` -> `(rows, 1)`.
    pub fn mean_rows(&self, a: Var) -> Var {
        let c = self.shape(a).1.max(1);
        let s = self.sum_rows(a);
        self.scale(s, 1.0 / c as f32)
    }

    /// The columns of `parts` side by side.
    ///
    /// # Shapes
    /// `parts`: `(rows, c_1)`, `(rows, c_2)`, ... -> `(rows, c_1 + c_2 + ...)`.
    ///
    /// # Panics
    /// When `parts` is empty or the row counts differ.
    pub fn concat_cols(&self, parts: &[Var]) -> Var {
        assert!(!parts.is_empty(), "dmtl-tensor: concat_cols: no inputs");
        let out = {
            let nodes = self.nodes.borrow();
            let views: Vec<ArrayView2<'_, f32>> = parts
                .iter()
                .map(|v| nodes[v.0].value.view(self.store))
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
    /// # Shapes
    /// `a`: `(rows, cols)` -> `(rows, len)`.
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
    ///
    /// # Shapes
    /// `a`: `(rows, cols)` -> `(rows, widths[0])`, `(rows, widths[1])`, ...
    ///
    /// # Panics
    /// When the widths add up to more than `cols`.
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

    /// Row-wise dot product.
    ///
    /// # Shapes
    /// `a`: `(rows, cols)`, `b`: `(rows, cols)` -> `(rows, 1)`.
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

    /// MMoE's mixture `sum_k gate[:, k] * experts[k]`.
    ///
    /// # Shapes
    /// `gate`: `(rows, n)`, `experts`: `n` of `(rows, d)` -> `(rows, d)`.
    ///
    /// # Panics
    /// When the gate has not one column per expert, there is no expert, or the experts'
    /// shapes differ.
    pub fn mix_experts(&self, gate: Var, experts: &[Var]) -> Var {
        let (rows, n) = self.shape(gate);
        assert_eq!(
            n,
            experts.len(),
            "dmtl-tensor: mix_experts: gate has {n} columns for {} experts",
            experts.len()
        );
        let d = self.shape(experts[0]).1;
        // SAFETY: `per_row` below writes every entry of its row (expert 0's term) before
        // reading any.
        let mut out = unsafe { crate::uninit::matrix(rows, d) };
        {
            let nodes = self.nodes.borrow();
            let view = |v: Var| nodes[v.0].value.view(self.store);
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
            // slow); each entry still adds the experts in order k = 0, 1, ... onto 0 (expert
            // 0's term is written as `0 + g e`, the sum a zeroed start would give, sign of
            // zero included).
            let per_row = |(r, mut o): (usize, ndarray::ArrayViewMut1<'_, f32>)| {
                for (k, ev) in evs.iter().enumerate() {
                    let g = gv[[r, k]];
                    let er = ev.row(r);
                    let add = |o: &mut f32, e: f32| {
                        let acc = if k == 0 { 0.0 } else { *o };
                        *o = acc + g * e;
                    };
                    match (o.as_slice_mut(), er.as_slice()) {
                        (Some(o), Some(e)) => o.iter_mut().zip(e).for_each(|(o, &e)| add(o, e)),
                        _ => o.iter_mut().zip(er.iter()).for_each(|(o, &e)| add(o, e)),
                    }
                }
            };
            for_each_row(&mut out, go_parallel(rows * d * n), per_row);
        }
        self.push(out, Op::MixExperts(gate, experts.to_vec()))
    }

    /// The value of `a` with no gradient flowing back through it (stop-gradient).
    ///
    /// # Shapes
    /// `a`: `(rows, cols)` -> `(rows, cols)`.
    pub fn detach(&self, a: Var) -> Var {
        let v = self.value(a);
        self.push(v, Op::Detach)
    }

    /// A user-defined op: `value` is its output, computed by the caller from `inputs`, and
    /// `backward` its gradient rule (see [`BackwardFn`]). Losses are built this way.
    ///
    /// # Shapes
    /// `inputs`: any shapes; `value`: any `(rows, cols)`, the op's output. The rule must
    /// return one gradient per input, shaped like it ([`Graph::backward`] panics otherwise).
    pub fn custom(&self, inputs: &[Var], value: Array2<f32>, backward: BackwardFn) -> Var {
        self.push(value, Op::Custom(inputs.to_vec(), backward))
    }
}
