//! Focal loss on the long-read label.
//!
//! Tsung-Yi Lin, Priya Goyal, Ross Girshick, Kaiming He, Piotr Dollár, "Focal Loss for Dense
//! Object Detection", ICCV 2017.
//!
//! `l = -(y (1 - p)^γ log p + (1 - y) p^γ log(1 - p))`, `p = σ(x)`, `y` the long-read label:
//! confident, correct samples are down-weighted so training concentrates on the hard ones.
//! `γ = 0` is plain BCE on the long-read label ([`crate::LongReadBce`]). In a configuration:
//! `type = "focal"`, `gamma = 2.0` (the default).

use dmtl_tensor::{Graph, Var};
use serde::{Deserialize, Serialize};

use crate::objective::{Objective, OutputKind, Targets};
use crate::stable::{log_sigmoid, sigmoid};
use crate::{pointwise_loss, Reduction};

/// Focal loss on the long-read label, a mean over the rows (weighted by `Targets::weights`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Focal {
    /// Focusing exponent `γ >= 0`; 0 is BCE.
    pub gamma: f32,
}

impl Default for Focal {
    /// `γ = 2`, the paper's choice.
    fn default() -> Self {
        Focal { gamma: 2.0 }
    }
}

impl Objective for Focal {
    fn name(&self) -> &str {
        "focal"
    }

    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var {
        let gamma = self.gamma;
        let y = t.long_read;
        // With p = σ(x): dp/dx = p (1 - p), d log p / dx = 1 - p, d log(1 - p) / dx = -p.
        pointwise_loss(g, "focal", logits, t.weights, Reduction::Mean, |i, x| {
            let (p, q) = (sigmoid(x), sigmoid(-x)); // q = 1 - p without cancellation
            let (log_p, log_q) = (log_sigmoid(x), log_sigmoid(-x));
            let (pos, neg) = (q.powf(gamma), p.powf(gamma)); // (1 - p)^γ, p^γ
            let l = -(y[i] * pos * log_p + (1.0 - y[i]) * neg * log_q);
            // d/dx [(1-p)^γ log p] = -γ (1-p)^γ p log p + (1-p)^γ (1-p)
            // d/dx [p^γ log(1-p)]  =  γ p^γ (1-p) log(1-p) - p^γ p
            let d_pos = -gamma * pos * p * log_p + pos * q;
            let d_neg = gamma * neg * q * log_q - neg * p;
            (l, -(y[i] * d_pos + (1.0 - y[i]) * d_neg))
        })
    }

    fn needs_teacher(&self) -> bool {
        false
    }

    fn output_kind(&self) -> OutputKind {
        OutputKind::LongReadProbability
    }

    fn invalid_key(&self) -> Option<(&'static str, String)> {
        (!(self.gamma.is_finite() && self.gamma >= 0.0)).then(|| {
            (
                "gamma",
                format!("must be a finite number >= 0, got {}", self.gamma),
            )
        })
    }
}
