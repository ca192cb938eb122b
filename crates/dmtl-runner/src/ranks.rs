//! `dmtl train` over the ranks of an MPI job (`mpirun -np N dmtl train ...`, a build with the
//! `mpi` feature; `cargo xtask train --ranks N` starts it).
//!
//! Every rank runs the same pipeline on the same configuration: it reads and prepares the log
//! alike (the same split, the same vocabularies, checked equal on every rank by a hash), and
//! trains every model data-parallel ([`dmtl_train::parallel`]): each global batch, in the order
//! one process trains on, split into one block of rows per rank
//! ([`dmtl_train::parallel::Split::Slices`]), gradients summed every step, rank 0 validating
//! for all. The job so trains what one process with as many row shards trains. Rank 0 alone writes the run folder
//! (states, models, metrics, report); the other ranks build theirs in a scratch folder of their
//! own under the system's temporary folder, removed when they end, and read their training
//! states from rank 0's run folder when a run resumes. A rank that fails ends the whole job
//! with `error: rank R of N: ...` and a non-zero exit ([`dmtl_dist::abort_with`]); rank 0's run
//! folder is then left as a failed single-process run leaves it.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result};
use dmtl_dist::Collective;
use dmtl_train::parallel::{self, Split, WorldGuard};

use crate::prepare::Prepared;

/// The job's ranks, while this process takes part in a job of several.
pub struct Ranks {
    coll: Rc<dyn Collective>,
    _installed: WorldGuard,
}

impl Ranks {
    /// Joins the job MPI started this process in, when it holds more than one rank, and installs
    /// its collective for training on this thread; `None` for a process on its own.
    ///
    /// # Errors
    /// When MPI cannot start, or several ranks were started by a build without the `mpi`
    /// feature ([`dmtl_dist::DistError::NoMpi`]).
    pub fn join() -> Result<Option<Ranks>> {
        let world: Rc<dyn Collective> = Rc::from(dmtl_dist::world()?);
        if world.size() < 2 {
            return Ok(None);
        }
        let installed = parallel::install(world.clone(), Split::Slices);
        Ok(Some(Ranks {
            coll: world,
            _installed: installed,
        }))
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.coll.rank()
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.coll.size()
    }

    /// Ends the whole job with `error: rank R of N: {err}` on standard error and exit code 1.
    pub fn abort(&self, err: &anyhow::Error) -> ! {
        dmtl_dist::abort_with(&*self.coll, &format!("{err:#}"))
    }

    /// Whether `err` is a requested stop (`stop_after_batches`), which comes on every rank at the
    /// same step: then, once every rank has put its run away (a barrier), rank 0 can report it
    /// and exit non-zero without ending the others mid-write.
    pub fn stopped_everywhere(&self, err: &anyhow::Error) -> bool {
        crate::commands::interrupted(err) && self.coll.barrier().is_ok()
    }
}

/// The scratch folder a rank other than 0 builds its copy of the run in: under the system's
/// temporary folder, named by the rank and the process id.
pub fn scratch_dir(rank: usize) -> PathBuf {
    std::env::temp_dir().join(format!("dmtl-rank{rank}-{}", std::process::id()))
}

/// Removes a scratch folder made by [`scratch_dir`] (and nothing else: the name is checked).
pub fn remove_scratch(dir: &Path) {
    let ours = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("dmtl-rank"));
    if ours && dir.starts_with(std::env::temp_dir()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// For a rank other than 0 resuming `run`: a scratch copy of rank 0's run folder to resume in,
/// training states included (hidden files, such as the lock, left out). Rank 0 writes no state
/// before this rank has joined it in [`check_same_data`], after the copy.
///
/// # Errors
/// When the copy fails, naming the file.
pub fn scratch_copy(run: &Path, rank: usize) -> Result<PathBuf> {
    let dir = scratch_dir(rank);
    copy_tree(run, &dir)?;
    Ok(dir)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &to.join(&name))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// `dmtl train` on a rank other than 0: the same pipeline, from `config` (or resuming `resume`,
/// rank 0's run folder), built in this rank's scratch folder and removed at the end, so that
/// only rank 0 writes the run.
///
/// # Errors
/// What the pipeline returns.
pub fn train_follower(
    config: Option<&Path>,
    resume: Option<&Path>,
    rank: usize,
    progress: &crate::progress::Progress,
) -> Result<()> {
    let scratch = scratch_dir(rank);
    let result = match (resume, config) {
        (Some(run), _) => {
            scratch_copy(run, rank).and_then(|d| crate::commands::train_resume(&d, progress))
        }
        (None, Some(config)) => crate::commands::train(config, Some(&scratch), progress),
        (None, None) => Err(anyhow::anyhow!("give --config or --resume")),
    };
    remove_scratch(&scratch);
    match result {
        // A requested stop comes on every rank at the same step; rank 0 reports it once every
        // rank is past this barrier (see [`Ranks::stopped_everywhere`]).
        Err(e) if crate::commands::interrupted(&e) => {
            parallel::current().map_or(Ok(()), |c| c.barrier())?;
            Ok(())
        }
        r => r.map(|_| ()),
    }
}

/// Over several ranks: checks that every rank built the same vocabularies (a hash of their
/// JSON, all-gathered; the error names the first rank that differs). Every rank keeps the
/// whole training set and trains on its block of each global batch
/// ([`dmtl_train::parallel::Split::Slices`]), so the job trains what one process does. Nothing
/// in one process.
///
/// # Errors
/// When the vocabularies differ between ranks, or a collective call fails.
pub fn check_same_data(data: &Prepared) -> Result<()> {
    let Some(coll) = parallel::current() else {
        return Ok(());
    };
    let hash = dmtl_dist::bytes_hash(data.vocabs.to_json().as_bytes());
    if let Some((r, hash, expected)) = dmtl_dist::first_differing(&*coll, hash)? {
        anyhow::bail!(
            "rank {r} built other vocabularies than rank 0 from the same log (hash {hash:016x}, \
             rank 0 {expected:016x}): every rank must read the same files"
        );
    }
    Ok(())
}
