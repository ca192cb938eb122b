//! A streamed log (`data.stream = true`) against the same log read into memory: the same
//! vocabularies, test rows, corpus, users and retrieval task under the same split, training
//! rows that are the in-memory ones in file order, comparable metrics, and a bound on the rows
//! held while training that does not grow with the log.

mod common;

use std::path::Path;

use dmtl_data::sim::SimConfig;
use dmtl_data::{BatchSource, ReadOptions};
use dmtl_runner::commands;
use dmtl_runner::config::RunConfig;
use dmtl_runner::prepare::{prepare_data, Prepared};
use dmtl_runner::progress::Progress;
use dmtl_runner::row_split::RowSplit;
use dmtl_runner::train_rows::open_training_source;

use common::Cfg;

fn sim(n_impressions: usize) -> SimConfig {
    SimConfig {
        n_users: 300,
        n_items: 400,
        n_impressions,
        n_author: 50,
        seed: 5,
        ..common::small_sim()
    }
}

/// The run config over `data` with `stream` and `[eval]` lines `eval`; without `items`, the
/// corpus is every item of the training rows.
fn config(dir: &Path, data: &Path, stream: bool, items: bool, eval: &str) -> RunConfig {
    let mut text = Cfg {
        models: r#"["dmtl", "b1"]"#.into(),
        data_extra: format!("stream = {stream}\n"),
        eval: format!("k = 10\nretrieval_users = 40\n{eval}\n"),
        ..Cfg::tiny(data)
    }
    .text();
    if !items {
        let line = text.lines().find(|l| l.starts_with("items =")).unwrap();
        text = text.replace(line, "");
    }
    let path = dir.join(format!("run-{stream}-{items}.toml"));
    std::fs::write(&path, text).unwrap();
    RunConfig::load(&path).unwrap()
}

fn prepared(cfg: &RunConfig) -> Prepared {
    prepare_data(cfg, &Progress::new(true)).unwrap()
}

#[test]
fn a_streamed_log_prepares_the_data_of_the_log_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    commands::simulate(&data, sim(9_000), false).unwrap();
    // No validation rows: the time split is the same rule row by row in both paths.
    for items in [true, false] {
        let mem = prepared(&config(
            tmp.path(),
            &data,
            false,
            items,
            "valid_fraction = 0.0",
        ));
        let st = prepared(&config(
            tmp.path(),
            &data,
            true,
            items,
            "valid_fraction = 0.0",
        ));
        assert!(mem.train.in_memory().is_some() && st.train.in_memory().is_none());
        assert_eq!(st.vocabs, mem.vocabs, "vocabularies");
        assert_eq!(st.test, mem.test, "test rows");
        assert_eq!(st.train_labels, mem.train_labels);
        assert_eq!(st.train.n_rows(), mem.train.n_rows());
        assert_eq!(st.corpus_ids, mem.corpus_ids);
        assert_eq!(st.corpus, mem.corpus);
        assert_eq!(st.users_raw, mem.users_raw);
        assert_eq!(st.queries, mem.queries);
        assert_eq!(st.task.user_ids, mem.task.user_ids);
        assert_eq!(st.task.long_reads, mem.task.long_reads);
        assert_eq!(
            st.task.corpus_train_impressions,
            mem.task.corpus_train_impressions
        );
        assert!(st.task.long_reads.iter().any(|l| !l.is_empty()));
        assert!(st.valid.is_none() && mem.valid.is_none());

        // The streamed training rows, in file order, are the in-memory ones.
        let whole = mem.train.in_memory().unwrap();
        let mut n = 0;
        for b in st.train.source().epoch_batches(1000, None, 0).unwrap() {
            let b = b.unwrap();
            let want = whole.batch(&b.rows);
            assert_eq!(b.fields, want.fields);
            assert_eq!(b.click, want.click);
            assert_eq!(b.long_read, want.long_read);
            n += b.n_rows;
        }
        assert_eq!(n, whole.n_rows);
    }
}

