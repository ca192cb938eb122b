//! Training the teacher: epochs of Adam on the ESMM loss, validation after each, early stopping.

use dmtl_data::{check_dataset_labels, Batch, BatchSource, Dataset};
use dmtl_loss::{esmm_loss, Reduction};
use dmtl_tensor::optim::Optimizer;
use dmtl_tensor::parallel::{data_parallel_by, Sharding};
use dmtl_tensor::{Grads, Precision};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Result, TeacherError};
use crate::teacher::{Teacher, TeacherScores};

/// The epoch loop shared with the student, from `dmtl-train`.
pub use dmtl_train::epochs;
/// The training state on disk, from `dmtl-train`.
pub use dmtl_train::state;

use dmtl_train::Computed;
use epochs::{NonFiniteStep, Trainee};

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
    /// The ESMM loss on `batch` (mean over the batch, `w = config.ctcvr_weight`) and its
    /// gradients, the parameters untouched: the forward and backward half of
    /// [`Teacher::train_step`]. Returns the gradients and the loss (its `non_finite_*` fields
    /// unset).
    ///
    /// # Panics
    /// When the batch is unlabelled or does not fit the schema and vocabularies.
    pub fn gradients(&self, batch: &Batch) -> (Grads, StepLoss) {
        self.gradients_in(batch, self.config().train.precision, 1.0)
    }

    /// [`Teacher::gradients`] with the dense products in `precision` (bf16 operands with f32
    /// accumulation for [`Precision::Bf16`] where the CPU has AVX-512 BF16, f32 elsewhere) and
    /// the gradients of `scale` times the loss (the loss reported stays the batch mean): `scale`
    /// is 1 in one process, and a rank of a data-parallel job passes its block's share of the
    /// global batch's rows.
    ///
    /// # Panics
    /// As [`Teacher::gradients`].
    pub fn gradients_in(
        &self,
        batch: &Batch,
        precision: Precision,
        scale: f64,
    ) -> (Grads, StepLoss) {
        let w = self.config().ctcvr_weight;
        let n = batch.n_rows;
        // Row shards of the batch run forward and backward in parallel (one per thread).
        let rows = |r: std::ops::Range<usize>| r.len() as f64;
        let sharding = Sharding::for_rows(n).scaled(scale).in_precision(precision);
        let sharded = data_parallel_by(self.store(), n, sharding, rows, |g, rows| {
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
        (sharded.grads, values)
    }

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
        let (mut grads, values) = self.gradients(batch);
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
        if let Some(notice) = opts.precision.fallback_notice("teacher") {
            eprintln!("{notice}");
        }
        let mut run = TeacherRun {
            stream: train.in_memory().is_none(),
            teacher: self,
            valid,
            precision: opts.precision,
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
    /// The arithmetic of the steps' dense products (`opts.precision`).
    precision: Precision,
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

    fn gradients(&mut self, batch: &Batch, scale: f64) -> Result<Computed> {
        if self.stream {
            self.teacher
                .embeddings()
                .check_fields(&batch.fields, batch.n_rows)?;
        }
        let (grads, loss) = self.teacher.gradients_in(batch, self.precision, scale);
        Ok(Computed {
            loss: loss.total,
            parts: vec![loss.ctr, loss.ctcvr],
            grads,
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
