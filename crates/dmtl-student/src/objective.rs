//! What the towers are trained on: DMTL's distillation from the teacher, the paper's
//! competitors and any other objective registered in [`dmtl_loss::OBJECTIVES`], selected by an
//! [`ObjectiveConfig`] (its `type`) and all applied to the same two-tower score `s`.
//!
//! | objective (`type`) | loss on the score `s` | what `sigmoid(s)` estimates |
//! |---|---|---|
//! | `distill` (DMTL, B4) | `alpha * soft(pCTCVR_teacher, s) + (1 - alpha) * BCE(y z, s)` | P(long read) |
//! | `click_bce` (B1) | `BCE(y, s)` | P(click) |
//! | `long_read_bce` (B2) | `BCE(y z, s)` | P(long read) |
//! | `log_duration_mse` (B3) | `(s - ln(1 + d))^2` | nothing: `s` is a log-duration |
//! | `weighted_logistic` (B3') | click BCE, a click weighted by its seconds | nothing: `e^s` tracks seconds |
//! | `focal` | focal loss on `y z` with `gamma` (Lin et al. 2017) | P(long read) |
//!
//! The soft part of `distill` is a [`DistillKind`]: soft-label BCE (the paper's), KL with a
//! temperature, or MSE between logits. The losses live in `dmtl-loss`, and each objective says
//! itself whether training must give it the teacher's scores ([`Objective::needs_teacher`])
//! and what its score estimates ([`Objective::output_kind`]): the student never asks which
//! objective it holds.

pub use dmtl_loss::{
    ClickBce, Distill, DistillKind, Focal, LogDurationMse, LongReadBce, Objective, ObjectiveConfig,
    OutputKind, Targets, WeightedLogistic, OBJECTIVES,
};
