//! The teacher on a small synthetic log: what it learns, what it outputs, how it is saved.

mod common;

use common::{synthetic, LogisticRegression};
use dmtl_data::{Dataset, FieldData};
use dmtl_teacher::{BodyConfig, Teacher, TeacherConfig, TeacherError, TeacherScores, TrainConfig};

/// Small shapes so each training run takes well under a second.
fn small(structure: &str) -> TeacherConfig {
    let body = format!(
        "structure = \"{structure}\"\nn_experts = 3\nexpert_hidden = [32, 16]\ntower_hidden = [8]"
    );
    TeacherConfig {
        body: BodyConfig::from_table(body.parse().unwrap()).unwrap(),
        seed: 5,
        train: TrainConfig {
            lr: 3e-3,
            batch_size: 256,
            epochs: 4,
            patience: 0,
            ..TrainConfig::default()
        },
        ..TeacherConfig::default()
    }
}

fn trained(structure: &str) -> (Teacher, Dataset, dmtl_teacher::TrainHistory) {
    let (schema, vocabs, train, test) = synthetic(30_000, 8_000);
    let cfg = small(structure);
    let mut teacher = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let history = teacher
        .train(&train, Some(&test), &cfg.train, |_| {})
        .unwrap();
    (teacher, test, history)
}

fn auc(s: &[f32], y: &[f32]) -> f64 {
    dmtl_metrics::auc(s, y).unwrap()
}

#[test]
fn mmoe_beats_logistic_regression_on_both_tasks_and_its_gates_differ() {
    let (schema, vocabs, train, test) = synthetic(30_000, 8_000);
    let cfg = small("mmoe");
    let mut teacher = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let history = teacher
        .train(&train, Some(&test), &cfg.train, |_| {})
        .unwrap();
    let s = teacher.predict(&test).unwrap();

    let mut lr = LogisticRegression::new(&schema, &vocabs);
    lr.train(&train, cfg.train.epochs, 1e-2, 256);
    let b = lr.predict(&test);

    let (t_click, t_long) = (auc(&s.p_ctr, &test.click), auc(&s.p_ctcvr, &test.long_read));
    let (b_click, b_long) = (auc(&b.p_ctr, &test.click), auc(&b.p_ctcvr, &test.long_read));
    eprintln!(
        "teacher click {t_click:.4} long {t_long:.4}; LR click {b_click:.4} long {b_long:.4}"
    );
    assert!(t_click > 0.6 && t_long > 0.6, "{t_click} {t_long}");
    assert!(
        t_click > b_click + 0.01,
        "click AUC {t_click} vs LR {b_click}"
    );
    assert!(
        t_long > b_long + 0.01,
        "long-read AUC {t_long} vs LR {b_long}"
    );

    // The teacher holds the best epoch's parameters: its AUC is the one predicted now.
    let best = history.best_epoch.unwrap();
    let best_auc = history.epochs[best]
        .valid
        .as_ref()
        .unwrap()
        .long_read_auc
        .unwrap();
    assert!(
        (best_auc - t_long).abs() < 1e-12,
        "restored epoch {best}: {best_auc} vs {t_long}"
    );

    // pCVR never saw a label, yet it ranks long reads among clicks.
    let cvr_auc = history.epochs[best]
        .valid
        .as_ref()
        .unwrap()
        .cvr_auc_on_clicks
        .unwrap();
    assert!(cvr_auc > 0.6, "pCVR AUC on clicked rows {cvr_auc}");

    // Gates: rows sum to 1, and they moved away from uniform and apart between tasks.
    let batch = test.batch(&(0..2000).collect::<Vec<u32>>());
    let gates = teacher.gate_weights(&batch).unwrap().unwrap();
    assert_eq!(gates.len(), 2);
    let n_experts = cfg.body.params()["n_experts"].as_integer().unwrap() as usize;
    let n = n_experts as f32;
    for gate in &gates {
        assert_eq!(gate.ncols(), n_experts);
        for row in gate.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-5);
        }
        let dev = gate.iter().map(|&x| (x - 1.0 / n).abs()).sum::<f32>() / gate.len() as f32;
        assert!(dev > 0.02, "gate stays uniform: mean |g - 1/n| = {dev}");
    }
    let apart = (&gates[0] - &gates[1]).mapv(f32::abs).mean().unwrap();
    assert!(apart > 0.01, "both tasks use the same mixture: {apart}");
}

