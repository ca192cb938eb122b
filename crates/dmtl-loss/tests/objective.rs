//! The objectives of the student and its baselines, and their configuration.

mod common;

use common::*;
use dmtl_loss::stable::probs_to_logits;
use dmtl_loss::{
    bce_with_logits, distill_mix, kl_distill, mse_log_duration, mse_logits, soft_bce,
    weighted_logistic, ClickBce, Distill, LogDurationMse, LongReadBce, Objective, Reduction,
    Targets, WeightedLogistic,
};
use dmtl_loss::{DistillKind, ObjectiveConfig};

const N: usize = 10;

struct Batch {
    x: Vec<f32>,
    click: Vec<f32>,
    duration: Vec<f32>,
    long_read: Vec<f32>,
    teacher: Vec<f32>,
    weights: Vec<f32>,
}

fn batch() -> Batch {
    let mut r = rng(31);
    let x = uniform(&mut r, N, -3.0, 3.0);
    let (click, duration, long_read) = clicks_and_reads(&mut r, N);
    let teacher = uniform(&mut r, N, 0.01, 0.99);
    let weights = uniform(&mut r, N, 0.5, 1.5);
    Batch {
        x,
        click,
        duration,
        long_read,
        teacher,
        weights,
    }
}

fn targets(b: &Batch) -> Targets<'_> {
    Targets {
        click: &b.click,
        duration: &b.duration,
        long_read: &b.long_read,
        teacher: Some(&b.teacher),
        weights: Some(&b.weights),
    }
}

/// The objective's loss and the reference built from the loss functions directly agree.
fn same(obj: &dyn Objective, b: &Batch, reference: &LossFn) {
    let (s, ids) = store_of(std::slice::from_ref(&b.x));
    let t = targets(b);
    let (l, g) = eval(&s, &ids, &|g, v| obj.loss(g, v[0], &t));
    let (r, gr) = eval(&s, &ids, reference);
    assert_close(obj.name(), l, r, 1e-6);
    for (a, b) in g[0].iter().zip(gr[0].iter()) {
        assert!((a - b).abs() < 1e-6, "{}: gradient {a} vs {b}", obj.name());
    }
}

#[test]
fn baselines_are_their_losses() {
    let b = batch();
    let w = Some(b.weights.as_slice());
    let m = Reduction::Mean;
    same(&ClickBce {}, &b, &|g, v| {
        bce_with_logits(g, v[0], &b.click, w, m)
    });
    same(&LongReadBce {}, &b, &|g, v| {
        bce_with_logits(g, v[0], &b.long_read, w, m)
    });
    same(&LogDurationMse {}, &b, &|g, v| {
        mse_log_duration(g, v[0], &b.duration, w, m)
    });
    same(&WeightedLogistic {}, &b, &|g, v| {
        weighted_logistic(g, v[0], &b.click, &b.duration, m)
    });
}

#[test]
fn distill_is_the_mix_of_its_soft_part_and_long_read_bce() {
    let b = batch();
    let w = Some(b.weights.as_slice());
    let m = Reduction::Mean;
    for alpha in [1.0f32, 0.6, 0.0] {
        for kind in [
            DistillKind::Soft,
            DistillKind::Kl { temperature: 2.0 },
            DistillKind::MseLogits,
        ] {
            let obj = Distill { alpha, loss: kind };
            same(&obj, &b, &|g, v| {
                let soft = match kind {
                    DistillKind::Soft => soft_bce(g, v[0], &b.teacher, w, m),
                    DistillKind::Kl { temperature } => {
                        kl_distill(g, v[0], &b.teacher, temperature, w, m)
                    }
                    DistillKind::MseLogits => {
                        mse_logits(g, v[0], &probs_to_logits(&b.teacher), w, m)
                    }
                };
                let hard = bce_with_logits(g, v[0], &b.long_read, w, m);
                distill_mix(g, soft, hard, alpha)
            });
        }
    }
}

