//! Training the teacher: epochs of Adam on the ESMM loss, validation after each, early stopping.

use std::path::{Path, PathBuf};

use dmtl_data::{check_dataset_labels, Batch, BatchSource, Dataset};
use dmtl_loss::{esmm_loss, Reduction};
use dmtl_tensor::optim::{Adam, Optimizer};
use dmtl_tensor::parallel::data_parallel;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Result, TeacherError};
use crate::teacher::{Teacher, TeacherScores};

pub mod epochs;

use epochs::{NonFiniteStep, Step, Trainee};

/// Validation metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidReport {
    /// AUC of pCTR against the click label (`None` when the set has one class only).
    pub click_auc: Option<f64>,
    /// AUC of pCTCVR against the long-read label over every impression.
    pub long_read_auc: Option<f64>,
    /// AUC of pCVR against the long-read label over clicked impressions only.
    pub cvr_auc_on_clicks: Option<f64>,
    /// Logloss of pCTR against clicks.
    pub click_logloss: f64,
    /// Logloss of pCTCVR against long reads.
    pub long_read_logloss: f64,
}

impl ValidReport {
    /// The metrics of `scores` against the labels of `data`.
    ///
    /// # Panics
    /// When `data` is unlabelled or the lengths differ.
    pub fn compute(scores: &TeacherScores, data: &Dataset) -> ValidReport {
        let clicked: Vec<usize> = (0..data.n_rows).filter(|&r| data.click[r] > 0.5).collect();
        let p_cvr: Vec<f32> = clicked.iter().map(|&r| scores.p_cvr[r]).collect();
        let z: Vec<f32> = clicked.iter().map(|&r| data.long_read[r]).collect();
        ValidReport {
            click_auc: dmtl_metrics::auc(&scores.p_ctr, &data.click),
            long_read_auc: dmtl_metrics::auc(&scores.p_ctcvr, &data.long_read),
            cvr_auc_on_clicks: dmtl_metrics::auc(&p_cvr, &z),
            click_logloss: dmtl_metrics::logloss(&scores.p_ctr, &data.click),
            long_read_logloss: dmtl_metrics::logloss(&scores.p_ctcvr, &data.long_read),
        }
    }
}

/// The teacher's mean loss parts of an epoch, beside [`EpochReport`]'s `train_loss`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TeacherLosses {
    /// Mean `BCE(click, pCTR)`.
    pub train_ctr_loss: f64,
    /// Mean `BCE(click & long read, pCTCVR)`.
    pub train_ctcvr_loss: f64,
}

/// What happened in one epoch of the teacher's training.
pub type EpochReport = epochs::EpochReport<TeacherLosses, ValidReport>;

/// Progress reported to the callback of [`Teacher::train`].
pub type TrainEvent = epochs::TrainEvent<TeacherLosses, ValidReport>;

/// The record of a teacher's training run.
pub type TrainHistory = epochs::TrainHistory<TeacherLosses, ValidReport>;

/// The loss values of one training step (means over the batch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLoss {
    /// `ctr + w * ctcvr`.
    pub total: f32,
    /// The first parameter whose gradient held a NaN or infinity (the update was then not
    /// applied), by index into the store.
    pub non_finite_grad: Option<dmtl_tensor::ParamId>,
    /// `BCE(click, pCTR)`.
    pub ctr: f32,
    /// `BCE(click & long read, pCTCVR)`.
    pub ctcvr: f32,
    /// The first parameter whose update would have written a NaN or infinity (nothing was
    /// then applied).
    pub non_finite_update: Option<dmtl_tensor::ParamId>,
}