#[test]
fn tasks_are_distinct_and_p_ctcvr_is_the_product_of_probabilities() {
    let (teacher, test, history) = trained("shared_bottom");
    let s = teacher.predict(&test).unwrap();
    for i in 0..s.len() {
        assert_eq!(s.p_ctcvr[i], s.p_ctr[i] * s.p_cvr[i], "row {i}");
        assert!(s.p_ctr[i] > 0.0 && s.p_ctr[i] < 1.0 && s.p_cvr[i] > 0.0 && s.p_cvr[i] < 1.0);
    }
    // Click-bait is clicked more and read less: the two heads must rank differently, and each
    // must rank its own label better than the other head's does.
    let v = history.epochs[history.best_epoch.unwrap()]
        .valid
        .clone()
        .unwrap();
    let click_by_ctr = v.click_auc.unwrap();
    let click_by_cvr = auc(&s.p_cvr, &test.click);
    assert!(
        click_by_ctr > click_by_cvr + 0.05,
        "{click_by_ctr} vs {click_by_cvr}"
    );
    let clicked: Vec<usize> = (0..test.n_rows).filter(|&r| test.click[r] > 0.5).collect();
    let z: Vec<f32> = clicked.iter().map(|&r| test.long_read[r]).collect();
    let cvr_on_clicks: Vec<f32> = clicked.iter().map(|&r| s.p_cvr[r]).collect();
    let ctr_on_clicks: Vec<f32> = clicked.iter().map(|&r| s.p_ctr[r]).collect();
    assert!(auc(&cvr_on_clicks, &z) > auc(&ctr_on_clicks, &z) + 0.05);
    // A shared bottom has no gates.
    assert!(teacher
        .gate_weights(&test.batch(&[0, 1]))
        .unwrap()
        .is_none());
}

#[test]
fn loss_goes_down_and_training_is_deterministic() {
    let (schema, vocabs, train, _) = synthetic(12_000, 100);
    let mut cfg = small("mmoe");
    cfg.train.epochs = 3;
    cfg.train.lr = 1e-2;
    let run = || {
        let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
        let mut batch_losses = Vec::new();
        let h = t
            .train(&train, None, &cfg.train, |e| {
                if let dmtl_teacher::TrainEvent::Batch { loss, .. } = e {
                    batch_losses.push(*loss)
                }
            })
            .unwrap();
        (t.predict(&train).unwrap(), h, batch_losses)
    };
    let (s1, h1, losses) = run();
    let (s2, h2, _) = run();
    assert_eq!(s1, s2, "same seed, same thread count, different scores");
    assert_eq!(h1.best_epoch, None);
    let l: Vec<f64> = h1.epochs.iter().map(|e| e.train_loss).collect();
    assert!(l[2] < l[1] && l[1] < l[0], "epoch losses {l:?}");
    // The first batch starts near 2 ln 2 (both heads near 1/2) and training lowers it a lot.
    assert!(
        (losses[0] - 2.0 * std::f32::consts::LN_2).abs() < 0.3,
        "{}",
        losses[0]
    );
    // It ends below the best constant prediction (the base rates), so it learned more than
    // the biases.
    let entropy = |y: &[f32]| {
        let p = y.iter().sum::<f32>() as f64 / y.len() as f64;
        -(p * p.ln() + (1.0 - p) * (1.0 - p).ln())
    };
    let constant = entropy(&train.click) + entropy(&train.long_read);
    assert!(
        l[2] < constant - 0.02,
        "{l:?} vs constant predictor {constant}"
    );
    for (a, b) in h1.epochs.iter().zip(&h2.epochs) {
        assert_eq!(a.train_loss, b.train_loss);
    }
}

