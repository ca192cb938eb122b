//! Element-wise functions: the value and the derivative of each, and the activations fused
//! into [`Graph::linear`](super::Graph::linear).

/// Element-wise functions: each is an `f` and its derivative in terms of the input `x` and the
/// output `y`. Adding one is a variant here plus two match arms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unary {
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `log sigmoid(x) = -softplus(-x)`, stable for any `x`.
    LogSigmoid,
    /// `softplus(x) = log(1 + e^x)`, stable for any `x`.
    Softplus,
    /// `e^x`.
    Exp,
    /// `ln x` (for `x > 0`).
    Log,
    /// `-x`.
    Neg,
    /// `x^2`.
    Square,
}

#[inline]
fn softplus(x: f32) -> f32 {
    // log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large |x|.
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl Unary {
    #[inline]
    pub(super) fn f(self, x: f32) -> f32 {
        match self {
            Unary::Relu => x.max(0.0),
            Unary::Sigmoid => sigmoid(x),
            Unary::Tanh => x.tanh(),
            Unary::LogSigmoid => -softplus(-x),
            Unary::Softplus => softplus(x),
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Neg => -x,
            Unary::Square => x * x,
        }
    }

    /// dy/dx given the input `x` and the output `y`.
    #[inline]
    pub(super) fn df(self, x: f32, y: f32) -> f32 {
        match self {
            Unary::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Unary::Sigmoid => y * (1.0 - y),
            Unary::Tanh => 1.0 - y * y,
            Unary::LogSigmoid => sigmoid(-x),
            Unary::Softplus => sigmoid(x),
            Unary::Exp => y,
            Unary::Log => 1.0 / x,
            Unary::Neg => -1.0,
            Unary::Square => 2.0 * x,
        }
    }
}

/// Activation fused into [`Graph::linear`](super::Graph::linear).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// No activation: a plain affine map.
    Identity,
    /// ReLU.
    Relu,
    /// Sigmoid.
    Sigmoid,
    /// Tanh.
    Tanh,
}

impl Activation {
    pub(super) fn unary(self) -> Option<Unary> {
        match self {
            Activation::Identity => None,
            Activation::Relu => Some(Unary::Relu),
            Activation::Sigmoid => Some(Unary::Sigmoid),
            Activation::Tanh => Some(Unary::Tanh),
        }
    }

    /// The activation of one value, with the same formula as the graph's ops.
    #[inline]
    pub(crate) fn apply(self, x: f32) -> f32 {
        self.unary().map_or(x, |u| u.f(x))
    }
}
