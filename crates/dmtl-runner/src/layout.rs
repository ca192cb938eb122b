//! The names of a run folder's files and folders, the one place that knows them:
//!
//! ```text
//! config.toml        the resolved configuration (every default filled in, paths absolute)
//! inputs.json        size, modification time and hash of every input file (`dmtl train`)
//! schema.toml        the schema the models were built for
//! vocab.json         the vocabularies (index 0 of every table is out-of-vocabulary)
//! items.parquet      the item corpus (item-side columns), what retrieval and export search
//! users.parquet      one row per training user (user and context columns), for export
//! teacher/           teacher.safetensors + teacher.toml
//! models/<name>/     student.safetensors + student.toml per two-tower model
//! metrics.json       every number of the report, per model, with the training curves
//! report.md          the table and the plots (plots/*.svg)
//! state/<stage>/     training states (`dmtl train` only): what `dmtl train --resume` continues
//! ```

use std::path::{Path, PathBuf};

// What a two-tower model is loaded from (schema, vocabularies, `models/<name>/`, item corpus)
// is named where `dmtl retrieve` and `dmtl serve` both load it.
pub use dmtl_student::run_folder::{student_dir, ITEMS_FILE, MODELS_DIR, SCHEMA_FILE, VOCAB_FILE};

/// The resolved configuration in a run folder.
pub const CONFIG_FILE: &str = "config.toml";
/// The input identities in a run folder (`dmtl train`).
pub const INPUTS_FILE: &str = "inputs.json";
/// One row per training user in a run folder.
pub const USERS_FILE: &str = "users.parquet";
/// The teacher's folder in a run folder.
pub const TEACHER_DIR: &str = "teacher";
/// The metrics in a run folder.
pub const METRICS_FILE: &str = "metrics.json";
/// The report in a run folder.
pub const REPORT_FILE: &str = "report.md";
/// The plots' folder in a run folder.
pub const PLOTS_DIR: &str = "plots";
/// The folder of the training states (one sub-folder per stage: `teacher`, `dmtl`, `b1`, ...)
/// in a run folder.
pub const STATE_DIR: &str = "state";

/// Everything a run folder holds (besides `.tmp-*` files a killed write leaves): anything else
/// in a folder is the user's, and `train --out` refuses to replace it.
pub const RUN_ENTRIES: [&str; 12] = [
    CONFIG_FILE,
    SCHEMA_FILE,
    VOCAB_FILE,
    ITEMS_FILE,
    USERS_FILE,
    TEACHER_DIR,
    MODELS_DIR,
    METRICS_FILE,
    REPORT_FILE,
    PLOTS_DIR,
    STATE_DIR,
    INPUTS_FILE,
];

/// The teacher's checkpoint folder in the run folder `run`.
pub fn teacher_dir(run: &Path) -> PathBuf {
    run.join(TEACHER_DIR)
}

/// The training state folder of `stage` (`teacher`, `dmtl`, ...) in the run folder `run`.
pub fn state_dir(run: &Path, stage: &str) -> PathBuf {
    run.join(STATE_DIR).join(stage)
}

/// Whether `dir` is a run folder of `dmtl train` or `dmtl demo`: it holds the run's
/// configuration and vocabularies.
pub fn is_run_folder(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file() && dir.join(VOCAB_FILE).is_file()
}
