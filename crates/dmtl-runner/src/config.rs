//! The run configuration (`run.toml`): where the data comes from, which stages run, the
//! teacher's and the students' settings and the evaluation. Every section is optional except
//! the data source; a missing key takes the library default (`[teacher]` falls back to
//! [`TeacherConfig::default`], `[student]` to [`StudentConfig::default`]). Unknown keys are
//! errors. [`RunConfig::load`] parses, resolves relative paths against the config's folder and
//! validates everything before any work starts; each error names the file and the key.
//!
//! ```toml
//! [data]
//! schema = "schema.toml"         # the log's schema (columns, labels, ids, split)
//! log = "log.csv"                # CSV or Parquet; split into train/test by the schema's [split]
//! # test_log = "test.csv"        # a separate test log instead of the split
//! # items = "items.csv"          # the item corpus for retrieval (default: items of the log)
//!
//! [stages]
//! teacher = "train"              # train | load (from_run) | skip
//! # from_run = "runs/train-20250101-120000"
//! models = ["dmtl", "b1", "b2", "b3-mse", "b3-wlr"]
//!
//! [teacher]
//! n_experts = 4
//! [teacher.train]
//! epochs = 3
//!
//! [student]
//! user_layers = [128, 64]
//! item_layers = [128, 64]
//! [student.train]
//! epochs = 3
//!
//! [eval]
//! k = 100
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use dmtl_data::sim::SimConfig;
use dmtl_data::Schema;
use dmtl_student::{ObjectiveConfig, ObjectiveExt, StudentConfig};
use dmtl_teacher::TeacherConfig;
use serde::{Deserialize, Serialize};

/// A configuration error: the file (or `<demo>`), the key and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The configuration file.
    pub origin: String,
    /// The offending key, dotted (`student.train.lr`); empty for a syntax error.
    pub key: String,
    /// What was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: `{}`: {}", self.origin, self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where the impressions come from: the user's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The schema file (TOML), see `dmtl_data::Schema`.
    pub schema: PathBuf,
    /// The impression log, CSV (header row) or Parquet, by extension.
    pub log: PathBuf,
    /// A separate test log; without it the log is split by the schema's `[split]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_log: Option<PathBuf>,
    /// A table of every item (item-side columns only), the corpus retrieval searches; without it
    /// the corpus is every item of the training log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<PathBuf>,
    /// Overrides the schema's long-read threshold (seconds, >= 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_read_threshold: Option<f32>,
    /// Skip (and count) malformed rows instead of stopping at the first.
    #[serde(default)]
    pub skip_bad_rows: bool,
    /// Seed of a random train/test split (`split.test_fraction`).
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
}

fn default_split_seed() -> u64 {
    7
}

/// What to do with the teacher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeacherStage {
    /// Train a teacher.
    Train,
    /// Take the teacher (and the vocabularies) of the run folder `stages.from_run`.
    Load,
    /// No teacher: only models that do not distil can run.
    Skip,
}

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

/// Which stages run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StagesConfig {
    /// Train, load or skip the teacher.
    pub teacher: TeacherStage,
    /// An earlier run folder: its vocabularies are reused, and its teacher with
    /// `teacher = "load"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_run: Option<PathBuf>,
    /// The two-tower models to train (`dmtl`, `b1`, `b2`, `b3-mse`, `b3-wlr`); may be empty.
    pub models: Vec<ModelName>,
}

impl Default for StagesConfig {
    fn default() -> Self {
        StagesConfig {
            teacher: TeacherStage::Train,
            from_run: None,
            models: ModelName::STUDENTS.to_vec(),
        }
    }
}

/// How models are evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Length of each retrieved list (top-K over the whole item corpus).
    pub k: usize,
    /// Users sampled for the retrieval metrics (recall@K of held-out long reads, and the true
    /// reading time on simulated data).
    pub retrieval_users: usize,
    /// Bins of the histogram of true reading time of retrieved items.
    pub histogram_bins: usize,
    /// Seed of the user sample, of the validation rows and of the random reference.
    pub seed: u64,
    /// Share of the training rows held out (at random) to validate each epoch: the curves of
    /// the report and early stopping. 0 trains on every row without validation.
    pub valid_fraction: f64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            k: 100,
            retrieval_users: 2000,
            histogram_bins: 30,
            seed: 11,
            valid_fraction: 0.05,
        }
    }
}