#[test]
fn save_load_round_trip_and_checkpoint_errors() {
    let (schema, vocabs, train, test) = synthetic(3_000, 500);
    let mut cfg = small("mmoe");
    cfg.train.epochs = 1;
    let mut teacher = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    teacher.train(&train, None, &cfg.train, |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("teacher");
    teacher.save(&ckpt).unwrap();
    let loaded = Teacher::load(&ckpt, &schema, &vocabs).unwrap();
    assert_eq!(loaded.config(), teacher.config());
    assert_eq!(
        loaded.predict(&test).unwrap(),
        teacher.predict(&test).unwrap()
    );
    // A fresh teacher with the same seed differs: the round trip really loaded the weights.
    let fresh = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    assert_ne!(
        fresh.predict(&test).unwrap(),
        teacher.predict(&test).unwrap()
    );

    // No checkpoint: the error names teacher.toml.
    let err = Teacher::load(&dir.path().join("nothing"), &schema, &vocabs).unwrap_err();
    assert!(
        matches!(err, TeacherError::Io { .. }) && err.to_string().contains("teacher.toml"),
        "{err}"
    );

    // A truncated weights file.
    let weights = ckpt.join("teacher.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = Teacher::load(&ckpt, &schema, &vocabs).unwrap_err();
    assert!(err.to_string().contains("teacher.safetensors"), "{err}");
    std::fs::write(&weights, &bytes).unwrap();

    // Another model's config over these weights: the error names a tensor.
    let mut other = cfg.clone();
    other.body = small("shared_bottom").body;
    std::fs::write(ckpt.join("teacher.toml"), other.to_toml_string()).unwrap();
    let err = Teacher::load(&ckpt, &schema, &vocabs)
        .unwrap_err()
        .to_string();
    assert!(err.contains("teacher.bottom.layer.0.weight"), "{err}");

    // A bad key in the config names it.
    std::fs::write(ckpt.join("teacher.toml"), "n_expert = 3\n").unwrap();
    let err = Teacher::load(&ckpt, &schema, &vocabs)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("n_expert") && err.contains("teacher.toml"),
        "{err}"
    );
}

#[test]
fn data_that_does_not_fit_is_an_error_naming_column_and_row() {
    let (schema, vocabs, _, mut test) = synthetic(2_000, 300);
    let teacher = Teacher::new(small("mmoe"), &schema, &vocabs).unwrap();
    let mut unlabelled = test.clone();
    unlabelled.click.clear();
    let vocab = vocabs.table_size("item_id").unwrap() as u32;
    if let FieldData::Ids(ids) = &mut test.fields[3] {
        ids[17] = vocab + 5;
    }
    let err = teacher.predict(&test).unwrap_err().to_string();
    assert!(err.contains("item_id") && err.contains("row 17"), "{err}");

    let mut t = teacher.clone();
    let err = t
        .train(&unlabelled, None, &TrainConfig::default(), |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("no labels"), "{err}");
}

#[test]
fn scores_are_stable_at_extreme_logits() {
    let s = TeacherScores::from_logits(&[100.0, -100.0, 0.0], &[-100.0, 100.0, 0.0]);
    assert_eq!(s.p_ctr[0], 1.0);
    assert!(s.p_ctr[1] > 0.0 && s.p_ctr[1] < 1e-40);
    assert_eq!(s.p_ctcvr[2], 0.25);
    assert!(s
        .p_ctcvr
        .iter()
        .all(|p| p.is_finite() && (0.0..=1.0).contains(p)));
}

#[test]
fn the_existing_structures_keep_their_teacher_toml() {
    let head = |structure: &str| {
        format!(
            "structure = \"{structure}\"\nn_experts = 4\nexpert_hidden = [256, 128]\n\
             tower_hidden = [64]\nctcvr_weight = 1.0\nseed = 2021\n\n[embedding]\n"
        )
    };
    let mmoe = TeacherConfig::default().to_toml_string();
    assert!(mmoe.starts_with(&head("mmoe")), "{mmoe}");
    let text = head("shared_bottom");
    let cfg = TeacherConfig::from_toml_str(&text, "t").unwrap();
    assert_eq!(cfg.body.name(), "shared_bottom");
    assert!(cfg.to_toml_string().starts_with(&text));
}
