//! Data preparation of a streamed log (`data.stream`): the log is read chunk by chunk, never
//! whole, in two passes before training, and the training rows are then streamed again every
//! epoch ([`crate::train_rows::open_training_source`]).
//!
//! 1. Counting: the part of every row ([`RowSplit`]); the vocabularies from the training rows'
//!    token counts ([`VocabCounter`], the same vocabularies as in memory on the same rows);
//!    the first training row of each item (the corpus, without `data.items`) and of each user
//!    (`users.parquet`); the test period's users in order of first appearance; row and label
//!    counts.
//! 2. Collecting: a sample of at most [`MAX_TEST_ROWS`] test rows and [`MAX_VALID_ROWS`]
//!    validation rows (each row kept when its hashed share is below `cap / rows of its
//!    part`, every row when the part is smaller than the cap); the retrieval task over every
//!    test row (the sampled users' long reads, their first test rows as queries) and every
//!    training row (the corpus items' impressions).
//!
//! What is held is bounded by the caps, the numbers of users and items and the vocabularies,
//! not by the length of the log.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Result};
use dmtl_data::{Dataset, LogReader, RawLog, ReadOptions, Schema, Side, VocabCounter};
use tracing::info;

use crate::columns::{categorical, keep_sides};
use crate::config::{DataConfig, RunConfig};
use crate::metrics::DataSummary;
use crate::preflight::LabelCounts;
use crate::prepared::{apply_threshold, load_vocabs, read_items, Prepared};
use crate::progress::Progress;
use crate::row_split::{row_share, RowPart, RowSplit};
use crate::task::{long_reads, sample_positions, TaskBuilder};
use crate::train_rows::{buffer_rows, open_training_source, TrainRows};

/// The most test rows a streamed run holds (and evaluates offline): a hashed sample beyond.
pub const MAX_TEST_ROWS: usize = 500_000;
/// The most validation rows a streamed run holds (and validates on each epoch).
pub const MAX_VALID_ROWS: usize = 200_000;

/// Salt of the hashed samples of test and validation rows.
const SAMPLE_SALT: u64 = 0x5a3b_1e00_0000_0003;

/// The files a streamed run reads, each with whether all its rows are test rows.
fn sources(d: &DataConfig) -> Vec<(&Path, bool)> {
    let mut s = vec![(d.log.as_path(), false)];
    s.extend(d.test_log.as_deref().map(|t| (t, true)));
    s
}

/// Reads every chunk of `sources` with `opts`, giving each with its rows' keys and parts;
/// returns the rows skipped as malformed.
fn scan(
    sources: &[(&Path, bool)],
    schema: &Schema,
    opts: &ReadOptions,
    split: &RowSplit,
    mut each: impl FnMut(&RawLog, &[u64], &[RowPart]) -> Result<()>,
) -> Result<usize> {
    let mut skipped = 0;
    for &(path, all_test) in sources {
        let mut reader = LogReader::open(path, schema, opts)?;
        for chunk in reader.by_ref() {
            let chunk = chunk?;
            let keys = split.keys(&chunk)?;
            let parts = match all_test {
                true => vec![RowPart::Test; chunk.n_rows],
                false => split.parts(&chunk, &keys)?,
            };
            each(&chunk, &keys, &parts)?;
        }
        skipped += reader.report().rows_skipped;
    }
    Ok(skipped)
}

/// The rows of a part.
fn rows_in(parts: &[RowPart], part: RowPart) -> Vec<usize> {
    (0..parts.len()).filter(|&r| parts[r] == part).collect()
}

/// The first row of each id of a categorical column, with the feature columns of some sides,
/// gathered chunk by chunk.
struct FirstRows {
    column: String,
    sides: Vec<Side>,
    seen: HashSet<String>,
    rows: Option<RawLog>,
}

impl FirstRows {
    fn new(column: &str, sides: &[Side]) -> FirstRows {
        FirstRows {
            column: column.to_string(),
            sides: sides.to_vec(),
            seen: HashSet::new(),
            rows: None,
        }
    }

    /// Adds the rows of `chunk` whose id is new.
    fn add(&mut self, chunk: &RawLog, schema: &Schema) -> Result<()> {
        let ids = categorical(chunk, &self.column)?;
        let new: Vec<usize> = (0..chunk.n_rows)
            .filter(|&r| !self.seen.contains(&ids[r]) && self.seen.insert(ids[r].to_string()))
            .collect();
        append(
            &mut self.rows,
            keep_sides(&chunk.take(&new), schema, &self.sides),
        )
    }
}

