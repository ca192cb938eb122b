//! Small building blocks: a linear layer and a multi-layer perceptron over a [`ParamStore`].

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::graph::{Activation, Graph, Var};
use crate::init::Init;
use crate::params::{ParamId, ParamStore};

/// A fully connected layer `y = act(x W^T + b)`, stored as PyTorch's `nn.Linear`:
/// `<name>.weight` is `(out, in)`, `<name>.bias` is `(out,)`.
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    /// The `(out, in)` weight.
    pub weight: ParamId,
    /// The `(1, out)` bias.
    pub bias: ParamId,
    /// Input width.
    pub in_dim: usize,
    /// Output width.
    pub out_dim: usize,
}

impl Linear {
    /// Registers `<name>.weight` (initialised with `init`) and `<name>.bias` (zeros).
    ///
    /// # Panics
    /// When either name is already registered.
    pub fn new<R: Rng + ?Sized>(
        store: &mut ParamStore,
        name: &str,
        in_dim: usize,
        out_dim: usize,
        init: Init,
        rng: &mut R,
    ) -> Self {
        let weight = store.weight(&format!("{name}.weight"), out_dim, in_dim, init, rng);
        let bias = store.bias(&format!("{name}.bias"), out_dim);
        Linear {
            weight,
            bias,
            in_dim,
            out_dim,
        }
    }

    /// The layer's output for the rows of `x`.
    ///
    /// # Shapes
    /// `x`: `(batch, in)` -> `(batch, out)`.
    ///
    /// # Panics
    /// When `x` does not have `in` columns.
    pub fn forward(&self, g: &Graph<'_>, x: Var, act: Activation) -> Var {
        g.linear(x, g.param(self.weight), Some(g.param(self.bias)), act)
    }
}

/// Configuration of a multi-layer perceptron.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Widths of the layers' outputs, e.g. `[256, 128]`.
    pub hidden: Vec<usize>,
    /// Activation after every layer but the last.
    pub activation: Activation,
    /// Activation after the last layer.
    pub last_activation: Activation,
}

/// A stack of [`Linear`] layers, named `<name>.layer.<k>`.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// The layers in order.
    pub layers: Vec<Linear>,
    activation: Activation,
    last_activation: Activation,
}

impl Mlp {
    /// Registers the layers; ReLU layers get He initialisation, others Xavier.
    ///
    /// # Panics
    /// When a name `<name>.layer.<k>.weight` or `.bias` is already registered.
    pub fn new<R: Rng + ?Sized>(
        store: &mut ParamStore,
        name: &str,
        in_dim: usize,
        cfg: &MlpConfig,
        rng: &mut R,
    ) -> Self {
        let mut layers = Vec::new();
        let mut d = in_dim;
        for (k, &h) in cfg.hidden.iter().enumerate() {
            let act = if k + 1 == cfg.hidden.len() {
                cfg.last_activation
            } else {
                cfg.activation
            };
            let init = if act == Activation::Relu {
                Init::HeUniform
            } else {
                Init::XavierUniform
            };
            layers.push(Linear::new(
                store,
                &format!("{name}.layer.{k}"),
                d,
                h,
                init,
                rng,
            ));
            d = h;
        }
        Mlp {
            layers,
            activation: cfg.activation,
            last_activation: cfg.last_activation,
        }
    }

    /// The activation after layer `k` ([`MlpConfig::last_activation`] for the last one).
    pub fn activation_of(&self, k: usize) -> Activation {
        if k + 1 == self.layers.len() {
            self.last_activation
        } else {
            self.activation
        }
    }

    /// Width of the output (the input width when there is no layer).
    pub fn out_dim(&self, in_dim: usize) -> usize {
        self.layers.last().map_or(in_dim, |l| l.out_dim)
    }

    /// The MLP's output for the rows of `x` (`x` itself without layers).
    ///
    /// # Shapes
    /// `x`: `(batch, in)` -> `(batch, hidden.last())`.
    ///
    /// # Panics
    /// When `x` does not have the first layer's `in` columns.
    pub fn forward(&self, g: &Graph<'_>, mut x: Var) -> Var {
        let n = self.layers.len();
        for (k, l) in self.layers.iter().enumerate() {
            let act = if k + 1 == n {
                self.last_activation
            } else {
                self.activation
            };
            x = l.forward(g, x, act);
        }
        x
    }
}
