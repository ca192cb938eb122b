//! The MMoE teacher on the feed simulator (test scale), held out by the schema's time split:
//! both tasks learned, better than logistic regression on the same features, gates in use.

mod common;

use common::LogisticRegression;
use dmtl_data::sim::{SimConfig, Simulator};
use dmtl_data::{split_train_test, Dataset, Schema, Vocabularies};
use dmtl_teacher::{Teacher, TeacherConfig, TrainConfig};

#[test]
fn mmoe_teacher_learns_the_simulator_better_than_logistic_regression() {
    // The test-scale world with more impressions: at 50,000 training rows the ids are seen
    // too rarely for any model with interactions to beat one without.
    let sim = Simulator::new(SimConfig {
        n_impressions: 200_000,
        ..SimConfig::tiny()
    });
    let schema = Schema::from_toml_str(&sim.schema_toml(), "simulator schema").unwrap();
    let raw = sim.impressions();
    let (train_raw, test_raw) = split_train_test(&raw, &schema, 0).unwrap();
    let vocabs = Vocabularies::build(&schema, &train_raw).unwrap();
    let train = Dataset::encode(&schema, &train_raw, &vocabs).unwrap();
    let test = Dataset::encode(&schema, &test_raw, &vocabs).unwrap();

    let cfg = TeacherConfig {
        body: dmtl_teacher::MmoeConfig {
            n_experts: 4,
            expert_hidden: vec![64, 32],
            tower_hidden: vec![16],
        }
        .into(),
        seed: 1,
        train: TrainConfig {
            lr: 2e-3,
            batch_size: 512,
            epochs: 3,
            patience: 2,
            ..TrainConfig::default()
        },
        ..TeacherConfig::default()
    };
    let mut teacher = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    let history = teacher
        .train(&train, Some(&test), &cfg.train, |_| {})
        .unwrap();
    let s = teacher.predict(&test).unwrap();

    let mut lr = LogisticRegression::new(&schema, &vocabs);
    lr.train(&train, cfg.train.epochs, 1e-2, 512);
    let b = lr.predict(&test);

    let auc = |s: &[f32], y: &[f32]| dmtl_metrics::auc(s, y).unwrap();
    let (t_click, t_long) = (auc(&s.p_ctr, &test.click), auc(&s.p_ctcvr, &test.long_read));
    let (b_click, b_long) = (auc(&b.p_ctr, &test.click), auc(&b.p_ctcvr, &test.long_read));
    for e in &history.epochs {
        eprintln!("{e:?}");
    }
    eprintln!(
        "teacher click {t_click:.4} long {t_long:.4}; LR click {b_click:.4} long {b_long:.4}"
    );
    assert!(
        t_click > 0.6 && t_long > 0.6,
        "teacher AUCs {t_click} {t_long}"
    );
    assert!(
        t_click > b_click + 0.01,
        "click AUC {t_click} vs LR {b_click}"
    );
    assert!(
        t_long > b_long + 0.01,
        "long-read AUC {t_long} vs LR {b_long}"
    );
    // The two tasks are not one label: pCTR ranks clicks better than long reads do.
    assert!(t_click != t_long);

    let batch = test.batch(&(0..2000).collect::<Vec<u32>>());
    let gates = teacher.gate_weights(&batch).unwrap().unwrap();
    for gate in &gates {
        let dev = gate.iter().map(|&x| (x - 0.25).abs()).sum::<f32>() / gate.len() as f32;
        assert!(dev > 0.02, "gate stays uniform: mean |g - 1/4| = {dev}");
    }
}
