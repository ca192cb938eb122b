//! What the training stages share: their inputs, the progress of the epoch loop every model
//! trains under, the training curve as the metrics keep it, and the error of a stopped run.

use std::path::Path;

use dmtl_teacher::train::epochs::{EpochReport, TrainEvent};
use tracing::info;

use crate::config::RunConfig;
use crate::metrics::EpochPoint;
use crate::prepare::Prepared;
use crate::progress::{Progress, TrainBar};
use crate::states::States;

/// What every stage reads: the configuration, the prepared data, the run folder it writes its
/// checkpoint into, whether training states are kept, and the progress display.
#[derive(Clone, Copy)]
pub struct StageInputs<'a> {
    /// The run's configuration.
    pub cfg: &'a RunConfig,
    /// The run's data.
    pub data: &'a Prepared,
    /// The run folder.
    pub dir: &'a Path,
    /// Whether training states are kept.
    pub states: States,
    /// The progress display.
    pub progress: &'a Progress,
}

fn fmt_opt(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{v:.4}"))
}

/// Shows a training event of any model (the teacher and every student share the epoch loop
/// and its events): batches move the bar, epochs print and log one line named `label`.
pub fn show_progress<P, V>(
    bar: &mut TrainBar,
    label: &str,
    ev: &TrainEvent<P, V>,
    long_read_auc: impl Fn(&V) -> Option<f64>,
) {
    match ev {
        TrainEvent::Batch { epoch, loss, .. } => bar.batch(*epoch, *loss),
        TrainEvent::Epoch(r) => {
            let line = format!(
                "{label} epoch {}: loss {:.4}, valid long-read AUC {}, {:.0} imp/s",
                r.epoch + 1,
                r.train_loss,
                fmt_opt(r.valid.as_ref().and_then(&long_read_auc)),
                r.impressions_per_second
            );
            info!("{line}");
            bar.epoch(line);
        }
    }
}

/// The training curve of any model's epoch reports, as `metrics.json` keeps it.
pub fn epoch_points<P, V>(
    epochs: &[EpochReport<P, V>],
    long_read_auc: impl Fn(&V) -> Option<f64>,
) -> Vec<EpochPoint> {
    epochs
        .iter()
        .map(|r| EpochPoint {
            epoch: r.epoch,
            train_loss: r.train_loss,
            valid_long_read_auc: r.valid.as_ref().and_then(&long_read_auc),
            impressions_per_second: r.impressions_per_second,
        })
        .collect()
}

/// A training error of `stage` (`the teacher`, `dmtl`) as the run reports it: a requested stop
/// (`interrupted`) names the stage, for the message that says how to resume.
pub fn training_error<E>(e: E, interrupted: bool, stage: &str) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let e = anyhow::Error::new(e);
    if interrupted {
        e.context(format!("training {stage}"))
    } else {
        e
    }
}
