//! BCE on logits, BCE on a product of probabilities and the ESMM loss: gradients against finite
//! differences, values against the naive formulas, and the limits at extreme logits.

mod common;

use common::*;
use dmtl_loss::{bce_product_logits, bce_with_logits, esmm_loss, Reduction};

const N: usize = 12;

#[test]
fn bce_gradcheck_weights_and_reductions() {
    // dl/dx = sigmoid(x) - t, scaled by w / sum(w) for the mean.
    let mut r = rng(1);
    let x = uniform(&mut r, N, -4.0, 4.0);
    let soft = uniform(&mut r, N, 0.0, 1.0);
    let w = uniform(&mut r, N, 0.1, 3.0);
    for red in [Reduction::Mean, Reduction::Sum] {
        for weights in [None, Some(w.as_slice())] {
            gradcheck(
                &format!("bce {red:?} {}", weights.is_some()),
                std::slice::from_ref(&x),
                &|g, v| bce_with_logits(g, v[0], &soft, weights, red),
            );
        }
    }
}

#[test]
fn bce_values_match_naive_formula() {
    let mut r = rng(2);
    let x = uniform(&mut r, N, -6.0, 6.0);
    let t = bernoulli(&mut r, N, 0.4);
    let w = uniform(&mut r, N, 0.0, 2.0);
    let naive: Vec<f64> = x
        .iter()
        .zip(&t)
        .map(|(&x, &t)| bce64(sigmoid64(x), t))
        .collect();
    for (red, mean) in [(Reduction::Mean, true), (Reduction::Sum, false)] {
        let (s, ids) = store_of(std::slice::from_ref(&x));
        let (l, _) = eval(&s, &ids, &|g, v| {
            bce_with_logits(g, v[0], &t, Some(&w), red)
        });
        assert_close("bce value", l, reduce(&naive, Some(&w), mean), 1e-5);
    }
}

#[test]
fn bce_limits_at_extreme_logits() {
    for big in [100.0f32, 1e4] {
        let x = vec![big, big, -big, -big];
        let t = vec![1.0, 0.0, 1.0, 0.0];
        let (s, ids) = store_of(&[x]);
        let (l, grads) = eval(&s, &ids, &|g, v| {
            bce_with_logits(g, v[0], &t, None, Reduction::Sum)
        });
        // Right with confidence costs ~0, wrong with confidence costs |x|.
        assert_close("bce extreme", l, 2.0 * big as f64, 1e-6);
        // dl/dx = sigmoid(x) - t: 0 where right, ±1 where wrong.
        for (d, want) in grads[0].iter().zip([0.0f32, 1.0, -1.0, 0.0]) {
            assert!(
                (d - want).abs() < 1e-6,
                "bce extreme gradient {d}, want {want}"
            );
        }
    }
}

#[test]
fn product_gradcheck_both_logits_weights_and_reductions() {
    // dl/da = sigmoid(-a) ((1 - t) p / (1 - p) - t), symmetric in b.
    let mut r = rng(3);
    let a = uniform(&mut r, N, -4.0, 4.0);
    let b = uniform(&mut r, N, -4.0, 4.0);
    let t = uniform(&mut r, N, 0.0, 1.0);
    let w = uniform(&mut r, N, 0.1, 3.0);
    for red in [Reduction::Mean, Reduction::Sum] {
        for weights in [None, Some(w.as_slice())] {
            gradcheck(
                &format!("product {red:?} {}", weights.is_some()),
                &[a.clone(), b.clone()],
                &|g, v| bce_product_logits(g, v[0], v[1], &t, weights, red),
            );
        }
    }
}

#[test]
fn product_values_match_naive_formula() {
    let mut r = rng(4);
    let a = uniform(&mut r, N, -6.0, 6.0);
    let b = uniform(&mut r, N, -6.0, 6.0);
    let t = bernoulli(&mut r, N, 0.3);
    let naive: Vec<f64> = (0..N)
        .map(|i| bce64(sigmoid64(a[i]) * sigmoid64(b[i]), t[i]))
        .collect();
    let (s, ids) = store_of(&[a, b]);
    let (l, _) = eval(&s, &ids, &|g, v| {
        bce_product_logits(g, v[0], v[1], &t, None, Reduction::Mean)
    });
    assert_close("product value", l, reduce(&naive, None, true), 1e-5);
}

