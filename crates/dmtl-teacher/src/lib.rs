//! Multi-task teachers for DMTL (Zhao et al., arXiv 2102.07142): the model that learns click
//! and long read jointly over every impression, whose pCTCVR is distilled into the two-tower
//! student.
//!
//! - [`features`]: [`FieldEmbeddings`], one table per categorical or multi-hot column of the
//!   chosen sides, concatenated; from `dmtl-train`, shared with the student's towers.
//! - [`body`]: the [`Body`] trait and the registry of bodies ([`bodies::BODIES`]) the
//!   `structure` key names: [`mmoe`] (default), [`shared_bottom`] and [`ple`]; [`task`]: the
//!   tasks and their towers (the place to add a task).
//! - [`Teacher`]: embeddings + body + ESMM heads (pCTR, pCVR, pCTCVR = pCTR * pCVR);
//!   [`Teacher::train`] with validation and early stopping (the epoch loop of
//!   [`train::epochs`], from `dmtl-train`, shared with the student), [`Teacher::predict`] in
//!   parallel, [`Teacher::save`] / [`Teacher::load`] as `teacher.safetensors` +
//!   `teacher.toml`.
//! - [`TeacherConfig`]: serde configuration; its default is the reference teacher of
//!   BENCHMARKS.md.

#![deny(missing_docs)]

pub mod bodies;
pub mod body;
pub mod config;
pub mod error;
pub mod features;
pub mod mmoe;
pub mod ple;
pub mod shared_bottom;
pub mod task;
pub mod teacher;
pub mod train;

pub use body::{Body, BodyConfig, BuildBody};
pub use config::{TeacherConfig, TrainConfig, TrainOptions};
pub use error::{TeacherError, TrainError};
pub use features::{EmbeddedField, FieldEmbeddingConfig, FieldEmbeddings};
pub use mmoe::MmoeConfig;
pub use ple::PleConfig;
pub use shared_bottom::SharedBottomConfig;
pub use task::Task;
pub use teacher::{Teacher, TeacherOutput, TeacherScores};
pub use train::{EpochReport, StepLoss, TeacherLosses, TrainEvent, TrainHistory, ValidReport};
