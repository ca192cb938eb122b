//! Optimizers: SGD (with momentum), Adam (lazy for embedding rows), Adagrad.
//!
//! Each takes the [`Grads`] of one backward pass and updates the [`ParamStore`] in place. A
//! sparse gradient (an embedding table) updates only the rows it holds: rows a batch did not
//! touch keep their values and their optimizer state exactly (the "lazy" update of TensorFlow's
//! LazyAdam and PyTorch's SparseAdam).

use std::path::Path;

use ndarray::{Array2, ArrayViewMut1, Zip};
use rayon::prelude::*;
use safetensors::tensor::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::TensorError;

use crate::params::{Grad, Grads, ParamId, ParamStore};

/// An update refused because it would have written a NaN or an infinity into a parameter (or
/// the optimizer's state); neither the parameters nor the state were changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonFiniteUpdate {
    /// The first parameter whose new value would not be finite.
    pub param: ParamId,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for NonFiniteUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the update of `{}` is not finite (nothing was applied)",
            self.name
        )
    }
}

impl std::error::Error for NonFiniteUpdate {}

/// An optimizer: applies one step of gradients to the parameters.
pub trait Optimizer {
    /// Updates `store` with `grads`, unchecked: a large enough learning rate can write NaN or
    /// infinite values. Training loops use [`Optimizer::try_step`].
    fn step(&mut self, store: &mut ParamStore, grads: &Grads);

    /// Updates `store` with `grads` only when every new value (parameters and state) is
    /// finite; otherwise changes nothing and names the first offending parameter.
    ///
    /// This default snapshots the optimizer and the touched parameters, steps, and rolls back
    /// on failure; [`Adam`] overrides it with a read-only check before the in-place update.
    fn try_step(&mut self, store: &mut ParamStore, grads: &Grads) -> Result<(), NonFiniteUpdate>
    where
        Self: Clone,
    {
        let saved_self = self.clone();
        let saved: Vec<(ParamId, Array2<f32>)> = grads
            .iter()
            .map(|(id, _)| (id, store.value(id).to_owned()))
            .collect();
        self.step(store, grads);
        let bad = grads
            .iter()
            .map(|(id, _)| id)
            .find(|&id| store.value(id).iter().any(|x| !x.is_finite()))
            .or_else(|| {
                let finite = self
                    .state()
                    .iter()
                    .all(|(_, s)| s.iter().all(|x| x.is_finite()));
                (!finite).then(|| grads.iter().next().map(|(id, _)| id))?
            });
        match bad {
            None => Ok(()),
            Some(param) => {
                *self = saved_self;
                for (id, v) in saved {
                    *store.value_mut(id) = v;
                }
                Err(NonFiniteUpdate {
                    param,
                    name: store.get(param).name.clone(),
                })
            }
        }
    }

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

/// The constants of one Adam step.
#[derive(Clone, Copy)]
struct AdamStep {
    b1: f32,
    b2: f32,
    eps: f32,
    step: f32,
    inv_sqrt_bc2: f32,
    l2: f32,
    decay: f32,
}

impl AdamStep {
    /// The new `(p, m, v)` of one element. The L2 term is added from the value before its
    /// update (as `decayed` does), so no decayed copy of the gradient is allocated.
    #[inline(always)]
    fn apply(&self, p: f32, m: f32, v: f32, g: f32) -> (f32, f32, f32) {
        let g = if self.l2 != 0.0 { g + p * self.l2 } else { g };
        let m = self.b1 * m + (1.0 - self.b1) * g;
        let v = self.b2 * v + (1.0 - self.b2) * g * g;
        let p = p - (self.decay * p + self.step * m / (v.sqrt() * self.inv_sqrt_bc2 + self.eps));
        (p, m, v)
    }

    #[inline(always)]
    fn finite(&self, p: f32, m: f32, v: f32, g: f32) -> bool {
        let (p, m, v) = self.apply(p, m, v, g);
        p.is_finite() & m.is_finite() & v.is_finite()
    }
}

impl Adam {
    fn constants(&self, t: u64) -> AdamStep {
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(t as i32);
        let bc2 = 1.0 - b2.powi(t as i32);
        AdamStep {
            b1,
            b2,
            eps: self.eps,
            step: self.lr / bc1,
            inv_sqrt_bc2: 1.0 / bc2.sqrt(),
            l2: if self.decoupled {
                0.0
            } else {
                self.weight_decay
            },
            decay: if self.decoupled {
                self.lr * self.weight_decay
            } else {
                0.0
            },
        }
    }

