//! The workloads and counts behind the `scaling` binary (how cost grows with the work): the
//! teacher at other batch sizes, expert counts and widths with the matrix-product FLOPs of its
//! step, seeded item vectors for retrieval at any corpus size, an impression log of any length
//! written as CSV and Parquet for the ingest sweep, timing of calls too slow for many steps per
//! window, and the peak resident memory of this process.

#[path = "../../crates/dmtl-teacher/benches/reference/mod.rs"]
pub mod reference;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use dmtl_data::{Dataset, FieldData, RawColumn, RawLog, Schema, StrColumn, Vocabularies};
use dmtl_teacher::{MmoeConfig, TeacherConfig};
use dmtl_tensor::{ParamKind, ParamStore};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::windows::{busy_jiffies, process_cpu_s, Windows};

/// The reference teacher (MMoE, towers `[64]`) with `n_experts` experts of layers
/// `expert_hidden`.
pub fn teacher_config(n_experts: usize, expert_hidden: &[usize]) -> TeacherConfig {
    TeacherConfig {
        body: MmoeConfig {
            n_experts,
            expert_hidden: expert_hidden.to_vec(),
            ..MmoeConfig::default()
        }
        .into(),
        ..TeacherConfig::default()
    }
}

/// The reference schema and hashed vocabularies ([`reference::reference_schema`]) with each
/// column's `hash_buckets` set to its vocabulary's, as reading and encoding a log require.
pub fn log_schema() -> (Schema, Vocabularies) {
    let (mut schema, vocabs) = reference::reference_schema();
    for spec in &mut schema.columns {
        spec.hash_buckets = vocabs.get(&spec.name).and_then(|v| v.hash_buckets());
    }
    (schema, vocabs)
}

/// FLOPs of the matrix products of one training step, per row of the batch: every dense
/// `(in, out)` weight costs `2 in out` in the forward pass and twice that in the backward pass
/// (the input's gradient and the weight's), so `6 in out` in all. Biases, activations, the
/// loss, embedding look-ups and the optimiser are left out: they are memory-bound and small
/// beside the products, so the count over-states no work and the bound it gives is one the
/// step cannot beat.
pub fn dense_flops_per_row(store: &ParamStore) -> f64 {
    store
        .iter()
        .filter(|(_, p)| p.kind == ParamKind::Dense && !p.saved_1d)
        .map(|(_, p)| 6.0 * p.value.len() as f64)
        .sum()
}

/// Times calls of `step`, which processes `items` items per call, after one untimed call: at
/// least `runs` calls and at least `min_s` seconds of them. Each call is one window of [`Windows`] (its rate, the foreign CPU during it, its rate
/// per CPU-second of this process). For calls too long for the many steps per window of
/// [`crate::windows::measure`] (a search of ten million items, a read of a whole log).
pub fn timed_runs(items: f64, runs: usize, min_s: f64, mut step: impl FnMut()) -> Windows {
    step();
    // SAFETY: sysconf only reads a configuration value (ticks per second of /proc/stat).
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut w = Windows {
        steps: 1,
        ..Windows::default()
    };
    let start = Instant::now();
    while w.rates.len() < runs || start.elapsed().as_secs_f64() < min_s {
        let (j0, c0) = (busy_jiffies(), process_cpu_s());
        let t = Instant::now();
        step();
        let wall = t.elapsed().as_secs_f64();
        let own = process_cpu_s() - c0;
        let foreign = match (j0, busy_jiffies()) {
            (Some(a), Some(b)) => ((b - a) as f64 / hz - own).max(0.0) / wall,
            _ => 0.0,
        };
        w.rates.push(items / wall);
        w.foreign.push(foreign);
        w.per_cpu.push(items / own.max(1e-9));
    }
    w
}

/// The `VmHWM` (peak resident set) of a `/proc/<pid>/status` text, in MB (10^6 bytes).
pub fn vm_hwm_mb(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut parts = line["VmHWM:".len()..].split_whitespace();
    let kb: f64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(kb * 1024.0 / 1e6),
        Some(_) => None,
    }
}

