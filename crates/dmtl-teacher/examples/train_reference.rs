//! One teacher training run at the reference shapes of BENCHMARKS.md, for its peak memory
//! beside the PyTorch twin (`benches/anchors/torch_reference.py --task teacher_train`).
//!
//! `cargo run --release -p dmtl-teacher --example train_reference -- [--steps 200] [--threads 2]`
//!
//! Same workload as the twin: the reference schema and vocabularies (13 fields x 16, MMoE with 4
//! experts [256, 128], towers [64] -> 1), 64 random batches of 1,024 built in memory beforehand
//! and cycled, Adam lr 1e-3. Prints one JSON line: impressions/s over the timed steps and
//! `peak_rss_mb`, the process's VmHWM in MB (the unit of the twin's `ru_maxrss / 1024`), with
//! VmHWM read after each phase so that a high figure can be traced to its phase.

use dmtl_data::{Dataset, FieldData, Kind, Schema, Vocabularies, Vocabulary};
use dmtl_teacher::{Teacher, TeacherConfig};
use dmtl_tensor::optim::Adam;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

const B: usize = 1024;
/// Batches built beforehand, as the twin's `--n_batches` default.
const N_BATCHES: usize = 64;
/// Untimed steps before the timed ones (first-touch of the optimizer state, BLAS buffers).
const WARMUP_STEPS: usize = 10;

/// (name, side, table size, largest bag or 0 for categorical); as `benches/teacher_step.rs`.
const FIELDS: [(&str, &str, usize, usize); 13] = [
    ("user_id", "user", 100_000, 0),
    ("age", "user", 8, 0),
    ("gender", "user", 3, 0),
    ("city", "user", 400, 0),
    ("user_tags", "user", 2_000, 8),
    ("hour", "context", 24, 0),
    ("network", "context", 4, 0),
    ("item_id", "item", 200_000, 0),
    ("category", "item", 40, 0),
    ("sub_category", "item", 400, 0),
    ("author", "item", 20_000, 0),
    ("item_tags", "item", 2_000, 5),
    ("length_bucket", "item", 10, 0),
];

fn reference_schema() -> (Schema, Vocabularies) {
    let mut toml = String::from(
        "[labels]\nclick = \"click\"\nduration = \"duration\"\n[ids]\nuser = \"user_id\"\nitem = \"item_id\"\n",
    );
    let mut vocabs = Vec::new();
    for (name, side, n, bag) in FIELDS {
        let kind = if bag > 0 { "multi_hot" } else { "categorical" };
        toml.push_str(&format!(
            "[[columns]]\nname = \"{name}\"\nside = \"{side}\"\nkind = \"{kind}\"\n"
        ));
        let k = if bag > 0 {
            Kind::MultiHot
        } else {
            Kind::Categorical
        };
        // A hashed vocabulary of n - 1 buckets has a table of n rows (with the OOV row).
        vocabs.push(Vocabulary::hashed(name, k, n as u64 - 1));
    }
    let schema = Schema::from_toml_str(&toml, "reference schema").expect("valid schema");
    (schema, Vocabularies::from_vec(vocabs))
}

/// `n` random impressions of the reference workload (CTR ~10 %, P(long read | click) = 0.4).
fn random_dataset(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let fields = FIELDS
        .iter()
        .map(|&(_, _, vocab, bag)| {
            if bag == 0 {
                FieldData::Ids((0..n).map(|_| rng.gen_range(0..vocab as u32)).collect())
            } else {
                let mut ids = Vec::new();
                let mut offsets = vec![0u32];
                for _ in 0..n {
                    for _ in 0..rng.gen_range(1..=bag) {
                        ids.push(rng.gen_range(0..vocab as u32));
                    }
                    offsets.push(ids.len() as u32);
                }
                FieldData::Bag { ids, offsets }
            }
        })
        .collect();
    let click: Vec<f32> = (0..n).map(|_| f32::from(rng.gen_bool(0.1))).collect();
    let duration: Vec<f32> = click
        .iter()
        .map(|&c| c * rng.gen::<f32>() * (50.0 / 0.6))
        .collect();
    let long_read = click
        .iter()
        .zip(&duration)
        .map(|(&c, &d)| f32::from(c > 0.5 && d > 50.0))
        .collect();
    Dataset {
        fields,
        click,
        duration,
        long_read,
        user_group: Vec::new(),
        user_ids: Vec::new(),
        item_group: Vec::new(),
        item_ids: Vec::new(),
        n_rows: n,
    }
}

/// The process's peak resident set (VmHWM) in MB of 1,024 KiB, as `ru_maxrss / 1024` in Python.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn arg(args: &[String], name: &str) -> Option<usize> {
    let i = args.iter().position(|a| a == name)?;
    match args.get(i + 1).map(|v| v.parse()) {
        Some(Ok(v)) => Some(v),
        _ => {
            eprintln!("error: {name} needs a whole number");
            std::process::exit(2);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps = arg(&args, "--steps").unwrap_or(200);
    let threads = dmtl_tensor::threads::init(arg(&args, "--threads"));
    let at_start = peak_rss_mb();

    let (schema, vocabs) = reference_schema();
    let data = random_dataset(N_BATCHES * B, 1);
    let batches: Vec<_> = data.batches(B, None, true).collect();
    // The twin keeps only its batches; the columns they were cut from go.
    drop(data);
    let after_data = peak_rss_mb();

    let mut teacher = Teacher::new(TeacherConfig::default(), &schema, &vocabs).expect("teacher");
    let mut adam = Adam::new(1e-3);
    let after_model = peak_rss_mb();

    let mut i = 0;
    let mut step = |teacher: &mut Teacher, adam: &mut Adam| {
        let loss = teacher.train_step(adam, &batches[i % batches.len()], None);
        i += 1;
        loss
    };
    for _ in 0..WARMUP_STEPS.min(steps) {
        step(&mut teacher, &mut adam);
    }
    let after_first_steps = peak_rss_mb();
    let timed = steps.saturating_sub(WARMUP_STEPS).max(1);
    let t0 = Instant::now();
    let mut last = None;
    for _ in 0..timed {
        last = Some(step(&mut teacher, &mut adam));
    }
    let secs = t0.elapsed().as_secs_f64();
    let last_loss = last.map_or(f32::NAN, |l| l.total);
    let peak = peak_rss_mb();

    println!(
        "{{\"task\": \"teacher_train\", \"threads\": {threads}, \"steps\": {}, \"timed_steps\": {timed}, \
         \"imps_per_s\": {:.0}, \"peak_rss_mb\": {:.0}, \"rss_mb_at_start\": {:.1}, \
         \"rss_mb_after_data\": {:.1}, \"rss_mb_after_model\": {:.1}, \
         \"rss_mb_after_warmup\": {:.1}, \"n_params\": {}, \"last_loss\": {:.4}}}",
        WARMUP_STEPS.min(steps) + timed,
        (timed * B) as f64 / secs,
        peak,
        at_start,
        after_data,
        after_model,
        after_first_steps,
        teacher.store().num_scalars(),
        last_loss
    );
}
