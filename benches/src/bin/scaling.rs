//! How cost grows with the work: one sweep per run, one JSON line per point (the keys of
//! [`dmtl_benches::windows::json_line`], rates in the sweep's unit per second, plus the point's
//! own keys). `cargo xtask scaling` runs every sweep and plots them.
//!
//! `scaling --sweep SWEEP [--threads N] [--windows 3] [--window_s 1] [--max_s 20]
//!  [--warmup_s 1] [--wait_quiet_s 5] [--runs 5]` and per sweep:
//!
//! - `sgemm`: GFLOP/s of a 1024x1024 f32 matrix product (the bound of the teacher's step).
//! - `membw`: GB/s of summing 1 GiB (the bound of a pass over a corpus or a file).
//! - `batch [--batch 128,256,...,8192]`: a reference teacher training step (MMoE+ESMM, Adam),
//!   impressions per second at each batch size.
//! - `experts [--experts 1,2,4,8]`, `width [--width 64,128,256,512]`: the same step at batch
//!   1,024 with that many experts, or experts whose first layer is that wide.
//! - `topk --items N`: exact top-100 of 1,024 queries against N items of 64 floats, queries per
//!   second, the default kernel (the bf16 filter where the CPU has AVX-512 BF16) and the f32
//!   GEMM one, each timed over `--runs` searches and at least a second.
//! - `ingest_files --rows N [--dir D]`: writes the CSV and Parquet logs of N impressions.
//! - `ingest --rows N --format csv|parquet --mode memory|stream [--dir D]`: rows per second of
//!   reading the log into memory and encoding it, or of one streamed epoch of batches of 1,024
//!   ([`dmtl_data::StreamSource`]), with this process's peak resident memory.
//!
//! Every point of the teacher sweeps prints `flops_per_imp`, the matrix-product FLOPs of its
//! step per impression ([`dmtl_benches::scaling::dense_flops_per_row`]).

use std::path::PathBuf;

use dmtl_benches::scaling::{
    dense_flops_per_row, log_schema, normal_rows, peak_rss_mb, reference, teacher_config,
    timed_runs, write_log_files, Args,
};
use dmtl_benches::windows::{json_line, measure, median, WindowOptions, Windows};
use dmtl_data::{BatchSource, Dataset, ReadOptions, StreamSource};
use dmtl_student::retrieval::{top_k_with, Kernel, SearchOptions};
use dmtl_teacher::Teacher;
use dmtl_tensor::optim::Adam;
use ndarray::Array2;
use rayon::prelude::*;

/// Queries, dimension and K of the retrieval sweep (those of the reference benchmark).
const QUERIES: usize = 1024;
const DIM: usize = 64;
const TOP: usize = 100;

/// Rows held by a streamed read: four chunks of 65,536 (the training default).
const STREAM_BUFFER_ROWS: usize = 262_144;

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

fn ok<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| fail(&e))
}

/// One point's line: the windows' figures plus `extra` keys.
fn emit(sweep: &str, threads: usize, w: &Windows, extra: &str) {
    println!(
        "{}",
        json_line(
            sweep,
            threads,
            w,
            &format!("\"sweep\": \"{sweep}\", {extra}")
        )
    );
}