/// The peak resident set of this process so far, in MB; `None` where `/proc/self/status`
/// cannot be read.
pub fn peak_rss_mb() -> Option<f64> {
    vm_hwm_mb(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Rows per independently seeded block of [`normal_rows`] and [`write_log_files`].
pub const BLOCK_ROWS: usize = 1 << 16;

/// `(rows, cols)` standard normal floats, each block of [`BLOCK_ROWS`] rows drawn from its own
/// ChaCha8 stream of `seed`, in parallel: the same matrix for any thread count.
pub fn normal_rows(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((rows, cols));
    if let Some(flat) = out.as_slice_mut() {
        flat.par_chunks_mut(BLOCK_ROWS * cols.max(1))
            .enumerate()
            .for_each(|(b, chunk)| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(b as u64);
                for x in chunk {
                    *x = StandardNormal.sample(&mut rng);
                }
            });
    }
    out
}

/// The raw log of an encoded dataset of the reference schema: categorical id `k` of a column
/// becomes the string `<column><k>`, a bag the list of such tokens; labels are kept.
pub fn raw_log_of(schema: &Schema, data: &Dataset) -> RawLog {
    let mut text = String::new();
    let mut push = |col: &mut StrColumn, name: &str, id: u32| {
        use std::fmt::Write as _;
        text.clear();
        let _ = write!(text, "{name}{id}");
        col.push(&text);
    };
    let columns = schema
        .columns
        .iter()
        .zip(&data.fields)
        .map(|(spec, field)| {
            let name = spec.name.as_str();
            let column = match field {
                FieldData::Ids(ids) => {
                    let mut col = StrColumn::new();
                    ids.iter().for_each(|&id| push(&mut col, name, id));
                    RawColumn::Categorical(col)
                }
                FieldData::Bag { ids, offsets } => {
                    let mut tokens = StrColumn::new();
                    ids.iter().for_each(|&id| push(&mut tokens, name, id));
                    RawColumn::MultiHot {
                        tokens,
                        offsets: offsets.iter().map(|&o| o as usize).collect(),
                    }
                }
                FieldData::Dense(v) => RawColumn::Dense(v.clone()),
            };
            (spec.name.clone(), column)
        })
        .collect();
    RawLog {
        source: "scaling log".to_string(),
        columns,
        click: Some(data.click.clone()),
        duration: Some(data.duration.clone()),
        time: None,
        n_rows: data.n_rows,
    }
}

/// The CSV and Parquet logs of `rows` impressions of the reference workload in `dir`
/// (`log-<rows>.csv`, `log-<rows>.parquet`), written when absent: blocks of [`BLOCK_ROWS`]
/// random impressions ([`reference::random_dataset`] seeded by the block's number), the CSV
/// block by block, the Parquet file in one piece (the whole raw log is held while it is
/// written). Returns the two paths.
pub fn write_log_files(
    dir: &Path,
    rows: usize,
) -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let csv = dir.join(format!("log-{rows}.csv"));
    let parquet = dir.join(format!("log-{rows}.parquet"));
    if csv.exists() && parquet.exists() {
        return Ok((csv, parquet));
    }
    let (schema, _) = log_schema();
    let block_csv = dir.join(format!("block-{rows}.csv"));
    let tmp_csv = dir.join(format!("log-{rows}.csv.tmp"));
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&tmp_csv).map_err(|e| format!("{}: {e}", tmp_csv.display()))?,
    );
    let mut whole: Option<RawLog> = None;
    let mut start = 0;
    while start < rows {
        let n = BLOCK_ROWS.min(rows - start);
        let data = reference::random_dataset(n, 1000 + (start / BLOCK_ROWS) as u64);
        let raw = raw_log_of(&schema, &data);
        dmtl_data::write_csv(&raw, &schema, &block_csv)?;
        let text =
            std::fs::read(&block_csv).map_err(|e| format!("{}: {e}", block_csv.display()))?;
        // Every block but the first loses its header row.
        let body = match start {
            0 => &text[..],
            _ => match text.iter().position(|&b| b == b'\n') {
                Some(i) => &text[i + 1..],
                None => &[][..],
            },
        };
        out.write_all(body)
            .map_err(|e| format!("{}: {e}", tmp_csv.display()))?;
        match whole.as_mut() {
            None => whole = Some(raw),
            Some(w) => w.append(raw)?,
        }
        start += n;
    }
    out.flush()
        .map_err(|e| format!("{}: {e}", tmp_csv.display()))?;
    drop(out);
    let _ = std::fs::remove_file(&block_csv);
    std::fs::rename(&tmp_csv, &csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    if let Some(w) = whole {
        dmtl_data::write_parquet(&w, &schema, &parquet)?;
    }
    Ok((csv, parquet))
}

/// Command-line options of the form `--key value`, looked up by key.
#[derive(Debug, Clone, Default)]
pub struct Args {
    pairs: Vec<(String, String)>,
}

