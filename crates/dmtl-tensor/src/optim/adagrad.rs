//! Adagrad, lazy for sparse gradients.

use ndarray::{Array2, Zip};
use serde::{Deserialize, Serialize};

use super::rows::{decayed, for_rows};
use super::state::{slot_state_methods, Slots};
use super::Optimizer;
use crate::params::{Grads, ParamId, ParamStore};

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
    sums: Slots<1>,
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
            sums: Slots::default(),
            t: 0,
        }
    }
}

impl Optimizer for Adagrad {
    fn step(&mut self, store: &mut ParamStore, grads: &Grads) {
        self.t += 1;
        let sums = self.sums.entries(store.len());
        let (lr, eps, init) = (self.lr, self.eps, self.initial_accumulator);
        for (id, g) in grads.iter() {
            let value = store.value_mut(id);
            let gv = decayed(g, value, self.weight_decay);
            let [s] = sums[id.0].get_or_insert_with(|| [Array2::from_elem(value.raw_dim(), init)]);
            for_rows(g, value, &gv, &mut [s], |p, g, st| {
                Zip::from(p).and(&mut st[0]).and(&g).for_each(|p, s, &g| {
                    *s += g * g;
                    *p -= lr * g / (s.sqrt() + eps);
                });
            });
        }
    }

    slot_state_methods!(sums, ["accumulator"]);
}
