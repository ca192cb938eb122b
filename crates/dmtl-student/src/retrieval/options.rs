//! The choices of a search: tiling, threading and the kernel that computes the scores.

use super::error::RetrievalError;

/// How the work of a search is split; the defaults were tuned on the reference workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// Queries per GEMM tile.
    pub query_block: usize,
    /// Items per GEMM tile, and per block of the bf16 filter (rounded up to 32).
    pub item_block: usize,
    /// Threading of the GEMM path: see [`Threading`].
    pub threading: Threading,
    /// How scores are computed: see [`Kernel`].
    pub kernel: Kernel,
}

/// How scores are computed; the result is the same exact top-K either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// A bf16 filter with exact rescoring where the CPU has AVX-512 BF16 (see
    /// [`bf16_filter_supported`]), else [`Kernel::Gemm`]. Queries with a non-finite component
    /// or one above ~1e15 in magnitude take the GEMM path; such items are scored exactly.
    Auto,
    /// f32 GEMM tiles scanned against the running K-th best score: what [`Kernel::Auto`] runs
    /// on a CPU without AVX-512 BF16.
    Gemm,
    /// The bf16 filter that [`Kernel::Auto`] picks where the CPU has AVX-512 BF16, asked for
    /// explicitly: a search fails with [`RetrievalError::BadOption`] on other CPUs. Queries
    /// the filter cannot bound, empty inputs and vectors longer than 4096 take the GEMM path,
    /// as under [`Kernel::Auto`].
    Bf16Filter,
}

impl Kernel {
    /// The kernel a search with `self` runs on this CPU: [`Kernel::Auto`] becomes
    /// [`Kernel::Bf16Filter`] where [`bf16_filter_supported`], else [`Kernel::Gemm`]; the
    /// others stay as they are.
    ///
    /// ```
    /// use dmtl_student::retrieval::{bf16_filter_supported, Kernel};
    /// let auto = Kernel::Auto.resolve().unwrap();
    /// assert_eq!(auto == Kernel::Bf16Filter, bf16_filter_supported());
    /// ```
    ///
    /// # Errors
    /// [`RetrievalError::BadOption`] for [`Kernel::Bf16Filter`] on a CPU without AVX-512 BF16.
    pub fn resolve(self) -> Result<Kernel, RetrievalError> {
        self.resolve_on(bf16_filter_supported())
    }

    /// The kernel a search with `self` runs on a CPU with (`bf16_filter = true`) or without
    /// AVX-512 BF16: what [`Kernel::resolve`] answers on such a CPU, asked on any CPU.
    ///
    /// ```
    /// use dmtl_student::retrieval::Kernel;
    /// assert_eq!(Kernel::Auto.resolve_on(false), Ok(Kernel::Gemm));
    /// assert_eq!(Kernel::Auto.resolve_on(true), Ok(Kernel::Bf16Filter));
    /// assert!(Kernel::Bf16Filter.resolve_on(false).is_err());
    /// ```
    ///
    /// # Errors
    /// [`RetrievalError::BadOption`] for [`Kernel::Bf16Filter`] when `bf16_filter` is false.
    pub fn resolve_on(self, bf16_filter: bool) -> Result<Kernel, RetrievalError> {
        match self {
            Kernel::Auto if bf16_filter => Ok(Kernel::Bf16Filter),
            Kernel::Auto | Kernel::Gemm => Ok(Kernel::Gemm),
            Kernel::Bf16Filter if bf16_filter => Ok(Kernel::Bf16Filter),
            Kernel::Bf16Filter => Err(RetrievalError::BadOption(
                "the bf16 filter needs a CPU with AVX-512 BF16, which this one lacks",
            )),
        }
    }
}

/// `true` when this CPU runs the bf16 filter of [`Kernel::Auto`] (x86-64 with AVX-512F and
/// AVX-512 BF16).
pub fn bf16_filter_supported() -> bool {
    super::bf16::supported()
}

/// Where the parallelism of a search comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threading {
    /// Rayon tasks each own a share of the (query, item) grid and call single-threaded GEMMs.
    RayonTasks,
    /// One GEMM at a time with all BLAS threads, then the tile is scanned in parallel.
    BlasThreads,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            query_block: 256,
            item_block: 512,
            threading: Threading::RayonTasks,
            kernel: Kernel::Auto,
        }
    }
}
