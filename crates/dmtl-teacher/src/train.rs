//! Training the teacher: epochs of Adam on the ESMM loss, validation after each, early stopping.

use std::time::Instant;

use dmtl_data::{Batch, Dataset};
use dmtl_loss::{esmm_loss, Reduction};
use dmtl_tensor::optim::{Adam, Optimizer};
use dmtl_tensor::parallel::data_parallel;

use crate::config::TrainConfig;
use crate::error::{Result, TeacherError};
use crate::teacher::{Teacher, TeacherScores};

/// Validation metrics of one epoch.
#[derive(Debug, Clone, PartialEq)]
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

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// Epoch number, from 0.
    pub epoch: usize,
    /// Mean total loss over the epoch's impressions.
    pub train_loss: f64,
    /// Mean `BCE(click, pCTR)`.
    pub train_ctr_loss: f64,
    /// Mean `BCE(click & long read, pCTCVR)`.
    pub train_ctcvr_loss: f64,
    /// Validation metrics, when a validation set was given.
    pub valid: Option<ValidReport>,
    /// Seconds spent training (validation excluded).
    pub train_seconds: f64,
    /// Training impressions per second.
    pub impressions_per_second: f64,
}

/// Progress reported to the callback of [`Teacher::train`].
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
        /// The batch's mean total loss.
        loss: f32,
    },
    /// An epoch ended (after validation).
    Epoch(EpochReport),
}

/// The record of a training run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainHistory {
    /// One report per epoch run.
    pub epochs: Vec<EpochReport>,
    /// The epoch with the best validation long-read AUC, whose parameters the teacher holds
    /// now; `None` without validation (the teacher then holds the last epoch's).
    pub best_epoch: Option<usize>,
    /// True when patience ran out before the last epoch.
    pub stopped_early: bool,
}

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
        opt: &mut impl Optimizer,
        batch: &Batch,
        clip_norm: Option<f64>,
    ) -> StepLoss {
        let w = self.config().ctcvr_weight;
        // Row shards of the batch run forward and backward in parallel (one per thread).
        let sharded = data_parallel(self.store(), batch.n_rows, |g, rows| {
            let part;
            let b = if rows.len() == batch.n_rows {
                batch
            } else {
                part = batch.slice_rows(rows);
                &part
            };
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
        };
        if !values.total.is_finite() {
            return values;
        }
        let mut grads = sharded.grads;
        // A finite loss can still overflow in the backward pass; never apply such an update.
        if let Some(id) = grads.first_non_finite() {
            return StepLoss {
                non_finite_grad: Some(id),
                ..values
            };
        }
        if let Some(c) = clip_norm {
            grads.clip_global_norm(c);
        }
        opt.step(self.store_mut(), &grads);
        values
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
    /// Fails when a dataset is unlabelled or does not fit the schema and vocabularies, or when
    /// the loss becomes NaN or infinite.
    pub fn train(
        &mut self,
        train: &Dataset,
        valid: Option<&Dataset>,
        opts: &TrainConfig,
        mut progress: impl FnMut(&TrainEvent),
    ) -> Result<TrainHistory> {
        let mut checked = self.config().clone();
        checked.train = opts.clone();
        checked.validate("train options")?;
        for (name, data) in [("training", Some(train)), ("validation", valid)] {
            let Some(data) = data else { continue };
            if !data.has_labels() {
                return Err(TeacherError::Data(format!("the {name} set has no labels")));
            }
            self.embeddings().check_dataset(data)?;
        }
        let mut adam = Adam::new(opts.lr);
        let mut history = TrainHistory::default();
        let mut best: Option<(f64, usize, dmtl_tensor::ParamStore)> = None;
        let n_batches = train.n_rows.div_ceil(opts.batch_size);
        for epoch in 0..opts.epochs {
            let start = Instant::now();
            let (mut sum, mut sum_ctr, mut sum_ctcvr) = (0.0f64, 0.0f64, 0.0f64);
            let batches = train.batches(opts.batch_size, Some((opts.seed, epoch as u64)), false);
            for (b, batch) in batches.enumerate() {
                let loss = self.train_step(&mut adam, &batch, opts.clip_norm);
                let total = loss.total;
                if let Some(id) = loss.non_finite_grad {
                    return Err(TeacherError::NonFiniteGradient {
                        epoch,
                        batch: b,
                        parameter: self.store().get(id).name.clone(),
                    });
                }
                if !total.is_finite() {
                    return Err(TeacherError::NonFinite {
                        epoch,
                        batch: b,
                        loss: total,
                    });
                }
                let n = batch.n_rows as f64;
                sum += total as f64 * n;
                sum_ctr += loss.ctr as f64 * n;
                sum_ctcvr += loss.ctcvr as f64 * n;
                progress(&TrainEvent::Batch {
                    epoch,
                    batch: b,
                    n_batches,
                    loss: total,
                });
            }
            let secs = start.elapsed().as_secs_f64();
            let rows = train.n_rows.max(1) as f64;
            let valid_report = match valid {
                Some(v) => Some(ValidReport::compute(&self.predict(v)?, v)),
                None => None,
            };
            let report = EpochReport {
                epoch,
                train_loss: sum / rows,
                train_ctr_loss: sum_ctr / rows,
                train_ctcvr_loss: sum_ctcvr / rows,
                valid: valid_report,
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
                    Some((b, _, _)) if m <= *b => {
                        let since = epoch - best.as_ref().map_or(0, |x| x.1);
                        if opts.patience > 0 && since >= opts.patience && epoch + 1 < opts.epochs {
                            history.stopped_early = true;
                            break;
                        }
                    }
                    _ => best = Some((m, epoch, self.store().clone())),
                }
            }
        }
        if let Some((_, epoch, store)) = best {
            *self.store_mut() = store;
            history.best_epoch = Some(epoch);
        }
        Ok(history)
    }
}
