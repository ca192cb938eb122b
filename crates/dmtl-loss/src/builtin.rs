//! The built-in objectives: DMTL's distillation (B4) and the paper's competitors B1 to B3.
//!
//! Each derives `Serialize`/`Deserialize`: its fields are the keys of its `[objective]` table
//! (none for the baselines), so a configuration reads `type = "click_bce"`, or
//! `type = "distill"` with `alpha` and `loss`.

use dmtl_tensor::{Graph, Var};
use serde::{Deserialize, Serialize};

use crate::objective::{Objective, OutputKind, Targets};
use crate::stable::probs_to_logits;
use crate::{
    bce_with_logits, distill_mix, kl_distill, mse_log_duration, mse_logits, soft_bce,
    weighted_logistic, Reduction,
};

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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Distill {
    /// Weight of the distillation part, in `[0, 1]`; 1 is pure distillation.
    pub alpha: f32,
    /// The distillation loss.
    pub loss: DistillKind,
}

impl Default for Distill {
    /// Pure distillation by soft-label BCE, as in the paper.
    fn default() -> Self {
        Distill {
            alpha: 1.0,
            loss: DistillKind::Soft,
        }
    }
}

impl Objective for Distill {
    fn name(&self) -> &str {
        "distill"
    }

    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var {
        let red = Reduction::Mean;
        let teacher = t.teacher_or_panic(self.name());
        let soft = match self.loss {
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

    fn needs_teacher(&self) -> bool {
        true
    }

    fn output_kind(&self) -> OutputKind {
        OutputKind::LongReadProbability
    }

    fn invalid_key(&self) -> Option<(&'static str, String)> {
        if !(0.0..=1.0).contains(&self.alpha) {
            return Some(("alpha", format!("must be in [0, 1], got {}", self.alpha)));
        }
        match self.loss {
            DistillKind::Kl { temperature } if !(temperature.is_finite() && temperature > 0.0) => {
                Some((
                    "loss.temperature",
                    format!("must be finite and > 0, got {temperature}"),
                ))
            }
            _ => None,
        }
    }
}

/// B1: BCE on the click label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickBce {}

impl Objective for ClickBce {
    fn name(&self) -> &str {
        "click_bce"
    }

    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var {
        bce_with_logits(g, logits, t.click, t.weights, Reduction::Mean)
    }

    fn needs_teacher(&self) -> bool {
        false
    }

    fn output_kind(&self) -> OutputKind {
        OutputKind::ClickProbability
    }
}

/// B2: BCE on the hard long-read label `y z` over all impressions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongReadBce {}

impl Objective for LongReadBce {
    fn name(&self) -> &str {
        "long_read_bce"
    }

    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var {
        bce_with_logits(g, logits, t.long_read, t.weights, Reduction::Mean)
    }

    fn needs_teacher(&self) -> bool {
        false
    }

    fn output_kind(&self) -> OutputKind {
        OutputKind::LongReadProbability
    }
}

/// B3a: regression on `ln(1 + d)`; the output is the score itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogDurationMse {}

impl Objective for LogDurationMse {
    fn name(&self) -> &str {
        "log_duration_mse"
    }

    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var {
        mse_log_duration(g, logits, t.duration, t.weights, Reduction::Mean)
    }

    fn needs_teacher(&self) -> bool {
        false
    }

    fn output_kind(&self) -> OutputKind {
        OutputKind::Score
    }

    fn score(&self, output: f32) -> f32 {
        output
    }
}

/// B3b: YouTube's weighted logistic regression (clicked positives weighted by duration).
/// Per-sample weights of [`Targets`] are not used: the durations are the weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedLogistic {}

impl Objective for WeightedLogistic {
    fn name(&self) -> &str {
        "weighted_logistic"
    }

    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var {
        weighted_logistic(g, logits, t.click, t.duration, Reduction::Mean)
    }

    fn needs_teacher(&self) -> bool {
        false
    }

    fn output_kind(&self) -> OutputKind {
        OutputKind::Score
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
