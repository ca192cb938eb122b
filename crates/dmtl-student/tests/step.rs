//! A training batch split into data-parallel row shards gives the gradient of the whole batch,
//! for every configuration of every registered objective ([`OBJECTIVES`]: a newly registered
//! one is tested here without a line of its own), including the weighted logistic regression whose mean divides by the
//! total duration rather than by the number of rows.

use dmtl_student::objective::OBJECTIVES;
use dmtl_student::step::loss_and_grads;
use dmtl_student::synthetic::{random_dataset, schema_and_vocabs, tiny_fields};
use dmtl_student::{Student, StudentConfig, Targets};
use dmtl_tensor::{threads, Grad, Grads, Graph};
use ndarray::Array2;
use rand::{Rng, SeedableRng};

fn dense(grads: &Grads, id: dmtl_tensor::ParamId, rows: usize) -> Array2<f32> {
    match grads.get(id) {
        None => Array2::zeros((rows, 1)),
        Some(Grad::Dense(d)) => d.clone(),
        Some(Grad::Sparse(s)) => s.to_dense(rows),
    }
}

#[test]
fn sharded_steps_match_the_whole_batch_for_every_objective() {
    let fields = tiny_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 4);
    let student = Student::new(
        StudentConfig {
            user_layers: vec![8, 4],
            item_layers: vec![8, 4],
            ..Default::default()
        },
        &schema,
        &vocabs,
    )
    .unwrap();
    let data = random_dataset(&fields, 700, 9);
    let batch = data.batch(&(0..700u32).collect::<Vec<_>>());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let teacher: Vec<f32> = (0..700).map(|_| rng.gen_range(0.01f32..0.6)).collect();
    let objectives = OBJECTIVES.entries.iter().flat_map(|e| e.test_configs());
    for cfg in objectives {
        let objective = cfg.build();
        // The plain tape over the whole batch.
        let g = Graph::new(student.store());
        let s = student.towers().score(&g, &batch);
        let t = Targets {
            click: &batch.click,
            duration: &batch.duration,
            long_read: &batch.long_read,
            teacher: Some(&teacher),
            weights: None,
        };
        let loss = objective.loss(&g, s, &t);
        let whole_loss = g.scalar(loss);
        let whole = g.backward(loss);
        for shards in [1, 2, 5] {
            threads::set_shards(Some(shards));
            assert_eq!(threads::shards_for(700), shards);
            let (l, grads) = loss_and_grads(
                student.store(),
                student.towers(),
                objective.as_ref(),
                &batch,
                Some(&teacher),
            );
            assert!(
                (l - whole_loss).abs() <= 1e-5 * whole_loss.abs().max(1e-3),
                "{cfg:?}, {shards} shards: loss {l} vs {whole_loss}"
            );
            for (id, p) in student.store().iter() {
                let rows = p.value.nrows();
                let (a, b) = (dense(&grads, id, rows), dense(&whole, id, rows));
                let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-6);
                let err = (&a - &b).iter().fold(0.0f32, |m, x| m.max(x.abs()));
                assert!(
                    err <= 2e-5 * scale,
                    "{cfg:?}, {shards} shards, {}: max error {err} of {scale}",
                    p.name
                );
            }
        }
        threads::set_shards(None);
    }
}
