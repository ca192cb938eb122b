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

#[path = "../benches/reference/mod.rs"]
mod reference;

use dmtl_teacher::{Teacher, TeacherConfig};
use dmtl_tensor::optim::Adam;
use reference::{random_dataset, reference_schema};
use std::time::Instant;

const B: usize = 1024;
/// Batches built beforehand, as the twin's `--n_batches` default.
const N_BATCHES: usize = 64;
/// Untimed steps before the timed ones (first-touch of the optimizer state, BLAS buffers).
const WARMUP_STEPS: usize = 10;

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
