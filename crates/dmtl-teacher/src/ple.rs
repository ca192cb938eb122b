//! Progressive Layered Extraction.
//!
//! Hongyan Tang, Junning Liu, Ming Zhao, Xudong Gong, "Progressive Layered Extraction (PLE): A
//! Novel Multi-Task Learning (MTL) Model for Personalized Recommendations", RecSys 2020.
//!
//! Each of `levels` extraction layers holds, per task, `task_experts` experts that only that
//! task reads, and `shared_experts` experts every task reads. Task `t`'s gate mixes its own
//! experts and the shared ones, `x_t' = sum_k g_t,k E_k(x_t)`; below the last layer a shared
//! gate mixes every expert of the layer into the shared experts' next input `x_s'`. The first
//! layer reads the field embeddings everywhere (`x_t = x_s = h`); the last layer's task outputs
//! feed the towers. Unlike MMoE, a task can keep experts to itself, which eases the seesaw
//! between tasks that disagree.
//!
//! Parameters: `<prefix>.level.<j>.expert.<task|shared>.<k>.layer.<i>.{weight,bias}`,
//! `<prefix>.level.<j>.gate.<task|shared>.{weight,bias}`, `<prefix>.tower.<task>.layer.<i>...`.
//! In `teacher.toml`: `structure = "ple"`, `shared_experts`, `task_experts`, `levels`,
//! `expert_hidden`, `tower_hidden`.

use dmtl_tensor::nn::{Linear, Mlp, MlpConfig};
use dmtl_tensor::{Activation, Graph, Init, ParamStore, Var};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::body::{invalid_layers, Body, BuildBody};
use crate::task::{Task, TaskLogits, Towers};

/// The keys of a PLE body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PleConfig {
    /// Shared experts in each extraction layer (at least 1).
    pub shared_experts: usize,
    /// Experts of each task in each extraction layer (at least 1).
    pub task_experts: usize,
    /// Extraction layers (at least 1; one is the paper's CGC).
    pub levels: usize,
    /// Layer widths of every expert, every layer ReLU.
    pub expert_hidden: Vec<usize>,
    /// Hidden layer widths of each task's tower (ReLU); a final layer of width 1 gives the
    /// logit.
    pub tower_hidden: Vec<usize>,
}

impl Default for PleConfig {
    /// Two extraction layers, each with 2 shared and 1 task expert per task of `[256, 128]`;
    /// towers `[64]` then a logit.
    fn default() -> Self {
        PleConfig {
            shared_experts: 2,
            task_experts: 1,
            levels: 2,
            expert_hidden: vec![256, 128],
            tower_hidden: vec![64],
        }
    }
}

impl BuildBody for PleConfig {
    fn build(
        &self,
        store: &mut ParamStore,
        prefix: &str,
        in_dim: usize,
        rng: &mut dyn RngCore,
    ) -> Box<dyn Body> {
        if let Some((key, message)) = self.invalid_key() {
            panic!("PLE: `{key}` {message}");
        }
        let expert_cfg = MlpConfig {
            hidden: self.expert_hidden.clone(),
            activation: Activation::Relu,
            last_activation: Activation::Relu,
        };
        let width = *self.expert_hidden.last().expect("checked non-empty");
        let n_all = Task::ALL.len() * self.task_experts + self.shared_experts;
        let mut levels = Vec::with_capacity(self.levels);
        for j in 0..self.levels {
            let d = if j == 0 { in_dim } else { width };
            let p = format!("{prefix}.level.{j}");
            let mut experts = |group: &str, n: usize, rng: &mut dyn RngCore| -> Vec<Mlp> {
                (0..n)
                    .map(|k| {
                        Mlp::new(
                            store,
                            &format!("{p}.expert.{group}.{k}"),
                            d,
                            &expert_cfg,
                            rng,
                        )
                    })
                    .collect()
            };
            let task_experts: Vec<Vec<Mlp>> = Task::ALL
                .iter()
                .map(|t| experts(t.name(), self.task_experts, rng))
                .collect();
            let shared_experts = experts("shared", self.shared_experts, rng);
            let mut gate = |group: &str, n: usize, rng: &mut dyn RngCore| {
                Linear::new(
                    store,
                    &format!("{p}.gate.{group}"),
                    d,
                    n,
                    Init::HeUniform,
                    rng,
                )
            };
            let n_task = self.task_experts + self.shared_experts;
            let task_gates = Task::ALL
                .iter()
                .map(|t| gate(t.name(), n_task, rng))
                .collect();
            let last = j + 1 == self.levels;
            let shared_gate = (!last).then(|| gate("shared", n_all, rng));
            levels.push(Level {
                task_experts,
                shared_experts,
                task_gates,
                shared_gate,
            });
        }
        let towers = Towers::new(store, prefix, width, &self.tower_hidden, rng);
        Box::new(Ple { levels, towers })
    }

    fn invalid_key(&self) -> Option<(&'static str, String)> {
        for (key, n) in [
            ("shared_experts", self.shared_experts),
            ("task_experts", self.task_experts),
            ("levels", self.levels),
        ] {
            if n == 0 {
                return Some((key, "must be at least 1".into()));
            }
        }
        invalid_layers("expert_hidden", &self.expert_hidden, &self.tower_hidden)
    }
}

/// One extraction layer: the experts of each task and the shared ones, a gate per task and,
/// below the last layer, the shared gate.
#[derive(Debug, Clone)]
struct Level {
    task_experts: Vec<Vec<Mlp>>,
    shared_experts: Vec<Mlp>,
    task_gates: Vec<Linear>,
    shared_gate: Option<Linear>,
}

/// PLE: extraction layers of task and shared experts, then one tower per task.
#[derive(Debug, Clone)]
pub struct Ple {
    levels: Vec<Level>,
    towers: Towers,
}

impl Body for Ple {
    /// # Shapes
    /// `h`: `(n, in_dim)` -> a logit `(n, 1)` per task, and the last layer's gate weights
    /// `(n, task_experts + shared_experts)` per task.
    fn forward(&self, g: &Graph<'_>, h: Var) -> TaskLogits {
        let mut task_in = vec![h; Task::ALL.len()];
        let mut shared_in = h;
        let mut gates = Vec::new();
        for level in &self.levels {
            let run = |experts: &[Mlp], x: Var| -> Vec<Var> {
                experts.iter().map(|e| e.forward(g, x)).collect()
            };
            let own: Vec<Vec<Var>> = Task::ALL
                .iter()
                .map(|t| run(&level.task_experts[t.index()], task_in[t.index()]))
                .collect();
            let shared = run(&level.shared_experts, shared_in);
            let mix = |gate: &Linear, x: Var, experts: &[Var]| {
                let w = g.softmax_rows(gate.forward(g, x, Activation::Identity));
                (w, g.mix_experts(w, experts))
            };
            gates.clear();
            let mut next = Vec::with_capacity(Task::ALL.len());
            for t in Task::ALL {
                let mine: Vec<Var> = own[t.index()].iter().chain(&shared).copied().collect();
                let (w, out) = mix(&level.task_gates[t.index()], task_in[t.index()], &mine);
                gates.push(w);
                next.push(out);
            }
            if let Some(gate) = &level.shared_gate {
                let all: Vec<Var> = own.iter().flatten().chain(&shared).copied().collect();
                shared_in = mix(gate, shared_in, &all).1;
            }
            task_in = next;
        }
        let logits = Task::ALL
            .iter()
            .map(|&t| self.towers.forward(g, t, task_in[t.index()]))
            .collect();
        TaskLogits { logits, gates }
    }
}
