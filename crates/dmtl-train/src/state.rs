//! The training state of a run on disk, so that an interrupted run can resume.
//!
//! A state directory holds `state.toml` (the manifest: format version, model, position,
//! early-stopping state, history, the configuration, and the names of the tensor files)
//! and the tensor files it names: `params-<generation>.safetensors` (the parameters),
//! `adam-<generation>.safetensors` (Adam's moments, `m.<parameter>` and `v.<parameter>`,
//! and its step count, as `Optimizer::state_to_safetensors` writes them) and
//! `best-<generation>.safetensors` (the best epoch's parameters).
//! Each write creates new tensor files, then replaces `state.toml` atomically (temporary
//! file and rename), then deletes the files of older generations: a reader sees either
//! the old state or the new one, never a mix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dmtl_tensor::optim::{Adam, Optimizer};
use dmtl_tensor::ParamStore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::StateError;

type Result<T> = std::result::Result<T, StateError>;

/// Version of the `state.toml` layout; another version is refused.
pub const FORMAT: u32 = 1;

/// The manifest's file name.
pub const MANIFEST: &str = "state.toml";

/// Configuration keys that may differ between the run that wrote a state and the one
/// resuming it: they decide how far or how the run goes, not what a step computes.
const RUNTIME_KEYS: [&str; 5] = [
    "epochs",
    "patience",
    "checkpoint_every",
    "stop_after_batches",
    "on_non_finite",
];

/// A directory for the training state of one model (`<run>/state/teacher/`, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    /// The directory (created when missing).
    pub dir: PathBuf,
    /// Continue from the state found there (none found: start afresh); `false` starts
    /// afresh and overwrites it.
    pub resume: bool,
}

impl StateDir {
    /// Writes a state into `dir`, starting afresh.
    pub fn fresh(dir: impl Into<PathBuf>) -> StateDir {
        StateDir {
            dir: dir.into(),
            resume: false,
        }
    }

    /// Resumes from the state in `dir` when there is one, and keeps writing it.
    pub fn resume(dir: impl Into<PathBuf>) -> StateDir {
        StateDir {
            dir: dir.into(),
            resume: true,
        }
    }
}

/// Where a run is: the epoch and batch to train next, the running sums of that epoch, and
/// the early-stopping state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// The epoch in progress (or next).
    pub epoch: usize,
    /// Batches of that epoch already trained on (or skipped).
    pub batch: usize,
    /// Sums over the epoch's trained impressions of each loss the report averages.
    pub loss_sums: Vec<f64>,
    /// Impressions trained on in the epoch so far.
    pub rows: usize,
    /// Batches skipped in the epoch so far.
    pub skipped: usize,
    /// Why the epoch's first skipped batch was skipped.
    pub first_skip: Option<String>,
    /// Seconds spent training in the epoch so far.
    pub seconds: f64,
    /// The best validation metric so far.
    pub best_metric: Option<f64>,
    /// Its epoch.
    pub best_epoch: Option<usize>,
    /// Patience ran out: the run is over.
    pub stopped_early: bool,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: u32,
    model: String,
    generation: u64,
    params: String,
    adam: String,
    best: Option<String>,
    adam_steps: u64,
    position: Position,
    config: toml::Value,
    history: toml::Value,
}

/// A state read back by [`load`].
#[derive(Debug)]
pub struct Loaded<H> {
    /// The parameters.
    pub params: ParamStore,
    /// Adam with its moments and step count (its learning rate is the caller's to set).
    pub adam: Adam,
    /// The best metric, its epoch and parameters.
    pub best: Option<(f64, usize, ParamStore)>,
    /// Where the run is.
    pub position: Position,
    /// The history so far.
    pub history: H,
    /// A writer that continues the state's generations.
    pub writer: StateWriter,
}

