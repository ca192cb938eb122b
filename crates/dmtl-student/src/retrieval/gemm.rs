//! The f32 GEMM path: score tiles computed by BLAS SGEMM, each row scanned against its
//! query's running K-th best score. What [`super::Kernel::Auto`] runs on CPUs without AVX-512
//! BF16, and on queries the bf16 filter cannot bound.

use ndarray::{s, Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::candidates::{search_grid, split, Candidates};
use super::options::{SearchOptions, Threading};

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
    while !cand.is_filled() && j < row.len() {
        cand.offer(row[j], base + j as u32);
        j += 1;
    }
    if j == row.len() {
        return;
    }
    let mut th = cand.threshold();
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
                    th = cand.threshold();
                }
            }
        }
    }
    for (l, &s) in rest[tail_at..].iter().enumerate() {
        if s > th {
            cand.offer(s, base + (tail_at + l) as u32);
            th = cand.threshold();
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

/// Computes the score tiles of queries `q0..q1` against items `i0..i1` one at a time, with
/// excluded items set to NaN, and hands each to `scan(first query, first item, tile)`.
fn for_each_tile(
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    exclude: Option<&[Vec<u32>]>,
    opts: SearchOptions,
    (q0, q1): (usize, usize),
    (i0, i1): (usize, usize),
    mut scan: impl FnMut(usize, usize, ArrayView2<f32>),
) {
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
            scan(qa, ia, tile.view());
        }
    }
}

/// Top-k of queries `q0..q1` against items `i0..i1`, tile by tile, on the calling thread.
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
    for_each_tile(
        queries,
        items,
        exclude,
        opts,
        (q0, q1),
        (i0, i1),
        |qa, ia, tile| {
            for (r, row) in tile.rows().into_iter().enumerate() {
                let row = row.as_slice().expect("tile rows are contiguous");
                scan_row(&mut cands[qa - q0 + r], row, ia as u32);
            }
        },
    );
    cands
}

/// Top-`k` candidates of every query, with the tiling and threading of `opts`.
///
/// The caller has checked the shapes, `k >= 1`, the block sizes, and sorted the exclusion
/// lists.
pub(super) fn search(
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    k: usize,
    exclude: Option<&[Vec<u32>]>,
    opts: SearchOptions,
) -> Vec<Candidates> {
    let (nq, ni) = (queries.nrows(), items.nrows());
    match opts.threading {
        Threading::RayonTasks => {
            // Tasks of (query range x item range) with one-thread GEMMs. Prefer splitting
            // queries (no merge needed); split items when queries are too few to give every
            // thread a tile's worth of work.
            let threads = rayon::current_num_threads().max(1);
            let q_parts = threads.min(nq.div_ceil(opts.query_block.min(64)).max(1));
            let i_parts = (threads.div_ceil(q_parts))
                .min(ni.div_ceil(opts.item_block).max(1))
                .max(1);
            let q_ranges = split(nq, q_parts);
            let i_ranges = split(ni, i_parts);
            dmtl_tensor::threads::with_blas_threads(1, || {
                search_grid(&q_ranges, &i_ranges, |qr, ir| {
                    search_range(queries, items, k, exclude, opts, qr, ir)
                })
            })
        }
        Threading::BlasThreads => {
            // One GEMM at a time with all BLAS threads, each tile's rows scanned in parallel.
            let mut cands = vec![Candidates::new(k); nq];
            for_each_tile(
                queries,
                items,
                exclude,
                opts,
                (0, nq),
                (0, ni),
                |qa, ia, tile| {
                    cands[qa..qa + tile.nrows()]
                        .par_iter_mut()
                        .zip(tile.axis_iter(Axis(0)).into_par_iter())
                        .for_each(|(h, row)| {
                            scan_row(h, row.as_slice().expect("contiguous"), ia as u32)
                        });
                },
            );
            cands
        }
    }
}
