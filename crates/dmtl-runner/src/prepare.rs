//! Data preparation, the pipeline's first stage: read (or simulate) the log, split train,
//! validation and test, build (or load) the vocabularies, encode, and set up the retrieval
//! task. Writes nothing until [`Prepared::write`], so bad input stops a run before any file of
//! its folder is touched.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use dmtl_data::sim::Simulator;
use dmtl_data::{
    read_log_with_report, split_train_test, write_parquet, Dataset, RawLog, ReadOptions, Schema,
    Side, Vocabularies,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tracing::info;

use crate::columns::{categorical, first_rows, keep_sides};
use crate::config::RunConfig;
use crate::eval::RetrievalTask;
use crate::layout::{ITEMS_FILE, SCHEMA_FILE, USERS_FILE, VOCAB_FILE};
use crate::metrics::DataSummary;
use crate::preflight::check_unique_items;
use crate::progress::Progress;

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

impl Prepared {
    /// Writes the schema, the vocabularies and the corpus tables (items, users) into `dir`,
    /// which must exist.
    pub fn write(&self, dir: &Path) -> Result<()> {
        self.schema.save(dir.join(SCHEMA_FILE))?;
        self.vocabs.save(dir.join(VOCAB_FILE))?;
        self.write_corpus_tables(dir, false)
    }

    /// Writes the corpus tables (items, users) into `dir`; with `missing_only`, only those not
    /// there (a run killed before it wrote them, resumed).
    pub fn write_corpus_tables(&self, dir: &Path, missing_only: bool) -> Result<()> {
        for (file, table) in [
            (ITEMS_FILE, &self.corpus_raw),
            (USERS_FILE, &self.users_raw),
        ] {
            if !(missing_only && dir.join(file).is_file()) {
                write_parquet(table, &self.schema, dir.join(file))?;
            }
        }
        Ok(())
    }
}

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
/// of vocabularies built on the training rows.
pub fn prepare_data_in(
    cfg: &RunConfig,
    vocab_run: Option<&Path>,
    progress: &Progress,
) -> Result<Prepared> {
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
    if let Some(t) = cfg.data.as_ref().and_then(|d| d.long_read_threshold) {
        schema.long_read_threshold = t;
    }
    let (train_raw, valid_raw) = split_valid(cfg, train_raw);
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
    let (task, queries_raw) = retrieval_task(
        cfg,
        &schema,
        &train_raw,
        &test_raw,
        &test,
        &corpus_ids,
        sim.as_ref(),
    )?;
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
        retrieval_users: task.user_ids.len(),
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
        task,
        users_raw,
        sim,
        summary,
    })
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
    let items = match &d.items {
        Some(p) => {
            let o = ReadOptions::table_of(&[Side::Item]).with_skip_bad_rows(d.skip_bad_rows);
            let (items, report) = read_log_with_report(p, &schema, &o)?;
            check_unique_items(&items, &schema, p, report.rows_skipped)?;
            skipped += report.rows_skipped;
            Some(items)
        }
        None => None,
    };
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
    test: &Dataset,
    corpus_ids: &[String],
    sim: Option<&Simulator>,
) -> Result<(RetrievalTask, RawLog)> {
    let user_col = &schema.ids.user;
    let item_col = &schema.ids.item;
    let test_users = first_rows(test_raw, user_col)?;
    let mut sample = test_users.clone();
    sample.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.eval.seed ^ 0x5eed));
    sample.truncate(cfg.eval.retrieval_users);
    sample.sort_unstable();
    let test_user_ids = categorical(test_raw, user_col)?;
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
    let test_item_ids = categorical(test_raw, item_col)?;
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
    for id in categorical(train_raw, item_col)?.iter() {
        if let Some(&i) = corpus_index.get(id) {
            corpus_train_impressions[i as usize] += 1;
        }
    }
    long_reads.iter_mut().for_each(|l| {
        l.sort_unstable();
        l.dedup();
    });
    let (queries_raw, sim_users) = match sim {
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
                schema,
                &[Side::User, Side::Context],
            ),
            None,
        ),
    };
    let task = RetrievalTask {
        user_ids,
        long_reads,
        sim_users,
        corpus_train_impressions,
    };
    Ok((task, queries_raw))
}

/// The mean of a 0/1 label.
fn rate(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64
}
