//! Durable file output shared by every crate.
//!
//! [`write_atomic_with`] writes a file through a temporary file in the same folder (named
//! `.tmp-` and a random suffix, created with mode `0666` less the umask like any new file),
//! syncs it to disk and renames it over the target: a reader sees the old file or the new
//! one, never half of one. When the body fails, the old file is left untouched and the
//! temporary file is removed. Folders are not created: the target's folder must exist.
//!
//! ```
//! use std::io::Write;
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("out.txt");
//! dmtl_fs::write_atomic(&path, b"one")?;
//! dmtl_fs::write_atomic_with(&path, |f| f.write_all(b"two"))?;
//! assert_eq!(std::fs::read_to_string(&path)?, "two");
//! # Ok::<(), std::io::Error>(())
//! ```

#![deny(missing_docs)]

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Why [`write_atomic_with`] failed: the caller's body, or the file system around it.
#[derive(Debug)]
pub enum WriteError<E> {
    /// The body failed with its own error; the target was not touched.
    Body(E),
    /// Creating, syncing or renaming the temporary file failed; the target was not touched.
    Io(std::io::Error),
}

impl<E> WriteError<E> {
    /// One error of the caller's type: the body's as it is, the file system's through `io`
    /// (which typically adds the path, e.g. `|e| MyError::Io { path, source: e }`).
    pub fn merge(self, io: impl FnOnce(std::io::Error) -> E) -> E {
        match self {
            WriteError::Body(e) => e,
            WriteError::Io(e) => io(e),
        }
    }
}

impl From<WriteError<std::io::Error>> for std::io::Error {
    fn from(e: WriteError<std::io::Error>) -> Self {
        e.merge(|e| e)
    }
}

impl<E: std::fmt::Display> std::fmt::Display for WriteError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Body(e) => e.fmt(f),
            WriteError::Io(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for WriteError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WriteError::Body(e) => Some(e),
            WriteError::Io(e) => Some(e),
        }
    }
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes)).map_err(std::io::Error::from)
}

/// Writes `path` atomically with `body`, which writes the whole content into the temporary
/// file it is given (unbuffered: wrap it in a `BufWriter` for many small writes, and flush
/// it before returning).
///
/// The temporary file sits in `path`'s folder (the current folder for a bare file name),
/// named `.tmp-` and a random suffix, with mode `0666` less the umask on Unix (temporary
/// files are otherwise private, `0600`), so the result has the mode of a plainly created
/// file. After `body` it is synced and renamed over `path`. On any failure `path` keeps its
/// old content (or stays absent) and the temporary file is removed.
pub fn write_atomic_with<E>(
    path: &Path,
    body: impl FnOnce(&mut File) -> Result<(), E>,
) -> Result<(), WriteError<E>> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(WriteError::Io)?;
    // On an early return `tmp` is dropped, which deletes the temporary file.
    body(tmp.as_file_mut()).map_err(WriteError::Body)?;
    tmp.as_file().sync_all().map_err(WriteError::Io)?;
    tmp.persist(path).map_err(|e| WriteError::Io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names in `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let entries = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name());
        let names: std::collections::BTreeSet<_> = entries.collect();
        names
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn content_is_replaced_and_no_temporary_file_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "one");
        write_atomic(&p, b"two, longer").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two, longer");
        write_atomic(&p, b"3").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "3");
        assert_eq!(listing(dir.path()), ["a.txt"]);
    }

    #[test]
    fn the_body_writes_into_a_dot_tmp_file_beside_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic_with(&p, |f| {
            let names = listing(dir.path());
            assert_eq!(names.len(), 1, "{names:?}");
            assert!(names[0].starts_with(".tmp-"), "{names:?}");
            assert!(!p.exists(), "the target appears only at the rename");
            f.write_all(b"x")
        })
        .unwrap();
        assert_eq!(listing(dir.path()), ["a.txt"]);
    }

    #[derive(Debug, PartialEq)]
    struct Refused(u32);

    #[test]
    fn a_failing_body_keeps_the_old_file_and_removes_the_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"old").unwrap();
        let err = write_atomic_with(&p, |f| {
            f.write_all(b"half of the new").unwrap();
            Err(Refused(7))
        })
        .map_err(|e| e.merge(|io| panic!("no file-system error expected: {io}")))
        .unwrap_err();
        assert_eq!(err, Refused(7), "the body's own error comes back");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(listing(dir.path()), ["a.txt"]);
        // A new file that fails is never created.
        let q = dir.path().join("b.txt");
        let err = write_atomic_with(&q, |_| Err(std::io::Error::other("full"))).unwrap_err();
        assert!(matches!(err, WriteError::Body(_)));
        assert_eq!(listing(dir.path()), ["a.txt"]);
    }

    #[test]
    fn a_missing_folder_is_a_file_system_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("absent").join("a.txt");
        let err = write_atomic_with(&p, |_| Ok::<(), Refused>(())).unwrap_err();
        match err {
            WriteError::Io(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
            WriteError::Body(e) => panic!("the body did not fail: {e:?}"),
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_file_gets_the_mode_of_a_plainly_created_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        File::create(&plain).unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), mode(&plain));
    }
}
