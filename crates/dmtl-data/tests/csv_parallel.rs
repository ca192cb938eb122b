//! The CSV reader parses pieces of each chunk in parallel: whatever the thread count, chunk size
//! and quoting, it gives the rows that were written, in order, and the same first error on the
//! same line as a one-piece read.

mod common;

use common::*;
use dmtl_data::*;

/// Runs `f` on a Rayon pool of `threads` threads (so pieces are cut for that many).
fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// (threads, chunk rows): one piece per chunk, many small pieces, chunks that end mid-file.
const SETUPS: &[(usize, usize)] = &[(1, 1), (1, 65_536), (4, 7), (4, 1_000), (3, 65_536)];

/// A log whose ids hold delimiters, quotes and newlines (LF and CRLF) in some rows.
fn awkward_log(n: usize) -> RawLog {
    let mut log = log(n, 11);
    if let Some((_, RawColumn::Categorical(ids))) =
        log.columns.iter_mut().find(|(n, _)| n == "user_id")
    {
        *ids = ids
            .iter()
            .enumerate()
            .map(|(r, id)| match r % 97 {
                5 => format!("{id}\nsecond line"),
                17 => format!("{id}\r\nwindows, \"quoted\""),
                31 => format!("é{id}ü"),
                // Longer than csv_core's first output buffer.
                50 => format!("{id}\"{}", "x".repeat(600)),
                _ => id.to_string(),
            })
            .collect();
    }
    log
}

#[test]
fn pieces_give_the_rows_written_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    // The quoted file is larger than one read of the input (1 MiB), so quoted records span
    // reads.
    for (name, n, log) in [
        ("plain.csv", 3_000, log(3_000, 5)),
        ("quoted.csv", 30_000, awkward_log(30_000)),
    ] {
        let p = dir.path().join(name);
        write_csv(&log, &s, &p).unwrap();
        for &(threads, chunk) in SETUPS {
            let opts = ReadOptions::default().with_chunk_rows(chunk);
            let read = on_threads(threads, || read_log(&p, &s, &opts).unwrap());
            assert_eq!(
                renamed(read, "x"),
                renamed(log.clone(), "x"),
                "{name} with {threads} threads, chunks of {chunk}"
            );
            // Streamed chunks hold at most `chunk` rows and concatenate to the same log.
            let reader = on_threads(threads, || {
                LogReader::open(&p, &s, &opts)
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect::<Vec<_>>()
            });
            assert!(reader.iter().all(|c| c.n_rows <= chunk && c.n_rows > 0));
            assert_eq!(reader.iter().map(|c| c.n_rows).sum::<usize>(), n);
        }
    }
}

/// The first `n` rows of a well-formed body, one per line, as text.
fn good_rows(n: usize) -> String {
    (0..n)
        .map(|i| format!("u{i},20,t1|t2,5,it{i},g1;g2,1.5,1,40.5,{}\n", i % 5))
        .collect()
}

fn first_error(body: &str, opts: &ReadOptions, threads: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = csv_file(&dir, "log.csv", body);
    on_threads(threads, || read_log(&p, &schema(), opts))
        .unwrap_err()
        .to_string()
}

#[test]
fn the_first_bad_row_is_reported_whatever_the_pieces() {
    // Line 1 is the header: row i of `good_rows` is on line i + 2.
    let mut rows: Vec<String> = good_rows(3_000).lines().map(str::to_string).collect();
    rows[2_500] = "u1,20,t1,5".to_string(); // line 2502: too few fields
    rows[1_775] = rows[1_775].replace(",1,40.5,", ",7,40.5,"); // line 1777: bad click
    rows[2_900] = rows[2_900].replace(",1.5,", ",cheap,"); // line 2902: bad price
    let body = rows.join("\n") + "\n";
    for &(threads, chunk) in SETUPS {
        let opts = ReadOptions::default().with_chunk_rows(chunk);
        let t = first_error(&body, &opts, threads);
        assert!(
            t.contains("line 1777, column `click`: expected a click of 0 or 1, found \"7\""),
            "{threads} threads, chunks of {chunk}: {t}"
        );
    }
    let body = body.replace(",7,40.5,", ",1,40.5,");
    for &(threads, chunk) in SETUPS {
        let opts = ReadOptions::default().with_chunk_rows(chunk);
        let t = first_error(&body, &opts, threads);
        assert!(
            t.contains("line 2502: expected 10 fields (as in the header), found 4"),
            "{threads} threads, chunks of {chunk}: {t}"
        );
    }
}

