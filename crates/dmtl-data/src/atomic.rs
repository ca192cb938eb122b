//! Atomic file output: write to a temporary file in the target's directory, then rename, so a
//! reader never sees a half-written file and a failed write leaves the old file in place.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{DataError, Result};

/// Writes `path` through `body`, atomically.
pub(crate) fn write_atomic<F>(path: &Path, body: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
{
    write_atomic_with(path, |file| {
        let mut w = BufWriter::new(file);
        body(&mut w).map_err(|e| DataError::io(path, e))?;
        w.flush().map_err(|e| DataError::io(path, e))
    })
}

/// Like [`write_atomic`] but `body` gets the raw file and returns this crate's errors.
pub(crate) fn write_atomic_with<F>(path: &Path, body: F) -> Result<()>
where
    F: FnOnce(&mut std::fs::File) -> Result<()>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    // Temporary files are created private (0600) by default; an output is created like any
    // file instead (0666 less the umask), so it keeps that mode after the rename.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| DataError::io(path, e))?;
    body(tmp.as_file_mut())?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| DataError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| DataError::io(path, e.error))?;
    Ok(())
}
