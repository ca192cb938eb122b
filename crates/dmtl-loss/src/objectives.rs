//! The objectives a configuration can name ([`OBJECTIVES`]) and [`ObjectiveConfig`], one of them
//! with its settings: the `[objective]` table of the student's configuration.
//!
//! ```
//! use dmtl_loss::{ObjectiveConfig, OutputKind};
//! let cfg: ObjectiveConfig = toml::from_str(r#"
//!     type = "distill"
//!     alpha = 0.8
//!     loss = { type = "kl", temperature = 2.0 }
//! "#).unwrap();
//! assert_eq!(cfg.get().name(), "distill");
//! assert!(cfg.needs_teacher());
//! let b1: ObjectiveConfig = toml::from_str("type = \"click_bce\"").unwrap();
//! assert_eq!(b1.output_kind(), OutputKind::ClickProbability);
//! let err = toml::from_str::<ObjectiveConfig>("type = \"distill\"\nalfa = 1.0").unwrap_err();
//! assert!(err.to_string().contains("alfa"));
//! ```

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::builtin::{ClickBce, Distill, LogDurationMse, LongReadBce, WeightedLogistic};
use crate::focal::Focal;
use crate::objective::{Objective, OutputKind};
use crate::registry::{parse_typed, Configured, Entry, Parsed, Registered, Registry};

/// Every objective a configuration can name, by its `type`: one line an objective.
pub static OBJECTIVES: Registry<dyn Objective> = Registry {
    tag: "type",
    section: "objective.",
    default: "distill",
    tag_optional: false,
    entries: &[
        objective::<Distill>("distill").with_examples(&[
            "alpha = 0.6\nloss = { type = \"kl\", temperature = 2.0 }",
            "alpha = 0.3\nloss = { type = \"mse_logits\" }",
        ]),
        objective::<ClickBce>("click_bce"),
        objective::<LongReadBce>("long_read_bce"),
        objective::<LogDurationMse>("log_duration_mse"),
        objective::<WeightedLogistic>("weighted_logistic"),
        objective::<Focal>("focal").with_examples(&["gamma = 0.0", "gamma = 0.5"]),
    ],
};

fn parse_objective<O>(value: toml::Value) -> Result<Parsed<dyn Objective>, String>
where
    O: Objective + Serialize + DeserializeOwned + 'static,
{
    parse_typed::<O>(value).map(|(o, table)| (Arc::new(o) as Arc<dyn Objective>, table))
}

/// The registry entry of objective type `O` under `name` (which `O::name` must return too):
/// `O`'s serde fields are the keys of its table, each with a default.
pub const fn objective<O>(name: &'static str) -> Entry<dyn Objective>
where
    O: Objective + Serialize + DeserializeOwned + 'static,
{
    Entry::new(name, parse_objective::<O>)
}

impl Registered for dyn Objective {
    fn registry() -> &'static Registry<dyn Objective> {
        &OBJECTIVES
    }

    fn invalid_key(value: &Self) -> Option<(&'static str, String)> {
        value.invalid_key()
    }
}

/// A registered objective with its settings: the `[objective]` table of a configuration,
/// `type = "<name>"` followed by the objective's own keys.
pub type ObjectiveConfig = Configured<dyn Objective>;

impl Configured<dyn Objective> {
    /// The configuration of `objective`, a registered type.
    ///
    /// # Panics
    /// When no entry of [`OBJECTIVES`] is named [`Objective::name`].
    pub fn of<O: Objective + Serialize>(objective: O) -> ObjectiveConfig {
        Configured::of_named(objective.name(), &objective)
    }

    /// True when training needs the teacher's pCTCVR for every row
    /// ([`Objective::needs_teacher`]).
    pub fn needs_teacher(&self) -> bool {
        self.get().needs_teacher()
    }

    /// What `sigmoid(score)` estimates ([`Objective::output_kind`]).
    pub fn output_kind(&self) -> OutputKind {
        self.get().output_kind()
    }

    /// The objective, to share with a trainer.
    ///
    /// # Panics
    /// When a setting is out of range (use [`Configured::validate`] first for an error).
    pub fn build(&self) -> Arc<dyn Objective> {
        if let Err(e) = self.validate() {
            panic!("dmtl-loss: {e}");
        }
        self.shared()
    }
}
