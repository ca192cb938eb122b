//! Data-parallel training over MPI, in real jobs under `mpirun` (feature `mpi`; `cargo xtask
//! test` runs it after the suite): the split step equals one process's step on the whole
//! global batch; `dmtl train` on 2 ranks of one thread writes one complete run from rank 0, with
//! the same checkpoint bytes and metrics as one process of two threads, resumes to the same
//! bytes as a run never stopped, and any other command on several ranks fails naming the rank.

#![cfg(feature = "mpi")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use dmtl_data::sim::SimConfig;
use dmtl_runner::commands;

use common::{metrics_without_clock, Cfg};
use dmtl_tensor::threads::MIN_SHARD_ROWS;

/// Runs `program args` on `ranks` ranks under mpirun, one thread each (at most 300 s).
fn mpirun(ranks: usize, program: &str, args: &[&str]) -> (Output, String) {
    mpirun_threads(ranks, 1, program, args)
}

/// [`mpirun`] with `threads` BLAS and Rayon threads per rank.
fn mpirun_threads(ranks: usize, threads: usize, program: &str, args: &[&str]) -> (Output, String) {
    let out = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "--timeout", "300"])
        .args(["-x", &format!("DMTL_THREADS={threads}")])
        .args(["-np", &ranks.to_string(), program])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("mpirun (OpenMPI: apt-get install openmpi-bin libopenmpi-dev) must be on the PATH");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

const DMTL: &str = env!("CARGO_BIN_EXE_dmtl");

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn two_ranks_at_512_rows_step_as_one_process_at_1024() {
    let (out, text) = mpirun(
        2,
        env!("CARGO_BIN_EXE_mpi_steps"),
        &["--check", "--steps", "50"],
    );
    assert!(out.status.success(), "{text}");
    for r in 0..2 {
        let line = format!("mpi_steps: rank {r} of 2: 50 steps of 1024 rows");
        assert!(text.contains(&line), "missing `{line}`:\n{text}");
    }
}

/// The epoch loop over each rank's own share of the rows: 10,001 rows on 3 ranks (shares of
/// 3,334, 3,334 and 3,333 rows, batches of 342/341/341 of the global 1,024): every rank takes
/// the same 10 steps to the same loss and parameters.
#[test]
fn three_ranks_on_their_own_shares_stay_in_step() {
    let (out, text) = mpirun(
        3,
        env!("CARGO_BIN_EXE_mpi_steps"),
        &["--check-shares", "--rows", "10001"],
    );
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("shares of 10001 rows"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    let tail = |l: &str| l.split(": ").skip(3).collect::<Vec<_>>().join(": ");
    for l in &lines {
        assert!(l.contains("10 steps"), "{text}");
        assert_eq!(tail(l), tail(lines[0]), "{text}");
    }
}

fn long_read_auc(metrics: &serde_json::Value, model: &str) -> f64 {
    let m = metrics["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == model)
        .unwrap_or_else(|| panic!("no {model} in {metrics}"));
    m["offline"]["long_read_auc"]
        .as_f64()
        .unwrap_or_else(|| panic!("no long-read AUC of {model} in {m}"))
}

fn scratch_folders() -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("dmtl-rank"))
        .collect()
}

