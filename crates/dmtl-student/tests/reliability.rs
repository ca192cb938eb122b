//! Reliability of the student: same seed gives the same bytes, and bad checkpoints (truncated,
//! other widths) are errors naming the file and the tensor (another model's: in dmtl-joint's
//! tests/checkpoints.rs, which has both models).

use std::path::Path;

use dmtl_data::{Dataset, Schema, Vocabularies};
use dmtl_student::synthetic::{random_dataset, schema_and_vocabs, tiny_fields};
use dmtl_student::{ObjectiveConfig, Student, StudentConfig, TrainOptions};

fn config(user: Vec<usize>, epochs: usize) -> StudentConfig {
    StudentConfig {
        user_layers: user,
        item_layers: vec![16, 8],
        objective: ObjectiveConfig::default(),
        train: TrainOptions {
            lr: 2e-2,
            batch_size: 64,
            epochs,
            patience: 0,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn setup() -> (Schema, Vocabularies, Dataset, Dataset, Vec<f32>) {
    let fields = tiny_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 4);
    let train = random_dataset(&fields, 1_500, 1);
    let valid = random_dataset(&fields, 500, 2);
    let teacher: Vec<f32> = train.long_read.iter().map(|&z| 0.1 + 0.5 * z).collect();
    (schema, vocabs, train, valid, teacher)
}

#[test]
fn same_seed_same_metrics_and_byte_identical_checkpoint() {
    let (schema, vocabs, train, valid, teacher) = setup();
    let dir = tempfile::tempdir().unwrap();
    let run = |cfg: StudentConfig, name: &str| {
        let mut s = Student::new(cfg, &schema, &vocabs).unwrap();
        let h = s
            .train(&train, Some(&valid), Some(&teacher), |_| {})
            .unwrap();
        let out = dir.path().join(name);
        s.save(&out).unwrap();
        (
            h,
            std::fs::read(out.join("student.safetensors")).unwrap(),
            std::fs::read(out.join("student.toml")).unwrap(),
        )
    };
    let cfg = config(vec![16, 8], 2);
    let (h1, b1, c1) = run(cfg.clone(), "a");
    let (h2, b2, c2) = run(cfg.clone(), "b");
    // Everything but the wall-clock timings.
    assert_eq!(h1.epochs.len(), h2.epochs.len());
    for (a, b) in h1.epochs.iter().zip(&h2.epochs) {
        assert_eq!(a.train_loss.to_bits(), b.train_loss.to_bits());
        assert_eq!(a.parts, b.parts);
        assert_eq!(a.valid, b.valid, "epoch {}", a.epoch);
    }
    assert_eq!(h1.best_epoch, h2.best_epoch);
    assert!(b1 == b2, "student.safetensors differs between two runs");
    assert_eq!(c1, c2);
    // Another seed changes the bytes, so the comparison above can fail.
    let mut other = cfg;
    other.seed += 1;
    let (_, b3, _) = run(other, "c");
    assert!(b3 != b1);
}

fn saved_student(dir: &Path, cfg: StudentConfig) -> (Schema, Vocabularies) {
    let (schema, vocabs, _, _, _) = setup();
    Student::new(cfg, &schema, &vocabs)
        .unwrap()
        .save(dir)
        .unwrap();
    (schema, vocabs)
}

#[test]
fn a_truncated_checkpoint_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (schema, vocabs) = saved_student(dir.path(), config(vec![16, 8], 1));
    let weights = dir.path().join("student.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    for cut in [0, 5, 30, bytes.len() / 2, bytes.len() - 3] {
        std::fs::write(&weights, &bytes[..cut]).unwrap();
        let err = Student::load(dir.path(), &schema, &vocabs)
            .unwrap_err()
            .to_string();
        assert!(err.contains("student.safetensors"), "cut {cut}: {err}");
    }
}

#[test]
fn a_checkpoint_with_other_widths_names_the_tensor_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (schema, vocabs) = saved_student(&a, config(vec![16, 8], 1));
    saved_student(&b, config(vec![12, 8], 1));
    std::fs::copy(b.join("student.safetensors"), a.join("student.safetensors")).unwrap();
    let err = Student::load(&a, &schema, &vocabs).unwrap_err().to_string();
    assert!(
        err.contains("student.safetensors") && err.contains("shape") && err.contains("12"),
        "{err}"
    );
    assert!(err.contains("user"), "the tensor is not named: {err}");
}

fn all_finite(s: &Student) -> bool {
    s.store()
        .iter()
        .all(|(_, p)| p.value.iter().all(|x| x.is_finite()))
}

#[test]
fn a_nan_label_is_an_error_naming_the_set_row_and_column() {
    let (schema, vocabs, mut train, valid, teacher) = setup();
    train.click[7] = f32::NAN;
    let mut s = Student::new(config(vec![16, 8], 1), &schema, &vocabs).unwrap();
    let err = s
        .train(&train, Some(&valid), Some(&teacher), |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("training set") && err.contains("row 7") && err.contains("`click`"),
        "{err}"
    );
    assert!(all_finite(&s));
}

#[test]
fn an_overflowing_learning_rate_is_an_error_naming_the_parameter_and_leaves_finite_weights() {
    let (schema, vocabs, train, _, teacher) = setup();
    for lr in [3e38f32, 1e30] {
        let mut cfg = config(vec![16, 8], 2);
        cfg.train.lr = lr;
        let mut s = Student::new(cfg, &schema, &vocabs).unwrap();
        let err = s
            .train(&train, None, Some(&teacher), |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("epoch 0, batch"), "lr {lr}: {err}");
        if lr > 1e38 {
            // Adam's first update is infinite: refused, naming the parameter.
            assert!(err.contains("update of `student."), "{err}");
        }
        assert!(all_finite(&s), "lr {lr}: non-finite weights");
    }
}

#[test]
fn the_students_trainer_refuses_a_non_finite_gradient() {
    // Teacher scores are checked up front, so poison the towers instead: an infinite weight
    // gives a finite loss only by luck, a NaN gradient always; either way the error names a
    // step and no update is applied.
    let (schema, vocabs, train, _, teacher) = setup();
    let mut s = Student::new(config(vec![16, 8], 1), &schema, &vocabs).unwrap();
    let (_, p) = s.store().iter().last().unwrap();
    let name = p.name.clone();
    let id = s.store().id(&name).unwrap();
    s.store_mut().value_mut(id)[[0, 0]] = f32::INFINITY;
    let err = s
        .train(&train, None, Some(&teacher), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("epoch 0, batch 0"), "{err}");
    assert!(
        err.contains("is not finite") || err.contains("the loss is"),
        "{err}"
    );
}
