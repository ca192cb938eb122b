//! The extension point: a training objective of a one-output model (the two-tower student and
//! its baselines), chosen by configuration.
//!
//! An [`Objective`] turns the model's `(n, 1)` output and the batch's [`Targets`] into a `(1, 1)`
//! loss. The student's trainer only ever calls [`Objective::loss`] and [`Objective::score`], so a
//! new loss is one `impl` away (see `docs/extending.md`, "Adding a loss", and
//! `examples/focal_loss.rs`).

use dmtl_tensor::{Graph, Var};
use serde::{Deserialize, Serialize};

use crate::stable::{probs_to_logits, sigmoid};
use crate::{
    bce_with_logits, distill_mix, kl_distill, mse_log_duration, mse_logits, soft_bce,
    weighted_logistic, Reduction,
};

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

/// A training objective for a model with one output per impression.
///
/// Implementations must be cheap to share between threads; the loss they return must be a
/// `(1, 1)` node of `g` that depends on `logits` (build it with the functions of this crate or
/// with [`crate::pointwise_loss`]).
pub trait Objective: Send + Sync {
    /// A short name for logs and reports, e.g. `"click_bce"`.
    fn name(&self) -> &str;

    /// The loss of the model output `logits` (`(n, 1)`) on the batch `t`: a `(1, 1)` node.
    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var;

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
}

/// Which distillation loss [`Distill`] uses for its soft part.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DistillKind {
    /// [`soft_bce`] against the teacher's probability (the paper's choice).
    Soft,
    /// [`kl_distill`] with a temperature.
    Kl {
        /// Softening temperature `T > 0`.
        temperature: f32,
    },
    /// [`mse_logits`] against the teacher's logit (its clamped probability's logit).
    MseLogits,
}

/// B4, DMTL's student objective: `alpha * soft(teacher) + (1 - alpha) * BCE(long_read)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distill {
    /// Weight of the distillation part, in `[0, 1]`; 1 is pure distillation.
    pub alpha: f32,
    /// The distillation loss.
    pub kind: DistillKind,
}

impl Objective for Distill {
    fn name(&self) -> &str {
        "distill"
    }

    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var {
        let red = Reduction::Mean;
        let teacher = t.teacher_or_panic(self.name());
        let soft = match self.kind {
            DistillKind::Soft => soft_bce(g, logits, teacher, t.weights, red),
            DistillKind::Kl { temperature } => {
                kl_distill(g, logits, teacher, temperature, t.weights, red)
            }
            DistillKind::MseLogits => {
                mse_logits(g, logits, &probs_to_logits(teacher), t.weights, red)
            }
        };
        if self.alpha == 1.0 {
            return soft;
        }
        let hard = bce_with_logits(g, logits, t.long_read, t.weights, red);
        distill_mix(g, soft, hard, self.alpha)
    }
}

/// B1: BCE on the click label.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClickBce;

impl Objective for ClickBce {
    fn name(&self) -> &str {
        "click_bce"
    }

    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var {
        bce_with_logits(g, logits, t.click, t.weights, Reduction::Mean)
    }
}

/// B2: BCE on the hard long-read label `y z` over all impressions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LongReadBce;

impl Objective for LongReadBce {
    fn name(&self) -> &str {
        "long_read_bce"
    }

    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var {
        bce_with_logits(g, logits, t.long_read, t.weights, Reduction::Mean)
    }
}

/// B3a: regression on `ln(1 + d)`; the output is the score itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LogDurationMse;

impl Objective for LogDurationMse {
    fn name(&self) -> &str {
        "log_duration_mse"
    }

    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var {
        mse_log_duration(g, logits, t.duration, t.weights, Reduction::Mean)
    }

    fn score(&self, output: f32) -> f32 {
        output
    }
}

/// B3b: YouTube's weighted logistic regression (clicked positives weighted by duration).
/// Per-sample weights of [`Targets`] are not used: the durations are the weights.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WeightedLogistic;

impl Objective for WeightedLogistic {
    fn name(&self) -> &str {
        "weighted_logistic"
    }

    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var {
        weighted_logistic(g, logits, t.click, t.duration, Reduction::Mean)
    }

    /// `sum_i (y_i d_i + 1 - y_i)`: the durations are the weights.
    fn mean_denominator(&self, t: &Targets, _n: usize) -> Option<f64> {
        Some(
            t.click
                .iter()
                .zip(t.duration)
                .map(|(&y, &d)| if y == 1.0 { f64::from(d) } else { 1.0 })
                .sum(),
        )
    }
}

/// An objective as configuration data, e.g. in TOML:
///
/// ```
/// use dmtl_loss::objective::ObjectiveConfig;
/// let cfg: ObjectiveConfig = toml::from_str(r#"
///     type = "distill"
///     alpha = 0.8
///     loss = { type = "kl", temperature = 2.0 }
/// "#).unwrap();
/// assert_eq!(cfg.build().name(), "distill");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ObjectiveConfig {
    /// [`ClickBce`].
    ClickBce,
    /// [`LongReadBce`].
    LongReadBce,
    /// [`LogDurationMse`].
    LogDurationMse,
    /// [`WeightedLogistic`].
    WeightedLogistic,
    /// [`Distill`].
    Distill {
        /// Weight of the distillation part (1: pure distillation).
        #[serde(default = "one")]
        alpha: f32,
        /// The distillation loss (soft-label BCE by default).
        #[serde(default = "soft")]
        loss: DistillKind,
    },
}

fn one() -> f32 {
    1.0
}

fn soft() -> DistillKind {
    DistillKind::Soft
}

impl Default for ObjectiveConfig {
    /// Pure distillation by soft-label BCE, as in the paper.
    fn default() -> Self {
        ObjectiveConfig::Distill {
            alpha: 1.0,
            loss: DistillKind::Soft,
        }
    }
}

impl ObjectiveConfig {
    /// The objective this configuration describes.
    ///
    /// # Panics
    /// When a distillation `alpha` is outside `[0, 1]` or a temperature is not positive (use
    /// [`ObjectiveConfig::validate`] first for an error instead).
    pub fn build(&self) -> Box<dyn Objective> {
        if let Err(e) = self.validate() {
            panic!("dmtl-loss: {e}");
        }
        match *self {
            ObjectiveConfig::ClickBce => Box::new(ClickBce),
            ObjectiveConfig::LongReadBce => Box::new(LongReadBce),
            ObjectiveConfig::LogDurationMse => Box::new(LogDurationMse),
            ObjectiveConfig::WeightedLogistic => Box::new(WeightedLogistic),
            ObjectiveConfig::Distill { alpha, loss } => Box::new(Distill { alpha, kind: loss }),
        }
    }

    /// Checks the numbers of the configuration, naming the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if let ObjectiveConfig::Distill { alpha, loss } = *self {
            if !(0.0..=1.0).contains(&alpha) {
                return Err(format!("objective.alpha must be in [0, 1], got {alpha}"));
            }
            if let DistillKind::Kl { temperature } = loss {
                if !(temperature.is_finite() && temperature > 0.0) {
                    return Err(format!(
                        "objective.loss.temperature must be finite and > 0, got {temperature}"
                    ));
                }
            }
        }
        Ok(())
    }
}
