//! Optimizer state: the tensors kept per parameter, and their one file format.
//!
//! Every optimizer keeps, for each parameter it has updated, a fixed list of tensors shaped
//! like the parameter (its *slots*: SGD's `velocity`, Adam's `m` and `v`, Adagrad's
//! `accumulator`), plus a step count. In a file, slot `s` of parameter `p` is the f32 tensor
//! `s.p` (`m.teacher.gate.ctr.weight`, say) with the parameter's 2-d shape, and the step count
//! is the header's metadata entry `steps`. Adam's states written before the step count was
//! stored have the same tensors and no `steps` entry.

use std::collections::HashMap;
use std::path::Path;

use ndarray::Array2;

use crate::error::TensorError;
use crate::params::{ParamId, ParamStore};
use crate::tensor_file::{self, TensorFile};

/// The metadata key of the step count.
const STEPS: &str = "steps";

/// Per-parameter state tensors, `N` per parameter (Adam's `m` and `v`), indexed by parameter
/// id and created at a parameter's first update.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slots<const N: usize> {
    per_param: Vec<Option<[Array2<f32>; N]>>,
}

impl<const N: usize> Slots<N> {
    /// One entry per parameter of a store of `n`, grown to that length when shorter.
    pub(crate) fn entries(&mut self, n: usize) -> &mut [Option<[Array2<f32>; N]>] {
        if self.per_param.len() < n {
            self.per_param.resize(n, None);
        }
        &mut self.per_param
    }

    /// The state of `id`, if it was ever updated.
    pub(crate) fn get(&self, id: ParamId) -> Option<&[Array2<f32>; N]> {
        self.per_param.get(id.0).and_then(Option::as_ref)
    }

    /// Every parameter's state, borrowed, in id order (see [`super::Optimizer::state`]).
    pub(crate) fn view(&self) -> Vec<(ParamId, Vec<&Array2<f32>>)> {
        self.per_param
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (ParamId(i), s.iter().collect())))
            .collect()
    }

    /// Replaces every state by `state` (see [`super::Optimizer::set_state`]).
    ///
    /// # Panics
    /// When a parameter has not `N` tensors.
    pub(crate) fn replace(&mut self, state: Vec<(ParamId, Vec<Array2<f32>>)>) {
        self.per_param.clear();
        for (id, tensors) in state {
            let n = tensors.len();
            let tensors: [Array2<f32>; N] = tensors.try_into().unwrap_or_else(|_| {
                panic!("dmtl-tensor: optimizer state: {n} tensors for {N} slots")
            });
            self.entries(id.0 + 1)[id.0] = Some(tensors);
        }
    }
}

/// [`Optimizer`](super::Optimizer)'s state methods (`slots`, `state`, `set_state`, `steps`,
/// `set_steps`) for an optimizer whose slots, named `$names`, live in its [`Slots`] field
/// `$field` and whose step count is its field `t`.
macro_rules! slot_state_methods {
    ($field:ident, $names:expr) => {
        fn slots(&self) -> &'static [&'static str] {
            &$names
        }

        fn state(&self) -> Vec<(ParamId, Vec<&Array2<f32>>)> {
            self.$field.view()
        }

        fn set_state(&mut self, state: Vec<(ParamId, Vec<Array2<f32>>)>) {
            self.$field.replace(state);
        }

        fn steps(&self) -> u64 {
            self.t
        }

        fn set_steps(&mut self, t: u64) {
            self.t = t;
        }
    };
}
pub(crate) use slot_state_methods;

/// The safetensors bytes of an optimizer's state (see the module's documentation).
pub(crate) fn to_safetensors(
    slots: &[&str],
    state: Vec<(ParamId, Vec<&Array2<f32>>)>,
    steps: u64,
    store: &ParamStore,
) -> Vec<u8> {
    let tensors = state.into_iter().flat_map(|(id, tensors)| {
        let param = &store.get(id).name;
        slots
            .iter()
            .zip(tensors)
            .map(move |(slot, t)| (format!("{slot}.{param}"), t.shape().to_vec(), t))
    });
    let metadata = HashMap::from([(STEPS.to_string(), steps.to_string())]);
    tensor_file::encode(tensors, Some(metadata))
}

/// A state read back by [`from_safetensors`]: the step count (`None` in a file written before
/// it was stored) and the tensors, as [`super::Optimizer::set_state`] takes them.
pub(crate) type Decoded = (Option<u64>, Vec<(ParamId, Vec<Array2<f32>>)>);

/// Reads the state in `bytes` for an optimizer with `slots` over `store`, checking every
/// tensor's name, dtype and shape; errors name `origin` and the first tensor (in name order)
/// that does not fit.
pub(crate) fn from_safetensors(
    slots: &[&str],
    bytes: &[u8],
    store: &ParamStore,
    origin: &Path,
) -> Result<Decoded, TensorError> {
    let file = TensorFile::parse(bytes, origin)?;
    let steps = match file.metadata(STEPS) {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            file.mismatch(format!("metadata `{STEPS}` is `{text}`, not a step count"))
        })?),
    };
    let mut found: Vec<Vec<Option<Array2<f32>>>> = vec![vec![None; slots.len()]; store.len()];
    for key in file.names() {
        let (slot, param) = key
            .split_once('.')
            .and_then(|(s, p)| Some((slots.iter().position(|&x| x == s)?, p)))
            .ok_or_else(|| {
                let expected: Vec<String> =
                    slots.iter().map(|s| format!("`{s}.<parameter>`")).collect();
                file.mismatch(format!(
                    "tensor `{key}` is not a state tensor of this optimizer ({})",
                    expected.join(" or ")
                ))
            })?;
        let id = store.id(param).ok_or_else(|| {
            file.mismatch(format!(
                "tensor `{key}`: the model has no parameter `{param}` (is this the state of another model?)"
            ))
        })?;
        let value = store.value(id);
        let t = file.matrix(key, value.shape(), value.dim())?;
        found[id.0][slot] = Some(t.expect("a name the file lists"));
    }
    let mut state = Vec::new();
    for (i, tensors) in found.into_iter().enumerate() {
        if tensors.iter().all(Option::is_none) {
            continue;
        }
        if let Some(k) = tensors.iter().position(Option::is_none) {
            let param = &store.get(ParamId(i)).name;
            return Err(file.mismatch(format!(
                "the state of `{param}` is incomplete: `{}.{param}` is missing",
                slots[k]
            )));
        }
        state.push((ParamId(i), tensors.into_iter().flatten().collect()));
    }
    Ok((steps, state))
}
