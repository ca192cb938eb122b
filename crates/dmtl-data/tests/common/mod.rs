//! Shared fixtures: a small schema and a seeded random log that exercises string ids, empty
//! cells, empty bags, quoting and skewed popularity.
#![allow(dead_code)]

use dmtl_data::{RawColumn, RawLog, Schema};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const SCHEMA: &str = r#"
long_read_threshold = 30.0
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
name = "age"
side = "user"
kind = "categorical"
[[columns]]
name = "user_tags"
side = "user"
kind = "multi_hot"
[[columns]]
name = "hour"
side = "context"
kind = "categorical"
[[columns]]
name = "item_id"
side = "item"
kind = "categorical"
[[columns]]
name = "item_tags"
side = "item"
kind = "multi_hot"
separator = ";"
[[columns]]
name = "price"
side = "item"
kind = "dense"
"#;

pub fn schema() -> Schema {
    Schema::from_toml_str(SCHEMA, "test-schema.toml").unwrap()
}

/// A log of `n` rows over days 0..5 with Zipf-like user and item popularity.
pub fn log(n: usize, seed: u64) -> RawLog {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let skewed = |rng: &mut ChaCha8Rng, k: usize| -> usize {
        let u: f64 = rng.gen();
        ((k as f64).powf(u) - 1.0) as usize
    };
    let mut user = Vec::new();
    let mut age = Vec::new();
    let mut hour = Vec::new();
    let mut item = Vec::new();
    let mut price = Vec::new();
    let (mut ut, mut uo) = (Vec::new(), vec![0usize]);
    let (mut it, mut io) = (Vec::new(), vec![0usize]);
    let (mut click, mut duration, mut day) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let u = skewed(&mut rng, 50);
        user.push(format!("u{u}"));
        // Some ages are missing: an empty categorical cell.
        age.push(if u % 7 == 0 {
            String::new()
        } else {
            format!("{}", 18 + u % 5)
        });
        hour.push(format!("{}", rng.gen_range(0..24)));
        let i = skewed(&mut rng, 80);
        // Ids with a comma and a quote exercise CSV quoting.
        item.push(if i == 3 {
            "it,\"3\"".to_string()
        } else {
            format!("it{i}")
        });
        price.push((rng.gen_range(0..1000) as f32) / 8.0 - 20.0);
        for _ in 0..(u % 4) {
            ut.push(format!("t{}", rng.gen_range(0..12)));
        }
        uo.push(ut.len());
        for _ in 0..rng.gen_range(0..4) {
            it.push(format!("g{}", skewed(&mut rng, 30)));
        }
        io.push(it.len());
        let c = rng.gen_bool(0.3);
        click.push(if c { 1.0 } else { 0.0 });
        duration.push(if c {
            rng.gen_range(0..1200) as f32 / 10.0
        } else {
            0.0
        });
        day.push(rng.gen_range(0..5i64));
    }
    RawLog {
        source: "generated".into(),
        columns: vec![
            ("user_id".into(), RawColumn::Categorical(user.into())),
            ("age".into(), RawColumn::Categorical(age.into())),
            (
                "user_tags".into(),
                RawColumn::MultiHot {
                    tokens: ut.into(),
                    offsets: uo,
                },
            ),
            ("hour".into(), RawColumn::Categorical(hour.into())),
            ("item_id".into(), RawColumn::Categorical(item.into())),
            (
                "item_tags".into(),
                RawColumn::MultiHot {
                    tokens: it.into(),
                    offsets: io,
                },
            ),
            ("price".into(), RawColumn::Dense(price)),
        ],
        click: Some(click),
        duration: Some(duration),
        time: Some(day),
        n_rows: n,
    }
}

/// The log with `source` replaced, for comparing logs read from different files.
pub fn renamed(mut log: RawLog, source: &str) -> RawLog {
    log.source = source.to_string();
    log
}

pub const HEADER: &str = "user_id,age,user_tags,hour,item_id,item_tags,price,click,duration,day";

/// Writes `body` under the standard header to a CSV file in `dir`.
pub fn csv_file(dir: &tempfile::TempDir, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, format!("{HEADER}\n{body}")).unwrap();
    p
}
