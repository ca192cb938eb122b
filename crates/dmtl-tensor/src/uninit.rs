//! Buffers whose every entry the caller writes before reading any, so the zero-fill a fresh
//! buffer would get is skipped (it was a few percent of a training step: outputs of GEMMs,
//! concatenations and mixtures, packed bf16 operands, coalesced gradients).

use ndarray::Array2;

/// A `len`-long vector of a plain number type with unspecified contents.
///
/// # Safety
/// The caller must write every entry before reading it.
pub(crate) unsafe fn vec<T: Copy + Plain>(len: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: `T` (f32, u32) has no invalid bit patterns, and the caller writes every entry
    // before reading it.
    #[allow(clippy::uninit_vec)]
    unsafe {
        v.set_len(len)
    };
    v
}

/// A `(rows, cols)` row-major f32 matrix with unspecified contents.
///
/// # Safety
/// The caller must write every entry before reading it.
pub(crate) unsafe fn matrix(rows: usize, cols: usize) -> Array2<f32> {
    // SAFETY: passed on to the caller.
    let v = unsafe { vec::<f32>(rows * cols) };
    Array2::from_shape_vec((rows, cols), v).expect("rows * cols entries")
}

/// Number types with no invalid bit patterns: f32 and u32.
pub(crate) trait Plain {}
impl Plain for f32 {}
impl Plain for u32 {}
