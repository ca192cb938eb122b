//! Training the student: two-stage distillation (teacher scores precomputed) or a competitor's
//! objective, epochs of Adam, validation after each epoch, early stopping on the long-read AUC.

use std::time::Instant;

use dmtl_data::{check_batch_labels, check_dataset_labels, Batch, BatchSource, Dataset};
use dmtl_teacher::config::OnNonFinite;
use dmtl_teacher::train::state::{self, Position, StateDir, StateWriter};
use dmtl_tensor::optim::{Adam, Optimizer};
use dmtl_tensor::{Grads, ParamId, ParamStore};
use serde::{Deserialize, Serialize};

use crate::config::TrainOptions;
use crate::error::{Result, StudentError};
use crate::objective::ObjectiveExt;
use crate::step::loss_and_grads;
use crate::two_tower::{score_rows, Student};

/// Validation metrics of one epoch, of the score `s` against the labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidReport {
    /// AUC against the long-read label `y z` over every impression (`None`: one class only).
    pub long_read_auc: Option<f64>,
    /// AUC against the click label.
    pub click_auc: Option<f64>,
}

impl ValidReport {
    /// The AUCs of `scores` (one per row) against the labels of `data`.
    ///
    /// # Panics
    /// When `data` is unlabelled or the lengths differ.
    pub fn compute(scores: &[f32], data: &Dataset) -> ValidReport {
        ValidReport {
            long_read_auc: dmtl_metrics::auc(scores, &data.long_read),
            click_auc: dmtl_metrics::auc(scores, &data.click),
        }
    }
}

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// Epoch number, from 0.
    pub epoch: usize,
    /// Mean training loss over the epoch's impressions (the sum of the parts under joint
    /// training).
    pub train_loss: f64,
    /// Under joint training, the mean ESMM loss of the teacher; `None` otherwise.
    pub teacher_loss: Option<f64>,
    /// Validation metrics, when a validation set was given.
    pub valid: Option<ValidReport>,
    /// Seconds spent training (validation excluded).
    pub train_seconds: f64,
    /// Training impressions per second.
    pub impressions_per_second: f64,
    /// Batches whose update was skipped (`on_non_finite = "skip"`); 0 otherwise.
    #[serde(default)]
    pub skipped_batches: usize,
}

/// Progress reported to the callback of the training functions.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// A batch was trained on.
    Batch {
        /// Epoch, from 0.
        epoch: usize,
        /// Batch within the epoch, from 0.
        batch: usize,
        /// Batches per epoch.
        n_batches: usize,
        /// The batch's mean loss.
        loss: f32,
    },
    /// An epoch ended (after validation).
    Epoch(EpochReport),
}

/// The record of a training run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainHistory {
    /// One report per epoch run.
    pub epochs: Vec<EpochReport>,
    /// The epoch with the best validation long-read AUC, whose parameters the model holds
    /// now; `None` without validation (the model then holds the last epoch's).
    pub best_epoch: Option<usize>,
    /// True when patience ran out before the last epoch.
    pub stopped_early: bool,
}

/// The loss of one batch: the value to differentiate and, for logging, its parts.
pub(crate) struct StepLoss {
    pub grads: Grads,
    pub total: f32,
    pub teacher: Option<f32>,
}

