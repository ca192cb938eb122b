//! Resuming the student's training (two-stage distillation; joint training: dmtl-joint's
//! tests/resume.rs): a run stopped mid-epoch or at an epoch boundary and resumed from its
//! state ends with the same bytes and metrics as a run never stopped.

use std::path::Path;

use dmtl_data::{Dataset, Schema, Vocabularies};
use dmtl_student::synthetic::{random_dataset, schema_and_vocabs, tiny_fields};
use dmtl_student::{
    ObjectiveConfig, Student, StudentConfig, StudentError, TrainError, TrainHistory, TrainOptions,
};
use dmtl_train::StateDir;

fn config() -> StudentConfig {
    StudentConfig {
        user_layers: vec![16, 8],
        item_layers: vec![16, 8],
        objective: ObjectiveConfig::default(),
        train: TrainOptions {
            lr: 2e-2,
            batch_size: 64,
            epochs: 3,
            patience: 1,
            checkpoint_every: 4,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn setup() -> (Schema, Vocabularies, Dataset, Dataset, Vec<f32>) {
    dmtl_tensor::threads::init(Some(2));
    let fields = tiny_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 4);
    let train = random_dataset(&fields, 1_500, 1);
    let valid = random_dataset(&fields, 500, 2);
    let teacher: Vec<f32> = train.long_read.iter().map(|&z| 0.1 + 0.5 * z).collect();
    (schema, vocabs, train, valid, teacher)
}

fn timeless(mut h: TrainHistory) -> TrainHistory {
    for e in &mut h.epochs {
        e.train_seconds = 0.0;
        e.impressions_per_second = 0.0;
    }
    h
}

/// Two-stage distillation in pieces, each `Some(n)` stopping after `n` batches and the next
/// resuming with a student built afresh.
fn distill(dir: &Path, stops: &[Option<usize>]) -> (TrainHistory, Vec<u8>) {
    let (schema, vocabs, train, valid, teacher) = setup();
    for (k, stop) in stops.iter().enumerate() {
        let mut cfg = config();
        cfg.train.stop_after_batches = *stop;
        let mut s = Student::new(cfg, &schema, &vocabs).unwrap();
        let state = if k == 0 {
            StateDir::fresh(dir)
        } else {
            StateDir::resume(dir)
        };
        match s.train_from(&train, Some(&valid), Some(&teacher), Some(&state), |_| {}) {
            Ok(h) => return (timeless(h), s.store().to_safetensors_bytes()),
            Err(StudentError::Train(TrainError::Interrupted { .. })) => assert!(stop.is_some()),
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the last piece must run to the end")
}

#[test]
fn distillation_stopped_and_resumed_ends_with_the_same_bytes_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (h, bytes) = distill(&dir.path().join("whole"), &[None]);
    assert!(h.best_epoch.is_some());
    // 1,500 rows in batches of 64: 24 batches per epoch.
    for (name, stops) in [
        ("mid-epoch", vec![Some(9), None]),
        ("twice", vec![Some(4), Some(25), None]),
        ("epoch-boundary", vec![Some(24), None]),
    ] {
        let (h2, b2) = distill(&dir.path().join(name), &stops);
        assert_eq!(h2, h, "{name}: histories differ");
        assert!(b2 == bytes, "{name}: the parameters differ");
    }
    // A student's state is not a joint trainer's, nor of other widths.
    let state = dir.path().join("twice");
    let (schema, vocabs, train, _, teacher) = setup();
    let mut cfg = config();
    cfg.item_layers = vec![12, 8];
    let mut s = Student::new(cfg, &schema, &vocabs).unwrap();
    let err = s
        .train_from(
            &train,
            None,
            Some(&teacher),
            Some(&StateDir::resume(&state)),
            |_| {},
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("state.toml") && err.contains("config.item_layers"),
        "{err}"
    );
}
