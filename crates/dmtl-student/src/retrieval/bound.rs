//! The arithmetic the bf16 filter's guarantee rests on: exact scores, the rigorous bound on
//! the filter's error, and rounding in the safe direction.

/// Components above this magnitude (or non-finite) send a vector to the exact path; below it
/// no bf16 value, product or sum can overflow.
pub(super) const LIMIT: f32 = 1.1259e15; // ~2^50

/// The bound `|a - r| <= rel * |q| * |x| + abs * (1 + |q| + |x|)` for vectors of length `d`.
///
/// `a` is the filter's score: `q` and `x` rounded to bf16 (relative error `2^-8` per
/// component, plus `2^-126` where the hardware treats subnormals as zero), products summed in
/// f32 with subnormal results flushed to zero. `r` is the exact score: the f64 sum of the f32
/// products rounded once to f32. By Cauchy-Schwarz `sum |q_d x_d| <= |q| |x|`, so
/// `|a - r| <= (2u_b + u_b^2 + gamma_2d (1 + u_b)^2 + u + 2d 2^-53) |q| |x|` plus terms in
/// `2^-126`, with `u_b = 2^-8`, `u = 2^-24`, `gamma_n = n u / (1 - n u)`. `rel` rounds that up
/// by 2^-10 of itself, which also covers the f64 arithmetic on norms and bounds, and `abs`
/// covers the subnormal terms (at most `2^-118 (|q| + |x|) + 2^-112` for `d <= 4096`).
#[derive(Clone, Copy, Debug)]
pub(super) struct ErrorModel {
    rel: f64,
    abs: f64,
}

impl ErrorModel {
    pub(super) fn new(d: usize) -> Self {
        let ub = 2f64.powi(-8);
        let u = 2f64.powi(-24);
        let n = 2.0 * d as f64 + 2.0;
        let gamma = n * u / (1.0 - n * u);
        let rel =
            2.0 * ub + ub * ub + gamma * (1.0 + ub).powi(2) + u + 2.0 * d as f64 * 2f64.powi(-53);
        Self {
            rel: rel * (1.0 + 2f64.powi(-10)),
            abs: 2f64.powi(-110),
        }
    }

    /// The bound for a query of norm `qn` and items of norm at most `xn`, rounded up to f32.
    #[inline]
    pub(super) fn bound(&self, qn: f64, xn: f64) -> f32 {
        let e = self.rel * qn * xn + self.abs * (1.0 + qn + xn);
        round_up(e)
    }
}

#[inline]
pub(super) fn round_up(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) < x {
        f.next_up()
    } else {
        f
    }
}

#[inline]
pub(super) fn round_down(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) > x {
        f.next_down()
    } else {
        f
    }
}

/// Exact score: the f32 products (exact in f64) summed in f64 in a fixed order (16 running
/// sums over the components, added pairwise, then the tail), rounded once to f32.
#[inline(always)]
pub(super) fn exact_dot(q: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0f64; 16];
    let (qc, xc) = (q.chunks_exact(16), x.chunks_exact(16));
    let (qr, xr) = (qc.remainder(), xc.remainder());
    for (a, b) in qc.zip(xc) {
        for l in 0..16 {
            acc[l] += a[l] as f64 * b[l] as f64;
        }
    }
    let mut w = 16;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    let mut s = acc[0];
    for (a, b) in qr.iter().zip(xr) {
        s += *a as f64 * *b as f64;
    }
    s as f32
}

/// [`exact_dot`] compiled with AVX-512 (same operations in the same order, so the same
/// result; products of f32 values are exact in f64, so no fused multiply-add can differ).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn exact_dot_wide(q: &[f32], x: &[f32]) -> f32 {
    exact_dot(q, x)
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn exact_dot_wide(q: &[f32], x: &[f32]) -> f32 {
    exact_dot(q, x)
}

/// Norm in f64 when every component is finite and at most [`LIMIT`] in magnitude.
#[inline]
pub(super) fn checked_norm(v: &[f32]) -> Option<f64> {
    let mut s = [0f64; 8];
    let mut ok = true;
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            ok &= c[l].abs() <= LIMIT; // false for NaN and infinities
            s[l] += c[l] as f64 * c[l] as f64;
        }
    }
    for &x in rest {
        ok &= x.abs() <= LIMIT;
        s[0] += x as f64 * x as f64;
    }
    ok.then(|| s.iter().sum::<f64>().sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_helpers_round_the_right_way() {
        for x in [0.1f64, -0.1, 1.0 / 3.0, 1e-40, -1e-40, 3.0, 0.0] {
            assert!(round_up(x) as f64 >= x && round_down(x) as f64 <= x, "{x}");
        }
        assert_eq!(round_down(f64::NEG_INFINITY), f32::NEG_INFINITY);
        assert_eq!(round_up(f64::INFINITY), f32::INFINITY);
    }

    #[test]
    fn checked_norm_refuses_non_finite_and_huge_components() {
        assert_eq!(checked_norm(&[3.0, 4.0]), Some(5.0));
        assert_eq!(checked_norm(&[]), Some(0.0));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 2.0 * LIMIT] {
            let mut v = vec![1.0f32; 19];
            v[17] = bad;
            assert_eq!(checked_norm(&v), None, "{bad}");
        }
    }

    #[test]
    fn exact_dot_rounds_the_exact_sum_once() {
        // 2^30 + 1 - 2^30 is 1 in f64 but 0 in f32 summed left to right.
        let q = [2f32.powi(30), 1.0, -(2f32.powi(30))];
        assert_eq!(exact_dot(&q, &[1.0, 1.0, 1.0]), 1.0);
        let q: Vec<f32> = (0..37).map(|i| i as f32 * 0.25 - 3.0).collect();
        let x: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.125).collect();
        let want: f64 = q.iter().zip(&x).map(|(a, b)| *a as f64 * *b as f64).sum();
        assert_eq!(exact_dot(&q, &x), want as f32);
    }
}
