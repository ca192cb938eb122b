//! Exact top-K retrieval by inner product: the serving side of the two-tower student.
//!
//! Two paths compute the scores, and both return exactly the top K of their scores:
//!
//! - `gemm`: scores `S = Q Iᵀ` by GEMM one tile at a time (a block of queries against a block
//!   of items, sized to stay in a core's cache), each tile scanned at once for the K best items
//!   per query, so the full `(queries, items)` score matrix never exists. The scan compares a
//!   run of scores with the query's current K-th best before touching its candidates; on a
//!   large corpus almost every score fails that check, which keeps selection far cheaper than
//!   the GEMM.
//! - `bf16`: on CPUs with AVX-512 BF16 the default [`Kernel::Auto`] replaces the GEMM by a
//!   bf16 filter with a rigorous error bound: only items whose score could reach a query's
//!   current K-th best are rescored exactly (f64 sums of the f32 products, rounded once to
//!   f32; `bound` holds that arithmetic and the error bound), so the result is still exactly
//!   the top K of those exact scores.
//!
//! Both keep each query's running top K in the same buffer (`candidates`), and both cut the
//! work into (query range x item range) tasks on Rayon's pool whose partial top Ks are merged
//! per query at the end, GEMMs running single-threaded inside them (see
//! [`dmtl_tensor::threads`]; `Threading::BlasThreads` runs one multi-threaded GEMM at a time
//! instead).
//! [`options`] holds the choices of a search ([`SearchOptions`], [`Kernel`], [`Threading`]),
//! [`error`] why one cannot run ([`RetrievalError`]).
//!
//! Ordering is deterministic: higher score first, and among equal scores the lower item index.
//! Scores whose value is NaN (from NaN or infinite vector components) make that item
//! ineligible for that query, as if it were excluded.

mod bf16;
mod bound;
mod candidates;
pub mod error;
mod gemm;
pub mod options;

use ndarray::{Array2, ArrayView2, Axis};

use candidates::Candidates;
pub use error::RetrievalError;
pub use options::{bf16_filter_supported, Kernel, SearchOptions, Threading};

/// Index used to pad a result row when fewer than `k` items are eligible for a query.
pub const PAD_INDEX: u32 = u32::MAX;

/// Result of a top-K search: per query, item indices (row numbers into the item matrix) and
/// scores, best first.
///
/// When fewer than `k` items are eligible for a query (exclusions, NaN scores, or `k` larger
/// than the corpus), the row ends with [`PAD_INDEX`] entries whose score is `-inf`.
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    /// Item row numbers, shape `(n_queries, k)`.
    pub indices: Array2<u32>,
    /// Inner products, shape `(n_queries, k)`, non-increasing along each row.
    pub scores: Array2<f32>,
}

/// Exact top-`k` items by inner product for each query.
///
/// Shapes: `queries` `(q, d)`, `items` `(n, d)`; the result holds `(q, k)` arrays. Any `k >= 1`
/// is accepted; beyond the number of eligible items the rows are padded (see [`TopK`]).
/// `exclude`, when given, holds one list per query of item row numbers to skip (e.g. items
/// already seen), in any order and possibly with repeats.
///
/// ```
/// use ndarray::array;
/// use dmtl_student::retrieval::{top_k, PAD_INDEX};
/// let items = array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]];
/// let queries = array![[2.0f32, 1.0]];
/// let r = top_k(queries.view(), items.view(), 2, None).unwrap();
/// assert_eq!(r.indices.row(0).to_vec(), vec![2, 0]); // scores 3 and 2
/// assert_eq!(r.scores.row(0).to_vec(), vec![3.0, 2.0]);
/// // Excluding item 2 and asking for more than is left pads the row.
/// let r = top_k(queries.view(), items.view(), 3, Some(&[vec![2]])).unwrap();
/// assert_eq!(r.indices.row(0).to_vec(), vec![0, 1, PAD_INDEX]);
/// assert_eq!(r.scores[[0, 2]], f32::NEG_INFINITY);
/// ```
///
/// # Errors
/// [`RetrievalError`] on a dimension mismatch, `k = 0`, exclusion lists that do not match the
/// queries or name missing items, or more than `u32::MAX - 1` items.
pub fn top_k(
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    k: usize,
    exclude: Option<&[Vec<u32>]>,
) -> Result<TopK, RetrievalError> {
    top_k_with(queries, items, k, exclude, SearchOptions::default())
}

/// [`top_k`] with explicit tiling, threading and kernel choices.
///
/// # Errors
/// As [`top_k`], and [`RetrievalError::BadOption`] for a block size of 0 or
/// [`Kernel::Bf16Filter`] on a CPU without AVX-512 BF16 (see [`Kernel::resolve`]).
pub fn top_k_with(
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    k: usize,
    exclude: Option<&[Vec<u32>]>,
    opts: SearchOptions,
) -> Result<TopK, RetrievalError> {
    let (nq, d) = queries.dim();
    let (ni, di) = items.dim();
    if d != di {
        return Err(RetrievalError::DimensionMismatch {
            queries: d,
            items: di,
        });
    }
    if k == 0 {
        return Err(RetrievalError::ZeroK);
    }
    if ni >= PAD_INDEX as usize {
        return Err(RetrievalError::TooManyItems(ni));
    }
    if opts.query_block == 0 || opts.item_block == 0 {
        return Err(RetrievalError::BadOption("block sizes must be at least 1"));
    }
    let exclude = match exclude {
        None => None,
        Some(lists) => Some(sorted_exclusions(lists, nq, ni)?),
    };
    if opts.kernel.resolve()? == Kernel::Bf16Filter
        && nq > 0
        && ni > 0
        && (1..=bf16::MAX_DIM).contains(&d)
    {
        let mut lists = bf16::search(queries, items, k, exclude.as_deref(), opts.item_block);
        let rest: Vec<usize> = (0..nq).filter(|&q| lists[q].is_none()).collect();
        if !rest.is_empty() {
            // Queries the filter cannot bound: exact GEMM path.
            let sub = queries.select(Axis(0), &rest);
            let sub_ex: Option<Vec<Vec<u32>>> = exclude
                .as_ref()
                .map(|ex| rest.iter().map(|&q| ex[q].clone()).collect());
            let cands = gemm::search(sub.view(), items, k, sub_ex.as_deref(), opts);
            for (&q, c) in rest.iter().zip(cands) {
                lists[q] = Some(c);
            }
        }
        return Ok(assemble(
            lists.into_iter().map(|l| l.expect("every query answered")),
            k,
        ));
    }
    let cands = gemm::search(queries, items, k, exclude.as_deref(), opts);
    Ok(assemble(cands, k))
}