#[test]
fn streamed_validation_rows_are_a_hashed_share_held_out_of_training() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    commands::simulate(&data, sim(9_000), false).unwrap();
    let mem = prepared(&config(
        tmp.path(),
        &data,
        false,
        true,
        "valid_fraction = 0.0",
    ));
    let cfg = config(tmp.path(), &data, true, true, "valid_fraction = 0.2");
    let st = prepared(&cfg);
    let all = mem.train.n_rows();
    let valid = st.valid.as_ref().unwrap().n_rows;
    // Every row of the training period either trains or validates.
    assert_eq!(st.train.n_rows() + valid, all);
    let want = 0.2 * all as f64;
    assert!(
        (valid as f64 - want).abs() < 4.0 * want.sqrt(),
        "{valid} validation rows of {all}"
    );
    // Vocabularies come from the training rows only: a token seen only in validation rows is
    // out of vocabulary, so the vocabularies differ from those of every row.
    assert_ne!(st.vocabs, mem.vocabs);
    // The same rule decides alike on every pass: a second preparation holds the same rows.
    assert_eq!(prepared(&cfg).valid, st.valid);
}

#[test]
fn rows_held_while_streaming_do_not_grow_with_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut held = Vec::new();
    for (i, n) in [6_000, 24_000].into_iter().enumerate() {
        let data = tmp.path().join(format!("data-{i}"));
        commands::simulate(&data, sim(n), false).unwrap();
        let cfg = config(tmp.path(), &data, true, true, "valid_fraction = 0.1");
        let st = prepared(&cfg);
        let d = cfg.data.as_ref().unwrap();
        let split = RowSplit::new(&cfg, d, &st.schema).unwrap();
        let opts = ReadOptions::default().with_chunk_rows(256);
        let src =
            open_training_source(&d.log, &st.schema, &st.vocabs, &split, &opts, 1024).unwrap();
        assert_eq!(src.n_rows(), st.train.n_rows());
        let mut rows = 0;
        for b in src.epoch_batches(128, Some((3, 0)), 0).unwrap() {
            rows += b.unwrap().n_rows;
        }
        assert_eq!(rows, src.n_rows(), "every training row once per epoch");
        assert!(src.max_rows_held() <= 1024, "{}", src.max_rows_held());
        assert!(src.n_rows() > 4 * 1024);
        held.push(src.max_rows_held());
    }
    // Four times the log, at most the same buffer.
    assert!(held[1] <= 1024 && held[0] <= 1024, "{held:?}");
}

#[test]
fn a_streamed_run_scores_like_the_run_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    commands::simulate(&data, sim(12_000), false).unwrap();
    let quiet = Progress::new(true);
    let mut runs = Vec::new();
    for stream in [false, true] {
        let cfg = config(tmp.path(), &data, stream, true, "valid_fraction = 0.0");
        let out = tmp.path().join(format!("run-{stream}"));
        let (dir, m) = commands::train_config(&cfg, Some(&out), &quiet).unwrap();
        runs.push((dir, m));
    }
    let (mem, st) = (&runs[0], &runs[1]);
    for f in [
        "vocab.json",
        "items.parquet",
        "users.parquet",
        "schema.toml",
    ] {
        let a = std::fs::read(mem.0.join(f)).unwrap();
        let b = std::fs::read(st.0.join(f)).unwrap();
        assert!(a == b, "{f} differs");
    }
    assert_eq!(mem.1.data.test_rows, st.1.data.test_rows);
    // A log smaller than the stream's buffer is shuffled whole, as in memory: the teacher and
    // B1 train on the same batches to the same bytes. DMTL's soft labels are scored in other
    // batches streamed, equal up to float rounding.
    for f in [
        "teacher/teacher.safetensors",
        "models/b1/student.safetensors",
    ] {
        let a = std::fs::read(mem.0.join(f)).unwrap();
        let b = std::fs::read(st.0.join(f)).unwrap();
        assert!(a == b, "{f} differs");
    }
    assert_eq!(mem.1.models.len(), st.1.models.len());
    for (a, b) in mem.1.models.iter().zip(&st.1.models) {
        assert_eq!(a.name, b.name);
        let (oa, ob) = (a.offline.as_ref().unwrap(), b.offline.as_ref().unwrap());
        for (x, y) in [
            (oa.long_read_auc, ob.long_read_auc),
            (oa.click_auc, ob.click_auc),
            (oa.long_read_gauc, ob.long_read_gauc),
        ] {
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!(
                (x - y).abs() < 2e-3,
                "{}: {x} in memory, {y} streamed",
                a.name
            );
        }
    }
}
