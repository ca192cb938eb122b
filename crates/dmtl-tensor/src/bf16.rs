//! An optional bf16 inference path for an [`Mlp`], on CPUs with AVX-512 BF16.
//!
//! `vdpbf16ps` does twice the multiply-adds per instruction of an f32 FMA, so a layer whose
//! inputs and weights are rounded to bf16 (8 significant bits) runs up to twice as fast as
//! the f32 GEMM. [`Bf16Mlp`] rounds the weights once, round-to-nearest-even, and packs them in
//! 32-column blocks of k-pairs: lane `j` of a 16-lane word holds `(W[2p, j], W[2p + 1, j])`.
//! Each layer multiplies the activations rounded to bf16 by those weights with products
//! accumulated in f32 (a 12-row x 32-column micro-kernel, 24 zmm accumulators), adds the bias
//! and applies the activation in f32, and rounds the result to bf16 again for the next layer;
//! the last layer's output stays f32. Row blocks run in parallel on Rayon's pool (no BLAS is
//! called from them, see [`crate::threads`]).
//!
//! # Error
//! Per layer, with `x` the layer's f32 input and `u_b = 2^-8` (bf16's unit roundoff),
//! `|y_bf16 - y_exact| <= (2 u_b + u_b^2 + gamma_(k+1) (1 + u_b)^2) sum_i |x_i| |w_i| +
//! gamma_(k+1) |b|` before the activation, `gamma_n = n 2^-24 / (1 - n 2^-24)`: about
//! `2^-7 sum |x| |w|` for the widths of a recommendation tower. The hardware treats bf16
//! subnormals (below `2^-126`) as zero, which adds at most `2^-126` per product.
//!
//! # Other CPUs
//! [`Bf16Mlp::new`] falls back to the f32 GEMM (the same arithmetic as [`Mlp::forward`],
//! [`Backend::F32`]) when [`available`] is false, so callers need no second code path;
//! [`Bf16Mlp::with_backend`] with [`Backend::Bf16`] returns an error there instead.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::error::TensorError;
use crate::graph::Activation;
use crate::nn::Mlp;
use crate::params::ParamStore;

/// Rows per micro-kernel call.
pub(crate) const MR: usize = 12;
/// Columns per micro-kernel call (two 16-lane registers).
pub(crate) const NR: usize = 32;
/// Most rows one Rayon task takes: its activations (a few hundred KiB at most) stay in L2.
const MAX_TASK_ROWS: usize = 32 * MR;

/// `true` when this CPU runs the bf16 kernel (AVX-512F and AVX-512 BF16, detected at run time).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The bf16 bits of `x`, rounded to nearest, ties to even (NaN stays a quiet NaN; values that
/// round above bf16's largest finite value become infinite).
#[inline]
pub fn round_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x0040) as u16;
    }
    // No overflow: only NaN bit patterns are within 0x8000 of u32::MAX.
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// `x` rounded to bf16 precision, as an f32 (what the kernel multiplies).
#[inline]
pub fn to_bf16_precision(x: f32) -> f32 {
    f32::from_bits((round_bf16(x) as u32) << 16)
}

/// The arithmetic a [`Bf16Mlp`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// bf16 products accumulated in f32 (`vdpbf16ps`); needs [`available`].
    Bf16,
    /// The f32 GEMM, as in [`Mlp::forward`]; runs everywhere.
    F32,
}

/// One layer, packed for the kernel and kept in f32 for the fallback.
#[derive(Debug, Clone)]
struct Layer {
    /// Input and output widths.
    k: usize,
    n: usize,
    /// k-pairs per input row as laid out in memory (the previous layer's padded width / 2).
    t_len: usize,
    /// `n` rounded up to [`NR`].
    n_pad: usize,
    /// `w[(block * t_len + t) * NR + j]`: bf16 `W[c, 2t]` (low half) and `W[c, 2t + 1]`
    /// (high half) of column `c = block * NR + j`; zero beyond `n` and `k`.
    w: Vec<u32>,
    /// The bias padded with zeros to `n_pad`.
    bias: Vec<f32>,
    act: Activation,
    /// The f32 weight `(n, k)` and bias `(1, n)` for [`Backend::F32`].
    weight: Array2<f32>,
    bias_row: Array2<f32>,
}

/// An [`Mlp`] prepared for inference in bf16: weights rounded and packed once, at
/// construction; the store may change afterwards without affecting it.
#[derive(Debug, Clone)]
pub struct Bf16Mlp {
    layers: Vec<Layer>,
    backend: Backend,
}

