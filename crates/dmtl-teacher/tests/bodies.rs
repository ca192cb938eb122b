//! Properties every registered body must have, run over the example configurations of every
//! entry of [`BODIES`]: a newly registered body is tested here without a line of its own.

mod common;

use common::synthetic;
use dmtl_data::Dataset;
use dmtl_loss::{esmm_loss, Reduction};
use dmtl_teacher::bodies::BODIES;
use dmtl_teacher::{Teacher, TeacherConfig, TrainConfig};
use dmtl_tensor::{Grads, Graph, ParamKind};

/// A small teacher of every example of every registered body, named.
fn every_body() -> Vec<(String, TeacherConfig)> {
    assert!(BODIES.entries.len() >= 2, "MMoE and shared bottom");
    let mut out = Vec::new();
    for e in BODIES.entries {
        assert!(
            !e.examples.is_empty(),
            "body `{}` registers no small example for these tests",
            e.name
        );
        // The defaults are too large for these tests: the examples only.
        for (i, body) in e.test_configs().into_iter().skip(1).enumerate() {
            let cfg = TeacherConfig {
                body,
                seed: 3,
                train: TrainConfig {
                    lr: 3e-3,
                    batch_size: 256,
                    epochs: 4,
                    patience: 0,
                    ..TrainConfig::default()
                },
                ..TeacherConfig::default()
            };
            out.push((format!("{} #{i}", e.name), cfg));
        }
    }
    out
}

/// The ESMM loss of `teacher` on every row of `data`, and its gradients.
fn esmm(teacher: &Teacher, data: &Dataset) -> (f64, Grads) {
    let batch = data.batch(&(0..data.n_rows as u32).collect::<Vec<_>>());
    let g = Graph::new(teacher.store());
    let out = teacher.forward(&g, &batch);
    let l = esmm_loss(
        &g,
        out.ctr_logit,
        out.cvr_logit,
        &batch.click,
        &batch.long_read,
        1.0,
        Reduction::Mean,
    );
    (g.scalar(l.total) as f64, g.backward(l.total))
}

#[test]
fn body_gradients_match_finite_differences() {
    let (schema, vocabs, train, _) = synthetic(64, 8);
    for (name, cfg) in every_body() {
        let mut t = Teacher::new(cfg, &schema, &vocabs).unwrap();
        let grads = esmm(&t, &train).1;
        let body: Vec<_> = t
            .store()
            .iter()
            .filter(|(_, p)| p.kind == ParamKind::Dense)
            .map(|(id, p)| (id, p.name.clone()))
            .collect();
        assert!(!body.is_empty(), "{name}: no dense parameter");
        let mut checked = 0;
        for (id, pname) in body {
            assert!(
                pname.starts_with("teacher."),
                "{name}: `{pname}` outside `teacher.`"
            );
            let analytic = grads.get(id).map(|g| g.values().clone());
            let cols = t.store().value(id).ncols();
            // The first entry of each parameter, in f64 central differences.
            let h = 1e-3f32;
            let orig = t.store().value(id)[[0, 0]];
            t.store_mut().value_mut(id)[[0, 0]] = orig + h;
            let lp = esmm(&t, &train).0;
            t.store_mut().value_mut(id)[[0, 0]] = orig - h;
            let lm = esmm(&t, &train).0;
            t.store_mut().value_mut(id)[[0, 0]] = orig;
            let numeric = (lp - lm) / (2.0 * h as f64);
            let a = analytic.map_or(0.0, |v| v[[0, 0]] as f64);
            assert!(
                (a - numeric).abs() <= 2e-3 + 5e-2 * a.abs().max(numeric.abs()),
                "{name}: `{pname}` [0, 0] of {cols} columns: analytic {a}, numeric {numeric}"
            );
            checked += 1;
        }
        assert!(checked > 4, "{name}");
    }
}

#[test]
fn every_body_learns_above_chance() {
    let (schema, vocabs, train, test) = synthetic(30_000, 8_000);
    for (name, cfg) in every_body() {
        let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
        t.train(&train, None, &cfg.train, |_| {}).unwrap();
        let p = t.predict(&test).unwrap();
        let auc = dmtl_metrics::auc(&p.p_ctcvr, &test.long_read).unwrap();
        let click = dmtl_metrics::auc(&p.p_ctr, &test.click).unwrap();
        assert!(
            auc > 0.55 && click > 0.55,
            "{name}: long-read AUC {auc}, click AUC {click}"
        );
    }
}

#[test]
fn checkpoints_round_trip_bit_for_bit() {
    let (schema, vocabs, train, _) = synthetic(500, 8);
    let dir = tempfile::tempdir().unwrap();
    for (name, cfg) in every_body() {
        let mut t = Teacher::new(cfg.clone(), &schema, &vocabs).unwrap();
        let opts = TrainConfig {
            epochs: 1,
            ..cfg.train.clone()
        };
        t.train(&train, None, &opts, |_| {}).unwrap();
        let path = dir.path().join(&name);
        t.save(&path).unwrap();
        let back = Teacher::load(&path, &schema, &vocabs).unwrap();
        assert_eq!(back.config(), t.config(), "{name}");
        assert!(
            back.store().to_safetensors_bytes() == t.store().to_safetensors_bytes(),
            "{name}: parameters differ after loading"
        );
        assert_eq!(
            back.predict(&train).unwrap(),
            t.predict(&train).unwrap(),
            "{name}"
        );
        // The configuration reads back as written.
        let text = std::fs::read_to_string(path.join("teacher.toml")).unwrap();
        assert_eq!(
            TeacherConfig::from_toml_str(&text, "t")
                .unwrap()
                .to_toml_string(),
            text
        );
    }
}

/// The size a run checks before building the teacher is the size of the body it builds, at
/// input widths on both sides of the widths it extrapolates from.
#[test]
fn param_count_is_the_built_size() {
    use dmtl_teacher::body::param_count;
    use rand::SeedableRng;
    for (name, cfg) in every_body() {
        for in_dim in [1, 2, 3, 4, 17, 300] {
            let mut store = dmtl_tensor::ParamStore::new();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
            cfg.body
                .get()
                .build(&mut store, "teacher", in_dim, &mut rng);
            assert_eq!(
                param_count(&cfg.body, in_dim),
                store.num_scalars(),
                "{name} at input width {in_dim}"
            );
        }
    }
}
