//! Logs of several files (folders of parts, globs) and sharded reading: the parts read as one
//! log in name order, and the shards of `n` readers hold every row exactly once.

mod common;

use std::path::{Path, PathBuf};

use common::{log, renamed, schema};
use dmtl_data::{
    read_log, write_csv, write_parquet, write_parquet_row_groups, DataError, LogReader, RawColumn,
    RawLog, ReadOptions, Shard,
};

/// The common log with `price` set to the row's index, so every row can be told apart.
fn numbered(n: usize, seed: u64) -> RawLog {
    let mut l = log(n, seed);
    for (name, col) in l.columns.iter_mut() {
        if name == "price" {
            *col = RawColumn::Dense((0..n).map(|i| i as f32).collect());
        }
    }
    l
}

fn rows_of(l: &RawLog) -> Vec<usize> {
    match l.column("price") {
        Some(RawColumn::Dense(v)) => v.iter().map(|&x| x as usize).collect(),
        _ => panic!("no price column"),
    }
}

fn range(n0: usize, n1: usize) -> Vec<usize> {
    (n0..n1).collect()
}

/// Writes the rows `cuts[i]..cuts[i + 1]` of `l` as parts `part-0000i.ext` under `dir`.
fn write_parts(l: &RawLog, dir: &Path, cuts: &[usize], parquet_group: Option<usize>) {
    std::fs::create_dir_all(dir).unwrap();
    let s = schema();
    for (i, w) in cuts.windows(2).enumerate() {
        let part = l.take(&range(w[0], w[1]));
        match parquet_group {
            Some(g) => {
                write_parquet_row_groups(&part, &s, dir.join(format!("part-{i:05}.parquet")), g)
                    .unwrap()
            }
            None => write_csv(&part, &s, dir.join(format!("part-{i:05}.csv"))).unwrap(),
        }
    }
}

fn read_shard(path: &Path, shard: Shard) -> RawLog {
    let opts = ReadOptions::default().with_shard(shard).with_chunk_rows(97);
    let reader = LogReader::open(path, &schema(), &opts).unwrap();
    let chunks: Vec<RawLog> = reader.map(|c| c.unwrap()).collect();
    let mut out = RawLog::default();
    for c in chunks {
        if out.n_rows == 0 {
            out = c;
        } else {
            out.append(c).unwrap();
        }
    }
    out
}

