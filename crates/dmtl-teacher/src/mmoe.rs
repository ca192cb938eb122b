//! Multi-gate Mixture-of-Experts.
//!
//! Jiaqi Ma, Zhe Zhao, Xinyang Yi, Jilin Chen, Lichan Hong, Ed H. Chi, "Modeling Task
//! Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts", KDD 2018.
//!
//! `n` experts `E_k(h)` read the same input; each task `t` has its own gate
//! `g_t = softmax(W_t h + b_t)` that mixes them, `f_t = sum_k g_t,k E_k(h)`, and a tower that
//! turns `f_t` into the task's logit. Tasks that disagree can lean on different experts, which a
//! shared bottom cannot do.
//!
//! Parameters: `<prefix>.expert.<k>.layer.<j>.{weight,bias}`, `<prefix>.gate.<task>.{weight,bias}`,
//! `<prefix>.tower.<task>.layer.<j>.{weight,bias}`. In `teacher.toml`: `structure = "mmoe"`
//! (the default), `n_experts`, `expert_hidden`, `tower_hidden`.

use dmtl_tensor::nn::{Linear, Mlp, MlpConfig};
use dmtl_tensor::{Activation, Graph, Init, ParamStore, Var};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::body::{invalid_layers, Body, BodyConfig, BuildBody};
use crate::task::{Task, TaskLogits, Towers};

/// The keys of an MMoE body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MmoeConfig {
    /// Number of experts.
    pub n_experts: usize,
    /// Layer widths of each expert, every layer ReLU.
    pub expert_hidden: Vec<usize>,
    /// Hidden layer widths of each task's tower (ReLU); a final layer of width 1 gives the
    /// logit.
    pub tower_hidden: Vec<usize>,
}

impl Default for MmoeConfig {
    /// The reference teacher's: 4 experts of `[256, 128]`, towers `[64]` then a logit.
    fn default() -> Self {
        MmoeConfig {
            n_experts: 4,
            expert_hidden: vec![256, 128],
            tower_hidden: vec![64],
        }
    }
}

impl From<MmoeConfig> for BodyConfig {
    /// The body configuration `structure = "mmoe"` with these keys.
    fn from(c: MmoeConfig) -> BodyConfig {
        BodyConfig::of_named("mmoe", &c)
    }
}

impl BuildBody for MmoeConfig {
    fn build(
        &self,
        store: &mut ParamStore,
        prefix: &str,
        in_dim: usize,
        rng: &mut dyn RngCore,
    ) -> Box<dyn Body> {
        Box::new(Mmoe::new(
            store,
            prefix,
            in_dim,
            self.n_experts,
            &self.expert_hidden,
            &self.tower_hidden,
            rng,
        ))
    }

    fn invalid_key(&self) -> Option<(&'static str, String)> {
        if self.n_experts == 0 {
            return Some(("n_experts", "MMoE needs at least one expert".into()));
        }
        invalid_layers("expert_hidden", &self.expert_hidden, &self.tower_hidden)
    }
}

/// MMoE: experts, one gate per task, one tower per task.
#[derive(Debug, Clone)]
pub struct Mmoe {
    experts: Vec<Mlp>,
    gates: Vec<Linear>,
    towers: Towers,
}

impl Mmoe {
    /// Registers `n_experts` experts of ReLU layers `expert_hidden`, a gate per task and towers
    /// of ReLU layers `tower_hidden` (then a logit) on inputs of width `in_dim`.
    ///
    /// # Panics
    /// When `n_experts` is 0 or `expert_hidden` is empty (validated configurations never are).
    pub fn new<R: Rng + ?Sized>(
        store: &mut ParamStore,
        prefix: &str,
        in_dim: usize,
        n_experts: usize,
        expert_hidden: &[usize],
        tower_hidden: &[usize],
        rng: &mut R,
    ) -> Self {
        assert!(
            n_experts > 0 && !expert_hidden.is_empty(),
            "MMoE needs experts with layers"
        );
        let cfg = MlpConfig {
            hidden: expert_hidden.to_vec(),
            activation: Activation::Relu,
            last_activation: Activation::Relu,
        };
        let experts = (0..n_experts)
            .map(|k| Mlp::new(store, &format!("{prefix}.expert.{k}"), in_dim, &cfg, rng))
            .collect();
        let gates = Task::ALL
            .iter()
            .map(|t| {
                let name = format!("{prefix}.gate.{}", t.name());
                Linear::new(store, &name, in_dim, n_experts, Init::HeUniform, rng)
            })
            .collect();
        let expert_dim = *expert_hidden.last().expect("checked non-empty");
        let towers = Towers::new(store, prefix, expert_dim, tower_hidden, rng);
        Mmoe {
            experts,
            gates,
            towers,
        }
    }

    /// Number of experts.
    pub fn n_experts(&self) -> usize {
        self.experts.len()
    }
}

impl Body for Mmoe {
    /// # Shapes
    /// `h`: `(n, in_dim)` -> a logit `(n, 1)` and gate weights `(n, n_experts)` per task.
    fn forward(&self, g: &Graph<'_>, h: Var) -> TaskLogits {
        let experts: Vec<Var> = self.experts.iter().map(|e| e.forward(g, h)).collect();
        let mut logits = Vec::with_capacity(Task::ALL.len());
        let mut gates = Vec::with_capacity(Task::ALL.len());
        for task in Task::ALL {
            let scores = self.gates[task.index()].forward(g, h, Activation::Identity);
            let gate = g.softmax_rows(scores);
            let mixed = g.mix_experts(gate, &experts);
            logits.push(self.towers.forward(g, task, mixed));
            gates.push(gate);
        }
        TaskLogits { logits, gates }
    }
}
