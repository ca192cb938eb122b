//! AUC and GAUC over 1,000,000 impressions.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dmtl_metrics::{auc, gauc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn bench(c: &mut Criterion) {
    let n = 1_000_000;
    let mut rng = StdRng::seed_from_u64(1);
    let scores: Vec<f32> = (0..n).map(|_| rng.gen::<f32>()).collect();
    let labels: Vec<f32> = scores
        .iter()
        .map(|&s| (rng.gen::<f32>() < s * 0.3) as u8 as f32)
        .collect();
    let groups: Vec<u32> = (0..n).map(|_| rng.gen_range(0..100_000)).collect();
    let mut g = c.benchmark_group("metrics");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(20);
    g.bench_function("auc_1m", |b| b.iter(|| auc(&scores, &labels)));
    g.bench_function("gauc_1m_100k_groups", |b| {
        b.iter(|| gauc(&scores, &labels, &groups))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
