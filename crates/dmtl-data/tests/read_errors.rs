//! Every kind of bad input gives an error naming the file, the line or row, the column and what
//! was expected; `skip_bad_rows` drops such rows and reports them.

mod common;

use common::*;
use dmtl_data::*;

const GOOD: &str = "u1,20,t1|t2,5,it1,g1;g2,1.5,1,40.5,0\n";

fn csv_err(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = csv_file(&dir, "log.csv", body);
    let e = read_log(&p, &schema(), &ReadOptions::default()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("log.csv"),
        "error does not name the file: {text}"
    );
    text
}

#[test]
fn good_rows_read_with_empty_cells_as_valid() {
    let dir = tempfile::tempdir().unwrap();
    let p = csv_file(&dir, "log.csv", &format!("{GOOD}u2,,,7,it2,,0,0,0,1\n"));
    let log = read_log(&p, &schema(), &ReadOptions::default()).unwrap();
    assert_eq!(log.n_rows, 2);
    assert_eq!(
        log.column("user_tags"),
        Some(&RawColumn::MultiHot {
            tokens: vec!["t1", "t2"].into(),
            offsets: vec![0, 2, 2]
        })
    );
    assert_eq!(
        log.column("item_tags"),
        Some(&RawColumn::MultiHot {
            tokens: vec!["g1", "g2"].into(),
            offsets: vec![0, 2, 2]
        })
    );
    assert_eq!(
        log.column("age"),
        Some(&RawColumn::Categorical(vec!["20", ""].into()))
    );
    assert_eq!(log.click, Some(vec![1.0, 0.0]));
    assert_eq!(log.duration, Some(vec![40.5, 0.0]));
    assert_eq!(log.time, Some(vec![0, 1]));
}

#[test]
fn missing_file() {
    let e = read_log(
        "/nonexistent/dir/log.csv",
        &schema(),
        &ReadOptions::default(),
    )
    .unwrap_err();
    let t = e.to_string();
    assert!(
        t.contains("/nonexistent/dir/log.csv") && t.contains("No such file"),
        "{t}"
    );
}

#[test]
fn missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("log.csv");
    std::fs::write(
        &p,
        "user_id,age,user_tags,hour,item_id,item_tags,click,duration,day\nu,1,,1,i,,0,0,0\n",
    )
    .unwrap();
    let t = read_log(&p, &schema(), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        t.contains("log.csv: column `price` named by the schema is missing"),
        "{t}"
    );
    assert!(t.contains("the file has: user_id, age"), "{t}");
}

#[test]
fn missing_label_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("log.csv");
    std::fs::write(
        &p,
        "user_id,age,user_tags,hour,item_id,item_tags,price,click,day\nu,1,,1,i,,0,0,0\n",
    )
    .unwrap();
    let t = read_log(&p, &schema(), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        t.contains("column `duration` named by the schema is missing"),
        "{t}"
    );
}

#[test]
fn wrong_number_of_fields() {
    let t = csv_err(&format!("{GOOD}u1,20,t1,5,it1,g1,1.5,1,40.5\n"));
    assert!(
        t.contains("log.csv: line 3: expected 10 fields (as in the header), found 9"),
        "{t}"
    );
}

#[test]
fn click_not_zero_or_one() {
    let t = csv_err(&format!("{GOOD}{GOOD}u1,20,t1,5,it1,g1,1.5,2,40.5,0\n"));
    assert!(
        t.contains("log.csv: line 4, column `click`: expected a click of 0 or 1, found \"2\""),
        "{t}"
    );
    let t = csv_err("u1,20,t1,5,it1,g1,1.5,yes,40.5,0\n");
    assert!(
        t.contains("line 2, column `click`: expected a click of 0 or 1, found \"yes\""),
        "{t}"
    );
}

#[test]
fn bad_durations() {
    for (cell, shown) in [
        ("-3", "\"-3\""),
        ("NaN", "\"NaN\""),
        ("long", "\"long\""),
        ("", "an empty cell"),
    ] {
        let t = csv_err(&format!("u1,20,t1,5,it1,g1,1.5,1,{cell},0\n"));
        let want = format!(
            "line 2, column `duration`: expected a duration in seconds (a finite number >= 0), found {shown}"
        );
        assert!(t.contains(&want), "{t}");
    }
}

