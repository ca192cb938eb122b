//! The loops and products both passes share: element-wise maps, broadcasts and their
//! reductions, GEMM, column concatenation; parallel over Rayon above a size threshold.

pub(crate) use crate::threads::for_each_row;
use ndarray::{Array2, ArrayView2, Axis, Zip};
use rayon::prelude::*;

use super::Unary;
use crate::precision::Precision;

/// Above this many entries element-wise work runs on Rayon's pool.
const PAR_MIN: usize = 1 << 15;

/// Whether element-wise work on `len` entries should be split over Rayon's pool: only when it
/// is large and the caller is not already a task of that pool (a data-parallel shard, say),
/// where splitting again would only add scheduling to a core that is already busy.
pub(super) fn go_parallel(len: usize) -> bool {
    len >= PAR_MIN && rayon::current_thread_index().is_none()
}

pub(super) fn shape(a: &ArrayView2<'_, f32>) -> (usize, usize) {
    (a.nrows(), a.ncols())
}

pub(super) fn map_unary(x: ArrayView2<'_, f32>, u: Unary) -> Array2<f32> {
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
pub(super) fn unary_grad_inplace(
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
pub(super) fn col_sums(g: ArrayView2<'_, f32>) -> Array2<f32> {
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
pub(super) fn apply_broadcast(
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
        for_each_row(out, go_parallel(r * c), per_row);
    } else {
        let y = b[[0, 0]];
        out.mapv_inplace(|o| f(o, y));
    }
}

/// Sums `g` down to `shape` (undoing a row or column broadcast).
pub(super) fn reduce_view(g: ArrayView2<'_, f32>, shape: (usize, usize)) -> Array2<f32> {
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

/// [`reduce_view`] of an owned gradient, which is returned as it is when no broadcast is
/// undone.
pub(super) fn reduce_to(g: Array2<f32>, shape: (usize, usize)) -> Array2<f32> {
    if g.dim() == shape {
        g
    } else {
        reduce_view(g.view(), shape)
    }
}

/// [`gemm`] in `precision`: bf16 operands with f32 accumulation for [`Precision::Bf16`]
/// (chosen only where the CPU runs it, see [`super::Graph::with_precision`]).
pub(super) fn gemm_in(
    precision: Precision,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
) -> Array2<f32> {
    match precision {
        Precision::F32 => gemm(a, b),
        Precision::Bf16 => crate::bf16_gemm::matmul(a, b),
    }
}

pub(super) fn gemm(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f32> {
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
pub(super) fn concat_rows_by_slices(views: &[ArrayView2<'_, f32>]) -> Array2<f32> {
    let rows = views[0].nrows();
    let cols: usize = views.iter().map(|v| v.ncols()).sum();
    // SAFETY: the loop below writes every column of every row (the views' widths sum to
    // `cols`).
    let mut out = unsafe { crate::uninit::matrix(rows, cols) };
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
