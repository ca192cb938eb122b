//! The teacher's configuration: body, sizes and training settings, as data.
//!
//! `TeacherConfig::default()` is the reference teacher of BENCHMARKS.md. In TOML every key is
//! optional and falls back to that default; `structure` names the body (MMoE when absent) and
//! the body's own keys stand beside it:
//!
//! ```
//! use dmtl_teacher::TeacherConfig;
//! let cfg = TeacherConfig::from_toml_str(r#"
//!     structure = "shared_bottom"
//!     expert_hidden = [128, 64]
//!     [train]
//!     epochs = 3
//! "#, "teacher.toml").unwrap();
//! assert_eq!(cfg.body.name(), "shared_bottom");
//! assert_eq!(cfg.body.params()["tower_hidden"], toml::Value::Array(vec![64.into()]));
//! assert_eq!(cfg.train.batch_size, 1024);
//! let err = TeacherConfig::from_toml_str("structure = \"mmoe\"\nlevels = 1", "t.toml").unwrap_err();
//! assert!(err.to_string().contains("levels"));
//! ```

use serde::{Deserialize, Serialize};

use crate::body::BodyConfig;
use crate::error::Result;
use dmtl_train::checkpoint::{self, ModelConfig};
pub use dmtl_train::config::{OnNonFinite, TrainOptions};
use dmtl_train::FieldEmbeddingConfig;

/// Sizes of the teacher and how to train it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TeacherConfig {
    /// The body: `structure` (a name in [`crate::bodies::BODIES`], MMoE by default) and its
    /// keys, which stand at the top of the file. An unknown key is an error of the body's.
    #[serde(flatten)]
    pub body: BodyConfig,
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
            body: BodyConfig::default(),
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
        Ok(checkpoint::from_toml_str(text, origin)?)
    }

    /// The configuration as TOML text.
    pub fn to_toml_string(&self) -> String {
        checkpoint::to_toml_string(self)
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self, origin: &str) -> Result<()> {
        Ok(checkpoint::validate(self, origin)?)
    }
}

impl ModelConfig for TeacherConfig {
    fn invalid_key(&self) -> Option<(String, String)> {
        if let Err(e) = self.body.validate() {
            return Some((e.key, e.message));
        }
        if let Some((key, message)) = self.embedding.invalid_key() {
            return Some((key.to_string(), message));
        }
        if !(self.ctcvr_weight.is_finite() && self.ctcvr_weight >= 0.0) {
            return Some(("ctcvr_weight".into(), "must be a finite number >= 0".into()));
        }
        let (key, message) = self.train.invalid_key()?;
        Some((key.to_string(), message.to_string()))
    }
}
