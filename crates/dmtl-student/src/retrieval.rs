//! Exact top-K retrieval by inner product: the serving side of the two-tower student.
//!
//! Scores `S = Q Iᵀ` are computed by GEMM one tile at a time (a block of queries against a block
//! of items, sized to stay in a core's cache) and each tile is scanned at once for the K best
//! items per query, so the full `(queries, items)` score matrix never exists. The scan compares
//! a run of scores with the query's current K-th best before touching its candidate buffer; on a large
//! corpus almost every score fails that check, which keeps selection far cheaper than the GEMM.
//!
//! Parallelism: the work is cut into (query range x item range) tasks run on Rayon's pool,
//! each issuing single-threaded GEMMs (see [`dmtl_tensor::threads`]); partial results of the
//! item ranges of one query are merged at the end.
//!
//! On CPUs with AVX-512 BF16 the default [`Kernel::Auto`] replaces the GEMM by a bf16 filter
//! with a rigorous error bound: only items whose score could reach a query's current K-th best
//! are rescored exactly (f64 sums of the f32 products, rounded once to f32), so the result is
//! still exactly the top K of those exact scores; see `bf16_filter.rs`.
//!
//! Ordering is deterministic: higher score first, and among equal scores the lower item index.
//! Scores whose value is NaN (from NaN or infinite vector components) make that item
//! ineligible for that query, as if it were excluded.

use ndarray::{s, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use std::cmp::Ordering;

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

/// Why a search could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RetrievalError {
    /// Queries and items have vectors of different lengths.
    #[error("dimension mismatch: queries have {queries} columns but items have {items}")]
    DimensionMismatch {
        /// Columns of the query matrix.
        queries: usize,
        /// Columns of the item matrix.
        items: usize,
    },
    /// `k` was 0.
    #[error("k must be at least 1")]
    ZeroK,
    /// The item matrix has more rows than a `u32` index can name.
    #[error("{0} items: item indices must fit in u32 (at most 4294967294 items)")]
    TooManyItems(usize),
    /// The exclusion lists do not pair up with the queries.
    #[error("{lists} exclusion lists given for {queries} queries")]
    ExcludeCount {
        /// Number of lists.
        lists: usize,
        /// Number of queries.
        queries: usize,
    },
    /// An exclusion list names an item that does not exist.
    #[error("exclusion list of query {query} names item {item}, but there are {n_items} items")]
    ExcludeOutOfRange {
        /// Query (row) whose list is wrong.
        query: usize,
        /// The item index.
        item: u32,
        /// Number of items.
        n_items: usize,
    },
    /// The raw ids of an [`ExactIndex`] do not pair up with its rows.
    #[error("{ids} raw ids given for {items} item rows")]
    IdCount {
        /// Number of ids.
        ids: usize,
        /// Number of item rows.
        items: usize,
    },
    /// A search option is out of range.
    #[error("invalid search option: {0}")]
    BadOption(&'static str),
}

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
        match self {
            Kernel::Auto if crate::bf16_filter::supported() => Ok(Kernel::Bf16Filter),
            Kernel::Auto | Kernel::Gemm => Ok(Kernel::Gemm),
            Kernel::Bf16Filter if crate::bf16_filter::supported() => Ok(Kernel::Bf16Filter),
            Kernel::Bf16Filter => Err(RetrievalError::BadOption(
                "the bf16 filter needs a CPU with AVX-512 BF16, which this one lacks",
            )),
        }
    }
}

