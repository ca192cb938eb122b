//! The `dmtl` runner: the paper's experiment (Zhao et al., "Distillation based Multi-task
//! Learning: A Candidate Generation Model for Improving Reading Duration", arXiv 2102.07142)
//! end to end, on the built-in feed simulator or on your own impression logs.
//!
//! The runner is thin: the data crate reads and encodes, the teacher and student crates train,
//! the metrics crate measures. This crate wires a configuration to those stages and writes a
//! run folder ([`layout`]). One concern per module; a run flows through them as a pipeline
//! ([`pipeline`]):
//!
//! ```text
//! config -> prepare -> preflight -> stages::teacher -> stages::students -> stages::references
//!        -> report (+ plots) -> the run folder
//! ```
//!
//! - [`layout`]: the run folder's file and folder names;
//! - [`config`]: the run configuration (`run.toml`), validated before any work;
//! - [`columns`]: views of raw and encoded columns every stage reads;
//! - [`prepare`]: data preparation (read or simulate, split, vocabularies, encode, the
//!   retrieval task) into [`prepared::Prepared`]; [`streamed`]: the same for a log streamed
//!   (`data.stream`, [`stream_mode`]), split row by row ([`row_split`]), its training rows
//!   read again every epoch ([`train_rows`]); [`task`]: the retrieval task built from rows
//!   given whole or chunk by chunk; [`preflight`]: the checks of the data and of the models'
//!   sizes;
//! - [`stages`]: the teacher, the two-tower models and the reference rows, each a stage that
//!   takes inputs and returns its row; [`states`]: their training states;
//! - [`pipeline`]: the stages in order, into a run folder;
//! - [`eval`]: the table's numbers; [`metrics`]: the metrics schema (`metrics.json`);
//!   [`report`] and [`plots`]: `report.md`, `metrics.json`, the SVGs;
//! - [`checkpoints`]: a run folder's checkpoints loaded back (score, export, retrieve);
//! - [`fsutil`]: atomic writes, the checks of `train --out` and of outputs, the staged run
//!   folder; [`lock`]: the run-folder lock; [`paths`]: paths as the file system resolves
//!   them, and the part files of a log given as a folder or glob; [`table`]: result tables as CSV or Parquet;
//! - [`inputs`]: the identity of the input files that `train --resume` checks;
//! - [`progress`]: progress bars;
//! - [`commands`]: what `dmtl demo | train | score | export | retrieve | simulate` call.
//!
//! Modules import only downwards (`use crate::...`), no circle; an arrow is "imports":
//!
//! ```text
//! commands    -> checkpoints columns config fsutil inputs layout metrics pipeline progress
//!                report states table
//! pipeline    -> config eval fsutil inputs layout metrics prepare preflight progress report
//!                stages states
//! stages      -> checkpoints columns config eval layout metrics prepare progress states
//!                train_rows
//! report      -> config eval fsutil layout metrics plots
//! plots       -> eval fsutil metrics
//! prepare     -> columns config eval metrics preflight prepared progress streamed task
//!                train_rows
//! streamed    -> columns config metrics preflight prepared progress row_split task
//!                train_rows
//! prepared    -> config eval layout metrics preflight train_rows
//! train_rows  -> row_split
//! row_split   -> columns config
//! task        -> config eval
//! checkpoints -> columns config fsutil layout
//! inputs      -> config fsutil layout paths
//! preflight   -> columns config
//! metrics     -> eval
//! states      -> layout
//! table       -> fsutil
//! fsutil      -> layout lock paths
//! lock        -> paths
//! config      -> layout paths stream_mode
//! layout, paths, columns, eval, progress, stream_mode: none
//! ```
//!
//! Inside `config`, `plots` and `stages` the files import each other downwards too (e.g.
//! `config::validate -> config::sections -> config::models`); each `mod.rs` only declares and
//! re-exports its files, except where it holds the module's entry point (`RunConfig::load`,
//! `plots::write_all`).

#![deny(missing_docs)]

pub mod checkpoints;
pub mod columns;
pub mod commands;
pub mod config;
pub mod eval;
pub mod fsutil;
pub mod inputs;
pub mod layout;
pub mod lock;
pub mod metrics;
pub mod paths;
pub mod pipeline;
pub mod plots;
pub mod preflight;
pub mod prepare;
pub mod prepared;
pub mod progress;
pub mod ranks;
pub mod report;
pub mod row_split;
pub mod stages;
pub mod states;
pub mod stream_mode;
pub mod streamed;
pub mod table;
pub mod task;
pub mod train_rows;

pub use config::{ConfigError, ModelName, RunConfig, Scale};
