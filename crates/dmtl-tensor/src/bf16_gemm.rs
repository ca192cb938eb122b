//! A bf16 GEMM for mixed-precision training: `C = A B` with both operands rounded to bf16
//! (round to nearest, ties to even) and the products accumulated in f32, on AMX tiles
//! (`tdpbf16ps`, 32 x 32 per call) where the CPU has AMX-BF16, else on the micro-kernel of
//! [`crate::bf16`] (`vdpbf16ps`, 12 rows x 32 columns per call) ([`Kernel`]).
//!
//! Unlike the inference path, which packs an MLP's weights once, both operands change every
//! call here (the backward products multiply gradients), so each call packs them on the fly:
//! `B` into 32-column blocks of k-pairs, `A` into 12-row panels of k-pairs. Packing reads any
//! strided view, so the transposed operands of the backward pass (`dY^T`, `W` read as `(out,
//! in)`) are never copied first. Packing is `O(mk + kn)` against the product's `O(mkn)`.
//!
//! # Error
//! Per entry, with `u_b = 2^-8` and `gamma_n = n 2^-24 / (1 - n 2^-24)`:
//! `|C_bf16 - (A B)_exact| <= (2 u_b + u_b^2 + gamma_(k+1) (1 + u_b)^2) sum_p |a_ip| |b_pj|`,
//! plus at most `2^-126` per product for bf16 subnormals, which the hardware flushes to zero
//! (see [`crate::bf16`]). The products of two bf16 values are exact in f32; the error is the
//! rounding of the operands (`2 u_b + u_b^2` relative per product) and the f32 sum.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::bf16::round_lanes;
use crate::bf16::{available, pack_row, round_bf16, tile, Dst, MR, NR};
use crate::graph::Activation;

/// Below this many multiply-adds a product runs on the calling thread alone.
const PAR_MIN_FLOPS: usize = 1 << 21;

/// The micro-kernel a bf16 product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// `vdpbf16ps` on zmm registers, 12 x 32 per call (AVX-512 BF16, [`available`]).
    Avx512,
    /// AMX `tdpbf16ps` on 16 x 16 tiles, 32 x 32 per call (AMX-BF16, granted by the OS).
    Amx,
}

/// The kernels this CPU runs, fastest first (empty without AVX-512 BF16).
pub fn kernels() -> Vec<Kernel> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    if available() && crate::amx::available() {
        v.push(Kernel::Amx);
    }
    if available() {
        v.push(Kernel::Avx512);
    }
    v
}

