//! Joint training: the distillation term sends no gradient into the teacher, the teacher's
//! own loss none into the student, and a joint run trains both.

mod common;

use common::tiny_teacher;
use dmtl_joint::JointTrainer;
use dmtl_student::synthetic::{random_dataset, schema_and_vocabs, tiny_fields};
use dmtl_student::{ObjectiveConfig, Student, StudentConfig, TrainOptions};
use dmtl_teacher::{Teacher, TeacherConfig};
use dmtl_tensor::{Grads, Graph, ParamStore};

fn setup() -> (JointTrainer, dmtl_data::Dataset) {
    let fields = tiny_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 4);
    let teacher = Teacher::new(tiny_teacher(), &schema, &vocabs).unwrap();
    let scfg = StudentConfig {
        user_layers: vec![8, 4],
        item_layers: vec![8, 4],
        train: TrainOptions {
            epochs: 2,
            batch_size: 64,
            ..Default::default()
        },
        ..Default::default()
    };
    let student = Student::new(scfg, &schema, &vocabs).unwrap();
    let joint = JointTrainer::new(teacher, student, &schema, &vocabs).unwrap();
    (joint, random_dataset(&fields, 400, 9))
}

/// Largest |gradient| of the parameters whose name starts with `prefix`, and how many of
/// them received a gradient at all.
fn grad_stats(store: &ParamStore, grads: &Grads, prefix: &str) -> (f32, usize, usize) {
    let mut max = 0.0f32;
    let (mut with, mut total) = (0, 0);
    for (id, p) in store.iter() {
        if !p.name.starts_with(prefix) {
            continue;
        }
        total += 1;
        if let Some(g) = grads.get(id) {
            with += 1;
            max = max.max(g.values().iter().fold(0.0f32, |m, x| m.max(x.abs())));
        }
    }
    (max, with, total)
}

#[test]
fn distillation_gradient_stops_at_the_teacher() {
    let (joint, data) = setup();
    let batch = data.batch(&(0..128).collect::<Vec<u32>>());
    let g = Graph::new(joint.store());
    let l = joint.losses(&g, &batch);

    let distill = g.backward(l.student);
    let (t_max, _, t_total) = grad_stats(joint.store(), &distill, "teacher.");
    assert!(
        t_total > 10,
        "the joint store holds the teacher ({t_total} params)"
    );
    assert_eq!(
        t_max, 0.0,
        "the distillation loss moved a teacher parameter"
    );
    let (s_max, s_with, s_total) = grad_stats(joint.store(), &distill, "student.");
    assert!(
        s_max > 0.0 && s_with == s_total,
        "every student parameter learns from distillation"
    );

    // And the other way: the teacher's loss reaches every teacher parameter, no student one.
    let esmm = g.backward(l.teacher);
    let (t_max, t_with, t_total) = grad_stats(joint.store(), &esmm, "teacher.");
    assert!(t_max > 0.0 && t_with == t_total);
    assert_eq!(grad_stats(joint.store(), &esmm, "student.").1, 0);

    // The total is the sum of both: its teacher gradients are the ESMM ones exactly.
    let total = g.backward(l.total);
    for (id, p) in joint.store().iter() {
        if p.name.starts_with("teacher.") {
            assert_eq!(
                total.get(id).unwrap().values(),
                esmm.get(id).unwrap().values(),
                "{}",
                p.name
            );
        }
    }
}

#[test]
fn joint_training_moves_both_models_deterministically() {
    let (joint, data) = setup();
    let teacher_before = joint.store().clone();
    let run = |mut j: JointTrainer| {
        let h = j.train(&data, Some(&data), |_| {}).unwrap();
        (j.into_parts(), h)
    };
    let ((t1, s1), h1) = run(joint.clone());
    let ((t2, s2), h2) = run(joint);
    assert_eq!(h1.epochs.len(), 2);
    assert!(h1
        .epochs
        .iter()
        .all(|e| e.parts.teacher_loss.is_some() && e.valid.is_some()));
    assert_eq!(h1, {
        let mut h = h2.clone();
        for (a, b) in h.epochs.iter_mut().zip(&h1.epochs) {
            a.train_seconds = b.train_seconds;
            a.impressions_per_second = b.impressions_per_second;
        }
        h
    });
    let changed = t1
        .store()
        .iter()
        .any(|(id, p)| p.value != teacher_before.value(id));
    assert!(changed, "joint training left the teacher untouched");
    assert_eq!(
        s1.score_dataset(&data).unwrap(),
        s2.score_dataset(&data).unwrap()
    );
    assert_eq!(t1.predict(&data).unwrap(), t2.predict(&data).unwrap());
}

#[test]
fn joint_training_needs_a_distillation_objective() {
    let fields = tiny_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 4);
    let teacher = Teacher::new(
        TeacherConfig {
            body: dmtl_teacher::MmoeConfig {
                n_experts: 1,
                expert_hidden: vec![4],
                tower_hidden: vec![],
            }
            .into(),
            ..Default::default()
        },
        &schema,
        &vocabs,
    )
    .unwrap();
    let cfg = StudentConfig {
        user_layers: vec![4],
        item_layers: vec![4],
        objective: ObjectiveConfig::of(dmtl_student::objective::ClickBce {}),
        ..Default::default()
    };
    let student = Student::new(cfg, &schema, &vocabs).unwrap();
    let err = JointTrainer::new(teacher, student, &schema, &vocabs)
        .unwrap_err()
        .to_string();
    assert!(err.contains("objective.type"), "{err}");
}
