//! `StrColumn` behaves as the `Vec<String>` it replaces, and string columns read from CSV hold
//! exactly the cells' text (quoted delimiters, quotes, newlines, non-ASCII, empty cells and bags).

mod common;

use common::*;
use dmtl_data::*;
use proptest::prelude::*;
use proptest::sample::Index;

fn owned(c: &StrColumn) -> Vec<String> {
    c.iter().map(String::from).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every operation agrees with the same operation on a `Vec<String>`.
    #[test]
    fn agrees_with_a_vec_of_strings(
        values in prop::collection::vec(".{0,5}", 0..40),
        rows in prop::collection::vec(any::<Index>(), 0..30),
        cut in any::<Index>(),
    ) {
        let n = values.len();
        let c: StrColumn = values.iter().collect();
        prop_assert_eq!(c.len(), n);
        prop_assert_eq!(c.is_empty(), n == 0);
        prop_assert_eq!(c.byte_len(), values.iter().map(String::len).sum::<usize>());
        prop_assert_eq!(c.as_str(), values.concat());
        prop_assert_eq!(owned(&c), values.clone());
        prop_assert_eq!(c.to_vec(), values.clone());
        prop_assert_eq!(&c, &values);
        for (i, v) in values.iter().enumerate() {
            prop_assert_eq!(&c[i], v.as_str());
            prop_assert_eq!(c.get(i), Some(v.as_str()));
            prop_assert_eq!(c.contains(v), true);
        }
        prop_assert_eq!(c.get(n), None);
        prop_assert_eq!(
            c.iter().rev().collect::<Vec<_>>(),
            values.iter().rev().map(String::as_str).collect::<Vec<_>>()
        );
        prop_assert_eq!(c.iter().len(), n);
        prop_assert_eq!(&StrColumn::from(values.clone()), &c);
        prop_assert_eq!(&StrColumn::from(values.as_slice()), &c);
        let mut pushed = StrColumn::with_capacity(n, 3);
        for v in &values {
            pushed.push(v);
        }
        prop_assert_eq!(&pushed, &c);

        if n > 0 {
            let picked: Vec<usize> = rows.iter().map(|i| i.index(n)).collect();
            let want: Vec<String> = picked.iter().map(|&r| values[r].clone()).collect();
            prop_assert_eq!(owned(&c.take(&picked)), want);
        }

        let k = cut.index(n + 1);
        let (head, tail) = (c.slice(0..k), c.slice(k..n));
        prop_assert_eq!(owned(&head), values[..k].to_vec());
        prop_assert_eq!(owned(&tail), values[k..].to_vec());
        let view: Vec<&str> = c.range(k..n).collect();
        prop_assert_eq!(view, values[k..].iter().map(String::as_str).collect::<Vec<_>>());
        let back: Vec<&str> = c.range(0..k).rev().collect();
        prop_assert_eq!(back, values[..k].iter().rev().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(c.range(k..n).len(), n - k);

        let mut joined = head.clone();
        joined.append(&tail);
        prop_assert_eq!(&joined, &c);
        let mut extended = head.clone();
        extended.extend(&values[k..]);
        prop_assert_eq!(&extended, &c);
        let mut cut_back = c.clone();
        cut_back.truncate(k);
        prop_assert_eq!(&cut_back, &head);
    }
}

#[test]
fn equality_compares_values_not_bytes() {
    let a = StrColumn::from(vec!["ab", ""]);
    // Same bytes, different boundaries.
    assert_ne!(a, StrColumn::from(vec!["a", "b"]));
    assert_ne!(a, StrColumn::from(vec!["ab"]));
    assert_ne!(StrColumn::from(vec!["", ""]), StrColumn::from(vec![""]));
    assert_ne!(StrColumn::from(vec![""]), StrColumn::new());
    // Room reserved does not count.
    let mut b = StrColumn::with_capacity(100, 1000);
    b.push("ab");
    b.push("");
    assert_eq!(a, b);
    assert_eq!(StrColumn::default(), StrColumn::new());
    assert_eq!(format!("{a:?}"), r#"["ab", ""]"#);
}

#[test]
fn empty_and_non_ascii_values() {
    let values = ["", "é", "", "日本語", "a\u{0}b", "", "🦀,\"x\"\n"];
    let c: StrColumn = values.iter().collect();
    assert_eq!(c.len(), 7);
    assert_eq!(c.byte_len(), values.concat().len());
    assert_eq!(c.iter().collect::<Vec<_>>(), values);
    assert_eq!(&c[3], "日本語");
    assert_eq!(&c[5], "");
    assert_eq!(
        c.take(&[6, 0, 6, 3]),
        vec!["🦀,\"x\"\n", "", "🦀,\"x\"\n", "日本語"]
    );
    let mut e = StrColumn::new();
    assert!(e.is_empty());
    assert_eq!(e.iter().next(), None);
    assert_eq!(e.take(&[]), StrColumn::new());
    assert_eq!(e.slice(0..0), StrColumn::new());
    e.append(&StrColumn::new());
    assert!(e.is_empty());
    e.append(&c);
    assert_eq!(e, c);
}

#[test]
#[should_panic(expected = "index 2 out of range for a column of 2 strings")]
fn indexing_past_the_end_panics() {
    let c = StrColumn::from(vec!["a", "b"]);
    let _ = &c[2];
}

/// A multi-hot column of the given bags, built the way it was before `StrColumn`.
fn bags(rows: &[&[&str]]) -> RawColumn {
    let mut tokens: Vec<String> = Vec::new();
    let mut offsets = vec![0];
    for r in rows {
        tokens.extend(r.iter().map(|t| t.to_string()));
        offsets.push(tokens.len());
    }
    RawColumn::MultiHot {
        tokens: tokens.into(),
        offsets,
    }
}

fn rows_of(c: &RawColumn) -> Vec<Vec<&str>> {
    (0..c.len()).map(|r| c.tokens_of_row(r).collect()).collect()
}

#[test]
fn multi_hot_rows_take_and_append_with_empty_bags() {
    let a = bags(&[&["x", "ü"], &[], &["y"], &[]]);
    assert_eq!(a.len(), 4);
    assert_eq!(rows_of(&a), vec![vec!["x", "ü"], vec![], vec!["y"], vec![]]);
    assert_eq!(a.tokens_of_row(0).len(), 2);
    assert_eq!(a.tokens_of_row(1).len(), 0);
    assert_eq!(
        a.take(&[3, 0, 1, 0, 2]),
        bags(&[&[], &["x", "ü"], &[], &["x", "ü"], &["y"]])
    );
    assert_eq!(a.take(&[]), bags(&[]));
    let mut b = bags(&[&[]]);
    b.append(a.clone());
    b.append(bags(&[&["z", "x"]]));
    assert_eq!(b, bags(&[&[], &["x", "ü"], &[], &["y"], &[], &["z", "x"]]));

    let c = RawColumn::Categorical(vec!["u1", "", "é"].into());
    assert_eq!(rows_of(&c), vec![vec!["u1"], vec![""], vec!["é"]]);
    assert_eq!(
        c.take(&[2, 2, 1]),
        RawColumn::Categorical(vec!["é", "é", ""].into())
    );
    let mut d = c.clone();
    d.append(c);
    assert_eq!(
        d,
        RawColumn::Categorical(vec!["u1", "", "é", "u1", "", "é"].into())
    );
}

/// Rows with quoted delimiters, separators, doubled quotes, LF and CRLF inside fields,
/// non-ASCII, empty cells and empty bags (an empty cell, `""` and a cell of separators only).
const QUOTED: &str = "\"u,1\",20,\"t1|t,2\",5,it1,g1;g2,1.5,1,40.5,0\n\
\"u\"\"2\"\"\nline\",,,6,\"it\r\n2\",\";;\",0,0,0,1\r\n\
ü3,\"3,0\",\"a|\"\"b\"\"||ç\",7,it3,\"\",2.5,1,3,2\n\
\n\
u4,é,|,8,\"i,t\n\n4\",\"x;\ny\",-1,0,0,3\n";

/// What reading [`QUOTED`] must give, built from `Vec<String>`s as the reader built it before.
fn quoted_log(source: &str) -> RawLog {
    let s = |v: &[&str]| -> Vec<String> { v.iter().map(|x| x.to_string()).collect() };
    let bag = |tokens: &[&str], offsets: Vec<usize>| RawColumn::MultiHot {
        tokens: s(tokens).into(),
        offsets,
    };
    RawLog {
        source: source.to_string(),
        columns: vec![
            (
                "user_id".into(),
                RawColumn::Categorical(s(&["u,1", "u\"2\"\nline", "ü3", "u4"]).into()),
            ),
            (
                "age".into(),
                RawColumn::Categorical(s(&["20", "", "3,0", "é"]).into()),
            ),
            (
                "user_tags".into(),
                bag(&["t1", "t,2", "a", "\"b\"", "ç"], vec![0, 2, 2, 5, 5]),
            ),
            (
                "hour".into(),
                RawColumn::Categorical(s(&["5", "6", "7", "8"]).into()),
            ),
            (
                "item_id".into(),
                RawColumn::Categorical(s(&["it1", "it\r\n2", "it3", "i,t\n\n4"]).into()),
            ),
            (
                "item_tags".into(),
                bag(&["g1", "g2", "x", "\ny"], vec![0, 2, 2, 2, 4]),
            ),
            ("price".into(), RawColumn::Dense(vec![1.5, 0.0, 2.5, -1.0])),
        ],
        click: Some(vec![1.0, 0.0, 1.0, 0.0]),
        duration: Some(vec![40.5, 0.0, 3.0, 0.0]),
        time: Some(vec![0, 1, 2, 3]),
        n_rows: 4,
    }
}

#[test]
fn quoted_csv_reads_to_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let p = csv_file(&dir, "quoted.csv", QUOTED);
    let want = quoted_log(&p.display().to_string());
    for chunk in [1, 2, 3, 65_536] {
        let opts = ReadOptions::default().with_chunk_rows(chunk);
        assert_eq!(
            read_log(&p, &schema(), &opts).unwrap(),
            want,
            "chunks of {chunk}"
        );
    }
    // A bad row after the multi-line fields is reported on its own line (header = 1, four rows
    // over 9 lines as their fields hold 5 newlines, one blank line), and skipping it keeps the
    // rest.
    let p = csv_file(
        &dir,
        "bad.csv",
        &format!("{QUOTED}u5,1,,9,it5,,0.5,2,0,4\n"),
    );
    let t = read_log(&p, &schema(), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        t.contains("bad.csv: line 12, column `click`: expected a click of 0 or 1, found \"2\""),
        "{t}"
    );
    let (log, report) = read_log_with_report(
        &p,
        &schema(),
        &ReadOptions::default().with_skip_bad_rows(true),
    )
    .unwrap();
    assert_eq!(report.rows_skipped, 1);
    assert_eq!(log, quoted_log(&p.display().to_string()));
}
