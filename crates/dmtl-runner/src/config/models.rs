//! The registry of the models a run compares: their names (command line, configuration,
//! checkpoint folders), their row labels and their student objectives.

use std::fmt;

use dmtl_student::ObjectiveConfig;
use serde::{Deserialize, Serialize};

/// A model of the comparison: the teacher or a two-tower student with one objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ModelName {
    /// The multi-task teacher (MMoE or shared bottom, ESMM heads); offline metrics only.
    #[serde(rename = "teacher")]
    Teacher,
    /// B4, the paper's model: the two-tower student distilled from the teacher's pCTCVR.
    #[serde(rename = "dmtl")]
    Dmtl,
    /// B1: two towers trained on clicks.
    #[serde(rename = "b1")]
    B1,
    /// B2: two towers trained on the hard long-read label.
    #[serde(rename = "b2")]
    B2,
    /// B3: two towers regressing log(1 + duration).
    #[serde(rename = "b3-mse")]
    B3Mse,
    /// B3': two towers with YouTube's duration-weighted logistic regression.
    #[serde(rename = "b3-wlr")]
    B3Wlr,
}

impl ModelName {
    /// Every two-tower model, in table order.
    pub const STUDENTS: [ModelName; 5] = [
        ModelName::Dmtl,
        ModelName::B1,
        ModelName::B2,
        ModelName::B3Mse,
        ModelName::B3Wlr,
    ];

    /// The name used on the command line, in configs and as the checkpoint folder.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelName::Teacher => "teacher",
            ModelName::Dmtl => "dmtl",
            ModelName::B1 => "b1",
            ModelName::B2 => "b2",
            ModelName::B3Mse => "b3-mse",
            ModelName::B3Wlr => "b3-wlr",
        }
    }

    /// The row label of the results table.
    pub fn label(self) -> &'static str {
        match self {
            ModelName::Teacher => "Teacher (MMoE+ESMM)",
            ModelName::Dmtl => "DMTL (distilled two-tower)",
            ModelName::B1 => "B1 click",
            ModelName::B2 => "B2 hard long read",
            ModelName::B3Mse => "B3 log-duration MSE",
            ModelName::B3Wlr => "B3' weighted LR",
        }
    }

    /// Parses a name as written by [`ModelName::as_str`].
    pub fn parse(s: &str) -> Option<ModelName> {
        [ModelName::Teacher]
            .into_iter()
            .chain(ModelName::STUDENTS)
            .find(|m| m.as_str() == s)
    }

    /// The student objective of a two-tower model; `dmtl` takes `dmtl_objective` (the
    /// `[student.objective]` of the config). `None` for the teacher.
    pub fn objective(self, dmtl_objective: ObjectiveConfig) -> Option<ObjectiveConfig> {
        match self {
            ModelName::Teacher => None,
            ModelName::Dmtl => Some(dmtl_objective),
            ModelName::B1 => Some(ObjectiveConfig::ClickBce),
            ModelName::B2 => Some(ObjectiveConfig::LongReadBce),
            ModelName::B3Mse => Some(ObjectiveConfig::LogDurationMse),
            ModelName::B3Wlr => Some(ObjectiveConfig::WeightedLogistic),
        }
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
