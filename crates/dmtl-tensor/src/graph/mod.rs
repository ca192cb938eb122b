//! The tape: a graph of operations recorded during the forward pass, walked backwards once.
//!
//! Every op appends a node holding its output value and an [`Op`] naming its inputs. Nodes are
//! appended in evaluation order, so the tape is already topologically sorted: [`Graph::backward`]
//! walks it from the loss towards the inputs, and the one `match` in `backward_node` holds every
//! gradient rule.
//!
//! One concern per file: `tape.rs` the tape itself (nodes, values, inputs, parameters),
//! `op.rs` the recipe of each node, `unary.rs` the element-wise functions and activations,
//! `forward.rs` and `embedding.rs` the forward pass of each op, `backprop.rs` the backward
//! pass and every gradient rule, `kernels.rs` the loops and GEMMs both passes share.

mod backprop;
mod embedding;
mod forward;
mod kernels;
mod op;
mod tape;
mod unary;

pub use op::{BackwardFn, Op, Pooling};
pub use tape::Graph;
pub use unary::{Activation, Unary};

/// Handle of a node on a [`Graph`]: a value computed during the forward pass.
///
/// A `Var` belongs to the graph that made it: handing it to another graph panics (an index
/// past that graph's nodes) or reads an unrelated node, a programming error the graph's
/// methods do not check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Var(pub(crate) usize);
