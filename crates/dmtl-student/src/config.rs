//! The student's configuration as data: tower sizes, similarity, objective and training.
//!
//! `StudentConfig::default()` is the reference student of BENCHMARKS.md. In TOML every key is
//! optional and falls back to that default:
//!
//! ```
//! use dmtl_student::{ObjectiveConfig, StudentConfig};
//! let cfg = StudentConfig::from_toml_str(r#"
//!     user_layers = [128, 32]
//!     item_layers = [128, 32]
//!     [objective]
//!     type = "click_bce"
//!     [train]
//!     epochs = 3
//! "#, "student.toml").unwrap();
//! assert_eq!(cfg.output_dim(), 32);
//! assert_eq!(cfg.objective.name(), "click_bce");
//! assert_eq!(cfg.train.batch_size, 1024);
//! ```

use dmtl_train::checkpoint::{self, ModelConfig};
pub use dmtl_train::config::TrainOptions;
use dmtl_train::FieldEmbeddingConfig;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::objective::ObjectiveConfig;

/// How a user vector and an item vector make a score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Similarity {
    /// `s = <u, v>` (the paper's).
    Dot,
    /// `s = cos(u, v) / temperature`: both tower outputs are L2-normalised and the user's is
    /// divided by the temperature, so that the exported vectors still score by inner product.
    Cosine {
        /// The temperature, `> 0`; about 0.05 to 0.2 lets the score reach useful logits.
        temperature: f32,
    },
}

/// Sizes of the two towers, the score, the objective and training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudentConfig {
    /// Widths of the user tower's layers over the user and context fields; ReLU between
    /// layers, none after the last, whose width is the vector dimension.
    pub user_layers: Vec<usize>,
    /// Widths of the item tower's layers over the item fields; the last must equal the user
    /// tower's.
    pub item_layers: Vec<usize>,
    /// Inner product or temperature-scaled cosine.
    pub similarity: Similarity,
    /// The towers' own field embeddings.
    pub embedding: FieldEmbeddingConfig,
    /// The training objective.
    pub objective: ObjectiveConfig,
    /// Seed of the initial parameters.
    pub seed: u64,
    /// How to train.
    pub train: TrainOptions,
}

impl Default for StudentConfig {
    /// The reference student: towers `[256, 128, 64]`, inner product, pure soft-BCE
    /// distillation, tables of the schema's dimension.
    fn default() -> Self {
        StudentConfig {
            user_layers: vec![256, 128, 64],
            item_layers: vec![256, 128, 64],
            similarity: Similarity::Dot,
            embedding: FieldEmbeddingConfig::default(),
            objective: ObjectiveConfig::default(),
            seed: 2021,
            train: TrainOptions::default(),
        }
    }
}

impl StudentConfig {
    /// Dimension of the user and item vectors: the width of the towers' last layers.
    pub fn output_dim(&self) -> usize {
        self.user_layers.last().copied().unwrap_or(0)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<StudentConfig> {
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

impl ModelConfig for StudentConfig {
    fn invalid_key(&self) -> Option<(String, String)> {
        let bad = |key: &str, message: &str| Some((key.to_string(), message.to_string()));
        for (key, layers) in [
            ("user_layers", &self.user_layers),
            ("item_layers", &self.item_layers),
        ] {
            if layers.is_empty() || layers.contains(&0) {
                return bad(key, "needs at least one layer, every width >= 1");
            }
        }
        if self.user_layers.last() != self.item_layers.last() {
            return bad(
                "item_layers",
                "the last width (the vector dimension) must equal user_layers' last",
            );
        }
        if let Similarity::Cosine { temperature } = self.similarity {
            if !(temperature.is_finite() && temperature > 0.0) {
                return bad("similarity.temperature", "must be a finite number > 0");
            }
        }
        if let Some((key, message)) = self.embedding.invalid_key() {
            return Some((key.to_string(), message));
        }
        if let Err(e) = self.objective.validate() {
            return Some((e.key, e.message));
        }
        let (key, message) = self.train.invalid_key()?;
        bad(key, message)
    }
}
