//! Exact top-K by a bf16 filter and exact rescoring, on CPUs with AVX-512 BF16.
//!
//! Scores are first computed approximately: query and item vectors are rounded to bf16 and
//! multiplied with `vdpbf16ps`, which does twice the multiply-adds per instruction of an f32
//! FMA. An approximate score `a` is within a rigorous bound `e` of the exact score `r` (see
//! [`super::bound::ErrorModel`]). Per query, `L` is the K-th best exact score among the items kept so far:
//! the final K-th best can only be higher, so an item with `a + e < L` has `r < L` and can never
//! enter the result, not even by a tie. Every other item is rescored exactly at once (its f32
//! row is still in cache) and offered to the query's running top K of exact scores, which
//! therefore ends as exactly the top K of the exact scores (lower index first among equal
//! scores), whatever the rounding of the filter did.
//!
//! The micro-kernel computes a 12-query x 32-item block of scores in registers and compares it
//! with the queries' current thresholds `L - e` (rounded down to f32) before anything is
//! written to memory; on a large corpus almost no block has a score above the threshold, so
//! selection costs one comparison per 16 scores.
//!
//! Vectors with a non-finite or very large component are not filtered: such a query is left
//! to the caller (`None` in the result), such an item is scored exactly for every query.

use ndarray::ArrayView2;

use super::bound::{checked_norm, exact_dot, exact_dot_wide, round_down, ErrorModel};
use super::candidates::{search_grid, split, Candidates};

/// Queries per micro-kernel panel.
const NQ: usize = 12;
/// 16-item groups per micro-kernel call.
const NG: usize = 2;
/// Items per micro-kernel call.
const NI: usize = 16 * NG;
/// Largest vector length the error bound is set up for.
pub(super) const MAX_DIM: usize = 4096;
/// `true` when this CPU runs the bf16 kernel (the same test as the bf16 MLP's).
pub(super) fn supported() -> bool {
    dmtl_tensor::bf16::available()
}

/// Round-to-nearest-even f32 -> bf16 bits, for finite inputs of magnitude at most
/// [`super::bound::LIMIT`].
#[inline]
fn bf16_bits(x: f32) -> u32 {
    u32::from(dmtl_tensor::bf16::round_bf16(x))
}

