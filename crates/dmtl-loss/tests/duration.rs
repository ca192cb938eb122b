//! Duration baselines: MSE on log duration and weighted logistic regression.

mod common;

use common::*;
use dmtl_loss::{mse_log_duration, weighted_logistic, Reduction};

const N: usize = 12;

fn softplus64(x: f32) -> f64 {
    (1.0 + (x as f64).exp()).ln()
}

#[test]
fn mse_log_duration_gradcheck_and_values() {
    // dl/dx = 2 (x - ln(1 + d)).
    let mut r = rng(21);
    let x = uniform(&mut r, N, -1.0, 6.0);
    let click = bernoulli(&mut r, N, 0.5);
    let d: Vec<f32> = click.iter().map(|&c| c * r_duration(&mut r)).collect();
    let w = uniform(&mut r, N, 0.1, 2.0);
    let naive: Vec<f64> = (0..N)
        .map(|i| (x[i] as f64 - (1.0 + d[i] as f64).ln()).powi(2))
        .collect();
    for (red, mean) in [(Reduction::Mean, true), (Reduction::Sum, false)] {
        for weights in [None, Some(w.as_slice())] {
            gradcheck("mse_log_duration", std::slice::from_ref(&x), &|g, v| {
                mse_log_duration(g, v[0], &d, weights, red)
            });
            let (s, ids) = store_of(std::slice::from_ref(&x));
            let (l, _) = eval(&s, &ids, &|g, v| {
                mse_log_duration(g, v[0], &d, weights, red)
            });
            assert_close(
                "mse_log_duration value",
                l,
                reduce(&naive, weights, mean),
                1e-5,
            );
        }
    }
}

fn r_duration(r: &mut rand_chacha::ChaCha8Rng) -> f32 {
    uniform(r, 1, 1.0, 300.0)[0]
}

#[test]
fn weighted_logistic_gradcheck_and_values() {
    // dl/dx = -y d sigmoid(-x) + (1 - y) sigmoid(x); the mean divides by sum(y d + 1 - y).
    let mut r = rng(22);
    let x = uniform(&mut r, N, -4.0, 4.0);
    let click = bernoulli(&mut r, N, 0.5);
    let d: Vec<f32> = click
        .iter()
        .map(|&c| c * r_duration(&mut r) / 60.0)
        .collect();
    let naive: Vec<f64> = (0..N)
        .map(|i| {
            if click[i] == 1.0 {
                softplus64(-x[i])
            } else {
                softplus64(x[i])
            }
        })
        .collect();
    let wts: Vec<f32> = (0..N)
        .map(|i| if click[i] == 1.0 { d[i] } else { 1.0 })
        .collect();
    for (red, mean) in [(Reduction::Mean, true), (Reduction::Sum, false)] {
        gradcheck("weighted_logistic", std::slice::from_ref(&x), &|g, v| {
            weighted_logistic(g, v[0], &click, &d, red)
        });
        let (s, ids) = store_of(std::slice::from_ref(&x));
        let (l, _) = eval(&s, &ids, &|g, v| {
            weighted_logistic(g, v[0], &click, &d, red)
        });
        assert_close(
            "weighted_logistic value",
            l,
            reduce(&naive, Some(&wts), mean),
            1e-5,
        );
    }
}

#[test]
fn weighted_logistic_odds_estimate_the_duration_ratio() {
    // With one shared logit, the minimum is where e^x = sum(y d) / sum(1 - y): the odds learn
    // total watch time per negative, which is what makes them a duration estimate.
    let click = [1.0f32, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    let d = [30.0f32, 90.0, 0.0, 0.0, 0.0, 60.0, 0.0];
    let x_star = (180.0f32 / 4.0).ln();
    let (s, ids) = store_of(&[vec![x_star; click.len()]]);
    let (_, grads) = eval(&s, &ids, &|g, v| {
        weighted_logistic(g, v[0], &click, &d, Reduction::Sum)
    });
    let total: f32 = grads[0].iter().sum();
    assert!(total.abs() < 1e-4, "gradient at the optimum {total}");
}

#[test]
fn duration_losses_are_stable_at_extreme_outputs() {
    for big in [100.0f32, 1e4] {
        let x = vec![big, -big, big, -big];
        let click = [1.0f32, 1.0, 0.0, 0.0];
        let d = [120.0f32, 120.0, 0.0, 0.0];
        let (s, ids) = store_of(&[x]);
        let (l, grads) = eval(&s, &ids, &|g, v| {
            weighted_logistic(g, v[0], &click, &d, Reduction::Sum)
        });
        // Wrong with confidence: the clicked one at -big costs 120 big, the skipped one at +big
        // costs big; the right ones cost ~0.
        assert_close("wlr extreme", l, 121.0 * big as f64, 1e-5);
        assert!(grads[0].iter().all(|v| v.is_finite()));
        let (l, grads) = eval(&s, &ids, &|g, v| {
            mse_log_duration(g, v[0], &d, None, Reduction::Mean)
        });
        assert!(l.is_finite() && grads[0].iter().all(|v| v.is_finite()));
    }
}

#[test]
#[should_panic(expected = "weighted_logistic: duration has length 1 but the logits have 2 rows")]
fn weighted_logistic_length_mismatch() {
    let (s, ids) = store_of(&[vec![0.0, 1.0]]);
    eval(&s, &ids, &|g, v| {
        weighted_logistic(g, v[0], &[0.0, 1.0], &[3.0], Reduction::Mean)
    });
}

#[test]
#[should_panic(expected = "mse_log_duration: duration[0] = -1 is outside")]
fn negative_duration_is_refused() {
    let (s, ids) = store_of(&[vec![0.0]]);
    eval(&s, &ids, &|g, v| {
        mse_log_duration(g, v[0], &[-1.0], None, Reduction::Mean)
    });
}