impl Teacher {
    /// One optimisation step on `batch`: forward, the ESMM loss (mean over the batch,
    /// `w = config.ctcvr_weight`), backward, optional clipping of the global gradient norm,
    /// and `opt`'s update. Returns the loss before the update. When the loss or a gradient is
    /// not finite the parameters are left untouched.
    ///
    /// # Panics
    /// When the batch is unlabelled or does not fit the schema and vocabularies
    /// ([`Teacher::train`] checks its datasets once and returns an error instead).
    pub fn train_step(
        &mut self,
        opt: &mut (impl Optimizer + Clone),
        batch: &Batch,
        clip_norm: Option<f64>,
    ) -> StepLoss {
        let w = self.config().ctcvr_weight;
        // Row shards of the batch run forward and backward in parallel (one per thread).
        let sharded = data_parallel(self.store(), batch.n_rows, |g, rows| {
            let b = &*batch.part(rows);
            let out = self.forward(g, b);
            let loss = esmm_loss(
                g,
                out.ctr_logit,
                out.cvr_logit,
                &b.click,
                &b.long_read,
                w,
                Reduction::Mean,
            );
            let values = vec![
                g.scalar(loss.total),
                g.scalar(loss.ctr),
                g.scalar(loss.ctcvr),
            ];
            (loss.total, values)
        });
        let values = StepLoss {
            total: sharded.values[0],
            ctr: sharded.values[1],
            ctcvr: sharded.values[2],
            non_finite_grad: None,
            non_finite_update: None,
        };
        let mut grads = sharded.grads;
        match epochs::apply_step(self.store_mut(), opt, values.total, &mut grads, clip_norm) {
            Ok(()) | Err(NonFiniteStep::Loss) => values,
            Err(NonFiniteStep::Gradient(id)) => StepLoss {
                non_finite_grad: Some(id),
                ..values
            },
            Err(NonFiniteStep::Update(id)) => StepLoss {
                non_finite_update: Some(id),
                ..values
            },
        }
    }

    /// Trains with Adam (`opts.lr`, betas 0.9/0.999, eps 1e-8) on
    /// `BCE(click, pCTR) + w * BCE(click & long read, pCTCVR)` (mean over each batch,
    /// `w = config.ctcvr_weight`) for up to `opts.epochs` epochs, the batch order shuffled by
    /// `(opts.seed, epoch)`.
    ///
    /// With `valid`, after each epoch the click AUC, long-read AUC (pCTCVR against
    /// click & long read over every impression) and loglosses are measured; training stops
    /// when the long-read AUC has not improved for `opts.patience` epochs (0: never), and the
    /// best epoch's parameters are restored at the end. `progress` sees every batch and epoch.
    ///
    /// The result depends only on the configuration, the data and the thread count.
    ///
    /// Fails when a dataset is unlabelled, holds a label out of range (naming the set, the row
    /// and the column) or does not fit the schema and vocabularies, or when a loss, gradient
    /// or update becomes NaN or infinite (`opts.on_non_finite = "stop"`; no parameter is then
    /// left non-finite).
    pub fn train(
        &mut self,
        train: &Dataset,
        valid: Option<&Dataset>,
        opts: &TrainConfig,
        progress: impl FnMut(&TrainEvent),
    ) -> Result<TrainHistory> {
        self.train_from(train, valid, opts, None, progress)
    }

    /// [`Teacher::train`] from any [`BatchSource`] (an in-memory [`Dataset`] or a
    /// [`dmtl_data::StreamSource`] reading a log chunk by chunk), optionally keeping a
    /// training state in `state.dir` that an interrupted run resumes from.
    ///
    /// With `state`, the state (parameters, Adam's moments and step count, the epoch and batch
    /// reached, the epoch's partial sums, the early-stopping state with the best parameters,
    /// and the history) is written every `opts.checkpoint_every` batches and at the end of
    /// every epoch, atomically as a whole ([`state`]). With `state.resume` and a state in the
    /// directory, training continues from it and ends with the same parameters and metrics
    /// (wall-clock fields aside) as a run never interrupted; a state of another model or
    /// another configuration is an error naming the file and the key or tensor. Without a
    /// state in the directory training starts from the current parameters.
    ///
    /// `opts.stop_after_batches = Some(n)` stops after `n` batches of this call: mid-epoch the
    /// state is written and [`crate::TrainError::Interrupted`] returned; when the `n`-th batch
    /// ends an epoch, the epoch is finished (validation, state) first.
    pub fn train_from(
        &mut self,
        train: &dyn BatchSource,
        valid: Option<&Dataset>,
        opts: &TrainConfig,
        state: Option<&state::StateDir>,
        mut progress: impl FnMut(&TrainEvent),
    ) -> Result<TrainHistory> {
        let mut checked = self.config().clone();
        checked.train = opts.clone();
        checked.validate("train options")?;
        for (name, data) in [("training", train.in_memory()), ("validation", valid)] {
            let Some(data) = data else { continue };
            if !data.has_labels() {
                return Err(TeacherError::Data(format!("the {name} set has no labels")));
            }
            self.embeddings().check_dataset(data)?;
            check_dataset_labels(data)
                .map_err(|e| TeacherError::Data(format!("the {name} set: {e}")))?;
        }
        let fingerprint = state::config_value(&checked)?;
        let mut run = TeacherRun {
            stream: train.in_memory().is_none(),
            teacher: self,
            valid,
        };
        epochs::run(
            &mut run,
            train,
            opts,
            "teacher",
            &fingerprint,
            state,
            &mut progress,
        )
    }
}

