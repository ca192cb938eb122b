//! What the towers are trained on: DMTL's distillation from the teacher and the paper's
//! competitors, selected by a [`dmtl_loss::ObjectiveConfig`] and all applied to the same
//! two-tower score `s`.
//!
//! | objective (`type`) | loss on the score `s` | what `sigmoid(s)` estimates |
//! |---|---|---|
//! | `distill` (DMTL, B4) | `alpha * soft(pCTCVR_teacher, s) + (1 - alpha) * BCE(y z, s)` | P(long read) |
//! | `click_bce` (B1) | `BCE(y, s)` | P(click) |
//! | `long_read_bce` (B2) | `BCE(y z, s)` | P(long read) |
//! | `log_duration_mse` (B3) | `(s - ln(1 + d))^2` | nothing: `s` is a log-duration |
//! | `weighted_logistic` (B3') | click BCE, a click weighted by its seconds | nothing: `e^s` tracks seconds |
//!
//! The soft part of `distill` is a [`DistillKind`]: soft-label BCE (the paper's), KL with a
//! temperature, or MSE between logits. The losses themselves live in `dmtl-loss`; this module
//! adds what the student needs to know about them ([`ObjectiveExt`]).

pub use dmtl_loss::{DistillKind, Objective, ObjectiveConfig, Targets};
use serde::{Deserialize, Serialize};

/// What `sigmoid(score)` means under an objective, which decides which loglosses are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// An estimate of P(click).
    ClickProbability,
    /// An estimate of P(click and long read).
    LongReadProbability,
    /// A ranking score only.
    Score,
}

/// What the student needs to know about an objective configuration.
pub trait ObjectiveExt {
    /// True when training needs the teacher's pCTCVR for every row.
    fn needs_teacher(&self) -> bool;
    /// What `sigmoid(score)` estimates.
    fn output_kind(&self) -> OutputKind;
    /// The model's name in the paper's table: `dmtl`, `b1_click`, `b2_long_read`,
    /// `b3_log_duration`, `b3_weighted_logistic`.
    fn model_name(&self) -> &'static str;
}

impl ObjectiveExt for ObjectiveConfig {
    fn needs_teacher(&self) -> bool {
        matches!(self, ObjectiveConfig::Distill { .. })
    }

    fn output_kind(&self) -> OutputKind {
        match self {
            ObjectiveConfig::Distill { .. } | ObjectiveConfig::LongReadBce => {
                OutputKind::LongReadProbability
            }
            ObjectiveConfig::ClickBce => OutputKind::ClickProbability,
            ObjectiveConfig::LogDurationMse | ObjectiveConfig::WeightedLogistic => {
                OutputKind::Score
            }
        }
    }

    fn model_name(&self) -> &'static str {
        match self {
            ObjectiveConfig::Distill { .. } => "dmtl",
            ObjectiveConfig::ClickBce => "b1_click",
            ObjectiveConfig::LongReadBce => "b2_long_read",
            ObjectiveConfig::LogDurationMse => "b3_log_duration",
            ObjectiveConfig::WeightedLogistic => "b3_weighted_logistic",
        }
    }
}
