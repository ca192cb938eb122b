//! The pipeline behind `dmtl demo` and `dmtl train`: data -> vocabularies -> teacher ->
//! teacher scores -> students (DMTL and the competitors) -> evaluation -> run folder.
//!
//! A run folder holds:
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use dmtl_data::sim::Simulator;
use dmtl_data::{
    read_log_with_report, split_train_test, write_parquet, Dataset, RawColumn, RawLog, ReadOptions,
    Schema, Side, StrColumn, Vocabularies, OOV,
};
use dmtl_student::retrieval::top_k;
use dmtl_student::{ObjectiveExt, Student};
use dmtl_teacher::train::epochs::TrainEvent;
use dmtl_teacher::train::state::StateDir;
use dmtl_teacher::Teacher;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::config::{ModelName, RunConfig, TeacherStage};
use crate::eval::{self, OfflineMetrics, Output, RetrievalMetrics, RetrievalTask};
use crate::fsutil::write_text;
use crate::progress::{Progress, TrainBar};

/// The resolved configuration in a run folder.
pub const CONFIG_FILE: &str = "config.toml";
/// The schema in a run folder.
pub const SCHEMA_FILE: &str = "schema.toml";
/// The vocabularies in a run folder.
pub const VOCAB_FILE: &str = "vocab.json";
/// The item corpus in a run folder.
pub const ITEMS_FILE: &str = "items.parquet";
/// One row per training user in a run folder.
pub const USERS_FILE: &str = "users.parquet";
/// The teacher's folder in a run folder.
pub const TEACHER_DIR: &str = "teacher";
/// The folder of the two-tower models (one sub-folder per model) in a run folder.
pub const MODELS_DIR: &str = "models";
/// The metrics in a run folder.
pub const METRICS_FILE: &str = "metrics.json";
/// The report in a run folder.
pub const REPORT_FILE: &str = "report.md";
/// The plots' folder in a run folder.
pub const PLOTS_DIR: &str = "plots";
/// The folder of the training states (one sub-folder per stage: `teacher`, `dmtl`, `b1`, ...)
/// in a run folder.
pub const STATE_DIR: &str = "state";

/// Whether and how a pipeline keeps training states under `<run>/state/<stage>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum States {
    /// No states (`dmtl demo`).
    Off,
    /// A new run: states are written from scratch, so that a stopped run can be resumed.
    Fresh,
    /// Continue the run in its own folder: its configuration, schema, vocabularies and corpus
    /// tables are reused (not rewritten), and every stage continues from its state (a stage
    /// whose state says it is done is loaded from it, not retrained).
    Resume,
}

impl States {
    /// The state directory of `stage` in the run folder `dir`, if states are kept; on resume,
    /// logs where the stage's state stands (`RUST_LOG=info`).
    pub fn dir(self, dir: &Path, stage: &str, epochs: usize) -> Option<StateDir> {
        let d = dir.join(STATE_DIR).join(stage);
        match self {
            States::Off => None,
            States::Fresh => Some(StateDir::fresh(d)),
            States::Resume => {
                info!("{stage}: {}", describe_state(&d, epochs));
                Some(StateDir::resume(d))
            }
        }
    }
}

/// Where the training state in `dir` stands, in words, from its manifest's `position` (the
/// library checks the state itself when it loads it).
fn describe_state(dir: &Path, epochs: usize) -> String {
    let path = dir.join(dmtl_teacher::train::state::MANIFEST);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return "no training state, starting afresh".into();
    };
    let pos = toml::from_str::<toml::Table>(&text)
        .ok()
        .and_then(|t| t.get("position").and_then(|p| p.as_table()).cloned());
    let Some(pos) = pos else {
        return format!("{}: unreadable training state", path.display());
    };
    let int = |k: &str| pos.get(k).and_then(|v| v.as_integer()).unwrap_or(0);
    let early = pos
        .get("stopped_early")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if early || int("epoch") as usize >= epochs {
        return "the training state says it is done: loaded from it, not retrained".into();
    }
    format!(
        "resuming from the training state at epoch {}, batch {}",
        int("epoch") + 1,
        int("batch")
    )
}

/// One epoch of a model's training curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochPoint {
    /// Epoch, from 0.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation long-read AUC (None without validation).
    pub valid_long_read_auc: Option<f64>,
    /// Training impressions per second.
    pub impressions_per_second: f64,
}

/// What a row of the table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// The multi-task teacher: offline metrics only.
    Teacher,
    /// A two-tower model.
    Student,
    /// Oracle or random.
    Reference,
}