impl StepLoss {
    /// Why the step's update was not applied, if it was not.
    pub fn non_finite(&self) -> Option<NonFiniteStep> {
        if let Some(id) = self.non_finite_grad {
            Some(NonFiniteStep::Gradient(id))
        } else if !self.total.is_finite() {
            Some(NonFiniteStep::Loss)
        } else {
            self.non_finite_update.map(NonFiniteStep::Update)
        }
    }
}

/// The teacher under the epoch loop.
struct TeacherRun<'a> {
    teacher: &'a mut Teacher,
    valid: Option<&'a Dataset>,
    /// The training batches come from a stream, not a dataset checked up front.
    stream: bool,
}

impl Trainee for TeacherRun<'_> {
    type Parts = TeacherLosses;
    type Valid = ValidReport;
    type Error = TeacherError;
    const PARTS: usize = 2;

    fn store(&self) -> &dmtl_tensor::ParamStore {
        self.teacher.store()
    }

    fn store_mut(&mut self) -> &mut dmtl_tensor::ParamStore {
        self.teacher.store_mut()
    }

    fn step(&mut self, adam: &mut Adam, batch: &Batch, clip_norm: Option<f64>) -> Result<Step> {
        if self.stream {
            self.teacher
                .embeddings()
                .check_fields(&batch.fields, batch.n_rows)?;
        }
        let loss = self.teacher.train_step(adam, batch, clip_norm);
        Ok(Step {
            loss: loss.total,
            parts: vec![loss.ctr, loss.ctcvr],
            non_finite: loss.non_finite(),
        })
    }

    fn validate(&mut self) -> Result<Option<ValidReport>> {
        match self.valid {
            Some(v) => Ok(Some(ValidReport::compute(&self.teacher.predict(v)?, v))),
            None => Ok(None),
        }
    }

    fn metric(valid: &ValidReport) -> Option<f64> {
        valid.long_read_auc
    }

    fn parts(&self, sums: &[f64], rows: f64) -> TeacherLosses {
        TeacherLosses {
            train_ctr_loss: sums[1] / rows,
            train_ctcvr_loss: sums[2] / rows,
        }
    }
}

pub mod state {
    //! The training state of a run on disk, so that an interrupted run can resume.
    //!
    //! A state directory holds `state.toml` (the manifest: format version, model, position,
    //! early-stopping state, history, the configuration, and the names of the tensor files)
    //! and the tensor files it names: `params-<generation>.safetensors` (the parameters),
    //! `adam-<generation>.safetensors` (Adam's moments, `m.<parameter>` and
    //! `v.<parameter>`) and `best-<generation>.safetensors` (the best epoch's parameters).
    //! Each write creates new tensor files, then replaces `state.toml` atomically (temporary
    //! file and rename), then deletes the files of older generations: a reader sees either
    //! the old state or the new one, never a mix.

    use std::collections::BTreeMap;

    use dmtl_tensor::optim::{Adam, Optimizer};
    use dmtl_tensor::ParamStore;
    use serde::de::DeserializeOwned;

    use super::*;

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

    fn state_err(path: &Path, message: impl std::fmt::Display) -> TeacherError {
        TeacherError::State {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    /// The configuration as a TOML value, without the keys that may change on resume.
    pub fn config_value(cfg: &impl Serialize) -> Result<toml::Value> {
        let mut v = toml::Value::try_from(cfg).map_err(|e| TeacherError::Data(e.to_string()))?;
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
    fn first_difference(
        saved: &toml::Value,
        now: &toml::Value,
    ) -> Option<(String, String, String)> {
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
                format!(
                    "key `config.{key}` is {saved} in the state but {now} in this configuration"
                ),
            ));
        }
        let mut params = like.clone();
        params.load(&dir.join(&m.params))?;
        let mut adam = Adam::new(1e-3);
        let adam_path = dir.join(&m.adam);
        let bytes = std::fs::read(&adam_path).map_err(|e| state_err(&adam_path, e))?;
        adam.load_state_safetensors(&bytes, like, &adam_path)?;
        adam.set_steps(m.adam_steps);
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
}
