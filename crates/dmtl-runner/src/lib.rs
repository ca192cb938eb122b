//! The `dmtl` runner: the paper's experiment (Zhao et al., "Distillation based Multi-task
//! Learning: A Candidate Generation Model for Improving Reading Duration", arXiv 2102.07142)
//! end to end, on the built-in feed simulator or on your own impression logs.
//!
//! The runner is thin: the data crate reads and encodes, the teacher and student crates train,
//! the metrics crate measures. This crate wires a configuration to those stages and writes a
//! run folder (see [`run`]):
//!
//! - [`config`]: the run configuration (`run.toml`), validated before any work;
//! - [`run`]: the pipeline (data, teacher, teacher scores, students, evaluation);
//! - [`eval`]: the table's numbers; [`report`] and [`plots`]: `report.md`, `metrics.json`, SVGs;
//! - [`fsutil`]: atomic writes, the checks of `train --out` and of outputs, the run-folder lock;
//! - [`inputs`]: the identity of the input files that `train --resume` checks;
//! - [`preflight`]: the checks of the data and of the models' sizes before any training;
//! - [`commands`]: what `dmtl demo | train | score | export | retrieve | simulate` call.

pub mod commands;
pub mod config;
pub mod eval;
pub mod fsutil;
pub mod inputs;
pub mod plots;
pub mod preflight;
pub mod progress;
pub mod report;
pub mod run;
pub mod table;

pub use config::{ConfigError, ModelName, RunConfig, Scale};
