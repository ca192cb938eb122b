//! Mixed-precision training of the teacher (`precision = "bf16"` in `[train]`): the same
//! model trained in bf16 and in f32 on the small synthetic log reaches the same AUCs within
//! a stated margin, and the key is parsed and refused like every other.

mod common;

use common::synthetic;
use dmtl_teacher::{BodyConfig, Teacher, TeacherConfig, TrainConfig};
use dmtl_tensor::Precision;

/// The most the bf16-trained teacher's test AUCs (click and long read) may differ from the
/// f32-trained one's, per seed.
const MARGIN: f64 = 0.005;

fn config(seed: u64, precision: Precision) -> TeacherConfig {
    let body = "structure = \"mmoe\"\nn_experts = 3\nexpert_hidden = [64, 32]\ntower_hidden = [16]";
    TeacherConfig {
        body: BodyConfig::from_table(body.parse().unwrap()).unwrap(),
        seed,
        train: TrainConfig {
            lr: 3e-3,
            batch_size: 256,
            epochs: 8,
            patience: 0,
            seed,
            precision,
            ..TrainConfig::default()
        },
        ..TeacherConfig::default()
    }
}

/// Click and long-read AUC on the test rows, and the trained parameters.
fn train(seed: u64, precision: Precision) -> (f64, f64, Vec<f32>) {
    let (schema, vocabs, train, test) = synthetic(30_000, 10_000);
    let cfg = config(seed, precision);
    let mut teacher = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
    teacher.train(&train, None, &cfg.train, |_| {}).unwrap();
    let s = teacher.predict(&test).unwrap();
    let auc = |p: &[f32], y: &[f32]| dmtl_metrics::auc(p, y).unwrap();
    let params = teacher
        .store()
        .iter()
        .flat_map(|(_, p)| p.value.iter().copied().collect::<Vec<_>>())
        .collect();
    (
        auc(&s.p_ctr, &test.click),
        auc(&s.p_ctcvr, &test.long_read),
        params,
    )
}

/// In every seed the bf16-trained teacher's click and long-read AUCs are within [`MARGIN`]
/// of the f32-trained one's, and well above chance; its parameters differ from f32's (the
/// bf16 products ran). Skipped, with a printed line, without AVX-512 BF16.
#[test]
fn bf16_training_reaches_the_f32_aucs() {
    if !dmtl_tensor::bf16::available() {
        println!("bf16_training_reaches_the_f32_aucs: skipped: this CPU lacks AVX-512 BF16");
        return;
    }
    let runs: Vec<_> = [1u64, 2, 3]
        .iter()
        .map(|&seed| {
            (
                seed,
                train(seed, Precision::F32),
                train(seed, Precision::Bf16),
            )
        })
        .collect();
    for (seed, (c32, l32, _), (c16, l16, _)) in &runs {
        println!(
            "seed {seed}: click AUC f32 {c32:.4} bf16 {c16:.4}; long-read AUC f32 {l32:.4} bf16 {l16:.4}"
        );
    }
    for (seed, (c32, l32, p32), (c16, l16, p16)) in &runs {
        assert!(
            *c32 > 0.6 && *l32 > 0.6,
            "the f32 teacher learned little: {c32} {l32}"
        );
        assert!(
            (c16 - c32).abs() <= MARGIN,
            "seed {seed}: click AUC {c16} vs f32 {c32}"
        );
        assert!(
            (l16 - l32).abs() <= MARGIN,
            "seed {seed}: long-read AUC {l16} vs f32 {l32}"
        );
        assert_ne!(p16, p32, "seed {seed}: bf16 training gave f32's parameters");
    }
}

/// `precision` in the teacher's `[train]`: "f32" by default and not written then, "bf16"
/// written and read back, anything else refused naming the key.
#[test]
fn precision_key_round_trips_and_unknown_values_name_the_key() {
    let default = TeacherConfig::default();
    assert_eq!(default.train.precision, Precision::F32);
    assert!(!default.to_toml_string().contains("precision"));
    let cfg = TeacherConfig::from_toml_str("[train]\nprecision = \"bf16\"\n", "t.toml").unwrap();
    assert_eq!(cfg.train.precision, Precision::Bf16);
    let back = TeacherConfig::from_toml_str(&cfg.to_toml_string(), "t.toml").unwrap();
    assert_eq!(back, cfg);
    let err = TeacherConfig::from_toml_str("[train]\nprecision = \"fp16\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("precision") && err.contains("fp16"), "{err}");
}