    /// The moments as safetensors bytes, `m.<parameter>` and `v.<parameter>` (f32, the
    /// parameter's 2-d shape) for every parameter updated so far; the step count is not
    /// included ([`Optimizer::steps`]).
    pub fn state_to_safetensors(&self, store: &ParamStore) -> Vec<u8> {
        let mut out = ParamStore::new();
        for (i, (m, v)) in self.m.iter().zip(&self.v).enumerate() {
            if let (Some(m), Some(v)) = (m, v) {
                let name = &store.get(ParamId(i)).name;
                out.add(&format!("m.{name}"), m.clone(), crate::ParamKind::Dense);
                out.add(&format!("v.{name}"), v.clone(), crate::ParamKind::Dense);
            }
        }
        out.to_safetensors_bytes()
    }

    /// Replaces the moments with those in `bytes` (as written by
    /// [`Adam::state_to_safetensors`] for a store with the same names and shapes). On error
    /// nothing changes and the message names `origin` and the first tensor that does not fit.
    pub fn load_state_safetensors(
        &mut self,
        bytes: &[u8],
        store: &ParamStore,
        origin: &Path,
    ) -> Result<(), TensorError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| TensorError::Format {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mismatch = |reason: String| TensorError::Mismatch {
            path: origin.to_path_buf(),
            reason,
        };
        let n = store.len();
        let (mut m, mut v): (Vec<Option<Array2<f32>>>, Vec<Option<Array2<f32>>>) =
            (vec![None; n], vec![None; n]);
        let mut names = st.names();
        names.sort();
        for key in names {
            let t = st.tensor(key).expect("listed name");
            let (slot, param) = match key.split_once('.') {
                Some(("m", p)) => (&mut m, p),
                Some(("v", p)) => (&mut v, p),
                _ => {
                    return Err(mismatch(format!(
                        "tensor `{key}` is not an Adam moment (`m.<parameter>` or `v.<parameter>`)"
                    )))
                }
            };
            let id = store.id(param).ok_or_else(|| {
                mismatch(format!(
                    "tensor `{key}`: the model has no parameter `{param}` (is this the state of another model?)"
                ))
            })?;
            let shape = store.value(id).shape().to_vec();
            if t.dtype() != Dtype::F32 || t.shape() != shape.as_slice() {
                return Err(mismatch(format!(
                    "tensor `{key}` is {:?} {:?}, the model expects F32 {:?}",
                    t.dtype(),
                    t.shape(),
                    shape
                )));
            }
            let vals: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            slot[id.0] = Some(Array2::from_shape_vec((shape[0], shape[1]), vals).expect("checked"));
        }
        if let Some(i) = (0..n).find(|&i| m[i].is_some() != v[i].is_some()) {
            return Err(mismatch(format!(
                "the moments of `{}` are incomplete (one of `m.` and `v.` is missing)",
                store.get(ParamId(i)).name
            )));
        }
        self.m = m;
        self.v = v;
        Ok(())
    }

    /// True when the update of `id` with `g` keeps every value finite; reads only.
    fn update_is_finite(&self, c: &AdamStep, store: &ParamStore, id: ParamId, g: &Grad) -> bool {
        let value = store.value(id);
        let state = self
            .m
            .get(id.0)
            .and_then(|m| m.as_ref())
            .zip(self.v.get(id.0).and_then(|v| v.as_ref()));
        match g {
            Grad::Dense(d) => match state {
                Some((m, v)) => {
                    let z = Zip::from(value).and(m).and(v).and(d);
                    if value.len() >= 1 << 15 {
                        z.par_fold(
                            || true,
                            |ok, &p, &m, &v, &g| ok & c.finite(p, m, v, g),
                            |a, b| a & b,
                        )
                    } else {
                        z.fold(true, |ok, &p, &m, &v, &g| ok & c.finite(p, m, v, g))
                    }
                }
                None => Zip::from(value)
                    .and(d)
                    .fold(true, |ok, &p, &g| ok & c.finite(p, 0.0, 0.0, g)),
            },
            Grad::Sparse(s) => {
                let d = value.ncols();
                if let (Some(pv), Some((Some(mv), Some(vv))), Some(gv)) = (
                    value.as_slice(),
                    state.map(|(m, v)| (m.as_slice(), v.as_slice())),
                    s.values.as_slice(),
                ) {
                    // Plain slices, as in the update itself.
                    return s.rows.iter().enumerate().all(|(k, &r)| {
                        let at = r as usize * d..(r as usize + 1) * d;
                        pv[at.clone()]
                            .iter()
                            .zip(&mv[at.clone()])
                            .zip(&vv[at])
                            .zip(&gv[k * d..(k + 1) * d])
                            .fold(true, |ok, (((&p, &m), &v), &g)| ok & c.finite(p, m, v, g))
                    });
                }
                self.sparse_update_is_finite(c, value, state, s)
            }
        }
    }