/// Every shard of `n` readers is the whole log's rows it names, in order, and the shards
/// together hold each row exactly once.
fn check_shards(path: &Path, whole: &RawLog, counts: &[usize]) {
    for &n in counts {
        let mut seen = vec![0u32; whole.n_rows];
        for rank in 0..n {
            let shard = read_shard(path, Shard::new(rank, n));
            if shard.n_rows == 0 {
                continue;
            }
            let rows = rows_of(&shard);
            for &r in &rows {
                seen[r] += 1;
            }
            assert_eq!(
                renamed(shard, "x"),
                renamed(whole.take(&rows), "x"),
                "{}: shard {rank} of {n} differs from the rows it holds",
                path.display()
            );
        }
        assert!(
            seen.iter().all(|&c| c == 1),
            "{}: with {n} shards, rows read other than once: {:?}",
            path.display(),
            seen.iter()
                .enumerate()
                .filter(|(_, &c)| c != 1)
                .take(5)
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_folder_of_csv_parts_reads_as_one_log_in_name_order() {
    let l = numbered(3000, 1);
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("log");
    // A header-only part (0 rows) in the middle is allowed.
    write_parts(&l, &logdir, &[0, 1000, 1000, 1700, 2600], None);
    // A nested partition folder sorts by its path below the log folder: "part-00003.csv" <
    // "z=1/part-0.csv".
    write_parts(
        &l.take(&range(2600, 3000)),
        &logdir.join("z=1"),
        &[0, 400],
        None,
    );
    // Marker files and hidden files are not data; a 0-byte part is skipped.
    std::fs::write(logdir.join("_SUCCESS"), "").unwrap();
    std::fs::write(logdir.join(".part-00000.csv.crc"), "garbage").unwrap();
    std::fs::write(logdir.join("part-00009.csv"), "").unwrap();
    let got = read_log(&logdir, &schema(), &ReadOptions::default()).unwrap();
    assert_eq!(rows_of(&got), range(0, 3000));
    assert_eq!(renamed(got, "x"), renamed(l, "x"));
}

#[test]
fn a_folder_of_parquet_parts_and_a_glob_read_as_one_log() {
    let l = numbered(2500, 2);
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("log");
    write_parts(&l, &logdir, &[0, 800, 1500, 2500], Some(300));
    let got = read_log(&logdir, &schema(), &ReadOptions::default()).unwrap();
    assert_eq!(renamed(got, "x"), renamed(l.clone(), "x"));

    let glob: PathBuf = logdir.join("part-0000[02].parquet");
    let got = read_log(&glob, &schema(), &ReadOptions::default()).unwrap();
    let mut want = range(0, 800);
    want.extend(1500..2500);
    assert_eq!(rows_of(&got), want);
}

#[test]
fn csv_shards_cover_every_row_exactly_once() {
    let l = numbered(2000, 3);
    let s = schema();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.csv");
    write_csv(&l, &s, &file).unwrap();
    check_shards(&file, &l, &[1, 2, 3, 7]);
    let logdir = dir.path().join("parts");
    write_parts(&l, &logdir, &[0, 5, 900, 900, 1990, 2000], None);
    check_shards(&logdir, &l, &[1, 2, 3, 7]);
    // More readers than rows: most shards are empty, none is an error.
    let tiny = dir.path().join("tiny.csv");
    write_csv(&l.take(&[0, 1, 2]), &s, &tiny).unwrap();
    check_shards(&tiny, &l.take(&[0, 1, 2]), &[7]);
}

#[test]
fn parquet_shards_cover_every_row_exactly_once() {
    let l = numbered(2000, 4);
    let s = schema();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.parquet");
    write_parquet_row_groups(&l, &s, &file, 150).unwrap();
    check_shards(&file, &l, &[1, 2, 3, 7]);
    let logdir = dir.path().join("parts");
    write_parts(&l, &logdir, &[0, 333, 1000, 1999, 2000], Some(128));
    check_shards(&logdir, &l, &[1, 2, 3, 7]);
    // One row group per file and more readers than groups.
    let one = dir.path().join("one.parquet");
    write_parquet(&l, &s, &one).unwrap();
    check_shards(&one, &l, &[3]);
}

#[test]
fn parquet_row_groups_are_dealt_round_robin_over_the_whole_log() {
    let l = numbered(1000, 5);
    let dir = tempfile::tempdir().unwrap();
    // Two parts of five 100-row groups: groups 0..10 over the log.
    write_parts(&l, dir.path(), &[0, 500, 1000], Some(100));
    let shard = read_shard(dir.path(), Shard::new(1, 3));
    let mut want = Vec::new();
    for g in [1, 4, 7] {
        want.extend(g * 100..(g + 1) * 100);
    }
    assert_eq!(rows_of(&shard), want);
}

#[test]
fn an_error_in_a_csv_shard_names_the_part_and_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::new();
    for i in 0..300 {
        // Line 1 is the header: row i is on line i + 2. Row 250 has a bad click.
        let click = if i == 250 { "maybe" } else { "0" };
        body.push_str(&format!("u{i},20,,3,it{i},,1.5,{click},0,1\n"));
    }
    let file = common::csv_file(&dir, "log.csv", &body);
    let mut errors = Vec::new();
    for rank in 0..3 {
        let opts = ReadOptions::default().with_shard(Shard::new(rank, 3));
        let reader = LogReader::open(&file, &schema(), &opts).unwrap();
        errors.extend(reader.filter_map(|c| c.err()));
    }
    assert_eq!(errors.len(), 1, "one shard holds the bad row: {errors:?}");
    let text = errors[0].to_string();
    assert!(
        text.contains("log.csv") && text.contains("line 252"),
        "{text}"
    );
}

#[test]
fn bad_folders_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let opts = ReadOptions::default();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("_SUCCESS"), "").unwrap();
    let e = read_log(&empty, &s, &opts).unwrap_err().to_string();
    assert!(e.contains("empty") && e.contains("no data file"), "{e}");

    let mixed = dir.path().join("mixed");
    let l = numbered(20, 6);
    write_parts(&l, &mixed, &[0, 10], None);
    write_parts(&l, &mixed, &[0, 10, 20], Some(5));
    let e = read_log(&mixed, &s, &opts).unwrap_err().to_string();
    assert!(e.contains("mixes formats"), "{e}");

    let unknown = dir.path().join("unknown");
    write_parts(&l, &unknown, &[0, 10], None);
    std::fs::write(unknown.join("part-00001"), "x").unwrap();
    let e = read_log(&unknown, &s, &opts).unwrap_err().to_string();
    assert!(e.contains("part-00001") && e.contains("extension"), "{e}");

    let nothing = dir.path().join("none-*.csv");
    let e = read_log(&nothing, &s, &opts).unwrap_err().to_string();
    assert!(e.contains("matches no file"), "{e}");

    // Every part with header only: the log is empty, named by its folder.
    let headers = dir.path().join("headers");
    write_parts(&l, &headers, &[0, 0, 0], None);
    match read_log(&headers, &s, &opts).unwrap_err() {
        DataError::Empty { file, .. } => assert!(file.ends_with("headers"), "{file}"),
        other => panic!("{other}"),
    }
}

#[test]
fn parts_must_agree_on_their_label_columns() {
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let l = numbered(20, 7);
    write_csv(&l.take(&range(0, 10)), &s, dir.path().join("a.csv")).unwrap();
    let mut unlabelled = l.take(&range(10, 20));
    unlabelled.click = None;
    unlabelled.duration = None;
    write_csv(&unlabelled, &s, dir.path().join("b.csv")).unwrap();
    let opts = ReadOptions {
        require_labels: false,
        ..ReadOptions::default()
    };
    let e = read_log(dir.path(), &s, &opts).unwrap_err().to_string();
    assert!(e.contains("b.csv") && e.contains("every part"), "{e}");
}
