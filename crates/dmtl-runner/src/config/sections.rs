//! The sections of a run configuration (`[data]`, `[stages]`, `[eval]`, and the whole
//! [`RunConfig`] holding them with the library's `[teacher]` and `[student]`).

use std::path::PathBuf;

use dmtl_data::sim::SimConfig;
use dmtl_student::StudentConfig;
use dmtl_teacher::TeacherConfig;
use serde::{Deserialize, Serialize};

use super::models::ModelName;
use crate::stream_mode::StreamMode;

/// Where the impressions come from: the user's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The schema file (TOML), see `dmtl_data::Schema`.
    pub schema: PathBuf,
    /// The impression log, CSV (header row) or Parquet, by extension.
    pub log: PathBuf,
    /// A separate test log; without it the log is split by the schema's `[split]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_log: Option<PathBuf>,
    /// A table of every item (item-side columns only), the corpus retrieval searches; without it
    /// the corpus is every item of the training log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<PathBuf>,
    /// Overrides the schema's long-read threshold (seconds, >= 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_read_threshold: Option<f32>,
    /// Skip (and count) malformed rows instead of stopping at the first.
    #[serde(default)]
    pub skip_bad_rows: bool,
    /// Seed of a random train/test split (`split.test_fraction`).
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    /// Stream the log instead of reading it into memory: `"auto"` (the default: above
    /// [`crate::stream_mode::STREAM_AUTO_BYTES`] of files), `true` or `false`.
    #[serde(default, skip_serializing_if = "StreamMode::is_auto")]
    pub stream: StreamMode,
}

fn default_split_seed() -> u64 {
    7
}

/// What to do with the teacher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeacherStage {
    /// Train a teacher.
    Train,
    /// Take the teacher (and the vocabularies) of the run folder `stages.from_run`.
    Load,
    /// No teacher: only models that do not distil can run.
    Skip,
}

/// Which stages run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StagesConfig {
    /// Train, load or skip the teacher.
    pub teacher: TeacherStage,
    /// An earlier run folder: its vocabularies are reused, and its teacher with
    /// `teacher = "load"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_run: Option<PathBuf>,
    /// The two-tower models to train (`dmtl`, `b1`, `b2`, `b3-mse`, `b3-wlr`); may be empty.
    pub models: Vec<ModelName>,
}

impl Default for StagesConfig {
    fn default() -> Self {
        StagesConfig {
            teacher: TeacherStage::Train,
            from_run: None,
            models: ModelName::STUDENTS.to_vec(),
        }
    }
}

/// How models are evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Length of each retrieved list (top-K over the whole item corpus).
    pub k: usize,
    /// Users sampled for the retrieval metrics (recall@K of held-out long reads, and the true
    /// reading time on simulated data).
    pub retrieval_users: usize,
    /// Bins of the histogram of true reading time of retrieved items.
    pub histogram_bins: usize,
    /// Seed of the user sample, of the validation rows and of the random reference.
    pub seed: u64,
    /// Share of the training rows held out (at random) to validate each epoch: the curves of
    /// the report and early stopping. 0 trains on every row without validation.
    pub valid_fraction: f64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            k: 100,
            retrieval_users: 2000,
            histogram_bins: 30,
            seed: 11,
            valid_fraction: 0.05,
        }
    }
}

/// The whole configuration of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The user's log files; exactly one of `data` and `simulator` must be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataConfig>,
    /// Simulate the log instead (what `dmtl demo` does); retrieval is then also scored
    /// against the simulator's ground truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulator: Option<SimConfig>,
    /// Which stages run.
    #[serde(default)]
    pub stages: StagesConfig,
    /// The teacher; unset keys take `TeacherConfig::default()`.
    #[serde(default)]
    pub teacher: TeacherConfig,
    /// Every two-tower model's towers and training; `objective` is DMTL's (alpha, distillation
    /// loss); the baselines replace it with their own.
    #[serde(default)]
    pub student: StudentConfig,
    /// Evaluation.
    #[serde(default)]
    pub eval: EvalConfig,
}
