//! Atomic file output through [`dmtl_fs`], with this crate's errors naming the path.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{DataError, Result};

/// Writes `path` through `body` (buffered), atomically.
pub(crate) fn write_atomic<F>(path: &Path, body: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
{
    dmtl_fs::write_atomic_with(path, |file| {
        let mut w = BufWriter::new(file);
        body(&mut w)?;
        w.flush()
    })
    .map_err(|e| DataError::io(path, e.into()))
}

/// Like [`write_atomic`] but `body` gets the raw file and returns this crate's errors.
pub(crate) fn write_atomic_with<F>(path: &Path, body: F) -> Result<()>
where
    F: FnOnce(&mut std::fs::File) -> Result<()>,
{
    dmtl_fs::write_atomic_with(path, body).map_err(|e| e.merge(|e| DataError::io(path, e)))
}
