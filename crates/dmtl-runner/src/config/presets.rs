//! The scales and the configuration of the simulated demo.

use dmtl_data::sim::SimConfig;
use dmtl_student::StudentConfig;
use dmtl_teacher::TeacherConfig;
use serde::{Deserialize, Serialize};

use super::sections::{EvalConfig, RunConfig, StagesConfig};

/// The scales of the simulated demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// 2,000 users and items, 60,000 impressions: seconds.
    Tiny,
    /// 10,000 users, 5,000 items, 1,000,000 impressions (200 per item), the reference models
    /// trained to convergence: about three and a half minutes on 2 cores.
    Default,
    /// The reference workload of BENCHMARKS.md (5,000,000 impressions): long.
    Reference,
}

/// Items in the default demo's corpus.
pub const DEMO_ITEMS: usize = 5_000;
/// Impressions in the default demo's log.
pub const DEMO_IMPRESSIONS: usize = 1_000_000;

impl Scale {
    /// The simulator configuration of this scale. The default demo keeps the simulator's
    /// population (10,000 users) but gives each item about 200 impressions: with the 25 of
    /// `SimConfig::default()`, no model's item vectors are learned well enough for the
    /// paper's effect to show (docs/results.md measures how it grows with data per item).
    pub fn sim_config(self) -> SimConfig {
        match self {
            Scale::Tiny => SimConfig::tiny(),
            Scale::Default => SimConfig {
                n_items: DEMO_ITEMS,
                n_impressions: DEMO_IMPRESSIONS,
                ..SimConfig::default()
            },
            Scale::Reference => SimConfig::reference(),
        }
    }
}

/// The demo's configuration at `scale`: the simulator and every model of the paper's table.
///
/// The default scale trains the reference teacher (MMoE, 4 experts of `[256, 128]`, towers
/// `[64]`, Adam at 1e-3) and the reference towers (`[256, 128, 64]`, Adam at 3e-3) for up to 8
/// epochs with early stopping on the validation long-read AUC (patience 2), so every model
/// stops at its own best epoch rather than at a fixed budget. The tiny scale keeps small models and 3 epochs so that tests
/// run in seconds.
pub fn demo_config(scale: Scale, seed: u64) -> RunConfig {
    let mut sim = scale.sim_config();
    sim.seed = sim.seed.wrapping_add(seed);
    let mut teacher = TeacherConfig::default();
    let mut student = StudentConfig::default();
    teacher.seed = seed;
    teacher.train.seed = seed;
    student.seed = seed;
    student.train.seed = seed;
    match scale {
        Scale::Reference => {}
        Scale::Default => {
            for train in [&mut teacher.train, &mut student.train] {
                train.epochs = 8;
                train.patience = 2;
                train.batch_size = 1024;
            }
            // A two-tower model's score is a dot product of two small vectors at the start:
            // at 1e-3 the distilled student sits on a plateau for one to four epochs before
            // its long-read AUC rises, long enough for early stopping to end it there. 3e-3
            // removes the plateau and helps every two-tower model alike (docs/results.md).
            student.train.lr = 3e-3;
        }
        Scale::Tiny => {
            teacher.expert_hidden = vec![128, 64];
            teacher.tower_hidden = vec![32];
            teacher.train.epochs = 3;
            teacher.train.batch_size = 1024;
            teacher.train.patience = 1;
            student.user_layers = vec![128, 32];
            student.item_layers = vec![128, 32];
            student.train.epochs = 3;
            student.train.batch_size = 1024;
            student.train.patience = 1;
        }
    }
    let eval = EvalConfig {
        retrieval_users: match scale {
            Scale::Tiny => 500,
            _ => 2000,
        },
        seed: seed.wrapping_add(10),
        ..EvalConfig::default()
    };
    RunConfig {
        data: None,
        simulator: Some(sim),
        stages: StagesConfig::default(),
        teacher,
        student,
        eval,
    }
}
