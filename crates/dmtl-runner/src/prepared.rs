//! The prepared data of a run ([`Prepared`]: what every stage reads) and what preparing it
//! takes in memory and streamed alike: the long-read threshold of the run, an earlier run's
//! vocabularies, the item table.

use std::path::Path;

use anyhow::{Context, Result};
use dmtl_data::sim::Simulator;
use dmtl_data::{
    read_log_with_report, write_parquet, Dataset, RawLog, ReadOptions, Schema, Side, Vocabularies,
};

use crate::config::{DataConfig, RunConfig};
use crate::eval::RetrievalTask;
use crate::layout::{ITEMS_FILE, SCHEMA_FILE, USERS_FILE, VOCAB_FILE};
use crate::metrics::DataSummary;
use crate::preflight::{check_unique_items, LabelCounts};
use crate::train_rows::TrainRows;

/// The data of a run, encoded.
pub struct Prepared {
    /// The schema (with the threshold override applied).
    pub schema: Schema,
    /// Vocabularies built on the training rows (or taken from an earlier run).
    pub vocabs: Vocabularies,
    /// Training rows, in memory or streamed from the log (`data.stream`).
    pub train: TrainRows,
    /// How many training rows there are and how many are positive per label.
    pub train_labels: LabelCounts,
    /// Validation rows (a random share of the training period; of a streamed log, a sample of
    /// at most [`crate::streamed::MAX_VALID_ROWS`]).
    pub valid: Option<Dataset>,
    /// Test rows (of a streamed log, a sample of at most [`crate::streamed::MAX_TEST_ROWS`]).
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
    /// Sets [`Prepared::summary`] from the data (of `source`, with `skipped` malformed rows)
    /// and logs it.
    pub fn summarise(&mut self, source: String, skipped: usize) {
        self.summary = DataSummary {
            source,
            train_rows: self.train_labels.rows,
            valid_rows: self.valid.as_ref().map_or(0, |v| v.n_rows),
            test_rows: self.test.n_rows,
            train_ctr: self.train_labels.click_rate(),
            train_long_read_rate: self.train_labels.long_read_rate(),
            corpus_items: self.corpus.n_rows,
            retrieval_users: self.task.user_ids.len(),
            skipped_rows: skipped,
        };
        tracing::info!(summary = ?self.summary, streamed = self.train.in_memory().is_none(), "data ready");
    }

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

/// Applies `data.long_read_threshold` to `schema`.
pub fn apply_threshold(cfg: &RunConfig, schema: &mut Schema) {
    if let Some(t) = cfg.data.as_ref().and_then(|d| d.long_read_threshold) {
        schema.long_read_threshold = t;
    }
}

/// The vocabularies of the run folder `run`, checked against `schema`.
pub fn load_vocabs(run: &Path, schema: &Schema) -> Result<Vocabularies> {
    let v = Vocabularies::load(run.join(VOCAB_FILE))?;
    v.check_against(schema).with_context(|| {
        format!(
            "the vocabularies of {} do not fit this schema",
            run.display()
        )
    })?;
    Ok(v)
}

/// The item table `data.items` (checked to list every item once) and its skipped rows.
pub fn read_items(d: &DataConfig, schema: &Schema) -> Result<(Option<RawLog>, usize)> {
    let Some(p) = &d.items else {
        return Ok((None, 0));
    };
    let o = ReadOptions::table_of(&[Side::Item]).with_skip_bad_rows(d.skip_bad_rows);
    let (items, report) = read_log_with_report(p, schema, &o)?;
    check_unique_items(&items, schema, p, report.rows_skipped)?;
    Ok((Some(items), report.rows_skipped))
}
