//! Binary cross-entropy on logits, on a product of two probabilities, and the ESMM teacher loss.

use dmtl_tensor::{Graph, Var};

use crate::pointwise::{check_len, check_range, pointwise_loss, pointwise_loss_n, rows};
use crate::stable::softplus_sigmoid;
use crate::Reduction;

/// Binary cross-entropy of `sigmoid(logits)` against `targets`:
/// `l_i = -(t_i log p_i + (1 - t_i) log(1 - p_i)) = softplus(x_i) - t_i x_i`, reduced by `red`
/// with optional per-sample `weights`. Targets may be soft (any value in `[0, 1]`).
///
/// Shapes: `logits` `(n, 1)`; `targets` and `weights` `n` entries; the result `(1, 1)`.
/// Gradient: `dl/dx = sigmoid(x) - t`.
///
/// ```
/// use dmtl_loss::{bce_with_logits, Reduction};
/// use dmtl_tensor::{Graph, ParamStore};
/// use ndarray::array;
/// let store = ParamStore::new();
/// let g = Graph::new(&store);
/// let x = g.input(array![[0.0f32], [100.0]]);
/// let loss = bce_with_logits(&g, x, &[1.0, 0.0], None, Reduction::Sum);
/// // ln 2 for the undecided sample, 100 for the confidently wrong one.
/// assert!((g.scalar(loss) - (2f32.ln() + 100.0)).abs() < 1e-4);
/// ```
///
/// # Panics
/// When `logits` is not `(n, 1)`, a slice has not `n` entries, a target is outside `[0, 1]`,
/// or a weight is negative or not finite.
pub fn bce_with_logits(
    g: &Graph,
    logits: Var,
    targets: &[f32],
    weights: Option<&[f32]>,
    red: Reduction,
) -> Var {
    bce_named(
        g,
        "bce_with_logits",
        "targets",
        logits,
        targets,
        weights,
        red,
    )
}

/// [`bce_with_logits`] with the loss and target names used in panic messages.
pub(crate) fn bce_named(
    g: &Graph,
    loss: &str,
    what: &str,
    logits: Var,
    targets: &[f32],
    weights: Option<&[f32]>,
    red: Reduction,
) -> Var {
    check_len(loss, what, targets.len(), rows(g, logits));
    check_range(loss, what, targets, 0.0, 1.0);
    pointwise_loss(g, loss, logits, weights, red, |i, x| {
        let t = targets[i];
        let (sp, s) = softplus_sigmoid(x);
        (sp - t * x, s - t)
    })
}

/// Binary cross-entropy of the product `p = sigmoid(a) * sigmoid(b)` against `targets`, computed
/// from the two logits without forming `p`: `log p = log σ(a) + log σ(b)` and
/// `log(1 - p) = logsumexp(-a, -b, -a-b) + log σ(a) + log σ(b)`
/// (see [`crate::stable::log1m_sigmoid_product`]). This is ESMM's pCTCVR = pCTR * pCVR.
///
/// Shapes: `logit_a`, `logit_b` `(n, 1)`; `targets`, `weights` `n` entries; result `(1, 1)`.
/// Gradient: `dl/da = σ(-a) ((1 - t) p / (1 - p) - t)`, and the same with `b`; the ratio
/// `σ(-a) p / (1 - p)` equals `σ(a) / (1 + e^(a-b) + e^-b)`, which stays finite (1/2 at
/// `a = b = 1e4`).
///
/// ```
/// use dmtl_loss::{bce_product_logits, stable::sigmoid, Reduction};
/// use dmtl_tensor::{Graph, ParamStore};
/// use ndarray::array;
/// let store = ParamStore::new();
/// let g = Graph::new(&store);
/// let (a, b) = (g.input(array![[0.5f32]]), g.input(array![[-1.0f32]]));
/// let loss = bce_product_logits(&g, a, b, &[1.0], None, Reduction::Mean);
/// let p = sigmoid(0.5) * sigmoid(-1.0);
/// assert!((g.scalar(loss) + p.ln()).abs() < 1e-5);
/// ```
///
/// # Panics
/// When the logits are not both `(n, 1)`, a slice has not `n` entries, a target is outside
/// `[0, 1]`, or a weight is negative or not finite.
pub fn bce_product_logits(
    g: &Graph,
    logit_a: Var,
    logit_b: Var,
    targets: &[f32],
    weights: Option<&[f32]>,
    red: Reduction,
) -> Var {
    product_named(
        g,
        "bce_product_logits",
        "targets",
        logit_a,
        logit_b,
        targets,
        weights,
        red,
    )
}

#[allow(clippy::too_many_arguments)]
fn product_named(
    g: &Graph,
    loss: &str,
    what: &str,
    logit_a: Var,
    logit_b: Var,
    targets: &[f32],
    weights: Option<&[f32]>,
    red: Reduction,
) -> Var {
    check_len(loss, what, targets.len(), rows(g, logit_a));
    check_range(loss, what, targets, 0.0, 1.0);
    pointwise_loss_n(g, loss, [logit_a, logit_b], weights, red, |i, [a, b]| {
        product_point(a, b, targets[i])
    })
}