    /// [`Adam::update_is_finite`] of a sparse gradient on values or moments that are not
    /// contiguous.
    fn sparse_update_is_finite(
        &self,
        c: &AdamStep,
        value: ndarray::ArrayView2<'_, f32>,
        state: Option<(&Array2<f32>, &Array2<f32>)>,
        s: &crate::SparseGrad,
    ) -> bool {
        s.rows.iter().enumerate().all(|(k, &r)| {
            let r = r as usize;
            let gv = s.values.row(k);
            match state {
                Some((m, v)) => Zip::from(value.row(r))
                    .and(m.row(r))
                    .and(v.row(r))
                    .and(gv)
                    .fold(true, |ok, &p, &m, &v, &g| ok & c.finite(p, m, v, g)),
                None => Zip::from(value.row(r))
                    .and(gv)
                    .fold(true, |ok, &p, &g| ok & c.finite(p, 0.0, 0.0, g)),
            }
        })
    }
}

/// Adam's update of one parameter with its moments `m`, `v` and gradient `g`.
fn adam_update(
    c: &AdamStep,
    value: &mut Array2<f32>,
    m: &mut Array2<f32>,
    v: &mut Array2<f32>,
    g: &Grad,
) {
    let update = |p: &mut f32, m: &mut f32, v: &mut f32, g: f32| {
        (*p, *m, *v) = c.apply(*p, *m, *v, g);
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
            // Lazy: only the rows the batch touched change, values and moments alike.
            let d = value.ncols();
            if let (Some(pv), Some(mv), Some(vv), Some(gv)) = (
                value.as_slice_mut(),
                m.as_slice_mut(),
                v.as_slice_mut(),
                s.values.as_slice(),
            ) {
                // Plain slices: a Zip per short row costs more than the row's update.
                for (k, &r) in s.rows.iter().enumerate() {
                    let at = r as usize * d..(r as usize + 1) * d;
                    let rows = pv[at.clone()]
                        .iter_mut()
                        .zip(&mut mv[at.clone()])
                        .zip(&mut vv[at])
                        .zip(&gv[k * d..(k + 1) * d]);
                    for (((p, m), v), &g) in rows {
                        update(p, m, v, g);
                    }
                }
                return;
            }
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

impl Optimizer for Adam {
    fn step(&mut self, store: &mut ParamStore, grads: &Grads) {
        self.t += 1;
        let n = store.len();
        if self.m.len() < n {
            self.m.resize(n, None);
            self.v.resize(n, None);
        }
        let c = self.constants(self.t);
        let mut jobs = Vec::new();
        for (i, ((value, m), v)) in store
            .values_mut()
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
            .enumerate()
        {
            if let Some(g) = grads.get(ParamId(i)) {
                let m = m.get_or_insert_with(|| Array2::zeros(value.raw_dim()));
                let v = v.get_or_insert_with(|| Array2::zeros(value.raw_dim()));
                jobs.push((value, m, v, g));
            }
        }
        // Parameters are independent: the many small row updates of the embedding tables run
        // side by side instead of on one core while the others wait.
        jobs.into_par_iter()
            .for_each(|(value, m, v, g)| adam_update(&c, value, m, v, g));
    }

    /// Checks every new value first, reading only what the update would touch (the
    /// gradient's rows of an embedding table), then updates in place: a refused step leaves
    /// parameters, moments and the step count unchanged.
    fn try_step(&mut self, store: &mut ParamStore, grads: &Grads) -> Result<(), NonFiniteUpdate> {
        let c = self.constants(self.t + 1);
        if let Some((param, _)) = grads
            .iter()
            .find(|(id, g)| !self.update_is_finite(&c, store, *id, g))
        {
            return Err(NonFiniteUpdate {
                param,
                name: store.get(param).name.clone(),
            });
        }
        self.step(store, grads);
        Ok(())
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