/// The whole configuration of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The user's log files; exactly one of `data` and `simulator` must be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataConfig>,
    /// Simulate the log instead (what `dmtl demo` does); retrieval is then also scored
    /// against the simulator's ground truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulator: Option<SimConfig>,
    /// Which stages run.
    #[serde(default)]
    pub stages: StagesConfig,
    /// The teacher; unset keys take `TeacherConfig::default()`.
    #[serde(default)]
    pub teacher: TeacherConfig,
    /// Every two-tower model's towers and training; `objective` is DMTL's (alpha, distillation
    /// loss); the baselines replace it with their own.
    #[serde(default)]
    pub student: StudentConfig,
    /// Evaluation.
    #[serde(default)]
    pub eval: EvalConfig,
}

impl RunConfig {
    /// Reads, resolves (relative paths against the file's folder) and validates `path`.
    pub fn load(path: &Path) -> Result<RunConfig, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            key: String::new(),
            message: format!("cannot read the configuration: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        RunConfig::from_toml_str(&text, &origin, base)
    }

    /// Parses TOML text; relative paths are resolved against `base`; validates.
    pub fn from_toml_str(text: &str, origin: &str, base: &Path) -> Result<RunConfig, ConfigError> {
        let mut cfg: RunConfig = toml::from_str(text).map_err(|e| {
            let mut key = toml_error_key(&e);
            if key.is_empty() {
                key = e
                    .span()
                    .and_then(|s| key_at(text, s.start))
                    .unwrap_or_default();
            }
            ConfigError {
                origin: origin.to_string(),
                key,
                message: plain_type_names(e.message().trim_end())
                    + &e.span()
                        .map(|s| format!(" (at {})", line_col(text, s.start)))
                        .unwrap_or_default(),
            }
        })?;
        cfg.resolve_paths(base);
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Makes every path absolute: relative ones are read from `base`, and existing files are
    /// canonicalized, so that the `config.toml` a run saves names the same files wherever it
    /// is read from (`train --resume`, or the run folder itself).
    fn resolve_paths(&mut self, base: &Path) {
        let base = match base.as_os_str().is_empty() {
            true => Path::new("."),
            false => base,
        };
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        let fix = |p: &mut PathBuf| {
            let joined = base.join(&*p);
            *p = joined.canonicalize().unwrap_or(joined);
        };
        if let Some(d) = &mut self.data {
            fix(&mut d.schema);
            fix(&mut d.log);
            d.test_log.as_mut().map(fix);
            d.items.as_mut().map(fix);
        }
        self.stages.from_run.as_mut().map(fix);
    }

    /// The configuration as TOML (what a run writes as `config.toml`).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).expect("a run configuration always serializes")
    }

