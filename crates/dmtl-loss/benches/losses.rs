//! Forward + backward of the losses at the reference batch (1024 impressions), each against the
//! same loss composed from element-wise graph ops, to show what one closed-form op saves.
//!
//! Run: `cargo bench -p dmtl-loss --bench losses`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dmtl_loss::{esmm_loss, soft_bce, Reduction};
use dmtl_tensor::{Graph, ParamKind, ParamStore};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 1024;

fn losses(c: &mut Criterion) {
    dmtl_tensor::threads::init(None);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut column = || Array2::from_shape_simple_fn((BATCH, 1), || rng.gen_range(-4.0f32..4.0));
    let mut store = ParamStore::new();
    let ctr = store.add("ctr_logit", column(), ParamKind::Dense);
    let cvr = store.add("cvr_logit", column(), ParamKind::Dense);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let click: Vec<f32> = (0..BATCH).map(|_| rng.gen_bool(0.3) as u8 as f32).collect();
    let long_read: Vec<f32> = click
        .iter()
        .map(|&y| y * rng.gen_bool(0.4) as u8 as f32)
        .collect();
    let teacher: Vec<f32> = (0..BATCH).map(|_| rng.gen_range(0.0f32..1.0)).collect();

    let mut group = c.benchmark_group("loss_fwd_bwd");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("esmm_loss/1024", |b| {
        b.iter(|| {
            let g = Graph::new(&store);
            let l = esmm_loss(
                &g,
                g.param(ctr),
                g.param(cvr),
                &click,
                &long_read,
                1.0,
                Reduction::Mean,
            );
            g.backward(l.total)
        })
    });
    group.bench_function("soft_bce/1024", |b| {
        b.iter(|| {
            let g = Graph::new(&store);
            let l = soft_bce(&g, g.param(ctr), &teacher, None, Reduction::Mean);
            g.backward(l)
        })
    });
    let q = Array2::from_shape_vec((BATCH, 1), teacher.clone()).unwrap();
    group.bench_function("soft_bce_composed/1024", |b| {
        b.iter(|| {
            // mean(softplus(x) - q x) from graph ops: four nodes, each with its own buffer.
            let g = Graph::new(&store);
            let x = g.param(ctr);
            let l = g.mean_all(g.sub(g.softplus(x), g.mul(x, g.input(q.clone()))));
            g.backward(l)
        })
    });
    group.finish();
}

criterion_group!(benches, losses);
criterion_main!(benches);
