//! Joint DMTL training (Zhao et al., arXiv 2102.07142): the multi-task teacher
//! (`dmtl-teacher`) and the two-tower student (`dmtl-student`) in one loop over one parameter
//! store. It lives above both crates, so that the student knows no teacher: two-stage
//! training hands the student the teacher's scores as data, and only this crate, which needs
//! both models, builds them together.
//!
//! Each step runs the teacher on the batch and takes its ESMM loss; the student's
//! distillation target is the teacher's current pCTCVR passed through [`Graph::detach`], so
//! the distillation term sends no gradient into the teacher (the teacher learns from its own
//! labels only) while the student follows the teacher as it improves. One Adam updates both.
//!
//! Both models' parameters live in one [`ParamStore`]: the teacher's first (its handles stay
//! valid), then a copy of the student's towers registered under the same `student.` names.

#![deny(missing_docs)]

use dmtl_data::{Batch, Dataset, Schema, Vocabularies};
use dmtl_loss::{esmm_loss, Reduction};
use dmtl_teacher::Teacher;
use dmtl_tensor::{Graph, ParamId, ParamStore, Var};

use dmtl_student::train::{check_labelled, run_epochs, StepLoss, TrainEvent, TrainHistory};
use dmtl_student::two_tower::{Student, TwoTower, PREFIX};
use dmtl_student::{Result, StudentError, Targets, TrainOptions};

/// The losses of one joint step, each a `(1, 1)` node.
#[derive(Debug, Clone, Copy)]
pub struct JointLoss {
    /// The teacher's ESMM loss `BCE(y, pCTR) + w BCE(y z, pCTCVR)`.
    pub teacher: Var,
    /// The student's objective with the teacher's detached pCTCVR as its soft label.
    pub student: Var,
    /// `teacher + student`: what a step differentiates.
    pub total: Var,
}

/// A teacher and a student trained together.
///
/// ```no_run
/// # fn setup() -> (dmtl_teacher::Teacher, dmtl_student::Student, dmtl_data::Schema, dmtl_data::Vocabularies, dmtl_data::Dataset) { unimplemented!() }
/// use dmtl_joint::JointTrainer;
/// let (teacher, student, schema, vocabs, train) = setup();
/// let mut joint = JointTrainer::new(teacher, student, &schema, &vocabs).unwrap();
/// let history = joint.train(&train, None, |_| {}).unwrap();
/// let (teacher, student) = joint.into_parts();
/// ```
#[derive(Debug, Clone)]
pub struct JointTrainer {
    teacher: Teacher,
    student: Student,
    store: ParamStore,
    towers: TwoTower,
    n_teacher: usize,
}

impl JointTrainer {
    /// Puts `teacher` and `student`, both built for `schema` and `vocabs`, in one store,
    /// starting from their current parameters. The student's objective must be one that
    /// [needs the teacher](dmtl_student::Objective::needs_teacher) (`distill`); its `train`
    /// options drive the joint loop.
    pub fn new(
        teacher: Teacher,
        student: Student,
        schema: &Schema,
        vocabs: &Vocabularies,
    ) -> Result<JointTrainer> {
        let objective = &student.config().objective;
        if !objective.needs_teacher() {
            return Err(StudentError::Config {
                origin: "<config>".into(),
                key: "objective.type".into(),
                message: format!(
                    "joint training distills the teacher, and objective `{}` reads no teacher",
                    objective.name()
                ),
            });
        }
        let mut store = teacher.store().clone();
        let n_teacher = store.len();
        // The same towers registered again, in the joint store, then set to the student's
        // current values by name.
        let towers = TwoTower::new(&mut store, PREFIX, student.config(), schema, vocabs)?;
        for (_, p) in student.store().iter() {
            let id = store.id(&p.name).ok_or_else(|| {
                StudentError::Data(format!(
                    "student parameter `{}` is not in the joint store (built for another schema?)",
                    p.name
                ))
            })?;
            let dst = store.value_mut(id);
            if dst.dim() != p.value.dim() {
                return Err(StudentError::Data(format!(
                    "student parameter `{}` is {:?}, the schema and vocabularies give {:?}",
                    p.name,
                    p.value.dim(),
                    dst.dim()
                )));
            }
            dst.assign(&p.value);
        }
        Ok(JointTrainer {
            teacher,
            student,
            store,
            towers,
            n_teacher,
        })
    }

