//! Exact top-K by a bf16 filter and exact rescoring, on CPUs with AVX-512 BF16.
//!
//! Scores are first computed approximately: query and item vectors are rounded to bf16 and
//! multiplied with `vdpbf16ps`, which does twice the multiply-adds per instruction of an f32
//! FMA. An approximate score `a` is within a rigorous bound `e` of the exact score `r` (see
//! [`ErrorModel`]). Per query, `L` is the K-th best exact score among the items kept so far:
//! the final K-th best can only be higher, so an item with `a + e < L` has `r < L` and can never
//! enter the result, not even by a tie. Every other item is rescored exactly at once (its f32
//! row is still in cache) and offered to the query's running top K of exact scores, which
//! therefore ends as exactly the top K of the exact scores (lower index first among equal
//! scores), whatever the rounding of the filter did.
//!
//! The micro-kernel computes a 12-query x 32-item block of scores in registers and compares it
//! with the queries' current thresholds `L - e` (rounded down to f32) before anything is written to memory; on a
//! large corpus almost no block has a score above the threshold, so selection costs one
//! comparison per 16 scores.
//!
//! Vectors with a non-finite or very large component are not filtered: such a query is left
//! to the caller (`None` in the result), such an item is scored exactly for every query.

use ndarray::ArrayView2;
use rayon::prelude::*;
use std::cmp::Ordering;

/// Queries per micro-kernel panel.
const NQ: usize = 12;
/// 16-item groups per micro-kernel call.
const NG: usize = 2;
/// Items per micro-kernel call.
const NI: usize = 16 * NG;
/// Largest vector length the error bound is set up for.
pub(crate) const MAX_DIM: usize = 4096;
/// Components above this magnitude (or non-finite) send a vector to the exact path; below it
/// no bf16 value, product or sum can overflow.
const LIMIT: f32 = 1.1259e15; // ~2^50

/// `true` when this CPU runs the bf16 kernel (the same test as the bf16 MLP's).
pub(crate) fn supported() -> bool {
    dmtl_tensor::bf16::available()
}

/// Round-to-nearest-even f32 -> bf16 bits, for finite inputs of magnitude at most [`LIMIT`].
#[inline]
fn bf16_bits(x: f32) -> u32 {
    u32::from(dmtl_tensor::bf16::round_bf16(x))
}

/// The bound `|a - r| <= rel * |q| * |x| + abs * (1 + |q| + |x|)` for vectors of length `d`.
///
/// `a` is the filter's score: `q` and `x` rounded to bf16 (relative error `2^-8` per
/// component, plus `2^-126` where the hardware treats subnormals as zero), products summed in
/// f32 with subnormal results flushed to zero. `r` is the exact score: the f64 sum of the f32
/// products rounded once to f32. By Cauchy-Schwarz `sum |q_d x_d| <= |q| |x|`, so
/// `|a - r| <= (2u_b + u_b^2 + gamma_2d (1 + u_b)^2 + u + 2d 2^-53) |q| |x|` plus terms in
/// `2^-126`, with `u_b = 2^-8`, `u = 2^-24`, `gamma_n = n u / (1 - n u)`. `rel` rounds that up
/// by 2^-10 of itself, which also covers the f64 arithmetic on norms and bounds, and `abs`
/// covers the subnormal terms (at most `2^-118 (|q| + |x|) + 2^-112` for `d <= 4096`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ErrorModel {
    rel: f64,
    abs: f64,
}

impl ErrorModel {
    pub(crate) fn new(d: usize) -> Self {
        let ub = 2f64.powi(-8);
        let u = 2f64.powi(-24);
        let n = 2.0 * d as f64 + 2.0;
        let gamma = n * u / (1.0 - n * u);
        let rel =
            2.0 * ub + ub * ub + gamma * (1.0 + ub).powi(2) + u + 2.0 * d as f64 * 2f64.powi(-53);
        Self {
            rel: rel * (1.0 + 2f64.powi(-10)),
            abs: 2f64.powi(-110),
        }
    }

    /// The bound for a query of norm `qn` and items of norm at most `xn`, rounded up to f32.
    #[inline]
    pub(crate) fn bound(&self, qn: f64, xn: f64) -> f32 {
        let e = self.rel * qn * xn + self.abs * (1.0 + qn + xn);
        round_up(e)
    }
}

#[inline]
fn round_up(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) < x {
        f.next_up()
    } else {
        f
    }
}

