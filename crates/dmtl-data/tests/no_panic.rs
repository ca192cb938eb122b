//! Random bytes fed to the CSV reader and the schema parser give errors, never panics.

mod common;

use dmtl_data::*;
use proptest::prelude::*;

fn read_bytes(bytes: Vec<u8>, skip: bool) {
    let s = common::schema();
    let opts = ReadOptions::default()
        .with_skip_bad_rows(skip)
        .with_chunk_rows(7);
    if let Ok((log, _)) =
        read_csv_from(Box::new(std::io::Cursor::new(bytes)), "fuzz.csv", &s, &opts)
    {
        log.check_lengths().unwrap();
        let v = Vocabularies::build(&s, &log).unwrap();
        let d = Dataset::encode(&s, &log, &v).unwrap();
        assert_eq!(d.n_rows, log.n_rows);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn csv_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400), skip in any::<bool>()) {
        read_bytes(bytes, skip);
    }

    /// Bytes after a valid header reach the value parsers instead of stopping at the header.
    #[test]
    fn csv_random_rows(
        rows in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![
                Just("".to_string()), Just("1".to_string()), Just("0".to_string()),
                Just("-2.5".to_string()), Just("a|b".to_string()), Just("\"x,y\"".to_string()),
                "[ -~]{0,6}".prop_map(|s| s),
            ], 8..12),
            0..12),
        skip in any::<bool>(),
    ) {
        let mut text = format!("{}\n", common::HEADER);
        for r in rows {
            text.push_str(&r.join(","));
            text.push('\n');
        }
        read_bytes(text.into_bytes(), skip);
    }

    #[test]
    fn schema_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Schema::from_toml_str(&text, "fuzz.toml");
    }

    /// Mutations of a valid schema (one character replaced) parse or fail, never panic, and what
    /// parses round-trips through `to_toml_string`.
    #[test]
    fn schema_mutations(pos in 0usize..2000, ch in "[ -~\n]") {
        let mut text = common::SCHEMA.to_string();
        let pos = pos % text.len();
        text.replace_range(pos..pos + 1, &ch);
        if let Ok(s) = Schema::from_toml_str(&text, "fuzz.toml") {
            prop_assert_eq!(Schema::from_toml_str(&s.to_toml_string(), "again").unwrap(), s);
        }
    }
}
