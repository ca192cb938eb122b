//! Adam (Kingma & Ba), lazy for sparse gradients, with L2 or decoupled (AdamW) weight decay.

use ndarray::{Array2, ArrayView2, Zip};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::state::{slot_state_methods, Slots};
use super::{NonFiniteUpdate, Optimizer};
use crate::params::{Grad, Grads, ParamId, ParamStore, SparseGrad};

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
    /// The first and second moments of each parameter.
    #[serde(skip)]
    moments: Slots<2>,
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
            moments: Slots::default(),
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

    /// True when the update of `id` with `g` keeps every value finite; reads only.
    fn update_is_finite(&self, c: &AdamStep, store: &ParamStore, id: ParamId, g: &Grad) -> bool {
        let value = store.value(id);
        let state = self.moments.get(id).map(|[m, v]| (m, v));
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
        value: ArrayView2<'_, f32>,
        state: Option<(&Array2<f32>, &Array2<f32>)>,
        s: &SparseGrad,
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
        let c = self.constants(self.t);
        let moments = self.moments.entries(store.len());
        let mut jobs = Vec::new();
        for (i, (value, slot)) in store.values_mut().zip(moments.iter_mut()).enumerate() {
            if let Some(g) = grads.get(ParamId(i)) {
                let [m, v] = slot.get_or_insert_with(|| {
                    [
                        Array2::zeros(value.raw_dim()),
                        Array2::zeros(value.raw_dim()),
                    ]
                });
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
        // Parameters are checked side by side (the many small embedding rows and the dense
        // layers alike); the first failing one in id order is reported, as a sequential scan
        // would.
        let all: Vec<(ParamId, &Grad)> = grads.iter().collect();
        let this = &*self;
        let store_ref = &*store;
        if let Some((param, _)) = all
            .into_par_iter()
            .find_first(|(id, g)| !this.update_is_finite(&c, store_ref, *id, g))
        {
            return Err(NonFiniteUpdate {
                param,
                name: store.get(param).name.clone(),
            });
        }
        self.step(store, grads);
        Ok(())
    }

    slot_state_methods!(moments, ["m", "v"]);
}
