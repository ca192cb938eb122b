//! The teacher stage: train the multi-task teacher (or take the one of `stages.from_run`),
//! save it, and score the test rows (its row of the table) and the training rows (what DMTL
//! distils).

use std::time::Instant;

use anyhow::{Context, Result};
use dmtl_data::BatchSource;
use dmtl_teacher::{Teacher, TeacherError, TrainError};
use tracing::info;

use super::training::{epoch_points, show_progress, training_error, StageInputs};
use crate::checkpoints::load_teacher;
use crate::config::{ModelName, RunConfig, TeacherStage};
use crate::eval::{self, Output};
use crate::layout::teacher_dir;
use crate::metrics::{EpochPoint, ModelResult, RowKind};
use crate::prepare::Prepared;
use crate::train_rows::TrainRows;

/// Rows per batch when the teacher scores a streamed log.
const STREAM_SCORE_BATCH: usize = 8192;

/// The teacher of a run, with how it was trained (nothing for a loaded one).
pub struct TrainedTeacher {
    /// The teacher.
    pub teacher: Teacher,
    /// Its training curve.
    pub history: Vec<EpochPoint>,
    /// The epoch whose parameters it holds.
    pub best_epoch: Option<usize>,
    /// Seconds of training.
    pub seconds: f64,
}

/// The teacher of `stages.from_run` (with `stages.teacher = "load"`), loaded before anything
/// of the new run is written so that a bad checkpoint leaves the run folder untouched.
///
/// # Panics
/// When `cfg` names no `stages.from_run` (validation requires it with `teacher = "load"`).
pub fn load_from_run(cfg: &RunConfig, data: &Prepared) -> Result<Teacher> {
    let run = cfg.stages.from_run.as_ref().expect("validated");
    let from = teacher_dir(run);
    let t = load_teacher(run, &from, &data.schema, &data.vocabs)
        .with_context(|| format!("loading the teacher of {}", from.display()))?;
    info!(from = %from.display(), "teacher loaded");
    Ok(t)
}

/// Trains the teacher (or takes the `loaded` one, else loads it from `stages.from_run`) and
/// saves it into the run folder; `None` with `stages.teacher = "skip"`.
pub fn train(inputs: StageInputs<'_>, loaded: Option<Teacher>) -> Result<Option<TrainedTeacher>> {
    let (cfg, data, dir) = (inputs.cfg, inputs.data, inputs.dir);
    let (states, progress) = (inputs.states, inputs.progress);
    let out = teacher_dir(dir);
    match cfg.stages.teacher {
        TeacherStage::Skip => Ok(None),
        TeacherStage::Load => {
            let t = match loaded {
                Some(t) => t,
                None => load_from_run(cfg, data)?,
            };
            t.save(&out)?;
            Ok(Some(TrainedTeacher {
                teacher: t,
                history: Vec::new(),
                best_epoch: None,
                seconds: 0.0,
            }))
        }
        TeacherStage::Train => {
            let start = Instant::now();
            let mut t = Teacher::new(cfg.teacher.clone(), &data.schema, &data.vocabs)?;
            let opts = &cfg.teacher.train;
            let n_batches = data.train.n_rows().div_ceil(opts.batch_size);
            let mut bar = progress.training("teacher", opts.epochs, n_batches, opts.batch_size);
            let state = states.dir(dir, ModelName::Teacher.as_str(), opts.epochs);
            let hist = t
                .train_from(
                    data.train.source(),
                    data.valid.as_ref(),
                    opts,
                    state.as_ref(),
                    |ev| show_progress(&mut bar, "teacher", ev, |v| v.long_read_auc),
                )
                .map_err(|e| {
                    let stop = matches!(e, TeacherError::Train(TrainError::Interrupted { .. }));
                    training_error(e, stop, "the teacher")
                })?;
            bar.finish();
            t.save(&out)?;
            Ok(Some(TrainedTeacher {
                teacher: t,
                history: epoch_points(&hist.epochs, |v| v.long_read_auc),
                best_epoch: hist.best_epoch,
                seconds: start.elapsed().as_secs_f64(),
            }))
        }
    }
}

/// The teacher's row of the table (offline metrics of pCTCVR, and of pCTR against clicks),
/// and its pCTCVR of every training row when a model of the run distils it.
pub fn evaluate(
    inputs: StageInputs<'_>,
    trained: &TrainedTeacher,
) -> Result<(ModelResult, Option<Vec<f32>>)> {
    let StageInputs {
        cfg,
        data,
        progress,
        ..
    } = inputs;
    let t = &trained.teacher;
    let step = progress.step("teacher: scoring the training and test rows");
    let test = t.predict(&data.test)?;
    let mut off = eval::offline(
        &test.p_ctcvr,
        Some(&test.p_ctcvr),
        Output::LongRead,
        &data.test,
    );
    off.click_auc = dmtl_metrics::auc(&test.p_ctr, &data.test.click);
    off.click_logloss = Some(dmtl_metrics::logloss(&test.p_ctr, &data.test.click));
    let distilled = cfg.stages.models.iter().any(|m| {
        m.objective(cfg.student.objective.clone())
            .is_some_and(|o| o.needs_teacher())
    });
    let soft_labels = match distilled {
        true => Some(training_scores(t, &data.train)?),
        false => None,
    };
    step.finish();
    let row = ModelResult {
        name: ModelName::Teacher.as_str().into(),
        label: ModelName::Teacher.label().into(),
        kind: RowKind::Teacher,
        offline: Some(off),
        retrieval: None,
        history: trained.history.clone(),
        best_epoch: trained.best_epoch,
        train_seconds: trained.seconds,
    };
    Ok((row, soft_labels))
}

/// The teacher's pCTCVR of every training row, in row order: of a streamed log, batch by
/// batch as the log is read once more (one float per row is held, not the rows).
pub fn training_scores(t: &Teacher, rows: &TrainRows) -> Result<Vec<f32>> {
    let stream = match rows {
        TrainRows::Memory(d) => return Ok(t.predict(d)?.p_ctcvr),
        TrainRows::Stream(s) => s,
    };
    let mut out = vec![f32::NAN; stream.n_rows()];
    for batch in stream.epoch_batches(STREAM_SCORE_BATCH, None, 0)? {
        let batch = batch?;
        let p = t.predict_batch(&batch)?.p_ctcvr;
        for (&r, v) in batch.rows.iter().zip(p) {
            out[r as usize] = v;
        }
    }
    Ok(out)
}