/// Everything measured about one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// Short name (`teacher`, `dmtl`, `b1`, ..., `oracle`, `random`).
    pub name: String,
    /// Row label of the table.
    pub label: String,
    /// What the row is.
    pub kind: RowKind,
    /// Offline metrics on the test impressions.
    pub offline: Option<OfflineMetrics>,
    /// Retrieval metrics (two-tower models and references).
    pub retrieval: Option<RetrievalMetrics>,
    /// The training curve.
    #[serde(default)]
    pub history: Vec<EpochPoint>,
    /// The epoch whose parameters were kept.
    pub best_epoch: Option<usize>,
    /// Seconds of training.
    pub train_seconds: f64,
}

/// Sizes of the data a run used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Where the data came from.
    pub source: String,
    /// Training impressions (validation rows excluded).
    pub train_rows: usize,
    /// Validation impressions.
    pub valid_rows: usize,
    /// Test impressions.
    pub test_rows: usize,
    /// Click rate of the training rows.
    pub train_ctr: f64,
    /// Long-read rate (per impression) of the training rows.
    pub train_long_read_rate: f64,
    /// Items in the retrieval corpus.
    pub corpus_items: usize,
    /// Users retrieval was evaluated on.
    pub retrieval_users: usize,
    /// Malformed rows skipped while reading.
    pub skipped_rows: usize,
}

/// The metrics of a run (`metrics.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// The command (`demo`, `train`).
    pub command: String,
    /// The seed of the run (demo) or of the models.
    pub seed: u64,
    /// Data sizes.
    pub data: DataSummary,
    /// One entry per row of the table, in order.
    pub models: Vec<ModelResult>,
    /// Wall-clock seconds of the whole run.
    pub wall_seconds: f64,
    /// Threads used.
    pub threads: usize,
}

/// The data of a run, encoded.
pub struct Prepared {
    /// The schema (with the threshold override applied).
    pub schema: Schema,
    /// Vocabularies built on the training rows (or taken from an earlier run).
    pub vocabs: Vocabularies,
    /// Training rows.
    pub train: Dataset,
    /// Validation rows (a random share of the training period).
    pub valid: Option<Dataset>,
    /// Test rows.
    pub test: Dataset,
    /// The item corpus, one row per item (item-side columns), raw.
    pub corpus_raw: RawLog,
    /// The item corpus, encoded.
    pub corpus: Dataset,
    /// Raw id of each corpus row.
    pub corpus_ids: Vec<String>,
    /// Retrieval queries: one row per evaluated user (user and context columns), encoded.
    pub queries: Dataset,
    /// Who the queries are and what they read in the test period.
    pub task: RetrievalTask,
    /// One row per training user (user and context columns), raw.
    pub users_raw: RawLog,
    /// The simulator, when the data is simulated.
    pub sim: Option<Simulator>,
    /// Sizes.
    pub summary: DataSummary,
}

/// The raw ids of a categorical column, or an error naming it.
pub fn categorical<'a>(raw: &'a RawLog, name: &str) -> Result<&'a StrColumn> {
    match raw.column(name) {
        Some(RawColumn::Categorical(v)) => Ok(v),
        Some(_) => bail!("{}: column `{name}` is not categorical", raw.source),
        None => bail!("{}: no column `{name}`", raw.source),
    }
}

/// The first row of each distinct value of the categorical column `name`, in order of first
/// appearance.
pub fn first_rows(raw: &RawLog, name: &str) -> Result<Vec<usize>> {
    let ids = categorical(raw, name)?;
    let mut seen = std::collections::HashSet::new();
    Ok((0..ids.len()).filter(|&r| seen.insert(&ids[r])).collect())
}

/// `raw` with only the feature columns of `sides` and no labels or time.
pub fn keep_sides(raw: &RawLog, schema: &Schema, sides: &[Side]) -> RawLog {
    RawLog {
        source: raw.source.clone(),
        columns: raw
            .columns
            .iter()
            .filter(|(n, _)| schema.column(n).is_some_and(|c| sides.contains(&c.side)))
            .cloned()
            .collect(),
        click: None,
        duration: None,
        time: None,
        n_rows: raw.n_rows,
    }
}

fn rate(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64
}

/// Reads (or simulates), splits, builds or loads the vocabularies, encodes, and writes the
/// schema, vocabularies and corpus tables into `dir` ([`prepare_data`], then
/// [`Prepared::write`]).
pub fn prepare(cfg: &RunConfig, dir: &Path, progress: &Progress) -> Result<Prepared> {
    let data = prepare_data(cfg, progress)?;
    data.write(dir)?;
    Ok(data)
}