impl Bf16Mlp {
    /// Packs `mlp`'s parameters from `store`, with [`Backend::Bf16`] when [`available`] and
    /// [`Backend::F32`] otherwise.
    ///
    /// Fails when a parameter does not have the shape the layer declares.
    pub fn new(mlp: &Mlp, store: &ParamStore) -> Result<Self, TensorError> {
        Self::for_cpu(mlp, store, None, available())
    }

    /// [`Bf16Mlp::new`] with the backend chosen by the caller.
    ///
    /// Fails when a parameter does not have the shape the layer declares, or `backend` is
    /// [`Backend::Bf16`] on a CPU without AVX-512 BF16.
    pub fn with_backend(
        mlp: &Mlp,
        store: &ParamStore,
        backend: Backend,
    ) -> Result<Self, TensorError> {
        Self::for_cpu(mlp, store, Some(backend), available())
    }

    /// The constructors for a CPU that has (`cpu_bf16`) or lacks AVX-512 BF16: `backend`, or
    /// the fastest one the CPU runs when `None`. `cpu_bf16` is [`available`] but in tests,
    /// which check the choice a CPU without it makes on any CPU; [`Bf16Mlp::forward`] may
    /// run the bf16 kernel only where [`available`] holds.
    fn for_cpu(
        mlp: &Mlp,
        store: &ParamStore,
        backend: Option<Backend>,
        cpu_bf16: bool,
    ) -> Result<Self, TensorError> {
        let backend = backend.unwrap_or(if cpu_bf16 {
            Backend::Bf16
        } else {
            Backend::F32
        });
        if backend == Backend::Bf16 && !cpu_bf16 {
            return Err(TensorError::Shape(
                "bf16 inference needs a CPU with AVX-512 BF16, which this one lacks".into(),
            ));
        }
        let mut layers = Vec::with_capacity(mlp.layers.len());
        let mut t_len = mlp.layers.first().map_or(0, |l| l.in_dim.div_ceil(2));
        for (idx, l) in mlp.layers.iter().enumerate() {
            let weight = store.value(l.weight);
            let bias = store.value(l.bias);
            let name = &store.get(l.weight).name;
            if weight.dim() != (l.out_dim, l.in_dim) {
                return Err(TensorError::Shape(format!(
                    "parameter `{name}` is {:?}, layer {idx} expects ({}, {})",
                    weight.dim(),
                    l.out_dim,
                    l.in_dim
                )));
            }
            if bias.len() != l.out_dim {
                return Err(TensorError::Shape(format!(
                    "parameter `{}` has {} entries, layer {idx} expects {}",
                    store.get(l.bias).name,
                    bias.len(),
                    l.out_dim
                )));
            }
            if idx > 0 && l.in_dim != mlp.layers[idx - 1].out_dim {
                return Err(TensorError::Shape(format!(
                    "layer {idx} of `{name}` takes {} inputs, the layer before gives {}",
                    l.in_dim,
                    mlp.layers[idx - 1].out_dim
                )));
            }
            let (n, k) = (l.out_dim, l.in_dim);
            let n_pad = n.div_ceil(NR) * NR;
            let mut w = vec![0u32; n_pad * t_len];
            for c in 0..n {
                let (block, j) = (c / NR, c % NR);
                let mut pairs = vec![0u32; t_len];
                let row: Vec<f32> = weight.row(c).to_vec();
                pack_row(&row, &mut pairs);
                for (t, &v) in pairs.iter().enumerate() {
                    w[(block * t_len + t) * NR + j] = v;
                }
            }
            let mut bias_pad = vec![0f32; n_pad];
            bias_pad[..n].copy_from_slice(&bias.iter().copied().collect::<Vec<_>>());
            layers.push(Layer {
                k,
                n,
                t_len,
                n_pad,
                w,
                bias: bias_pad,
                act: mlp.activation_of(idx),
                weight: weight.to_owned(),
                bias_row: Array2::from_shape_vec((1, n), bias.iter().copied().collect())
                    .expect("n entries"),
            });
            t_len = n_pad / 2;
        }
        Ok(Bf16Mlp { layers, backend })
    }

    /// The arithmetic [`Bf16Mlp::forward`] runs.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Input width (`None` for an MLP without layers, which passes any input through).
    pub fn in_dim(&self) -> Option<usize> {
        self.layers.first().map(|l| l.k)
    }

