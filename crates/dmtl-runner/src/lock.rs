//! The lock that keeps one writer (or any number of readers) per run folder, and the note
//! naming the build folders that killed runs left beside a run folder.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::paths::{parent_of, resolve};

/// An advisory lock on a run folder, held until dropped: one writer (`train`, `train
/// --resume`, `demo`: exclusive) or any number of readers (`score`, `export`, `retrieve`:
/// shared), so that two runs never mix in one folder and a run is never replaced under a
/// reader.
///
/// The lock is the file `.<name>.lock` beside the folder (the folder itself is swapped whole
/// when a run commits, so it cannot carry the lock); a writer writes its process id into it.
/// The lock is taken at once or refused: the error names the folder and the holder's process id
/// when it is known. The lock file is removed when its last holder lets go.
#[derive(Debug)]
pub struct RunLock {
    file: std::fs::File,
    path: PathBuf,
    exclusive: bool,
}

impl RunLock {
    /// Takes the exclusive lock of the run folder `dir` (which need not exist yet) for
    /// `command` (named to whoever is refused).
    pub fn exclusive(dir: &Path, command: &str) -> Result<RunLock> {
        let lock = RunLock::take(dir, true)?;
        let mut f = &lock.file;
        let note = format!("{}\n{command}\n", std::process::id());
        f.set_len(0)
            .and_then(|_| f.rewind())
            .and_then(|_| f.write_all(note.as_bytes()))
            .with_context(|| format!("writing {}", lock.path.display()))?;
        Ok(lock)
    }

    /// Takes a shared lock of the run folder `dir`. `None` when `dir` is not a folder (the
    /// reader says so itself), or where no lock file can be created beside it (a read-only file
    /// system: nobody can write the run there either).
    pub fn shared(dir: &Path) -> Result<Option<RunLock>> {
        if !dir.is_dir() {
            return Ok(None);
        }
        match RunLock::take(dir, false) {
            Ok(l) => Ok(Some(l)),
            Err(e) => match e.downcast_ref::<std::io::Error>().map(|e| e.kind()) {
                Some(std::io::ErrorKind::ReadOnlyFilesystem)
                | Some(std::io::ErrorKind::PermissionDenied) => Ok(None),
                _ => Err(e),
            },
        }
    }

    fn take(dir: &Path, exclusive: bool) -> Result<RunLock> {
        let target = resolve(dir);
        let parent = parent_of(&target);
        let name = target
            .file_name()
            .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
        let path = parent.join(format!(".{name}.lock"));
        if exclusive {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        // The previous holder may remove the file between our open and our lock: then the
        // lock is on a file nobody else sees, and the open is retried.
        for _ in 0..100 {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            let taken = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match taken {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    bail!("{}", busy_message(dir, &file, exclusive))
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("locking the run folder {}", dir.display())))
                }
            }
            if still_there(&file, &path) {
                return Ok(RunLock {
                    file,
                    path,
                    exclusive,
                });
            }
        }
        bail!("{}: could not lock the run folder", dir.display())
    }
}

/// Whether the open `file` is still the one at `path`.
fn still_there(file: &std::fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
    }
}

/// Why a lock of `dir` was refused: the writer's process id and command when the lock file
/// names a live one.
fn busy_message(dir: &Path, mut file: &std::fs::File, exclusive: bool) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let mut lines = text.lines();
    let holder = lines
        .next()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .filter(|pid| !cfg!(target_os = "linux") || Path::new(&format!("/proc/{pid}")).exists())
        .map(|pid| (pid, lines.next().unwrap_or("dmtl").to_string()));
    let want = if exclusive {
        "cannot write it"
    } else {
        "cannot read it"
    };
    match holder {
        Some((pid, command)) => format!(
            "{}: the run folder is in use by process {pid} (`{command}`), so this command {want} \
             now; wait for that process to end",
            dir.display()
        ),
        None => format!(
            "{}: the run folder is being read by another dmtl process (score, export or \
             retrieve), so this command {want} now; wait for it to end",
            dir.display()
        ),
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // The file is removed only under an exclusive lock (a shared holder upgrades first and
        // leaves it to the others when that fails), so nobody holds the removed file.
        let sole_holder = self.exclusive || self.file.try_lock().is_ok();
        if sole_holder && still_there(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A note naming the build folders (`.<name>.new-<pid>`, `fsutil::StagedRunDir`) that
/// killed runs of `run` left beside it: they hold the killed run's states and can be resumed
/// themselves. A build folder still locked by its run is named as a run being built.
pub fn killed_build_hint(run: &Path) -> String {
    let (Some(parent), Some(name)) = (run.parent(), run.file_name()) else {
        return String::new();
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let prefix = format!(".{}.new-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent) else {
        return String::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| parent.join(e.file_name()).display().to_string())
        .collect();
    found.sort();
    let Some(f) = found.first() else {
        return String::new();
    };
    // A build folder whose lock is held is a run still being built, not a killed one.
    if let Err(e) = RunLock::shared(Path::new(f)) {
        return format!(" (a run is being built beside it: {e:#})");
    }
    format!(
        " (a killed run left its build folder {f}: resume that folder, then rename it to {})",
        run.display()
    )
}