impl Prepared {
    /// Writes the schema, the vocabularies and the corpus tables (items, users) into `dir`,
    /// which must exist.
    pub fn write(&self, dir: &Path) -> Result<()> {
        self.schema.save(dir.join(SCHEMA_FILE))?;
        self.vocabs.save(dir.join(VOCAB_FILE))?;
        write_parquet(&self.corpus_raw, &self.schema, dir.join(ITEMS_FILE))?;
        write_parquet(&self.users_raw, &self.schema, dir.join(USERS_FILE))?;
        Ok(())
    }
}

/// Reads (or simulates), splits, builds or loads the vocabularies and encodes; writes nothing,
/// so that bad input stops a run before any file of its folder is touched.
pub fn prepare_data(cfg: &RunConfig, progress: &Progress) -> Result<Prepared> {
    prepare_data_in(cfg, cfg.stages.from_run.as_deref(), progress)
}

/// [`prepare_data`] with the vocabularies of the run folder `vocab_run` (when given) instead
/// of vocabularies built on the training rows.
pub fn prepare_data_in(
    cfg: &RunConfig,
    vocab_run: Option<&Path>,
    progress: &Progress,
) -> Result<Prepared> {
    let step = progress.step("reading the data");
    let mut skipped = 0;
    let (mut schema, train_raw, test_raw, items_raw, sim, source) = if let Some(sc) = &cfg.simulator
    {
        let sim = Simulator::try_new(sc.clone()).map_err(|e| anyhow!("simulator: {e}"))?;
        let t = Instant::now();
        let raw = sim.impressions();
        info!(
            rows = raw.n_rows,
            secs = t.elapsed().as_secs_f64(),
            "simulated the log"
        );
        let schema = Schema::from_toml_str(&sim.schema_toml(), "the simulator's schema")?;
        let (train, test) = split_train_test(&raw, &schema, 0)?;
        let items = sim.item_table();
        let source = format!(
            "simulator: {} users, {} items, {} impressions over {} days (seed {})",
            sc.n_users, sc.n_items, sc.n_impressions, sc.n_days, sc.seed
        );
        (schema, train, test, Some(items), Some(sim), source)
    } else {
        let d = cfg.data.as_ref().expect("validated: data or simulator");
        let schema = Schema::load(&d.schema)?;
        let opts = ReadOptions::default().with_skip_bad_rows(d.skip_bad_rows);
        let (raw, report) = read_log_with_report(&d.log, &schema, &opts)?;
        skipped += report.rows_skipped;
        let (train, test) = match &d.test_log {
            Some(t) => {
                let (test, report) = read_log_with_report(t, &schema, &opts)?;
                skipped += report.rows_skipped;
                (raw, test)
            }
            None => split_train_test(&raw, &schema, d.split_seed)?,
        };
        let items = match &d.items {
            Some(p) => {
                let o = ReadOptions::table_of(&[Side::Item]).with_skip_bad_rows(d.skip_bad_rows);
                let (items, report) = read_log_with_report(p, &schema, &o)?;
                crate::preflight::check_unique_items(&items, &schema, p, report.rows_skipped)?;
                skipped += report.rows_skipped;
                Some(items)
            }
            None => None,
        };
        (
            schema,
            train,
            test,
            items,
            None,
            d.log.display().to_string(),
        )
    };
    if skipped > 0 {
        tracing::warn!(skipped, "malformed rows were skipped");
    }
    if let Some(t) = cfg.data.as_ref().and_then(|d| d.long_read_threshold) {
        schema.long_read_threshold = t;
    }
    // Validation rows: a seeded random share of the training period.
    let (train_raw, valid_raw) = if cfg.eval.valid_fraction > 0.0 {
        let n = train_raw.n_rows;
        let n_valid = (cfg.eval.valid_fraction * n as f64).round() as usize;
        if n_valid == 0 || n_valid >= n {
            (train_raw, None)
        } else {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.eval.seed));
            let mut is_valid = vec![false; n];
            order[..n_valid].iter().for_each(|&r| is_valid[r] = true);
            let tr: Vec<usize> = (0..n).filter(|&r| !is_valid[r]).collect();
            let va: Vec<usize> = (0..n).filter(|&r| is_valid[r]).collect();
            (train_raw.take(&tr), Some(train_raw.take(&va)))
        }
    } else {
        (train_raw, None)
    };
    step.finish();

    let step = progress.step("building vocabularies and encoding");
    let vocabs = match vocab_run {
        Some(run) => {
            let v = Vocabularies::load(run.join(VOCAB_FILE))?;
            v.check_against(&schema).with_context(|| {
                format!(
                    "the vocabularies of {} do not fit this schema",
                    run.display()
                )
            })?;
            v
        }
        None => Vocabularies::build(&schema, &train_raw)?,
    };

    let user_col = &schema.ids.user;
    let item_col = &schema.ids.item;
    // The corpus: the item table, or every item of the training rows; one row per id.
    let corpus_raw = {
        let src = items_raw.as_ref().unwrap_or(&train_raw);
        let rows = first_rows(src, item_col)?;
        keep_sides(&src.take(&rows), &schema, &[Side::Item])
    };
    let corpus_ids = categorical(&corpus_raw, item_col)?.to_vec();
    let users_raw = {
        let rows = first_rows(&train_raw, user_col)?;
        keep_sides(
            &train_raw.take(&rows),
            &schema,
            &[Side::User, Side::Context],
        )
    };

    let (train, valid, test, corpus) = {
        let enc = |r: &RawLog| Dataset::encode(&schema, r, &vocabs);
        let ((train, valid), (test, corpus)) = rayon::join(
            || (enc(&train_raw), valid_raw.as_ref().map(enc)),
            || (enc(&test_raw), enc(&corpus_raw)),
        );
        (train?, valid.transpose()?, test?, corpus?)
    };

    // Retrieval users: a seeded sample of the test period's users.
    let test_users = first_rows(&test_raw, user_col)?;
    let mut sample = test_users.clone();
    sample.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.eval.seed ^ 0x5eed));
    sample.truncate(cfg.eval.retrieval_users);
    sample.sort_unstable();
    let test_user_ids = categorical(&test_raw, user_col)?;
    let user_ids: Vec<String> = sample
        .iter()
        .map(|&r| test_user_ids[r].to_string())
        .collect();
    let corpus_index: HashMap<&str, u32> = corpus_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u32))
        .collect();
    let user_pos: HashMap<&str, usize> = user_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut long_reads = vec![Vec::new(); user_ids.len()];
    let test_item_ids = categorical(&test_raw, item_col)?;
    for r in 0..test_raw.n_rows {
        if test.long_read[r] > 0.5 {
            if let (Some(&u), Some(&i)) = (
                user_pos.get(&test_user_ids[r]),
                corpus_index.get(&test_item_ids[r]),
            ) {
                long_reads[u].push(i);
            }
        }
    }
    let mut corpus_train_impressions = vec![0u32; corpus_ids.len()];
    for id in categorical(&train_raw, item_col)?.iter() {
        if let Some(&i) = corpus_index.get(id) {
            corpus_train_impressions[i as usize] += 1;
        }
    }
    long_reads.iter_mut().for_each(|l| {
        l.sort_unstable();
        l.dedup();
    });
    let (queries_raw, sim_users) = match &sim {
        Some(s) => {
            let idx: Vec<usize> = user_ids
                .iter()
                .map(|id| {
                    s.user_index(id)
                        .ok_or_else(|| anyhow!("simulated user id {id} is not the simulator's"))
                })
                .collect::<Result<_>>()?;
            // The user's typical context, as in serving.
            (s.user_table(&idx), Some(idx))
        }
        None => (
            keep_sides(
                &test_raw.take(&sample),
                &schema,
                &[Side::User, Side::Context],
            ),
            None,
        ),
    };
    let queries = Dataset::encode(&schema, &queries_raw, &vocabs)?;
    step.finish();

    let summary = DataSummary {
        source,
        train_rows: train.n_rows,
        valid_rows: valid.as_ref().map_or(0, |v| v.n_rows),
        test_rows: test.n_rows,
        train_ctr: rate(&train.click),
        train_long_read_rate: rate(&train.long_read),
        corpus_items: corpus.n_rows,
        retrieval_users: user_ids.len(),
        skipped_rows: skipped,
    };
    info!(?summary, "data ready");
    Ok(Prepared {
        schema,
        vocabs,
        train,
        valid,
        test,
        corpus_raw,
        corpus,
        corpus_ids,
        queries,
        task: RetrievalTask {
            user_ids,
            long_reads,
            sim_users,
            corpus_train_impressions,
        },
        users_raw,
        sim,
        summary,
    })
}

