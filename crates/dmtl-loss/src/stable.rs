//! Numerically stable scalar functions of logits.
//!
//! Every loss in this crate is written in terms of these, so that no intermediate probability is
//! ever rounded to exactly 0 or 1 and then fed to a logarithm: every function here is finite for
//! any finite input, including logits of `±1e4`.
//!
//! ```
//! use dmtl_loss::stable::{log_sigmoid, log1m_sigmoid_product, softplus};
//! assert_eq!(softplus(1e4), 1e4);                // log(1 + e^x) without overflow
//! assert!((log_sigmoid(-100.0) + 100.0).abs() < 1e-6);
//! // 1 - sigmoid(100)^2 is about 2e-44: its log is about -99.3, not -inf.
//! assert!((log1m_sigmoid_product(100.0, 100.0) - (-100.0 + 2f32.ln())).abs() < 1e-4);
//! ```

/// Default clamp of probabilities turned into logits by [`prob_to_logit`]: `p` is kept in
/// `[PROB_EPS, 1 - PROB_EPS]`, so logits stay within about `±13.8`.
pub const PROB_EPS: f32 = 1e-6;

/// `log(1 + e^x)`, exact to rounding for any `x` (no overflow for large `x`, no loss of the
/// tiny value for very negative `x`).
#[inline]
pub fn softplus(x: f32) -> f32 {
    // max(x, 0) + log1p(e^-|x|): the exponent is never positive.
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `(softplus(x), sigmoid(x))` from one shared exponential: a BCE's value and derivative.
#[inline]
pub fn softplus_sigmoid(x: f32) -> (f32, f32) {
    let e = (-x.abs()).exp();
    let r = 1.0 / (1.0 + e);
    (x.max(0.0) + e.ln_1p(), if x >= 0.0 { r } else { e * r })
}

/// `1 / (1 + e^-x)`, without overflow for any `x`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `log sigmoid(x) = -softplus(-x)`: about `x` for very negative `x`, about `-e^-x` for large
/// `x`, never `-inf` for finite `x`.
#[inline]
pub fn log_sigmoid(x: f32) -> f32 {
    -softplus(-x)
}

/// `log(1 - sigmoid(x)) = log sigmoid(-x)`.
#[inline]
pub fn log1m_sigmoid(x: f32) -> f32 {
    log_sigmoid(-x)
}

/// `log(e^x + e^y + e^z)`, shifted by the maximum so nothing overflows.
#[inline]
pub fn logsumexp3(x: f32, y: f32, z: f32) -> f32 {
    let m = x.max(y).max(z);
    if m == f32::NEG_INFINITY {
        return m;
    }
    m + ((x - m).exp() + (y - m).exp() + (z - m).exp()).ln()
}

/// `log(sigmoid(a) * sigmoid(b))`: the log of a product of two probabilities given as logits
/// (ESMM's `log pCTCVR = log pCTR + log pCVR`).
#[inline]
pub fn log_sigmoid_product(a: f32, b: f32) -> f32 {
    log_sigmoid(a) + log_sigmoid(b)
}

/// `log(1 - sigmoid(a) * sigmoid(b))`, stable for any logits.
///
/// Since `1 - σ(a)σ(b) = (e^-a + e^-b + e^-a-b) σ(a)σ(b)`, the log is
/// `logsumexp(-a, -b, -a-b) + log σ(a) + log σ(b)`, which stays finite when the product is
/// within rounding of 1. When the product is below one half, `log1p(-p)` is used instead: the
/// identity would then subtract two nearly equal large numbers.
#[inline]
pub fn log1m_sigmoid_product(a: f32, b: f32) -> f32 {
    let log_p = log_sigmoid_product(a, b);
    if log_p < -std::f32::consts::LN_2 {
        (-log_p.exp()).ln_1p()
    } else {
        logsumexp3(-a, -b, -a - b) + log_p
    }
}

/// `ln(p / (1 - p))` for `p` in `(0, 1)`; `±inf` at 0 and 1. Computed in `f64` so that
/// probabilities near 1 keep their precision. See [`prob_to_logit`] for a clamped version.
#[inline]
pub fn logit(p: f32) -> f32 {
    let p = p as f64;
    (p.ln() - (-p).ln_1p()) as f32
}

/// The logit of `p` clamped to `[eps, 1 - eps]`: a finite logit for teacher probabilities that
/// are exactly 0 or 1 (e.g. `prob_to_logit(1.0, PROB_EPS)` is about 13.8).
///
/// # Panics
/// When `eps` is not in `(0, 0.5)`.
#[inline]
pub fn prob_to_logit(p: f32, eps: f32) -> f32 {
    assert!(
        eps > 0.0 && eps < 0.5,
        "dmtl-loss: prob_to_logit: eps must be in (0, 0.5), got {eps}"
    );
    // Clamped in f64: in f32, 1 - eps rounds and the two clamps would not be symmetric.
    let eps = eps as f64;
    let p = (p as f64).clamp(eps, 1.0 - eps);
    (p.ln() - (-p).ln_1p()) as f32
}

/// [`prob_to_logit`] with [`PROB_EPS`] over a slice: teacher probabilities turned into teacher
/// logits (for [`crate::mse_logits`]).
pub fn probs_to_logits(probs: &[f32]) -> Vec<f32> {
    probs.iter().map(|&p| prob_to_logit(p, PROB_EPS)).collect()
}

/// Binary entropy `-q ln q - (1 - q) ln(1 - q)` in nats, with `0 ln 0 = 0`.
#[inline]
pub fn binary_entropy(q: f32) -> f32 {
    let xlogx = |x: f32| if x <= 0.0 { 0.0 } else { x * x.ln() };
    -(xlogx(q) + xlogx(1.0 - q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log1m_product_matches_f64_on_both_branches() {
        for &(a, b) in &[
            (-3.0f32, 2.0f32),
            (0.5, 0.7),
            (4.0, 6.0),
            (-20.0, -20.0),
            (12.0, 15.0),
        ] {
            let p = (1.0 / (1.0 + (-a as f64).exp())) * (1.0 / (1.0 + (-b as f64).exp()));
            let want = (1.0 - p).ln();
            let got = log1m_sigmoid_product(a, b) as f64;
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "({a}, {b}): {got} vs {want}"
            );
        }
    }

    #[test]
    fn logit_inverts_sigmoid() {
        for &x in &[-9.0f32, -1.0, 0.0, 0.3, 5.0] {
            assert!((logit(sigmoid(x)) - x).abs() < 1e-3 * (1.0 + x.abs()));
        }
        assert!((prob_to_logit(1.0, PROB_EPS) - 13.8155).abs() < 0.05);
        assert!((prob_to_logit(0.0, PROB_EPS) + 13.8155).abs() < 0.05);
    }
}
