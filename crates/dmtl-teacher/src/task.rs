//! The tasks the teacher learns and the tower each task ends in.
//!
//! Adding a task is done here first: a [`Task`] variant with its name, which gives it a gate
//! (MMoE) and a tower in every structure; then a field in [`crate::TeacherOutput`] and its
//! term in the loss ([`crate::Teacher::train`]).

use dmtl_tensor::nn::{Mlp, MlpConfig};
use dmtl_tensor::{Activation, Graph, ParamStore, Var};
use rand::Rng;

/// One output of the multi-task teacher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Click-through: `pCTR = P(click)`, learned from the click label.
    Ctr,
    /// Long read given a click: `pCVR = P(long read | click)`, learned only through
    /// `pCTCVR = pCTR * pCVR` on every impression (ESMM).
    Cvr,
}

impl Task {
    /// Every task, in output order.
    pub const ALL: [Task; 2] = [Task::Ctr, Task::Cvr];

    /// The task's name in parameter names (`teacher.gate.ctr.weight`, `teacher.tower.cvr...`).
    pub fn name(self) -> &'static str {
        match self {
            Task::Ctr => "ctr",
            Task::Cvr => "cvr",
        }
    }

    /// Position in [`Task::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One tower per task: an MLP of `hidden` ReLU layers then a linear layer of width 1 giving
/// the task's logit. Tower `t` is named `<prefix>.tower.<t>`, its layers `.layer.<k>`.
#[derive(Debug, Clone)]
pub struct Towers {
    towers: Vec<Mlp>,
}

impl Towers {
    /// Registers a tower for every task of [`Task::ALL`] on inputs of width `in_dim`.
    pub fn new<R: Rng + ?Sized>(
        store: &mut ParamStore,
        prefix: &str,
        in_dim: usize,
        hidden: &[usize],
        rng: &mut R,
    ) -> Self {
        let mut widths = hidden.to_vec();
        widths.push(1);
        let cfg = MlpConfig {
            hidden: widths,
            activation: Activation::Relu,
            last_activation: Activation::Identity,
        };
        let towers = Task::ALL
            .iter()
            .map(|t| {
                Mlp::new(
                    store,
                    &format!("{prefix}.tower.{}", t.name()),
                    in_dim,
                    &cfg,
                    rng,
                )
            })
            .collect();
        Towers { towers }
    }

    /// The logit of `task`.
    ///
    /// # Shapes
    /// `x`: `(n, in_dim)` -> `(n, 1)`.
    pub fn forward(&self, g: &Graph<'_>, task: Task, x: Var) -> Var {
        self.towers[task.index()].forward(g, x)
    }
}

/// What a multi-task structure gives for a batch: one logit per task and, for gated structures,
/// the gate weights.
#[derive(Debug, Clone)]
pub struct TaskLogits {
    /// Logit of each task of [`Task::ALL`], in that order, each `(n, 1)`.
    pub logits: Vec<Var>,
    /// Gate weights of each task, `(n, n_experts)` rows summing to 1; empty for structures
    /// without gates.
    pub gates: Vec<Var>,
}