#[inline]
fn round_down(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) > x {
        f.next_down()
    } else {
        f
    }
}

/// Exact score: the f32 products (exact in f64) summed in f64 in a fixed order (16 running
/// sums over the components, added pairwise, then the tail), rounded once to f32.
#[inline(always)]
pub(crate) fn exact_dot(q: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0f64; 16];
    let (qc, xc) = (q.chunks_exact(16), x.chunks_exact(16));
    let (qr, xr) = (qc.remainder(), xc.remainder());
    for (a, b) in qc.zip(xc) {
        for l in 0..16 {
            acc[l] += a[l] as f64 * b[l] as f64;
        }
    }
    let mut w = 16;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    let mut s = acc[0];
    for (a, b) in qr.iter().zip(xr) {
        s += *a as f64 * *b as f64;
    }
    s as f32
}

/// [`exact_dot`] compiled with AVX-512 (same operations in the same order, so the same
/// result; products of f32 values are exact in f64, so no fused multiply-add can differ).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exact_dot_wide(q: &[f32], x: &[f32]) -> f32 {
    exact_dot(q, x)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn exact_dot_wide(q: &[f32], x: &[f32]) -> f32 {
    exact_dot(q, x)
}

/// Norm in f64 when every component is finite and at most [`LIMIT`] in magnitude.
#[inline]
fn checked_norm(v: &[f32]) -> Option<f64> {
    let mut s = [0f64; 8];
    let mut ok = true;
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            ok &= c[l].abs() <= LIMIT; // false for NaN and infinities
            s[l] += c[l] as f64 * c[l] as f64;
        }
    }
    for &x in rest {
        ok &= x.abs() <= LIMIT;
        s[0] += x as f64 * x as f64;
    }
    ok.then(|| s.iter().sum::<f64>().sqrt())
}

/// One query's running top K of exact scores.
///
/// Candidates are appended in O(1); when the buffer holds `cap` of them it is cut back to the
/// best K (by score, then lower index) and `l` becomes the K-th best score, so a cut costs O(1)
/// per candidate however many scores tie.
struct State {
    k: usize,
    cap: usize,
    /// The K-th best exact score seen so far once K were seen, `-inf` before: the final K-th
    /// best can only be higher, so an item scoring below it never enters the result.
    l: f32,
    filled: bool,
    buf: Vec<(f32, u32)>,
    /// Room for the scores during a cut.
    scratch: Vec<f32>,
}

