//! Optimizers: SGD (with momentum), Adam (lazy for embedding rows), Adagrad.
//!
//! Each takes the [`Grads`] of one backward pass and updates the [`ParamStore`] in place. A
//! sparse gradient (an embedding table) updates only the rows it holds: rows a batch did not
//! touch keep their values and their optimizer state exactly (the "lazy" update of TensorFlow's
//! LazyAdam and PyTorch's SparseAdam).

use ndarray::{Array2, ArrayViewMut1, Zip};
use serde::{Deserialize, Serialize};

use crate::params::{Grad, Grads, ParamStore};

/// An optimizer: applies one step of gradients to the parameters.
pub trait Optimizer {
    /// Updates `store` with `grads`.
    fn step(&mut self, store: &mut ParamStore, grads: &Grads);

    /// Named state tensors (moments, accumulators), for checkpoints that resume training.
    fn state(&self) -> Vec<(String, &Array2<f32>)>;

    /// Mutable access to the state tensors, in the order of [`Optimizer::state`].
    fn state_mut(&mut self) -> Vec<(String, &mut Array2<f32>)>;

    /// Steps taken so far.
    fn steps(&self) -> u64;

    /// Sets the step counter (when resuming).
    fn set_steps(&mut self, t: u64);
}

/// Adds `weight_decay * param` to the gradient rows of `rows` (all rows for a dense gradient).
fn decayed(g: &Grad, value: &Array2<f32>, wd: f32) -> Array2<f32> {
    match g {
        Grad::Dense(d) => {
            if wd == 0.0 {
                d.clone()
            } else {
                d + &value.mapv(|x| x * wd)
            }
        }
        Grad::Sparse(s) => {
            let mut out = s.values.clone();
            if wd != 0.0 {
                for (k, &r) in s.rows.iter().enumerate() {
                    let mut row = out.row_mut(k);
                    row.scaled_add(wd, &value.row(r as usize));
                }
            }
            out
        }
    }
}

/// Applies `f(param_row, grad_row, state_rows...)` to the rows a gradient touches.
fn for_rows(
    g: &Grad,
    value: &mut Array2<f32>,
    gvals: &Array2<f32>,
    states: &mut [&mut Array2<f32>],
    f: impl Fn(ArrayViewMut1<'_, f32>, ndarray::ArrayView1<'_, f32>, &mut [ArrayViewMut1<'_, f32>])
        + Sync,
) {
    match g {
        Grad::Dense(_) => {
            // Flatten to one long row: every element is updated independently.
            let n = value.len();
            let v = value
                .view_mut()
                .into_shape_with_order(n)
                .expect("standard layout");
            let gv = gvals
                .view()
                .into_shape_with_order(n)
                .expect("standard layout");
            let mut st: Vec<ArrayViewMut1<'_, f32>> = states
                .iter_mut()
                .map(|s| {
                    s.view_mut()
                        .into_shape_with_order(n)
                        .expect("standard layout")
                })
                .collect();
            f(v, gv, &mut st);
        }
        Grad::Sparse(s) => {
            for (k, &r) in s.rows.iter().enumerate() {
                let r = r as usize;
                let mut st: Vec<ArrayViewMut1<'_, f32>> =
                    states.iter_mut().map(|s| s.row_mut(r)).collect();
                f(value.row_mut(r), gvals.row(k), &mut st);
            }
        }
    }
}

/// Stochastic gradient descent with optional momentum and weight decay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0: plain SGD).
    pub momentum: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    #[serde(skip)]
    velocity: Vec<Option<Array2<f32>>>,
    #[serde(skip)]
    t: u64,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f32) -> Self {
        Sgd {
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
            velocity: Vec::new(),
            t: 0,
        }
    }

    /// With momentum `m`: `v = m v + g; p -= lr v`.
    pub fn with_momentum(mut self, m: f32) -> Self {
        self.momentum = m;
        self
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, store: &mut ParamStore, grads: &Grads) {
        self.t += 1;
        if self.velocity.len() < store.len() {
            self.velocity.resize(store.len(), None);
        }
        for (id, g) in grads.iter() {
            let value = store.value_mut(id);
            let gv = decayed(g, value, self.weight_decay);
            let (lr, m) = (self.lr, self.momentum);
            if m == 0.0 {
                for_rows(g, value, &gv, &mut [], |mut p, g, _| p.scaled_add(-lr, &g));
            } else {
                let vel = self.velocity[id.0].get_or_insert_with(|| Array2::zeros(value.raw_dim()));
                for_rows(g, value, &gv, &mut [vel], |mut p, g, st| {
                    let v = &mut st[0];
                    Zip::from(&mut p).and(v).and(&g).for_each(|p, v, &g| {
                        *v = m * *v + g;
                        *p -= lr * *v;
                    });
                });
            }
        }
    }

    fn state(&self) -> Vec<(String, &Array2<f32>)> {
        self.velocity
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (format!("velocity.{i}"), v)))
            .collect()
    }

    fn state_mut(&mut self) -> Vec<(String, &mut Array2<f32>)> {
        self.velocity
            .iter_mut()
            .enumerate()
            .filter_map(|(i, v)| v.as_mut().map(|v| (format!("velocity.{i}"), v)))
            .collect()
    }

    fn steps(&self) -> u64 {
        self.t
    }

    fn set_steps(&mut self, t: u64) {
        self.t = t;
    }
}

/// Adam (Kingma & Ba), with the lazy row-wise update for sparse gradients and optional
/// weight decay (L2 added to the gradient, or decoupled as AdamW).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to the root of the second moment.
    pub eps: f32,
    /// Weight decay factor.
    pub weight_decay: f32,
    /// Decoupled weight decay (AdamW: `p -= lr * wd * p`) instead of L2 in the gradient.
    pub decoupled: bool,
    #[serde(skip)]
    m: Vec<Option<Array2<f32>>>,
    #[serde(skip)]
    v: Vec<Option<Array2<f32>>>,
    #[serde(skip)]
    t: u64,
}

