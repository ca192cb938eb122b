//! Closed forms behind the simulator's ground truth: the logistic function, the standard normal
//! distribution function and the moments of a capped log-normal reading time.

/// The logistic function, computed without overflow for large |x|.
pub(crate) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Complementary error function, fractional error below 1.2e-7 everywhere (the Chebyshev-fitted
/// form of Numerical Recipes, `erfcc`), which is far below any sampling error the truth is
/// compared against.
pub(crate) fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let ans = t * poly.exp();
    if x >= 0.0 {
        ans
    } else {
        2.0 - ans
    }
}

/// Standard normal distribution function Phi(x).
pub(crate) fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// P(D > t) for ln D ~ N(mu, sigma^2).
pub(crate) fn lognormal_sf(mu: f64, sigma: f64, t: f64) -> f64 {
    1.0 - normal_cdf((t.ln() - mu) / sigma)
}

/// E[min(D, cap)] for ln D ~ N(mu, sigma^2):
/// exp(mu + sigma^2 / 2) Phi((ln cap - mu - sigma^2) / sigma) + cap (1 - Phi((ln cap - mu) / sigma)).
pub(crate) fn lognormal_capped_mean(mu: f64, sigma: f64, cap: f64) -> f64 {
    let lc = cap.ln();
    (mu + 0.5 * sigma * sigma).exp() * normal_cdf((lc - mu - sigma * sigma) / sigma)
        + cap * (1.0 - normal_cdf((lc - mu) / sigma))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Phi by the trapezoid rule on the density, as an independent reference.
    fn phi_numeric(x: f64) -> f64 {
        let lo = -12.0;
        let n = 200_000;
        let h = (x - lo) / n as f64;
        let f = |t: f64| (-0.5 * t * t).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let mut s = 0.5 * (f(lo) + f(x));
        for k in 1..n {
            s += f(lo + k as f64 * h);
        }
        s * h
    }

    #[test]
    fn normal_cdf_matches_quadrature() {
        for &x in &[-4.0, -2.5, -1.0, -0.3, 0.0, 0.4, 1.0, 1.96, 3.0, 5.0] {
            let (a, b) = (normal_cdf(x), phi_numeric(x));
            assert!((a - b).abs() < 2e-7, "Phi({x}): {a} vs {b}");
        }
        assert!((normal_cdf(1.959_963_985) - 0.975).abs() < 1e-7);
    }

    #[test]
    fn capped_mean_matches_quadrature() {
        // E[min(D, c)] = integral over z of min(exp(mu + sigma z), c) phi(z) dz.
        for &(mu, sigma, cap) in &[(3.0, 0.8, 600.0), (5.5, 1.0, 600.0), (1.0, 0.5, 50.0)] {
            let n = 400_000;
            let (lo, hi) = (-10.0f64, 10.0f64);
            let h = (hi - lo) / n as f64;
            let mut s = 0.0;
            for k in 0..=n {
                let z = lo + k as f64 * h;
                let w = if k == 0 || k == n { 0.5 } else { 1.0 };
                let d = (mu + sigma * z).exp().min(cap);
                s += w * d * (-0.5 * z * z).exp();
            }
            let reference = s * h / (2.0 * std::f64::consts::PI).sqrt();
            let got = lognormal_capped_mean(mu, sigma, cap);
            assert!(
                (got - reference).abs() < 1e-5 * reference.max(1.0),
                "mu {mu} sigma {sigma}: {got} vs {reference}"
            );
        }
    }

    #[test]
    fn sigmoid_is_stable_and_symmetric() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!((sigmoid(2.0) + sigmoid(-2.0) - 1.0).abs() < 1e-15);
        assert!(sigmoid(-800.0) >= 0.0 && sigmoid(800.0) <= 1.0);
    }
}