    /// Output width (`None` for an MLP without layers).
    pub fn out_dim(&self) -> Option<usize> {
        self.layers.last().map(|l| l.n)
    }

    /// The MLP's output for the rows of `x`.
    ///
    /// # Shapes
    /// `x`: `(batch, in)` -> `(batch, out)`.
    ///
    /// # Panics
    /// When `x` does not have [`Bf16Mlp::in_dim`] columns.
    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let (Some(in_dim), Some(out_dim)) = (self.in_dim(), self.out_dim()) else {
            return x.to_owned();
        };
        assert_eq!(
            x.ncols(),
            in_dim,
            "dmtl-tensor: bf16 MLP: input has {} columns, the first layer takes {in_dim}",
            x.ncols()
        );
        let m = x.nrows();
        if m == 0 {
            return Array2::zeros((0, out_dim));
        }
        match self.backend {
            Backend::F32 => self.forward_f32(x),
            Backend::Bf16 => {
                let mut out = Array2::<f32>::zeros((m, out_dim));
                let rows = task_rows(m, rayon::current_num_threads());
                let slice = out.as_slice_mut().expect("fresh array");
                slice
                    .par_chunks_mut(rows * out_dim)
                    .enumerate()
                    .for_each(|(i, o)| {
                        let r0 = i * rows;
                        let xs = x.slice(ndarray::s![r0..r0 + o.len() / out_dim, ..]);
                        self.forward_block(xs, o);
                    });
                out
            }
        }
    }

    /// The f32 fallback: whole-batch GEMMs on the calling thread (BLAS uses all threads).
    fn forward_f32(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut h = x.to_owned();
        for l in &self.layers {
            let mut y = h.dot(&l.weight.t());
            for mut row in y.axis_iter_mut(Axis(0)) {
                row.zip_mut_with(&l.bias_row.row(0), |v, &b| *v = l.act.apply(*v + b));
            }
            h = y;
        }
        h
    }

    /// All layers for one block of rows, `out` its `(rows, out)` output in row-major order.
    fn forward_block(&self, x: ArrayView2<f32>, out: &mut [f32]) {
        let rows = x.nrows();
        let rows_pad = rows.div_ceil(MR) * MR;
        let t0 = self.layers[0].t_len;
        let mut a = vec![0u32; rows_pad * t0];
        let mut buf = Vec::new();
        for (r, row) in x.axis_iter(Axis(0)).enumerate() {
            let row = match row.to_slice() {
                Some(s) => s,
                None => {
                    buf.clear();
                    buf.extend(row.iter().copied());
                    &buf[..]
                }
            };
            // SAFETY: the Bf16 backend runs only where `available()` holds, which includes
            // AVX-512F; `a` has `t0 = ceil(k / 2)` entries per row.
            unsafe { pack_row_wide(row, &mut a[r * t0..(r + 1) * t0]) };
        }
        let last = self.layers.len() - 1;
        let mut f: Vec<f32> = Vec::new();
        for (idx, l) in self.layers.iter().enumerate() {
            let ld = if idx == last { l.n_pad } else { l.n_pad / 2 };
            // The tiles below write every entry (all `rows_pad / MR` row panels times all
            // `n_pad / NR` column blocks), so the buffers need no zero fill.
            let mut next: Vec<u32> = Vec::new();
            let dst = if idx == last {
                f = Vec::with_capacity(rows_pad * ld);
                Dst::F32(f.as_mut_ptr())
            } else {
                next = Vec::with_capacity(rows_pad * ld);
                Dst::Bf16(next.as_mut_ptr())
            };
            for block in 0..l.n_pad / NR {
                let w = &l.w[block * l.t_len * NR..(block + 1) * l.t_len * NR];
                let bias = &l.bias[block * NR..(block + 1) * NR];
                for p in 0..rows_pad / MR {
                    let a = &a[p * MR * l.t_len..(p + 1) * MR * l.t_len];
                    // Offset of this tile's first entry in the destination, in its own units.
                    let off = p * MR * ld + block * if idx == last { NR } else { NR / 2 };
                    // SAFETY: the backend is Bf16 only where `available()` holds; `a` holds
                    // MR rows of `t_len` pairs, `w` `t_len * NR` words, `bias` NR values, and
                    // the destination MR rows of `ld` entries from `off`, of which the tile
                    // writes NR (or NR / 2) per row.
                    unsafe { tile(a, w, l.t_len, bias, l.act, dst.at(off), ld) };
                }
            }
            // SAFETY: every entry was written above; f32 and u32 have no invalid bit patterns.
            unsafe {
                if idx == last {
                    f.set_len(rows_pad * ld);
                } else {
                    next.set_len(rows_pad * ld);
                    a = next;
                }
            }
        }
        let l = &self.layers[last];
        for (r, o) in out.chunks_mut(l.n).enumerate() {
            o.copy_from_slice(&f[r * l.n_pad..r * l.n_pad + l.n]);
        }
    }
}