fn state_err(path: &Path, message: impl std::fmt::Display) -> StateError {
    StateError::State {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// The configuration as a TOML value, without the keys that may change on resume.
pub fn config_value(cfg: &impl Serialize) -> Result<toml::Value> {
    let mut v = toml::Value::try_from(cfg).map_err(|e| StateError::Config(e.to_string()))?;
    if let Some(t) = v.get_mut("train").and_then(|t| t.as_table_mut()) {
        for k in RUNTIME_KEYS {
            t.remove(k);
        }
    }
    Ok(v)
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The first key whose value differs between two configurations, with both values.
fn first_difference(saved: &toml::Value, now: &toml::Value) -> Option<(String, String, String)> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", saved, &mut a);
    flatten("", now, &mut b);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let found = keys.into_iter().find_map(|k| {
        let (x, y) = (a.get(k), b.get(k));
        (x != y).then(|| {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "absent".into());
            (k.clone(), show(x), show(y))
        })
    });
    found
}

/// Reads the state in `dir`, if there is one, for a model called `model` with
/// configuration `config` ([`config_value`]) and parameters shaped like `like`.
///
/// Fails, naming the file and the key or tensor, when the state is of another format,
/// model or configuration, or a tensor file does not fit.
pub fn load<H: DeserializeOwned>(
    dir: &Path,
    model: &str,
    config: &toml::Value,
    like: &ParamStore,
) -> Result<Option<Loaded<H>>> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(state_err(&path, e)),
    };
    let m: Manifest = toml::from_str(&text).map_err(|e| state_err(&path, e))?;
    if m.format != FORMAT {
        return Err(state_err(
            &path,
            format!(
                "key `format`: version {} is not the supported {FORMAT}",
                m.format
            ),
        ));
    }
    if m.model != model {
        return Err(state_err(
            &path,
            format!("key `model`: the state is of a {}, not a {model}", m.model),
        ));
    }
    if let Some((key, saved, now)) = first_difference(&m.config, config) {
        return Err(state_err(
            &path,
            format!("key `config.{key}` is {saved} in the state but {now} in this configuration"),
        ));
    }
    let mut params = like.clone();
    params.load(&dir.join(&m.params))?;
    let mut adam = Adam::new(1e-3);
    let adam_path = dir.join(&m.adam);
    let bytes = std::fs::read(&adam_path).map_err(|e| state_err(&adam_path, e))?;
    // The manifest's count serves states written before the file held one.
    adam.set_steps(m.adam_steps);
    adam.load_state_safetensors(&bytes, like, &adam_path)?;
    let best = match (&m.best, m.position.best_metric, m.position.best_epoch) {
        (Some(file), Some(metric), Some(epoch)) => {
            let mut s = like.clone();
            s.load(&dir.join(file))?;
            Some((metric, epoch, s))
        }
        (None, _, None) => None,
        _ => {
            return Err(state_err(
                &path,
                "keys `best` and `position.best_epoch` disagree",
            ))
        }
    };
    let history: H = m
        .history
        .clone()
        .try_into()
        .map_err(|e| state_err(&path, format!("key `history`: {e}")))?;
    let writer = StateWriter {
        dir: dir.to_path_buf(),
        generation: m.generation,
        best_file: m
            .best
            .clone()
            .zip(m.position.best_epoch)
            .map(|(f, e)| (e, f)),
    };
    Ok(Some(Loaded {
        params,
        adam,
        best,
        position: m.position,
        history,
        writer,
    }))
}

/// Writes successive states into one directory.
#[derive(Debug)]
pub struct StateWriter {
    dir: PathBuf,
    generation: u64,
    /// The best parameters' file and its epoch, reused while the best does not change.
    best_file: Option<(usize, String)>,
}

impl StateWriter {
    /// A writer into `dir` (created when missing), its generations after any state there.
    pub fn new(dir: &Path) -> Result<StateWriter> {
        std::fs::create_dir_all(dir).map_err(|e| state_err(dir, e))?;
        let generation = std::fs::read_to_string(dir.join(MANIFEST))
            .ok()
            .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
            .and_then(|t| t.get("generation").and_then(|g| g.as_integer()))
            .unwrap_or(0) as u64;
        Ok(StateWriter {
            dir: dir.to_path_buf(),
            generation,
            best_file: None,
        })
    }

    /// Writes one state: the tensor files, then the manifest, then removes older files.
    #[allow(clippy::too_many_arguments)]
    pub fn write<H: Serialize>(
        &mut self,
        model: &str,
        config: &toml::Value,
        params: &ParamStore,
        adam: &Adam,
        best: Option<(f64, usize, &ParamStore)>,
        position: &Position,
        history: &H,
    ) -> Result<()> {
        self.generation += 1;
        let g = self.generation;
        let params_file = format!("params-{g:06}.safetensors");
        let adam_file = format!("adam-{g:06}.safetensors");
        params.save(&self.dir.join(&params_file))?;
        dmtl_tensor::io::atomic_write(
            &self.dir.join(&adam_file),
            &adam.state_to_safetensors(params),
        )?;
        let mut position = position.clone();
        position.best_metric = best.map(|b| b.0);
        position.best_epoch = best.map(|b| b.1);
        let best_file = match best {
            None => None,
            Some((_, epoch, store)) => match &self.best_file {
                Some((e, f)) if *e == epoch && self.dir.join(f).exists() => Some(f.clone()),
                _ => {
                    let f = format!("best-{g:06}.safetensors");
                    store.save(&self.dir.join(&f))?;
                    Some(f)
                }
            },
        };
        let path = self.dir.join(MANIFEST);
        let manifest = Manifest {
            format: FORMAT,
            model: model.to_string(),
            generation: g,
            params: params_file.clone(),
            adam: adam_file.clone(),
            best: best_file.clone(),
            adam_steps: adam.steps(),
            position,
            config: config.clone(),
            history: toml::Value::try_from(history).map_err(|e| state_err(&path, e))?,
        };
        let text = toml::to_string(&manifest).map_err(|e| state_err(&path, e))?;
        dmtl_tensor::io::atomic_write(&path, text.as_bytes())?;
        self.best_file = best.zip(best_file.clone()).map(|(b, f)| (b.1, f));
        // Only now may the previous generation's files go.
        let keep = [Some(params_file), Some(adam_file), best_file];
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let ours = ["params-", "adam-", "best-"]
                    .iter()
                    .any(|p| name.starts_with(p))
                    && name.ends_with(".safetensors");
                if ours && !keep.iter().flatten().any(|k| *k == name) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }
}
