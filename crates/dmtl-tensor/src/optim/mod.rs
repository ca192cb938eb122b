//! Optimizers: SGD (with momentum), Adam (lazy for embedding rows), Adagrad.
//!
//! Each takes the [`Grads`] of one backward pass and updates the [`ParamStore`] in place. A
//! sparse gradient (an embedding table) updates only the rows it holds: rows a batch did not
//! touch keep their values and their optimizer state exactly (the "lazy" update of TensorFlow's
//! LazyAdam and PyTorch's SparseAdam).
//!
//! Every optimizer saves and restores its state (its per-parameter tensors and step count)
//! through the same [`Optimizer`] methods and the same safetensors format: see
//! [`Optimizer::state_to_safetensors`].
//!
//! One concern per file: `sgd.rs`, `adam.rs`, `adagrad.rs` the three optimizers, `rows.rs`
//! the row-wise update SGD and Adagrad share, `state.rs` the per-parameter state and its file
//! format.

use std::path::Path;

use ndarray::Array2;

use crate::error::TensorError;
use crate::params::{Grads, ParamId, ParamStore};

mod adagrad;
mod adam;
mod rows;
mod sgd;
mod state;

pub use adagrad::Adagrad;
pub use adam::Adam;
pub use sgd::Sgd;

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

/// An optimizer: applies one step of gradients to the parameters, and saves and restores its
/// state in one format shared by every optimizer.
pub trait Optimizer {
    /// Updates `store` with `grads`, unchecked: a large enough learning rate can write NaN or
    /// infinite values. Training loops use [`Optimizer::try_step`].
    ///
    /// # Shapes
    /// Each gradient: its parameter's `(rows, cols)`, or a sparse one's `(k, cols)` for `k`
    /// rows of an embedding table; the optimizer's state tensors: the parameter's shape.
    ///
    /// # Panics
    /// When a gradient does not fit its parameter (shape, or a row outside the table), or
    /// names a parameter `store` does not have, or `store` is not the one the state was
    /// built for (a parameter's shape differs from its state's).
    fn step(&mut self, store: &mut ParamStore, grads: &Grads);

    /// Updates `store` with `grads` only when every new value (parameters and state) is
    /// finite; otherwise changes nothing and names the first offending parameter.
    ///
    /// This default snapshots the optimizer and the touched parameters, steps, and rolls back
    /// on failure; [`Adam`] overrides it with a read-only check before the in-place update.
    ///
    /// # Shapes
    /// As [`Optimizer::step`].
    ///
    /// # Panics
    /// As [`Optimizer::step`].
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
                    .all(|(_, ts)| ts.iter().all(|s| s.iter().all(|x| x.is_finite())));
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

    /// The names of the tensors kept per parameter (its slots), in the order of
    /// [`Optimizer::state`]: `["velocity"]` for [`Sgd`], `["m", "v"]` for [`Adam`],
    /// `["accumulator"]` for [`Adagrad`].
    fn slots(&self) -> &'static [&'static str];

    /// The state of every parameter updated so far, in id order: one tensor per slot, each
    /// shaped like the parameter. Parameters never updated (and every parameter of SGD
    /// without momentum) have none.
    fn state(&self) -> Vec<(ParamId, Vec<&Array2<f32>>)>;

    /// Replaces the whole state by `state`, given as [`Optimizer::state`] gives it
    /// (parameters absent from it have none). The step count is [`Optimizer::set_steps`]'s.
    ///
    /// # Shapes
    /// Each tensor: its parameter's `(rows, cols)` (not checked here; a later step panics
    /// on a mismatch, [`Optimizer::load_state_safetensors`] checks).
    ///
    /// # Panics
    /// When a parameter has not one tensor per slot.
    fn set_state(&mut self, state: Vec<(ParamId, Vec<Array2<f32>>)>);

    /// Steps taken so far.
    fn steps(&self) -> u64;

    /// Sets the step count (when resuming).
    fn set_steps(&mut self, t: u64);

    /// The state and step count as safetensors bytes, one format for every optimizer: slot
    /// `s` of parameter `p` is the f32 tensor `s.p` with the parameter's 2-d shape (Adam:
    /// `m.<parameter>` and `v.<parameter>`), and the step count is the metadata entry
    /// `steps`. `store` gives the parameters' names.
    ///
    /// # Panics
    /// When the optimizer holds state for a parameter `store` does not have.
    fn state_to_safetensors(&self, store: &ParamStore) -> Vec<u8> {
        state::to_safetensors(self.slots(), self.state(), self.steps(), store)
    }

    /// Replaces the state and step count with those in `bytes`, as written by
    /// [`Optimizer::state_to_safetensors`] for a store with the same names and shapes. A file
    /// without a step count (Adam's, written before it was stored) leaves the count as it is.
    /// On error nothing changes and the error names `origin` and the first tensor that does
    /// not fit.
    fn load_state_safetensors(
        &mut self,
        bytes: &[u8],
        store: &ParamStore,
        origin: &Path,
    ) -> Result<(), TensorError> {
        let (steps, state) = state::from_safetensors(self.slots(), bytes, store, origin)?;
        self.set_state(state);
        if let Some(t) = steps {
            self.set_steps(t);
        }
        Ok(())
    }
}
