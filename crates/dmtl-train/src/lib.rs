//! What every DMTL model (Zhao et al., arXiv 2102.07142) trains with, whatever its structure:
//! the multi-task teacher (`dmtl-teacher`), the two-tower student (`dmtl-student`) and both
//! trained jointly build on this crate and on nothing of each other.
//!
//! - [`features`]: [`FieldEmbeddings`], one table per categorical or multi-hot column of the
//!   chosen sides, concatenated, and their [`FieldEmbeddingConfig`].
//! - [`config`]: [`TrainOptions`], the `[train]` table of every model's configuration, and
//!   [`OnNonFinite`], what a NaN or infinite step does.
//! - [`epochs`]: the epoch loop, [`epochs::run`], that any model implementing
//!   [`epochs::Trainee`] trains under: shuffled batches, the non-finite policy, validation,
//!   early stopping, progress events ([`TrainEvent`]) and the history ([`TrainHistory`]).
//! - [`parallel`]: data-parallel training over the ranks of an MPI job: the global batch
//!   split over ranks, gradients summed every step, rank 0 validating and writing.
//! - [`state`]: the training state on disk ([`StateDir`]) an interrupted run resumes from,
//!   and [`state::config_value`], a configuration's fingerprint.
//! - [`checkpoint`]: a model on disk, its configuration ([`checkpoint::ModelConfig`], parsed
//!   and validated with errors naming the key) beside its parameters.
//! - [`error`]: [`TrainError`] (why the loop stopped short), [`StateError`] (the state on
//!   disk) and [`InputError`] (configuration values or data that do not fit the fields); each
//!   model wraps them in its own error type.

#![deny(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod epochs;
pub mod error;
pub mod features;
mod history;
pub mod parallel;
pub mod state;

pub use checkpoint::{CheckpointError, ModelConfig};
pub use config::{OnNonFinite, TrainOptions};
pub use epochs::{EpochReport, TrainEvent, TrainHistory, Trainee};
pub use error::{InputError, StateError, TrainError};
pub use features::{EmbeddedField, FieldEmbeddingConfig, FieldEmbeddings};
pub use parallel::Computed;
pub use state::StateDir;
