//! The epoch loop shared by the teacher (`dmtl_teacher::Teacher::train_from`), the two-tower
//! student and joint training: batches shuffled by `(seed, epoch)`, one optimisation step
//! each, the `on_non_finite` policy, validation after every epoch, early stopping with the
//! best parameters restored, and the training state (see [`crate::state`]) written every
//! `checkpoint_every` batches and at every epoch's end, from which an interrupted run resumes.
//!
//! A model takes part by implementing [`Trainee`]: its parameter store, one step on a batch
//! (the loss and its parts, the update applied unless something is not finite; see
//! [`apply_step`]), validation and the metric early stopping watches. [`run`] does the rest,
//! the same way for every model, so that runs stop, skip, resume and report alike.

use std::time::Instant;

use dmtl_data::{check_batch_labels, check_dataset_labels, Batch, BatchSource, DataError, Dataset};
use dmtl_tensor::optim::{Adam, Optimizer};
use dmtl_tensor::{Grads, ParamId, ParamStore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{OnNonFinite, TrainOptions};
use crate::error::{InputError, StateError, TrainError};
use crate::parallel::{self, Computed, DataParallel, Split};
use crate::state::{self, Position, StateDir, StateWriter};
use dmtl_tensor::parallel::shares_of;

/// What happened in one epoch.
///
/// `P` holds the model's own mean loss parts, written in the same table as the common fields
/// (the teacher's `train_ctr_loss`, say); `V` is its validation report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport<P, V> {
    /// Epoch number, from 0.
    pub epoch: usize,
    /// Mean total loss (what a step differentiates) over the impressions trained on.
    pub train_loss: f64,
    /// The model's mean loss parts.
    #[serde(flatten)]
    pub parts: P,
    /// Validation metrics, when a validation set was given.
    pub valid: Option<V>,
    /// Seconds spent training (validation excluded).
    pub train_seconds: f64,
    /// Training impressions per second.
    pub impressions_per_second: f64,
    /// Batches whose update was skipped (`on_non_finite = "skip"`); 0 otherwise.
    #[serde(default)]
    pub skipped_batches: usize,
    /// Over several ranks ([`crate::parallel`]): seconds this rank spent exchanging gradients
    /// since training started in this process (waiting for the other ranks included); `None`
    /// in one process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm_seconds: Option<f64>,
}

/// Progress reported to the callback of a training function.
#[derive(Debug, Clone)]
pub enum TrainEvent<P, V> {
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
    Epoch(EpochReport<P, V>),
}

/// The record of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainHistory<P, V> {
    /// One report per epoch run.
    pub epochs: Vec<EpochReport<P, V>>,
    /// The epoch with the best validation metric (the long-read AUC), whose parameters the
    /// model holds now; `None` without validation (the model then holds the last epoch's).
    pub best_epoch: Option<usize>,
    /// True when patience ran out before the last epoch.
    pub stopped_early: bool,
}

impl<P, V> Default for TrainHistory<P, V> {
    fn default() -> Self {
        TrainHistory {
            epochs: Vec::new(),
            best_epoch: None,
            stopped_early: false,
        }
    }
}

/// The progress events of a [`Trainee`]'s training.
pub type EventOf<T> = TrainEvent<<T as Trainee>::Parts, <T as Trainee>::Valid>;

/// The record of a [`Trainee`]'s training.
pub type HistoryOf<T> = TrainHistory<<T as Trainee>::Parts, <T as Trainee>::Valid>;

/// Why a step left the parameters and the optimizer as they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonFiniteStep {
    /// The loss is NaN or infinite.
    Loss,
    /// This parameter's gradient holds a NaN or infinity.
    Gradient(ParamId),
    /// The update would have written a NaN or infinity into this parameter or its optimizer
    /// state.
    Update(ParamId),
}