#[test]
fn skipped_rows_are_reported_in_file_order_whatever_the_pieces() {
    let mut rows: Vec<String> = good_rows(2_000).lines().map(str::to_string).collect();
    let bad = [
        (1_999, "u1"),
        (3, "u1,2"),
        (700, "x,y,z"),
        (1_200, "u,,,,,,,,,"),
    ];
    for (r, text) in bad {
        rows[r] = text.to_string();
    }
    rows[1_500] = rows[1_500].replace(",40.5,", ",-1,");
    let body = rows.join("\n") + "\n";
    let dir = tempfile::tempdir().unwrap();
    let p = csv_file(&dir, "log.csv", &body);
    for &(threads, chunk) in SETUPS {
        let opts = ReadOptions::default()
            .with_chunk_rows(chunk)
            .with_skip_bad_rows(true);
        let (log, report) =
            on_threads(threads, || read_log_with_report(&p, &schema(), &opts)).unwrap();
        assert_eq!(log.n_rows, 1_995);
        assert_eq!(report.rows_skipped, 5);
        let lines: Vec<String> = report
            .first_errors
            .iter()
            .map(|e| e.to_string().split(", column").next().unwrap().to_string())
            .map(|e| e.split(": expected").next().unwrap().to_string())
            .map(|e| e.rsplit("log.csv: ").next().unwrap().to_string())
            .collect();
        assert_eq!(
            lines,
            [5, 702, 1202, 1502, 2001].map(|l| format!("line {l}")),
            "{threads} threads, chunks of {chunk}"
        );
        // The kept rows are the good ones, in order.
        let Some(RawColumn::Categorical(ids)) = log.column("item_id") else {
            panic!("no item_id")
        };
        let want: Vec<String> = (0..2_000)
            .filter(|r| ![3, 700, 1_200, 1_500, 1_999].contains(r))
            .map(|r| format!("it{r}"))
            .collect();
        assert_eq!(ids, &want);
    }
}

#[test]
fn lines_count_blank_lines_crlf_and_newlines_inside_quotes() {
    let good = "u1,20,t1|t2,5,it1,g1;g2,1.5,1,40.5,0";
    // Line 2 is blank, lines 3-4 end in CRLF, the quoted id spans lines 5-7, line 8 is bad.
    let body = format!(
        "\n{good}\r\n{good}\r\n\"u\n,\"\"x\"\"\n\",20,t1,5,it1,g1,1.5,1,40.5,0\nu1,20,t1,5,it1,g1,1.5,0,9,0\n"
    );
    for threads in [1, 4] {
        let t = first_error(&body, &ReadOptions::default(), threads);
        assert!(
            t.contains("line 8, column `duration`: expected a duration of 0 when click is 0"),
            "{t}"
        );
    }
    // Without the bad row, the quoted id reads back unquoted, newlines and all.
    let body = body.replace(",0,9,0", ",0,0,0");
    let dir = tempfile::tempdir().unwrap();
    let p = csv_file(&dir, "log.csv", &body);
    let log = read_log(&p, &schema(), &ReadOptions::default()).unwrap();
    assert_eq!(log.n_rows, 4);
    assert_eq!(
        log.column("user_id"),
        Some(&RawColumn::Categorical(
            vec!["u1", "u1", "u\n,\"x\"\n", "u1"].into()
        ))
    );
}

#[test]
fn bytes_that_are_not_utf8_name_their_line_quoted_or_not() {
    for (cell, line) in [(&b"u\xff1"[..], 4), (&b"\"u,\xff\""[..], 4)] {
        let mut body = good_rows(2).into_bytes();
        body.extend_from_slice(cell);
        body.extend_from_slice(b",20,t1,5,it1,g1,1.5,1,40.5,0\n");
        body.extend_from_slice(good_rows(1).as_bytes());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.csv");
        let mut text = format!("{HEADER}\n").into_bytes();
        text.extend_from_slice(&body);
        std::fs::write(&p, text).unwrap();
        let t = read_log(&p, &schema(), &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            t.contains(&format!(
                "line {line}, column `user_id`: expected UTF-8 text"
            )),
            "{t}"
        );
    }
}

#[test]
fn a_byte_order_mark_and_a_missing_final_newline_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("log.csv");
    let body = good_rows(3);
    std::fs::write(
        &p,
        format!("\u{feff}{HEADER}\n{}", body.trim_end_matches('\n')),
    )
    .unwrap();
    let log = read_log(&p, &schema(), &ReadOptions::default()).unwrap();
    assert_eq!(log.n_rows, 3);
    assert_eq!(log.time, Some(vec![0, 1, 2]));
}