/// `a . b` with bf16 operands and f32 accumulation, on the fastest kernel of [`kernels`].
///
/// # Shapes
/// `a`: `(m, k)`, `b`: `(k, n)` -> `(m, n)`; either may be any strided view (a transposed
/// one, say).
///
/// # Panics
/// When the inner dimensions differ, or on a CPU without AVX-512 BF16 ([`available`] is
/// false; [`crate::Precision::on_this_cpu`] chooses the f32 GEMM there).
pub fn matmul(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f32> {
    let kernel = *kernels().first().unwrap_or_else(|| {
        panic!("dmtl-tensor: bf16 matmul needs a CPU with AVX-512 BF16, which this one lacks")
    });
    matmul_with(kernel, a, b)
}

/// [`matmul`] on `kernel`.
///
/// # Shapes
/// As [`matmul`].
///
/// # Panics
/// When the inner dimensions differ, or this CPU does not run `kernel` (see [`kernels`]).
pub fn matmul_with(kernel: Kernel, a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f32> {
    assert!(
        kernels().contains(&kernel),
        "dmtl-tensor: bf16 matmul: this CPU does not run the {kernel:?} kernel"
    );
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    assert_eq!(
        k,
        b.nrows(),
        "dmtl-tensor: bf16 matmul: shapes ({m}, {k}) and ({}, {n}) do not align",
        b.nrows()
    );
    if m == 0 || n == 0 || k == 0 {
        return Array2::zeros((m, n));
    }
    // Rows per kernel call, and k-pairs per packed row (AMX steps 16 pairs at a time).
    let (mr, t_len) = match kernel {
        Kernel::Avx512 => (MR, k.div_ceil(2)),
        #[cfg(target_arch = "x86_64")]
        Kernel::Amx => (
            crate::amx::MA,
            k.div_ceil(2).div_ceil(crate::amx::KT) * crate::amx::KT,
        ),
        #[cfg(not(target_arch = "x86_64"))]
        Kernel::Amx => unreachable!("kernels() lists AMX on x86_64 only"),
    };
    let n_pad = n.div_ceil(NR) * NR;
    let rows_pad = m.div_ceil(mr) * mr;
    let k_pairs = k.div_ceil(2);

    // B's column block `blk`: `w[(blk * t_len + t) * NR + j] = (B[2t, c], B[2t + 1, c])` for
    // `c = blk * NR + j`, zero beyond `n` and `k`, as both kernels read it.
    // SAFETY: every entry is written below: `pairs_into` writes every pair of every column
    // of the block, and the pads past `n` and past `k`'s pairs are zeroed.
    let mut w = unsafe { crate::uninit::vec::<u32>(n_pad * t_len) };
    let bt = b.reversed_axes();
    if let Some(rows) = row_major_rows(b) {
        // Rows of B contiguous (a weight for `dZ W`, the layer's input for `dZ^T X`): each
        // pair of rows is rounded and interleaved once, into every block in turn.
        pack_b_rows(&rows, n, k_pairs, t_len, &mut w);
    } else {
        pack_b_blocks(bt, n, k_pairs, t_len, &mut w);
    }

    let mut out: Vec<f32> = Vec::with_capacity(rows_pad * n_pad);
    let chunk_rows = task_rows(m, n, k, mr);
    let run = |(ci, o): (usize, &mut [f32])| {
        let r0 = ci * chunk_rows;
        let rows = o.len() / n_pad;
        let r1 = (r0 + rows).min(m);
        // A's rows `r0..r1` as `rows` x `t_len` pairs, padding rows zero.
        // SAFETY: `pairs_into` writes every pair of the rows `r0..r1`; the rows past them and
        // the pairs past `k`'s are zeroed here.
        let mut ap = unsafe { crate::uninit::vec::<u32>(rows * t_len) };
        ap[(r1 - r0) * t_len..].fill(0);
        if t_len > k_pairs {
            for row in ap.chunks_exact_mut(t_len).take(r1 - r0) {
                row[k_pairs..].fill(0);
            }
        }
        pairs_into(a.slice(ndarray::s![r0..r1, ..]), &mut ap, t_len, 1);
        match kernel {
            Kernel::Avx512 => {
                let zero = [0f32; NR];
                let dst = Dst::F32(o.as_mut_ptr());
                for (blk, wb) in w.chunks_exact(t_len * NR).enumerate() {
                    for p in 0..rows / MR {
                        let panel = &ap[p * MR * t_len..(p + 1) * MR * t_len];
                        // SAFETY: `kernels()` listed this kernel, so `available()` holds;
                        // `panel` holds MR rows of `t_len` pairs, `wb` `t_len * NR` words,
                        // `zero` NR values, and `o` has `rows` rows of `n_pad` entries, of
                        // which the tile writes NR of MR rows from its offset.
                        unsafe {
                            tile(
                                panel,
                                wb,
                                t_len,
                                &zero,
                                Activation::Identity,
                                dst.at(p * MR * n_pad + blk * NR),
                                n_pad,
                            )
                        };
                    }
                }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => {
                use crate::amx::{block, with_tiles, MA};
                let op = o.as_mut_ptr();
                // SAFETY: `kernels()` listed AMX, so `amx::available()` holds; `t_len` is a
                // multiple of KT; `ap` holds `rows` (a multiple of MA) rows of `t_len` pairs,
                // `w` `n_pad / NR` blocks of `t_len * NR` words, and `o` `rows` rows of
                // `n_pad` entries, of which each call writes a 32 x 32 block.
                unsafe {
                    with_tiles(|| {
                        for blk in 0..n_pad / NR {
                            let wb = w.as_ptr().add(blk * t_len * NR);
                            for p in 0..rows / MA {
                                let c = op.add(p * MA * n_pad + blk * NR);
                                block(ap.as_ptr().add(p * MA * t_len), wb, t_len, c, n_pad);
                            }
                        }
                    })
                };
            }
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Amx => unreachable!("kernels() lists AMX on x86_64 only"),
        }
    };
    // SAFETY: every entry is written below (each chunk's kernel calls cover all of its `rows`
    // rows, a multiple of `mr`, and all `n_pad` columns); f32 has no invalid bit patterns.
    #[allow(clippy::uninit_vec)]
    unsafe {
        out.set_len(rows_pad * n_pad)
    };
    if chunk_rows < rows_pad {
        out.par_chunks_mut(chunk_rows * n_pad)
            .enumerate()
            .for_each(run);
    } else {
        out.chunks_mut(chunk_rows * n_pad).enumerate().for_each(run);
    }
    if n_pad != n {
        for r in 0..m {
            out.copy_within(r * n_pad..r * n_pad + n, r * n);
        }
    }
    out.truncate(m * n);
    Array2::from_shape_vec((m, n), out).expect("m * n entries")
}

/// B's column blocks from any layout of `bt = B^T` (`(n, k)`):
/// `w[(blk * t_len + t) * NR + j] = (B[2t, c], B[2t + 1, c])` for `c = blk * NR + j`, zero
/// beyond `n` and past `k`'s `k_pairs` pairs.
fn pack_b_blocks(bt: ArrayView2<'_, f32>, n: usize, k_pairs: usize, t_len: usize, w: &mut [u32]) {
    for (blk, wb) in w.chunks_exact_mut(t_len * NR).enumerate() {
        let c0 = blk * NR;
        let cols = bt.slice(ndarray::s![c0..(c0 + NR).min(n), ..]);
        // Columns past `n` (in the last block only) and pairs past `k`'s (AMX rounds `t_len`
        // up to whole tiles) must read as zero.
        let cols_here = cols.nrows();
        if cols_here < NR {
            for t in 0..k_pairs {
                wb[t * NR + cols_here..(t + 1) * NR].fill(0);
            }
        }
        wb[k_pairs * NR..].fill(0);
        pairs_into(cols, wb, 1, NR);
    }
}

/// B's rows as slices when each is contiguous (`B[p, ..]` at `rows[p]`).
fn row_major_rows<'a>(b: ArrayView2<'a, f32>) -> Option<Vec<&'a [f32]>> {
    if b.ncols() > 1 && b.strides()[1] != 1 {
        return None;
    }
    (0..b.nrows())
        .map(|p| b.index_axis_move(ndarray::Axis(0), p).to_slice())
        .collect()
}

/// [`pack_b_blocks`] for a B whose rows are contiguous: each pair of rows is rounded and
/// interleaved in one pass, then its 32-column pieces are copied into their blocks.
fn pack_b_rows(rows: &[&[f32]], n: usize, k_pairs: usize, t_len: usize, w: &mut [u32]) {
    let blocks = n.div_ceil(NR);
    let mut pairs = vec![0u32; n];
    for t in 0..k_pairs {
        pair_up(rows[2 * t], rows.get(2 * t + 1).copied(), &mut pairs);
        for blk in 0..blocks {
            let c0 = blk * NR;
            let at = (blk * t_len + t) * NR;
            let dst: &mut [u32; NR] = (&mut w[at..at + NR]).try_into().expect("NR words");
            match pairs.get(c0..c0 + NR) {
                Some(src) => *dst = src.try_into().expect("NR words"),
                None => {
                    let cols = n - c0;
                    dst[..cols].copy_from_slice(&pairs[c0..]);
                    dst[cols..].fill(0);
                }
            }
        }
    }
    for blk in 0..blocks {
        w[(blk * t_len + k_pairs) * NR..(blk + 1) * t_len * NR].fill(0);
    }
}

/// Rows of the output per task: all of them (rounded up to `mr`, the kernel's rows) on the calling thread for
/// small products or inside a Rayon task (a data-parallel shard already keeps its core
/// busy), else about four tasks per thread.
fn task_rows(m: usize, n: usize, k: usize, mr: usize) -> usize {
    let all = m.div_ceil(mr) * mr;
    let threads = rayon::current_num_threads();
    if threads < 2 || m * n * k < PAR_MIN_FLOPS || rayon::current_thread_index().is_some() {
        return all;
    }
    (m.div_ceil(threads * 4).div_ceil(mr) * mr).min(all)
}

/// Rounds the rows of `src` (`(rows, k)`) to bf16 pairs along `k`: entry `(i, t)` of the
/// output, at `out[i * row_step + t * t_step]`, holds `src[i, 2t]` in its low half and
/// `src[i, 2t + 1]` in its high half (zero for an odd `k`'s last pair). Entries for rows
/// past `src`'s are left as they are.
fn pairs_into(src: ArrayView2<'_, f32>, out: &mut [u32], row_step: usize, t_step: usize) {
    let (rows, k) = src.dim();
    let t_len = k.div_ceil(2);
    if rows == 0 || k == 0 {
        return;
    }
    let last = (rows - 1) * row_step + (t_len - 1) * t_step;
    assert!(last < out.len(), "pairs_into: output too short");
    let (s0, s1) = (src.strides()[0], src.strides()[1]);
    if s1 == 1 || k == 1 {
        // Rows contiguous: pack each row whole.
        let mut buf = vec![0u32; t_len];
        for (i, row) in src.rows().into_iter().enumerate() {
            let tmp;
            let row = match row.as_slice() {
                Some(r) => r,
                None => {
                    tmp = row.to_vec();
                    &tmp[..]
                }
            };
            if t_step == 1 {
                let o = &mut out[i * row_step..i * row_step + t_len];
                pack_row_any(row, o);
            } else {
                pack_row_any(row, &mut buf);
                for (t, &v) in buf.iter().enumerate() {
                    out[i * row_step + t * t_step] = v;
                }
            }
        }
    } else if s0 == 1 {
        // Columns contiguous (a transposed row-major matrix): two columns make the pairs,
        // `TB` pairs at a time, so that each output row gets `TB` consecutive words at once
        // (one write per entry to another row's cache line was a twentieth of a step).
        const TB: usize = 16;
        let mut pairs = vec![0u32; TB * rows];
        for t0 in (0..t_len).step_by(TB) {
            let tb = TB.min(t_len - t0);
            for (dt, pair) in pairs.chunks_exact_mut(rows).take(tb).enumerate() {
                column_pairs(src, t0 + dt, pair);
            }
            if t_step == 1 {
                for i in 0..rows {
                    let o = &mut out[i * row_step + t0..i * row_step + t0 + tb];
                    for (dt, v) in o.iter_mut().enumerate() {
                        *v = pairs[dt * rows + i];
                    }
                }
            } else {
                for (dt, pair) in pairs.chunks_exact(rows).take(tb).enumerate() {
                    for (i, &v) in pair.iter().enumerate() {
                        out[i * row_step + (t0 + dt) * t_step] = v;
                    }
                }
            }
        }
    } else {
        let mut row = vec![0f32; k];
        let mut buf = vec![0u32; t_len];
        for (i, r) in src.rows().into_iter().enumerate() {
            row.iter_mut().zip(r).for_each(|(d, &x)| *d = x);
            pack_row(&row, &mut buf);
            for (t, &v) in buf.iter().enumerate() {
                out[i * row_step + t * t_step] = v;
            }
        }
    }
}

/// Pair `t` of every row of `src` (`(rows, k)` with contiguous columns): `pair[i]` holds
/// `src[i, 2t]` rounded to bf16 in its low half and `src[i, 2t + 1]` in its high half (zero
/// past an odd `k`).
fn column_pairs(src: ArrayView2<'_, f32>, t: usize, pair: &mut [u32]) {
    let k = src.ncols();
    let lo = src.column(2 * t);
    let hi = (2 * t + 1 < k).then(|| src.column(2 * t + 1));
    pair_up(
        lo.as_slice().expect("unit row stride"),
        hi.as_ref().map(|h| h.as_slice().expect("unit row stride")),
        pair,
    );
}

/// `pair[i] = bf16(lo[i]) | bf16(hi[i]) << 16`, the high half zero without `hi` (the last pair
/// of an odd `k`).
fn pair_up(lo: &[f32], hi: Option<&[f32]>, pair: &mut [u32]) {
    match hi {
        Some(hi) => interleave(lo, hi, pair),
        None => pair
            .iter_mut()
            .zip(lo)
            .for_each(|(p, &x)| *p = round_bf16(x) as u32),
    }
}

/// [`pack_row`] with AVX-512 where the CPU has it (the same rounding).
fn pack_row_any(row: &[f32], out: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was just detected; `out` holds `ceil(len / 2)` entries.
        unsafe { crate::bf16::pack_row_wide(row, out) };
        return;
    }
    pack_row(row, out)
}

