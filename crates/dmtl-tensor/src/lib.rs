//! Reverse-mode automatic differentiation over BLAS-backed ndarray.

// Links the system OpenBLAS into every binary that uses this crate.
#[cfg(feature = "blas")]
extern crate blas_src;

pub mod threads;