/// The teacher of `stages.from_run` (with `stages.teacher = "load"`), loaded before anything
/// of the new run is written so that a bad checkpoint leaves the run folder untouched.
fn load_from_run_teacher(cfg: &RunConfig, data: &Prepared) -> Result<Teacher> {
    let run = cfg.stages.from_run.as_ref().expect("validated");
    let from = run.join(TEACHER_DIR);
    let t = Teacher::load(&from, &data.schema, &data.vocabs)
        .map_err(|e| vocab_hint(e.into(), run))
        .with_context(|| format!("loading the teacher of {}", from.display()))?;
    info!(from = %from.display(), "teacher loaded");
    Ok(t)
}

/// Trains the teacher (or takes the `loaded` one) and saves it into `dir/teacher`.
fn teacher_stage(
    cfg: &RunConfig,
    data: &Prepared,
    dir: &Path,
    loaded: Option<Teacher>,
    states: States,
    progress: &Progress,
) -> Result<Option<(Teacher, Vec<EpochPoint>, Option<usize>, f64)>> {
    let out = dir.join(TEACHER_DIR);
    match cfg.stages.teacher {
        TeacherStage::Skip => Ok(None),
        TeacherStage::Load => {
            let t = match loaded {
                Some(t) => t,
                None => load_from_run_teacher(cfg, data)?,
            };
            t.save(&out)?;
            Ok(Some((t, Vec::new(), None, 0.0)))
        }
        TeacherStage::Train => {
            let start = Instant::now();
            let mut t = Teacher::new(cfg.teacher.clone(), &data.schema, &data.vocabs)?;
            let opts = &cfg.teacher.train;
            let n_batches = data.train.n_rows.div_ceil(opts.batch_size);
            let mut bar = progress.training("teacher", opts.epochs, n_batches, opts.batch_size);
            let state = states.dir(dir, ModelName::Teacher.as_str(), opts.epochs);
            let hist = t
                .train_from(
                    &data.train,
                    data.valid.as_ref(),
                    opts,
                    state.as_ref(),
                    |ev| show_progress(&mut bar, "teacher", ev, |v| v.long_read_auc),
                )
                .map_err(|e| match e {
                    dmtl_teacher::TeacherError::Train(dmtl_teacher::TrainError::Interrupted {
                        ..
                    }) => anyhow::Error::new(e).context("training the teacher"),
                    e => e.into(),
                })?;
            bar.finish();
            t.save(&out)?;
            let points = hist
                .epochs
                .iter()
                .map(|r| EpochPoint {
                    epoch: r.epoch,
                    train_loss: r.train_loss,
                    valid_long_read_auc: r.valid.as_ref().and_then(|v| v.long_read_auc),
                    impressions_per_second: r.impressions_per_second,
                })
                .collect();
            Ok(Some((
                t,
                points,
                hist.best_epoch,
                start.elapsed().as_secs_f64(),
            )))
        }
    }
}