/// Rows per Rayon task: a multiple of [`MR`], about four tasks per thread so that a slow core
/// does not hold up the rest, at most [`MAX_TASK_ROWS`].
fn task_rows(m: usize, threads: usize) -> usize {
    let per = m.div_ceil(threads.max(1) * 4).div_ceil(MR) * MR;
    per.clamp(MR, MAX_TASK_ROWS)
}

/// Rounds a row to bf16 pairs `(x[2t], x[2t + 1])`, the last high half zero for odd widths.
pub(crate) fn pack_row(row: &[f32], out: &mut [u32]) {
    let pairs = row.chunks_exact(2);
    if let Some(&last) = pairs.remainder().first() {
        out[row.len() / 2] = round_bf16(last) as u32;
    }
    for (o, p) in out.iter_mut().zip(pairs) {
        *o = round_bf16(p[0]) as u32 | ((round_bf16(p[1]) as u32) << 16);
    }
}

/// [`pack_row`] 32 values at a time with AVX-512 (the same rounding).
///
/// # Safety
/// The CPU must support AVX-512F; `out` must hold `row.len().div_ceil(2)` entries.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn pack_row_wide(row: &[f32], out: &mut [u32]) {
    use std::arch::x86_64::*;
    let full = row.len() / NR;
    assert!(out.len() >= row.len().div_ceil(2));
    for c in 0..full {
        let v0 = _mm512_loadu_ps(row.as_ptr().add(c * NR));
        let v1 = _mm512_loadu_ps(row.as_ptr().add(c * NR + 16));
        let o = out.as_mut_ptr().add(c * NR / 2);
        _mm256_storeu_si256(o as *mut __m256i, round_vec(v0));
        _mm256_storeu_si256(o.add(8) as *mut __m256i, round_vec(v1));
    }
    pack_row(&row[full * NR..], &mut out[full * NR / 2..]);
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn pack_row_wide(row: &[f32], out: &mut [u32]) {
    pack_row(row, out)
}

/// Where a tile's output goes: f32 values (the last layer) or bf16 pairs for the next layer.
#[derive(Clone, Copy)]
pub(crate) enum Dst {
    F32(*mut f32),
    Bf16(*mut u32),
}

impl Dst {
    pub(crate) fn at(self, off: usize) -> Dst {
        // `wrapping_add` keeps this safe to call; the tile only dereferences in-bounds entries.
        match self {
            Dst::F32(p) => Dst::F32(p.wrapping_add(off)),
            Dst::Bf16(p) => Dst::Bf16(p.wrapping_add(off)),
        }
    }
}

