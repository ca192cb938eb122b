//! Adding a loss: a focal loss (Lin et al., "Focal Loss for Dense Object Detection", 2017) as a
//! new student objective, with its gradient checked against finite differences.
//!
//! `l = -(t (1 - p)^γ log p + (1 - t) p^γ log(1 - p))`, `p = σ(x)`: confident, correct samples
//! are down-weighted so training concentrates on the hard ones. `γ = 0` is plain BCE.
//!
//! Run: `cargo run -p dmtl-loss --example focal_loss`

use dmtl_loss::stable::{log_sigmoid, sigmoid};
use dmtl_loss::{bce_with_logits, pointwise_loss, Objective, Reduction, Targets};
use dmtl_tensor::{Graph, ParamKind, ParamStore, Var};
use ndarray::Array2;

/// Focal loss on the long-read label.
pub struct FocalLongRead {
    /// Focusing exponent `γ >= 0`.
    pub gamma: f32,
}

impl Objective for FocalLongRead {
    fn name(&self) -> &str {
        "focal_long_read"
    }

    fn loss(&self, g: &Graph, logits: Var, t: &Targets) -> Var {
        let gamma = self.gamma;
        let y = t.long_read;
        // The per-sample loss and its derivative, in terms of stable log-sigmoids:
        // with p = σ(x), dp/dx = p (1 - p), d log p / dx = 1 - p, d log(1 - p) / dx = -p.
        pointwise_loss(
            g,
            self.name(),
            logits,
            t.weights,
            Reduction::Mean,
            |i, x| {
                let (p, q) = (sigmoid(x), sigmoid(-x)); // q = 1 - p without cancellation
                let (log_p, log_q) = (log_sigmoid(x), log_sigmoid(-x));
                let pos = q.powf(gamma); // (1 - p)^γ
                let neg = p.powf(gamma); // p^γ
                let l = -(y[i] * pos * log_p + (1.0 - y[i]) * neg * log_q);
                // d/dx [(1-p)^γ log p] = -γ (1-p)^γ p log p + (1-p)^γ (1-p)
                // d/dx [p^γ log(1-p)]  =  γ p^γ (1-p) log(1-p) - p^γ p
                let d_pos = -gamma * pos * p * log_p + pos * q;
                let d_neg = gamma * neg * q * log_q - neg * p;
                (l, -(y[i] * d_pos + (1.0 - y[i]) * d_neg))
            },
        )
    }
}

fn main() {
    let x = [-2.0f32, -0.3, 0.1, 1.5, 3.0, -4.0];
    let long_read = [0.0f32, 1.0, 0.0, 1.0, 1.0, 0.0];
    let zeros = [0.0f32; 6];
    let targets = Targets {
        click: &long_read,
        duration: &zeros,
        long_read: &long_read,
        teacher: None,
        weights: None,
    };
    let mut store = ParamStore::new();
    let id = store.add(
        "logits",
        Array2::from_shape_vec((6, 1), x.to_vec()).unwrap(),
        ParamKind::Dense,
    );
    let loss_and_grad = |store: &ParamStore, obj: &dyn Objective| {
        let g = Graph::new(store);
        let l = obj.loss(&g, g.param(id), &targets);
        let grads = g.backward(l);
        (g.scalar(l), grads.get(id).unwrap().values().clone())
    };

    // γ = 0 is BCE.
    let (focal0, _) = loss_and_grad(&store, &FocalLongRead { gamma: 0.0 });
    let bce = {
        let g = Graph::new(&store);
        g.scalar(bce_with_logits(
            &g,
            g.param(id),
            &long_read,
            None,
            Reduction::Mean,
        ))
    };
    assert!(
        (focal0 - bce).abs() < 1e-6,
        "focal(γ=0) {focal0} vs BCE {bce}"
    );

    // The gradient of γ = 2 against central finite differences.
    let focal = FocalLongRead { gamma: 2.0 };
    let (value, analytic) = loss_and_grad(&store, &focal);
    let h = 1e-3f32;
    for r in 0..x.len() {
        let orig = store.value(id)[[r, 0]];
        store.value_mut(id)[[r, 0]] = orig + h;
        let (lp, _) = loss_and_grad(&store, &focal);
        store.value_mut(id)[[r, 0]] = orig - h;
        let (lm, _) = loss_and_grad(&store, &focal);
        store.value_mut(id)[[r, 0]] = orig;
        let numeric = (lp - lm) / (2.0 * h);
        let a = analytic[[r, 0]];
        assert!(
            (a - numeric).abs() < 1e-3 + 1e-2 * a.abs(),
            "row {r}: analytic {a}, numeric {numeric}"
        );
    }
    println!("focal loss (γ = 2) {value:.5} vs BCE {bce:.5}; gradient matches finite differences");
}
