//! Training settings as data: the `[train]` table of every model's configuration.
//!
//! In TOML every key is optional and falls back to [`TrainOptions::default`]:
//!
//! ```
//! use dmtl_train::{OnNonFinite, TrainOptions};
//! let opts: TrainOptions = toml::from_str(r#"
//!     epochs = 3
//!     on_non_finite = "skip"
//! "#).unwrap();
//! assert_eq!(opts.epochs, 3);
//! assert_eq!(opts.on_non_finite, OnNonFinite::Skip);
//! assert_eq!(opts.batch_size, 1024);
//! assert_eq!(opts.invalid_key(), None);
//! assert_eq!(opts.precision, dmtl_tensor::Precision::F32);
//! let bf16: TrainOptions = toml::from_str("precision = \"bf16\"").unwrap();
//! assert_eq!(bf16.precision, dmtl_tensor::Precision::Bf16);
//! let err = toml::from_str::<TrainOptions>("precision = \"fp16\"").unwrap_err();
//! assert!(err.to_string().contains("precision"), "{err}");
//! ```

pub use dmtl_tensor::Precision;
use serde::{Deserialize, Deserializer, Serialize};

/// Training settings, the `[train]` table of the teacher's and of the student's
/// configuration alike; [`crate::epochs::run`] follows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainOptions {
    /// Adam's learning rate (betas 0.9/0.999, eps 1e-8).
    pub lr: f32,
    /// Impressions per batch.
    pub batch_size: usize,
    /// Most epochs to run.
    pub epochs: usize,
    /// Stop after this many epochs without a better validation long-read AUC (0: never stop
    /// early). With a validation set the best epoch's parameters are restored at the end.
    pub patience: usize,
    /// Seed of the batch order (epoch `e` shuffles with stream `e`).
    pub seed: u64,
    /// Clip the global gradient norm to this value (`None`: no clipping).
    pub clip_norm: Option<f64>,
    /// What a batch whose loss, gradient or update is NaN or infinite does: stop training
    /// with an error (default), or skip that batch's update (counted in the epoch report;
    /// an epoch whose every batch is skipped is still an error).
    pub on_non_finite: OnNonFinite,
    /// With a state directory, write the training state every this many batches (0: only at
    /// the end of each epoch).
    pub checkpoint_every: usize,
    /// Stop after this many batches of this call (the state is written first) and return
    /// [`crate::TrainError::Interrupted`]: how tests emulate a killed run. `None`: never.
    pub stop_after_batches: Option<usize>,
    /// The arithmetic of the dense products of every training step: `"f32"` (default) or
    /// `"bf16"` (bf16 operands, f32 accumulation, f32 master weights and optimizer state; on
    /// CPUs without AVX-512 BF16 training runs in f32 and says so in one line). Written to a
    /// configuration only when not f32, so f32 configurations read and write as before.
    #[serde(deserialize_with = "precision_by_name", skip_serializing_if = "is_f32")]
    pub precision: Precision,
}

/// Reads `precision` by name, an unknown value's error saying `unknown precision` and the
/// accepted names (serde's own would speak of an unknown variant).
fn precision_by_name<'de, D: Deserializer<'de>>(d: D) -> Result<Precision, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map_err(serde::de::Error::custom)
}

fn is_f32(p: &Precision) -> bool {
    *p == Precision::F32
}

/// What a batch with a NaN or infinite loss, gradient or update does to training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNonFinite {
    /// Stop with an error naming the epoch, the batch and the parameter.
    #[default]
    Stop,
    /// Leave the parameters and the optimizer as they were and go on with the next batch.
    Skip,
}

impl Default for TrainOptions {
    /// Adam at 1e-3, batches of 1,024, 5 epochs, patience 2.
    fn default() -> Self {
        TrainOptions {
            lr: 1e-3,
            batch_size: 1024,
            epochs: 5,
            patience: 2,
            seed: 7,
            clip_norm: None,
            on_non_finite: OnNonFinite::Stop,
            checkpoint_every: 0,
            stop_after_batches: None,
            precision: Precision::F32,
        }
    }
}

impl TrainOptions {
    /// The first out-of-range value, if any: its key as written under `[train]` in a
    /// configuration file (`train.lr`, say) and what it must be.
    pub fn invalid_key(&self) -> Option<(&'static str, &'static str)> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Some(("train.lr", "must be a finite number > 0"));
        }
        if self.epochs == 0 {
            return Some(("train.epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Some(("train.batch_size", "must be at least 1"));
        }
        if self.clip_norm.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
            return Some(("train.clip_norm", "must be a finite number > 0"));
        }
        if self.stop_after_batches == Some(0) {
            return Some(("train.stop_after_batches", "must be at least 1"));
        }
        None
    }
}
