//! The teacher's configuration: structure, sizes and training settings, as data.
//!
//! `TeacherConfig::default()` is the reference teacher of BENCHMARKS.md. In TOML every key is
//! optional and falls back to that default:
//!
//! ```
//! use dmtl_teacher::{Structure, TeacherConfig};
//! let cfg = TeacherConfig::from_toml_str(r#"
//!     structure = "shared_bottom"
//!     expert_hidden = [128, 64]
//!     [train]
//!     epochs = 3
//! "#, "teacher.toml").unwrap();
//! assert_eq!(cfg.structure, Structure::SharedBottom);
//! assert_eq!(cfg.tower_hidden, vec![64]);
//! assert_eq!(cfg.train.batch_size, 1024);
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Result, TeacherError};
pub use dmtl_train::config::{OnNonFinite, TrainOptions};
use dmtl_train::FieldEmbeddingConfig;

/// How the tasks share the field embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Structure {
    /// Multi-gate mixture of experts: `n_experts` expert MLPs, one softmax gate per task
    /// ([`crate::mmoe`]).
    Mmoe,
    /// One MLP shared by every task, a tower per task on top ([`crate::shared_bottom`]).
    SharedBottom,
}

/// Sizes of the teacher and how to train it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeacherConfig {
    /// MMoE (default) or a shared bottom.
    pub structure: Structure,
    /// Number of experts (MMoE only).
    pub n_experts: usize,
    /// Layer widths of each expert (MMoE) or of the shared bottom, every layer ReLU.
    pub expert_hidden: Vec<usize>,
    /// Hidden layer widths of each task's tower (ReLU); a final layer of width 1 gives the
    /// logit.
    pub tower_hidden: Vec<usize>,
    /// The field embeddings.
    pub embedding: FieldEmbeddingConfig,
    /// Weight `w` of the pCTCVR term: loss = BCE(click, pCTR) + w * BCE(click & long read,
    /// pCTCVR).
    pub ctcvr_weight: f32,
    /// Seed of the initial parameters (and, through [`TrainOptions::seed`], of the batch order).
    pub seed: u64,
    /// How to train.
    pub train: TrainOptions,
}

/// The teacher's name for [`TrainOptions`].
pub type TrainConfig = TrainOptions;

impl Default for TeacherConfig {
    /// The reference teacher: MMoE, 4 experts of `[256, 128]`, towers `[64]` then a logit,
    /// `w = 1`, tables of the schema's dimension.
    fn default() -> Self {
        TeacherConfig {
            structure: Structure::Mmoe,
            n_experts: 4,
            expert_hidden: vec![256, 128],
            tower_hidden: vec![64],
            embedding: FieldEmbeddingConfig::default(),
            ctcvr_weight: 1.0,
            seed: 2021,
            train: TrainOptions::default(),
        }
    }
}

impl TeacherConfig {
    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<TeacherConfig> {
        // toml's message names the line, the column and the unknown or mistyped key.
        let cfg: TeacherConfig = toml::from_str(text).map_err(|e| TeacherError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// The configuration as TOML text.
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).expect("a teacher configuration always serializes")
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let err = |key: &str, message: &str| {
            Err(TeacherError::Config {
                origin: origin.to_string(),
                key: key.to_string(),
                message: message.to_string(),
            })
        };
        if self.structure == Structure::Mmoe && self.n_experts == 0 {
            return err("n_experts", "MMoE needs at least one expert");
        }
        if self.expert_hidden.is_empty() || self.expert_hidden.contains(&0) {
            return err(
                "expert_hidden",
                "needs at least one layer, every width >= 1",
            );
        }
        if self.tower_hidden.contains(&0) {
            return err("tower_hidden", "every width must be >= 1");
        }
        if self.embedding.dim == Some(0) {
            return err("embedding.dim", "must be at least 1");
        }
        if !(self.embedding.init_std.is_finite() && self.embedding.init_std >= 0.0) {
            return err("embedding.init_std", "must be a finite number >= 0");
        }
        if !(self.ctcvr_weight.is_finite() && self.ctcvr_weight >= 0.0) {
            return err("ctcvr_weight", "must be a finite number >= 0");
        }
        match self.train.invalid_key() {
            Some((key, message)) => err(key, message),
            None => Ok(()),
        }
    }
}
