//! Reading and encoding the reference workload's columns (BENCHMARKS.md): rows per second for
//! CSV and for Parquet, read only and read + vocabularies + encode, plus shuffled batching.
//!
//! The log (200,000 rows, seeded) is generated once into `$TMPDIR/dmtl-ingest-bench/` as
//! `ingest.csv` and `ingest.parquet`; `benches/pandas_read_csv.py` times pandas on the same CSV.
//! Rows: `DMTL_INGEST_ROWS` (default 200000).

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dmtl_data::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SCHEMA: &str = r#"
long_read_threshold = 50.0
[labels]
click = "click"
duration = "duration"
[ids]
user = "user_id"
item = "item_id"
[defaults]
embedding_dim = 16
[[columns]]
name = "user_id"
side = "user"
kind = "categorical"
[[columns]]
name = "age"
side = "user"
kind = "categorical"
[[columns]]
name = "gender"
side = "user"
kind = "categorical"
[[columns]]
name = "city"
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
name = "network"
side = "context"
kind = "categorical"
[[columns]]
name = "item_id"
side = "item"
kind = "categorical"
[[columns]]
name = "category"
side = "item"
kind = "categorical"
[[columns]]
name = "sub_category"
side = "item"
kind = "categorical"
[[columns]]
name = "author"
side = "item"
kind = "categorical"
[[columns]]
name = "item_tags"
side = "item"
kind = "multi_hot"
[[columns]]
name = "length_bucket"
side = "item"
kind = "categorical"
"#;

/// A popularity-skewed index in `0..k` (log-uniform, so a few ids dominate).
fn skewed(rng: &mut ChaCha8Rng, k: usize) -> usize {
    let u: f64 = rng.gen();
    (((k as f64).powf(u)) as usize).saturating_sub(1).min(k - 1)
}

fn generate(n: usize) -> RawLog {
    let mut rng = ChaCha8Rng::seed_from_u64(2102_07142);
    let cat = |rng: &mut ChaCha8Rng, prefix: &str, k: usize, skew: bool| -> StrColumn {
        (0..n)
            .map(|_| {
                let i = if skew {
                    skewed(rng, k)
                } else {
                    rng.gen_range(0..k)
                };
                format!("{prefix}{i}")
            })
            .collect()
    };
    let bag = |rng: &mut ChaCha8Rng, prefix: &str, vocab: usize, max: usize| -> RawColumn {
        let mut tokens = StrColumn::new();
        let mut offsets = vec![0];
        for _ in 0..n {
            for _ in 0..rng.gen_range(1..=max) {
                tokens.push(&format!("{prefix}{}", skewed(rng, vocab)));
            }
            offsets.push(tokens.len());
        }
        RawColumn::MultiHot { tokens, offsets }
    };
    let columns = vec![
        (
            "user_id".to_string(),
            RawColumn::Categorical(cat(&mut rng, "u", 100_000, true)),
        ),
        (
            "age".to_string(),
            RawColumn::Categorical(cat(&mut rng, "", 8, false)),
        ),
        (
            "gender".to_string(),
            RawColumn::Categorical(cat(&mut rng, "", 3, false)),
        ),
        (
            "city".to_string(),
            RawColumn::Categorical(cat(&mut rng, "c", 400, true)),
        ),
        ("user_tags".to_string(), bag(&mut rng, "ut", 2_000, 8)),
        (
            "hour".to_string(),
            RawColumn::Categorical(cat(&mut rng, "", 24, false)),
        ),
        (
            "network".to_string(),
            RawColumn::Categorical(cat(&mut rng, "n", 4, false)),
        ),
        (
            "item_id".to_string(),
            RawColumn::Categorical(cat(&mut rng, "i", 200_000, true)),
        ),
        (
            "category".to_string(),
            RawColumn::Categorical(cat(&mut rng, "cat", 40, true)),
        ),
        (
            "sub_category".to_string(),
            RawColumn::Categorical(cat(&mut rng, "sub", 400, true)),
        ),
        (
            "author".to_string(),
            RawColumn::Categorical(cat(&mut rng, "a", 20_000, true)),
        ),
        ("item_tags".to_string(), bag(&mut rng, "it", 2_000, 5)),
        (
            "length_bucket".to_string(),
            RawColumn::Categorical(cat(&mut rng, "", 10, false)),
        ),
    ];
    let mut click = Vec::with_capacity(n);
    let mut duration = Vec::with_capacity(n);
    for _ in 0..n {
        let c = rng.gen_bool(0.12);
        click.push(if c { 1.0 } else { 0.0 });
        duration.push(if c {
            (rng.gen_range(0.0f32..5.5)).exp().round()
        } else {
            0.0
        });
    }
    RawLog {
        source: "bench".to_string(),
        columns,
        click: Some(click),
        duration: Some(duration),
        time: None,
        n_rows: n,
    }
}

fn files(schema: &Schema, n: usize) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join("dmtl-ingest-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join(format!("ingest-{n}.csv"));
    let pq = dir.join(format!("ingest-{n}.parquet"));
    if !csv.exists() || !pq.exists() {
        let log = generate(n);
        write_csv(&log, schema, &csv).unwrap();
        write_parquet(&log, schema, &pq).unwrap();
    }
    for p in [&csv, &pq] {
        let mb = std::fs::metadata(p).unwrap().len() as f64 / 1e6;
        eprintln!("ingest bench file: {} ({mb:.1} MB)", p.display());
    }
    (csv, pq)
}

fn bench(c: &mut Criterion) {
    let n: usize = std::env::var("DMTL_INGEST_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let schema = Schema::from_toml_str(SCHEMA, "bench schema").unwrap();
    let (csv, pq) = files(&schema, n);
    let opts = ReadOptions::default();
    let vocabs = Vocabularies::build(&schema, &read_log(&csv, &schema, &opts).unwrap()).unwrap();

    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    for (name, path) in [("csv", &csv), ("parquet", &pq)] {
        g.bench_function(format!("{name}_read"), |b| {
            b.iter(|| read_log(path, &schema, &opts).unwrap().n_rows)
        });
        g.bench_function(format!("{name}_read_encode"), |b| {
            b.iter(|| {
                let raw = read_log(path, &schema, &opts).unwrap();
                Dataset::encode(&schema, &raw, &vocabs).unwrap().n_rows
            })
        });
        g.bench_function(format!("{name}_read_vocab_encode"), |b| {
            b.iter(|| {
                let raw = read_log(path, &schema, &opts).unwrap();
                let v = Vocabularies::build(&schema, &raw).unwrap();
                Dataset::encode(&schema, &raw, &v).unwrap().n_rows
            })
        });
    }
    let data = Dataset::encode(&schema, &read_log(&pq, &schema, &opts).unwrap(), &vocabs).unwrap();
    g.bench_function("batches_1024_shuffled", |b| {
        b.iter(|| {
            data.batches(1024, Some((1, 0)), false)
                .map(|b| b.n_rows)
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