/// The epoch loop shared by two-stage and joint training: shuffled batches, `step` computing
/// each batch's gradients on `store`, the gradient check, clipping, Adam's checked update,
/// validation, early stopping with the best store restored, and the training state in
/// `state` (see [`dmtl_teacher::train::state`]) under the model name `model` with
/// configuration `fingerprint`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_epochs(
    store: &mut ParamStore,
    opts: &TrainOptions,
    train: &dyn BatchSource,
    model: &str,
    fingerprint: &toml::Value,
    state: Option<&StateDir>,
    mut step: impl FnMut(&ParamStore, &Batch) -> Result<StepLoss>,
    mut validate: impl FnMut(&ParamStore) -> Result<Option<ValidReport>>,
    progress: &mut dyn FnMut(&TrainEvent),
) -> Result<TrainHistory> {
    let mut adam = Adam::new(opts.lr);
    let mut history = TrainHistory::default();
    let mut best: Option<(f64, usize, ParamStore)> = None;
    let mut pos = Position::default();
    let mut writer = None;
    if let Some(sd) = state {
        let mut w = StateWriter::new(&sd.dir)?;
        if sd.resume {
            if let Some(l) = state::load::<TrainHistory>(&sd.dir, model, fingerprint, store)? {
                *store = l.params;
                adam = l.adam;
                adam.lr = opts.lr;
                history = l.history;
                best = l.best;
                pos = l.position;
                w = l.writer;
            }
        }
        writer = Some(w);
    }
    let n_batches = train.n_rows().div_ceil(opts.batch_size);
    let mut trained_here = 0usize;
    while pos.epoch < opts.epochs && !pos.stopped_early {
        let epoch = pos.epoch;
        let start = Instant::now();
        let base_seconds = pos.seconds;
        let mut stop_at_epoch_end = false;
        if pos.loss_sums.len() != 2 {
            pos.loss_sums = vec![0.0; 2];
        }
        let mut has_teacher = false;
        for batch in
            train.epoch_batches(opts.batch_size, Some((opts.seed, epoch as u64)), pos.batch)?
        {
            let b = pos.batch;
            let batch = batch?;
            if train.in_memory().is_none() {
                check_batch_labels(&batch)
                    .map_err(|e| StudentError::Data(format!("the training set: {e}")))?;
            }
            let StepLoss {
                mut grads,
                total,
                teacher,
            } = step(store, &batch)?;
            let name = |id: ParamId| store.get(id).name.clone();
            let failure = if !total.is_finite() {
                Some(StudentError::NonFinite {
                    epoch,
                    batch: b,
                    loss: total,
                })
            } else if let Some(id) = grads.first_non_finite() {
                Some(StudentError::NonFiniteGradient {
                    epoch,
                    batch: b,
                    parameter: name(id),
                })
            } else {
                if let Some(c) = opts.clip_norm {
                    grads.clip_global_norm(c);
                }
                adam.try_step(store, &grads)
                    .err()
                    .map(|e| StudentError::NonFiniteUpdate {
                        epoch,
                        batch: b,
                        parameter: e.name,
                    })
            };
            match failure {
                Some(err) if opts.on_non_finite == OnNonFinite::Stop => return Err(err),
                Some(err) => {
                    pos.skipped += 1;
                    pos.first_skip.get_or_insert_with(|| err.to_string());
                }
                None => {
                    let n = batch.n_rows as f64;
                    pos.rows += batch.n_rows;
                    pos.loss_sums[0] += total as f64 * n;
                    if let Some(t) = teacher {
                        pos.loss_sums[1] += t as f64 * n;
                    }
                }
            }
            has_teacher |= teacher.is_some();
            pos.batch += 1;
            progress(&TrainEvent::Batch {
                epoch,
                batch: b,
                n_batches,
                loss: total,
            });
            trained_here += 1;
            let stop = opts.stop_after_batches == Some(trained_here);
            if pos.batch >= n_batches {
                stop_at_epoch_end = stop;
                continue;
            }
            let due = opts.checkpoint_every > 0 && pos.batch % opts.checkpoint_every == 0;
            if let Some(w) = writer.as_mut().filter(|_| stop || due) {
                pos.seconds = base_seconds + start.elapsed().as_secs_f64();
                w.write(
                    model,
                    fingerprint,
                    store,
                    &adam,
                    best.as_ref().map(|(m, e, s)| (*m, *e, s)),
                    &pos,
                    &history,
                )?;
            }
            if stop {
                return Err(StudentError::Interrupted {
                    epoch,
                    batch: pos.batch,
                });
            }
        }
        if n_batches > 0 && pos.skipped >= n_batches {
            return Err(StudentError::AllSkipped {
                epoch,
                batches: n_batches,
                first: pos.first_skip.clone().unwrap_or_default(),
            });
        }
        let secs = base_seconds + start.elapsed().as_secs_f64();
        let rows = pos.rows.max(1) as f64;
        let report = EpochReport {
            epoch,
            train_loss: pos.loss_sums[0] / rows,
            teacher_loss: (has_teacher || pos.loss_sums[1] != 0.0)
                .then_some(pos.loss_sums[1] / rows),
            valid: validate(store)?,
            train_seconds: secs,
            impressions_per_second: pos.rows as f64 / secs.max(1e-9),
            skipped_batches: pos.skipped,
        };
        progress(&TrainEvent::Epoch(report.clone()));
        // An undefined AUC (one class) never counts as an improvement.
        let metric = report
            .valid
            .as_ref()
            .map(|v| v.long_read_auc.unwrap_or(f64::NEG_INFINITY));
        history.epochs.push(report);
        if let Some(m) = metric {
            match &best {
                Some((b, at, _)) if m <= *b => {
                    if opts.patience > 0 && epoch - at >= opts.patience && epoch + 1 < opts.epochs {
                        history.stopped_early = true;
                    }
                }
                _ => best = Some((m, epoch, store.clone())),
            }
        }
        pos = Position {
            epoch: epoch + 1,
            stopped_early: history.stopped_early,
            ..Position::default()
        };
        if let Some(w) = writer.as_mut() {
            w.write(
                model,
                fingerprint,
                store,
                &adam,
                best.as_ref().map(|(m, e, s)| (*m, *e, s)),
                &pos,
                &history,
            )?;
        }
        if stop_at_epoch_end && !history.stopped_early && pos.epoch < opts.epochs {
            return Err(StudentError::Interrupted {
                epoch: pos.epoch,
                batch: 0,
            });
        }
    }
    if let Some((_, epoch, saved)) = best {
        *store = saved;
        history.best_epoch = Some(epoch);
    }
    Ok(history)
}

