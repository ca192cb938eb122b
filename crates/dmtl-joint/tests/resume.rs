//! Resuming joint training: a run stopped mid-epoch and at an epoch boundary and resumed
//! from its state ends with the same bytes and metrics as a run never stopped.

mod common;

use std::path::Path;

use common::tiny_teacher;
use dmtl_joint::JointTrainer;
use dmtl_student::synthetic::{resume_workload, train_in_pieces};
use dmtl_student::{Student, TrainHistory};
use dmtl_teacher::Teacher;

/// Joint training in pieces, each `Some(n)` stopping after `n` batches and the next resuming
/// with both models built afresh; returns the history and the teacher's and student's bytes.
fn joint(dir: &Path, stops: &[Option<usize>]) -> (TrainHistory, Vec<u8>, Vec<u8>) {
    let w = resume_workload();
    let tcfg = tiny_teacher();
    train_in_pieces(dir, stops, |cfg, state| {
        let teacher = Teacher::new(tcfg.clone(), &w.schema, &w.vocabs).unwrap();
        let student = Student::new(cfg, &w.schema, &w.vocabs).unwrap();
        let mut j = JointTrainer::new(teacher, student, &w.schema, &w.vocabs).unwrap();
        let h = j.train_from(&w.train, Some(&w.valid), Some(state), |_| {})?;
        let (t, s) = j.into_parts();
        Ok((
            h.without_timings(),
            t.store().to_safetensors_bytes(),
            s.store().to_safetensors_bytes(),
        ))
    })
}

#[test]
fn joint_training_stopped_and_resumed_ends_with_the_same_bytes_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let whole = joint(&dir.path().join("whole"), &[None]);
    let pieces = joint(&dir.path().join("pieces"), &[Some(13), Some(24), None]);
    assert_eq!(pieces.0, whole.0);
    assert!(pieces.1 == whole.1, "teacher parameters differ");
    assert!(pieces.2 == whole.2, "student parameters differ");
}
