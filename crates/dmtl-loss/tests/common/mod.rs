//! Shared test machinery: a loss evaluated on parameter logits, and a central finite-difference
//! check of its gradient with respect to every logit.

#![allow(dead_code)]

use dmtl_tensor::{Grad, Graph, ParamId, ParamKind, ParamStore, Var};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A loss of `k` logit columns, built on `g`.
pub type LossFn<'a> = dyn Fn(&Graph, &[Var]) -> Var + 'a;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn uniform(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

pub fn bernoulli(rng: &mut ChaCha8Rng, n: usize, p: f64) -> Vec<f32> {
    (0..n)
        .map(|_| if rng.gen_bool(p) { 1.0 } else { 0.0 })
        .collect()
}

/// `n` clicks (half of them), their durations (0 without a click, else uniform in 1..200 s)
/// and the long reads (a click of more than 50 s).
pub fn clicks_and_reads(r: &mut ChaCha8Rng, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let click = bernoulli(r, n, 0.5);
    let duration: Vec<f32> = click
        .iter()
        .zip(uniform(r, n, 1.0, 200.0))
        .map(|(c, d)| c * d)
        .collect();
    let long_read = duration
        .iter()
        .map(|&d| if d > 50.0 { 1.0 } else { 0.0 })
        .collect();
    (click, duration, long_read)
}

pub fn column(v: &[f32]) -> Array2<f32> {
    Array2::from_shape_vec((v.len(), 1), v.to_vec()).unwrap()
}

/// A store holding each logit vector as a dense `(n, 1)` parameter.
pub fn store_of(logits: &[Vec<f32>]) -> (ParamStore, Vec<ParamId>) {
    let mut s = ParamStore::new();
    let ids = logits
        .iter()
        .enumerate()
        .map(|(k, l)| s.add(&format!("logit{k}"), column(l), ParamKind::Dense))
        .collect();
    (s, ids)
}

/// The loss value (in f64) and the gradient of every logit input.
pub fn eval(store: &ParamStore, ids: &[ParamId], f: &LossFn) -> (f64, Vec<Array2<f32>>) {
    let g = Graph::new(store);
    let vars: Vec<Var> = ids.iter().map(|&i| g.param(i)).collect();
    let loss = f(&g, &vars);
    assert_eq!(g.shape(loss), (1, 1), "a loss is (1, 1)");
    let l = g.scalar(loss) as f64;
    let grads = g.backward(loss);
    let gs = ids
        .iter()
        .map(|&id| match grads.get(id) {
            Some(Grad::Dense(d)) => d.clone(),
            Some(Grad::Sparse(s)) => s.to_dense(store.value(id).nrows()),
            None => Array2::zeros(store.value(id).raw_dim()),
        })
        .collect();
    (l, gs)
}

/// Compares the analytic gradient of `f` with respect to every entry of every logit vector with
/// the central difference `(L(x + h) - L(x - h)) / 2h`.
pub fn gradcheck(name: &str, logits: &[Vec<f32>], f: &LossFn) {
    let (mut store, ids) = store_of(logits);
    let (_, analytic) = eval(&store, &ids, f);
    let h = 1e-2f32;
    for (k, &id) in ids.iter().enumerate() {
        for r in 0..logits[k].len() {
            let orig = store.value(id)[[r, 0]];
            store.value_mut(id)[[r, 0]] = orig + h;
            let (lp, _) = eval(&store, &ids, f);
            store.value_mut(id)[[r, 0]] = orig - h;
            let (lm, _) = eval(&store, &ids, f);
            store.value_mut(id)[[r, 0]] = orig;
            let numeric = (lp - lm) / (2.0 * h as f64);
            let a = analytic[k][[r, 0]] as f64;
            let tol = 1e-3 + 1e-2 * a.abs().max(numeric.abs());
            assert!(
                (a - numeric).abs() <= tol,
                "{name}: logit input {k} row {r}: analytic {a}, numeric {numeric}"
            );
        }
    }
}

/// `sum w l / sum w` (Mean) or `sum w l` (Sum) in f64, the naive way.
pub fn reduce(losses: &[f64], weights: Option<&[f32]>, mean: bool) -> f64 {
    let w = |i: usize| weights.map_or(1.0, |w| w[i] as f64);
    let total: f64 = losses.iter().enumerate().map(|(i, l)| w(i) * l).sum();
    if mean {
        total / (0..losses.len()).map(w).sum::<f64>()
    } else {
        total
    }
}

pub fn sigmoid64(x: f32) -> f64 {
    1.0 / (1.0 + (-(x as f64)).exp())
}

/// Naive binary cross-entropy of probability `p` against target `t`, in f64.
pub fn bce64(p: f64, t: f32) -> f64 {
    let t = t as f64;
    -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
}

pub fn assert_close(name: &str, got: f64, want: f64, rel: f64) {
    assert!(
        (got - want).abs() <= rel * (1.0 + want.abs()),
        "{name}: got {got}, want {want}"
    );
}
