//! `dmtl train` stopped part-way (`stop_after_batches`, the way a killed run is emulated) and
//! continued with `dmtl train --resume RUN_DIR` ends with the same bytes of every checkpoint and
//! the same metrics (wall-clock fields aside) as the same run never stopped; a folder that is
//! not a run, or a state that does not match the run's configuration, is refused by name.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dmtl_data::sim::SimConfig;
use dmtl_runner::commands;

use common::{metrics_without_clock, Cfg};

const BIN: &str = env!("CARGO_BIN_EXE_dmtl");

fn dmtl(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--quiet")
        .args(args)
        .env("DMTL_THREADS", "2")
        .env_remove("RUST_LOG")
        .output()
        .expect("the dmtl binary runs")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A run over the log in `data`: two epochs of the teacher and the DMTL student, states written
/// every 4 batches, with `extra` lines appended to the teacher's and the student's `[*.train]`.
fn run_toml(data: &Path, teacher_extra: &str, student_extra: &str) -> String {
    let train =
        |extra: &str| format!("epochs = 2\nbatch_size = 512\ncheckpoint_every = 4\n{extra}\n");
    Cfg {
        teacher_train: train(teacher_extra),
        student_train: train(student_extra),
        ..Cfg::tiny(data)
    }
    .text()
}

fn checkpoint(run: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(run.join(rel)).unwrap_or_else(|e| panic!("{}: {e}", run.join(rel).display()))
}

const CHECKPOINTS: [&str; 2] = [
    "teacher/teacher.safetensors",
    "models/dmtl/student.safetensors",
];

/// Trains with `teacher_extra` / `student_extra` (a stop), checks the stop's exit and message,
/// then resumes; returns the run folder.
fn stop_then_resume(
    tmp: &Path,
    data: &Path,
    name: &str,
    teacher_extra: &str,
    student_extra: &str,
    stage: &str,
    expect_resumed_at: &[(&str, &str)],
    before_resume: impl FnOnce(&Path),
) -> PathBuf {
    let cfg = tmp.join(format!("{name}.toml"));
    std::fs::write(&cfg, run_toml(data, teacher_extra, student_extra)).unwrap();
    let run = tmp.join(name);
    let o = dmtl(&["train", "--config", s(&cfg), "--out", s(&run)]);
    let err = stderr(&o);
    assert!(!o.status.success(), "{name}: the stop must fail the run");
    assert!(
        err.contains(&format!("dmtl train --resume {}", run.display())),
        "{name}: {err}"
    );
    assert!(
        err.contains(&format!("training {stage}:"))
            || err.contains(&format!("training the {stage}:")),
        "{name}: {err}"
    );
    // The stopped run is in place with its states, and no final metrics yet.
    assert!(run.join("state").join(stage).join("state.toml").is_file());
    assert!(!run.join("metrics.json").exists());
    before_resume(&run);
    let o = Command::new(BIN)
        .args(["--quiet", "train", "--resume", s(&run)])
        .env("DMTL_THREADS", "2")
        .env("RUST_LOG", "dmtl_runner=info")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{name}: resume: {err}");
    // The resumed run continued from the states (a retraining from scratch would end with the
    // same bytes too, so the equality below alone would not show it).
    for (stage, said) in expect_resumed_at {
        assert!(
            err.contains(&format!("{stage}: {said}")),
            "{name}: {stage}: {said}: {err}"
        );
    }
    run
}

#[test]
fn a_stopped_run_resumed_matches_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let data = tmp.join("data");
    let sim = SimConfig {
        n_users: 300,
        n_items: 400,
        n_impressions: 12_000,
        n_days: 6,
        n_author: 50,
        seed: 11,
        ..SimConfig::tiny()
    };
    commands::simulate(&data, sim, false).unwrap();

    let whole_cfg = tmp.join("whole.toml");
    std::fs::write(&whole_cfg, run_toml(&data, "", "")).unwrap();
    let whole = tmp.join("whole");
    let o = dmtl(&["train", "--config", s(&whole_cfg), "--out", s(&whole)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = metrics_without_clock(&whole);
    // The comparison is not vacuous: both models trained two epochs.
    let models = expected["models"].as_array().unwrap();
    for name in ["teacher", "dmtl"] {
        let m = models.iter().find(|m| m["name"] == name).unwrap();
        assert_eq!(m["history"].as_array().unwrap().len(), 2, "{name}");
    }

    // Stopped mid-way through the teacher's first epoch (~18 batches an epoch); before the
    // resume, a changed learning rate in the run's config.toml is refused by file and key.
    let mid_teacher = stop_then_resume(
        tmp,
        &data,
        "mid-t",
        "stop_after_batches = 6",
        "",
        "teacher",
        &[(
            "teacher",
            "resuming from the training state at epoch 1, batch 6",
        )],
        |run| {
            let cfg = run.join("config.toml");
            let good = std::fs::read_to_string(&cfg).unwrap();
            let lr = good
                .lines()
                .find(|l| l.starts_with("lr = "))
                .expect("the teacher's lr")
                .to_string();
            std::fs::write(&cfg, good.replacen(&lr, "lr = 0.5", 1)).unwrap();
            let o = dmtl(&["train", "--resume", s(run)]);
            let err = stderr(&o);
            assert!(!o.status.success());
            assert!(err.contains("state.toml"), "{err}");
            assert!(err.contains("lr"), "{err}");
            std::fs::write(&cfg, good).unwrap();
        },
    );
    // Stopped in the student's second epoch (the teacher is done and is loaded, not
    // retrained, on resume).
    let mid_student = stop_then_resume(
        tmp,
        &data,
        "mid-s",
        "",
        "stop_after_batches = 25",
        "dmtl",
        // The student stopped 25 batches in: in its second epoch (an epoch has fewer than 25
        // batches and more than 12).
        &[
            (
                "teacher",
                "the training state says it is done: loaded from it",
            ),
            (
                "dmtl",
                "resuming from the training state at epoch 2, batch ",
            ),
        ],
        // A run killed before its corpus tables were written gets them on resume.
        |run| std::fs::remove_file(run.join("users.parquet")).unwrap(),
    );
    for run in [&mid_teacher, &mid_student] {
        for c in CHECKPOINTS {
            assert!(
                checkpoint(run, c) == checkpoint(&whole, c),
                "{}: {c} differs from the uninterrupted run",
                run.display()
            );
        }
        assert_eq!(metrics_without_clock(run), expected, "{}", run.display());
        assert!(checkpoint(run, "users.parquet") == checkpoint(&whole, "users.parquet"));
    }

    // Not a run folder: refused by name.
    let o = dmtl(&["train", "--resume", s(&data)]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains(s(&data)) && err.contains("not a run folder"),
        "{err}"
    );
    let missing = tmp.join("nope");
    let o = dmtl(&["train", "--resume", s(&missing)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(s(&missing)), "{}", stderr(&o));
    // A killed run's build folder beside the missing one is named.
    let build = tmp.join(".nope.new-999");
    std::fs::create_dir(&build).unwrap();
    let o = dmtl(&["train", "--resume", s(&missing)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(s(&build)), "{}", stderr(&o));
}