fn fmt_opt(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{v:.4}"))
}

/// Shows a training event of any model (the teacher and every student share the epoch loop
/// and its events): batches move the bar, epochs print and log one line named `label`.
fn show_progress<P, V>(
    bar: &mut TrainBar,
    label: &str,
    ev: &TrainEvent<P, V>,
    long_read_auc: impl Fn(&V) -> Option<f64>,
) {
    match ev {
        TrainEvent::Batch { epoch, loss, .. } => bar.batch(*epoch, *loss),
        TrainEvent::Epoch(r) => {
            let line = format!(
                "{label} epoch {}: loss {:.4}, valid long-read AUC {}, {:.0} imp/s",
                r.epoch + 1,
                r.train_loss,
                fmt_opt(r.valid.as_ref().and_then(&long_read_auc)),
                r.impressions_per_second
            );
            info!("{line}");
            bar.epoch(line);
        }
    }
}

/// The student configuration of `model`: the run's `[student]` with the model's objective.
pub fn student_config(cfg: &RunConfig, model: ModelName) -> dmtl_student::StudentConfig {
    let mut s = cfg.student.clone();
    s.objective = model
        .objective(cfg.student.objective)
        .expect("a two-tower model");
    s
}

/// Which of the [`Output`]s a student objective produces.
pub fn student_output(o: &dmtl_student::ObjectiveConfig) -> Output {
    match o.output_kind() {
        dmtl_student::OutputKind::ClickProbability => Output::Click,
        dmtl_student::OutputKind::LongReadProbability => Output::LongRead,
        dmtl_student::OutputKind::Score => Output::Score,
    }
}

