//! Atomic file output through [`dmtl_fs`], with errors naming the path.

use std::path::Path;

use crate::error::TensorError;

/// Writes `bytes` to `path` through a temporary file in the same directory that is synced and
/// renamed over `path`: readers see the old file or the new one, never a half-written one,
/// and a failed write leaves the old file and no temporary file behind
/// ([`dmtl_fs::write_atomic`]).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), TensorError> {
    dmtl_fs::write_atomic(path, bytes).map_err(|source| TensorError::Io {
        path: path.to_path_buf(),
        source,
    })
}
