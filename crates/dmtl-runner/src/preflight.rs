//! Checks of a run's data made after the data is read and before any model is built or any
//! file is written: every label a stage learns from has positives in the training set.

use anyhow::{bail, Result};

use crate::config::{ModelName, RunConfig, TeacherStage};
use crate::run::Prepared;

/// Fails when a label that a stage of `cfg` learns from has no positive among the training
/// rows of `data` (every click 0, or no long read, say under a `long_read_threshold` above
/// every duration): the stage would train on one class and report a meaningless table. The
/// error names the label, its count, the stage, and the threshold's key for long reads.
pub fn check_labels(cfg: &RunConfig, data: &Prepared) -> Result<()> {
    let train = &data.train;
    let positives = |v: &[f32]| v.iter().filter(|&&x| x > 0.5).count();
    let clicks = positives(&train.click);
    let long_reads = positives(&train.long_read);
    let mut needs: Vec<(&str, &str)> = Vec::new();
    if cfg.stages.teacher == TeacherStage::Train {
        needs.extend([("click", "the teacher"), ("long read", "the teacher")]);
    }
    for m in &cfg.stages.models {
        let label = match m {
            ModelName::B1 | ModelName::B3Mse | ModelName::B3Wlr => "click",
            _ => "long read",
        };
        needs.push((label, m.as_str()));
    }
    for (label, stage) in needs {
        let count = if label == "click" { clicks } else { long_reads };
        if count > 0 {
            continue;
        }
        let how = if label == "click" {
            "click = 1".to_string()
        } else {
            let key = match cfg.data.as_ref().and_then(|d| d.long_read_threshold) {
                Some(_) => "data.long_read_threshold in the run config",
                None => "long_read_threshold in the schema",
            };
            let t = data.schema.long_read_threshold;
            let t = if t.abs() >= 1e6 {
                format!("{t:e}")
            } else {
                t.to_string()
            };
            format!("click = 1 and duration > {t} s, {key}")
        };
        bail!(
            "{}: the training set has no {label} ({how}): 0 of {} rows; {stage} needs \
             positives of the label `{label}` to learn from",
            data.summary.source,
            train.n_rows
        );
    }
    Ok(())
}
