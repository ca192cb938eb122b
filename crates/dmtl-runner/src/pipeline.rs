//! The pipeline behind `dmtl demo` and `dmtl train`, stage by stage:
//!
//! ```text
//! prepare::prepare_data_in     data -> vocabularies -> encoded rows, retrieval task
//! preflight                    labels and model sizes checked; nothing written yet
//! start_folder                 config.toml, inputs.json, schema, vocabularies, corpus tables
//! stages::teacher::train       teacher (trained or loaded) -> teacher/
//! stages::teacher::evaluate    its row; pCTCVR of the training rows (soft labels)
//! stages::students::run        per model: two towers -> models/<name>/, its row
//! stages::references::rows     oracle and random rows
//! report::write_run            metrics.json, plots/, report.md
//! ```
//!
//! The run folder's layout is [`crate::layout`]'s.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dmtl_data::Schema;

use crate::config::{RunConfig, TeacherStage};
use crate::eval;
use crate::fsutil::write_text;
use crate::layout::{CONFIG_FILE, SCHEMA_FILE};
use crate::metrics::RunMetrics;
use crate::prepare::{prepare_data_in, Prepared};
use crate::progress::Progress;
use crate::stages::{references, students, teacher, StageInputs};
use crate::states::States;

/// Runs the whole pipeline of `cfg` into `dir` and writes metrics.json, report.md and the plots.
pub fn run_pipeline(
    cfg: &RunConfig,
    dir: &Path,
    command: &str,
    seed: u64,
    progress: &Progress,
) -> Result<RunMetrics> {
    run_pipeline_with(cfg, dir, command, seed, States::Off, progress)
}

/// [`run_pipeline`] keeping training states as `states` says. With [`States::Resume`], `dir`
/// must be a run folder whose `config.toml` `cfg` was read from: its vocabularies are
/// reused and the data it was built from must encode to the same schema.
pub fn run_pipeline_with(
    cfg: &RunConfig,
    dir: &Path,
    command: &str,
    seed: u64,
    states: States,
    progress: &Progress,
) -> Result<RunMetrics> {
    let start = Instant::now();
    // Everything that can be wrong with the input (the log, the schema, an earlier run's
    // vocabularies or teacher) is found before the first write, so a run stopped by bad input
    // leaves its folder as it was (and does not create it).
    let data = checked_data(cfg, dir, states, progress)?;
    let loaded = match cfg.stages.teacher {
        TeacherStage::Load => Some(teacher::load_from_run(cfg, &data)?),
        _ => None,
    };
    start_folder(cfg, dir, states, &data)?;

    let inputs = StageInputs {
        cfg,
        data: &data,
        dir,
        states,
        progress,
    };
    let edges = histogram_edges(cfg, &data);
    let mut rows = Vec::new();
    let mut soft_labels = None;
    if let Some(trained) = teacher::train(inputs, loaded)? {
        let (row, p) = teacher::evaluate(inputs, &trained)?;
        rows.push(row);
        soft_labels = p;
    }
    for &model in &cfg.stages.models {
        rows.push(students::run(
            inputs,
            model,
            soft_labels.as_deref(),
            &edges,
        )?);
    }
    rows.extend(references::rows(cfg, &data, &edges, progress)?);

    let metrics = RunMetrics {
        command: command.to_string(),
        seed,
        data: data.summary.clone(),
        models: rows,
        wall_seconds: start.elapsed().as_secs_f64(),
        threads: rayon::current_num_threads(),
    };
    crate::report::write_run(dir, &metrics, cfg.eval.k)?;
    Ok(metrics)
}

/// The run's data, prepared (with the resumed run's own vocabularies, or those of
/// `stages.from_run`) and checked: on resume, against the run's saved schema; then the labels
/// and the models' sizes ([`crate::preflight`]).
fn checked_data(
    cfg: &RunConfig,
    dir: &Path,
    states: States,
    progress: &Progress,
) -> Result<Prepared> {
    let resume = states == States::Resume;
    let vocab_run = if resume {
        Some(dir)
    } else {
        cfg.stages.from_run.as_deref()
    };
    let data = prepare_data_in(cfg, vocab_run, progress)?;
    // Over several ranks, every rank must have built the same vocabularies.
    crate::ranks::check_same_data(&data)?;
    if resume {
        let saved = Schema::load(dir.join(SCHEMA_FILE))?;
        if saved != data.schema {
            bail!(
                "{}: the schema of the run differs from the one its data now gives ({}): \
                 the data changed since the run started",
                dir.join(SCHEMA_FILE).display(),
                data.summary.source
            );
        }
    }
    crate::preflight::check_labels(cfg, &data.train_labels, &data.schema, &data.summary.source)?;
    crate::preflight::check_memory(cfg, &data.schema, &data.vocabs, None)?;
    Ok(data)
}

/// Writes what a run starts with: its folder, `config.toml`, `inputs.json` (with states), the
/// schema, the vocabularies and the corpus tables. A resumed run keeps its own and gets only
/// the corpus tables it lacks (they are written last when a run starts; a run killed before
/// them gets them now, from the same rows).
fn start_folder(cfg: &RunConfig, dir: &Path, states: States, data: &Prepared) -> Result<()> {
    if states == States::Resume {
        return data.write_corpus_tables(dir, true);
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the run folder {}", dir.display()))?;
    write_text(&dir.join(CONFIG_FILE), &cfg.to_toml_string())?;
    if states == States::Fresh {
        crate::inputs::record(cfg, dir)?;
    }
    data.write(dir)
}

/// The bins of the histogram of true reading seconds: up to half the simulator's longest read
/// (600 s on real logs, where there is no truth to bin).
fn histogram_edges(cfg: &RunConfig, data: &Prepared) -> Vec<f64> {
    eval::edges(
        data.sim
            .as_ref()
            .map_or(600.0, |s| s.config().max_read_seconds * 0.5),
        cfg.eval.histogram_bins,
    )
}