    /// Checks every value and that every named file exists; the error names the key.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| {
            Err(ConfigError {
                origin: origin.to_string(),
                key: key.to_string(),
                message,
            })
        };
        match (&self.data, &self.simulator) {
            (None, None) => return err(
                "data",
                "no data source: give a [data] section (schema and log) or a [simulator] section"
                    .into(),
            ),
            (Some(_), Some(_)) => {
                return err(
                    "simulator",
                    "give either [data] or [simulator], not both".into(),
                )
            }
            _ => {}
        }
        if let Some(d) = &self.data {
            for (key, p) in [("data.schema", Some(&d.schema)), ("data.log", Some(&d.log))]
                .into_iter()
                .chain([
                    ("data.test_log", d.test_log.as_ref()),
                    ("data.items", d.items.as_ref()),
                ])
            {
                if let Some(p) = p {
                    if p.is_dir() {
                        return err(
                            key,
                            format!(
                                "{} is a folder, not a file; reading a folder (of Parquet \
                                 parts, say) is not supported yet: give one file",
                                p.display()
                            ),
                        );
                    }
                    if !p.is_file() {
                        return err(key, format!("no such file: {}", p.display()));
                    }
                }
            }
            if let Some(t) = d.long_read_threshold {
                if !(t.is_finite() && t >= 0.0) {
                    return err(
                        "data.long_read_threshold",
                        format!("must be a finite number of seconds >= 0, got {t}"),
                    );
                }
            }
            // The schema is checked now, so that a bad schema stops the run before any work.
            if let Err(e) = Schema::load(&d.schema) {
                return err("data.schema", e.to_string());
            }
        }
        if let Some(s) = &self.simulator {
            if let Err(e) = s.validate() {
                return err("simulator", e);
            }
        }
        let st = &self.stages;
        match (st.teacher, &st.from_run) {
            (TeacherStage::Load, None) => {
                return err(
                    "stages.from_run",
                    "teacher = \"load\" needs the run folder to load it from".into(),
                )
            }
            (_, Some(run)) => {
                if !run.join(crate::run::VOCAB_FILE).is_file() {
                    return err(
                        "stages.from_run",
                        format!(
                            "{} is not a run folder (no {})",
                            run.display(),
                            crate::run::VOCAB_FILE
                        ),
                    );
                }
                if st.teacher == TeacherStage::Load
                    && !run
                        .join(crate::run::TEACHER_DIR)
                        .join(dmtl_teacher::teacher::WEIGHTS_FILE)
                        .is_file()
                {
                    return err(
                        "stages.from_run",
                        format!("{} holds no trained teacher", run.display()),
                    );
                }
            }
            _ => {}
        }
        if let Some(m) = st.models.iter().find(|m| **m == ModelName::Teacher) {
            return err(
                "stages.models",
                format!("`{m}` is not a two-tower model; the teacher is set by stages.teacher"),
            );
        }
        for (i, m) in st.models.iter().enumerate() {
            if st.models[..i].contains(m) {
                return err("stages.models", format!("`{m}` is listed twice"));
            }
        }
        if st.teacher == TeacherStage::Skip
            && st.models.contains(&ModelName::Dmtl)
            && self.student.objective.needs_teacher()
        {
            return err(
                "stages.models",
                "`dmtl` distils the teacher, which stages.teacher = \"skip\" leaves out".into(),
            );
        }
        if let ObjectiveConfig::Distill { alpha, .. } = self.student.objective {
            if !(0.0..=1.0).contains(&alpha) {
                return err(
                    "student.objective.alpha",
                    format!("must be in [0, 1] (1 is pure distillation), got {alpha}"),
                );
            }
        } else {
            return err(
                "student.objective.type",
                "is DMTL's objective and must be \"distill\"; the baselines are chosen in stages.models"
                    .into(),
            );
        }
        if let Err(e) = self.teacher.validate(origin) {
            return Err(prefixed(origin, "teacher", &e.to_string()));
        }
        if let Err(e) = self.student.validate(origin) {
            return Err(prefixed(origin, "student", &e.to_string()));
        }
        let e = &self.eval;
        if e.k == 0 {
            return err("eval.k", "must be at least 1".into());
        }
        if e.retrieval_users == 0 {
            return err("eval.retrieval_users", "must be at least 1".into());
        }
        if !(0.0..0.5).contains(&e.valid_fraction) {
            return err(
                "eval.valid_fraction",
                format!("must be in [0, 0.5), got {}", e.valid_fraction),
            );
        }
        if e.histogram_bins == 0 {
            return err("eval.histogram_bins", "must be at least 1".into());
        }
        Ok(())
    }
}

/// Re-keys a library validation error (`origin: `key`: message`) under the config section.
fn prefixed(origin: &str, section: &str, text: &str) -> ConfigError {
    let rest = text.strip_prefix(origin).unwrap_or(text);
    let rest = rest.strip_prefix(": ").unwrap_or(rest);
    if let Some(after) = rest.strip_prefix('`') {
        if let Some(end) = after.find('`') {
            let key = &after[..end];
            let message = after[end + 1..].trim_start_matches(':').trim().to_string();
            return ConfigError {
                origin: origin.to_string(),
                key: format!("{section}.{key}"),
                message,
            };
        }
    }
    ConfigError {
        origin: origin.to_string(),
        key: section.to_string(),
        message: rest.to_string(),
    }
}