#[test]
fn product_limits_at_extreme_logits() {
    for big in [100.0f32, 1e4] {
        let cases: [(f32, f32, f32, f64); 6] = [
            // (a, b, t, loss): p ~ 1 with label 1 costs 0, with label 0 costs -log(2 e^-big).
            (big, big, 1.0, 0.0),
            (big, big, 0.0, big as f64 - 2f64.ln()),
            // p ~ e^-2big with label 0 costs 0, with label 1 costs 2 big.
            (-big, -big, 0.0, 0.0),
            (-big, -big, 1.0, 2.0 * big as f64),
            // One sure factor: the product is the other factor, sigmoid(0) = 1/2.
            (big, 0.0, 1.0, 2f64.ln()),
            (-big, 0.0, 0.0, 0.0),
        ];
        for (a, b, t, want) in cases {
            let (s, ids) = store_of(&[vec![a], vec![b]]);
            let (l, grads) = eval(&s, &ids, &|g, v| {
                bce_product_logits(g, v[0], v[1], &[t], None, Reduction::Sum)
            });
            assert_close(&format!("product ({a}, {b}, {t})"), l, want, 1e-5);
            for gk in &grads {
                let d = gk[[0, 0]];
                assert!(
                    d.is_finite() && d.abs() <= 1.0,
                    "({a}, {b}, {t}): gradient {d}"
                );
            }
        }
        // At a = b = big with label 0, each logit carries half of the push: 1 - p ~ 2 e^-big.
        let (s, ids) = store_of(&[vec![big], vec![big]]);
        let (_, grads) = eval(&s, &ids, &|g, v| {
            bce_product_logits(g, v[0], v[1], &[0.0], None, Reduction::Sum)
        });
        assert_close("product grad a", grads[0][[0, 0]] as f64, 0.5, 1e-5);
        assert_close("product grad b", grads[1][[0, 0]] as f64, 0.5, 1e-5);
    }
}

#[test]
fn esmm_equals_naive_ctr_plus_weighted_ctcvr() {
    let mut r = rng(5);
    let a = uniform(&mut r, N, -3.0, 3.0);
    let b = uniform(&mut r, N, -3.0, 3.0);
    let y = bernoulli(&mut r, N, 0.5);
    let z = bernoulli(&mut r, N, 0.5);
    let yz: Vec<f32> = y.iter().zip(&z).map(|(y, z)| y * z).collect();
    for (red, mean) in [(Reduction::Mean, true), (Reduction::Sum, false)] {
        for w in [0.0f32, 1.0, 2.5] {
            let ctr: Vec<f64> = (0..N).map(|i| bce64(sigmoid64(a[i]), y[i])).collect();
            let ctcvr: Vec<f64> = (0..N)
                .map(|i| bce64(sigmoid64(a[i]) * sigmoid64(b[i]), yz[i]))
                .collect();
            let want = reduce(&ctr, None, mean) + w as f64 * reduce(&ctcvr, None, mean);
            let (s, ids) = store_of(&[a.clone(), b.clone()]);
            let (l, _) = eval(&s, &ids, &|g, v| {
                esmm_loss(g, v[0], v[1], &y, &yz, w, red).total
            });
            assert_close(&format!("esmm {red:?} w={w}"), l, want, 1e-5);
            gradcheck(
                &format!("esmm {red:?} w={w}"),
                &[a.clone(), b.clone()],
                &|g, v| esmm_loss(g, v[0], v[1], &y, &yz, w, red).total,
            );
        }
    }
}

#[test]
#[should_panic(expected = "bce_with_logits: targets has length 3 but the logits have 2 rows")]
fn bce_length_mismatch_names_loss_and_lengths() {
    let (s, ids) = store_of(&[vec![0.0, 1.0]]);
    eval(&s, &ids, &|g, v| {
        bce_with_logits(g, v[0], &[0.0, 1.0, 1.0], None, Reduction::Mean)
    });
}

#[test]
#[should_panic(expected = "esmm_loss: click_and_long_read has length 1 but the logits have 2 rows")]
fn esmm_length_mismatch_names_the_label() {
    let (s, ids) = store_of(&[vec![0.0, 1.0], vec![0.0, 1.0]]);
    eval(&s, &ids, &|g, v| {
        esmm_loss(g, v[0], v[1], &[0.0, 1.0], &[1.0], 1.0, Reduction::Mean).total
    });
}

#[test]
fn zero_weights_give_zero_mean_and_gradient() {
    let (s, ids) = store_of(&[vec![3.0, -2.0]]);
    let (l, grads) = eval(&s, &ids, &|g, v| {
        bce_with_logits(g, v[0], &[0.0, 1.0], Some(&[0.0, 0.0]), Reduction::Mean)
    });
    assert_eq!(l, 0.0);
    assert!(grads[0].iter().all(|&d| d == 0.0));
}

#[test]
fn product_matches_f64_on_a_grid_across_both_branches() {
    // Covers p < 1/2 (log1p branch) and p >= 1/2 (logsumexp branch), both soft and hard targets.
    let grid: Vec<f32> = (-16..=16).map(|k| k as f32 * 0.5).collect();
    for &a in &grid {
        for &b in &grid {
            for t in [0.0f32, 0.35, 1.0] {
                let (s, ids) = store_of(&[vec![a], vec![b]]);
                let (l, grads) = eval(&s, &ids, &|g, v| {
                    bce_product_logits(g, v[0], v[1], &[t], None, Reduction::Sum)
                });
                let p = sigmoid64(a) * sigmoid64(b);
                assert_close(&format!("value ({a}, {b}, {t})"), l, bce64(p, t), 1e-5);
                let c = (1.0 - t as f64) * p / (1.0 - p) - t as f64;
                let da = sigmoid64(-a) * c;
                let db = sigmoid64(-b) * c;
                assert_close(
                    &format!("da ({a}, {b}, {t})"),
                    grads[0][[0, 0]] as f64,
                    da,
                    1e-5,
                );
                assert_close(
                    &format!("db ({a}, {b}, {t})"),
                    grads[1][[0, 0]] as f64,
                    db,
                    1e-5,
                );
            }
        }
    }
}
