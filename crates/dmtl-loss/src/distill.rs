//! Distillation losses: the student's logit against the teacher's probability (or logit).

use dmtl_tensor::{Graph, Var};
use ndarray::Array2;

use crate::bce::bce_named;
use crate::pointwise::{check_len, check_range, pointwise_loss, rows};
use crate::stable::{log_sigmoid, prob_to_logit, sigmoid, PROB_EPS};
use crate::Reduction;

/// Distillation by soft-label BCE: `-(q log p + (1 - q) log(1 - p))` with `q` the teacher's
/// probability (DMTL distils the teacher's pCTCVR) and `p = σ(student_logit)`. Its minimum over
/// the student is at `p = q`, where it equals the teacher's entropy, not 0.
///
/// Shapes: `student_logits` `(n, 1)`; `teacher_probs`, `weights` `n` entries; result `(1, 1)`.
/// Gradient: `dl/dx = σ(x) - q`.
///
/// # Panics
/// When `student_logits` is not `(n, 1)`, a slice has not `n` entries, a teacher probability is
/// outside `[0, 1]`, or a weight is negative or not finite.
pub fn soft_bce(
    g: &Graph,
    student_logits: Var,
    teacher_probs: &[f32],
    weights: Option<&[f32]>,
    red: Reduction,
) -> Var {
    bce_named(
        g,
        "soft_bce",
        "teacher_probs",
        student_logits,
        teacher_probs,
        weights,
        red,
    )
}

/// Distillation by KL divergence with a temperature (Hinton et al., 2015), for a binary output:
/// `T^2 KL(q_T || p_T)` with `q_T = σ(s / T)`, `p_T = σ(x / T)`, `s` the teacher's logit
/// (from its probability, clamped to `[1e-6, 1 - 1e-6]`), `x` the student's. `T > 1` softens
/// both; the `T^2` keeps the gradient's scale independent of `T`. At `T = 1` this is
/// [`soft_bce`] minus the teacher's entropy, so 0 where the student matches the teacher.
///
/// Shapes: `student_logits` `(n, 1)`; `teacher_probs`, `weights` `n` entries; result `(1, 1)`.
/// Gradient: `dl/dx = T (σ(x / T) - q_T)`.
///
/// # Panics
/// As [`soft_bce`], and when `temperature` is not finite and positive.
pub fn kl_distill(
    g: &Graph,
    student_logits: Var,
    teacher_probs: &[f32],
    temperature: f32,
    weights: Option<&[f32]>,
    red: Reduction,
) -> Var {
    let loss = "kl_distill";
    assert!(
        temperature.is_finite() && temperature > 0.0,
        "dmtl-loss: {loss}: temperature must be finite and > 0, got {temperature}"
    );
    check_len(
        loss,
        "teacher_probs",
        teacher_probs.len(),
        rows(g, student_logits),
    );
    check_range(loss, "teacher_probs", teacher_probs, 0.0, 1.0);
    let t = temperature;
    pointwise_loss(g, loss, student_logits, weights, red, |i, x| {
        let s = prob_to_logit(teacher_probs[i], PROB_EPS) / t;
        let xs = x / t;
        let q = sigmoid(s);
        // KL = q (log q - log p) + (1 - q) (log(1 - q) - log(1 - p)), all logs from logits.
        let kl = q * (log_sigmoid(s) - log_sigmoid(xs))
            + (1.0 - q) * (log_sigmoid(-s) - log_sigmoid(-xs));
        // Rounding can leave a tiny negative where student and teacher agree.
        (t * t * kl.max(0.0), t * (sigmoid(xs) - q))
    })
}

/// Distillation by regression on logits: `(x - s)^2` with `s` the teacher's logit (see
/// [`crate::stable::probs_to_logits`] to get logits from probabilities).
///
/// Shapes: `student_logits` `(n, 1)`; `teacher_logits`, `weights` `n` entries; result `(1, 1)`.
/// Gradient: `dl/dx = 2 (x - s)`.
///
/// # Panics
/// When `student_logits` is not `(n, 1)`, a slice has not `n` entries, a teacher logit is not
/// finite, or a weight is negative or not finite.
pub fn mse_logits(
    g: &Graph,
    student_logits: Var,
    teacher_logits: &[f32],
    weights: Option<&[f32]>,
    red: Reduction,
) -> Var {
    let loss = "mse_logits";
    check_len(
        loss,
        "teacher_logits",
        teacher_logits.len(),
        rows(g, student_logits),
    );
    check_range(loss, "teacher_logits", teacher_logits, f32::MIN, f32::MAX);
    pointwise_loss(g, loss, student_logits, weights, red, |i, x| {
        let e = x - teacher_logits[i];
        (e * e, 2.0 * e)
    })
}

/// DMTL's student loss mix: `alpha * soft + (1 - alpha) * hard`, both `(1, 1)` losses
/// (typically a distillation loss and BCE on the long-read label). `alpha = 1` is pure
/// distillation.
///
/// # Panics
/// When `soft` or `hard` is not `(1, 1)`, or `alpha` is outside `[0, 1]`.
pub fn distill_mix(g: &Graph, soft: Var, hard: Var, alpha: f32) -> Var {
    assert!(
        (0.0..=1.0).contains(&alpha),
        "dmtl-loss: distill_mix: alpha must be in [0, 1], got {alpha}"
    );
    for (what, v) in [("soft", soft), ("hard", hard)] {
        let s = g.shape(v);
        assert!(
            s == (1, 1),
            "dmtl-loss: distill_mix: {what} must be a (1, 1) loss, got {s:?}"
        );
    }
    let (a, b) = (alpha, 1.0 - alpha);
    // The weight is applied to the value, not to it times 0: an unused part that is not finite
    // does not poison the mix.
    let part = |w: f32, v: Var| if w == 0.0 { 0.0 } else { w * g.scalar(v) };
    let value = part(a, soft) + part(b, hard);
    g.custom(
        &[soft, hard],
        Array2::from_elem((1, 1), value),
        Box::new(move |_inputs, _out, dy| {
            let d = dy[[0, 0]];
            vec![
                Some(Array2::from_elem((1, 1), a * d)),
                Some(Array2::from_elem((1, 1), b * d)),
            ]
        }),
    )
}
