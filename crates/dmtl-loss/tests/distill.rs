//! Distillation losses: gradients against finite differences, values against the naive
//! formulas, the KL/BCE identity, the mix's end points, and stability at extreme logits.

mod common;

use common::*;
use dmtl_loss::stable::{binary_entropy, prob_to_logit, probs_to_logits, PROB_EPS};
use dmtl_loss::{bce_with_logits, distill_mix, kl_distill, mse_logits, soft_bce, Reduction};

const N: usize = 12;

fn reductions() -> [(Reduction, bool); 2] {
    [(Reduction::Mean, true), (Reduction::Sum, false)]
}

#[test]
fn soft_bce_gradcheck_and_values() {
    // dl/dx = sigmoid(x) - q.
    let mut r = rng(11);
    let x = uniform(&mut r, N, -5.0, 5.0);
    let q = uniform(&mut r, N, 0.0, 1.0);
    let w = uniform(&mut r, N, 0.1, 2.0);
    let naive: Vec<f64> = (0..N).map(|i| bce64(sigmoid64(x[i]), q[i])).collect();
    for (red, mean) in reductions() {
        for weights in [None, Some(w.as_slice())] {
            gradcheck("soft_bce", std::slice::from_ref(&x), &|g, v| {
                soft_bce(g, v[0], &q, weights, red)
            });
            let (s, ids) = store_of(std::slice::from_ref(&x));
            let (l, _) = eval(&s, &ids, &|g, v| soft_bce(g, v[0], &q, weights, red));
            assert_close("soft_bce value", l, reduce(&naive, weights, mean), 1e-5);
        }
    }
}

/// `T^2 KL(sigmoid(s/T) || sigmoid(x/T))` in f64, the naive way.
fn kl64(x: f32, q: f32, t: f32) -> f64 {
    let s = prob_to_logit(q, PROB_EPS) as f64 / t as f64;
    let qt = 1.0 / (1.0 + (-s).exp());
    let pt = sigmoid64(x / t);
    let kl = qt * (qt / pt).ln() + (1.0 - qt) * ((1.0 - qt) / (1.0 - pt)).ln();
    (t * t) as f64 * kl
}

#[test]
fn kl_gradcheck_and_values_at_several_temperatures() {
    // dl/dx = T (sigmoid(x/T) - sigmoid(s/T)).
    let mut r = rng(12);
    let x = uniform(&mut r, N, -5.0, 5.0);
    let q = uniform(&mut r, N, 0.02, 0.98);
    let w = uniform(&mut r, N, 0.1, 2.0);
    for t in [0.5f32, 1.0, 2.5] {
        let naive: Vec<f64> = (0..N).map(|i| kl64(x[i], q[i], t)).collect();
        for (red, mean) in reductions() {
            for weights in [None, Some(w.as_slice())] {
                gradcheck(&format!("kl T={t}"), std::slice::from_ref(&x), &|g, v| {
                    kl_distill(g, v[0], &q, t, weights, red)
                });
                let (s, ids) = store_of(std::slice::from_ref(&x));
                let (l, _) = eval(&s, &ids, &|g, v| kl_distill(g, v[0], &q, t, weights, red));
                assert_close(
                    &format!("kl value T={t}"),
                    l,
                    reduce(&naive, weights, mean),
                    1e-4,
                );
            }
        }
    }
}

#[test]
fn kl_at_temperature_one_is_soft_bce_minus_teacher_entropy() {
    let mut r = rng(13);
    let x = uniform(&mut r, N, -4.0, 4.0);
    let q = uniform(&mut r, N, 0.01, 0.99);
    let w = uniform(&mut r, N, 0.1, 2.0);
    let entropy: Vec<f64> = q.iter().map(|&q| binary_entropy(q) as f64).collect();
    for (red, mean) in reductions() {
        let (s, ids) = store_of(std::slice::from_ref(&x));
        let (kl, gk) = eval(&s, &ids, &|g, v| {
            kl_distill(g, v[0], &q, 1.0, Some(&w), red)
        });
        let (bce, gb) = eval(&s, &ids, &|g, v| soft_bce(g, v[0], &q, Some(&w), red));
        assert_close(
            "kl = bce - H",
            kl,
            bce - reduce(&entropy, Some(&w), mean),
            1e-5,
        );
        // The entropy does not depend on the student: the gradients agree.
        for (a, b) in gk[0].iter().zip(gb[0].iter()) {
            assert!((a - b).abs() < 1e-5, "gradients {a} and {b}");
        }
    }
}

#[test]
fn kl_vanishes_where_student_matches_teacher() {
    let q = vec![0.1f32, 0.5, 0.93];
    let x = probs_to_logits(&q);
    for t in [1.0f32, 3.0] {
        let (s, ids) = store_of(std::slice::from_ref(&x));
        let (l, grads) = eval(&s, &ids, &|g, v| {
            kl_distill(g, v[0], &q, t, None, Reduction::Sum)
        });
        assert!(l.abs() < 1e-5, "T={t}: KL at the teacher {l}");
        assert!(grads[0].iter().all(|d| d.abs() < 1e-5));
    }
}