/// One sample of [`bce_product_logits`]: the loss and its derivatives with respect to `a` and
/// `b`, from two shared exponentials (three when the product is above one half).
#[inline]
fn product_point(a: f32, b: f32, t: f32) -> (f32, [f32; 2]) {
    let (ea, eb) = ((-a.abs()).exp(), (-b.abs()).exp());
    // σ(x) and σ(-x) from e^-|x|.
    let sig = |x: f32, e: f32| {
        let r = 1.0 / (1.0 + e);
        if x >= 0.0 {
            (r, e * r)
        } else {
            (e * r, r)
        }
    };
    let ((sa, sna), (sb, snb)) = (sig(a, ea), sig(b, eb));
    // log σ(x) = min(x, 0) - log1p(e^-|x|).
    let log_p = a.min(0.0) - ea.ln_1p() + b.min(0.0) - eb.ln_1p();
    let p = sa * sb;
    // dl/da = σ(-a) ((1 - t) p / (1 - p) - t), likewise for b.
    let (log_q, da, db) = if p < 0.5 {
        // 1 - p is at least 1/2: log1p and the ratio are accurate as they stand.
        let odds = p / (1.0 - p);
        let c = (1.0 - t) * odds - t;
        ((-p).ln_1p(), sna * c, snb * c)
    } else {
        // Here a, b > 0. 1 - p = (e^-a + e^-b + e^-a-b) p, so
        // log(1 - p) = -min(a, b) + log(1 + e^-|a-b| + e^-max(a, b)) + log p, and
        // σ(-a) p / (1 - p) = σ(a) / (1 + e^(a-b) + e^-b): no ratio of two tiny numbers.
        let d = (-(a - b).abs()).exp();
        let log_q = -a.min(b) + (1.0 + d + ea.min(eb)).ln() + log_p;
        // An exponent beyond f32 makes 1/d infinite, which sends its ratio to the limit 0.
        let (e_ab, e_ba) = if a >= b { (1.0 / d, d) } else { (d, 1.0 / d) };
        let da = (1.0 - t) * sa / (1.0 + e_ab + eb) - t * sna;
        let db = (1.0 - t) * sb / (1.0 + e_ba + ea) - t * snb;
        (log_q, da, db)
    };
    (-(t * log_p + (1.0 - t) * log_q), [da, db])
}

/// The three parts of the ESMM loss, each a `(1, 1)` node: `total` is the one to differentiate,
/// `ctr` and `ctcvr` are for logging.
#[derive(Debug, Clone, Copy)]
pub struct EsmmLoss {
    /// `ctr + ctcvr_weight * ctcvr`.
    pub total: Var,
    /// `BCE(click, pCTR)`.
    pub ctr: Var,
    /// `BCE(click * long_read, pCTR * pCVR)`.
    pub ctcvr: Var,
}

/// The ESMM teacher loss (Ma et al., SIGIR 2018) over the entire impression space:
/// `BCE(y, pCTR) + w * BCE(y z, pCTR * pCVR)` with `pCTR = σ(ctr_logit)`,
/// `pCVR = σ(cvr_logit)`. pCVR never sees a label directly: it learns through the product.
///
/// Shapes: `ctr_logit`, `cvr_logit` `(n, 1)`; `click` (y) and `click_and_long_read` (y z) `n`
/// entries in `[0, 1]`; every part of the result `(1, 1)`.
///
/// ```
/// use dmtl_loss::{esmm_loss, Reduction};
/// use dmtl_tensor::{Graph, ParamStore};
/// use ndarray::array;
/// let store = ParamStore::new();
/// let g = Graph::new(&store);
/// let ctr = g.input(array![[2.0f32], [-1.0]]);
/// let cvr = g.input(array![[0.0f32], [0.0]]);
/// let l = esmm_loss(&g, ctr, cvr, &[1.0, 0.0], &[1.0, 0.0], 1.0, Reduction::Mean);
/// assert!((g.scalar(l.total) - g.scalar(l.ctr) - g.scalar(l.ctcvr)).abs() < 1e-6);
/// ```
///
/// # Panics
/// When the logits are not both `(n, 1)`, a label slice has not `n` entries or holds a value
/// outside `[0, 1]`, or `ctcvr_weight` is negative or not finite.
pub fn esmm_loss(
    g: &Graph,
    ctr_logit: Var,
    cvr_logit: Var,
    click: &[f32],
    click_and_long_read: &[f32],
    ctcvr_weight: f32,
    red: Reduction,
) -> EsmmLoss {
    assert!(
        ctcvr_weight.is_finite() && ctcvr_weight >= 0.0,
        "dmtl-loss: esmm_loss: ctcvr_weight must be finite and >= 0, got {ctcvr_weight}"
    );
    let ctr = bce_named(g, "esmm_loss", "click", ctr_logit, click, None, red);
    let ctcvr = product_named(
        g,
        "esmm_loss",
        "click_and_long_read",
        ctr_logit,
        cvr_logit,
        click_and_long_read,
        None,
        red,
    );
    let total = g.add(ctr, g.scale(ctcvr, ctcvr_weight));
    EsmmLoss { total, ctr, ctcvr }
}