#[test]
fn scores_are_probabilities_except_for_the_regression() {
    assert_eq!(LogDurationMse {}.score(3.5), 3.5);
    assert_eq!(ClickBce {}.score(0.0), 0.5);
    assert!((WeightedLogistic {}.score(2.0) - 0.880797).abs() < 1e-5);
}

#[test]
#[should_panic(expected = "objective `distill` needs the teacher's scores")]
fn distill_without_teacher_says_so() {
    let b = batch();
    let t = Targets {
        teacher: None,
        ..targets(&b)
    };
    let (s, ids) = store_of(std::slice::from_ref(&b.x));
    let obj = Distill::default();
    eval(&s, &ids, &|g, v| obj.loss(g, v[0], &t));
}

#[test]
fn configs_round_trip_and_build_the_named_objective() {
    let configs = [
        ObjectiveConfig::of(ClickBce {}),
        ObjectiveConfig::of(LongReadBce {}),
        ObjectiveConfig::of(LogDurationMse {}),
        ObjectiveConfig::of(WeightedLogistic {}),
        ObjectiveConfig::of(Distill {
            alpha: 0.7,
            loss: DistillKind::Kl { temperature: 3.0 },
        }),
    ];
    for cfg in configs {
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(
            serde_json::from_str::<ObjectiveConfig>(&json).unwrap(),
            cfg,
            "{json}"
        );
        assert!(json.contains(&format!("\"type\":\"{}\"", cfg.build().name())));
    }
    // Defaults: pure distillation by soft BCE.
    let cfg: ObjectiveConfig = toml::from_str("type = \"distill\"").unwrap();
    assert_eq!(cfg, ObjectiveConfig::default());
    let cfg: ObjectiveConfig =
        toml::from_str("type = \"distill\"\nloss = { type = \"mse_logits\" }").unwrap();
    assert_eq!(
        cfg,
        ObjectiveConfig::of(Distill {
            alpha: 1.0,
            loss: DistillKind::MseLogits
        })
    );
}

#[test]
fn the_default_objective_keeps_its_toml_shape() {
    #[derive(serde::Serialize)]
    struct Cfg {
        objective: ObjectiveConfig,
    }
    let text = toml::to_string(&Cfg {
        objective: ObjectiveConfig::default(),
    })
    .unwrap();
    assert_eq!(
        text,
        "[objective]\ntype = \"distill\"\nalpha = 1.0\n\n[objective.loss]\ntype = \"soft\"\n"
    );
    let text = toml::to_string(&Cfg {
        objective: ObjectiveConfig::of(Distill {
            alpha: 0.5,
            loss: DistillKind::Kl { temperature: 2.0 },
        }),
    })
    .unwrap();
    assert!(
        text.contains("[objective.loss]\ntype = \"kl\"\ntemperature = 2.0\n"),
        "{text}"
    );
}

#[test]
fn bad_configs_name_their_key() {
    let e = ObjectiveConfig::of(Distill {
        alpha: 1.5,
        loss: DistillKind::Soft,
    })
    .validate()
    .unwrap_err();
    assert_eq!(e.key(), "objective.alpha");
    let e = ObjectiveConfig::of(Distill {
        alpha: 0.5,
        loss: DistillKind::Kl { temperature: 0.0 },
    })
    .validate()
    .unwrap_err();
    assert_eq!(e.key(), "objective.loss.temperature");
    let table = |text: &str| text.parse::<toml::Table>().unwrap();
    let e = ObjectiveConfig::from_table(table("type = \"focus\"")).unwrap_err();
    assert_eq!(e.key(), "objective.type");
    assert!(e.to_string().contains("click_bce"), "{e}");
    let e = ObjectiveConfig::from_table(table("alpha = 0.5")).unwrap_err();
    assert_eq!(e.key(), "objective.type");
    let e = ObjectiveConfig::from_table(table("type = \"distill\"\nalfa = 1.0")).unwrap_err();
    assert!(e.to_string().contains("alfa"), "{e}");
    let e = ObjectiveConfig::from_table(table("type = \"click_bce\"\nalpha = 1.0")).unwrap_err();
    assert!(e.to_string().contains("alpha"), "{e}");
}