fn teacher_point(
    sweep: &str,
    threads: usize,
    opts: &WindowOptions,
    batch: usize,
    n_experts: usize,
    expert_hidden: &[usize],
) {
    let (schema, vocabs) = reference::reference_schema();
    // Enough batches to cycle through without reusing one too soon, at most 2^16 rows built.
    let n_batches = (65_536 / batch).clamp(4, 64);
    let data = reference::random_dataset(n_batches * batch, 1);
    let batches: Vec<_> = data.batches(batch, None, true).collect();
    let config = teacher_config(n_experts, expert_hidden);
    let mut teacher = Teacher::new(config, &schema, &vocabs)
        .unwrap_or_else(|e| fail(&format!("teacher of {n_experts} experts: {e}")));
    let flops = dense_flops_per_row(teacher.store());
    let mut adam = Adam::new(1e-3);
    let mut i = 0;
    let w = measure(batch as f64, opts, || {
        teacher.train_step(&mut adam, &batches[i % batches.len()], None);
        i += 1;
    });
    let step_ms = 1e3 * batch as f64 / median(&w.used());
    let hidden: Vec<String> = expert_hidden.iter().map(|h| h.to_string()).collect();
    emit(
        sweep,
        threads,
        &w,
        &format!(
            "\"unit\": \"imp\", \"batch\": {batch}, \"n_experts\": {n_experts}, \
             \"width\": {}, \"expert_hidden\": [{}], \"flops_per_imp\": {flops}, \
             \"step_ms_median\": {step_ms:.3}",
            expert_hidden[0],
            hidden.join(", ")
        ),
    );
}

fn sgemm(threads: usize, opts: &WindowOptions) {
    let n = 1024;
    let a = normal_rows(n, n, 1);
    let b = normal_rows(n, n, 2);
    let mut c = Array2::<f32>::zeros((n, n));
    let gflop = 2.0 * (n * n * n) as f64 / 1e9;
    let w = measure(gflop, opts, || {
        ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    });
    emit(
        "sgemm",
        threads,
        &w,
        &format!(
            "\"unit\": \"GFLOP\", \"n\": {n}, \"gflops\": {:.1}",
            median(&w.used())
        ),
    );
}

fn membw(threads: usize, opts: &WindowOptions) {
    let words = 1usize << 27;
    let v: Vec<u64> = (0..words as u64).into_par_iter().collect();
    let gb = (words * 8) as f64 / 1e9;
    let mut sink = 0u64;
    let w = measure(gb, opts, || {
        sink ^= v
            .par_chunks(1 << 18)
            .map(|c| c.iter().fold(0u64, |s, &x| s.wrapping_add(x)))
            .reduce(|| 0, u64::wrapping_add);
    });
    emit(
        "membw",
        threads,
        &w,
        &format!(
            "\"unit\": \"GB\", \"bytes\": {}, \"gb_per_s\": {:.2}, \"checksum\": {}",
            words * 8,
            median(&w.used()),
            sink & 1
        ),
    );
}

fn topk(threads: usize, args: &Args) {
    let items_n: usize = ok(args.num("items", 100_000));
    let runs: usize = ok(args.num("runs", 5));
    let queries = normal_rows(QUERIES, DIM, 1);
    let items = normal_rows(items_n, DIM, 2);
    for (name, kernel) in [("default", Kernel::Auto), ("gemm", Kernel::Gemm)] {
        let opts = SearchOptions {
            kernel,
            ..SearchOptions::default()
        };
        let w = timed_runs(QUERIES as f64, runs, 1.0, || {
            top_k_with(queries.view(), items.view(), TOP, None, opts)
                .unwrap_or_else(|e| fail(&format!("top-{TOP} of {items_n} items: {e}")));
        });
        emit(
            "topk",
            threads,
            &w,
            &format!(
                "\"unit\": \"query\", \"items\": {items_n}, \"kernel\": \"{name}\", \
                 \"queries\": {QUERIES}, \"dim\": {DIM}, \"k\": {TOP}"
            ),
        );
    }
}

fn log_dir(args: &Args) -> PathBuf {
    args.get("dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dmtl-scaling"))
}