impl Args {
    /// Pairs up `args`; fails on a key without a value or a value without a key.
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(key) = it.next() {
            let Some(name) = key.strip_prefix("--") else {
                return Err(format!("`{key}` is not an option (--name value)"));
            };
            let value = it.next().ok_or_else(|| format!("{key} needs a value"))?;
            pairs.push((name.to_string(), value.clone()));
        }
        Ok(Args { pairs })
    }

    /// The value of `--key`, the last one when given twice.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `--key` as a `T`, or `default` when absent; the error names the key.
    pub fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{key}: `{v}` is not a number")),
        }
    }

    /// The comma-separated numbers of `--key`, or `default` when absent.
    pub fn list(&self, key: &str, default: &[usize]) -> Result<Vec<usize>, String> {
        match self.get(key) {
            None => Ok(default.to_vec()),
            Some(v) => v
                .split(',')
                .map(|x| {
                    x.trim()
                        .parse()
                        .map_err(|_| format!("--{key}: `{x}` is not a whole number"))
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dmtl_teacher::Teacher;

    #[test]
    fn teacher_flops_match_a_hand_count() {
        // 13 fields of 16 floats: an input of 208. Per expert 208x256 + 256x128, per task a
        // gate 208x4 and a tower 128x64 + 64x1; two tasks (CTR, CVR).
        let (schema, vocabs) = reference::reference_schema();
        let teacher = Teacher::new(teacher_config(4, &[256, 128]), &schema, &vocabs).unwrap();
        let macs = 4 * (208 * 256 + 256 * 128) + 2 * (208 * 4) + 2 * (128 * 64 + 64);
        assert_eq!(dense_flops_per_row(teacher.store()), 6.0 * macs as f64);
        // Doubling the experts doubles the experts' share and widens the gates.
        let wide = Teacher::new(teacher_config(8, &[512, 128]), &schema, &vocabs).unwrap();
        let macs = 8 * (208 * 512 + 512 * 128) + 2 * (208 * 8) + 2 * (128 * 64 + 64);
        assert_eq!(dense_flops_per_row(wide.store()), 6.0 * macs as f64);
    }

    #[test]
    fn options_pair_up_and_name_the_bad_key() {
        let v: Vec<String> = ["--sweep", "batch", "--batch", "128,256", "--runs", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = Args::parse(&v).unwrap();
        assert_eq!(a.get("sweep"), Some("batch"));
        assert_eq!(a.list("batch", &[1]).unwrap(), vec![128, 256]);
        assert_eq!(a.list("sizes", &[7]).unwrap(), vec![7]);
        assert_eq!(a.num("windows", 3usize).unwrap(), 3);
        assert!(a.num("runs", 1usize).unwrap_err().contains("--runs"));
        assert!(Args::parse(&v[..1]).unwrap_err().contains("--sweep"));
        assert!(Args::parse(&v[1..]).is_err());
    }

    #[test]
    fn peak_memory_is_read_from_the_status_text() {
        let status = "Name:\tscaling\nVmPeak:\t  200 kB\nVmHWM:\t    1500 kB\nVmRSS:\t 900 kB\n";
        assert_eq!(vm_hwm_mb(status), Some(1.536));
        assert_eq!(vm_hwm_mb("Name:\tx\n"), None);
        assert_eq!(vm_hwm_mb("VmHWM:\t 12 MB\n"), None);
        let own = peak_rss_mb().expect("/proc/self/status on Linux");
        assert!(own > 0.1 && own < 1e5, "{own}");
    }

    #[test]
    fn normal_rows_do_not_depend_on_the_thread_count() {
        let rows = BLOCK_ROWS + 7;
        let a = normal_rows(rows, 3, 5);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = one.install(|| normal_rows(rows, 3, 5));
        assert_eq!(a, b);
        let mean = a.mean().unwrap();
        let var = a.mapv(|x| x * x).mean().unwrap();
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
        assert_ne!(a.row(0), a.row(BLOCK_ROWS));
    }

    #[test]
    fn written_logs_read_back_to_the_generated_rows() {
        let dir = std::env::temp_dir().join(format!("dmtl-scaling-test-{}", std::process::id()));
        let rows = BLOCK_ROWS + 100;
        let (csv, parquet) = write_log_files(&dir, rows).unwrap();
        let (schema, vocabs) = log_schema();
        let opts = dmtl_data::ReadOptions::default();
        let from_csv = dmtl_data::read_log(&csv, &schema, &opts).unwrap();
        let from_parquet = dmtl_data::read_log(&parquet, &schema, &opts).unwrap();
        assert_eq!(from_csv.n_rows, rows);
        assert_eq!(from_parquet.n_rows, rows);
        // The second block's first row, past the header row the CSV dropped.
        let second = reference::random_dataset(100, 1001);
        let encoded = Dataset::encode(&schema, &from_csv, &vocabs).unwrap();
        let again = raw_log_of(&schema, &second);
        assert_eq!(
            from_csv.take(&[BLOCK_ROWS]).columns,
            again.take(&[0]).columns
        );
        assert_eq!(encoded.click[BLOCK_ROWS], second.click[0]);
        assert_eq!(from_csv.columns, from_parquet.columns);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
