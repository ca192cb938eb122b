//! Training mechanics: early stopping restores the best epoch, runs are deterministic, and bad
//! inputs are errors that say what is wrong.

use dmtl_student::synthetic::{random_dataset, schema_and_vocabs, tiny_fields};
use dmtl_student::train::ValidReport;
use dmtl_student::{ObjectiveConfig, Student, StudentConfig, TrainOptions};

fn config(objective: ObjectiveConfig, epochs: usize, patience: usize) -> StudentConfig {
    StudentConfig {
        user_layers: vec![16, 8],
        item_layers: vec![16, 8],
        objective,
        train: TrainOptions {
            lr: 2e-2,
            batch_size: 64,
            epochs,
            patience,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn early_stopping_keeps_the_best_epoch() {
    let fields = tiny_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 4);
    let train = random_dataset(&fields, 2_000, 1);
    let valid = random_dataset(&fields, 1_000, 2);
    let teacher: Vec<f32> = train.long_read.iter().map(|&z| 0.1 + 0.5 * z).collect();
    let run = || {
        let mut s =
            Student::new(config(ObjectiveConfig::default(), 8, 2), &schema, &vocabs).unwrap();
        let h = s
            .train(&train, Some(&valid), Some(&teacher), |_| {})
            .unwrap();
        (s, h)
    };
    let (student, history) = run();
    let aucs: Vec<f64> = history
        .epochs
        .iter()
        .map(|e| e.valid.as_ref().unwrap().long_read_auc.unwrap())
        .collect();
    let best = history.best_epoch.unwrap();
    assert!(
        aucs.iter().all(|&a| a <= aucs[best]),
        "{aucs:?}, best {best}"
    );
    // The model holds the best epoch's parameters, not the last one's.
    let now = ValidReport::compute(&student.score_dataset(&valid).unwrap(), &valid);
    assert_eq!(now.long_read_auc.unwrap(), aucs[best]);
    if history.stopped_early {
        assert_eq!(
            history.epochs.len(),
            best + 3,
            "patience 2 stops 2 epochs after the best"
        );
    }
    // Same seed, same threads: the same model.
    let (again, _) = run();
    assert_eq!(
        again.score_dataset(&valid).unwrap(),
        student.score_dataset(&valid).unwrap()
    );
}

#[test]
fn bad_inputs_are_named_errors() {
    let fields = tiny_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 4);
    let train = random_dataset(&fields, 100, 1);
    let mut s = Student::new(config(ObjectiveConfig::default(), 1, 0), &schema, &vocabs).unwrap();
    let e = s.train(&train, None, None, |_| {}).unwrap_err().to_string();
    assert!(e.contains("teacher"), "{e}");
    let e = s
        .train(&train, None, Some(&[0.5; 99]), |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("99 entries for 100"), "{e}");
    let mut bad = vec![0.5f32; 100];
    bad[17] = 1.5;
    let e = s
        .train(&train, None, Some(&bad), |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 17"), "{e}");

    let mut unlabelled = train.clone();
    unlabelled.click.clear();
    let mut b1 = Student::new(
        config(
            ObjectiveConfig::of(dmtl_student::objective::ClickBce {}),
            1,
            0,
        ),
        &schema,
        &vocabs,
    )
    .unwrap();
    let e = b1
        .train(&unlabelled, None, None, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("no labels"), "{e}");

    // Ids outside the tables (data encoded with other vocabularies) name the column and row.
    let mut wrong = train.clone();
    if let dmtl_data::FieldData::Ids(ids) = &mut wrong.fields[0] {
        ids[5] = 10_000;
    }
    let e = b1
        .train(&wrong, None, None, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("user_id") && e.contains("row 5"), "{e}");

    let e = StudentConfig::from_toml_str("user_layers = [8, 4]\nitem_layers = [8, 5]", "s.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("s.toml") && e.contains("item_layers"), "{e}");
    let e = StudentConfig::from_toml_str("[objective]\ntype = \"distill\"\nalpha = 2.0", "s.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("alpha"), "{e}");
}
