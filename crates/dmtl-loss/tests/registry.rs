//! Properties every registered objective must have, run over [`OBJECTIVES`]: an objective
//! registered there is tested here without a line of its own.

mod common;

use common::*;
use dmtl_loss::{ObjectiveConfig, Targets, OBJECTIVES};

const N: usize = 12;

struct Labels {
    click: Vec<f32>,
    duration: Vec<f32>,
    long_read: Vec<f32>,
    teacher: Vec<f32>,
    weights: Vec<f32>,
}

fn labels() -> Labels {
    let mut r = rng(5);
    let (click, duration, long_read) = clicks_and_reads(&mut r, N);
    Labels {
        click,
        duration,
        long_read,
        teacher: uniform(&mut r, N, 0.01, 0.99),
        weights: uniform(&mut r, N, 0.5, 1.5),
    }
}

fn targets(l: &Labels, weighted: bool) -> Targets<'_> {
    Targets {
        click: &l.click,
        duration: &l.duration,
        long_read: &l.long_read,
        teacher: Some(&l.teacher),
        weights: weighted.then_some(&l.weights[..]),
    }
}

/// Every configuration of every registered objective, named.
fn every_config() -> Vec<(String, ObjectiveConfig)> {
    assert!(OBJECTIVES.entries.len() >= 5, "the built-in objectives");
    OBJECTIVES
        .entries
        .iter()
        .flat_map(|e| {
            e.test_configs()
                .into_iter()
                .enumerate()
                .map(move |(i, c)| (format!("{} #{i}", e.name), c))
        })
        .collect()
}

#[test]
fn registered_names_are_unique_and_each_objective_says_its_own() {
    for (i, e) in OBJECTIVES.entries.iter().enumerate() {
        assert!(
            OBJECTIVES.entries[..i].iter().all(|o| o.name != e.name),
            "`{}` is registered twice",
            e.name
        );
        for cfg in e.test_configs() {
            assert_eq!(cfg.get().name(), e.name);
            assert_eq!(cfg.validate(), Ok(()), "{}", e.name);
        }
    }
}

#[test]
fn configs_round_trip_through_toml() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Cfg {
        objective: ObjectiveConfig,
    }
    for (name, cfg) in every_config() {
        let text = toml::to_string(&Cfg {
            objective: cfg.clone(),
        })
        .unwrap();
        assert!(
            text.contains(&format!("type = \"{}\"", cfg.name())),
            "{name}"
        );
        let back: Cfg = toml::from_str(&text).unwrap();
        assert_eq!(back.objective, cfg, "{name}: {text}");
    }
}

#[test]
fn gradients_match_finite_differences() {
    let l = labels();
    let x = uniform(&mut rng(6), N, -3.0, 3.0);
    for (name, cfg) in every_config() {
        let o = cfg.build();
        for weighted in [false, true] {
            let t = targets(&l, weighted);
            gradcheck(&name, std::slice::from_ref(&x), &|g, v| o.loss(g, v[0], &t));
        }
    }
}

#[test]
fn values_and_gradients_are_finite_at_huge_logits() {
    let l = labels();
    let t = targets(&l, true);
    for (name, cfg) in every_config() {
        let o = cfg.build();
        for x in [1e4f32, -1e4, 100.0, -100.0] {
            let (s, ids) = store_of(&[vec![x; N]]);
            let (value, grads) = eval(&s, &ids, &|g, v| o.loss(g, v[0], &t));
            assert!(value.is_finite(), "{name} at {x}: loss {value}");
            assert!(grads[0].iter().all(|d| d.is_finite()), "{name} at {x}");
            assert!(o.score(x).is_finite(), "{name} at {x}: score");
        }
    }
}

#[test]
fn needs_teacher_says_whether_the_loss_reads_the_teacher() {
    let l = labels();
    let x = uniform(&mut rng(7), N, -2.0, 2.0);
    let (s, ids) = store_of(std::slice::from_ref(&x));
    let other: Vec<f32> = l.teacher.iter().map(|p| 1.0 - p).collect();
    for (name, cfg) in every_config() {
        let o = cfg.build();
        let with = |teacher: Option<&[f32]>| {
            let t = Targets {
                teacher,
                ..targets(&l, false)
            };
            eval(&s, &ids, &|g, v| o.loss(g, v[0], &t)).0
        };
        if o.needs_teacher() {
            assert_ne!(with(Some(&l.teacher)), with(Some(&other)), "{name}");
        } else {
            // It must not panic without the teacher, nor depend on it.
            assert_eq!(with(None), with(Some(&l.teacher)), "{name}");
        }
    }
}

#[test]
fn the_mean_denominator_counts_rows_or_weights_unless_rows_are_coupled() {
    let l = labels();
    for (name, cfg) in every_config() {
        let o = cfg.build();
        // Half and half add up to the whole: what splitting a batch in shards relies on.
        let t = targets(&l, true);
        let Some(whole) = o.mean_denominator(&t, N) else {
            continue;
        };
        let cut = |r: std::ops::Range<usize>| Targets {
            click: &l.click[r.clone()],
            duration: &l.duration[r.clone()],
            long_read: &l.long_read[r.clone()],
            teacher: Some(&l.teacher[r.clone()]),
            weights: Some(&l.weights[r]),
        };
        let h = N / 2;
        let parts = o.mean_denominator(&cut(0..h), h).unwrap()
            + o.mean_denominator(&cut(h..N), N - h).unwrap();
        assert!(
            (parts - whole).abs() < 1e-9 * whole.abs().max(1.0),
            "{name}"
        );
    }
}
