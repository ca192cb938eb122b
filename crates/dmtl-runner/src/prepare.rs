//! Data preparation, the pipeline's first stage: read (or simulate) the log, split train,
//! validation and test, build (or load) the vocabularies, encode, and set up the retrieval
//! task. Writes nothing until [`Prepared::write`], so bad input stops a run before any file of
//! its folder is touched.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Result};
use dmtl_data::sim::Simulator;
use dmtl_data::{
    log_parts, read_log_with_report, split_train_test, Dataset, RawLog, ReadOptions, Schema, Side,
    Vocabularies,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tracing::info;

use crate::columns::{categorical, first_rows, keep_sides};
use crate::config::{DataConfig, RunConfig};
use crate::eval::RetrievalTask;
use crate::metrics::DataSummary;
use crate::preflight::LabelCounts;
pub use crate::prepared::Prepared;
use crate::prepared::{apply_threshold, load_vocabs, read_items};
use crate::progress::Progress;
use crate::task::{long_reads, sample_positions, sim_queries, TaskBuilder};
use crate::train_rows::TrainRows;

/// Reads (or simulates), splits, builds or loads the vocabularies, encodes, and writes the
/// schema, vocabularies and corpus tables into `dir` ([`prepare_data`], then
/// [`Prepared::write`]).
pub fn prepare(cfg: &RunConfig, dir: &Path, progress: &Progress) -> Result<Prepared> {
    let data = prepare_data(cfg, progress)?;
    data.write(dir)?;
    Ok(data)
}

/// Reads (or simulates), splits, builds or loads the vocabularies and encodes; writes nothing,
/// so that bad input stops a run before any file of its folder is touched.
pub fn prepare_data(cfg: &RunConfig, progress: &Progress) -> Result<Prepared> {
    prepare_data_in(cfg, cfg.stages.from_run.as_deref(), progress)
}

/// The logs of a run as read (or simulated), before encoding.
struct Source {
    schema: Schema,
    train: RawLog,
    test: RawLog,
    items: Option<RawLog>,
    sim: Option<Simulator>,
    source: String,
    skipped: usize,
}

/// [`prepare_data`] with the vocabularies of the run folder `vocab_run` (when given) instead
/// of vocabularies built on the training rows. A log of `[data]` that `data.stream` streams
/// ([`streams`]) is prepared by [`crate::streamed::prepare_streamed`].
pub fn prepare_data_in(
    cfg: &RunConfig,
    vocab_run: Option<&Path>,
    progress: &Progress,
) -> Result<Prepared> {
    if let Some(d) = cfg.data.as_ref().filter(|d| streams(d)) {
        return crate::streamed::prepare_streamed(cfg, d, vocab_run, progress);
    }
    let step = progress.step("reading the data");
    let Source {
        mut schema,
        train: train_raw,
        test: test_raw,
        items: items_raw,
        sim,
        source,
        skipped,
    } = read_source(cfg)?;
    if skipped > 0 {
        tracing::warn!(skipped, "malformed rows were skipped");
    }
    apply_threshold(cfg, &mut schema);
    let (train_raw, valid_raw) = split_valid(cfg, train_raw);
    step.finish();

    let step = progress.step("building vocabularies and encoding");
    let vocabs = match vocab_run {
        Some(run) => load_vocabs(run, &schema)?,
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
    let (task, queries_raw) = retrieval_task(
        cfg,
        &schema,
        &train_raw,
        &test_raw,
        &corpus_ids,
        sim.as_ref(),
    )?;
    let queries = Dataset::encode(&schema, &queries_raw, &vocabs)?;
    step.finish();

    let train_labels = LabelCounts::of(&train);
    let mut data = Prepared {
        schema,
        vocabs,
        train: TrainRows::Memory(train),
        train_labels,
        valid,
        test,
        corpus_raw,
        corpus,
        corpus_ids,
        queries,
        task,
        users_raw,
        sim,
        summary: DataSummary::default(),
    };
    data.summarise(source, skipped);
    Ok(data)
}

/// Whether the log of `d` is streamed: `data.stream`, with `"auto"` deciding by the size of
/// its files (a log whose size cannot be read is read into memory, which reports the error).
pub fn streams(d: &DataConfig) -> bool {
    let bytes = log_parts(&d.log, &ReadOptions::default()).map(|parts| {
        parts
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum::<u64>()
    });
    bytes.is_ok_and(|b| d.stream.streams(b))
}

/// The simulated log split by day, or the user's files read (and split by the schema's
/// `[split]` without a test log).
fn read_source(cfg: &RunConfig) -> Result<Source> {
    if let Some(sc) = &cfg.simulator {
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
        return Ok(Source {
            schema,
            train,
            test,
            items: Some(items),
            sim: Some(sim),
            source,
            skipped: 0,
        });
    }
    let d = cfg.data.as_ref().expect("validated: data or simulator");
    let schema = Schema::load(&d.schema)?;
    let opts = ReadOptions::default().with_skip_bad_rows(d.skip_bad_rows);
    let mut skipped = 0;
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
    let (items, items_skipped) = read_items(d, &schema)?;
    skipped += items_skipped;
    Ok(Source {
        schema,
        train,
        test,
        items,
        sim: None,
        source: d.log.display().to_string(),
        skipped,
    })
}

/// The training rows and the validation rows: a seeded random share (`eval.valid_fraction`)
/// of the training period, none when that share rounds to no row or to every row.
fn split_valid(cfg: &RunConfig, train_raw: RawLog) -> (RawLog, Option<RawLog>) {
    if cfg.eval.valid_fraction <= 0.0 {
        return (train_raw, None);
    }
    let n = train_raw.n_rows;
    let n_valid = (cfg.eval.valid_fraction * n as f64).round() as usize;
    if n_valid == 0 || n_valid >= n {
        return (train_raw, None);
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.eval.seed));
    let mut is_valid = vec![false; n];
    order[..n_valid].iter().for_each(|&r| is_valid[r] = true);
    let tr: Vec<usize> = (0..n).filter(|&r| !is_valid[r]).collect();
    let va: Vec<usize> = (0..n).filter(|&r| is_valid[r]).collect();
    (train_raw.take(&tr), Some(train_raw.take(&va)))
}

/// The retrieval task: a seeded sample of the test period's users, what each of them read
/// long in the test period (corpus rows), the training impressions of every corpus item; and
/// the users' query rows, raw (the simulator's typical context of each user on simulated
/// data, the user's first test row otherwise).
fn retrieval_task(
    cfg: &RunConfig,
    schema: &Schema,
    train_raw: &RawLog,
    test_raw: &RawLog,
    corpus_ids: &[String],
    sim: Option<&Simulator>,
) -> Result<(RetrievalTask, RawLog)> {
    let user_col = &schema.ids.user;
    let item_col = &schema.ids.item;
    let test_users = first_rows(test_raw, user_col)?;
    let sample: Vec<usize> = sample_positions(cfg, test_users.len())
        .into_iter()
        .map(|p| test_users[p])
        .collect();
    let test_user_ids = categorical(test_raw, user_col)?;
    let user_ids = sample
        .iter()
        .map(|&r| test_user_ids[r].to_string())
        .collect();
    let mut task = TaskBuilder::new(user_ids, corpus_ids);
    let test_item_ids = categorical(test_raw, item_col)?;
    let long = long_reads(test_raw, schema.long_read_threshold);
    for r in (0..test_raw.n_rows).filter(|&r| long[r]) {
        task.add_long_read(&test_user_ids[r], &test_item_ids[r]);
    }
    categorical(train_raw, item_col)?
        .iter()
        .for_each(|id| task.add_train_item(id));
    let (sim_users, queries_raw) = match sim {
        Some(s) => {
            let (idx, queries) = sim_queries(s, task.user_ids())?;
            (Some(idx), queries)
        }
        None => (
            None,
            keep_sides(
                &test_raw.take(&sample),
                schema,
                &[Side::User, Side::Context],
            ),
        ),
    };
    Ok((task.finish(sim_users), queries_raw))
}