/// Appends `rows` to `to`.
fn append(to: &mut Option<RawLog>, rows: RawLog) -> Result<()> {
    match to {
        Some(t) => t.append(rows)?,
        None => *to = Some(rows),
    }
    Ok(())
}

/// What the counting pass finds.
struct Counts {
    vocab: VocabCounter,
    train: LabelCounts,
    valid_rows: usize,
    test_rows: usize,
    test_users: Vec<String>,
    corpus: FirstRows,
    users: FirstRows,
    skipped: usize,
}

/// The counting pass (1. of the module documentation).
fn count(
    d: &DataConfig,
    schema: &Schema,
    opts: &ReadOptions,
    split: &RowSplit,
    corpus_from_log: bool,
) -> Result<Counts> {
    let (user_col, item_col) = (&schema.ids.user, &schema.ids.item);
    let mut c = Counts {
        vocab: VocabCounter::new(schema),
        train: LabelCounts::default(),
        valid_rows: 0,
        test_rows: 0,
        test_users: Vec::new(),
        corpus: FirstRows::new(item_col, &[Side::Item]),
        users: FirstRows::new(user_col, &[Side::User, Side::Context]),
        skipped: 0,
    };
    let mut seen_test_users = HashSet::new();
    c.skipped = scan(&sources(d), schema, opts, split, |chunk, _, parts| {
        let train = chunk.take(&rows_in(parts, RowPart::Train));
        c.vocab.add(&train)?;
        c.users.add(&train, schema)?;
        if corpus_from_log {
            c.corpus.add(&train, schema)?;
        }
        let long = long_reads(&train, schema.long_read_threshold);
        c.train.rows += train.n_rows;
        c.train.long_reads += long.iter().filter(|&&z| z).count();
        c.train.clicks += train
            .click
            .as_ref()
            .map_or(0, |v| v.iter().filter(|&&x| x > 0.5).count());
        c.valid_rows += parts.iter().filter(|&&p| p == RowPart::Valid).count();
        let users = categorical(chunk, user_col)?;
        for r in rows_in(parts, RowPart::Test) {
            c.test_rows += 1;
            if !seen_test_users.contains(&users[r]) {
                seen_test_users.insert(users[r].to_string());
                c.test_users.push(users[r].to_string());
            }
        }
        Ok(())
    })?;
    Ok(c)
}

/// The chance of keeping a row of a part of `rows` rows under a cap of `cap` rows.
fn keep_share(cap: usize, rows: usize) -> f64 {
    match rows <= cap {
        true => 1.1,
        false => cap as f64 / rows as f64,
    }
}

/// What the collecting pass gathers.
struct Collected {
    test: Option<RawLog>,
    valid: Option<RawLog>,
    queries: Option<RawLog>,
}

/// The collecting pass (2. of the module documentation) over a log of `test_rows` test and
/// `valid_rows` validation rows, filling `task`.
fn collect(
    d: &DataConfig,
    schema: &Schema,
    opts: &ReadOptions,
    split: &RowSplit,
    (test_rows, valid_rows): (usize, usize),
    task: &mut TaskBuilder<'_>,
) -> Result<Collected> {
    let (user_col, item_col) = (&schema.ids.user, &schema.ids.item);
    let (p_test, p_valid) = (
        keep_share(MAX_TEST_ROWS, test_rows),
        keep_share(MAX_VALID_ROWS, valid_rows),
    );
    let mut out = Collected {
        test: None,
        valid: None,
        queries: None,
    };
    let (mut n_test, mut n_valid) = (0, 0);
    let mut queried = HashSet::new();
    scan(&sources(d), schema, opts, split, |chunk, keys, parts| {
        let (users, items) = (categorical(chunk, user_col)?, categorical(chunk, item_col)?);
        let long = long_reads(chunk, schema.long_read_threshold);
        let (mut test, mut valid, mut queries) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..chunk.n_rows {
            let held = row_share(keys[r], SAMPLE_SALT);
            match parts[r] {
                RowPart::Train => task.add_train_item(&items[r]),
                RowPart::Valid => {
                    if held < p_valid && n_valid < MAX_VALID_ROWS {
                        valid.push(r);
                        n_valid += 1;
                    }
                }
                RowPart::Test => {
                    if long[r] {
                        task.add_long_read(&users[r], &items[r]);
                    }
                    if task.is_sampled(&users[r]) && queried.insert(users[r].to_string()) {
                        queries.push(r);
                    }
                    if held < p_test && n_test < MAX_TEST_ROWS {
                        test.push(r);
                        n_test += 1;
                    }
                }
            }
        }
        append(&mut out.test, chunk.take(&test))?;
        append(&mut out.valid, chunk.take(&valid))?;
        let sides = [Side::User, Side::Context];
        append(
            &mut out.queries,
            keep_sides(&chunk.take(&queries), schema, &sides),
        )
    })?;
    Ok(out)
}

