//! The teacher's body: what turns the concatenated field embeddings into one logit per task.
//!
//! A body is one type behind [`Body`]; its configuration is a serde type behind [`BuildBody`]
//! that registers the body's parameters (under the `teacher.` prefix) and returns it. The
//! `structure` key of `teacher.toml` names a configuration in [`crate::bodies::BODIES`], which parses the
//! body's own keys beside it (`structure = "mmoe"`, `n_experts = 4`, ...). Adding a body is its
//! file and one line in [`crate::bodies::BODIES`]; the teacher, its training, scoring, checkpoints and the
//! shared tests (`tests/bodies.rs`) then work on it.

use std::fmt::Debug;
use std::sync::Arc;

use dmtl_loss::registry::{parse_typed, Configured, Entry, Parsed};
use dmtl_tensor::{Graph, ParamStore, Var};
use rand::{RngCore, SeedableRng};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::task::TaskLogits;

/// A multi-task body with its parameters registered in a store.
pub trait Body: Send + Sync + Debug {
    /// One logit per task and, for gated bodies, the gate weights.
    ///
    /// # Shapes
    /// `h`: `(n, in_dim)` -> a logit `(n, 1)` per task of [`crate::Task::ALL`]; gates
    /// `(n, experts)` per task (empty for a body without gates).
    fn forward(&self, g: &Graph<'_>, h: Var) -> TaskLogits;
}

/// A body's configuration: the keys beside `structure` in `teacher.toml`.
pub trait BuildBody: Send + Sync + Debug {
    /// Registers the body's parameters in `store`, named `<prefix>.<...>`, on inputs of width
    /// `in_dim`, drawn from `rng`.
    ///
    /// # Panics
    /// When the configuration is invalid ([`BuildBody::invalid_key`]; validated
    /// configurations never are).
    fn build(
        &self,
        store: &mut ParamStore,
        prefix: &str,
        in_dim: usize,
        rng: &mut dyn RngCore,
    ) -> Box<dyn Body>;

    /// The first setting out of range: its key and what it must be; `None` when all are
    /// valid.
    fn invalid_key(&self) -> Option<(&'static str, String)>;
}

fn parse_body<C>(value: toml::Value) -> Result<Parsed<dyn BuildBody>, String>
where
    C: BuildBody + Serialize + DeserializeOwned + 'static,
{
    parse_typed::<C>(value).map(|(c, table)| (Arc::new(c) as Arc<dyn BuildBody>, table))
}

/// The registry entry of body configuration `C` under `name`: `C`'s serde fields are its
/// keys, each with a default.
pub const fn body<C>(name: &'static str) -> Entry<dyn BuildBody>
where
    C: BuildBody + Serialize + DeserializeOwned + 'static,
{
    Entry::new(name, parse_body::<C>)
}

/// A registered body's configuration: `structure` and its keys.
pub type BodyConfig = Configured<dyn BuildBody>;

/// The number of parameters of the body `cfg` on inputs of width `in_dim`, counted before
/// anything of that size is allocated: a body's size is affine in its input width (the first
/// layers of its experts and gates), so it is built on throwaway stores at widths 1, 2 and 3
/// and extrapolated. A body whose size is not affine in the input is built at `in_dim` itself.
///
/// # Panics
/// When the configuration is invalid.
pub fn param_count(cfg: &BodyConfig, in_dim: usize) -> usize {
    let count = |d: usize| {
        let mut store = ParamStore::new();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        cfg.get().build(&mut store, "body", d, &mut rng);
        store.num_scalars()
    };
    let (c1, c2, c3) = (count(1), count(2), count(3));
    if in_dim <= 3 {
        return [c1, c2, c3][in_dim.max(1) - 1];
    }
    if c3 - c2 == c2 - c1 {
        (c2 - c1).saturating_mul(in_dim - 1).saturating_add(c1)
    } else {
        count(in_dim)
    }
}

/// The checks every body makes of its layers: `expert_hidden` (the key named by
/// `expert_key`) has at least one layer, and no width is 0.
pub fn invalid_layers(
    expert_key: &'static str,
    expert_hidden: &[usize],
    tower_hidden: &[usize],
) -> Option<(&'static str, String)> {
    if expert_hidden.is_empty() || expert_hidden.contains(&0) {
        return Some((
            expert_key,
            "needs at least one layer, every width >= 1".into(),
        ));
    }
    if tower_hidden.contains(&0) {
        return Some(("tower_hidden", "every width must be >= 1".into()));
    }
    None
}
