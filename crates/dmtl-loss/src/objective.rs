//! The extension point: a training objective of a one-output model (the two-tower student and
//! its baselines).
//!
//! An [`Objective`] turns the model's `(n, 1)` output and the batch's [`Targets`] into a `(1, 1)`
//! loss, and says what the trainer must know about it: whether it reads the teacher's scores
//! ([`Objective::needs_teacher`]) and what `sigmoid(score)` estimates
//! ([`Objective::output_kind`]). The trainer never asks which objective it holds, so a new one
//! is one `impl` plus one line in [`crate::OBJECTIVES`] (see `docs/extending.md`,
//! "Adding an objective", and [`crate::focal`]).

use dmtl_tensor::{Graph, Var};
use serde::{Deserialize, Serialize};

use crate::stable::sigmoid;

/// The labels of one batch of `n` impressions, every slice `n` entries long.
#[derive(Debug, Clone, Copy)]
pub struct Targets<'a> {
    /// Click `y` in {0, 1}.
    pub click: &'a [f32],
    /// Reading duration `d` in seconds, 0 without a click.
    pub duration: &'a [f32],
    /// Long read `y z = [click and d > T]` in {0, 1}, defined on every impression.
    pub long_read: &'a [f32],
    /// The teacher's pCTCVR per impression, for distillation.
    pub teacher: Option<&'a [f32]>,
    /// Optional per-sample weights.
    pub weights: Option<&'a [f32]>,
}

impl Targets<'_> {
    /// The teacher's probabilities.
    ///
    /// # Panics
    /// When the batch carries none, naming `objective`.
    pub fn teacher_or_panic(&self, objective: &str) -> &[f32] {
        self.teacher.unwrap_or_else(|| {
            panic!("dmtl-loss: objective `{objective}` needs the teacher's scores (Targets::teacher is None)")
        })
    }
}

/// What `sigmoid(score)` estimates under an objective, which decides which loglosses are
/// reported.
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

/// A training objective for a model with one output per impression.
///
/// Implementations must be cheap to share between threads; the loss they return must be a
/// `(1, 1)` node of `g` that depends on `logits` (build it with the functions of this crate or
/// with [`crate::pointwise_loss`]). To be chosen by configuration, the type also derives
/// `Serialize` and `Deserialize` (its fields are the keys of its `[objective]` table, each with
/// a default) and is listed in [`crate::OBJECTIVES`] under [`Objective::name`].
pub trait Objective: Send + Sync + std::fmt::Debug {
    /// The objective's name, which is also its `type` in a configuration, e.g. `"click_bce"`.
    fn name(&self) -> &str;

    /// The loss of the model output `logits` (`(n, 1)`) on the batch `t`: a `(1, 1)` node.
    ///
    /// # Panics
    /// When `logits` is not `(n, 1)` with `n` the length of `t`'s slices, or (for an objective
    /// that [needs the teacher](Objective::needs_teacher)) when `t.teacher` is `None`.
    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var;

    /// True when [`Objective::loss`] reads [`Targets::teacher`]: training then scores every
    /// row with the teacher first.
    fn needs_teacher(&self) -> bool;

    /// What `sigmoid(score)` estimates once trained.
    fn output_kind(&self) -> OutputKind;

    /// The ranking score of one model output: by default the probability `σ(output)`. An
    /// objective whose output is not a logit (a regression) overrides this.
    fn score(&self, output: f32) -> f32 {
        sigmoid(output)
    }

    /// The denominator of this objective's mean over the rows of `t` (`n` rows): `n`, or the
    /// sum of `t.weights` when given. Data-parallel training splits a batch into row shards and
    /// counts each shard's loss with its share of this total, so that the shards' gradients sum
    /// to the batch's. An objective whose mean divides by something else overrides this;
    /// one whose loss couples rows (in-batch negatives, say) returns `None`, and its batches
    /// are then never split.
    fn mean_denominator(&self, t: &Targets, n: usize) -> Option<f64> {
        Some(match t.weights {
            Some(w) => w.iter().map(|&x| f64::from(x)).sum(),
            None => n as f64,
        })
    }

    /// The first setting out of range: its key inside the objective's table (`alpha`,
    /// `loss.temperature`) and what it must be. `None` (the default) when all are valid.
    fn invalid_key(&self) -> Option<(&'static str, String)> {
        None
    }
}
