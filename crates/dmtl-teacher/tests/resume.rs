//! Resuming the teacher's training: a run stopped mid-epoch or at an epoch boundary and
//! resumed from its state ends with the same bytes and metrics as a run never stopped.

mod common;

use std::path::Path;

use common::synthetic;
use dmtl_data::Dataset;
use dmtl_teacher::train::state::StateDir;
use dmtl_teacher::{Teacher, TeacherConfig, TeacherError, TrainConfig, TrainError, TrainHistory};

fn config() -> TeacherConfig {
    TeacherConfig {
        body: dmtl_teacher::MmoeConfig {
            n_experts: 2,
            expert_hidden: vec![16, 8],
            tower_hidden: vec![8],
        }
        .into(),
        seed: 9,
        train: TrainConfig {
            lr: 5e-3,
            batch_size: 128,
            epochs: 3,
            patience: 1,
            checkpoint_every: 5,
            ..TrainConfig::default()
        },
        ..TeacherConfig::default()
    }
}

/// Trains in pieces: each `Some(n)` stops after `n` batches, then the next piece resumes
/// from the state in `dir` with a teacher built afresh (as a new process would).
fn run(dir: &Path, stops: &[Option<usize>]) -> (TrainHistory, Vec<u8>) {
    dmtl_tensor::threads::init(Some(2));
    let (schema, vocabs, train, valid) = synthetic(3_000, 600);
    let cfg = config();
    for (k, stop) in stops.iter().enumerate() {
        let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
        let mut opts = cfg.train.clone();
        opts.stop_after_batches = *stop;
        let state = if k == 0 {
            StateDir::fresh(dir)
        } else {
            StateDir::resume(dir)
        };
        match t.train_from(&train, Some(&valid), &opts, Some(&state), |_| {}) {
            Ok(h) => {
                assert!(stop.is_none() || k + 1 == stops.len(), "finished early");
                return (h.without_timings(), t.store().to_safetensors_bytes());
            }
            Err(TeacherError::Train(TrainError::Interrupted { .. })) => assert!(stop.is_some()),
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the last piece must run to the end")
}

/// Starts a run into `dir` and stops it after `n` batches.
fn start_and_stop(dir: &Path, n: usize) {
    dmtl_tensor::threads::init(Some(2));
    let (schema, vocabs, train, valid) = synthetic(3_000, 600);
    let cfg = config();
    let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let mut opts = cfg.train.clone();
    opts.stop_after_batches = Some(n);
    let r = t.train_from(
        &train,
        Some(&valid),
        &opts,
        Some(&StateDir::fresh(dir)),
        |_| {},
    );
    assert!(
        matches!(r, Err(TeacherError::Train(TrainError::Interrupted { .. }))),
        "{r:?}"
    );
}

/// Resumes training `t` from the state in `state`, which must fail: the error's message.
fn resume_error(t: &mut Teacher, train: &Dataset, cfg: &TeacherConfig, state: &Path) -> String {
    t.train_from(
        train,
        None,
        &cfg.train,
        Some(&StateDir::resume(state)),
        |_| {},
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn stopped_and_resumed_runs_end_with_the_same_bytes_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (h, bytes) = run(&dir.path().join("whole"), &[None]);
    assert!(h.epochs.iter().all(|e| e.valid.is_some()));
    assert!(h.best_epoch.is_some());
    // 3,000 rows in batches of 128: 24 batches per epoch.
    for (name, stops) in [
        ("mid-epoch", vec![Some(10), None]),
        (
            "mid-epoch twice, across an epoch end",
            vec![Some(7), Some(30), None],
        ),
        ("at an epoch boundary", vec![Some(24), None]),
        (
            "right after a checkpoint_every write",
            vec![Some(5), Some(24), None],
        ),
    ] {
        let (h2, b2) = run(&dir.path().join(name.replace(' ', "_")), &stops);
        assert_eq!(h2, h, "{name}: histories differ");
        assert!(b2 == bytes, "{name}: the parameters differ");
    }
    // The comparison can fail: another seed gives other bytes.
    let (schema, vocabs, train, valid) = synthetic(3_000, 600);
    let mut other = config();
    other.train.seed += 1;
    let mut t = Teacher::new(other.clone(), &schema, &vocabs).unwrap();
    t.train(&train, Some(&valid), &other.train, |_| {}).unwrap();
    assert!(t.store().to_safetensors_bytes() != bytes);
}

#[test]
fn the_state_directory_holds_one_consistent_generation() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    start_and_stop(&state, 12);
    let mut names: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // Written at batches 5 and 10 and at the stop (12): only the last generation is left, and
    // no temporary file. No epoch ended yet, so there is no best-parameters file.
    assert_eq!(
        names,
        [
            "adam-000003.safetensors",
            "params-000003.safetensors",
            "state.toml"
        ]
    );
    let manifest = std::fs::read_to_string(state.join("state.toml")).unwrap();
    assert!(
        manifest.contains("format = 1") && manifest.contains("batch = 12"),
        "{manifest}"
    );
}

#[test]
fn a_state_of_another_configuration_or_model_names_the_file_and_key() {
    dmtl_tensor::threads::init(Some(2));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    start_and_stop(&state, 3);
    let (schema, vocabs, train, _) = synthetic(3_000, 600);
    // Another learning rate.
    let mut cfg = config();
    cfg.train.lr = 1e-2;
    let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let err = resume_error(&mut t, &train, &cfg, &state);
    assert!(
        err.contains("state.toml") && err.contains("config.train.lr"),
        "{err}"
    );
    // Other widths: named by the config key before any tensor is read.
    let mut wide = config();
    wide.body = dmtl_teacher::MmoeConfig {
        n_experts: 2,
        expert_hidden: vec![24, 8],
        tower_hidden: vec![8],
    }
    .into();
    let mut t = Teacher::new(wide.clone(), &schema, &vocabs).unwrap();
    let before = t.store().to_safetensors_bytes();
    let err = resume_error(&mut t, &train, &wide, &state);
    assert!(err.contains("config.expert_hidden"), "{err}");
    assert!(
        t.store().to_safetensors_bytes() == before,
        "a refused state changed the model"
    );
    // A tensor file that does not fit (a copied file): the error names it and the tensor.
    let params = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("params-")
        })
        .unwrap();
    let other = Teacher::new(wide.clone(), &schema, &vocabs).unwrap();
    other.store().save(&params).unwrap();
    let cfg = config();
    let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let err = resume_error(&mut t, &train, &cfg, &state);
    assert!(
        err.contains("params-") && err.contains("teacher.expert") && err.contains("shape"),
        "{err}"
    );
    // A manifest of another model.
    let text = std::fs::read_to_string(state.join("state.toml"))
        .unwrap()
        .replace("model = \"teacher\"", "model = \"student\"");
    std::fs::write(state.join("state.toml"), text).unwrap();
    let err = resume_error(&mut t, &train, &cfg, &state);
    assert!(
        err.contains("state.toml") && err.contains("`model`"),
        "{err}"
    );
}

