//! [`RunConfig::validate`]: every value checked and every named file found before any work,
//! each error built with the key it is about.

use dmtl_data::Schema;
use dmtl_student::{ObjectiveConfig, ObjectiveExt, StudentError};
use dmtl_teacher::TeacherError;

use super::error::ConfigError;
use super::models::ModelName;
use super::sections::{RunConfig, TeacherStage};
use crate::layout::{TEACHER_DIR, VOCAB_FILE};

impl RunConfig {
    /// Checks every value and that every named file exists; the error names the key.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| Err(ConfigError::new(origin, key, message));
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
                    if key == "data.schema" {
                        if p.is_dir() {
                            return err(key, format!("{} is a folder, not a file", p.display()));
                        }
                        if !p.is_file() {
                            return err(key, format!("no such file: {}", p.display()));
                        }
                        continue;
                    }
                    // A log is a file, a folder of part files or a glob.
                    if !p.exists() && !crate::paths::is_glob(p) {
                        return err(key, format!("no such file or folder: {}", p.display()));
                    }
                    if let Err(e) = dmtl_data::log_parts(p, &Default::default()) {
                        return err(key, e.to_string());
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
                if !run.join(VOCAB_FILE).is_file() {
                    return err(
                        "stages.from_run",
                        format!("{} is not a run folder (no {})", run.display(), VOCAB_FILE),
                    );
                }
                if st.teacher == TeacherStage::Load
                    && !run
                        .join(TEACHER_DIR)
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
        // The libraries name their keys within their own section.
        match self.teacher.validate(origin) {
            Ok(()) => {}
            Err(TeacherError::Config { key, message, .. }) => {
                return Err(ConfigError::in_section(origin, "teacher", &key, message))
            }
            Err(e) => return err("teacher", e.to_string()),
        }
        match self.student.validate(origin) {
            Ok(()) => {}
            Err(StudentError::Config { key, message, .. }) => {
                return Err(ConfigError::in_section(origin, "student", &key, message))
            }
            Err(e) => return err("student", e.to_string()),
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
