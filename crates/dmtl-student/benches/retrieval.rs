//! Exact top-100 retrieval at the reference sizes: 1,024 queries against 200,000 and 1,000,000
//! items of 64 floats (seeded standard normal vectors). Throughput is in queries.
//!
//! `default` is the bf16 filter with exact rescoring where the CPU has AVX-512 BF16, `gemm` the
//! f32 GEMM path. `DMTL_RETRIEVAL_SWEEP=1` also times other block sizes and the
//! all-BLAS-threads variant of the GEMM path. `DMTL_RETRIEVAL_CPU=1` first prints queries per
//! CPU-second of this process (best of 5) for `default` and `gemm`, a figure that stays
//! meaningful when other processes share the machine (compare `qps_per_cpu_s` of
//! `faiss_compare.py`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dmtl_student::retrieval::{top_k_with, Kernel, SearchOptions, Threading};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

fn normal(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || StandardNormal.sample(&mut rng))
}

/// CPU time of this process (all threads), in seconds.
fn cpu_seconds() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: a valid pointer to a timespec-shaped struct.
    unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

fn bench(c: &mut Criterion) {
    dmtl_tensor::threads::init(None);
    let (nq, d, k) = (1024, 64, 100);
    let queries = normal(nq, d, 1);
    let sweep = std::env::var("DMTL_RETRIEVAL_SWEEP").is_ok_and(|v| v == "1");
    for n in [200_000usize, 1_000_000] {
        let items = normal(n, d, 2);
        let mut g = c.benchmark_group(format!("retrieval_{n}x{d}_k{k}"));
        g.throughput(Throughput::Elements(nq as u64));
        g.sample_size(10);
        let gemm = SearchOptions {
            kernel: Kernel::Gemm,
            ..SearchOptions::default()
        };
        let mut variants = vec![
            ("default".to_string(), SearchOptions::default()),
            ("gemm".to_string(), gemm),
        ];
        if cfg!(target_os = "linux") && std::env::var("DMTL_RETRIEVAL_CPU").is_ok_and(|v| v == "1")
        {
            for (name, opts) in &variants {
                top_k_with(queries.view(), items.view(), k, None, *opts).unwrap();
                let best = (0..5)
                    .map(|_| {
                        let t = cpu_seconds();
                        top_k_with(queries.view(), items.view(), k, None, *opts).unwrap();
                        cpu_seconds() - t
                    })
                    .fold(f64::INFINITY, f64::min);
                println!(
                    "retrieval_{n}x{d}_k{k}/{name}: {:.0} queries per CPU-second",
                    nq as f64 / best
                );
            }
        }
        if sweep {
            for ib in [256, 2048, 8192] {
                variants.push((
                    format!("filter_i{ib}"),
                    SearchOptions {
                        item_block: ib,
                        ..SearchOptions::default()
                    },
                ));
            }
            for (qb, ib) in [
                (128, 1024),
                (256, 256),
                (256, 2048),
                (512, 512),
                (1024, 256),
            ] {
                variants.push((
                    format!("rayon_q{qb}_i{ib}"),
                    SearchOptions {
                        query_block: qb,
                        item_block: ib,
                        threading: Threading::RayonTasks,
                        kernel: Kernel::Gemm,
                    },
                ));
            }
            for (qb, ib) in [(1024, 2048), (1024, 8192), (256, 16384)] {
                variants.push((
                    format!("blas_q{qb}_i{ib}"),
                    SearchOptions {
                        query_block: qb,
                        item_block: ib,
                        threading: Threading::BlasThreads,
                        kernel: Kernel::Gemm,
                    },
                ));
            }
        }
        for (name, opts) in variants {
            g.bench_function(name, |b| {
                b.iter(|| top_k_with(queries.view(), items.view(), k, None, opts).unwrap())
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
