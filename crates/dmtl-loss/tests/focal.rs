//! The focal objective: its value against a naive f64 formula, and `γ = 0` as long-read BCE.

mod common;

use common::*;
use dmtl_loss::{Focal, LongReadBce, Objective, Targets};

const N: usize = 16;

#[test]
fn gamma_zero_is_long_read_bce() {
    let mut r = rng(11);
    let x = uniform(&mut r, N, -4.0, 4.0);
    let y = bernoulli(&mut r, N, 0.4);
    let w = uniform(&mut r, N, 0.5, 1.5);
    let zeros = vec![0.0; N];
    let (s, ids) = store_of(std::slice::from_ref(&x));
    for weights in [None, Some(&w[..])] {
        let t = Targets {
            click: &y,
            duration: &zeros,
            long_read: &y,
            teacher: None,
            weights,
        };
        let (focal, gf) = eval(&s, &ids, &|g, v| Focal { gamma: 0.0 }.loss(g, v[0], &t));
        let (bce, gb) = eval(&s, &ids, &|g, v| LongReadBce {}.loss(g, v[0], &t));
        assert_close("focal(0) vs BCE", focal, bce, 1e-6);
        for (a, b) in gf[0].iter().zip(gb[0].iter()) {
            assert!((a - b).abs() < 1e-6, "gradient {a} vs {b}");
        }
    }
}

#[test]
fn value_is_the_formula_and_easy_rows_weigh_less() {
    let mut r = rng(12);
    let x = uniform(&mut r, N, -4.0, 4.0);
    let y = bernoulli(&mut r, N, 0.4);
    let zeros = vec![0.0; N];
    let t = Targets {
        click: &y,
        duration: &zeros,
        long_read: &y,
        teacher: None,
        weights: None,
    };
    let (s, ids) = store_of(std::slice::from_ref(&x));
    for gamma in [0.5f32, 2.0, 3.0] {
        let (got, _) = eval(&s, &ids, &|g, v| Focal { gamma }.loss(g, v[0], &t));
        let want: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(&xi, &yi)| {
                let p = sigmoid64(xi);
                let pt = if yi == 1.0 { p } else { 1.0 - p };
                (1.0 - pt).powf(gamma as f64) * bce64(p, yi)
            })
            .collect();
        assert_close("focal", got, reduce(&want, None, true), 1e-5);
        // Every factor (1 - p_t)^γ is below 1: the loss is below BCE.
        let (bce, _) = eval(&s, &ids, &|g, v| LongReadBce {}.loss(g, v[0], &t));
        assert!(got < bce, "γ = {gamma}: {got} vs BCE {bce}");
    }
}

#[test]
fn a_negative_gamma_names_its_key() {
    let (key, _) = Focal { gamma: -1.0 }.invalid_key().unwrap();
    assert_eq!(key, "gamma");
    assert!(Focal::default().invalid_key().is_none());
}
