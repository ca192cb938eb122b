//! Parameter initialisers.

use ndarray::Array2;
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use serde::{Deserialize, Serialize};

/// How to fill a new parameter matrix of shape `(rows, cols)`.
///
/// For a linear layer stored as PyTorch does, `(out_features, in_features)`, the fan-in is
/// `cols` and the fan-out is `rows`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// All zeros (biases).
    Zeros,
    /// A constant.
    Constant(f32),
    /// Normal with mean 0 and the given standard deviation (embedding tables).
    Normal(f32),
    /// Uniform on `[-a, a]`.
    Uniform(f32),
    /// Xavier/Glorot uniform: `U(-s, s)`, `s = sqrt(6 / (fan_in + fan_out))`.
    XavierUniform,
    /// He/Kaiming normal for ReLU layers: `N(0, 2 / fan_in)`.
    HeNormal,
    /// He/Kaiming uniform, PyTorch's default for `nn.Linear` weights: `U(-s, s)`, `s = 1/sqrt(fan_in)`.
    HeUniform,
}

impl Init {
    /// Draws a `(rows, cols)` matrix.
    ///
    /// # Shapes
    /// -> `(rows, cols)`.
    ///
    /// # Panics
    /// When the standard deviation of [`Init::Normal`] or the bound of [`Init::Uniform`] is
    /// negative or not finite.
    pub fn sample<R: Rng + ?Sized>(self, rows: usize, cols: usize, rng: &mut R) -> Array2<f32> {
        let (fan_in, fan_out) = (cols.max(1) as f32, rows.max(1) as f32);
        let uniform = |a: f32, rng: &mut R| {
            let d = Uniform::new_inclusive(-a, a);
            Array2::from_shape_simple_fn((rows, cols), || d.sample(rng))
        };
        match self {
            Init::Zeros => Array2::zeros((rows, cols)),
            Init::Constant(c) => Array2::from_elem((rows, cols), c),
            Init::Normal(std) => {
                let d = Normal::new(0.0, std).expect("standard deviation must be finite and >= 0");
                Array2::from_shape_simple_fn((rows, cols), || d.sample(rng))
            }
            Init::Uniform(a) => uniform(a, rng),
            Init::XavierUniform => uniform((6.0 / (fan_in + fan_out)).sqrt(), rng),
            Init::HeNormal => {
                let d = Normal::new(0.0, (2.0 / fan_in).sqrt()).unwrap();
                Array2::from_shape_simple_fn((rows, cols), || d.sample(rng))
            }
            Init::HeUniform => uniform(1.0 / fan_in.sqrt(), rng),
        }
    }
}
