//! The metrics schema of a run (`metrics.json`): one [`ModelResult`] per row of the table,
//! with its training curve, and the sizes of the data ([`DataSummary`]).

use serde::{Deserialize, Serialize};

use crate::eval::{OfflineMetrics, RetrievalMetrics};

/// One epoch of a model's training curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochPoint {
    /// Epoch, from 0.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation long-read AUC (None without validation).
    pub valid_long_read_auc: Option<f64>,
    /// Training impressions per second.
    pub impressions_per_second: f64,
}

/// What a row of the table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// The multi-task teacher: offline metrics only.
    Teacher,
    /// A two-tower model.
    Student,
    /// Oracle or random.
    Reference,
}

/// Everything measured about one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// Short name (`teacher`, `dmtl`, `b1`, ..., `oracle`, `random`).
    pub name: String,
    /// Row label of the table.
    pub label: String,
    /// What the row is.
    pub kind: RowKind,
    /// Offline metrics on the test impressions.
    pub offline: Option<OfflineMetrics>,
    /// Retrieval metrics (two-tower models and references).
    pub retrieval: Option<RetrievalMetrics>,
    /// The training curve.
    #[serde(default)]
    pub history: Vec<EpochPoint>,
    /// The epoch whose parameters were kept.
    pub best_epoch: Option<usize>,
    /// Seconds of training.
    pub train_seconds: f64,
}

impl ModelResult {
    /// The row of a reference (oracle, random): nothing trained.
    pub fn reference(
        name: &str,
        label: &str,
        offline: OfflineMetrics,
        retrieval: RetrievalMetrics,
    ) -> ModelResult {
        ModelResult {
            name: name.into(),
            label: label.into(),
            kind: RowKind::Reference,
            offline: Some(offline),
            retrieval: Some(retrieval),
            history: Vec::new(),
            best_epoch: None,
            train_seconds: 0.0,
        }
    }
}

/// Sizes of the data a run used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Where the data came from.
    pub source: String,
    /// Training impressions (validation rows excluded).
    pub train_rows: usize,
    /// Validation impressions.
    pub valid_rows: usize,
    /// Test impressions.
    pub test_rows: usize,
    /// Click rate of the training rows.
    pub train_ctr: f64,
    /// Long-read rate (per impression) of the training rows.
    pub train_long_read_rate: f64,
    /// Items in the retrieval corpus.
    pub corpus_items: usize,
    /// Users retrieval was evaluated on.
    pub retrieval_users: usize,
    /// Malformed rows skipped while reading.
    pub skipped_rows: usize,
}

/// The metrics of a run (`metrics.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// The command (`demo`, `train`).
    pub command: String,
    /// The seed of the run (demo) or of the models.
    pub seed: u64,
    /// Data sizes.
    pub data: DataSummary,
    /// One entry per row of the table, in order.
    pub models: Vec<ModelResult>,
    /// Wall-clock seconds of the whole run.
    pub wall_seconds: f64,
    /// Threads used.
    pub threads: usize,
}
