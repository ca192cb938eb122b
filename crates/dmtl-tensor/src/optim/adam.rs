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
    /// Where [`Optimizer::try_step`] writes a dense parameter's new value and moments before
    /// it knows they are all finite; kept from step to step so they are not allocated anew.
    #[serde(skip)]
    next: Slots<3>,
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
            next: Slots::default(),
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
    fn update_is_finite(
        moments: &Slots<2>,
        c: &AdamStep,
        store: &ParamStore,
        id: ParamId,
        g: &Grad,
    ) -> bool {
        let value = store.value(id);
        let state = moments.get(id).map(|[m, v]| (m, v));
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
                Self::sparse_update_is_finite(c, value, state, s)
            }
        }
    }

    /// [`Adam::update_is_finite`] of a sparse gradient on values or moments that are not
    /// contiguous.
    fn sparse_update_is_finite(
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

impl Adam {
    /// Updates in place, with step constants `c`, every parameter with a gradient for which
    /// `skip` is false, creating moments at a parameter's first update.
    fn update_in_place(
        &mut self,
        c: &AdamStep,
        store: &mut ParamStore,
        grads: &Grads,
        skip: &[bool],
    ) {
        let moments = self.moments.entries(store.len());
        let mut jobs = Vec::new();
        for (i, (value, slot)) in store.values_mut().zip(moments.iter_mut()).enumerate() {
            if skip.get(i).copied().unwrap_or(false) {
                continue;
            }
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
            .for_each(|(value, m, v, g)| adam_update(c, value, m, v, g));
    }
}

/// A dense parameter's value, moments and gradient as slices in one (row-major) order, when
/// all four are laid out so.
fn dense_slices<'a>(
    value: ArrayView2<'a, f32>,
    state: Option<&'a [Array2<f32>; 2]>,
    g: &'a Grad,
) -> Option<[&'a [f32]; 4]> {
    let (Grad::Dense(d), Some([m, v])) = (g, state) else {
        return None;
    };
    Some([
        value.to_slice()?,
        m.as_slice()?,
        v.as_slice()?,
        d.as_slice()?,
    ])
}

/// Adam's update of `p`, `m`, `v` with `g` written to `next`; true when every new entry is
/// finite. Large parameters are split over Rayon's threads.
fn update_into(c: &AdamStep, [p, m, v, g]: [&[f32]; 4], next: &mut [Array2<f32>; 3]) -> bool {
    let [np, nm, nv] = next;
    let (np, nm, nv) = (
        np.as_slice_mut().expect("standard layout"),
        nm.as_slice_mut().expect("standard layout"),
        nv.as_slice_mut().expect("standard layout"),
    );
    let run = |p: &[f32],
               m: &[f32],
               v: &[f32],
               g: &[f32],
               np: &mut [f32],
               nm: &mut [f32],
               nv: &mut [f32]| {
        let mut ok = true;
        for i in 0..p.len() {
            let (a, b, e) = c.apply(p[i], m[i], v[i], g[i]);
            (np[i], nm[i], nv[i]) = (a, b, e);
            ok &= a.is_finite() & b.is_finite() & e.is_finite();
        }
        ok
    };
    const CHUNK: usize = 1 << 14;
    if p.len() < 2 * CHUNK {
        return run(p, m, v, g, np, nm, nv);
    }
    p.par_chunks(CHUNK)
        .zip(m.par_chunks(CHUNK))
        .zip(v.par_chunks(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .zip(np.par_chunks_mut(CHUNK))
        .zip(nm.par_chunks_mut(CHUNK))
        .zip(nv.par_chunks_mut(CHUNK))
        .map(|((((((p, m), v), g), np), nm), nv)| run(p, m, v, g, np, nm, nv))
        .reduce(|| true, |a, b| a & b)
}

/// A dense parameter's new value, first and second moment, staged by
/// [`Optimizer::try_step`] before they are kept.
type Next = [Array2<f32>; 3];

/// The slot of `id` from an iterator over slots by ascending id (`id`s are asked in
/// ascending order).
fn nth_slot<'a, T: 'a>(
    slots: &mut impl Iterator<Item = (usize, &'a mut T)>,
    id: ParamId,
) -> &'a mut T {
    slots
        .find(|(i, _)| *i == id.0)
        .map(|(_, s)| s)
        .expect("a slot for every parameter, asked in id order")
}

impl Optimizer for Adam {
    fn step(&mut self, store: &mut ParamStore, grads: &Grads) {
        self.t += 1;
        let c = self.constants(self.t);
        self.update_in_place(&c, store, grads, &[]);
    }

    /// Refuses a step that would leave a value or moment non-finite, changing nothing. A
    /// dense parameter with moments computes its new value and moments in one pass, checking
    /// them as it goes, into buffers of its own, which are swapped in only when every
    /// parameter passed. The others (embedding tables, whose few touched rows are cached by
    /// the check for the update that follows, and parameters at their first update) are
    /// checked first, reading only what the update would touch, and updated in place after.
    /// The values are those of [`Optimizer::step`], bit for bit.
    fn try_step(&mut self, store: &mut ParamStore, grads: &Grads) -> Result<(), NonFiniteUpdate> {
        let c = self.constants(self.t + 1);
        let n = store.len();
        let moments = &self.moments;
        let store_ref = &*store;
        // Each parameter with a gradient, with the buffers its new value and moments go to
        // when it is a dense parameter with moments (`None`: checked, then updated in place).
        let mut jobs: Vec<(ParamId, &Grad, Option<&mut Next>)> = Vec::new();
        let mut dense_slots = self.next.entries(n).iter_mut().enumerate();
        for (id, g) in grads.iter() {
            let value = store_ref.value(id);
            let next = dense_slices(value, moments.get(id), g).is_some().then(|| {
                let slot = nth_slot(&mut dense_slots, id);
                let shape = value.raw_dim();
                if !slot.as_ref().is_some_and(|b| b[0].raw_dim() == shape) {
                    *slot = Some([
                        Array2::zeros(shape),
                        Array2::zeros(shape),
                        Array2::zeros(shape),
                    ]);
                }
                slot.as_mut().expect("just filled")
            });
            jobs.push((id, g, next));
        }
        // Side by side; the first failing parameter in id order is reported, as a sequential
        // scan would. Each verdict: (parameter, staged in buffers, finite).
        let verdicts: Vec<(ParamId, bool, bool)> = jobs
            .into_par_iter()
            .map(|(id, g, next)| match next {
                Some(next) => {
                    let slices = dense_slices(store_ref.value(id), moments.get(id), g)
                        .expect("checked above");
                    (id, true, update_into(&c, slices, next))
                }
                None => (
                    id,
                    false,
                    Self::update_is_finite(moments, &c, store_ref, id, g),
                ),
            })
            .collect();
        if let Some(&(param, _, _)) = verdicts.iter().find(|v| !v.2) {
            return Err(NonFiniteUpdate {
                param,
                name: store.get(param).name.clone(),
            });
        }
        self.t += 1;
        let mut staged = vec![false; n];
        for &(id, in_buffers, _) in &verdicts {
            staged[id.0] = in_buffers;
        }
        let moments = self.moments.entries(n);
        let all = store
            .values_mut()
            .zip(self.next.entries(n).iter_mut().zip(moments.iter_mut()));
        for (_, (value, (next, state))) in all.enumerate().filter(|(i, _)| staged[*i]) {
            let [np, nm, nv] = next.as_mut().expect("written above");
            let [m, v] = state.as_mut().expect("has moments");
            std::mem::swap(value, np);
            std::mem::swap(m, nm);
            std::mem::swap(v, nv);
        }
        self.update_in_place(&c, store, grads, &staged);
        Ok(())
    }

    slot_state_methods!(moments, ["m", "v"]);
}
