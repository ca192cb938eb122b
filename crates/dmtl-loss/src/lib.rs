//! Losses for multi-task teachers and distilled two-tower students, each with its gradient.
//!
//! Every loss is a function on a [`dmtl_tensor::Graph`] that returns a `(1, 1)` node, built as one
//! custom op with a closed-form gradient (see [`pointwise`]). All of them:
//!
//! - take logits as `(n, 1)` nodes and labels as `&[f32]` of length `n` (checked);
//! - accept optional per-sample weights and a [`Reduction`] (weighted mean or sum);
//! - are stable on logits: finite values and gradients for logits of `±1e4` (see [`stable`]).
//!
//! | loss | formula per sample |
//! |---|---|
//! | [`bce_with_logits`] | `softplus(x) - t x` |
//! | [`bce_product_logits`] | BCE on `σ(a) σ(b)` |
//! | [`esmm_loss`] | `BCE(y, σ(a)) + w BCE(y z, σ(a) σ(b))` |
//! | [`soft_bce`] | `softplus(x) - q x`, `q` the teacher's probability |
//! | [`kl_distill`] | `T^2 KL(σ(s/T) ‖ σ(x/T))` |
//! | [`mse_logits`] | `(x - s)^2`, `s` the teacher's logit |
//! | [`distill_mix`] | `α soft + (1 - α) hard` |
//! | [`mse_log_duration`] | `(x - ln(1 + d))^2` |
//! | [`weighted_logistic`] | `y d softplus(-x) + (1 - y) softplus(x)` |
//!
//! A one-output model (the two-tower student) trains on an [`Objective`]: the built-in ones
//! ([`builtin`]: DMTL's distillation and the paper's baselines) and [`Focal`] ([`focal`]). A
//! configuration names one by its `type` in [`OBJECTIVES`] ([`ObjectiveConfig`]); a
//! new objective is one `impl Objective` and one line there (`docs/extending.md`).
//!
//! ```
//! use dmtl_loss::{esmm_loss, Reduction};
//! use dmtl_tensor::{Graph, ParamKind, ParamStore};
//! use ndarray::array;
//! let mut store = ParamStore::new();
//! let ctr = store.add("ctr_logit", array![[0.3f32], [-0.2]], ParamKind::Dense);
//! let cvr = store.add("cvr_logit", array![[0.1f32], [0.4]], ParamKind::Dense);
//! let g = Graph::new(&store);
//! let loss = esmm_loss(&g, g.param(ctr), g.param(cvr), &[1.0, 0.0], &[1.0, 0.0], 1.0, Reduction::Mean);
//! let grads = g.backward(loss.total);
//! // Both logits of the clicked long read are pushed up.
//! assert!(grads.get(ctr).unwrap().values()[[0, 0]] < 0.0);
//! assert!(grads.get(cvr).unwrap().values()[[0, 0]] < 0.0);
//! ```

#![deny(missing_docs)]

pub mod bce;
pub mod builtin;
pub mod distill;
pub mod duration;
pub mod focal;
pub mod objective;
pub mod objectives;
pub mod pointwise;
pub mod registry;
pub mod stable;

pub use bce::{bce_product_logits, bce_with_logits, esmm_loss, EsmmLoss};
pub use builtin::{ClickBce, Distill, DistillKind, LogDurationMse, LongReadBce, WeightedLogistic};
pub use distill::{distill_mix, kl_distill, mse_logits, soft_bce};
pub use duration::{mse_log_duration, weighted_logistic};
pub use focal::Focal;
pub use objective::{Objective, OutputKind, Targets};
pub use objectives::{ObjectiveConfig, OBJECTIVES};
pub use pointwise::{pointwise_loss, pointwise_loss_n, Reduction};
pub use registry::{Configured, Registered, RegistryError};
