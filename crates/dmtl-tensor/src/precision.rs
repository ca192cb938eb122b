//! The arithmetic of a tape's dense products: f32 throughout, or bf16 operands with f32
//! accumulation (mixed-precision training, on CPUs with AVX-512 BF16).
//!
//! [`Precision::Bf16`] changes only [`Op::MatMul`](crate::Op::MatMul) and
//! [`Op::Linear`](crate::Op::Linear): their forward product and both backward products
//! (`dX = dY W`, `dW = dY^T X`) round their two operands to bf16 and accumulate in f32
//! ([`crate::bf16_gemm::matmul`]). Everything else on the tape (element-wise ops, losses,
//! reductions, embeddings), the parameters themselves (the f32 master weights) and the
//! optimizers' state stay f32. [`Precision::F32`], the default, is the f32 GEMM unchanged.
//!
//! ```
//! use dmtl_tensor::{Graph, ParamStore, Precision};
//! let p: Precision = "bf16".parse().unwrap();
//! let store = ParamStore::new();
//! let g = Graph::with_precision(&store, p);
//! // On a CPU without AVX-512 BF16 the tape computes in f32.
//! assert_eq!(g.precision(), p.for_cpu(dmtl_tensor::bf16::available()));
//! assert!("fp8".parse::<Precision>().unwrap_err().contains("fp8"));
//! ```

use serde::{Deserialize, Serialize};

/// The arithmetic of a tape's dense products ([`crate::Graph::with_precision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 operands and accumulation (the BLAS SGEMM); the default.
    #[default]
    F32,
    /// Operands rounded to bf16 (round to nearest, ties to even), products accumulated in f32;
    /// needs AVX-512 BF16 ([`crate::bf16::available`]), [`Precision::F32`] elsewhere.
    Bf16,
}

impl Precision {
    /// The name used in configuration files: `"f32"` or `"bf16"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// What a CPU that has (`cpu_bf16`) or lacks AVX-512 BF16 computes when asked for `self`:
    /// [`Precision::Bf16`] becomes [`Precision::F32`] without it.
    pub fn for_cpu(self, cpu_bf16: bool) -> Precision {
        match self {
            Precision::Bf16 if !cpu_bf16 => Precision::F32,
            p => p,
        }
    }

    /// What this CPU computes when asked for `self` ([`Precision::for_cpu`] of
    /// [`crate::bf16::available`]).
    pub fn on_this_cpu(self) -> Precision {
        self.for_cpu(crate::bf16::available())
    }

    /// The one line to print when `self` falls back to f32 on this CPU (`None` when it does
    /// not); `what` names the model being trained.
    pub fn fallback_notice(self, what: &str) -> Option<String> {
        (self.on_this_cpu() != self).then(|| {
            format!(
                "precision = \"{}\": this CPU lacks AVX-512 BF16, training the {what} in f32",
                self.as_str()
            )
        })
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    /// `"f32"` or `"bf16"`; the error names the value and the accepted ones.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!(
                "unknown precision \"{other}\": expected \"f32\" or \"bf16\""
            )),
        }
    }
}
