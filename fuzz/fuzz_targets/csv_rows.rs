//! Arbitrary bytes as a CSV log (with and without a valid header in front): the reader must
//! return rows or an error, never panic, and whatever it returns must encode.
#![no_main]

use dmtl_data::*;
use libfuzzer_sys::fuzz_target;

const SCHEMA: &str = r#"
[labels]
click = "click"
duration = "duration"
[ids]
user = "user_id"
item = "item_id"
[split]
time_column = "day"
test_from = 3
[[columns]]
name = "user_id"
side = "user"
kind = "categorical"
[[columns]]
name = "tags"
side = "user"
kind = "multi_hot"
[[columns]]
name = "item_id"
side = "item"
kind = "categorical"
[[columns]]
name = "price"
side = "item"
kind = "dense"
"#;

fuzz_target!(|data: &[u8]| {
    let schema = Schema::from_toml_str(SCHEMA, "fuzz").unwrap();
    // The first byte picks the options so both error paths (fail, skip) are explored.
    let (flags, rest) = data.split_first().unwrap_or((&0, &[]));
    let opts = ReadOptions::default()
        .with_skip_bad_rows(flags & 1 == 1)
        .with_chunk_rows(1 + (*flags as usize >> 1) % 8);
    let mut input = Vec::new();
    if flags & 0x80 == 0 {
        input.extend_from_slice(b"user_id,tags,item_id,price,click,duration,day\n");
    }
    input.extend_from_slice(rest);
    if let Ok((log, report)) = read_csv_from(Box::new(std::io::Cursor::new(input)), "fuzz.csv", &schema, &opts) {
        log.check_lengths().unwrap();
        assert_eq!(report.rows_read, log.n_rows);
        let vocabs = Vocabularies::build(&schema, &log).unwrap();
        let d = Dataset::encode(&schema, &log, &vocabs).unwrap();
        assert_eq!(d.n_rows, log.n_rows);
        let _ = split_train_test(&log, &schema, 1);
    }
});