    /// The joint parameter store (`teacher.*` then `student.*`).
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// The losses of one batch on a graph over [`JointTrainer::store`].
    ///
    /// # Shapes
    /// A batch of `n` rows: the teacher's logits and the student's score are `(n, 1)`; each
    /// loss is `(1, 1)`.
    ///
    /// # Panics
    /// When the batch does not fit the schema and vocabularies or is unlabelled.
    pub fn losses(&self, g: &Graph<'_>, batch: &Batch) -> JointLoss {
        let out = self.teacher.forward(g, batch);
        let teacher = esmm_loss(
            g,
            out.ctr_logit,
            out.cvr_logit,
            &batch.click,
            &batch.long_read,
            self.teacher.config().ctcvr_weight,
            Reduction::Mean,
        )
        .total;
        let p_ctcvr = g.mul(g.sigmoid(out.ctr_logit), g.sigmoid(out.cvr_logit));
        let target = g.detach(p_ctcvr);
        let t: Vec<f32> = g.with_value(target, |v| v.iter().map(|x| x.clamp(0.0, 1.0)).collect());
        let s = self.towers.score(g, batch);
        let student = self.student.config().objective.build().loss(
            g,
            s,
            &Targets {
                click: &batch.click,
                duration: &batch.duration,
                long_read: &batch.long_read,
                teacher: Some(&t),
                weights: None,
            },
        );
        JointLoss {
            teacher,
            student,
            total: g.add(teacher, student),
        }
    }

    /// Trains both models with one Adam (`student.config().train`) on the sum of the teacher's
    /// ESMM loss and the student's distillation loss, validating and stopping early on the
    /// student's long-read AUC as [`Student::train`] does. The best epoch's parameters of both
    /// models are kept.
    pub fn train(
        &mut self,
        train: &Dataset,
        valid: Option<&Dataset>,
        progress: impl FnMut(&TrainEvent),
    ) -> Result<TrainHistory> {
        self.train_from(train, valid, None, progress)
    }

    /// [`JointTrainer::train`] keeping a training state in `state.dir` that an interrupted
    /// run resumes from (model name `joint`; see [`Student::train_from`]).
    pub fn train_from(
        &mut self,
        train: &Dataset,
        valid: Option<&Dataset>,
        state: Option<&dmtl_train::StateDir>,
        mut progress: impl FnMut(&TrainEvent),
    ) -> Result<TrainHistory> {
        let opts: TrainOptions = self.student.config().train.clone();
        let fingerprint = {
            use dmtl_train::state::config_value;
            let mut t = toml::Table::new();
            t.insert("teacher".into(), config_value(self.teacher.config())?);
            t.insert("student".into(), config_value(self.student.config())?);
            toml::Value::Table(t)
        };
        check_labelled("training", train)?;
        self.teacher.embeddings().check_dataset(train)?;
        self.towers.check_dataset(train)?;
        if let Some(v) = valid {
            check_labelled("validation", v)?;
            self.towers.check_dataset(v)?;
        }
        let mut store = std::mem::take(&mut self.store);
        let this = &*self;
        let result = run_epochs(
            &mut store,
            &this.towers,
            &opts,
            train,
            valid,
            "joint",
            &fingerprint,
            state,
            &|batch| Some(batch.n_rows as f64),
            |store, batch, scale| {
                let g = Graph::new(store);
                let l = this.losses(&g, batch);
                let seed = ndarray::Array2::from_elem((1, 1), scale as f32);
                Ok(StepLoss {
                    total: g.scalar(l.total),
                    teacher: Some(g.scalar(l.teacher)),
                    grads: g.backward_with(l.total, seed),
                })
            },
            &mut progress,
        );
        self.store = store;
        self.sync();
        result
    }

    /// Copies the joint store's values back into the teacher and the student.
    fn sync(&mut self) {
        for i in 0..self.n_teacher {
            let v = self.store.value(ParamId(i)).to_owned();
            self.teacher.store_mut().value_mut(ParamId(i)).assign(&v);
        }
        let ids: Vec<(ParamId, String)> = self
            .student
            .store()
            .iter()
            .map(|(id, p)| (id, p.name.clone()))
            .collect();
        for (id, name) in ids {
            let joint = self.store.id(&name).expect("registered in new()");
            let v = self.store.value(joint).to_owned();
            self.student.store_mut().value_mut(id).assign(&v);
        }
    }

    /// The teacher and the student with the trained parameters.
    pub fn into_parts(mut self) -> (Teacher, Student) {
        self.sync();
        (self.teacher, self.student)
    }

    /// Builds a fresh teacher and student from their configurations and trains them jointly;
    /// a shorthand for [`JointTrainer::new`], [`JointTrainer::train`] and
    /// [`JointTrainer::into_parts`].
    pub fn fit(
        teacher: Teacher,
        student_config: dmtl_student::StudentConfig,
        schema: &Schema,
        vocabs: &Vocabularies,
        train: &Dataset,
        valid: Option<&Dataset>,
    ) -> Result<(Teacher, Student, TrainHistory)> {
        let student = Student::new(student_config, schema, vocabs)?;
        let mut joint = JointTrainer::new(teacher, student, schema, vocabs)?;
        let history = joint.train(train, valid, |_| {})?;
        let (t, s) = joint.into_parts();
        Ok((t, s, history))
    }
}
