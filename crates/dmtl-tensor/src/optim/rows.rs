//! Row-wise updates shared by SGD and Adagrad: the L2 term added to a gradient, and an
//! element-wise rule applied to every row a gradient touches.

use ndarray::{Array2, ArrayViewMut1};

use crate::params::Grad;

/// Adds `weight_decay * param` to the gradient rows of `rows` (all rows for a dense gradient).
pub(super) fn decayed(g: &Grad, value: &Array2<f32>, wd: f32) -> Array2<f32> {
    match g {
        Grad::Dense(d) => {
            if wd == 0.0 {
                d.clone()
            } else {
                d + &value.mapv(|x| x * wd)
            }
        }
        Grad::Sparse(s) => {
            let mut out = s.values.clone();
            if wd != 0.0 {
                for (k, &r) in s.rows.iter().enumerate() {
                    let mut row = out.row_mut(k);
                    row.scaled_add(wd, &value.row(r as usize));
                }
            }
            out
        }
    }
}

/// Applies `f(param_row, grad_row, state_rows...)` to the rows a gradient touches.
pub(super) fn for_rows(
    g: &Grad,
    value: &mut Array2<f32>,
    gvals: &Array2<f32>,
    states: &mut [&mut Array2<f32>],
    f: impl Fn(ArrayViewMut1<'_, f32>, ndarray::ArrayView1<'_, f32>, &mut [ArrayViewMut1<'_, f32>])
        + Sync,
) {
    match g {
        Grad::Dense(_) => {
            // Flatten to one long row: every element is updated independently.
            let n = value.len();
            let v = value
                .view_mut()
                .into_shape_with_order(n)
                .expect("standard layout");
            let gv = gvals
                .view()
                .into_shape_with_order(n)
                .expect("standard layout");
            let mut st: Vec<ArrayViewMut1<'_, f32>> = states
                .iter_mut()
                .map(|s| {
                    s.view_mut()
                        .into_shape_with_order(n)
                        .expect("standard layout")
                })
                .collect();
            f(v, gv, &mut st);
        }
        Grad::Sparse(s) => {
            for (k, &r) in s.rows.iter().enumerate() {
                let r = r as usize;
                let mut st: Vec<ArrayViewMut1<'_, f32>> =
                    states.iter_mut().map(|s| s.row_mut(r)).collect();
                f(value.row_mut(r), gvals.row(k), &mut st);
            }
        }
    }
}