/// Top-K corpus rows for every query row, from a trained student.
pub fn student_lists(student: &Student, data: &Prepared, k: usize) -> Result<Vec<Vec<u32>>> {
    let items = student.item_vectors(&data.corpus, &all_rows(data.corpus.n_rows))?;
    let users = student.user_vectors(&data.queries, &all_rows(data.queries.n_rows))?;
    // At most the corpus: the lists are users x K.
    let k = k.min(data.corpus.n_rows.max(1));
    let top = top_k(users.view(), items.view(), k, None)?;
    Ok(top
        .indices
        .outer_iter()
        .map(|r| {
            r.iter()
                .copied()
                .filter(|&i| (i as usize) < data.corpus.n_rows)
                .collect()
        })
        .collect())
}

/// `0..n` as row numbers.
pub fn all_rows(n: usize) -> Vec<u32> {
    (0..n as u32).collect()
}

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
    let resume = states == States::Resume;
    let vocab_run = if resume {
        Some(dir)
    } else {
        cfg.stages.from_run.as_deref()
    };
    let data = prepare_data_in(cfg, vocab_run, progress)?;
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
    crate::preflight::check_labels(cfg, &data)?;
    crate::preflight::check_memory(cfg, &data.schema, &data.vocabs, None)?;
    let loaded = match cfg.stages.teacher {
        TeacherStage::Load => Some(load_from_run_teacher(cfg, &data)?),
        _ => None,
    };
    if !resume {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the run folder {}", dir.display()))?;
        write_text(&dir.join(CONFIG_FILE), &cfg.to_toml_string())?;
        if states == States::Fresh {
            crate::inputs::record(cfg, dir)?;
        }
        data.write(dir)?;
    } else {
        // The corpus tables are written last when a run starts; a run killed before them
        // gets them now, from the same rows.
        for (file, table) in [
            (ITEMS_FILE, &data.corpus_raw),
            (USERS_FILE, &data.users_raw),
        ] {
            if !dir.join(file).is_file() {
                write_parquet(table, &data.schema, dir.join(file))?;
            }
        }
    }
    let k = cfg.eval.k;
    let edges = eval::edges(
        data.sim
            .as_ref()
            .map_or(600.0, |s| s.config().max_read_seconds * 0.5),
        cfg.eval.histogram_bins,
    );
    let mut rows: Vec<ModelResult> = Vec::new();

    let teacher = teacher_stage(cfg, &data, dir, loaded, states, progress)?;
    let mut teacher_train_p: Option<Vec<f32>> = None;
    if let Some((t, history, best_epoch, secs)) = &teacher {
        let step = progress.step("teacher: scoring the training and test rows");
        let test = t.predict(&data.test)?;
        let mut off = eval::offline(
            &test.p_ctcvr,
            Some(&test.p_ctcvr),
            Output::LongRead,
            &data.test,
        );
        off.click_auc = dmtl_metrics::auc(&test.p_ctr, &data.test.click);
        off.click_logloss = Some(dmtl_metrics::logloss(&test.p_ctr, &data.test.click));
        if cfg.stages.models.iter().any(|m| {
            m.objective(cfg.student.objective)
                .is_some_and(|o| o.needs_teacher())
        }) {
            teacher_train_p = Some(t.predict(&data.train)?.p_ctcvr);
        }
        step.finish();
        rows.push(ModelResult {
            name: ModelName::Teacher.as_str().into(),
            label: ModelName::Teacher.label().into(),
            kind: RowKind::Teacher,
            offline: Some(off),
            retrieval: None,
            history: history.clone(),
            best_epoch: *best_epoch,
            train_seconds: *secs,
        });
    }
    drop(teacher);

    for &model in &cfg.stages.models {
        let scfg = student_config(cfg, model);
        let output = student_output(&scfg.objective);
        let t0 = Instant::now();
        let mut student = Student::new(scfg.clone(), &data.schema, &data.vocabs)?;
        let opts = &scfg.train;
        let n_batches = data.train.n_rows.div_ceil(opts.batch_size);
        let mut bar = progress.training(model.as_str(), opts.epochs, n_batches, opts.batch_size);
        let state = states.dir(dir, model.as_str(), scfg.train.epochs);
        let hist = student
            .train_from(
                &data.train,
                data.valid.as_ref(),
                teacher_train_p.as_deref(),
                state.as_ref(),
                |ev| show_progress(&mut bar, model.as_str(), ev, |v| v.long_read_auc),
            )
            .map_err(|e| match e {
                // Which model stopped, for the message that says how to resume.
                dmtl_student::StudentError::Train(dmtl_student::TrainError::Interrupted {
                    ..
                }) => anyhow::Error::new(e).context(format!("training {model}")),
                e => e.into(),
            })?;
        bar.finish();
        let secs = t0.elapsed().as_secs_f64();
        student.save(&dir.join(MODELS_DIR).join(model.as_str()))?;
        let step = progress.step(&format!("{model}: evaluating"));
        let scores = student.score_dataset(&data.test)?;
        let probs: Vec<f32> = scores
            .iter()
            .map(|&s| dmtl_loss::stable::sigmoid(s))
            .collect();
        let off = eval::offline(&scores, Some(&probs), output, &data.test);
        let lists = student_lists(&student, &data, k)?;
        let ret = eval::retrieval(&data.task, &lists, k, data.sim.as_ref(), &edges);
        step.finish();
        rows.push(ModelResult {
            name: model.as_str().into(),
            label: model.label().into(),
            kind: RowKind::Student,
            offline: Some(off),
            retrieval: Some(ret),
            history: hist
                .epochs
                .iter()
                .map(|r| EpochPoint {
                    epoch: r.epoch,
                    train_loss: r.train_loss,
                    valid_long_read_auc: r.valid.as_ref().and_then(|v| v.long_read_auc),
                    impressions_per_second: r.impressions_per_second,
                })
                .collect(),
            best_epoch: hist.best_epoch,
            train_seconds: secs,
        });
    }

    let step = progress.step("reference rows: oracle and random");
    rows.extend(reference_rows(cfg, &data, &edges)?);
    step.finish();

    let metrics = RunMetrics {
        command: command.to_string(),
        seed,
        data: data.summary.clone(),
        models: rows,
        wall_seconds: start.elapsed().as_secs_f64(),
        threads: rayon::current_num_threads(),
    };
    crate::report::write_run(dir, &metrics, k)?;
    Ok(metrics)
}

