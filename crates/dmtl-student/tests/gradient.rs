//! Gradients through the two towers and every objective against central finite differences.

use dmtl_data::Dataset;
use dmtl_student::synthetic::{random_dataset, schema_and_vocabs, tiny_fields};
use dmtl_student::{DistillKind, ObjectiveConfig, Similarity, Student, StudentConfig, Targets};
use dmtl_tensor::{Grad, Graph, ParamId, ParamStore};
use ndarray::Array2;
use rand::{Rng, SeedableRng};

fn tiny_student(similarity: Similarity) -> (Student, Dataset) {
    let fields = tiny_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 3);
    let cfg = StudentConfig {
        user_layers: vec![6, 4],
        item_layers: vec![5, 4],
        similarity,
        seed: 3,
        ..Default::default()
    };
    let mut student = Student::new(cfg, &schema, &vocabs).unwrap();
    // Larger embeddings than the 0.05 default so that ReLUs are not all near their kink
    // and scores are away from 0.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let ids: Vec<ParamId> = student.store().iter().map(|(id, _)| id).collect();
    for id in ids {
        let v = student.store_mut().value_mut(id);
        v.mapv_inplace(|x| x + rng.gen_range(-0.5f32..0.5));
    }
    (student, random_dataset(&tiny_fields(), 8, 5))
}

/// `sum_i c_i s_i` for fixed weights `c`, so every row's score gets a distinct gradient.
fn weighted_score(
    student: &Student,
    store: &ParamStore,
    data: &Dataset,
) -> (f32, Vec<(ParamId, Grad)>) {
    let batch = data.batch(&(0..data.n_rows as u32).collect::<Vec<_>>());
    let g = Graph::new(store);
    let s = student.towers().score(&g, &batch);
    let c: Array2<f32> = Array2::from_shape_fn((batch.n_rows, 1), |(i, _)| 0.3 + 0.2 * i as f32);
    let loss = g.sum_all(g.mul(s, g.input(c)));
    let value = g.scalar(loss);
    let grads = g.backward(loss);
    (
        value,
        grads.iter().map(|(id, gr)| (id, gr.clone())).collect(),
    )
}

fn analytic(grads: &[(ParamId, Grad)], id: ParamId, r: usize, c: usize) -> f32 {
    match grads.iter().find(|(i, _)| *i == id).map(|(_, g)| g) {
        None => 0.0,
        Some(Grad::Dense(d)) => d[[r, c]],
        Some(Grad::Sparse(s)) => s
            .rows
            .iter()
            .position(|&x| x as usize == r)
            .map_or(0.0, |k| s.values[[k, c]]),
    }
}

fn check_towers(similarity: Similarity) {
    let (student, data) = tiny_student(similarity);
    let (_, grads) = weighted_score(&student, student.store(), &data);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let mut checked = 0;
    let mut nonzero = 0;
    let mut kinks = 0;
    for (id, p) in student.store().iter() {
        // Embedding tables: rows the batch touched (from the sparse gradient) plus one random
        // row, which must have zero gradient unless touched.
        let (rows, cols) = p.value.dim();
        for _ in 0..4 {
            let (r, c) = (rng.gen_range(0..rows), rng.gen_range(0..cols));
            let fd_at = |eps: f32| {
                let mut plus = student.store().clone();
                plus.value_mut(id)[[r, c]] += eps;
                let mut minus = student.store().clone();
                minus.value_mut(id)[[r, c]] -= eps;
                (weighted_score(&student, &plus, &data).0
                    - weighted_score(&student, &minus, &data).0)
                    / (2.0 * eps)
            };
            let (fd, fd_half) = (fd_at(2e-3), fd_at(1e-3));
            // A step that crosses a ReLU kink gives step-dependent differences: skip those.
            if (fd - fd_half).abs() > 5e-3 + 1e-2 * fd.abs() {
                kinks += 1;
                continue;
            }
            let an = analytic(&grads, id, r, c);
            assert!(
                (fd - an).abs() <= 5e-3 + 1e-2 * fd.abs().max(an.abs()),
                "{similarity:?} {}[{r}, {c}]: finite difference {fd}, backward {an}",
                p.name
            );
            checked += 1;
            nonzero += usize::from(an.abs() > 1e-4);
        }
    }
    assert!(kinks * 10 < checked, "{kinks} kinks in {checked} checks");
    assert!(
        checked > 40 && nonzero > checked / 4,
        "only {nonzero} of {checked} gradients non-zero"
    );
}

#[test]
fn inner_product_towers_match_finite_differences() {
    check_towers(Similarity::Dot);
}

#[test]
fn cosine_towers_match_finite_differences() {
    check_towers(Similarity::Cosine { temperature: 0.5 });
}