/// The epoch reports keep the layout states were written in before the loop was shared: the
/// loss parts sit beside `train_loss` in each epoch's table, so older states still resume.
#[test]
fn a_history_is_written_in_the_states_layout() {
    use dmtl_teacher::{EpochReport, TeacherLosses, ValidReport};
    let history = TrainHistory {
        epochs: vec![EpochReport {
            epoch: 0,
            train_loss: 0.75,
            parts: TeacherLosses {
                train_ctr_loss: 0.5,
                train_ctcvr_loss: 0.25,
            },
            valid: Some(ValidReport {
                click_auc: Some(0.625),
                long_read_auc: None,
                cvr_auc_on_clicks: Some(0.5),
                click_logloss: 0.5,
                long_read_logloss: 0.25,
            }),
            train_seconds: 2.0,
            impressions_per_second: 100.0,
            skipped_batches: 1,
            comm_seconds: None,
        }],
        best_epoch: Some(0),
        stopped_early: false,
    };
    let text = toml::to_string(&toml::Value::try_from(&history).unwrap()).unwrap();
    // Keys in the order the types declare them (toml's tables keep their order).
    let written = "best_epoch = 0\nstopped_early = false\n\n[[epochs]]\nepoch = 0\n\
        train_loss = 0.75\ntrain_ctr_loss = 0.5\ntrain_ctcvr_loss = 0.25\n\
        train_seconds = 2.0\nimpressions_per_second = 100.0\nskipped_batches = 1\n\n\
        [epochs.valid]\nclick_auc = 0.625\ncvr_auc_on_clicks = 0.5\nclick_logloss = 0.5\n\
        long_read_logloss = 0.25\n";
    assert_eq!(text, written);
    let back: TrainHistory = toml::from_str(written).unwrap();
    assert_eq!(back, history);
    // A state written before `skipped_batches` existed still reads, as 0.
    let older = written.replace("skipped_batches = 1\n", "");
    let back: TrainHistory = toml::from_str(&older).unwrap();
    assert_eq!(back.epochs[0].skipped_batches, 0);
}