/// `act(a W + b)` for an [`MR`] x [`NR`] tile: `a` holds MR rows of `t_len` bf16 pairs, `w`
/// the `t_len` x NR pairs of one column block. Writes MR rows of NR f32 values, or of NR / 2
/// bf16 pairs, `ld` entries apart.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512 BF16; `a.len() >= MR * t_len`,
/// `w.len() >= NR * t_len`, `bias.len() >= NR`, and the destination must have room for the
/// tile's rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) unsafe fn tile(
    a: &[u32],
    w: &[u32],
    t_len: usize,
    bias: &[f32],
    act: Activation,
    dst: Dst,
    ld: usize,
) {
    use std::arch::x86_64::*;
    debug_assert!(a.len() >= MR * t_len && w.len() >= NR * t_len && bias.len() >= NR);
    let ap = a.as_ptr();
    let wp = w.as_ptr();
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for t in 0..t_len {
        let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(wp.add(t * NR) as *const _));
        let w1: __m512bh = std::mem::transmute(_mm512_loadu_si512(wp.add(t * NR + 16) as *const _));
        for (r, row) in acc.iter_mut().enumerate() {
            let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(r * t_len + t) as i32));
            row[0] = _mm512_dpbf16_ps(row[0], w0, x);
            row[1] = _mm512_dpbf16_ps(row[1], w1, x);
        }
    }
    let b0 = _mm512_loadu_ps(bias.as_ptr());
    let b1 = _mm512_loadu_ps(bias.as_ptr().add(16));
    let zero = _mm512_setzero_ps();
    for (r, row) in acc.iter().enumerate() {
        let mut v = [_mm512_add_ps(row[0], b0), _mm512_add_ps(row[1], b1)];
        match act {
            Activation::Identity => {}
            // max(NaN, 0) is 0 here as in `f32::max`: the second operand wins on NaN.
            Activation::Relu => v = [_mm512_max_ps(v[0], zero), _mm512_max_ps(v[1], zero)],
            Activation::Sigmoid | Activation::Tanh => {
                let mut tmp = [0f32; NR];
                _mm512_storeu_ps(tmp.as_mut_ptr(), v[0]);
                _mm512_storeu_ps(tmp.as_mut_ptr().add(16), v[1]);
                for e in &mut tmp {
                    *e = act.apply(*e);
                }
                v = [
                    _mm512_loadu_ps(tmp.as_ptr()),
                    _mm512_loadu_ps(tmp.as_ptr().add(16)),
                ];
            }
        }
        match dst {
            Dst::F32(p) => {
                _mm512_storeu_ps(p.add(r * ld), v[0]);
                _mm512_storeu_ps(p.add(r * ld + 16), v[1]);
            }
            Dst::Bf16(p) => {
                // 32 consecutive columns rounded to bf16 are 16 consecutive pairs.
                _mm256_storeu_si256(p.add(r * ld) as *mut __m256i, round_vec(v[0]));
                _mm256_storeu_si256(p.add(r * ld + 8) as *mut __m256i, round_vec(v[1]));
            }
        }
    }
}

/// [`round_bf16`] of 16 lanes, as 16 packed u16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn round_vec(v: std::arch::x86_64::__m512) -> std::arch::x86_64::__m256i {
    std::arch::x86_64::_mm512_cvtepi32_epi16(round_lanes(v))
}

/// [`round_bf16`] of 16 lanes, each result in the low half of its 32-bit lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) unsafe fn round_lanes(v: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    let b = _mm512_castps_si512(v);
    let high = _mm512_srli_epi32::<16>(b);
    let lsb = _mm512_and_si512(high, _mm512_set1_epi32(1));
    let r = _mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7fff)), lsb);
    let r = _mm512_srli_epi32::<16>(r);
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
    let quiet = _mm512_or_si512(high, _mm512_set1_epi32(0x0040));
    _mm512_mask_blend_epi32(nan, r, quiet)
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn tile(
    _a: &[u32],
    _w: &[u32],
    _t_len: usize,
    _bias: &[f32],
    _act: Activation,
    _dst: Dst,
    _ld: usize,
) {
    unreachable!("the bf16 backend is chosen only where available() holds")
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::nn::MlpConfig;
    use crate::Graph;

    /// Where the CPU lacks AVX-512 BF16, whatever this one has: [`Bf16Mlp::new`] picks the f32
    /// fallback, which gives the graph's output bit for bit, and asking for bf16 is an error.
    #[test]
    fn without_avx512_bf16_the_f32_fallback_is_chosen_and_exact() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut store = ParamStore::new();
        let cfg = MlpConfig {
            hidden: vec![33, 5],
            activation: Activation::Tanh,
            last_activation: Activation::Sigmoid,
        };
        let mlp = Mlp::new(&mut store, "m", 9, &cfg, &mut rng);
        let x = Array2::from_shape_fn((40, 9), |(r, c)| ((r * 9 + c) % 17) as f32 / 8.0 - 1.0);

        let packed = Bf16Mlp::for_cpu(&mlp, &store, None, false).unwrap();
        assert_eq!(packed.backend(), Backend::F32);
        let g = Graph::new(&store);
        let y = mlp.forward(&g, g.input(x.clone()));
        let want = g.take_value(y);
        let got = packed.forward(x.view());
        let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(got.dim(), want.dim());
        assert_eq!(bits(&got), bits(&want));

        let err = Bf16Mlp::for_cpu(&mlp, &store, Some(Backend::Bf16), false).unwrap_err();
        assert!(err.to_string().contains("AVX-512 BF16"), "{err}");
        // With it, the kernel is the one chosen (not run here: this CPU may lack it).
        let chosen = Bf16Mlp::for_cpu(&mlp, &store, None, true).unwrap();
        assert_eq!(chosen.backend(), Backend::Bf16);
    }
}
