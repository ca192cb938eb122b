//! Shared-bottom multi-task network.
//!
//! Rich Caruana, "Multitask Learning", Machine Learning 28, 1997: one network shared by every
//! task (the "bottom"), a small tower per task on top. The simpler comparison point for
//! [`crate::mmoe`]: every task must make do with the same representation.
//!
//! Parameters: `<prefix>.bottom.layer.<j>.{weight,bias}`,
//! `<prefix>.tower.<task>.layer.<j>.{weight,bias}`. In `teacher.toml`:
//! `structure = "shared_bottom"`, `expert_hidden` (the bottom's widths), `tower_hidden`.

use dmtl_tensor::nn::{Mlp, MlpConfig};
use dmtl_tensor::{Activation, Graph, ParamStore, Var};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::body::{invalid_layers, Body, BuildBody};
use crate::task::{Task, TaskLogits, Towers};

/// The keys of a shared-bottom body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharedBottomConfig {
    /// Not read: written (as 4) and accepted so that the `teacher.toml` files of shared
    /// bottoms, which have always carried MMoE's key, read and write unchanged.
    pub n_experts: usize,
    /// Layer widths of the shared bottom, every layer ReLU.
    pub expert_hidden: Vec<usize>,
    /// Hidden layer widths of each task's tower (ReLU); a final layer of width 1 gives the
    /// logit.
    pub tower_hidden: Vec<usize>,
}

impl Default for SharedBottomConfig {
    /// A bottom of `[256, 128]`, towers `[64]` then a logit.
    fn default() -> Self {
        SharedBottomConfig {
            n_experts: 4,
            expert_hidden: vec![256, 128],
            tower_hidden: vec![64],
        }
    }
}

impl BuildBody for SharedBottomConfig {
    fn build(
        &self,
        store: &mut ParamStore,
        prefix: &str,
        in_dim: usize,
        rng: &mut dyn RngCore,
    ) -> Box<dyn Body> {
        let b = SharedBottom::new(
            store,
            prefix,
            in_dim,
            &self.expert_hidden,
            &self.tower_hidden,
            rng,
        );
        Box::new(b)
    }

    fn invalid_key(&self) -> Option<(&'static str, String)> {
        invalid_layers("expert_hidden", &self.expert_hidden, &self.tower_hidden)
    }
}

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
}

impl Body for SharedBottom {
    /// # Shapes
    /// `h`: `(n, in_dim)` -> a logit `(n, 1)` per task; no gates.
    fn forward(&self, g: &Graph<'_>, h: Var) -> TaskLogits {
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