/// `true` when this CPU runs the bf16 filter of [`Kernel::Auto`] (x86-64 with AVX-512F and
/// AVX-512 BF16).
pub fn bf16_filter_supported() -> bool {
    crate::bf16_filter::supported()
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
        && (1..=crate::bf16_filter::MAX_DIM).contains(&d)
    {
        let mut lists =
            crate::bf16_filter::search(queries, items, k, exclude.as_deref(), opts.item_block);
        let rest: Vec<usize> = (0..nq).filter(|&q| lists[q].is_none()).collect();
        if !rest.is_empty() {
            // Queries the filter cannot bound: exact GEMM path.
            let sub = queries.select(Axis(0), &rest);
            let sub_ex: Option<Vec<Vec<u32>>> = exclude
                .as_ref()
                .map(|ex| rest.iter().map(|&q| ex[q].clone()).collect());
            let cands = match opts.threading {
                Threading::RayonTasks => {
                    search_rayon(sub.view(), items, k, sub_ex.as_deref(), opts)
                }
                Threading::BlasThreads => {
                    search_blas(sub.view(), items, k, sub_ex.as_deref(), opts)
                }
            };
            for (&q, c) in rest.iter().zip(cands) {
                lists[q] = Some(c.into_sorted());
            }
        }
        return Ok(assemble_lists(
            lists.into_iter().map(|l| l.expect("every query answered")),
            nq,
            k,
        ));
    }
    let cands = match opts.threading {
        Threading::RayonTasks => search_rayon(queries, items, k, exclude.as_deref(), opts),
        Threading::BlasThreads => search_blas(queries, items, k, exclude.as_deref(), opts),
    };
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

/// Ranking order of (score, index) pairs: higher score first, then the lower index.
#[inline]
pub(crate) fn rank_order(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    // Candidates are never NaN, so the partial order is total here.
    b.0.partial_cmp(&a.0)
        .unwrap_or(Ordering::Equal)
        .then(a.1.cmp(&b.1))
}

/// One query's running top-k: a buffer of candidates with a threshold.
///
/// A candidate is appended in O(1); when the buffer holds `cap` entries it is cut back to the
/// best `k` with a linear-time selection, and the threshold becomes the k-th best score. That
/// costs O(1) amortised per candidate, against O(log k) with unpredictable branches for a heap.
#[derive(Clone)]
struct Candidates {
    k: usize,
    cap: usize,
    /// Once `k` candidates were seen: the k-th best score known; a later item (higher index)
    /// must score strictly above it to matter. Meaningless before.
    threshold: f32,
    filled: bool,
    /// Candidates in increasing index order.
    buf: Vec<(f32, u32)>,
    /// Room for the scores during a cut.
    scratch: Vec<f32>,
}

impl Candidates {
    fn new(k: usize) -> Self {
        Self {
            k,
            cap: k.saturating_mul(2).max(k + 32),
            threshold: f32::NEG_INFINITY,
            filled: false,
            // Reserved lazily: k may exceed the corpus.
            buf: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Adds a non-NaN candidate; during the fill phase any, afterwards only one above the
    /// threshold.
    #[inline]
    fn offer(&mut self, s: f32, i: u32) {
        self.buf.push((s, i));
        if !self.filled {
            if self.buf.len() == self.k {
                // The worst of the first k: nothing at or below it can enter any more.
                self.filled = true;
                self.threshold = self.buf.iter().fold(f32::INFINITY, |m, c| m.min(c.0));
            }
        } else if self.buf.len() >= self.cap {
            self.compact();
        }
    }

    /// Keeps the best `k` and raises the threshold to the k-th best score.
    ///
    /// The buffer is always in increasing index order (items are offered in that order, item
    /// ranges are merged in that order and this cut keeps the order), so among candidates tied
    /// with the k-th best score the first ones in the buffer are those with the lower index.
    fn compact(&mut self) {
        if self.buf.len() > self.k {
            // Selecting on bare scores is much cheaper than on (score, index) pairs.
            self.scratch.clear();
            self.scratch.extend(self.buf.iter().map(|c| c.0));
            let (_, &mut th, _) = self.scratch.select_nth_unstable_by(self.k - 1, |a, b| {
                b.partial_cmp(a).unwrap_or(Ordering::Equal)
            });
            let above = self.buf.iter().filter(|c| c.0 > th).count();
            let mut ties_left = self.k - above;
            self.buf.retain(|c| {
                if c.0 > th {
                    true
                } else if c.0 == th && ties_left > 0 {
                    ties_left -= 1;
                    true
                } else {
                    false
                }
            });
            debug_assert_eq!(self.buf.len(), self.k);
            self.filled = true;
            self.threshold = th;
        } else if self.buf.len() == self.k && !self.filled {
            self.filled = true;
            self.threshold = self.buf.iter().fold(f32::INFINITY, |m, c| m.min(c.0));
        }
    }

    /// Folds in the candidates of the same query from another item range.
    fn merge(&mut self, other: Candidates) {
        self.buf.extend(other.buf);
        self.compact();
    }

    fn into_sorted(mut self) -> Vec<(f32, u32)> {
        self.compact();
        self.buf.sort_unstable_by(rank_order);
        self.buf
    }
}

/// Scores per cheap "anything above the threshold?" check in [`scan_row`].
const CHUNK: usize = 64;

/// `true` when some score of the chunk beats `th`; NaN never does.
///
/// A vertical max into 16 lanes, then one comparison per lane: the loops have fixed trip
/// counts and a `maxps`-shaped select, so they compile to a few SIMD instructions per 16 floats.
#[inline(always)]
fn any_above(chunk: &[f32], th: f32) -> bool {
    let chunk: &[f32; CHUNK] = chunk.try_into().expect("chunk of CHUNK scores");
    let mut acc = [f32::NEG_INFINITY; 16];
    for part in chunk.chunks_exact(16) {
        for l in 0..16 {
            let x = part[l];
            acc[l] = if x > acc[l] { x } else { acc[l] };
        }
    }
    let mut hit = false;
    for a in acc {
        hit |= a > th;
    }
    hit
}

/// Bit `l` set when `chunk[l] > th` (NaN never is).
#[inline(always)]
fn above_mask(chunk: &[f32], th: f32) -> u64 {
    let chunk: &[f32; CHUNK] = chunk.try_into().expect("chunk of CHUNK scores");
    let mut m = 0u64;
    for (l, &x) in chunk.iter().enumerate() {
        m |= ((x > th) as u64) << l;
    }
    m
}

/// Offers one query's scores for items `base..base + row.len()` to its candidates.
///
/// Items arrive in increasing index order, so a score equal to the threshold loses the tie to
/// the kept items and the check can be a strict `>`.
#[inline(always)]
fn scan_row_body(cand: &mut Candidates, row: &[f32], base: u32) {
    let mut j = 0;
    // Fill phase: anything non-NaN enters until k items were seen.
    while !cand.filled && j < row.len() {
        if !row[j].is_nan() {
            cand.offer(row[j], base + j as u32);
        }
        j += 1;
    }
    if j == row.len() {
        return;
    }
    let mut th = cand.threshold;
    let rest = &row[j..];
    let base = base + j as u32;
    let chunks = rest.chunks_exact(CHUNK);
    let tail_at = rest.len() - chunks.remainder().len();
    for (c, chunk) in chunks.enumerate() {
        if any_above(chunk, th) {
            let mut m = above_mask(chunk, th);
            while m != 0 {
                let l = m.trailing_zeros() as usize;
                m &= m - 1;
                // The threshold may have risen since the mask was taken.
                if chunk[l] > th {
                    cand.offer(chunk[l], base + (c * CHUNK + l) as u32);
                    th = cand.threshold;
                }
            }
        }
    }
    for (l, &s) in rest[tail_at..].iter().enumerate() {
        if s > th {
            cand.offer(s, base + (tail_at + l) as u32);
            th = cand.threshold;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_row_avx2(cand: &mut Candidates, row: &[f32], base: u32) {
    scan_row_body(cand, row, base)
}

/// [`scan_row_body`] compiled for the widest vectors the CPU offers (AVX2 when present; the
/// portable build only assumes SSE2).
#[inline]
fn scan_row(cand: &mut Candidates, row: &[f32], base: u32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { scan_row_avx2(cand, row, base) };
        }
    }
    scan_row_body(cand, row, base)
}

/// Sets excluded items of the tile's queries to NaN so the scan skips them.
fn mask_exclusions(
    tile: &mut ndarray::ArrayViewMut2<f32>,
    exclude: Option<&[Vec<u32>]>,
    q0: usize,
    i0: usize,
) {
    let Some(ex) = exclude else { return };
    let i1 = i0 + tile.ncols();
    for (r, mut row) in tile.axis_iter_mut(Axis(0)).enumerate() {
        let list = &ex[q0 + r];
        let from = list.partition_point(|&i| (i as usize) < i0);
        for &i in list[from..].iter().take_while(|&&i| (i as usize) < i1) {
            row[i as usize - i0] = f32::NAN;
        }
    }
}

/// Top-k of queries `q0..q1` against items `i0..i1`, tile by tile, on the calling thread.
#[allow(clippy::too_many_arguments)]
fn search_range(
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    k: usize,
    exclude: Option<&[Vec<u32>]>,
    opts: SearchOptions,
    (q0, q1): (usize, usize),
    (i0, i1): (usize, usize),
) -> Vec<Candidates> {
    let mut cands = vec![Candidates::new(k); q1 - q0];
    let qb = opts.query_block.min(q1 - q0).max(1);
    let ib = opts.item_block.min(i1 - i0).max(1);
    let mut buf = Array2::<f32>::zeros((qb, ib));
    // Item block outer, query block inner: the item block stays in cache across the queries.
    for ia in (i0..i1).step_by(ib) {
        let ie = (ia + ib).min(i1);
        let item_blk = items.slice(s![ia..ie, ..]);
        for qa in (q0..q1).step_by(qb) {
            let qe = (qa + qb).min(q1);
            let mut tile = buf.slice_mut(s![..qe - qa, ..ie - ia]);
            ndarray::linalg::general_mat_mul(
                1.0,
                &queries.slice(s![qa..qe, ..]),
                &item_blk.t(),
                0.0,
                &mut tile,
            );
            mask_exclusions(&mut tile, exclude, qa, ia);
            for (r, row) in tile.rows().into_iter().enumerate() {
                let row = row.as_slice().expect("tile rows are contiguous");
                scan_row(&mut cands[qa - q0 + r], row, ia as u32);
            }
        }
    }
    cands
}

fn split(n: usize, parts: usize) -> Vec<(usize, usize)> {
    let parts = parts.clamp(1, n.max(1));
    (0..parts)
        .map(|p| (n * p / parts, n * (p + 1) / parts))
        .collect()
}

fn search_rayon(
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    k: usize,
    exclude: Option<&[Vec<u32>]>,
    opts: SearchOptions,
) -> Vec<Candidates> {
    let nq = queries.nrows();
    let ni = items.nrows();
    let threads = rayon::current_num_threads().max(1);
    // Prefer splitting queries (no merge needed); split items when queries are too few to
    // give every thread a tile's worth of work.
    let q_parts = threads.min(nq.div_ceil(opts.query_block.min(64)).max(1));
    let i_parts = (threads.div_ceil(q_parts))
        .min(ni.div_ceil(opts.item_block).max(1))
        .max(1);
    let q_ranges = split(nq, q_parts);
    let i_ranges = split(ni, i_parts);
    let tasks: Vec<((usize, usize), (usize, usize))> = q_ranges
        .iter()
        .flat_map(|&qr| i_ranges.iter().map(move |&ir| (qr, ir)))
        .collect();
    let partial: Vec<Vec<Candidates>> = dmtl_tensor::threads::with_blas_threads(1, || {
        tasks
            .par_iter()
            .map(|&(qr, ir)| search_range(queries, items, k, exclude, opts, qr, ir))
            .collect()
    });
    let mut cands: Vec<Candidates> = Vec::with_capacity(nq);
    let mut partial = partial.into_iter();
    for _ in &q_ranges {
        let mut acc = partial.next().expect("one result per task");
        for _ in 1..i_ranges.len() {
            let other = partial.next().expect("one result per task");
            for (a, b) in acc.iter_mut().zip(other) {
                a.merge(b);
            }
        }
        cands.extend(acc);
    }
    cands
}

fn search_blas(
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    k: usize,
    exclude: Option<&[Vec<u32>]>,
    opts: SearchOptions,
) -> Vec<Candidates> {
    let nq = queries.nrows();
    let ni = items.nrows();
    let mut cands = vec![Candidates::new(k); nq];
    let qb = opts.query_block.min(nq).max(1);
    let ib = opts.item_block.min(ni).max(1);
    let mut buf = Array2::<f32>::zeros((qb, ib));
    for ia in (0..ni).step_by(ib) {
        let ie = (ia + ib).min(ni);
        let item_blk = items.slice(s![ia..ie, ..]);
        for qa in (0..nq).step_by(qb) {
            let qe = (qa + qb).min(nq);
            let mut tile = buf.slice_mut(s![..qe - qa, ..ie - ia]);
            ndarray::linalg::general_mat_mul(
                1.0,
                &queries.slice(s![qa..qe, ..]),
                &item_blk.t(),
                0.0,
                &mut tile,
            );
            mask_exclusions(&mut tile, exclude, qa, ia);
            cands[qa..qe]
                .par_iter_mut()
                .zip(tile.axis_iter(Axis(0)).into_par_iter())
                .for_each(|(h, row)| scan_row(h, row.as_slice().expect("contiguous"), ia as u32));
        }
    }
    cands
}

fn assemble(cands: Vec<Candidates>, k: usize) -> TopK {
    let nq = cands.len();
    assemble_lists(cands.into_iter().map(Candidates::into_sorted), nq, k)
}

/// Builds the result from each query's ranked list (at most `k` long).
fn assemble_lists(lists: impl Iterator<Item = Vec<(f32, u32)>>, nq: usize, k: usize) -> TopK {
    let mut indices = Array2::from_elem((nq, k), PAD_INDEX);
    let mut scores = Array2::from_elem((nq, k), f32::NEG_INFINITY);
    for (q, list) in lists.enumerate() {
        for (j, (s, i)) in list.into_iter().enumerate() {
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