/// Applies one step's gradients to `store` unless something is not finite: the loss, then
/// every gradient, are checked, the global gradient norm clipped to `clip_norm`, and `opt`'s
/// checked update applied. On `Err` neither `store` nor `opt` has changed.
pub fn apply_step(
    store: &mut ParamStore,
    opt: &mut (impl Optimizer + Clone),
    loss: f32,
    grads: &mut Grads,
    clip_norm: Option<f64>,
) -> Result<(), NonFiniteStep> {
    if !loss.is_finite() {
        return Err(NonFiniteStep::Loss);
    }
    // A finite loss can still overflow in the backward pass; never apply such an update.
    if let Some(id) = grads.first_non_finite() {
        return Err(NonFiniteStep::Gradient(id));
    }
    if let Some(c) = clip_norm {
        grads.clip_global_norm(c);
    }
    opt.try_step(store, grads)
        .map_err(|e| NonFiniteStep::Update(e.param))
}

/// A model [`run`] trains.
pub trait Trainee {
    /// The mean loss parts of an epoch besides the total ([`EpochReport::parts`]).
    type Parts: Clone + Serialize + DeserializeOwned;
    /// The validation report of an epoch.
    type Valid: Clone + Serialize + DeserializeOwned;
    /// The error training returns; the loop's own errors convert into it.
    type Error: From<TrainError> + From<StateError> + From<InputError> + From<DataError>;
    /// How many loss parts an epoch sums besides the total (a training state holds one sum
    /// more).
    const PARTS: usize;

    /// The parameters trained, saved in the state and restored at the best epoch.
    fn store(&self) -> &ParamStore;

    /// The same, to load a state or restore the best epoch into.
    fn store_mut(&mut self) -> &mut ParamStore;

    /// The loss, its parts and the gradients of `scale` times the loss on `batch` (the loop
    /// checks, clips, exchanges between ranks and applies them; see [`apply_step`]). The loss
    /// and parts returned are the batch's own means, unscaled. `scale` is 1 in one process; a
    /// rank of a data-parallel job passes its block's share of the global batch
    /// ([`dmtl_tensor::parallel::shares_of`] of the blocks' [`Trainee::mean_weight`]s), which
    /// the model must apply as the seed of its backward pass (as
    /// [`dmtl_tensor::parallel::Sharding::scale`] does) for the ranks to train, to the bit,
    /// what one process's row shards train. A batch of a streamed source has had its labels
    /// checked; the model checks that it fits its fields.
    fn gradients(&mut self, batch: &Batch, scale: f64) -> Result<Computed, Self::Error>;

    /// The denominator of the mean the loss takes over `batch`: its rows (the default), or the
    /// sum of their weights for a weighted mean. `None` when the loss couples the batch's rows
    /// (in-batch negatives, say), so that a batch can never be split over ranks.
    fn mean_weight(&self, batch: &Batch) -> Option<f64> {
        Some(batch.n_rows as f64)
    }

    /// The validation report after an epoch, `None` without a validation set.
    fn validate(&mut self) -> Result<Option<Self::Valid>, Self::Error>;

    /// The metric early stopping maximises (`None`, an undefined AUC, never improves).
    fn metric(valid: &Self::Valid) -> Option<f64>;

    /// The epoch's mean parts from their sums over `rows` impressions (`sums[0]` is the
    /// total's; `sums[1..]` the parts', [`Trainee::PARTS`] of them).
    fn parts(&self, sums: &[f64], rows: f64) -> Self::Parts;
}

/// One rank's part of a data-parallel step.
struct RankPart {
    /// Its rows (`None` when it has none).
    batch: Option<Batch>,
    /// The denominator of its mean loss (0 without rows).
    weight: f64,
    /// The scale of its gradient: with slices, its block's share of the global batch, known
    /// before the backward pass; with shares, 1 (the exchange scales it).
    scale: f64,
}