pub(crate) fn check_labelled(name: &str, data: &Dataset) -> Result<()> {
    if !data.has_labels() {
        return Err(StudentError::Data(format!("the {name} set has no labels")));
    }
    check_dataset_labels(data).map_err(|e| StudentError::Data(format!("the {name} set: {e}")))
}

impl Student {
    /// Trains the towers on the configured objective with Adam (`config.train`), the batch
    /// order shuffled by `(train.seed, epoch)`.
    ///
    /// `teacher` is the teacher's pCTCVR for every row of `train` (two-stage DMTL: the teacher
    /// is trained and frozen first, its scores computed once); each batch takes its rows'
    /// entries. It is required by [`crate::ObjectiveConfig::Distill`] and ignored otherwise.
    ///
    /// With `valid`, the long-read and click AUCs of the score are measured after each epoch;
    /// training stops when the long-read AUC has not improved for `train.patience` epochs
    /// (0: never), and the best epoch's parameters are restored at the end. `progress` sees
    /// every batch and epoch. The result depends only on the configuration, the data and the
    /// thread count.
    ///
    /// Fails when a dataset is unlabelled or does not fit the schema and vocabularies, the
    /// teacher's scores are missing or not one probability per row, or the loss diverges.
    pub fn train(
        &mut self,
        train: &Dataset,
        valid: Option<&Dataset>,
        teacher: Option<&[f32]>,
        progress: impl FnMut(&TrainEvent),
    ) -> Result<TrainHistory> {
        self.train_from(train, valid, teacher, None, progress)
    }

    /// [`Student::train`] from any [`BatchSource`], optionally keeping a training state in
    /// `state.dir` that an interrupted run resumes from, exactly as
    /// [`dmtl_teacher::Teacher::train_from`] does (`teacher` then holds one score per row of
    /// the source, indexed by `Batch::rows`).
    pub fn train_from(
        &mut self,
        train: &dyn BatchSource,
        valid: Option<&Dataset>,
        teacher: Option<&[f32]>,
        state: Option<&StateDir>,
        mut progress: impl FnMut(&TrainEvent),
    ) -> Result<TrainHistory> {
        self.config().validate("<config>")?;
        if let Some(t) = train.in_memory() {
            check_labelled("training", t)?;
            self.towers().check_dataset(t)?;
        }
        if let Some(v) = valid {
            check_labelled("validation", v)?;
            self.towers().check_dataset(v)?;
        }
        let n_rows = train.n_rows();
        let objective_cfg = self.config().objective;
        let teacher = if objective_cfg.needs_teacher() {
            let t = teacher.ok_or_else(|| {
                StudentError::Data(
                    "distillation needs the teacher's pCTCVR for every training row".into(),
                )
            })?;
            if t.len() != n_rows {
                return Err(StudentError::Data(format!(
                    "the teacher's pCTCVR has {} entries for {} training rows",
                    t.len(),
                    n_rows
                )));
            }
            if let Some((i, v)) = t
                .iter()
                .enumerate()
                .find(|(_, v)| !(**v >= 0.0 && **v <= 1.0))
            {
                return Err(StudentError::Data(format!(
                    "teacher pCTCVR of training row {i} is {v}, not a probability"
                )));
            }
            Some(t)
        } else {
            None
        };
        let fingerprint = state::config_value(self.config())?;
        let (config, store, towers) = self.parts_mut();
        let opts = config.train.clone();
        let towers = towers.clone();
        let objective = objective_cfg.build();
        let stream = train.in_memory().is_none();
        run_epochs(
            store,
            &opts,
            train,
            "student",
            &fingerprint,
            state,
            |store, batch| {
                if stream {
                    // The towers check whole datasets; a streamed batch is checked as one.
                    towers.check_dataset(&Dataset {
                        fields: batch.fields.clone(),
                        click: Vec::new(),
                        duration: Vec::new(),
                        long_read: Vec::new(),
                        user_group: Vec::new(),
                        user_ids: Vec::new(),
                        item_group: Vec::new(),
                        item_ids: Vec::new(),
                        n_rows: batch.n_rows,
                    })?;
                }
                let picked: Option<Vec<f32>> =
                    teacher.map(|t| batch.rows.iter().map(|&r| t[r as usize]).collect());
                let (total, grads) =
                    loss_and_grads(store, &towers, objective.as_ref(), batch, picked.as_deref());
                Ok(StepLoss {
                    total,
                    grads,
                    teacher: None,
                })
            },
            |store| {
                let Some(v) = valid else { return Ok(None) };
                let s = score_rows(store, &towers, opts.batch_size, v)?;
                Ok(Some(ValidReport::compute(&s, v)))
            },
            &mut progress,
        )
    }
}
