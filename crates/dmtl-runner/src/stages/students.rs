//! The two-tower stage, once per model of `stages.models`: train the towers with the model's
//! objective (DMTL on the teacher's soft labels), save them, and evaluate them offline and by
//! retrieving the top K of the whole corpus for the sampled users.

use std::time::Instant;

use anyhow::Result;
use dmtl_student::retrieval::top_k;
use dmtl_student::{ObjectiveConfig, OutputKind, Student, StudentConfig};
use dmtl_student::{StudentError, TrainError};

use super::training::{epoch_points, show_progress, training_error, StageInputs};
use crate::columns::all_rows;
use crate::config::{ModelName, RunConfig};
use crate::eval::{self, Output};
use crate::layout::student_dir;
use crate::metrics::{ModelResult, RowKind};
use crate::prepare::Prepared;

/// The student configuration of `model`: the run's `[student]` with the model's objective.
///
/// # Panics
/// When `model` is the teacher.
pub fn student_config(cfg: &RunConfig, model: ModelName) -> StudentConfig {
    let mut s = cfg.student.clone();
    s.objective = model
        .objective(cfg.student.objective.clone())
        .expect("a two-tower model");
    s
}

/// Which of the [`Output`]s a student objective produces.
pub fn student_output(o: &ObjectiveConfig) -> Output {
    match o.output_kind() {
        OutputKind::ClickProbability => Output::Click,
        OutputKind::LongReadProbability => Output::LongRead,
        OutputKind::Score => Output::Score,
    }
}

/// Top-K corpus rows for every query row, from a trained student.
pub fn student_lists(student: &Student, data: &Prepared, k: usize) -> Result<Vec<Vec<u32>>> {
    let items = student.item_vectors(&data.corpus, &all_rows(data.corpus.n_rows))?;
    let users = student.user_vectors(&data.queries, &all_rows(data.queries.n_rows))?;
    // At most the corpus: the lists are users x K.
    let k = k.min(data.corpus.n_rows.max(1));
    let top = top_k(users.view(), items.view(), k, None)?;
    Ok(top
        .indices
        .outer_iter()
        .map(|r| {
            r.iter()
                .copied()
                .filter(|&i| (i as usize) < data.corpus.n_rows)
                .collect()
        })
        .collect())
}

/// Trains `model` (on the teacher's pCTCVR of every training row, `soft_labels`, when it
/// distils), saves it into the run folder and returns its row of the table; the histogram of
/// true reading seconds of its lists is over `edges`.
///
/// # Panics
/// When `model` is the teacher.
pub fn run(
    inputs: StageInputs<'_>,
    model: ModelName,
    soft_labels: Option<&[f32]>,
    edges: &[f64],
) -> Result<ModelResult> {
    let (cfg, data, dir) = (inputs.cfg, inputs.data, inputs.dir);
    let (states, progress) = (inputs.states, inputs.progress);
    let scfg = student_config(cfg, model);
    let output = student_output(&scfg.objective);
    let t0 = Instant::now();
    let mut student = Student::new(scfg.clone(), &data.schema, &data.vocabs)?;
    let opts = &scfg.train;
    let n_batches = data.train.n_rows().div_ceil(opts.batch_size);
    let mut bar = progress.training(model.as_str(), opts.epochs, n_batches, opts.batch_size);
    let state = states.dir(dir, model.as_str(), scfg.train.epochs);
    let hist = student
        .train_from(
            data.train.source(),
            data.valid.as_ref(),
            soft_labels,
            state.as_ref(),
            |ev| show_progress(&mut bar, model.as_str(), ev, |v| v.long_read_auc),
        )
        .map_err(|e| {
            let stop = matches!(e, StudentError::Train(TrainError::Interrupted { .. }));
            training_error(e, stop, model.as_str())
        })?;
    bar.finish();
    let secs = t0.elapsed().as_secs_f64();
    student.save(&student_dir(dir, model.as_str()))?;
    let step = progress.step(&format!("{model}: evaluating"));
    let scores = student.score_dataset(&data.test)?;
    let probs: Vec<f32> = scores
        .iter()
        .map(|&s| dmtl_loss::stable::sigmoid(s))
        .collect();
    let off = eval::offline(&scores, Some(&probs), output, &data.test);
    let k = cfg.eval.k;
    let lists = student_lists(&student, data, k)?;
    let ret = eval::retrieval(&data.task, &lists, k, data.sim.as_ref(), edges);
    step.finish();
    Ok(ModelResult {
        name: model.as_str().into(),
        label: model.label().into(),
        kind: RowKind::Student,
        offline: Some(off),
        retrieval: Some(ret),
        history: epoch_points(&hist.epochs, |v| v.long_read_auc),
        best_epoch: hist.best_epoch,
        train_seconds: secs,
    })
}
