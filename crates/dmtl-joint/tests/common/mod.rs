//! Set-up shared by the tests of dmtl-joint and its `compare` example (which includes this
//! file by path): the simulator's world and the models compared on it, and a tiny teacher.

// Each test file and the example use a part of it.
#![allow(dead_code)]

use dmtl_data::sim::{SimConfig, Simulator};
use dmtl_data::{split_train_test, DataError, Dataset, Schema, Vocabularies};
use dmtl_student::{ObjectiveConfig, StudentConfig};
use dmtl_teacher::{TeacherConfig, TrainConfig};

/// The simulator (`SimConfig::tiny` with `n_impressions` impressions, dimension 8), its schema,
/// the vocabularies of its training days and the encoded training and test days.
pub struct World {
    pub sim: Simulator,
    pub schema: Schema,
    pub vocabs: Vocabularies,
    pub train: Dataset,
    pub test: Dataset,
}

/// Simulates and encodes the [`World`] of `n_impressions` impressions (split with seed 1).
pub fn world(n_impressions: usize) -> Result<World, DataError> {
    let sim = Simulator::new(SimConfig {
        n_impressions,
        embedding_dim: 8,
        ..SimConfig::tiny()
    });
    let schema = Schema::from_toml_str(&sim.schema_toml(), "simulator schema")?;
    let raw = sim.impressions();
    let (train_raw, test_raw) = split_train_test(&raw, &schema, 1)?;
    let vocabs = Vocabularies::build(&schema, &train_raw)?;
    let train = Dataset::encode(&schema, &train_raw, &vocabs)?;
    let test = Dataset::encode(&schema, &test_raw, &vocabs)?;
    Ok(World {
        sim,
        schema,
        vocabs,
        train,
        test,
    })
}

/// The teacher compared on the [`World`]: MMoE, 2 experts of 64 and 32, towers of 16.
pub fn world_teacher() -> TeacherConfig {
    TeacherConfig {
        body: dmtl_teacher::MmoeConfig {
            n_experts: 2,
            expert_hidden: vec![64, 32],
            tower_hidden: vec![16],
        }
        .into(),
        ..Default::default()
    }
}

/// How the teacher and every student train on the [`World`]: `epochs` epochs of batches of
/// 512 at learning rate 2e-3, no early stopping.
pub fn world_training(epochs: usize) -> TrainConfig {
    TrainConfig {
        lr: 2e-3,
        batch_size: 512,
        epochs,
        patience: 0,
        ..Default::default()
    }
}

/// A student compared on the [`World`]: towers of 64 and 32, trained by [`world_training`].
pub fn world_student(objective: ObjectiveConfig, epochs: usize) -> StudentConfig {
    StudentConfig {
        user_layers: vec![64, 32],
        item_layers: vec![64, 32],
        objective,
        train: world_training(epochs),
        ..Default::default()
    }
}

/// A tiny teacher for the synthetic workloads: MMoE, 2 experts of 8, towers of 4.
pub fn tiny_teacher() -> TeacherConfig {
    TeacherConfig {
        body: dmtl_teacher::MmoeConfig {
            n_experts: 2,
            expert_hidden: vec![8],
            tower_hidden: vec![4],
        }
        .into(),
        ..Default::default()
    }
}