/// This rank's part of the step's `batch` (read by this rank; `None` when out of rows): with
/// `slices`, its block of the global batch ([`parallel::block_ranges`]) and the block's share
/// of the global mean ([`shares_of`] over every block's [`Trainee::mean_weight`], as one
/// process weighs its row shards); otherwise the batch itself.
fn rank_part<T: Trainee>(
    model: &T,
    batch: Option<Batch>,
    slices: bool,
    rank: usize,
    size: usize,
) -> Result<RankPart, T::Error> {
    let coupled = || TrainError::Unsplittable { rank, ranks: size };
    let Some(batch) = batch.filter(|b| b.n_rows > 0) else {
        return Ok(RankPart {
            batch: None,
            weight: 0.0,
            scale: 1.0,
        });
    };
    if !slices {
        let weight = model.mean_weight(&batch).ok_or_else(coupled)?;
        return Ok(RankPart {
            batch: Some(batch),
            weight,
            scale: 1.0,
        });
    }
    let blocks = parallel::block_ranges(batch.n_rows, size);
    let Some(mine) = blocks.get(rank).cloned() else {
        return Ok(RankPart {
            batch: None,
            weight: 0.0,
            scale: 1.0,
        });
    };
    let mut weights = Vec::with_capacity(blocks.len());
    for r in &blocks {
        weights.push(
            model
                .mean_weight(&batch.part(r.clone()))
                .ok_or_else(coupled)?,
        );
    }
    let rows: Vec<usize> = blocks.iter().map(|r| r.len()).collect();
    let scale = shares_of(&weights, &rows)[rank];
    Ok(RankPart {
        batch: Some(batch.part(mine).into_owned()),
        weight: weights[rank],
        scale,
    })
}

fn best_ref(best: &Option<(f64, usize, ParamStore)>) -> Option<(f64, usize, &ParamStore)> {
    best.as_ref().map(|(m, e, s)| (*m, *e, s))
}

/// Fails, naming the set (`training`, `validation`), when `data` is unlabelled or holds a
/// label out of range.
pub fn check_labelled(name: &str, data: &Dataset) -> Result<(), InputError> {
    if !data.has_labels() {
        return Err(InputError::Data(format!("the {name} set has no labels")));
    }
    check_dataset_labels(data).map_err(|e| InputError::Data(format!("the {name} set: {e}")))
}