#[test]
fn dmtl_train_on_two_ranks_learns_writes_once_and_resumes_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let data = tmp.join("data");
    // The tiny simulated feed (`dmtl simulate --scale tiny`), on which the models learn in two
    // epochs (random ranks at a long-read AUC of about 0.49).
    commands::simulate(&data, SimConfig::tiny(), false).unwrap();
    // Batches of an odd size split unevenly over the ranks (259 and 258 rows), so each rank's
    // share of a step is no power of two; `b3-wlr`'s loss is a weighted mean, so a rank's
    // share is that of the weights, not of the rows.
    const BATCH: usize = 517;
    let train =
        |extra: &str| format!("epochs = 2\nbatch_size = {BATCH}\ncheckpoint_every = 4\n{extra}\n");
    let cfg = |name: &str, teacher_extra: &str| {
        Cfg {
            models: r#"["dmtl", "b3-wlr"]"#.into(),
            teacher_train: train(teacher_extra),
            student_train: train(""),
            ..Cfg::tiny(&data)
        }
        .write(&tmp.join(format!("{name}.toml")))
    };
    let before = scratch_folders();

    // One process, then two ranks, on the same run configuration.
    let one = tmp.join("one");
    let o = Command::new(DMTL)
        .args([
            "--quiet",
            "train",
            "--config",
            s(&cfg("one", "")),
            "--out",
            s(&one),
        ])
        .env("DMTL_THREADS", "2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let two = tmp.join("two");
    let (o, text) = mpirun(
        2,
        DMTL,
        &[
            "--quiet",
            "train",
            "--config",
            s(&cfg("two", "")),
            "--out",
            s(&two),
        ],
    );
    assert!(o.status.success(), "{text}");
    // Rank 0 alone printed the table; the other rank's scratch folder is gone.
    assert_eq!(text.matches("report:").count(), 1, "{text}");
    assert_eq!(scratch_folders(), before);
    for f in [
        "metrics.json",
        "report.md",
        "teacher/teacher.safetensors",
        "models/dmtl/student.safetensors",
    ] {
        assert!(two.join(f).is_file(), "{f} missing from the 2-rank run");
    }
    // Two ranks at one thread each train what one process at two threads trains (the same
    // row blocks, each seeded with its share of the batch, summed in the same order): the
    // same checkpoint bytes and metrics.
    let (m1, m2) = (metrics_without_clock(&one), metrics_without_clock(&two));
    assert_eq!(m1["models"], m2["models"]);
    let train_rows = m1["data"]["train_rows"].as_u64().unwrap() as usize;
    assert!(
        train_rows % BATCH >= 2 * MIN_SHARD_ROWS,
        "the last batch ({} rows) must split over the ranks too",
        train_rows % BATCH
    );
    for f in [
        "teacher/teacher.safetensors",
        "models/dmtl/student.safetensors",
        "models/b3-wlr/student.safetensors",
    ] {
        assert_eq!(
            std::fs::read(one.join(f)).unwrap(),
            std::fs::read(two.join(f)).unwrap(),
            "{f}"
        );
    }
    // And they learned: random ranks at a long-read AUC of about 0.49.
    for model in ["teacher", "dmtl", "b3-wlr"] {
        let a = long_read_auc(&m2, model);
        assert!(a > 0.54, "{model}: {a}");
    }

    // Stopped mid-way through the teacher's first epoch, then resumed on 2 ranks: the same
    // metrics and checkpoints as the 2-rank run never stopped.
    let stopped = tmp.join("stopped");
    let (o, text) = mpirun(
        2,
        DMTL,
        &[
            "--quiet",
            "train",
            "--config",
            s(&cfg("stopped", "stop_after_batches = 6")),
            "--out",
            s(&stopped),
        ],
    );
    assert!(!o.status.success(), "the stop must fail the run: {text}");
    assert!(text.contains("--resume"), "{text}");
    assert!(stopped.join("state/teacher/state.toml").is_file(), "{text}");
    let (o, text) = mpirun(2, DMTL, &["--quiet", "train", "--resume", s(&stopped)]);
    assert!(o.status.success(), "resume: {text}");
    assert_eq!(metrics_without_clock(&stopped), m2);
    for f in [
        "teacher/teacher.safetensors",
        "models/dmtl/student.safetensors",
    ] {
        assert_eq!(
            std::fs::read(stopped.join(f)).unwrap(),
            std::fs::read(two.join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(scratch_folders(), before);
}

#[test]
fn another_command_on_two_ranks_fails_naming_the_rank() {
    let (o, text) = mpirun(
        2,
        DMTL,
        &["simulate", "--out", "/nonexistent/never-written"],
    );
    assert!(!o.status.success(), "{text}");
    assert!(text.contains("error: rank "), "{text}");
    assert!(
        text.contains("only `dmtl train` runs over several ranks"),
        "{text}"
    );
}
