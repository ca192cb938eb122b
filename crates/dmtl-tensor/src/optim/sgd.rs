//! Stochastic gradient descent with momentum.

use ndarray::{Array2, Zip};
use serde::{Deserialize, Serialize};

use super::rows::{decayed, for_rows};
use super::state::{slot_state_methods, Slots};
use super::Optimizer;
use crate::params::{Grads, ParamId, ParamStore};

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
    velocity: Slots<1>,
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
            velocity: Slots::default(),
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
        let velocity = self.velocity.entries(store.len());
        for (id, g) in grads.iter() {
            let value = store.value_mut(id);
            let gv = decayed(g, value, self.weight_decay);
            let (lr, m) = (self.lr, self.momentum);
            if m == 0.0 {
                for_rows(g, value, &gv, &mut [], |mut p, g, _| p.scaled_add(-lr, &g));
            } else {
                let [vel] = velocity[id.0].get_or_insert_with(|| [Array2::zeros(value.raw_dim())]);
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

    slot_state_methods!(velocity, ["velocity"]);
}
