//! The run configuration (`run.toml`): where the data comes from, which stages run, the
//! teacher's and the students' settings and the evaluation. Every section is optional except
//! the data source; a missing key takes the library default (`[teacher]` falls back to
//! [`dmtl_teacher::TeacherConfig::default`], `[student]` to
//! [`dmtl_student::StudentConfig::default`]). Unknown keys are errors. [`RunConfig::load`]
//! parses, resolves relative paths against the config's folder and validates everything before
//! any work starts; each error names the file and the key.
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
//!
//! One file per concern: [`sections`] (the sections and [`RunConfig`]), [`models`] (the
//! registry of the compared models), [`validate`] (the checks), [`toml_errors`] (parse errors
//! in the configuration's words), [`presets`] (the demo's scales), [`error`] ([`ConfigError`]).

pub mod error;
pub mod models;
pub mod presets;
pub mod sections;
pub mod toml_errors;
pub mod validate;

use std::path::{Path, PathBuf};

pub use error::ConfigError;
pub use models::ModelName;
pub use presets::{demo_config, Scale, DEMO_IMPRESSIONS, DEMO_ITEMS};
pub use sections::{DataConfig, EvalConfig, RunConfig, StagesConfig, TeacherStage};

impl RunConfig {
    /// Reads, resolves (relative paths against the file's folder) and validates `path`.
    pub fn load(path: &Path) -> Result<RunConfig, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(&origin, "", format!("cannot read the configuration: {e}"))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        RunConfig::from_toml_str(&text, &origin, base)
    }

    /// Parses TOML text; relative paths are resolved against `base`; validates.
    pub fn from_toml_str(text: &str, origin: &str, base: &Path) -> Result<RunConfig, ConfigError> {
        let mut cfg: RunConfig = toml_errors::from_toml_str(text, origin)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use dmtl_student::StudentConfig;
    use dmtl_teacher::TeacherConfig;

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
            // The key path tracked while deserializing.
            ("[eval]\nkk = 3\n", "eval.kk"),
            (
                "[student.train]\nbatch_size = -1\n",
                "student.train.batch_size",
            ),
            ("[eval]\nk = -3\n", "eval.k"),
            ("[stages]\nmodels = [\"dmtl\", 3]\n", "stages.models[1]"),
            // Tables deserialized from buffered content (the teacher's flattened body, a
            // tagged objective) are tracked down to the table.
            ("[teacher]\nn_experts = -1\n", "teacher"),
            (
                "[student.objective]\ntype = \"distill\"\nalpha = \"x\"\n",
                "student.objective",
            ),
        ];
        for (text, key) in cases {
            let e = parse(&format!("{SIM}{text}")).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(e.to_string().starts_with("run.toml"), "{e}");
        }
    }

    /// `precision` in `[teacher.train]` and `[student.train]`: f32 by default, bf16 read, an
    /// unknown value refused with the key in the error.
    #[test]
    fn training_precision_is_read_and_unknown_values_are_refused() {
        use dmtl_tensor::Precision;
        let c = parse(SIM).unwrap();
        assert_eq!(c.teacher.train.precision, Precision::F32);
        assert_eq!(c.student.train.precision, Precision::F32);
        let c = parse(&format!(
            "{SIM}[teacher.train]\nprecision = \"bf16\"\n[student.train]\nprecision = \"bf16\"\n"
        ))
        .unwrap();
        assert_eq!(c.teacher.train.precision, Precision::Bf16);
        assert_eq!(c.student.train.precision, Precision::Bf16);
        assert_eq!(parse(&c.to_toml_string()).unwrap(), c);
        for section in ["student.train", "teacher.train"] {
            let e = parse(&format!("{SIM}[{section}]\nprecision = \"fp16\"\n")).unwrap_err();
            assert_eq!(e.key, format!("{section}.precision"), "{e}");
            let text = e.to_string();
            assert!(text.contains("unknown precision \"fp16\""), "{text}");
        }
    }

    #[test]
    fn missing_files_and_sources_are_reported() {
        let e = parse("[data]\nschema = \"nope.toml\"\nlog = \"nope.csv\"\n").unwrap_err();
        assert_eq!(e.key, "data.schema");
        assert!(e.message.contains("nope.toml"));
        assert_eq!(parse("").unwrap_err().key, "data");
        // A missing key: the table that lacks it, the message naming it.
        let e = parse("[data]\nschema = \"x\"\n").unwrap_err();
        assert_eq!(e.key, "data");
        assert!(e.message.contains("missing field `log`"), "{e}");
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