/// The key a TOML deserialization error is about, when its message names one.
fn toml_error_key(e: &toml::de::Error) -> String {
    let m = e.message();
    if let Some(i) = m.find("unknown field `") {
        let rest = &m[i + "unknown field `".len()..];
        if let Some(end) = rest.find('`') {
            return rest[..end].to_string();
        }
    }
    if let Some(i) = m.find("missing field `") {
        let rest = &m[i + "missing field `".len()..];
        if let Some(end) = rest.find('`') {
            return rest[..end].to_string();
        }
    }
    String::new()
}

/// The dotted key assigned on the line holding `offset` (`student.train.batch_size` for
/// `batch_size = -1` under `[student.train]`): serde's type errors ("invalid value: integer
/// `-1`, expected usize") carry a position but not the key.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let (lhs, _) = text[start..end].split_once('=')?;
    let name = lhs.trim().trim_matches('"');
    if name.is_empty() || name.starts_with('[') {
        return None;
    }
    let section = text[..start].lines().rev().find_map(|l| {
        let l = l.trim();
        l.starts_with('[')
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
    });
    Some(match section {
        Some(sec) if !sec.is_empty() => format!("{sec}.{name}"),
        _ => name.to_string(),
    })
}

/// serde's Rust type names in a message, in words.
fn plain_type_names(message: &str) -> String {
    message
        .replace("expected usize", "expected an integer >= 0")
        .replace("expected u64", "expected an integer >= 0")
        .replace("expected u32", "expected an integer >= 0")
        .replace("expected f32", "expected a number")
        .replace("expected f64", "expected a number")
}

fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {col}")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RunConfig, ConfigError> {
        RunConfig::from_toml_str(text, "run.toml", Path::new("."))
    }

    const SIM: &str = "[simulator]\nn_users = 100\n";

    #[test]
    fn defaults_are_inherited_and_sections_override_them() {
        let c = parse(&format!("{SIM}[teacher.train]\nepochs = 9\n")).unwrap();
        assert_eq!(c.teacher.train.epochs, 9);
        assert_eq!(
            c.teacher.train.batch_size,
            TeacherConfig::default().train.batch_size
        );
        assert_eq!(c.student, StudentConfig::default());
        assert_eq!(c.stages.models.len(), 5);
        let back = parse(&c.to_toml_string()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "[student.train]\nbatch_size = 0\n",
                "student.train.batch_size",
            ),
            ("[teacher.train]\nlr = 0.0\n", "teacher.train.lr"),
            ("[eval]\nk = 0\n", "eval.k"),
            (
                "[student.objective]\ntype = \"distill\"\nalpha = 1.5\n",
                "student.objective.alpha",
            ),
            ("[stages]\nteacher = \"load\"\n", "stages.from_run"),
            (
                "[stages]\nteacher = \"skip\"\nmodels = [\"dmtl\"]\n",
                "stages.models",
            ),
            ("[eval]\nkk = 3\n", "kk"),
            (
                "[student.train]\nbatch_size = -1\n",
                "student.train.batch_size",
            ),
            ("[eval]\nk = -3\n", "eval.k"),
        ];
        for (text, key) in cases {
            let e = parse(&format!("{SIM}{text}")).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(e.to_string().starts_with("run.toml"), "{e}");
        }
    }

    #[test]
    fn missing_files_and_sources_are_reported() {
        let e = parse("[data]\nschema = \"nope.toml\"\nlog = \"nope.csv\"\n").unwrap_err();
        assert_eq!(e.key, "data.schema");
        assert!(e.message.contains("nope.toml"));
        assert_eq!(parse("").unwrap_err().key, "data");
        let e = parse("[data]\nschema = \"x\"\n").unwrap_err();
        assert_eq!(e.key, "log");
    }

    #[test]
    fn model_names_round_trip() {
        for m in ModelName::STUDENTS {
            assert_eq!(ModelName::parse(m.as_str()), Some(m));
        }
        assert_eq!(ModelName::parse("teacher"), Some(ModelName::Teacher));
        assert_eq!(ModelName::parse("b4"), None);
    }
}
