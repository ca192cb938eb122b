//! Where one distillation step at the reference shapes spends its time (forward, backward,
//! Adam), averaged over 30 steps after 5 of warm-up.
//!
//! ```text
//! cargo run --profile test -p dmtl-student --example step_profile
//! ```

use std::time::Instant;

use dmtl_student::synthetic::{random_dataset, reference_fields, schema_and_vocabs};
use dmtl_student::{Student, StudentConfig, Targets};
use dmtl_tensor::optim::{Adam, Optimizer};
use dmtl_tensor::Graph;

fn main() {
    dmtl_tensor::threads::init(None);
    let fields = reference_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 16);
    let mut student = Student::new(StudentConfig::default(), &schema, &vocabs).unwrap();
    let data = random_dataset(&fields, 1024 * 8, 42);
    let batches: Vec<_> = (0..8u32)
        .map(|b| data.batch(&(b * 1024..(b + 1) * 1024).collect::<Vec<_>>()))
        .collect();
    let teacher = vec![0.1f32; 1024];
    let objective = student.config().objective.build();
    let mut adam = Adam::new(1e-3);
    let (mut tf, mut tb, mut ta) = (0.0, 0.0, 0.0);
    for it in 0..35 {
        let batch = &batches[it % 8];
        let t0 = Instant::now();
        let g = Graph::new(student.store());
        let s = student.score(&g, batch);
        let targets = Targets {
            click: &batch.click,
            duration: &batch.duration,
            long_read: &batch.long_read,
            teacher: Some(&teacher),
            weights: None,
        };
        let loss = objective.loss(&g, s, &targets);
        let t1 = Instant::now();
        let grads = g.backward(loss);
        drop(g);
        let t2 = Instant::now();
        adam.step(student.store_mut(), &grads);
        let t3 = Instant::now();
        if it >= 5 {
            tf += (t1 - t0).as_secs_f64();
            tb += (t2 - t1).as_secs_f64();
            ta += (t3 - t2).as_secs_f64();
        }
    }
    let ms = |t: f64| t / 30.0 * 1e3;
    println!(
        "forward {:.2} ms, backward {:.2} ms, adam {:.2} ms, total {:.2} ms ({:.0} imp/s)",
        ms(tf),
        ms(tb),
        ms(ta),
        ms(tf + tb + ta),
        1024.0 / ((tf + tb + ta) / 30.0)
    );
}
