//! The student at the reference workload (BENCHMARKS.md): one distillation step (forward,
//! backward in data-parallel row shards, lazy Adam) on a batch of 1,024 impressions, and user-tower inference on 1,024
//! users (f32, and with the MLP in bf16), both in impressions per second. The batches are built in memory up front (random ids
//! over the reference vocabularies, random teacher pCTCVR), so the figures are the steady state
//! of the model alone.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dmtl_data::Batch;
use dmtl_student::step::loss_and_grads;
use dmtl_student::synthetic::{random_dataset, reference_fields, schema_and_vocabs};
use dmtl_student::{Precision, Student, StudentConfig};
use dmtl_tensor::optim::{Adam, Optimizer};
use rand::{Rng, SeedableRng};

const BATCH: usize = 1024;
const N_BATCHES: usize = 16;

fn setup() -> (Student, Vec<(Batch, Vec<f32>)>) {
    dmtl_tensor::threads::init(None);
    let fields = reference_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 16);
    let student = Student::new(StudentConfig::default(), &schema, &vocabs).unwrap();
    let data = random_dataset(&fields, BATCH * N_BATCHES, 42);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(43);
    let batches = (0..N_BATCHES)
        .map(|b| {
            let rows: Vec<u32> = ((b * BATCH) as u32..((b + 1) * BATCH) as u32).collect();
            let teacher: Vec<f32> = (0..BATCH).map(|_| rng.gen_range(0.0f32..0.3)).collect();
            (data.batch(&rows), teacher)
        })
        .collect();
    (student, batches)
}

fn distillation_step(c: &mut Criterion) {
    let (mut student, batches) = setup();
    let mut adam = Adam::new(1e-3);
    let objective = student.config().objective.build();
    let mut k = 0;
    let mut group = c.benchmark_group("student");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(30);
    group.bench_function("distillation_step_b1024", |b| {
        b.iter(|| {
            let (batch, teacher) = &batches[k % N_BATCHES];
            k += 1;
            // The trainer's step: row shards in parallel, one per thread.
            let (_, grads) = loss_and_grads(
                student.store(),
                student.towers(),
                objective.as_ref(),
                batch,
                Some(teacher),
            );
            adam.step(student.store_mut(), &grads);
        })
    });
    group.bench_function("user_tower_inference_b1024", |b| {
        b.iter_batched(
            || {
                k += 1;
                &batches[k % N_BATCHES].0
            },
            |batch| student.user_vectors_batch(batch).expect("fits"),
            BatchSize::SmallInput,
        )
    });
    // The same inference with the user MLP in bf16 (packed once, outside the timing); on a
    // CPU without AVX-512 BF16 it runs the f32 fallback.
    let encoder = student.user_encoder(Precision::Bf16).expect("packs");
    group.bench_function("user_tower_inference_bf16_b1024", |b| {
        b.iter_batched(
            || {
                k += 1;
                &batches[k % N_BATCHES].0
            },
            |batch| encoder.user_vectors_batch(batch).expect("fits"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, distillation_step);
criterion_main!(benches);
