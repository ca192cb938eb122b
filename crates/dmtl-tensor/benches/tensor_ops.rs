//! Linear forward+backward at the reference shapes (batch 1024) and embedding-bag gather/scatter.
//!
//! Throughput of the linear benchmarks is in FLOPs (criterion prints "elem/s": read GFLOP/s):
//! forward `2 m k n` plus backward `4 m k n` (input and weight gradients).
//!
//! Run: `cargo bench -p dmtl-tensor --bench tensor_ops`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dmtl_tensor::{Activation, Graph, Init, ParamStore, Pooling};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn linear(c: &mut Criterion) {
    dmtl_tensor::threads::init(None);
    let mut group = c.benchmark_group("linear_fwd_bwd");
    let batch = 1024;
    for (k, n) in [(208usize, 256usize), (256, 128), (112, 256)] {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut store = ParamStore::new();
        let w = store.weight("w", n, k, Init::HeUniform, &mut rng);
        let b = store.bias("b", n);
        let x = Array2::from_shape_simple_fn((batch, k), || rng.gen_range(-1.0f32..1.0));
        group.throughput(Throughput::Elements(6 * (batch * k * n) as u64));
        group.bench_function(
            BenchmarkId::from_parameter(format!("{batch}x{k}->{n}")),
            |bench| {
                bench.iter(|| {
                    let g = Graph::new(&store);
                    // The input takes part in the gradient too, as a hidden layer's does.
                    let xv = g.linear(
                        g.input(x.clone()),
                        g.param(w),
                        Some(g.param(b)),
                        Activation::Relu,
                    );
                    let loss = g.sum_all(xv);
                    let _ = g.backward_with(loss, Array2::from_elem((1, 1), 1.0));
                })
            },
        );
    }
    group.finish();
}

fn embedding_bag(c: &mut Criterion) {
    let mut group = c.benchmark_group("embedding_bag_fwd_bwd");
    let batch = 1024;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut store = ParamStore::new();
    let t = store.embedding("tags", 2000, 16, Init::Normal(0.05), &mut rng);
    let mut ids = Vec::new();
    let mut offsets = vec![0u32];
    for _ in 0..batch {
        for _ in 0..rng.gen_range(1..=8) {
            ids.push(rng.gen_range(0..2000u32));
        }
        offsets.push(ids.len() as u32);
    }
    let users = store.embedding("user_id", 100_000, 16, Init::Normal(0.05), &mut rng);
    let user_ids: Vec<u32> = (0..batch).map(|_| rng.gen_range(0..100_000u32)).collect();
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function("multi_hot_1to8_of_2000_mean", |bench| {
        bench.iter(|| {
            let g = Graph::new(&store);
            let e = g.embedding_bag(t, &ids, &offsets, Pooling::Mean);
            g.backward(g.sum_all(e))
        })
    });
    group.bench_function("single_id_of_100000", |bench| {
        bench.iter(|| {
            let g = Graph::new(&store);
            let e = g.embedding(users, &user_ids);
            g.backward(g.sum_all(e))
        })
    });
    group.finish();
}

criterion_group!(benches, linear, embedding_bag);
criterion_main!(benches);
