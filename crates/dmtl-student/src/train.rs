//! Training the student: two-stage distillation (teacher scores precomputed) or a competitor's
//! objective, epochs of Adam, validation after each epoch, early stopping on the long-read AUC.

use dmtl_data::{Batch, BatchSource, Dataset};
use dmtl_tensor::{Grads, ParamStore};
use dmtl_train::epochs::{self, Trainee};
use dmtl_train::state::{self, StateDir};
use dmtl_train::Computed;
use serde::{Deserialize, Serialize};

use crate::config::TrainOptions;
use crate::error::{Result, StudentError};
use crate::step::{loss_and_grads_in, mean_weight};
use crate::two_tower::{score_rows, Student, TwoTower};

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

/// The student's mean loss parts of an epoch, beside [`EpochReport`]'s `train_loss`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StudentLosses {
    /// Under joint training, the mean ESMM loss of the teacher (`train_loss` is then the sum
    /// of it and the student's); `None` otherwise.
    pub teacher_loss: Option<f64>,
}

/// What happened in one epoch of the student's (or joint) training.
pub type EpochReport = epochs::EpochReport<StudentLosses, ValidReport>;

/// Progress reported to the callback of the training functions.
pub type TrainEvent = epochs::TrainEvent<StudentLosses, ValidReport>;

/// The record of a training run.
pub type TrainHistory = epochs::TrainHistory<StudentLosses, ValidReport>;

/// The loss of one batch: the value to differentiate, under joint training the teacher's
/// part, and the gradients.
pub struct StepLoss {
    /// The gradients of `total` with respect to the store's parameters.
    pub grads: Grads,
    /// The batch's mean total loss.
    pub total: f32,
    /// Under joint training, the teacher's part of `total`; `None` otherwise.
    pub teacher: Option<f32>,
}

/// The student's towers (alone, or beside the teacher under joint training) under the epoch
/// loop: `step` computes a batch's loss and gradients on `store`, validation scores `valid`
/// with `towers`.
struct StudentRun<'a, S> {
    store: &'a mut ParamStore,
    weight: &'a dyn Fn(&Batch) -> Option<f64>,
    towers: &'a TwoTower,
    valid: Option<&'a Dataset>,
    batch_size: usize,
    joint: bool,
    step: S,
}

impl<S: FnMut(&ParamStore, &Batch, f64) -> Result<StepLoss>> Trainee for StudentRun<'_, S> {
    type Parts = StudentLosses;
    type Valid = ValidReport;
    type Error = StudentError;
    const PARTS: usize = 1;

    fn store(&self) -> &ParamStore {
        self.store
    }

    fn store_mut(&mut self) -> &mut ParamStore {
        self.store
    }

    fn gradients(&mut self, batch: &Batch, scale: f64) -> Result<Computed> {
        let StepLoss {
            grads,
            total,
            teacher,
        } = (self.step)(self.store, batch, scale)?;
        Ok(Computed {
            loss: total,
            parts: teacher.into_iter().collect(),
            grads,
        })
    }

    fn mean_weight(&self, batch: &Batch) -> Option<f64> {
        (self.weight)(batch)
    }

    fn validate(&mut self) -> Result<Option<ValidReport>> {
        let Some(v) = self.valid else { return Ok(None) };
        let s = score_rows(self.store, self.towers, self.batch_size, v)?;
        Ok(Some(ValidReport::compute(&s, v)))
    }

    fn metric(valid: &ValidReport) -> Option<f64> {
        valid.long_read_auc
    }

    fn parts(&self, sums: &[f64], rows: f64) -> StudentLosses {
        StudentLosses {
            teacher_loss: self.joint.then_some(sums[1] / rows),
        }
    }
}

/// Two-stage and joint training under the epoch loop shared with the teacher
/// ([`dmtl_train::epochs::run`]): `step(store, batch, scale)` computes each batch's loss and
/// the gradients of `scale` times it on the store (the update, its checks and clipping are the
/// loop's; see [`dmtl_train::epochs::Trainee::gradients`]), `weight` gives the denominator of
/// the mean the loss takes over a batch ([`dmtl_train::epochs::Trainee::mean_weight`]),
/// validation scores `valid`
/// with `towers`; the training state lives in `state` under the model name `model` with
/// configuration `fingerprint`. The model name `joint` reports the teacher's part of each
/// step's loss as [`StudentLosses::teacher_loss`].
#[allow(clippy::too_many_arguments)]
pub fn run_epochs(
    store: &mut ParamStore,
    towers: &TwoTower,
    opts: &TrainOptions,
    train: &dyn BatchSource,
    valid: Option<&Dataset>,
    model: &str,
    fingerprint: &toml::Value,
    state: Option<&StateDir>,
    weight: &dyn Fn(&Batch) -> Option<f64>,
    step: impl FnMut(&ParamStore, &Batch, f64) -> Result<StepLoss>,
    progress: &mut dyn FnMut(&TrainEvent),
) -> Result<TrainHistory> {
    let mut run = StudentRun {
        store,
        weight,
        towers,
        valid,
        batch_size: opts.batch_size,
        // Only joint training has a teacher's loss to report.
        joint: model == "joint",
        step,
    };
    epochs::run(&mut run, train, opts, model, fingerprint, state, progress)
}

/// Fails, naming the set (`training`, `validation`), when `data` is unlabelled or holds a
/// label out of range.
pub fn check_labelled(name: &str, data: &Dataset) -> Result<()> {
    Ok(epochs::check_labelled(name, data)?)
}

impl Student {
    /// Trains the towers on the configured objective with Adam (`config.train`), the batch
    /// order shuffled by `(train.seed, epoch)`.
    ///
    /// `teacher` is the teacher's pCTCVR for every row of `train` (two-stage DMTL: the teacher
    /// is trained and frozen first, its scores computed once); each batch takes its rows'
    /// entries. It is required by an objective that [needs the teacher](crate::Objective::needs_teacher)
    /// (`distill`) and ignored otherwise.
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
    /// `state.dir` that an interrupted run resumes from, exactly as the teacher's
    /// `train_from` does (`teacher` then holds one score per row of
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
        let objective = self.config().objective.build();
        let teacher = if objective.needs_teacher() {
            let t = teacher.ok_or_else(|| {
                StudentError::Data(format!(
                    "objective `{}` needs the teacher's pCTCVR for every training row",
                    objective.name()
                ))
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
        if let Some(notice) = opts.precision.fallback_notice("student") {
            eprintln!("{notice}");
        }
        let stream = train.in_memory().is_none();
        // The teacher's pCTCVR of a batch's rows.
        let picked = |batch: &Batch| -> Option<Vec<f32>> {
            teacher.map(|t| batch.rows.iter().map(|&r| t[r as usize]).collect())
        };
        run_epochs(
            store,
            &towers,
            &opts,
            train,
            valid,
            "student",
            &fingerprint,
            state,
            &|batch| mean_weight(objective.as_ref(), batch, picked(batch).as_deref()),
            |store, batch, scale| {
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
                let (total, grads) = loss_and_grads_in(
                    store,
                    opts.precision,
                    &towers,
                    objective.as_ref(),
                    batch,
                    picked(batch).as_deref(),
                    scale,
                );
                Ok(StepLoss {
                    total,
                    grads,
                    teacher: None,
                })
            },
            &mut progress,
        )
    }
}
