//! Losses of the reading-duration baselines (B3): regression on log duration and YouTube's
//! weighted logistic regression.

use dmtl_tensor::{Graph, Var};

use crate::pointwise::{check_len, check_range, pointwise_loss, rows};
use crate::stable::{sigmoid, softplus};
use crate::Reduction;

/// Regression on log duration: `(x - ln(1 + d))^2`, with `d = 0` seconds for impressions
/// without a click. The prediction `x` is itself the ranking score (an estimate of
/// `E[ln(1 + d)]`), not a logit.
///
/// Shapes: `predictions` `(n, 1)`; `duration`, `weights` `n` entries; result `(1, 1)`.
/// Gradient: `dl/dx = 2 (x - ln(1 + d))`.
///
/// # Panics
/// When `predictions` is not `(n, 1)`, a slice has not `n` entries, a duration is negative or
/// not finite, or a weight is negative or not finite.
pub fn mse_log_duration(
    g: &Graph,
    predictions: Var,
    duration: &[f32],
    weights: Option<&[f32]>,
    red: Reduction,
) -> Var {
    let loss = "mse_log_duration";
    check_len(loss, "duration", duration.len(), rows(g, predictions));
    check_range(loss, "duration", duration, 0.0, f32::MAX);
    pointwise_loss(g, loss, predictions, weights, red, |i, x| {
        let e = x - duration[i].ln_1p();
        (e * e, 2.0 * e)
    })
}

/// Weighted logistic regression for watch time (Covington et al., "Deep Neural Networks for
/// YouTube Recommendations", 2016): clicked impressions are positives weighted by their
/// duration in seconds, all other impressions negatives of weight 1:
/// `l_i = y_i d_i softplus(-x_i) + (1 - y_i) softplus(x_i)`. The learned odds `e^x` then
/// approximate the expected duration of an impression. `Mean` divides by the total weight
/// `sum_i (y_i d_i + 1 - y_i)`. A click with duration 0 weighs nothing.
///
/// Shapes: `logits` `(n, 1)`; `click`, `duration` `n` entries; result `(1, 1)`.
/// Gradient: `dl/dx = -y d σ(-x) + (1 - y) σ(x)`.
///
/// # Panics
/// When `logits` is not `(n, 1)`, a slice has not `n` entries, a click is not 0 or 1, or a
/// duration is negative or not finite.
pub fn weighted_logistic(
    g: &Graph,
    logits: Var,
    click: &[f32],
    duration: &[f32],
    red: Reduction,
) -> Var {
    let loss = "weighted_logistic";
    let n = rows(g, logits);
    check_len(loss, "click", click.len(), n);
    check_len(loss, "duration", duration.len(), n);
    check_range(loss, "duration", duration, 0.0, f32::MAX);
    if let Some((i, c)) = click
        .iter()
        .enumerate()
        .find(|(_, &c)| c != 0.0 && c != 1.0)
    {
        panic!("dmtl-loss: {loss}: click[{i}] = {c} is not 0 or 1");
    }
    // The sample weight folds into the per-sample loss; the reduction's weights carry it too so
    // that the mean divides by the total weight.
    let w: Vec<f32> = click
        .iter()
        .zip(duration)
        .map(|(&y, &d)| if y == 1.0 { d } else { 1.0 })
        .collect();
    pointwise_loss(g, loss, logits, Some(&w), red, |i, x| {
        if click[i] == 1.0 {
            (softplus(-x), -sigmoid(-x))
        } else {
            (softplus(x), sigmoid(x))
        }
    })
}