/// Threshold on the approximate score `a` of items whose bound is `e`: whenever the exact
/// score can reach the candidates' threshold `l`, `a >= l - e >= thr`.
#[inline]
fn filter_threshold(c: &Candidates, e: f32) -> f32 {
    round_down(c.threshold() as f64 - e as f64)
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
) -> Vec<Candidates> {
    let t_len = qp.t_len;
    let mut states = vec![Candidates::new(k); (p1 - p0) * NQ];
    let mut block = ItemBlock::new();
    let mut tile = Tile::new();
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
                    tile.thr[n] = f32::INFINITY;
                } else {
                    err[n] = model.bound(qp.norms[j], block.max_norm);
                    tile.thr[n] = filter_threshold(&st[n], err[n]);
                }
            }
            let qdata = &qp.data[p * NQ * t_len..(p + 1) * NQ * t_len];
            for g in (0..groups).step_by(NG) {
                let xdata = &block.data[g * t_len * 16..(g + NG) * t_len * 16];
                // SAFETY: `supported()` was checked by the caller; slices have the lengths the
                // kernel reads (`t_len * NQ` and `NG * t_len * 16`).
                if !unsafe { kernel(qdata, xdata, t_len, &mut tile) } {
                    continue;
                }
                let first = ia + g * 16;
                for n in 0..NQ {
                    let mut m = tile.masks[n];
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
                        if tile.out[n][l] < tile.thr[n] {
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
                            tile.thr[n] = filter_threshold(&st[n], err[n]);
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
    states
}

/// The micro-kernel's block: each query's threshold on the approximate scores, and what the
/// kernel found above them.
struct Tile {
    /// Per query of the panel: approximate scores below it cannot reach the top K.
    thr: [f32; NQ],
    /// The block's approximate scores, written only when some reached its threshold.
    out: [[f32; NI]; NQ],
    /// Bit `l` of `masks[n]`: item `l` reached query `n`'s threshold.
    masks: [u32; NQ],
}

impl Tile {
    fn new() -> Self {
        Self {
            thr: [0.0; NQ],
            out: [[0.0; NI]; NQ],
            masks: [0; NQ],
        }
    }
}

/// 12 queries x 32 items of approximate scores; when some score reaches its query's threshold
/// `tile.thr`, writes them to `tile.out`, which of them do to `tile.masks`, and returns `true`.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512 BF16; `q.len() >= t_len * NQ` and
/// `x.len() >= NG * t_len * 16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel(q: &[u32], x: &[u32], t_len: usize, tile: &mut Tile) -> bool {
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
        let th = _mm512_set1_ps(tile.thr[n]);
        for (g, a) in row.iter().enumerate() {
            m[n] |= (_mm512_cmp_ps_mask::<_CMP_GE_OQ>(*a, th) as u32) << (16 * g);
        }
        any |= m[n];
    }
    if any != 0 {
        tile.masks = m;
        for (n, row) in acc.iter().enumerate() {
            for (g, a) in row.iter().enumerate() {
                _mm512_storeu_ps(tile.out[n].as_mut_ptr().add(g * 16), *a);
            }
        }
    }
    any != 0
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel(_q: &[u32], _x: &[u32], _t_len: usize, _tile: &mut Tile) -> bool {
    unreachable!("the bf16 filter runs only where supported() holds")
}

/// The top-`k` candidates of every query whose vector the filter can take, `None` for the
/// others.
///
/// The caller has checked [`supported`], the shapes (`d` in `1..=MAX_DIM`, matching columns),
/// `k >= 1`, and sorted the exclusion lists.
pub(super) fn search(
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    k: usize,
    exclude: Option<&[Vec<u32>]>,
    item_block: usize,
) -> Vec<Option<Candidates>> {
    let queries = queries.as_standard_layout();
    let items = items.as_standard_layout();
    let (queries, items) = (queries.view(), items.view());
    let (nq, d) = queries.dim();
    let ni = items.nrows();
    let mut norms = vec![0f64; nq];
    let mut good = Vec::with_capacity(nq);
    for (q, (row, norm)) in queries.rows().into_iter().zip(&mut norms).enumerate() {
        if let Some(n) = checked_norm(row.as_slice().expect("standard layout")) {
            *norm = n;
            good.push(q);
        }
    }
    let mut result: Vec<Option<Candidates>> = vec![None; nq];
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
    let lanes = search_grid(&p_ranges, &i_ranges, |pr, ir| {
        search_task(queries, items, k, exclude, item_block, &qp, model, pr, ir)
    });
    for (&q, c) in qp.rows.iter().zip(lanes) {
        if q != usize::MAX {
            result[q] = Some(c);
        }
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
        let mut tile = Tile::new();
        tile.thr = [f32::NEG_INFINITY; NQ];
        let mut worst = 0f64;
        for p in 0..qp.panels() {
            let qdata = &qp.data[p * NQ * qp.t_len..(p + 1) * NQ * qp.t_len];
            for g in (0..block.data.len() / (16 * qp.t_len)).step_by(NG) {
                let xdata = &block.data[g * qp.t_len * 16..(g + NG) * qp.t_len * 16];
                assert!(unsafe { kernel(qdata, xdata, qp.t_len, &mut tile) });
                assert_eq!(tile.masks, [u32::MAX; NQ]);
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
                        let gap = (tile.out[n][l] as f64 - r as f64).abs();
                        assert!(
                            gap <= e,
                            "query {q} item {i}: approx {} exact {r} bound {e}",
                            tile.out[n][l]
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
    fn bf16_bits_round_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // Ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7.
        assert_eq!(bf16_bits(1.0 + 2f32.powi(-8)), 0x3f80);
        assert_eq!(bf16_bits(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
    }
}