/// Reads, splits, counts the vocabularies (or loads those of `vocab_run`) and encodes the held
/// rows of the log of `d`, streaming it ([module documentation](self)); writes nothing.
pub fn prepare_streamed(
    cfg: &RunConfig,
    d: &DataConfig,
    vocab_run: Option<&Path>,
    progress: &Progress,
) -> Result<Prepared> {
    let step = progress.step("streaming the log: vocabularies and counts");
    let mut schema = Schema::load(&d.schema)?;
    apply_threshold(cfg, &mut schema);
    let opts = ReadOptions::default().with_skip_bad_rows(d.skip_bad_rows);
    let split = RowSplit::new(cfg, d, &schema)?;
    let (items_raw, items_skipped) = read_items(d, &schema)?;
    let counts = count(d, &schema, &opts, &split, items_raw.is_none())?;
    let what = |part: &str| match split.test_key() {
        Some(key) => format!("the {part} set would be empty (`{key}`)"),
        None => format!("the {part} set would be empty"),
    };
    if counts.train.rows == 0 {
        bail!("{}: {}", d.log.display(), what("training"));
    }
    if counts.test_rows == 0 {
        bail!("{}: {}", d.log.display(), what("test"));
    }
    if counts.skipped > 0 {
        tracing::warn!(skipped = counts.skipped, "malformed rows were skipped");
    }
    let Counts {
        vocab,
        train: train_labels,
        valid_rows,
        test_rows,
        test_users,
        corpus: corpus_rows,
        users,
        skipped,
    } = counts;
    let vocabs = match vocab_run {
        Some(run) => load_vocabs(run, &schema)?,
        None => vocab.finish()?,
    };
    step.finish();

    let step = progress.step("streaming the log: test and validation rows");
    let empty = || RawLog::default();
    let corpus_raw = match items_raw {
        Some(items) => {
            let mut first = FirstRows::new(&schema.ids.item, &[Side::Item]);
            first.add(&items, &schema)?;
            first.rows.unwrap_or_else(empty)
        }
        None => corpus_rows.rows.unwrap_or_else(empty),
    };
    let corpus_ids = categorical(&corpus_raw, &schema.ids.item)?.to_vec();
    let user_ids = sample_positions(cfg, test_users.len())
        .into_iter()
        .map(|p| test_users[p].clone())
        .collect();
    let mut task = TaskBuilder::new(user_ids, &corpus_ids);
    let held = collect(
        d,
        &schema,
        &opts,
        &split,
        (test_rows, valid_rows),
        &mut task,
    )?;
    let task = task.finish(None);
    let enc = |r: Option<RawLog>| -> Result<Option<Dataset>> {
        Ok(match r {
            Some(r) => Some(Dataset::encode(&schema, &r, &vocabs)?),
            None => None,
        })
    };
    let test = enc(held.test)?.expect("test rows were counted");
    let valid = enc(held.valid)?.filter(|v| v.n_rows > 0);
    let queries = enc(held.queries)?.expect("a sampled user has a test row");
    let corpus = Dataset::encode(&schema, &corpus_raw, &vocabs)?;
    let batch_size = cfg
        .teacher
        .train
        .batch_size
        .max(cfg.student.train.batch_size);
    let buffer = buffer_rows(&opts, batch_size);
    let train = open_training_source(&d.log, &schema, &vocabs, &split, &opts, buffer)?;
    step.finish();

    info!(valid_rows, test_rows, "rows of the log outside training");
    let mut data = Prepared {
        schema,
        vocabs,
        train: TrainRows::Stream(train),
        train_labels,
        valid,
        test,
        corpus_raw,
        corpus,
        corpus_ids,
        queries,
        task,
        users_raw: users.rows.unwrap_or_else(empty),
        sim: None,
        summary: DataSummary::default(),
    };
    data.summarise(d.log.display().to_string(), skipped + items_skipped);
    Ok(data)
}