impl State {
    fn new(k: usize) -> Self {
        Self {
            k,
            cap: k.saturating_mul(2).max(k + 32),
            l: f32::NEG_INFINITY,
            filled: false,
            buf: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Offers an exact score; returns `true` when `l` rose.
    #[inline]
    fn offer(&mut self, r: f32, i: u32) -> bool {
        // A score equal to `l` may still win on a lower index; NaN is never eligible.
        if r.is_nan() || (self.filled && r < self.l) {
            return false;
        }
        self.buf.push((r, i));
        if !self.filled {
            if self.buf.len() == self.k {
                self.filled = true;
                self.l = self.buf.iter().fold(f32::INFINITY, |m, c| m.min(c.0));
                return true;
            }
            false
        } else if self.buf.len() >= self.cap {
            self.compact();
            true
        } else {
            false
        }
    }

    /// Keeps the best K in ranking order and sets `l` to the K-th score.
    fn compact(&mut self) {
        if self.buf.len() <= self.k {
            return;
        }
        // Selecting on bare scores is much cheaper than on (score, index) pairs.
        self.scratch.clear();
        self.scratch.extend(self.buf.iter().map(|c| c.0));
        let (better, &mut th, _) = self.scratch.select_nth_unstable_by(self.k - 1, |a, b| {
            b.partial_cmp(a).unwrap_or(Ordering::Equal)
        });
        let above = better.iter().filter(|&&s| s > th).count();
        let need = self.k - above;
        let ties = self.buf.iter().filter(|c| c.0 == th).count();
        // Among the scores equal to the K-th, the lowest indices win (the buffer is not in
        // index order: exactly scored items of a block come after the block).
        let last = if ties > need {
            let mut idx: Vec<u32> = self.buf.iter().filter(|c| c.0 == th).map(|c| c.1).collect();
            *idx.select_nth_unstable(need - 1).1
        } else {
            u32::MAX
        };
        self.buf.retain(|c| c.0 > th || (c.0 == th && c.1 <= last));
        debug_assert_eq!(self.buf.len(), self.k);
        self.l = th;
    }

    /// Threshold on the approximate score `a` of items whose bound is `e`: whenever the exact
    /// score can reach `l`, `a >= l - e >= thr`.
    #[inline]
    fn threshold(&self, e: f32) -> f32 {
        round_down(self.l as f64 - e as f64)
    }

    fn into_sorted(mut self) -> Vec<(f32, u32)> {
        self.compact();
        self.buf.sort_unstable_by(crate::retrieval::rank_order);
        self.buf
    }
}

/// Queries rounded to bf16 pairs, in panels of [`NQ`]: `data[panel][t][lane]` holds
/// components `2t` (low half) and `2t + 1` (high half) of the panel's query `lane`.
struct QueryPanels {
    /// Query row of each panel lane; `usize::MAX` for padding.
    rows: Vec<usize>,
    norms: Vec<f64>,
    data: Vec<u32>,
    t_len: usize,
}

impl QueryPanels {
    fn new(queries: ArrayView2<f32>, good: &[usize], norms: &[f64]) -> Self {
        let t_len = queries.ncols().div_ceil(2);
        let panels = good.len().div_ceil(NQ);
        let mut rows = vec![usize::MAX; panels * NQ];
        let mut pn = vec![0f64; panels * NQ];
        let mut data = vec![0u32; panels * NQ * t_len];
        for (j, &q) in good.iter().enumerate() {
            rows[j] = q;
            pn[j] = norms[q];
            let (p, lane) = (j / NQ, j % NQ);
            let row = queries.row(q);
            let row = row.as_slice().expect("standard layout");
            pack_pairs(row, |t, v| data[(p * t_len + t) * NQ + lane] = v);
        }
        Self {
            rows,
            norms: pn,
            data,
            t_len,
        }
    }

    fn panels(&self) -> usize {
        self.rows.len() / NQ
    }
}

#[inline]
fn pack_pairs(row: &[f32], mut put: impl FnMut(usize, u32)) {
    let pairs = row.chunks_exact(2);
    let last = pairs.remainder().first().copied();
    let mut t = 0;
    for p in pairs {
        put(t, bf16_bits(p[0]) | (bf16_bits(p[1]) << 16));
        t += 1;
    }
    if let Some(x) = last {
        put(t, bf16_bits(x));
    }
}

/// One block of items rounded to bf16 pairs: `data[group][t][lane]` for 16-item groups, the
/// group count a multiple of [`NG`], padding lanes and unfilterable items left zero.
struct ItemBlock {
    data: Vec<u32>,
    /// Largest norm among the block's filterable items.
    max_norm: f64,
    /// Items (absolute rows) that must be scored exactly.
    exact: Vec<u32>,
}

impl ItemBlock {
    fn new() -> Self {
        Self {
            data: Vec::new(),
            max_norm: 0.0,
            exact: Vec::new(),
        }
    }

    fn fill(&mut self, items: ArrayView2<f32>, i0: usize, i1: usize, t_len: usize) {
        let groups = (i1 - i0).div_ceil(NI) * NG;
        self.data.clear();
        self.data.resize(groups * t_len * 16, 0);
        self.max_norm = 0.0;
        self.exact.clear();
        for i in i0..i1 {
            let row = items.row(i);
            let row = row.as_slice().expect("standard layout");
            match checked_norm(row) {
                Some(n) => {
                    self.max_norm = self.max_norm.max(n);
                    let (g, lane) = ((i - i0) / 16, (i - i0) % 16);
                    let base = g * t_len * 16 + lane;
                    let data = &mut self.data;
                    pack_pairs(row, |t, v| data[base + t * 16] = v);
                }
                None => self.exact.push(i as u32),
            }
        }
    }
}

/// Candidates of the queries of one panel range against one item range.
#[allow(clippy::too_many_arguments)]
fn search_task(
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    k: usize,
    exclude: Option<&[Vec<u32>]>,
    item_block: usize,
    qp: &QueryPanels,
    model: ErrorModel,
    (p0, p1): (usize, usize),
    (i0, i1): (usize, usize),
) -> Vec<Vec<(f32, u32)>> {
    let t_len = qp.t_len;
    let mut states: Vec<State> = (p0 * NQ..p1 * NQ).map(|_| State::new(k)).collect();
    let mut block = ItemBlock::new();
    let mut out = [[0f32; NI]; NQ];
    let mut masks = [0u32; NQ];
    let mut thr = [0f32; NQ];
    let mut err = [0f32; NQ];
    for ia in (i0..i1).step_by(item_block) {
        let ie = (ia + item_block).min(i1);
        block.fill(items, ia, ie, t_len);
        let groups = block.data.len() / (16 * t_len);
        for p in p0..p1 {
            let st = &mut states[(p - p0) * NQ..(p - p0 + 1) * NQ];
            for n in 0..NQ {
                let j = p * NQ + n;
                if qp.rows[j] == usize::MAX {
                    // Padding: no score reaches +inf.
                    thr[n] = f32::INFINITY;
                } else {
                    err[n] = model.bound(qp.norms[j], block.max_norm);
                    thr[n] = st[n].threshold(err[n]);
                }
            }
            let qdata = &qp.data[p * NQ * t_len..(p + 1) * NQ * t_len];
            for g in (0..groups).step_by(NG) {
                let xdata = &block.data[g * t_len * 16..(g + NG) * t_len * 16];
                // SAFETY: `supported()` was checked by the caller; slices have the lengths the
                // kernel reads (`t_len * NQ` and `NG * t_len * 16`).
                if !unsafe { kernel(qdata, xdata, t_len, &thr, &mut out, &mut masks) } {
                    continue;
                }
                let first = ia + g * 16;
                for n in 0..NQ {
                    let mut m = masks[n];
                    if m == 0 {
                        continue;
                    }
                    let q = qp.rows[p * NQ + n];
                    let qrow = queries.row(q);
                    let qrow = qrow.as_slice().expect("standard layout");
                    let ex = exclude.map(|e| e[q].as_slice());
                    while m != 0 {
                        let l = m.trailing_zeros() as usize;
                        m &= m - 1;
                        // The threshold may have risen since the mask was taken.
                        if out[n][l] < thr[n] {
                            continue;
                        }
                        let i = first + l;
                        if i >= ie {
                            break;
                        }
                        let i = i as u32;
                        if !block.exact.is_empty() && block.exact.binary_search(&i).is_ok() {
                            continue;
                        }
                        if ex.is_some_and(|e| e.binary_search(&i).is_ok()) {
                            continue;
                        }
                        let x = items.row(i as usize);
                        // SAFETY: `supported()` includes AVX-512F.
                        let r =
                            unsafe { exact_dot_wide(qrow, x.as_slice().expect("standard layout")) };
                        if st[n].offer(r, i) {
                            thr[n] = st[n].threshold(err[n]);
                        }
                    }
                }
            }
            for &i in &block.exact {
                for (n, s) in st.iter_mut().enumerate() {
                    let q = qp.rows[p * NQ + n];
                    if q == usize::MAX {
                        continue;
                    }
                    if exclude.is_some_and(|e| e[q].binary_search(&i).is_ok()) {
                        continue;
                    }
                    let r = exact_dot(
                        queries.row(q).as_slice().expect("standard layout"),
                        items.row(i as usize).as_slice().expect("standard layout"),
                    );
                    s.offer(r, i);
                }
            }
        }
    }
    states.into_iter().map(|s| s.into_sorted()).collect()
}

/// 12 queries x 32 items of approximate scores; when some score reaches its query's threshold,
/// writes them to `out`, which of them do to `masks` (bit `l` of `masks[n]` for item `l` of
/// query `n`), and returns `true`.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512 BF16; `q.len() >= t_len * NQ` and
/// `x.len() >= NG * t_len * 16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel(
    q: &[u32],
    x: &[u32],
    t_len: usize,
    thr: &[f32; NQ],
    out: &mut [[f32; NI]; NQ],
    masks: &mut [u32; NQ],
) -> bool {
    use std::arch::x86_64::*;
    debug_assert!(q.len() >= t_len * NQ && x.len() >= NG * t_len * 16);
    let qp = q.as_ptr();
    let xp = x.as_ptr();
    let mut acc = [[_mm512_setzero_ps(); NG]; NQ];
    for t in 0..t_len {
        let mut xv = [_mm512_setzero_si512(); NG];
        for (g, v) in xv.iter_mut().enumerate() {
            *v = _mm512_loadu_si512(xp.add((g * t_len + t) * 16) as *const _);
        }
        for (n, row) in acc.iter_mut().enumerate() {
            let b: __m512bh = std::mem::transmute(_mm512_set1_epi32(*qp.add(t * NQ + n) as i32));
            for (g, a) in row.iter_mut().enumerate() {
                *a = _mm512_dpbf16_ps(*a, std::mem::transmute::<__m512i, __m512bh>(xv[g]), b);
            }
        }
    }
    let mut any = 0u32;
    let mut m = [0u32; NQ];
    for (n, row) in acc.iter().enumerate() {
        let th = _mm512_set1_ps(thr[n]);
        for (g, a) in row.iter().enumerate() {
            m[n] |= (_mm512_cmp_ps_mask::<_CMP_GE_OQ>(*a, th) as u32) << (16 * g);
        }
        any |= m[n];
    }
    if any != 0 {
        *masks = m;
        for (n, row) in acc.iter().enumerate() {
            for (g, a) in row.iter().enumerate() {
                _mm512_storeu_ps(out[n].as_mut_ptr().add(g * 16), *a);
            }
        }
    }
    any != 0
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel(
    _q: &[u32],
    _x: &[u32],
    _t_len: usize,
    _thr: &[f32; NQ],
    _out: &mut [[f32; NI]; NQ],
    _masks: &mut [u32; NQ],
) -> bool {
    unreachable!("the bf16 filter runs only where supported() holds")
}

fn split(n: usize, parts: usize) -> Vec<(usize, usize)> {
    let parts = parts.clamp(1, n.max(1));
    (0..parts)
        .map(|p| (n * p / parts, n * (p + 1) / parts))
        .collect()
}

/// Exact top-`k` of every query whose vector the filter can take, `None` for the others.
///
/// The caller has checked [`supported`], the shapes (`d` in `1..=MAX_DIM`, matching columns),
/// `k >= 1`, and sorted the exclusion lists.
pub(crate) fn search(
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    k: usize,
    exclude: Option<&[Vec<u32>]>,
    item_block: usize,
) -> Vec<Option<Vec<(f32, u32)>>> {
    let queries = queries.as_standard_layout();
    let items = items.as_standard_layout();
    let (queries, items) = (queries.view(), items.view());
    let (nq, d) = queries.dim();
    let ni = items.nrows();
    let mut norms = vec![0f64; nq];
    let mut good = Vec::with_capacity(nq);
    for q in 0..nq {
        if let Some(n) = checked_norm(queries.row(q).as_slice().expect("standard layout")) {
            norms[q] = n;
            good.push(q);
        }
    }
    let mut result: Vec<Option<Vec<(f32, u32)>>> = vec![None; nq];
    if good.is_empty() {
        return result;
    }
    let qp = QueryPanels::new(queries, &good, &norms);
    let model = ErrorModel::new(d);
    let item_block = item_block.div_ceil(NI).max(1) * NI;
    let threads = rayon::current_num_threads().max(1);
    let panels = qp.panels();
    // Split the panels across threads when there are enough; otherwise split the items too
    // (partial results per query are merged below).
    let p_parts = threads.min(panels.div_ceil(4)).max(1);
    let i_parts = threads
        .div_ceil(p_parts)
        .min(ni.div_ceil(item_block).max(1))
        .max(1);
    let p_ranges = split(panels, p_parts);
    let i_ranges = split(ni, i_parts);
    let tasks: Vec<((usize, usize), (usize, usize))> = p_ranges
        .iter()
        .flat_map(|&pr| i_ranges.iter().map(move |&ir| (pr, ir)))
        .collect();
    let partial: Vec<Vec<Vec<(f32, u32)>>> = tasks
        .par_iter()
        .map(|&(pr, ir)| search_task(queries, items, k, exclude, item_block, &qp, model, pr, ir))
        .collect();
    let mut partial = partial.into_iter();
    for &(p0, p1) in &p_ranges {
        let mut acc = partial.next().expect("one result per task");
        for _ in 1..i_ranges.len() {
            let other = partial.next().expect("one result per task");
            for (a, b) in acc.iter_mut().zip(other) {
                a.extend(b);
                a.sort_unstable_by(crate::retrieval::rank_order);
                a.truncate(k);
            }
        }
        for (j, list) in acc.into_iter().enumerate() {
            let q = qp.rows[p0 * NQ + j];
            if q != usize::MAX {
                result[q] = Some(list);
            }
        }
        debug_assert!(p1 >= p0);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Every approximate score of the kernel lies within the bound of the exact one.
    fn assert_bound_holds(queries: &Array2<f32>, items: &Array2<f32>) -> f64 {
        let (nq, d) = queries.dim();
        let good: Vec<usize> = (0..nq).collect();
        let norms: Vec<f64> = (0..nq)
            .map(|q| checked_norm(queries.row(q).as_slice().unwrap()).unwrap())
            .collect();
        let qp = QueryPanels::new(queries.view(), &good, &norms);
        let model = ErrorModel::new(d);
        let mut block = ItemBlock::new();
        block.fill(items.view(), 0, items.nrows(), qp.t_len);
        assert!(block.exact.is_empty());
        let thr = [f32::NEG_INFINITY; NQ];
        let mut out = [[0f32; NI]; NQ];
        let mut masks = [0u32; NQ];
        let mut worst = 0f64;
        for p in 0..qp.panels() {
            let qdata = &qp.data[p * NQ * qp.t_len..(p + 1) * NQ * qp.t_len];
            for g in (0..block.data.len() / (16 * qp.t_len)).step_by(NG) {
                let xdata = &block.data[g * qp.t_len * 16..(g + NG) * qp.t_len * 16];
                assert!(unsafe { kernel(qdata, xdata, qp.t_len, &thr, &mut out, &mut masks) });
                assert_eq!(masks, [u32::MAX; NQ]);
                for n in 0..NQ {
                    let Some(&q) = good.get(p * NQ + n) else {
                        continue;
                    };
                    for l in 0..NI {
                        let i = g * 16 + l;
                        if i >= items.nrows() {
                            break;
                        }
                        let x = items.row(i);
                        let r =
                            exact_dot(queries.row(q).as_slice().unwrap(), x.as_slice().unwrap());
                        let xn = checked_norm(x.as_slice().unwrap()).unwrap();
                        let e = model.bound(norms[q], xn) as f64;
                        let gap = (out[n][l] as f64 - r as f64).abs();
                        assert!(
                            gap <= e,
                            "query {q} item {i}: approx {} exact {r} bound {e}",
                            out[n][l]
                        );
                        if e > 0.0 {
                            worst = worst.max(gap / e);
                        }
                    }
                }
            }
        }
        worst
    }

    #[test]
    fn error_bound_holds_and_is_nearly_tight() {
        if !supported() {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // Components just below the midpoint between two bf16 values, signs aligned: every
        // rounding goes the same way, the error approaches 2^-7 |q| |x|.
        let mid = 1.0 + 2f32.powi(-8) - 2f32.powi(-20);
        let d = 64;
        let q = Array2::from_shape_fn((13, d), |(r, c)| {
            let s = if (r + c) % 2 == 0 { 1.0 } else { -1.0 };
            s * mid * 2f32.powi((r % 5) as i32 - 2)
        });
        let x = Array2::from_shape_fn((70, d), |(r, c)| {
            let s = if (r + c) % 2 == 0 { 1.0 } else { -1.0 };
            s * mid * 2f32.powi((r % 7) as i32 - 3)
        });
        let worst = assert_bound_holds(&q, &x);
        assert!(worst > 0.9, "adversarial case reaches {worst} of the bound");
        // Random signs and magnitudes, odd length, subnormal and zero components.
        for d in [1, 7, 64, 301] {
            let gen = |rng: &mut ChaCha8Rng| -> f32 {
                match rng.gen_range(0..10) {
                    0 => 0.0,
                    1 => rng.gen_range(-1.0f32..1.0) * 1e-39,
                    2 => rng.gen_range(-1.0f32..1.0) * 1e12,
                    _ => rng.gen_range(-1.0f32..1.0),
                }
            };
            let q = Array2::from_shape_simple_fn((25, d), || gen(&mut rng));
            let x = Array2::from_shape_simple_fn((100, d), || gen(&mut rng));
            assert_bound_holds(&q, &x);
            let q = q.mapv(|v| v * 1e-30);
            assert_bound_holds(&q, &x);
        }
    }

    #[test]
    fn rounding_helpers_round_the_right_way() {
        for x in [0.1f64, -0.1, 1.0 / 3.0, 1e-40, -1e-40, 3.0, 0.0] {
            assert!(round_up(x) as f64 >= x && round_down(x) as f64 <= x, "{x}");
        }
        assert_eq!(round_down(f64::NEG_INFINITY), f32::NEG_INFINITY);
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // Ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7.
        assert_eq!(bf16_bits(1.0 + 2f32.powi(-8)), 0x3f80);
        assert_eq!(bf16_bits(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
    }
}
