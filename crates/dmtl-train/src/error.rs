//! Errors of the shared training machinery: the epoch loop's stops ([`TrainError`]), the
//! training state on disk ([`StateError`]), and configuration values or data that do not fit
//! the fields ([`InputError`]). Each model wraps them in its own error type.

use std::path::PathBuf;

use dmtl_tensor::TensorError;

/// Why the epoch loop ([`crate::epochs`]) stopped short, for the teacher, the student
/// and joint training alike.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Training diverged: the loss of a batch is NaN or infinite.
    #[error("epoch {epoch}, batch {batch}: the loss is {loss} (lower the learning rate?)")]
    NonFinite {
        /// Epoch (from 0).
        epoch: usize,
        /// Batch within the epoch (from 0).
        batch: usize,
        /// The loss value.
        loss: f32,
    },
    /// Training diverged: a gradient holds a NaN or infinity (the update was not applied).
    #[error("epoch {epoch}, batch {batch}: the gradient of `{parameter}` is not finite (lower the learning rate or set train.clip_norm)")]
    NonFiniteGradient {
        /// Epoch (from 0).
        epoch: usize,
        /// Batch within the epoch (from 0).
        batch: usize,
        /// The parameter's name.
        parameter: String,
    },
    /// Training diverged: a step's update would have written a NaN or infinity into a
    /// parameter or the optimizer's state (nothing was applied).
    #[error("epoch {epoch}, batch {batch}: the update of `{parameter}` is not finite (lower the learning rate or set train.clip_norm)")]
    NonFiniteUpdate {
        /// Epoch (from 0).
        epoch: usize,
        /// Batch within the epoch (from 0).
        batch: usize,
        /// The parameter's name.
        parameter: String,
    },
    /// With `on_non_finite = "skip"`, every batch of an epoch was skipped.
    #[error("epoch {epoch}: all {batches} batches had a non-finite loss, gradient or update and were skipped (first: {first})")]
    AllSkipped {
        /// Epoch (from 0).
        epoch: usize,
        /// Batches in the epoch.
        batches: usize,
        /// Why the first batch was skipped.
        first: String,
    },
    /// Data-parallel training over several ranks failed: a collective call, or the ranks'
    /// parameters differ (the error names the rank).
    #[error(transparent)]
    Distributed(#[from] dmtl_dist::DistError),
    /// Over several ranks that should each hold the whole training set
    /// ([`crate::parallel::Split::Slices`]), this rank's has another number of batches.
    #[error("rank {rank}: the ranks hold different training sets ({batches} batches here, {most} on another rank); every rank must read the same log")]
    RanksDiffer {
        /// This rank.
        rank: usize,
        /// Batches of an epoch here.
        batches: usize,
        /// The most batches of an epoch on any rank.
        most: usize,
    },
    /// The model's loss couples the rows of a batch (its [`crate::epochs::Trainee::mean_weight`]
    /// is `None`), so a batch cannot be split over ranks.
    #[error("rank {rank}: the loss couples the rows of a batch, which cannot be split over {ranks} ranks; train it in one process")]
    Unsplittable {
        /// This rank.
        rank: usize,
        /// The ranks of the job.
        ranks: usize,
    },
    /// Rank 0's validation report could not be passed to the other ranks.
    #[error("the validation report could not be sent to the other ranks: {0}")]
    Report(String),
    /// Training stopped on request (`train.stop_after_batches`) after writing its state;
    /// training again with the same state directory resumes at `epoch`, `batch`.
    #[error(
        "training stopped as requested before epoch {epoch}, batch {batch}; the state is saved"
    )]
    Interrupted {
        /// The epoch to resume in.
        epoch: usize,
        /// The next batch of that epoch.
        batch: usize,
    },
}

/// A training state ([`crate::state`]) could not be written, read, or does not belong to this
/// model and configuration.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file of the state is unreadable, unwritable or does not fit (the message names the
    /// key or tensor).
    #[error("{path}: {message}")]
    State {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor file of the state could not be saved or loaded (the message names the
    /// tensor).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A configuration could not be turned into the state's fingerprint
    /// ([`crate::state::config_value`]).
    #[error("{0}")]
    Config(String),
}

/// A configuration value out of range, or data that does not fit the fields or is unlabelled.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A configuration value is out of range; `key` is its name in the configuration file.
    #[error("{origin}: `{key}`: {message}")]
    Config {
        /// Where the configuration came from (a file path, or `<config>`).
        origin: String,
        /// The offending key, e.g. `embedding.dim`.
        key: String,
        /// What was expected.
        message: String,
    },
    /// A configuration file is not valid TOML or has an unknown or mistyped key.
    #[error("{origin}: {message}")]
    Parse {
        /// The file (or `<config>`).
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The schema, the vocabularies and a dataset or batch do not fit together, or a set
    /// holds no labels or a label out of range.
    #[error("{0}")]
    Data(String),
}
