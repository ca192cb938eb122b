//! Resuming joint training: a run stopped mid-epoch and at an epoch boundary and resumed
//! from its state ends with the same bytes and metrics as a run never stopped.

use std::path::Path;

use dmtl_data::{Dataset, Schema, Vocabularies};
use dmtl_joint::JointTrainer;
use dmtl_student::synthetic::{random_dataset, schema_and_vocabs, tiny_fields};
use dmtl_student::{
    ObjectiveConfig, Student, StudentConfig, StudentError, TrainError, TrainHistory, TrainOptions,
};
use dmtl_teacher::{Teacher, TeacherConfig};
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

fn joint(dir: &Path, stops: &[Option<usize>]) -> (TrainHistory, Vec<u8>, Vec<u8>) {
    let (schema, vocabs, train, valid, _) = setup();
    let tcfg = TeacherConfig {
        body: dmtl_teacher::MmoeConfig {
            n_experts: 2,
            expert_hidden: vec![8],
            tower_hidden: vec![4],
        }
        .into(),
        ..TeacherConfig::default()
    };
    for (k, stop) in stops.iter().enumerate() {
        let mut cfg = config();
        cfg.train.stop_after_batches = *stop;
        let teacher = Teacher::new(tcfg.clone(), &schema, &vocabs).unwrap();
        let student = Student::new(cfg, &schema, &vocabs).unwrap();
        let mut j = JointTrainer::new(teacher, student, &schema, &vocabs).unwrap();
        let state = if k == 0 {
            StateDir::fresh(dir)
        } else {
            StateDir::resume(dir)
        };
        match j.train_from(&train, Some(&valid), Some(&state), |_| {}) {
            Ok(h) => {
                let (t, s) = j.into_parts();
                return (
                    timeless(h),
                    t.store().to_safetensors_bytes(),
                    s.store().to_safetensors_bytes(),
                );
            }
            Err(StudentError::Train(TrainError::Interrupted { .. })) => assert!(stop.is_some()),
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the last piece must run to the end")
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