impl Adam {
    /// Adam with learning rate `lr` and the usual betas 0.9/0.999, eps 1e-8.
    pub fn new(lr: f32) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            m: Vec::new(),
            v: Vec::new(),
            t: 0,
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, store: &mut ParamStore, grads: &Grads) {
        self.t += 1;
        let n = store.len();
        if self.m.len() < n {
            self.m.resize(n, None);
            self.v.resize(n, None);
        }
        let (b1, b2, eps, lr) = (self.beta1, self.beta2, self.eps, self.lr);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        let step = lr / bc1;
        let inv_sqrt_bc2 = 1.0 / bc2.sqrt();
        let l2 = if self.decoupled {
            0.0
        } else {
            self.weight_decay
        };
        let decay = if self.decoupled {
            lr * self.weight_decay
        } else {
            0.0
        };
        for (id, g) in grads.iter() {
            let value = store.value_mut(id);
            let m = self.m[id.0].get_or_insert_with(|| Array2::zeros(value.raw_dim()));
            let v = self.v[id.0].get_or_insert_with(|| Array2::zeros(value.raw_dim()));
            // The L2 term is added element by element from the value before its update (as
            // `decayed` does), so no decayed copy of the gradient is allocated.
            let update = |p: &mut f32, m: &mut f32, v: &mut f32, g: f32| {
                let g = if l2 != 0.0 { g + *p * l2 } else { g };
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p -= decay * *p + step * *m / ((*v).sqrt() * inv_sqrt_bc2 + eps);
            };
            match g {
                Grad::Dense(d) => {
                    let big = value.len() >= 1 << 15;
                    let z = Zip::from(value.view_mut())
                        .and(m.view_mut())
                        .and(v.view_mut())
                        .and(d);
                    if big {
                        z.par_for_each(|p, m, v, &g| update(p, m, v, g));
                    } else {
                        z.for_each(|p, m, v, &g| update(p, m, v, g));
                    }
                }
                Grad::Sparse(s) => {
                    for (k, &r) in s.rows.iter().enumerate() {
                        let r = r as usize;
                        Zip::from(value.row_mut(r))
                            .and(m.row_mut(r))
                            .and(v.row_mut(r))
                            .and(s.values.row(k))
                            .for_each(|p, m, v, &g| update(p, m, v, g));
                    }
                }
            }
        }
    }

    fn state(&self) -> Vec<(String, &Array2<f32>)> {
        let mut out = Vec::new();
        for (i, (m, v)) in self.m.iter().zip(&self.v).enumerate() {
            if let (Some(m), Some(v)) = (m, v) {
                out.push((format!("adam.m.{i}"), m));
                out.push((format!("adam.v.{i}"), v));
            }
        }
        out
    }

    fn state_mut(&mut self) -> Vec<(String, &mut Array2<f32>)> {
        let mut out = Vec::new();
        for (i, (m, v)) in self.m.iter_mut().zip(self.v.iter_mut()).enumerate() {
            if let (Some(m), Some(v)) = (m, v) {
                out.push((format!("adam.m.{i}"), m));
                out.push((format!("adam.v.{i}"), v));
            }
        }
        out
    }

    fn steps(&self) -> u64 {
        self.t
    }

    fn set_steps(&mut self, t: u64) {
        self.t = t;
    }
}

/// Adagrad: `s += g^2; p -= lr g / (sqrt(s) + eps)`, lazy for sparse gradients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adagrad {
    /// Learning rate.
    pub lr: f32,
    /// Added to the root of the accumulator.
    pub eps: f32,
    /// Starting value of the accumulator.
    pub initial_accumulator: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    #[serde(skip)]
    s: Vec<Option<Array2<f32>>>,
    #[serde(skip)]
    t: u64,
}

impl Adagrad {
    /// Adagrad with learning rate `lr`, eps 1e-10, accumulator starting at 0.
    pub fn new(lr: f32) -> Self {
        Adagrad {
            lr,
            eps: 1e-10,
            initial_accumulator: 0.0,
            weight_decay: 0.0,
            s: Vec::new(),
            t: 0,
        }
    }
}

impl Optimizer for Adagrad {
    fn step(&mut self, store: &mut ParamStore, grads: &Grads) {
        self.t += 1;
        if self.s.len() < store.len() {
            self.s.resize(store.len(), None);
        }
        let (lr, eps, init) = (self.lr, self.eps, self.initial_accumulator);
        for (id, g) in grads.iter() {
            let value = store.value_mut(id);
            let gv = decayed(g, value, self.weight_decay);
            let s = self.s[id.0].get_or_insert_with(|| Array2::from_elem(value.raw_dim(), init));
            for_rows(g, value, &gv, &mut [s], |p, g, st| {
                Zip::from(p).and(&mut st[0]).and(&g).for_each(|p, s, &g| {
                    *s += g * g;
                    *p -= lr * g / (s.sqrt() + eps);
                });
            });
        }
    }

    fn state(&self) -> Vec<(String, &Array2<f32>)> {
        self.s
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (format!("adagrad.sum.{i}"), v)))
            .collect()
    }

    fn state_mut(&mut self) -> Vec<(String, &mut Array2<f32>)> {
        self.s
            .iter_mut()
            .enumerate()
            .filter_map(|(i, v)| v.as_mut().map(|v| (format!("adagrad.sum.{i}"), v)))
            .collect()
    }

    fn steps(&self) -> u64 {
        self.t
    }

    fn set_steps(&mut self, t: u64) {
        self.t = t;
    }
}