/// Trains `model` on `train` following `opts` (Adam at `opts.lr`, epochs of batches shuffled
/// by `(opts.seed, epoch)`), as the module documentation describes.
///
/// With `state`, the training state is kept in `state.dir` under the model name `name` and
/// the configuration `fingerprint` ([`state::config_value`]); with `state.resume` and a state
/// there, training continues from it and ends exactly as a run never interrupted would.
/// `opts.stop_after_batches = Some(n)` stops after `n` batches of this call with
/// [`TrainError::Interrupted`] (mid-epoch the state is written first; when the `n`-th batch
/// ends an epoch, the epoch is finished first). `progress` sees every batch and epoch.
pub fn run<T: Trainee>(
    model: &mut T,
    train: &dyn BatchSource,
    opts: &TrainOptions,
    name: &str,
    fingerprint: &toml::Value,
    state: Option<&StateDir>,
    progress: &mut dyn FnMut(&EventOf<T>),
) -> Result<HistoryOf<T>, T::Error> {
    let mut adam = Adam::new(opts.lr);
    let mut history = TrainHistory::default();
    let mut best: Option<(f64, usize, ParamStore)> = None;
    let mut pos = Position::default();
    let mut writer = None;
    // Over several ranks: this rank's part of each global batch; rank 0 alone writes.
    let mut dp =
        parallel::current_split().map(|(c, split)| DataParallel::new(c, split, model.store()));
    let (rank, size) = dp
        .as_ref()
        .map_or((0, 1), |d| (d.coll().rank(), d.coll().size()));
    let slices = dp.as_ref().is_some_and(|d| d.split() == Split::Slices);
    // The batches this rank reads: global ones to take its block of, or its own share's.
    let batch_size = if slices || size == 1 {
        opts.batch_size
    } else {
        parallel::local_batch_size(opts.batch_size, rank, size)
    };
    if let Some(sd) = state {
        let mut w = None;
        if rank == 0 {
            w = Some(StateWriter::new(&sd.dir)?);
        }
        if sd.resume {
            if let Some(l) = state::load(&sd.dir, name, fingerprint, model.store())? {
                *model.store_mut() = l.params;
                adam = l.adam;
                adam.lr = opts.lr;
                history = l.history;
                best = l.best;
                pos = l.position;
                if rank == 0 {
                    w = Some(l.writer);
                }
            }
        }
        writer = w;
    }
    // The state as a checkpoint mid-epoch and at an epoch's end write it.
    let write_state = |w: &mut StateWriter,
                       store: &ParamStore,
                       adam: &Adam,
                       best: &Option<(f64, usize, ParamStore)>,
                       pos: &Position,
                       history: &HistoryOf<T>| {
        w.write(name, fingerprint, store, adam, best_ref(best), pos, history)
    };
    let local_batches = train.n_rows().div_ceil(batch_size);
    let n_batches = match &dp {
        Some(d) => {
            let most = d.max_over_ranks(local_batches).map_err(TrainError::from)?;
            if slices && most != local_batches {
                return Err(TrainError::RanksDiffer {
                    rank,
                    batches: local_batches,
                    most,
                }
                .into());
            }
            most
        }
        None => local_batches,
    };
    let mut trained_here = 0usize;
    while pos.epoch < opts.epochs && !pos.stopped_early {
        let epoch = pos.epoch;
        let start = Instant::now();
        let base_seconds = pos.seconds;
        let mut stop_at_epoch_end = false;
        if pos.loss_sums.len() != 1 + T::PARTS {
            pos.loss_sums = vec![0.0; 1 + T::PARTS];
        }
        let mut batches =
            train.epoch_batches(batch_size, Some((opts.seed, epoch as u64)), pos.batch)?;
        while pos.batch < n_batches {
            let b = pos.batch;
            // A rank out of rows takes part in the step with none.
            let batch = batches.next().transpose()?;
            if let Some(batch) = &batch {
                if train.in_memory().is_none() {
                    check_batch_labels(batch)
                        .map_err(|e| InputError::Data(format!("the training set: {e}")))?;
                }
            }
            let (step, rows) = match dp.as_mut() {
                None => {
                    let batch = batch.filter(|b| b.n_rows > 0);
                    let local = match &batch {
                        Some(batch) => model.gradients(batch, 1.0)?,
                        None => Computed::empty(T::PARTS),
                    };
                    (local, batch.as_ref().map_or(0, |b| b.n_rows))
                }
                Some(d) => {
                    let part = rank_part(model, batch, slices, rank, size)?;
                    let local = match &part.batch {
                        Some(batch) => model.gradients(batch, part.scale)?,
                        None => Computed::empty(T::PARTS),
                    };
                    // Equal lengths on every rank, for the exchange.
                    let mut local = local;
                    local.parts.resize(T::PARTS, 0.0);
                    let rows = part.batch.as_ref().map_or(0, |b| b.n_rows);
                    d.sum_step(local, rows, part.weight, slices)
                        .map_err(TrainError::from)?
                }
            };
            let Computed {
                loss,
                parts,
                mut grads,
            } = step;
            let outcome = apply_step(
                model.store_mut(),
                &mut adam,
                loss,
                &mut grads,
                opts.clip_norm,
            );
            let name_of = |id: ParamId| model.store().get(id).name.clone();
            let failure = outcome.err().map(|f| match f {
                NonFiniteStep::Loss => TrainError::NonFinite {
                    epoch,
                    batch: b,
                    loss,
                },
                NonFiniteStep::Gradient(id) => TrainError::NonFiniteGradient {
                    epoch,
                    batch: b,
                    parameter: name_of(id),
                },
                NonFiniteStep::Update(id) => TrainError::NonFiniteUpdate {
                    epoch,
                    batch: b,
                    parameter: name_of(id),
                },
            });
            match failure {
                Some(err) if opts.on_non_finite == OnNonFinite::Stop => return Err(err.into()),
                Some(err) => {
                    pos.skipped += 1;
                    pos.first_skip.get_or_insert_with(|| err.to_string());
                }
                None => {
                    let n = rows as f64;
                    pos.rows += rows;
                    pos.loss_sums[0] += loss as f64 * n;
                    for (sum, part) in pos.loss_sums[1..].iter_mut().zip(&parts) {
                        *sum += *part as f64 * n;
                    }
                }
            }
            pos.batch += 1;
            progress(&TrainEvent::Batch {
                epoch,
                batch: b,
                n_batches,
                loss,
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
                write_state(w, model.store(), &adam, &best, &pos, &history)?;
            }
            if stop {
                return Err(TrainError::Interrupted {
                    epoch,
                    batch: pos.batch,
                }
                .into());
            }
        }
        drop(batches);
        if n_batches > 0 && pos.skipped >= n_batches {
            return Err(TrainError::AllSkipped {
                epoch,
                batches: n_batches,
                first: pos.first_skip.clone().unwrap_or_default(),
            }
            .into());
        }
        let secs = base_seconds + start.elapsed().as_secs_f64();
        let rows = pos.rows.max(1) as f64;
        let valid = match &dp {
            None => model.validate()?,
            Some(d) => {
                // Rank 0 validates; every rank decides on its report.
                let mut bytes = Vec::new();
                if rank == 0 {
                    bytes = serde_json::to_vec(&model.validate()?)
                        .map_err(|e| TrainError::Report(e.to_string()))?;
                }
                d.coll()
                    .broadcast_bytes(&mut bytes)
                    .map_err(TrainError::from)?;
                dmtl_dist::check_same_params(d.coll(), model.store()).map_err(TrainError::from)?;
                serde_json::from_slice(&bytes).map_err(|e| TrainError::Report(e.to_string()))?
            }
        };
        let report = EpochReport {
            epoch,
            train_loss: pos.loss_sums[0] / rows,
            parts: model.parts(&pos.loss_sums, rows),
            valid,
            train_seconds: secs,
            impressions_per_second: pos.rows as f64 / secs.max(1e-9),
            skipped_batches: pos.skipped,
            comm_seconds: dp.as_ref().map(|d| d.comm_time().as_secs_f64()),
        };
        progress(&TrainEvent::Epoch(report.clone()));
        // An undefined AUC (one class) never counts as an improvement.
        let metric = report
            .valid
            .as_ref()
            .map(|v| T::metric(v).unwrap_or(f64::NEG_INFINITY));
        history.epochs.push(report);
        if let Some(m) = metric {
            match &best {
                Some((b, at, _)) if m <= *b => {
                    if opts.patience > 0 && epoch - at >= opts.patience && epoch + 1 < opts.epochs {
                        history.stopped_early = true;
                    }
                }
                _ => best = Some((m, epoch, model.store().clone())),
            }
        }
        pos = Position {
            epoch: epoch + 1,
            stopped_early: history.stopped_early,
            ..Position::default()
        };
        if let Some(w) = writer.as_mut() {
            write_state(w, model.store(), &adam, &best, &pos, &history)?;
        }
        if stop_at_epoch_end && !history.stopped_early && pos.epoch < opts.epochs {
            return Err(TrainError::Interrupted {
                epoch: pos.epoch,
                batch: 0,
            }
            .into());
        }
    }
    if let Some((_, epoch, saved)) = best {
        *model.store_mut() = saved;
        history.best_epoch = Some(epoch);
    }
    Ok(history)
}
