//! Training the student: two-stage distillation (teacher scores precomputed) or a competitor's
//! objective, epochs of Adam, validation after each epoch, early stopping on the long-read AUC.

use std::time::Instant;

use dmtl_data::{Batch, Dataset};
use dmtl_tensor::optim::{Adam, Optimizer};
use dmtl_tensor::{Grads, ParamStore};
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
/// each batch's gradients on `store`, Adam, validation, early stopping with the best store
/// restored.
pub(crate) fn run_epochs(
    store: &mut ParamStore,
    opts: &TrainOptions,
    train: &Dataset,
    mut step: impl FnMut(&ParamStore, &Batch) -> StepLoss,
    mut validate: impl FnMut(&ParamStore) -> Result<Option<ValidReport>>,
    progress: &mut dyn FnMut(&TrainEvent),
) -> Result<TrainHistory> {
    let mut adam = Adam::new(opts.lr);
    let mut history = TrainHistory::default();
    let mut best: Option<(f64, usize, ParamStore)> = None;
    let n_batches = train.n_rows.div_ceil(opts.batch_size);
    for epoch in 0..opts.epochs {
        let start = Instant::now();
        let (mut sum, mut sum_teacher) = (0.0f64, 0.0f64);
        let mut has_teacher = false;
        for (b, batch) in train
            .batches(opts.batch_size, Some((opts.seed, epoch as u64)), false)
            .enumerate()
        {
            let StepLoss {
                mut grads,
                total,
                teacher,
            } = step(store, &batch);
            if !total.is_finite() {
                return Err(StudentError::NonFinite {
                    epoch,
                    batch: b,
                    loss: total,
                });
            }
            let n = batch.n_rows as f64;
            sum += total as f64 * n;
            if let Some(t) = teacher {
                has_teacher = true;
                sum_teacher += t as f64 * n;
            }
            if let Some(c) = opts.clip_norm {
                grads.clip_global_norm(c);
            }
            adam.step(store, &grads);
            progress(&TrainEvent::Batch {
                epoch,
                batch: b,
                n_batches,
                loss: total,
            });
        }
        let secs = start.elapsed().as_secs_f64();
        let rows = train.n_rows.max(1) as f64;
        let report = EpochReport {
            epoch,
            train_loss: sum / rows,
            teacher_loss: has_teacher.then_some(sum_teacher / rows),
            valid: validate(store)?,
            train_seconds: secs,
            impressions_per_second: train.n_rows as f64 / secs.max(1e-9),
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
                        break;
                    }
                }
                _ => best = Some((m, epoch, store.clone())),
            }
        }
    }
    if let Some((_, epoch, saved)) = best {
        *store = saved;
        history.best_epoch = Some(epoch);
    }
    Ok(history)
}

pub(crate) fn check_labelled(name: &str, data: &Dataset) -> Result<()> {
    if data.has_labels() {
        Ok(())
    } else {
        Err(StudentError::Data(format!("the {name} set has no labels")))
    }
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
        mut progress: impl FnMut(&TrainEvent),
    ) -> Result<TrainHistory> {
        self.config().validate("<config>")?;
        check_labelled("training", train)?;
        self.towers().check_dataset(train)?;
        if let Some(v) = valid {
            check_labelled("validation", v)?;
            self.towers().check_dataset(v)?;
        }
        let objective_cfg = self.config().objective;
        let teacher = if objective_cfg.needs_teacher() {
            let t = teacher.ok_or_else(|| {
                StudentError::Data(
                    "distillation needs the teacher's pCTCVR for every training row".into(),
                )
            })?;
            if t.len() != train.n_rows {
                return Err(StudentError::Data(format!(
                    "the teacher's pCTCVR has {} entries for {} training rows",
                    t.len(),
                    train.n_rows
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
        let (config, store, towers) = self.parts_mut();
        let opts = config.train.clone();
        let towers = towers.clone();
        let objective = objective_cfg.build();
        run_epochs(
            store,
            &opts,
            train,
            |store, batch| {
                let picked: Option<Vec<f32>> =
                    teacher.map(|t| batch.rows.iter().map(|&r| t[r as usize]).collect());
                let (total, grads) =
                    loss_and_grads(store, &towers, objective.as_ref(), batch, picked.as_deref());
                StepLoss {
                    total,
                    grads,
                    teacher: None,
                }
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
