//! GFLOP/s of the three products of a linear layer, f32 (BLAS SGEMM) against the bf16 GEMM
//! of mixed-precision training (`dmtl_tensor::bf16_gemm::matmul_with`, on each kernel this CPU
//! runs: `vdpbf16ps`, and AMX tiles where it has them), on one core, at the
//! teacher's reference shapes (one shard of 512 rows; layers 208 -> 256 -> 128, towers
//! 128 -> 64): forward `X W^T`, `dX = dZ W`, `dW = dZ^T X`, as the tape calls them.
//!
//! Then the peak of the two instructions on this core: independent `vdpbf16ps` (32 bf16
//! multiply-adds) and `vfmadd231ps` (16 f32 multiply-adds) on 28 zmm accumulators.
//!
//! `cargo run --release -p dmtl-tensor --example bf16_gemm [-- ROUNDS]`

use std::time::Instant;

use dmtl_tensor::{bf16, bf16_gemm, threads};
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};

fn random(shape: (usize, usize), seed: u64) -> Array2<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn(shape, || rng.gen_range(-1.0f32..1.0))
}

/// Median seconds of `f` over `rounds` timed runs of enough calls to last ~20 ms.
fn median_s(rounds: usize, mut f: impl FnMut() -> Array2<f32>) -> f64 {
    let t = Instant::now();
    let mut calls = 0;
    while t.elapsed().as_secs_f64() < 0.02 {
        std::hint::black_box(f());
        calls += 1;
    }
    let mut v: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                std::hint::black_box(f());
            }
            t.elapsed().as_secs_f64() / calls as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[rounds / 2]
}

/// GFLOP/s of `n` rounds of 28 independent `vdpbf16ps` (64 flops each).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn peak_vdpbf16ps(n: usize) -> f64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); 28];
    let a: __m512bh = std::mem::transmute(_mm512_set1_epi32(0x3f80_3f80));
    let t = Instant::now();
    for _ in 0..n {
        for x in acc.iter_mut() {
            *x = _mm512_dpbf16_ps(*x, a, a);
        }
    }
    let s = t.elapsed().as_secs_f64();
    std::hint::black_box(acc);
    (28 * n * 64) as f64 / s / 1e9
}

/// GFLOP/s of `n` rounds of 28 independent `vfmadd231ps` (32 flops each).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn peak_vfmadd(n: usize) -> f64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); 28];
    let (a, b) = (_mm512_set1_ps(0.5), _mm512_set1_ps(0.25));
    let t = Instant::now();
    for _ in 0..n {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    let s = t.elapsed().as_secs_f64();
    std::hint::black_box(acc);
    (28 * n * 32) as f64 / s / 1e9
}

fn main() {
    if !bf16::available() {
        println!("this CPU lacks AVX-512 BF16: nothing to compare");
        return;
    }
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(9, |s| s.parse().expect("ROUNDS is a number"));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let rows = 512;
    let kernels = bf16_gemm::kernels();
    let names: Vec<String> = kernels.iter().map(|k| format!("{k:?} GFLOP/s")).collect();
    println!(
        "| layer | product | (m, k, n) | f32 GFLOP/s | {} | fastest / f32 |",
        names.join(" | ")
    );
    println!("|---|---|---|---:|{}---:|", "---:|".repeat(kernels.len()));
    let mut t32 = 0f64;
    let mut t16 = vec![0f64; kernels.len()];
    for (i, &(k, n)) in [(208usize, 256usize), (256, 128), (128, 64)]
        .iter()
        .enumerate()
    {
        let x = random((rows, k), 1 + i as u64);
        let w = random((n, k), 2 + i as u64);
        let dz = random((rows, n), 3 + i as u64);
        type Pair<'a> = (ArrayView2<'a, f32>, ArrayView2<'a, f32>);
        let products: [(&str, Pair<'_>); 3] = [
            ("X W^T", (x.view(), w.t())),
            ("dZ W", (dz.view(), w.view())),
            ("dZ^T X", (dz.t(), x.view())),
        ];
        for (name, (a, b)) in products {
            let flops = 2.0 * (a.nrows() * a.ncols() * b.ncols()) as f64;
            // Inside a one-thread pool with a one-thread BLAS, as in a data-parallel shard.
            let (s32, s16): (f64, Vec<f64>) = pool.install(|| {
                threads::with_blas_threads(1, || {
                    let s32 = median_s(rounds, || a.dot(&b));
                    let s16 = kernels
                        .iter()
                        .map(|&kn| median_s(rounds, || bf16_gemm::matmul_with(kn, a, b)))
                        .collect();
                    (s32, s16)
                })
            });
            t32 += s32;
            t16.iter_mut().zip(&s16).for_each(|(t, s)| *t += s);
            let rates: Vec<String> = s16
                .iter()
                .map(|s| format!("{:.1}", flops / s / 1e9))
                .collect();
            println!(
                "| {k} -> {n} | {name} | ({}, {}, {}) | {:.1} | {} | {:.2}x |",
                a.nrows(),
                a.ncols(),
                b.ncols(),
                flops / s32 / 1e9,
                rates.join(" | "),
                s32 / s16[0]
            );
        }
    }
    for (kn, t) in kernels.iter().zip(&t16) {
        println!(
            "all nine products: f32 {:.3} ms, {kn:?} {:.3} ms, {:.2}x",
            t32 * 1e3,
            t * 1e3,
            t32 / t
        );
    }
    #[cfg(target_arch = "x86_64")]
    {
        let n = 10_000_000;
        // SAFETY: `bf16::available()` (AVX-512F and AVX-512 BF16) was checked above.
        let (dp, fma) = unsafe { (peak_vdpbf16ps(n), peak_vfmadd(n)) };
        println!(
            "instruction peak on one core: vdpbf16ps {dp:.1} GFLOP/s, vfmadd231ps {fma:.1} GFLOP/s"
        );
    }
}