#[test]
fn duration_without_click() {
    let t = csv_err("u1,20,t1,5,it1,g1,1.5,0,12.5,0\n");
    assert!(
        t.contains("line 2, column `duration`: expected a duration of 0 when click is 0 (no reading without a click), found 12.5 with click 0"),
        "{t}"
    );
}

#[test]
fn dense_not_a_number() {
    let t = csv_err("u1,20,t1,5,it1,g1,cheap,1,40,0\n");
    assert!(
        t.contains("line 2, column `price`: expected a finite number, found \"cheap\""),
        "{t}"
    );
}

#[test]
fn bad_time() {
    let t = csv_err("u1,20,t1,5,it1,g1,1,1,40,monday\n");
    assert!(
        t.contains("line 2, column `day`: expected an integer time, found \"monday\""),
        "{t}"
    );
}

#[test]
fn empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.csv");
    std::fs::write(&p, "").unwrap();
    let t = read_log(&p, &schema(), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        t.contains("empty.csv: no header row (the file is empty)"),
        "{t}"
    );
    let p = csv_file(&dir, "header.csv", "");
    let t = read_log(&p, &schema(), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(t.contains("header.csv: no data rows"), "{t}");
    let p = dir.path().join("empty.parquet");
    std::fs::write(&p, "").unwrap();
    let t = read_log(&p, &schema(), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(t.contains("empty.parquet: the file is empty"), "{t}");
}

#[test]
fn first_bad_value_is_reported_not_a_later_one() {
    // The bad click on line 3 comes before the field-count error on line 4.
    let t = csv_err(&format!("{GOOD}u1,20,t1,5,it1,g1,1.5,7,40.5,0\nu1,2\n"));
    assert!(t.contains("line 3, column `click`"), "{t}");
}

#[test]
fn errors_in_later_chunks_name_the_right_line() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!("{}u1,20,t1,5,it1,g1,x,1,40.5,0\n", GOOD.repeat(10));
    let p = csv_file(&dir, "log.csv", &body);
    let t = read_log(&p, &schema(), &ReadOptions::default().with_chunk_rows(3))
        .unwrap_err()
        .to_string();
    assert!(t.contains("line 12, column `price`"), "{t}");
}

#[test]
fn skip_bad_rows_keeps_the_rest_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let body =
        format!("{GOOD}u1,20,t1,5,it1,g1,1.5,2,40.5,0\n{GOOD}u1,2\nu9,20,,5,it9,,1,0,3,0\n{GOOD}");
    let p = csv_file(&dir, "log.csv", &body);
    let opts = ReadOptions::default()
        .with_skip_bad_rows(true)
        .with_chunk_rows(2);
    let (log, report) = read_log_with_report(&p, &schema(), &opts).unwrap();
    assert_eq!(log.n_rows, 3);
    assert_eq!(report.rows_read, 3);
    assert_eq!(report.rows_skipped, 3);
    let reasons: Vec<String> = report.first_errors.iter().map(|e| e.to_string()).collect();
    assert!(reasons[0].contains("line 3, column `click`"), "{reasons:?}");
    assert!(
        reasons[1].contains("line 5: expected 10 fields"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("line 6, column `duration`"),
        "{reasons:?}"
    );
    // The kept rows are exactly the good ones.
    assert_eq!(
        log.column("user_id"),
        Some(&RawColumn::Categorical(vec!["u1"; 3].into()))
    );
}

#[test]
fn skip_bad_rows_with_nothing_left_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = csv_file(&dir, "log.csv", "u1,20,t1,5,it1,g1,1.5,2,40.5,0\n");
    let opts = ReadOptions::default().with_skip_bad_rows(true);
    let t = read_log(&p, &schema(), &opts).unwrap_err().to_string();
    assert!(
        t.contains("log.csv: no valid rows: all 1 rows were skipped"),
        "{t}"
    );
}

