//! Files and folders of a run: atomic writes, run-folder names, the run folder built beside
//! its place and swapped in whole, and the checks that keep outputs off the inputs and off run
//! folders. The lock of a run folder is [`crate::lock`]'s.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::layout::{is_run_folder, CONFIG_FILE, RUN_ENTRIES, VOCAB_FILE};
pub use crate::lock::{killed_build_hint, RunLock};
use crate::paths::parent_of;
pub use crate::paths::resolve;

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, then renamed
/// over `path`, so a reader never sees half a file and a failure leaves the old file in place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes).map_err(Into::into))
}

/// Like [`write_atomic`], but `body` writes the content into the temporary file.
pub fn write_atomic_with(
    path: &Path,
    body: impl FnOnce(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
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
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    body(tmp.as_file_mut()).with_context(|| format!("writing {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes UTF-8 text atomically.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, text.as_bytes())
}

/// The current UTC time as `YYYYMMDD-HHMMSS` (for run-folder names, which sort by time).
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// The current UTC date as `YYYY-MM-DD`.
pub fn today() -> String {
    let t = timestamp();
    format!("{}-{}-{}", &t[0..4], &t[4..6], &t[6..8])
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm), so no date crate is
/// needed for one file name.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Creates the run folder: `out` when given (it may exist, files in it are replaced), else
/// `runs/<command>-<timestamp>` (with `-2`, `-3`, ... when two runs start in the same second).
pub fn create_run_dir(out: Option<&Path>, command: &str) -> Result<PathBuf> {
    let dir = run_dir_path(out, command);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the run folder {}", dir.display()))?;
    Ok(dir)
}

/// The run folder [`create_run_dir`] would create, without creating it (a run creates its
/// folder only once its input has been read without error).
pub fn run_dir_path(out: Option<&Path>, command: &str) -> PathBuf {
    match out {
        Some(p) => p.to_path_buf(),
        None => {
            let base = PathBuf::from("runs").join(format!("{command}-{}", timestamp()));
            let mut dir = base.clone();
            let mut n = 2;
            while dir.exists() {
                dir = PathBuf::from(format!("{}-{n}", base.display()));
                n += 1;
            }
            dir
        }
    }
}

/// A run folder built beside its final place and swapped in whole once complete, so that a run
/// failing half-way (the teacher diverges, the disk fills) leaves an earlier folder at that
/// path as it was, and a crash leaves either the old folder or the new one whole.
///
/// The build folder is the sibling `.<name>.new-<pid>` (same file system, so renames are
/// atomic); it is created by whoever writes into [`StagedRunDir::path`], and removed when the
/// value is dropped without [`StagedRunDir::commit`]. It is locked ([`RunLock`]) as long as the
/// value lives, so that nobody resumes it while it is being built.
#[derive(Debug)]
pub struct StagedRunDir {
    target: PathBuf,
    staging: PathBuf,
    committed: bool,
    _lock: RunLock,
}

/// The sibling `.<name>.<tag>-<pid>` of `dir`.
fn sibling(dir: &Path, tag: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
    parent_of(dir).join(format!(".{name}.{tag}-{}", std::process::id()))
}

/// Makes the renames in `dir` durable (a no-op where directories cannot be opened).
fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

impl StagedRunDir {
    /// Plans a build of the run folder `target` in a fresh sibling; creates nothing yet.
    pub fn new(target: &Path) -> Result<StagedRunDir> {
        let staging = sibling(target, "new");
        let lock = RunLock::exclusive(&staging, "dmtl train")?;
        // A leftover of an earlier process with the same id (a crash before its swap).
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .with_context(|| format!("removing the leftover {}", staging.display()))?;
        }
        Ok(StagedRunDir {
            target: target.to_path_buf(),
            staging,
            committed: false,
            _lock: lock,
        })
    }

    /// Where the run is built.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Moves the built folder to its final place: an existing folder there is renamed aside
    /// (`.<name>.old-<pid>`), the new one renamed in, then the old one removed.
    pub fn commit(mut self) -> Result<PathBuf> {
        let parent = parent_of(&self.target).to_path_buf();
        let aside = sibling(&self.target, "old");
        let had_old = self.target.exists();
        if had_old {
            if aside.exists() {
                std::fs::remove_dir_all(&aside)
                    .with_context(|| format!("removing the leftover {}", aside.display()))?;
            }
            std::fs::rename(&self.target, &aside).with_context(|| {
                format!(
                    "moving the earlier run {} aside to {}",
                    self.target.display(),
                    aside.display()
                )
            })?;
        }
        if let Err(e) = std::fs::rename(&self.staging, &self.target) {
            // Put the earlier run back; the new one stays removable by Drop.
            let restored = !had_old || std::fs::rename(&aside, &self.target).is_ok();
            let mut err = anyhow::Error::new(e).context(format!(
                "moving the new run {} to {}",
                self.staging.display(),
                self.target.display()
            ));
            if !restored {
                err = err.context(format!(
                    "the earlier run is whole in {}: rename it back to {}",
                    aside.display(),
                    self.target.display()
                ));
            }
            return Err(err);
        }
        self.committed = true;
        sync_dir(&parent);
        if had_old {
            std::fs::remove_dir_all(&aside).with_context(|| {
                format!(
                    "removing the earlier run {} (the new run is in place)",
                    aside.display()
                )
            })?;
        }
        Ok(self.target.clone())
    }
}

impl Drop for StagedRunDir {
    fn drop(&mut self) {
        if !self.committed && self.staging.exists() {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// Whether `a` and `b` name the same existing file (also through hard links).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    false
}

/// The run folder `path` is in (or is), if any.
fn enclosing_run(path: &Path) -> Option<PathBuf> {
    resolve(path)
        .ancestors()
        .find(|d| is_run_folder(d))
        .map(Path::to_path_buf)
}

/// Refuses an output that would overwrite what a command reads: `out` (given as `flag`) must
/// not be, or resolve through symlinks, hard links or `..` to, one of `inputs` (`(what, path)`
/// pairs, named in the error) or one of their part files, nor lie inside an input that is a
/// folder of parts (it would join the log), and must not lie in the run folder `run` or in any
/// run folder. Checked before any work.
pub fn check_output(
    flag: &str,
    out: &Path,
    inputs: &[(&str, &Path)],
    run: Option<&Path>,
) -> Result<()> {
    check_off_inputs(flag, out, inputs)?;
    let target = resolve(out);
    let inside = run
        .filter(|r| target.starts_with(resolve(r)))
        .map(Path::to_path_buf)
        .or_else(|| enclosing_run(out));
    if let Some(r) = inside {
        bail!(
            "{flag} {}: is inside the run folder {}; outputs are never written into a run \
             folder (it would change the run): choose a path outside it",
            out.display(),
            r.display()
        );
    }
    Ok(())
}

/// Refuses an output `out` (given as `flag`) that is one of `inputs` (`(what, path)` pairs), one
/// of their part files (an input given as a folder or glob), or lies inside an input folder.
pub fn check_off_inputs(flag: &str, out: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    let target = resolve(out);
    for (what, input) in inputs {
        let several = input.is_dir() || crate::paths::is_glob(input);
        if input.is_dir() && target.starts_with(resolve(input)) {
            bail!(
                "{flag} {}: is inside the {what} folder {} this command reads, whose files are \
                 the log's parts; choose an output outside it",
                out.display(),
                input.display()
            );
        }
        let parts = if several {
            crate::paths::log_files(input)
        } else {
            vec![input.to_path_buf()]
        };
        for part in &parts {
            if target == resolve(part) || same_file(out, part) {
                bail!(
                    "{flag} {}: is the {what} {} this command reads; choose another output",
                    out.display(),
                    part.display()
                );
            }
        }
    }
    Ok(())
}

/// Checks `train --out DIR` before any work: a run replaces its folder whole, so `DIR` must be
/// new, an empty folder, or a run folder holding nothing but what a run writes. An existing
/// file, `.`, a folder the current folder is in, and a folder of other files are refused,
/// naming the path (and the first file that is not the run's).
pub fn check_train_out(out: &Path) -> Result<()> {
    let shown = out.display();
    let target = resolve(out);
    let cwd = std::env::current_dir().map(|d| resolve(&d)).ok();
    if out.file_name().is_none() || cwd.is_some_and(|c| c.starts_with(&target)) {
        bail!(
            "--out {shown}: is the current folder or one it is in; a run replaces its folder \
             whole, so give the name of a new folder"
        );
    }
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        bail!("--out {shown}: is a file, not a run folder; give the name of a new folder");
    }
    let mut foreign: Vec<String> = std::fs::read_dir(out)
        .with_context(|| format!("--out {shown}: reading the folder"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".tmp-") && !RUN_ENTRIES.contains(&n.as_str()))
        .collect();
    foreign.sort();
    let empty = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_none());
    if empty {
        return Ok(());
    }
    if !is_run_folder(out) {
        bail!(
            "--out {shown}: the folder exists and is not a dmtl run folder (no {} and {}); \
             a run replaces its folder whole, so it is left as it is: give the name of a new \
             folder",
            CONFIG_FILE,
            VOCAB_FILE
        );
    }
    if let Some(f) = foreign.first() {
        bail!(
            "--out {shown}: the run folder also holds `{f}`, which a run does not write; a new \
             run replaces the folder whole, so it is left as it is: move `{f}` out or give the \
             name of a new folder"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2000-02-29 is day 11,016; 2024-12-31 is day 20,088.
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_088), (2024, 12, 31));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_text(&p, "one").unwrap();
        write_text(&p, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn atomic_writes_get_the_mode_of_a_plainly_created_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let p = dir.path().join("a.txt");
        write_text(&p, "x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), mode(&plain));
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_committed_stage_replaces_the_folder_whole_and_leaves_no_sibling() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        std::fs::create_dir(&run).unwrap();
        write_text(&run.join("old_only.txt"), "old").unwrap();
        write_text(&run.join("both.txt"), "old").unwrap();
        let stage = StagedRunDir::new(&run).unwrap();
        std::fs::create_dir_all(stage.path()).unwrap();
        write_text(&stage.path().join("both.txt"), "new").unwrap();
        // Until the commit, the old folder is untouched.
        assert_eq!(listing(&run), ["both.txt", "old_only.txt"]);
        assert_eq!(stage.commit().unwrap(), run);
        assert_eq!(listing(&run), ["both.txt"]);
        assert_eq!(
            std::fs::read_to_string(run.join("both.txt")).unwrap(),
            "new"
        );
        assert_eq!(listing(t.path()), ["run"]);
    }

    #[test]
    fn a_dropped_stage_leaves_the_old_folder_and_removes_the_new_one() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        std::fs::create_dir(&run).unwrap();
        write_text(&run.join("a.txt"), "old").unwrap();
        {
            let stage = StagedRunDir::new(&run).unwrap();
            std::fs::create_dir_all(stage.path()).unwrap();
            write_text(&stage.path().join("a.txt"), "new").unwrap();
        }
        assert_eq!(listing(t.path()), ["run"]);
        assert_eq!(std::fs::read_to_string(run.join("a.txt")).unwrap(), "old");
    }

    #[test]
    fn a_stage_for_a_new_folder_creates_it_only_on_commit() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("fresh");
        let stage = StagedRunDir::new(&run).unwrap();
        std::fs::create_dir_all(stage.path()).unwrap();
        write_text(&stage.path().join("a.txt"), "new").unwrap();
        assert!(!run.exists());
        stage.commit().unwrap();
        assert_eq!(listing(t.path()), ["fresh"]);
        assert_eq!(listing(&run), ["a.txt"]);
    }
}
