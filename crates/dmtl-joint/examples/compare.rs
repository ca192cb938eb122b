//! The paper's comparison on the simulator: the teacher, B1 (clicks), B2 (hard long reads),
//! B3 (log-duration MSE, weighted logistic), DMTL with each distillation loss (two-stage) and
//! DMTL trained jointly, all with the same towers; offline metrics on the test days and top-K
//! retrieval judged by the simulator's truth. Prints one JSON object.
//!
//! ```text
//! cargo run --release -p dmtl-joint --example compare -- [n_impressions] [epochs]
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use common::{world, world_student, world_teacher, world_training, World};
use dmtl_joint::JointTrainer;
use dmtl_loss::stable::prob_to_logit;
use dmtl_student::eval::{
    evaluate_offline, offline_metrics, Evaluation, RetrievalConfig, RetrievalEvaluator,
};
use dmtl_student::{DistillKind, ObjectiveConfig, OutputKind, Student};
use dmtl_teacher::Teacher;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    dmtl_tensor::threads::init(None);
    let args: Vec<String> = std::env::args().collect();
    let n_impressions: usize = args.get(1).map_or(Ok(100_000), |s| s.parse())?;
    let epochs: usize = args.get(2).map_or(Ok(3), |s| s.parse())?;
    let World {
        sim,
        schema,
        vocabs,
        train,
        test,
    } = world(n_impressions)?;
    let ev = RetrievalEvaluator::new(&sim, &schema, &vocabs, &test, RetrievalConfig::default())?;

    let tcfg = world_teacher();
    let topts = world_training(epochs);
    let mut teacher = Teacher::new(tcfg.clone(), &schema, &vocabs)?;
    teacher.train(&train, None, &topts, |_| {})?;
    let soft = teacher.predict(&train)?.p_ctcvr;
    let t_logit: Vec<f32> = teacher
        .predict(&test)?
        .p_ctcvr
        .iter()
        .map(|&p| prob_to_logit(p, 1e-7))
        .collect();
    let mut results = vec![Evaluation {
        model: "teacher".into(),
        offline: offline_metrics(&t_logit, OutputKind::LongReadProbability, &test)?,
        retrieval: None,
    }];

    let cfg = |objective| world_student(objective, epochs);
    let distill = |loss| ObjectiveConfig::of(dmtl_student::objective::Distill { alpha: 1.0, loss });
    let runs = [
        (
            "b1_click",
            ObjectiveConfig::of(dmtl_student::objective::ClickBce {}),
        ),
        (
            "b2_long_read",
            ObjectiveConfig::of(dmtl_student::objective::LongReadBce {}),
        ),
        (
            "b3_log_duration",
            ObjectiveConfig::of(dmtl_student::objective::LogDurationMse {}),
        ),
        (
            "b3_weighted_logistic",
            ObjectiveConfig::of(dmtl_student::objective::WeightedLogistic {}),
        ),
        ("dmtl_soft_bce", distill(DistillKind::Soft)),
        ("dmtl_kl_t2", distill(DistillKind::Kl { temperature: 2.0 })),
        ("dmtl_mse_logits", distill(DistillKind::MseLogits)),
        (
            "dmtl_alpha_0.5",
            ObjectiveConfig::of(dmtl_student::objective::Distill {
                alpha: 0.5,
                loss: DistillKind::Soft,
            }),
        ),
    ];
    for (name, objective) in runs {
        let t = objective.needs_teacher().then_some(&soft[..]);
        let mut s = Student::new(cfg(objective), &schema, &vocabs)?;
        s.train(&train, None, t, |_| {})?;
        results.push(Evaluation {
            model: name.into(),
            offline: evaluate_offline(&s, &test)?,
            retrieval: Some(ev.evaluate(&s)?),
        });
        eprintln!("{name} done");
    }
    let fresh_teacher = Teacher::new(tcfg, &schema, &vocabs)?;
    let (_, joint, _) = JointTrainer::fit(
        fresh_teacher,
        cfg(ObjectiveConfig::default()),
        &schema,
        &vocabs,
        &train,
        None,
    )?;
    results.push(Evaluation {
        model: "dmtl_joint".into(),
        offline: evaluate_offline(&joint, &test)?,
        retrieval: Some(ev.evaluate(&joint)?),
    });
    println!("{}", serde_json::to_string_pretty(&results)?);
    Ok(())
}
