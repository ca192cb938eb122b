//! Atomic file output.

use std::io::Write;
use std::path::Path;

use crate::error::TensorError;

/// Writes `bytes` to `path` through a temporary file in the same directory that is synced and
/// renamed over `path`: readers see the old file or the new one, never a half-written one.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), TensorError> {
    let io_err = |source| TensorError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}
