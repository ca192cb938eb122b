//! Shared-bottom multi-task network.
//!
//! Rich Caruana, "Multitask Learning", Machine Learning 28, 1997: one network shared by every
//! task (the "bottom"), a small tower per task on top. The simpler comparison point for
//! [`crate::mmoe`]: every task must make do with the same representation.
//!
//! Parameters: `<prefix>.bottom.layer.<j>.{weight,bias}`,
//! `<prefix>.tower.<task>.layer.<j>.{weight,bias}`.

use dmtl_tensor::nn::{Mlp, MlpConfig};
use dmtl_tensor::{Activation, Graph, ParamStore, Var};
use rand::Rng;

use crate::task::{Task, TaskLogits, Towers};

/// A shared MLP and one tower per task.
#[derive(Debug, Clone)]
pub struct SharedBottom {
    bottom: Mlp,
    towers: Towers,
}

impl SharedBottom {
    /// Registers the bottom (ReLU layers `bottom_hidden`) and towers of ReLU layers
    /// `tower_hidden` (then a logit) on inputs of width `in_dim`.
    ///
    /// # Panics
    /// When `bottom_hidden` is empty (validated configurations never are).
    pub fn new<R: Rng + ?Sized>(
        store: &mut ParamStore,
        prefix: &str,
        in_dim: usize,
        bottom_hidden: &[usize],
        tower_hidden: &[usize],
        rng: &mut R,
    ) -> Self {
        assert!(!bottom_hidden.is_empty(), "the shared bottom needs layers");
        let cfg = MlpConfig {
            hidden: bottom_hidden.to_vec(),
            activation: Activation::Relu,
            last_activation: Activation::Relu,
        };
        let bottom = Mlp::new(store, &format!("{prefix}.bottom"), in_dim, &cfg, rng);
        let out = bottom.out_dim(in_dim);
        let towers = Towers::new(store, prefix, out, tower_hidden, rng);
        SharedBottom { bottom, towers }
    }

    /// # Shapes
    /// `h`: `(n, in_dim)` -> a logit `(n, 1)` per task; no gates.
    pub fn forward(&self, g: &Graph<'_>, h: Var) -> TaskLogits {
        let shared = self.bottom.forward(g, h);
        let logits = Task::ALL
            .iter()
            .map(|&t| self.towers.forward(g, t, shared))
            .collect();
        TaskLogits {
            logits,
            gates: Vec::new(),
        }
    }
}