#[test]
fn mse_logits_gradcheck_and_values() {
    // dl/dx = 2 (x - s).
    let mut r = rng(14);
    let x = uniform(&mut r, N, -5.0, 5.0);
    let s_t = uniform(&mut r, N, -5.0, 5.0);
    let w = uniform(&mut r, N, 0.1, 2.0);
    let naive: Vec<f64> = (0..N).map(|i| ((x[i] - s_t[i]) as f64).powi(2)).collect();
    for (red, mean) in reductions() {
        for weights in [None, Some(w.as_slice())] {
            gradcheck("mse_logits", std::slice::from_ref(&x), &|g, v| {
                mse_logits(g, v[0], &s_t, weights, red)
            });
            let (s, ids) = store_of(std::slice::from_ref(&x));
            let (l, _) = eval(&s, &ids, &|g, v| mse_logits(g, v[0], &s_t, weights, red));
            assert_close("mse_logits value", l, reduce(&naive, weights, mean), 1e-5);
        }
    }
}

#[test]
fn distill_mix_end_points_equal_the_parts_and_middle_gradchecks() {
    let mut r = rng(15);
    let x = uniform(&mut r, N, -3.0, 3.0);
    let q = uniform(&mut r, N, 0.0, 1.0);
    let y = bernoulli(&mut r, N, 0.3);
    let (s, ids) = store_of(std::slice::from_ref(&x));
    let (soft, gs) = eval(&s, &ids, &|g, v| {
        soft_bce(g, v[0], &q, None, Reduction::Mean)
    });
    let (hard, gh) = eval(&s, &ids, &|g, v| {
        bce_with_logits(g, v[0], &y, None, Reduction::Mean)
    });
    for (alpha, want, wg) in [(1.0f32, soft, &gs), (0.0, hard, &gh)] {
        let (l, gm) = eval(&s, &ids, &|g, v| {
            let soft = soft_bce(g, v[0], &q, None, Reduction::Mean);
            let hard = bce_with_logits(g, v[0], &y, None, Reduction::Mean);
            distill_mix(g, soft, hard, alpha)
        });
        assert_eq!(l, want, "alpha {alpha}");
        assert_eq!(gm[0], wg[0], "alpha {alpha}");
    }
    gradcheck("distill_mix 0.3", &[x], &|g, v| {
        let soft = soft_bce(g, v[0], &q, None, Reduction::Mean);
        let hard = bce_with_logits(g, v[0], &y, None, Reduction::Sum);
        distill_mix(g, soft, hard, 0.3)
    });
}

#[test]
fn distillation_losses_are_stable_at_extreme_logits() {
    for big in [100.0f32, 1e4] {
        let x = vec![big, -big, big, -big];
        let q = vec![1.0f32, 0.0, 0.3, 0.3];
        let (s, ids) = store_of(std::slice::from_ref(&x));
        // Soft BCE: softplus(x) - q x, so 0, 0, 0.7 big and 0.3 big.
        let (l, g0) = eval(&s, &ids, &|g, v| {
            soft_bce(g, v[0], &q, None, Reduction::Sum)
        });
        assert_close("soft_bce extreme", l, big as f64, 1e-5);
        // KL: finite and the gradient saturates at T (sigmoid(x/T) - q_T) in [-T, T].
        for t in [1.0f32, 4.0] {
            let (l, gk) = eval(&s, &ids, &|g, v| {
                kl_distill(g, v[0], &q, t, None, Reduction::Sum)
            });
            assert!(l.is_finite() && l >= 0.0, "kl T={t} at ±{big}: {l}");
            assert!(gk[0].iter().all(|d| d.is_finite() && d.abs() <= t));
        }
        // A teacher logit clamped from p = 1: the student at +big is right, KL grows with big
        // only through the clamp (the teacher says ~1 - 1e-6).
        let (l, gm) = eval(&s, &ids, &|g, v| {
            mse_logits(g, v[0], &probs_to_logits(&q), None, Reduction::Mean)
        });
        assert!(l.is_finite());
        assert!(g0[0].iter().chain(gm[0].iter()).all(|d| d.is_finite()));
    }
}

#[test]
fn teacher_probabilities_become_clamped_logits() {
    let l = probs_to_logits(&[0.0, 0.5, 1.0, 0.8]);
    assert!(l.iter().all(|v| v.is_finite()));
    assert_eq!(l[1], 0.0);
    assert!((l[3] - 4f32.ln()).abs() < 1e-5);
    assert!((l[2] + l[0]).abs() < 1e-5 && l[2] > 13.0);
}

#[test]
#[should_panic(expected = "kl_distill: teacher_probs has length 2 but the logits have 3 rows")]
fn kl_length_mismatch_names_loss_and_lengths() {
    let (s, ids) = store_of(&[vec![0.0, 1.0, 2.0]]);
    eval(&s, &ids, &|g, v| {
        kl_distill(g, v[0], &[0.5, 0.5], 2.0, None, Reduction::Mean)
    });
}

#[test]
#[should_panic(expected = "soft_bce: teacher_probs[1] = 1.5 is outside [0, 1]")]
fn soft_bce_rejects_probabilities_outside_the_unit_interval() {
    let (s, ids) = store_of(&[vec![0.0, 1.0]]);
    eval(&s, &ids, &|g, v| {
        soft_bce(g, v[0], &[0.5, 1.5], None, Reduction::Mean)
    });
}
