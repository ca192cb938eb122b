//! Reverse-mode automatic differentiation over BLAS-backed ndarray.
//!
//! - [`Graph`]: a tape of operations on 2-d `f32` matrices (`batch x features`); every op
//!   records its output and [`Graph::backward`] returns the gradient of a scalar loss with
//!   respect to every parameter, sparse for embedding tables.
//! - [`ParamStore`]: named parameters with initialisers ([`Init`]), saved and loaded as
//!   safetensors that PyTorch reads with `safetensors.torch.load_file`.
//! - [`optim`]: SGD, Adam (lazy on embedding rows), Adagrad, each saving and restoring its
//!   state in one safetensors format; [`Grads`] clips by global norm.
//! - [`nn`]: a linear layer and an MLP; [`bf16`]: an optional bf16 inference path for MLPs;
//!   [`Precision`]: mixed-precision training, the tape's dense products in bf16 with f32
//!   accumulation ([`bf16_gemm`]);
//!   [`threads`]: the one place deciding BLAS and Rayon thread counts.
//!
//! Every public function taking or returning tensors gives their shapes in a `# Shapes`
//! section, and every one that can panic says when in a `# Panics` section.
//!
//! ```
//! use dmtl_tensor::{nn::{Mlp, MlpConfig}, optim::{Adam, Optimizer}, Activation, Graph, ParamStore};
//! use ndarray::array;
//! use rand::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let mut store = ParamStore::new();
//! let cfg = MlpConfig { hidden: vec![8, 1], activation: Activation::Relu, last_activation: Activation::Identity };
//! let mlp = Mlp::new(&mut store, "mlp", 2, &cfg, &mut rng);
//! let mut adam = Adam::new(1e-2);
//! let x = array![[0.0f32, 1.0], [1.0, 0.0]];
//! let target = array![[1.0f32], [-1.0]];
//! let mut last = f32::INFINITY;
//! for _ in 0..200 {
//!     let g = Graph::new(&store);
//!     let y = mlp.forward(&g, g.input(x.clone()));
//!     let diff = g.sub(y, g.input(target.clone()));
//!     let loss = g.mean_all(g.square(diff));
//!     last = g.scalar(loss);
//!     let grads = g.backward(loss);
//!     drop(g);
//!     adam.step(&mut store, &grads);
//! }
//! assert!(last < 1e-2);
//! ```

#![deny(missing_docs)]

// Links the system OpenBLAS into every binary that uses this crate.
#[cfg(feature = "blas")]
extern crate blas_src;

#[cfg(target_arch = "x86_64")]
mod amx;
pub mod bf16;
pub mod bf16_gemm;
pub mod error;
pub mod graph;
pub mod init;
pub mod io;
pub mod nn;
pub mod optim;
pub mod parallel;
pub mod params;
pub mod precision;
mod tensor_file;
pub mod threads;
mod uninit;

pub use error::TensorError;
pub use graph::{Activation, BackwardFn, Graph, Op, Pooling, Unary, Var};
pub use init::Init;
pub use params::{Grad, Grads, Param, ParamId, ParamKind, ParamStore, SparseGrad};
pub use precision::Precision;
