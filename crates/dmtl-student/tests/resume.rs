//! Resuming the student's training (two-stage distillation; joint training: dmtl-joint's
//! tests/resume.rs): a run stopped mid-epoch or at an epoch boundary and resumed from its
//! state ends with the same bytes and metrics as a run never stopped.

use std::path::Path;

use dmtl_student::synthetic::{resume_config, resume_workload, train_in_pieces};
use dmtl_student::{Student, TrainHistory};
use dmtl_train::StateDir;

/// Two-stage distillation in pieces, each `Some(n)` stopping after `n` batches and the next
/// resuming with a student built afresh.
fn distill(dir: &Path, stops: &[Option<usize>]) -> (TrainHistory, Vec<u8>) {
    let w = resume_workload();
    train_in_pieces(dir, stops, |cfg, state| {
        let mut s = Student::new(cfg, &w.schema, &w.vocabs).unwrap();
        let h = s.train_from(
            &w.train,
            Some(&w.valid),
            Some(&w.teacher),
            Some(state),
            |_| {},
        )?;
        Ok((h.without_timings(), s.store().to_safetensors_bytes()))
    })
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
    let w = resume_workload();
    let mut cfg = resume_config();
    cfg.item_layers = vec![12, 8];
    let mut s = Student::new(cfg, &w.schema, &w.vocabs).unwrap();
    let err = s
        .train_from(
            &w.train,
            None,
            Some(&w.teacher),
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
