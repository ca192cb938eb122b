//! The teacher at the reference shapes of BENCHMARKS.md: one training step (forward, backward,
//! Adam) and scoring, in impressions per second.
//!
//! `cargo bench -p dmtl-teacher --bench teacher_step`
//!
//! 13 fields x 16 (vocabularies of the reference workload, multi-hot bags of 1-8 and 1-5 ids),
//! MMoE with 4 experts [256, 128], gates per task, towers [64] -> 1; batch 1,024; batches are
//! built in memory beforehand and cycled, CTR ~10 %, P(long read | click) = 0.4 as in the
//! PyTorch reference (`shared/anchors/torch_reference.py`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
mod reference;

use dmtl_data::{Batch, Dataset};
use dmtl_teacher::{Teacher, TeacherConfig};
use dmtl_tensor::optim::Adam;
use reference::{random_dataset, reference_schema};

const B: usize = 1024;

fn batches(data: &Dataset) -> Vec<Batch> {
    data.batches(B, None, true).collect()
}

fn bench(c: &mut Criterion) {
    dmtl_tensor::threads::init(None);
    let (schema, vocabs) = reference_schema();
    let data = random_dataset(32 * B, 1);
    let train_batches = batches(&data);
    let mut teacher = Teacher::new(TeacherConfig::default(), &schema, &vocabs).expect("teacher");
    let mut adam = Adam::new(1e-3);

    let mut g = c.benchmark_group("teacher");
    g.sample_size(20);
    g.throughput(Throughput::Elements(B as u64));
    let mut i = 0;
    g.bench_function("train_step_mmoe_b1024", |b| {
        b.iter(|| {
            let batch = &train_batches[i % train_batches.len()];
            i += 1;
            teacher.train_step(&mut adam, batch, None)
        })
    });

    // Scoring one batch at a time: each GEMM may use every BLAS thread.
    let mut i = 0;
    g.bench_function("score_batch_sequential_b1024", |b| {
        b.iter(|| {
            let batch = &train_batches[i % train_batches.len()];
            i += 1;
            teacher.predict_batch(batch).expect("fits")
        })
    });

    // Scoring a log: batches in parallel, single-threaded BLAS inside each.
    let log = random_dataset(16 * B, 2);
    g.throughput(Throughput::Elements(log.n_rows as u64));
    g.bench_function("predict_16_batches_parallel_b1024", |b| {
        b.iter(|| teacher.predict(&log).expect("fits"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