#[test]
fn score_is_the_inner_product_of_the_exported_vectors() {
    for sim in [Similarity::Dot, Similarity::Cosine { temperature: 0.2 }] {
        let (student, data) = tiny_student(sim);
        let rows: Vec<u32> = (0..data.n_rows as u32).collect();
        let u = student.user_vectors(&data, &rows).unwrap();
        let v = student.item_vectors(&data, &rows).unwrap();
        let s = student.score_dataset(&data).unwrap();
        assert_eq!(s.len(), data.n_rows);
        for (r, &sr) in s.iter().enumerate() {
            let dot = u.row(r).dot(&v.row(r));
            assert!((dot - sr).abs() < 1e-4, "row {r}: {dot} vs {sr}");
            if let Similarity::Cosine { temperature } = sim {
                let nu = u.row(r).dot(&u.row(r)).sqrt();
                let nv = v.row(r).dot(&v.row(r)).sqrt();
                assert!((nu - 1.0 / temperature).abs() < 1e-3 && (nv - 1.0).abs() < 1e-4);
            }
        }
    }
}

/// d loss / d score of every objective against finite differences on the scores themselves.
#[test]
fn objective_gradients_match_finite_differences() {
    let n = 7;
    let click = [1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
    let duration = [80.0f32, 0.0, 5.0, 0.0, 200.0, 0.0, 0.0];
    let long_read = [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    let teacher = [0.4f32, 0.01, 0.05, 0.0, 0.9, 1.0, 0.2];
    let scores = [0.3f32, -2.0, 1.5, -0.4, 2.2, 0.1, -1.1];
    let objectives = [
        ObjectiveConfig::of(dmtl_student::objective::ClickBce {}),
        ObjectiveConfig::of(dmtl_student::objective::LongReadBce {}),
        ObjectiveConfig::of(dmtl_student::objective::LogDurationMse {}),
        ObjectiveConfig::of(dmtl_student::objective::WeightedLogistic {}),
        ObjectiveConfig::of(dmtl_student::objective::Distill {
            alpha: 1.0,
            loss: DistillKind::Soft,
        }),
        ObjectiveConfig::of(dmtl_student::objective::Distill {
            alpha: 0.3,
            loss: DistillKind::Soft,
        }),
        ObjectiveConfig::of(dmtl_student::objective::Distill {
            alpha: 0.0,
            loss: DistillKind::Soft,
        }),
        ObjectiveConfig::of(dmtl_student::objective::Distill {
            alpha: 1.0,
            loss: DistillKind::Kl { temperature: 2.0 },
        }),
        ObjectiveConfig::of(dmtl_student::objective::Distill {
            alpha: 0.5,
            loss: DistillKind::MseLogits,
        }),
    ];
    let eval = |o: &ObjectiveConfig, s: &[f32]| -> (f32, Vec<f32>) {
        let mut store = ParamStore::new();
        let id = store.add(
            "s",
            Array2::from_shape_vec((n, 1), s.to_vec()).unwrap(),
            dmtl_tensor::ParamKind::Dense,
        );
        let g = Graph::new(&store);
        let t = Targets {
            click: &click,
            duration: &duration,
            long_read: &long_read,
            teacher: Some(&teacher),
            weights: None,
        };
        let l = o.build().loss(&g, g.param(id), &t);
        let v = g.scalar(l);
        let grads = g.backward(l);
        let d = grads
            .get(id)
            .map_or(vec![0.0; n], |g| g.values().iter().copied().collect());
        (v, d)
    };
    for o in &objectives {
        let (_, d) = eval(o, &scores);
        for i in 0..n {
            let h = 1e-2f32;
            let mut p = scores;
            p[i] += h;
            let mut m = scores;
            m[i] -= h;
            let fd = (eval(o, &p).0 - eval(o, &m).0) / (2.0 * h);
            assert!(
                (fd - d[i]).abs() <= 2e-3 + 1e-2 * fd.abs(),
                "{o:?} score {i}: finite difference {fd}, backward {}",
                d[i]
            );
        }
    }
}

/// Hand-computed values: soft BCE of a student equal to the teacher is the teacher's entropy,
/// and the KL is 0 there.
#[test]
fn distillation_losses_have_their_closed_forms() {
    let t = [0.2f32, 0.7];
    let logit = |p: f32| (p / (1.0 - p)).ln();
    let s = [logit(0.2), logit(0.7)];
    let value = |loss: DistillKind| {
        let mut store = ParamStore::new();
        let id = store.add(
            "s",
            Array2::from_shape_vec((2, 1), s.to_vec()).unwrap(),
            dmtl_tensor::ParamKind::Dense,
        );
        let g = Graph::new(&store);
        let zeros = [0.0f32; 2];
        let tg = Targets {
            click: &zeros,
            duration: &zeros,
            long_read: &zeros,
            teacher: Some(&t),
            weights: None,
        };
        let o = ObjectiveConfig::of(dmtl_student::objective::Distill { alpha: 1.0, loss });
        g.scalar(o.build().loss(&g, g.param(id), &tg))
    };
    let h = |p: f32| -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
    assert!((value(DistillKind::Soft) - (h(0.2) + h(0.7)) / 2.0).abs() < 1e-5);
    assert!(value(DistillKind::Kl { temperature: 3.0 }).abs() < 1e-5);
    assert!(value(DistillKind::MseLogits).abs() < 1e-6);
}