fn sorted_exclusions(
    lists: &[Vec<u32>],
    nq: usize,
    ni: usize,
) -> Result<Vec<Vec<u32>>, RetrievalError> {
    if lists.len() != nq {
        return Err(RetrievalError::ExcludeCount {
            lists: lists.len(),
            queries: nq,
        });
    }
    lists
        .iter()
        .enumerate()
        .map(|(query, l)| {
            if let Some(&item) = l.iter().find(|&&i| i as usize >= ni) {
                return Err(RetrievalError::ExcludeOutOfRange {
                    query,
                    item,
                    n_items: ni,
                });
            }
            let mut l = l.clone();
            l.sort_unstable();
            l.dedup();
            Ok(l)
        })
        .collect()
}

/// The result from each query's top K.
fn assemble(cands: impl IntoIterator<Item = Candidates>, k: usize) -> TopK {
    let cands: Vec<Candidates> = cands.into_iter().collect();
    let nq = cands.len();
    let mut indices = Array2::from_elem((nq, k), PAD_INDEX);
    let mut scores = Array2::from_elem((nq, k), f32::NEG_INFINITY);
    for (q, c) in cands.into_iter().enumerate() {
        for (j, (s, i)) in c.into_sorted().into_iter().enumerate() {
            indices[[q, j]] = i;
            scores[[q, j]] = s;
        }
    }
    TopK { indices, scores }
}

/// An item matrix held for repeated exact searches, with optional raw ids per row.
#[derive(Debug, Clone)]
pub struct ExactIndex {
    items: Array2<f32>,
    ids: Option<Vec<String>>,
    opts: SearchOptions,
}

impl ExactIndex {
    /// Takes ownership of the item vectors, shape `(n_items, d)`.
    ///
    /// ```
    /// use ndarray::array;
    /// use dmtl_student::retrieval::ExactIndex;
    /// let index = ExactIndex::new(array![[1.0f32, 0.0], [0.0, 1.0]]).unwrap()
    ///     .with_ids(vec!["a".into(), "b".into()]).unwrap();
    /// let r = index.search(array![[0.1f32, 0.9]].view(), 1, None).unwrap();
    /// assert_eq!(index.id(r.indices[[0, 0]]), Some("b"));
    /// ```
    ///
    /// # Errors
    /// [`RetrievalError::TooManyItems`] when row numbers would not fit in `u32`.
    pub fn new(items: Array2<f32>) -> Result<Self, RetrievalError> {
        if items.nrows() >= PAD_INDEX as usize {
            return Err(RetrievalError::TooManyItems(items.nrows()));
        }
        // GEMM and the tile scan want contiguous rows.
        let items = if items.is_standard_layout() {
            items
        } else {
            items.as_standard_layout().into_owned()
        };
        Ok(Self {
            items,
            ids: None,
            opts: SearchOptions::default(),
        })
    }

    /// Attaches one raw id per item row.
    ///
    /// # Errors
    /// [`RetrievalError::IdCount`] when `ids.len()` differs from the number of rows.
    pub fn with_ids(mut self, ids: Vec<String>) -> Result<Self, RetrievalError> {
        if ids.len() != self.items.nrows() {
            return Err(RetrievalError::IdCount {
                ids: ids.len(),
                items: self.items.nrows(),
            });
        }
        self.ids = Some(ids);
        Ok(self)
    }

    /// Replaces the tiling and threading choices.
    pub fn with_options(mut self, opts: SearchOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.nrows()
    }

    /// `true` when the index holds no items.
    pub fn is_empty(&self) -> bool {
        self.items.nrows() == 0
    }

    /// Vector length.
    pub fn dim(&self) -> usize {
        self.items.ncols()
    }

    /// The item matrix, shape `(n_items, d)`.
    pub fn items(&self) -> ArrayView2<'_, f32> {
        self.items.view()
    }

    /// Raw id of item row `index`; `None` without ids, for [`PAD_INDEX`] or out of range.
    pub fn id(&self, index: u32) -> Option<&str> {
        self.ids.as_ref()?.get(index as usize).map(|s| s.as_str())
    }

    /// Exact top-`k` of each query row, shape `(q, d)`; see [`top_k`] for the semantics.
    ///
    /// # Errors
    /// As [`top_k`].
    pub fn search(
        &self,
        queries: ArrayView2<f32>,
        k: usize,
        exclude: Option<&[Vec<u32>]>,
    ) -> Result<TopK, RetrievalError> {
        top_k_with(queries, self.items.view(), k, exclude, self.opts)
    }
}