#[test]
fn unknown_extension_needs_a_format() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("log.data");
    std::fs::write(&p, format!("{HEADER}\n{GOOD}")).unwrap();
    let t = read_log(&p, &schema(), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(t.contains("cannot tell the format"), "{t}");
    let log = read_log(
        &p,
        &schema(),
        &ReadOptions::default().with_format(Format::Csv),
    )
    .unwrap();
    assert_eq!(log.n_rows, 1);
}

/// The same bad values written to Parquet name the row (first data row = row 1) and column.
#[test]
fn parquet_bad_values_name_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    type Spoil = Box<dyn Fn(&mut RawLog)>;
    let cases: Vec<(Spoil, &str)> = vec![
        (Box::new(|l: &mut RawLog| l.click.as_mut().unwrap()[4] = 2.0), "row 5, column `click`: expected a click of 0 or 1, found 2"),
        (
            Box::new(|l: &mut RawLog| {
                l.click.as_mut().unwrap()[2] = 1.0;
                l.duration.as_mut().unwrap()[2] = -1.0
            }),
            "row 3, column `duration`: expected a duration in seconds (a finite number >= 0), found -1",
        ),
        (
            Box::new(|l: &mut RawLog| {
                l.click.as_mut().unwrap()[0] = 1.0;
                l.duration.as_mut().unwrap()[0] = f32::NAN
            }),
            "row 1, column `duration`: expected a duration in seconds (a finite number >= 0), found NaN",
        ),
        (
            Box::new(|l: &mut RawLog| {
                l.click.as_mut().unwrap()[6] = 0.0;
                l.duration.as_mut().unwrap()[6] = 9.0
            }),
            "row 7, column `duration`: expected a duration of 0 when click is 0",
        ),
        (
            Box::new(|l: &mut RawLog| {
                if let Some((_, RawColumn::Dense(v))) = l.columns.iter_mut().find(|(n, _)| n == "price") {
                    v[3] = f32::INFINITY;
                }
            }),
            "row 4, column `price`: expected a finite number, found inf",
        ),
    ];
    for (k, (spoil, want)) in cases.iter().enumerate() {
        let mut l = log(10, 1);
        spoil(&mut l);
        let p = dir.path().join(format!("bad{k}.parquet"));
        write_parquet(&l, &s, &p).unwrap();
        let t = read_log(&p, &s, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(t.contains(&format!("bad{k}.parquet: {want}")), "{t}");
    }
}

#[test]
fn parquet_missing_column_and_garbage_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let mut l = log(5, 2);
    l.columns.retain(|(n, _)| n != "hour");
    let p = dir.path().join("nohour.parquet");
    write_parquet(&l, &s, &p).unwrap();
    let t = read_log(&p, &s, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        t.contains("nohour.parquet: column `hour` named by the schema is missing"),
        "{t}"
    );
    let p = dir.path().join("garbage.parquet");
    std::fs::write(&p, b"this is not parquet at all").unwrap();
    let t = read_log(&p, &s, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        t.contains("garbage.parquet: not a readable Parquet file"),
        "{t}"
    );
}

/// The rule for spaces: header names are trimmed (a hand-written `user_id, age` names the
/// columns `user_id` and `age`), cells are taken as written (a category `" 20"` is another
/// category than `"20"`, as in pandas' default), so no value is ever changed silently.
#[test]
fn header_names_are_trimmed_and_cells_are_taken_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let spaced = HEADER.replace(',', ", ");
    let p = dir.path().join("log.csv");
    std::fs::write(
        &p,
        format!("{spaced}\nu1, 20,t1| t2,5,it1,g1,1.5,1,40.5,0\n"),
    )
    .unwrap();
    let log = read_log(&p, &schema(), &ReadOptions::default()).unwrap();
    assert_eq!(log.n_rows, 1);
    assert_eq!(
        log.column("age"),
        Some(&RawColumn::Categorical(vec![" 20"].into()))
    );
    assert_eq!(
        log.column("user_tags"),
        Some(&RawColumn::MultiHot {
            tokens: vec!["t1", " t2"].into(),
            offsets: vec![0, 2]
        })
    );
}