/// `pair[i] = bf16(lo[i]) | bf16(hi[i]) << 16`.
fn interleave(lo: &[f32], hi: &[f32], pair: &mut [u32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was just detected; the three slices have `pair.len()` entries.
        done = unsafe { interleave_wide(lo, hi, pair) };
    }
    for ((p, &l), &h) in pair[done..].iter_mut().zip(&lo[done..]).zip(&hi[done..]) {
        *p = round_bf16(l) as u32 | ((round_bf16(h) as u32) << 16);
    }
}

/// [`interleave`] 16 entries at a time; returns how many it did (a multiple of 16).
///
/// # Safety
/// The CPU must support AVX-512F; `lo` and `hi` must have at least `pair.len()` entries.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn interleave_wide(lo: &[f32], hi: &[f32], pair: &mut [u32]) -> usize {
    use std::arch::x86_64::*;
    let n = pair.len() / 16 * 16;
    assert!(lo.len() >= n && hi.len() >= n);
    for i in (0..n).step_by(16) {
        let l = round_lanes(_mm512_loadu_ps(lo.as_ptr().add(i)));
        let h = round_lanes(_mm512_loadu_ps(hi.as_ptr().add(i)));
        let v = _mm512_or_si512(l, _mm512_slli_epi32::<16>(h));
        _mm512_storeu_si512(pair.as_mut_ptr().add(i) as *mut _, v);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packing any layout gives the pairs [`pack_row`] gives for the row copied out, odd
    /// widths and the row / t steps the kernel's two layouts use included.
    #[test]
    fn pairs_match_pack_row_in_every_layout() {
        let (rows, k) = (19, 37);
        let m = Array2::from_shape_fn((rows, k), |(i, j)| {
            ((i * 31 + j * 7) % 23) as f32 / 7.0 - 1.3 + 1e-3 * j as f32
        });
        let t_len = k.div_ceil(2);
        let mut want = vec![0u32; rows * t_len];
        for i in 0..rows {
            pack_row(&m.row(i).to_vec(), &mut want[i * t_len..(i + 1) * t_len]);
        }
        let mt = m.t().to_owned();
        let strided = Array2::from_shape_fn((rows * 2, k * 3), |(i, j)| m[[i / 2, j / 3]]);
        for (name, v) in [
            ("rows contiguous", m.view()),
            ("columns contiguous", mt.t()),
            ("strided", strided.slice(ndarray::s![..;2, ..;3])),
        ] {
            for (row_step, t_step) in [(t_len, 1), (1, rows), (2 * t_len + 1, 2)] {
                let mut got = vec![0u32; (rows - 1) * row_step + (t_len - 1) * t_step + 1];
                pairs_into(v, &mut got, row_step, t_step);
                for i in 0..rows {
                    for t in 0..t_len {
                        assert_eq!(
                            got[i * row_step + t * t_step],
                            want[i * t_len + t],
                            "{name}, steps ({row_step}, {t_step}), entry ({i}, {t})"
                        );
                    }
                }
            }
        }
    }
}
