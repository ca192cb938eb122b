//! The two-tower student of DMTL (Zhao et al., arXiv 2102.07142): the candidate generator
//! that is deployed, trained by distilling the multi-task teacher's pCTCVR.
//!
//! - [`two_tower`]: [`Student`] — a user tower over user and context fields, an item tower
//!   over item fields, score `s = <u, v>`, `p = sigmoid(s)`; vectors for whole datasets;
//!   save/load as safetensors + TOML. [`StudentConfig`] is its serde configuration.
//! - [`objective`]: [`ObjectiveConfig`] (from `dmtl-loss`), any registered objective by its
//!   `type` — DMTL distillation (soft BCE, KL with a temperature, MSE on logits, mixed with the
//!   hard label by `alpha`), the competitors B1 (clicks), B2 (hard long reads), B3
//!   (log-duration regression, weighted logistic regression) and a focal loss.
//! - [`train`]: [`Student::train`] (two-stage: the teacher's scores precomputed and given as
//!   data, one probability per row, from any scorer) with validation and early stopping on the
//!   long-read AUC, under the epoch loop of `dmtl-train`. Training the teacher and the student
//!   in one loop (joint training) lives above both models, in `dmtl-joint`.
//! - [`step`]: the loss and gradient of one batch, in data-parallel row shards.
//! - [`retrieval`]: exact top-K by inner product over the item matrix.
//! - [`inference`]: [`UserEncoder`] — user vectors with the MLP in f32 or, optionally, bf16.
//! - [`export`]: user and item vectors with their raw ids as `.npy`, parameters and
//!   vocabularies, for an outside index such as Faiss.
//! - [`eval`]: offline metrics on a test log and retrieval quality on the simulator's truth.
//! - [`run_folder`]: a run folder's schema, vocabularies, two-tower models and item corpus,
//!   loaded for `dmtl retrieve` and `dmtl serve` alike.
//! - [`synthetic`]: schemas and random datasets of given sizes, for benchmarks and tests.

#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod eval;
pub mod export;
pub mod inference;
pub mod objective;
pub mod retrieval;
pub mod run_folder;
pub mod step;
pub mod synthetic;
pub mod train;
pub mod two_tower;

pub use config::{Similarity, StudentConfig, TrainOptions};
pub use dmtl_train::TrainError;
pub use error::{Result, StudentError};
pub use inference::{Precision, UserEncoder};
pub use objective::{DistillKind, Objective, ObjectiveConfig, OutputKind, Targets};
pub use train::{EpochReport, StudentLosses, TrainEvent, TrainHistory, ValidReport};
pub use two_tower::{Student, TwoTower};