fn ingest(threads: usize, args: &Args) {
    let rows: usize = ok(args.num("rows", 10_000));
    let runs: usize = ok(args.num("runs", 3));
    let format = args.get("format").unwrap_or("csv");
    let mode = args.get("mode").unwrap_or("memory");
    let dir = log_dir(args);
    let path = dir.join(format!("log-{rows}.{format}"));
    if !path.exists() {
        fail(&format!(
            "{} is missing: write it first with --sweep ingest_files --rows {rows}",
            path.display()
        ));
    }
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    let (schema, vocabs) = log_schema();
    let read = ReadOptions::default();
    let name = path.display().to_string();
    let before_mb = peak_rss_mb().unwrap_or(f64::NAN);
    let w = match mode {
        "memory" => timed_runs(rows as f64, runs, 0.0, || {
            let raw = dmtl_data::read_log(&path, &schema, &read)
                .unwrap_or_else(|e| fail(&format!("{name}: {e}")));
            let data = Dataset::encode(&schema, &raw, &vocabs)
                .unwrap_or_else(|e| fail(&format!("{name}: {e}")));
            assert_eq!(data.n_rows, rows, "{name}");
        }),
        "stream" => {
            let source = StreamSource::open(&path, &schema, &vocabs, &read, STREAM_BUFFER_ROWS)
                .unwrap_or_else(|e| fail(&format!("{name}: {e}")));
            timed_runs(rows as f64, runs, 0.0, || {
                let mut n = 0;
                for b in source
                    .epoch_batches(1024, Some((1, 0)), 0)
                    .unwrap_or_else(|e| fail(&format!("{name}: {e}")))
                {
                    n += b.unwrap_or_else(|e| fail(&format!("{name}: {e}"))).n_rows;
                }
                assert_eq!(n, rows, "{name}");
            })
        }
        other => fail(&format!("--mode: `{other}` is not memory or stream")),
    };
    emit(
        "ingest",
        threads,
        &w,
        &format!(
            "\"unit\": \"row\", \"rows\": {rows}, \"format\": \"{format}\", \"mode\": \"{mode}\", \
             \"file_bytes\": {bytes}, \"peak_rss_mb\": {:.1}, \"rss_before_mb\": {before_mb:.1}",
            peak_rss_mb().unwrap_or(f64::NAN)
        ),
    );
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = ok(Args::parse(&raw));
    let sweep = args
        .get("sweep")
        .unwrap_or_else(|| fail("--sweep is required"))
        .to_string();
    let opts = WindowOptions {
        windows: ok(args.num("windows", 3)),
        window_s: ok(args.num("window_s", 1.0)),
        max_s: ok(args.num("max_s", 20.0)),
        warmup_s: ok(args.num("warmup_s", 1.0)),
        wait_quiet_s: ok(args.num("wait_quiet_s", 5.0)),
    };
    let threads =
        dmtl_tensor::threads::init(args.get("threads").map(|_| ok(args.num("threads", 0usize))));
    match sweep.as_str() {
        "sgemm" => sgemm(threads, &opts),
        "membw" => membw(threads, &opts),
        "batch" => {
            for b in ok(args.list("batch", &[128, 256, 512, 1024, 2048, 4096, 8192])) {
                teacher_point("batch", threads, &opts, b, 4, &[256, 128]);
            }
        }
        "experts" => {
            for e in ok(args.list("experts", &[1, 2, 4, 8])) {
                teacher_point("experts", threads, &opts, 1024, e, &[256, 128]);
            }
        }
        "width" => {
            for w in ok(args.list("width", &[64, 128, 256, 512])) {
                teacher_point("width", threads, &opts, 1024, 4, &[w, 128]);
            }
        }
        "topk" => topk(threads, &args),
        "ingest_files" => {
            let rows = ok(args.num("rows", 10_000));
            let (csv, parquet) = write_log_files(&log_dir(&args), rows)
                .unwrap_or_else(|e| fail(&format!("writing the log of {rows} rows: {e}")));
            for p in [csv, parquet] {
                let bytes = std::fs::metadata(&p).map_or(0, |m| m.len());
                println!(
                    "{{\"sweep\": \"ingest_files\", \"rows\": {rows}, \"path\": \"{}\", \"file_bytes\": {bytes}}}",
                    p.display()
                );
            }
        }
        "ingest" => ingest(threads, &args),
        other => fail(&format!(
            "unknown sweep `{other}` (sgemm, membw, batch, experts, width, topk, ingest_files, ingest)"
        )),
    }
}