/// The oracle (simulated data only: the true probabilities offline, the true expected reading
/// time for retrieval) and random scores and lists.
fn reference_rows(cfg: &RunConfig, data: &Prepared, edges: &[f64]) -> Result<Vec<ModelResult>> {
    let k = cfg.eval.k;
    let mut rows = Vec::new();
    if let (Some(sim), Some(users)) = (&data.sim, &data.task.sim_users) {
        let (ug, ig) = (&data.test.user_group, &data.test.item_group);
        let uidx: Vec<usize> = data
            .test
            .user_ids
            .iter()
            .map(|id| {
                sim.user_index(id)
                    .ok_or_else(|| anyhow!("unknown user {id}"))
            })
            .collect::<Result<_>>()?;
        let iidx: Vec<usize> = data
            .test
            .item_ids
            .iter()
            .map(|id| {
                sim.item_index(id)
                    .ok_or_else(|| anyhow!("unknown item {id}"))
            })
            .collect::<Result<_>>()?;
        let (p_click, p_long): (Vec<f32>, Vec<f32>) = (0..data.test.n_rows)
            .into_par_iter()
            .map(|r| {
                let (u, i) = (uidx[ug[r] as usize], iidx[ig[r] as usize]);
                (sim.p_click(u, i) as f32, sim.p_long_read(u, i) as f32)
            })
            .unzip();
        let mut off = eval::offline(&p_long, Some(&p_long), Output::LongRead, &data.test);
        off.click_auc = dmtl_metrics::auc(&p_click, &data.test.click);
        off.click_logloss = Some(dmtl_metrics::logloss(&p_click, &data.test.click));
        let lists = eval::oracle_lists(sim, users, k);
        let ret = eval::retrieval(&data.task, &lists, k, Some(sim), edges);
        rows.push(ModelResult {
            name: "oracle".into(),
            label: "Oracle (true probabilities)".into(),
            kind: RowKind::Reference,
            offline: Some(off),
            retrieval: Some(ret),
            history: Vec::new(),
            best_epoch: None,
            train_seconds: 0.0,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.eval.seed ^ 0xabcd);
    let scores: Vec<f32> = (0..data.test.n_rows).map(|_| rng.gen::<f32>()).collect();
    let off = eval::offline(&scores, None, Output::Score, &data.test);
    let n_items = data.corpus.n_rows;
    let lists: Vec<Vec<u32>> = (0..data.task.user_ids.len())
        .map(|_| {
            rand::seq::index::sample(&mut rng, n_items, k.min(n_items))
                .into_iter()
                .map(|i| i as u32)
                .collect()
        })
        .collect();
    let ret = eval::retrieval(&data.task, &lists, k, data.sim.as_ref(), edges);
    rows.push(ModelResult {
        name: "random".into(),
        label: "Random".into(),
        kind: RowKind::Reference,
        offline: Some(off),
        retrieval: Some(ret),
        history: Vec::new(),
        best_epoch: None,
        train_seconds: 0.0,
    });
    Ok(rows)
}

/// The schema and vocabularies saved in a run folder.
pub fn load_run_basics(run: &Path) -> Result<(Schema, Vocabularies)> {
    if !run.is_dir() {
        bail!(
            "{}: no such run folder{}",
            run.display(),
            crate::commands::killed_build_hint(run)
        );
    }
    let schema = Schema::load(run.join(SCHEMA_FILE))?;
    let vocabs = Vocabularies::load(run.join(VOCAB_FILE))?;
    vocabs.check_against(&schema)?;
    Ok((schema, vocabs))
}

/// The folder of `model`'s checkpoint in a run folder.
pub fn model_dir(run: &Path, model: ModelName) -> PathBuf {
    match model {
        ModelName::Teacher => run.join(TEACHER_DIR),
        m => run.join(MODELS_DIR).join(m.as_str()),
    }
}

/// Loads a two-tower model of a run folder.
pub fn load_student(run: &Path, model: ModelName) -> Result<(Schema, Vocabularies, Student)> {
    if model == ModelName::Teacher {
        bail!("the teacher is not a two-tower model (choose dmtl, b1, b2, b3-mse or b3-wlr)");
    }
    let (schema, vocabs) = load_run_basics(run)?;
    let dir = model_dir(run, model);
    if !dir.join(dmtl_student::two_tower::CONFIG_FILE).is_file() {
        return Err(missing_model(run, model));
    }
    let s = Student::load(&dir, &schema, &vocabs).map_err(|e| vocab_hint(e.into(), run))?;
    Ok((schema, vocabs, s))
}

/// The error for `model` missing from the run folder `run`: a run that has not finished (no
/// `metrics.json`, which a run writes last) is said to be incomplete, with the command that
/// continues it; a finished run did not train that model.
pub fn missing_model(run: &Path, model: ModelName) -> anyhow::Error {
    let dir = model_dir(run, model);
    if !run.join(METRICS_FILE).is_file() {
        return anyhow!(
            "{}: the run is incomplete: it stopped before `{model}` was saved (no {}); \
             continue it with `dmtl train --resume {}`",
            run.display(),
            dir.display(),
            run.display()
        );
    }
    anyhow!(
        "{}: the run has no `{model}` model (was it in stages.models?)",
        dir.display()
    )
}

/// `e`, a failed checkpoint load of the run folder `run`, with the run's `vocab.json` named
/// first when the cause is an embedding table whose row count differs from what the
/// vocabularies give (same width): the vocabularies and the checkpoint come from different
/// runs, and the bare shape error would not say which file to look at.
pub fn vocab_hint(e: anyhow::Error, run: &Path) -> anyhow::Error {
    let text = format!("{e:#}");
    let Some((tensor, found, expected)) = shape_mismatch(&text) else {
        return e;
    };
    let Some(column) = tensor.rsplit_once("embedding.").map(|(_, c)| c.to_string()) else {
        return e;
    };
    if found.len() != 2 || expected.len() != 2 || found[1] != expected[1] {
        return e;
    }
    e.context(format!(
        "{}: the vocabularies do not match the checkpoint: they give column `{column}` {} rows \
         (with the out-of-vocabulary row), the checkpoint's `{tensor}` has {} (are the \
         vocabularies or the checkpoint from another run?)",
        run.join(VOCAB_FILE).display(),
        expected[0],
        found[0]
    ))
}

/// Parses "tensor `NAME` has shape [a, b], the model expects [c, d]" (dmtl-tensor's load
/// error) out of an error text.
fn shape_mismatch(text: &str) -> Option<(String, Vec<usize>, Vec<usize>)> {
    let rest = &text[text.find("tensor `")? + "tensor `".len()..];
    let (name, rest) = rest.split_once("` has shape [")?;
    let (found, rest) = rest.split_once("], the model expects [")?;
    let (expected, _) = rest.split_once(']')?;
    let dims =
        |s: &str| -> Option<Vec<usize>> { s.split(',').map(|d| d.trim().parse().ok()).collect() };
    Some((name.to_string(), dims(found)?, dims(expected)?))
}

/// How many rows of a categorical column are out of vocabulary.
pub fn oov_count(data: &Dataset, schema: &Schema, column: &str) -> usize {
    match schema.column_index(column).and_then(|i| data.fields.get(i)) {
        Some(dmtl_data::FieldData::Ids(v)) => v.iter().filter(|&&x| x == OOV).count(),
        _ => 0,
    }
}
