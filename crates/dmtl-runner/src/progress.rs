//! Progress on stderr: one bar per training stage showing the epoch, batches, impressions per
//! second and the current loss; silent when quiet (or when stderr is not a terminal, where
//! indicatif draws nothing).

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Hands out progress bars; all of them are hidden when the run is quiet.
#[derive(Debug, Clone)]
pub struct Progress {
    quiet: bool,
}

impl Progress {
    /// Progress bars on stderr unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Progress { quiet }
    }

    /// True when nothing is drawn.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// A bar for training `stage` (e.g. "teacher", "dmtl") over `epochs` epochs of `n_batches`
    /// batches of about `batch_size` impressions.
    pub fn training(
        &self,
        stage: &str,
        epochs: usize,
        n_batches: usize,
        batch_size: usize,
    ) -> TrainBar {
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::with_draw_target(
                Some((epochs * n_batches) as u64),
                ProgressDrawTarget::stderr(),
            );
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{elapsed_precise}] {bar:30} {pos}/{len} batches {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            b
        };
        bar.set_prefix(stage.to_string());
        TrainBar {
            bar,
            epochs,
            batch_size,
            start: Instant::now(),
            done_batches: 0,
        }
    }

    /// A spinner for a stage without batches (simulating, reading, scoring, evaluating).
    pub fn step(&self, what: &str) -> StepBar {
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::new_spinner();
            b.set_draw_target(ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]")
                    .expect("a valid template"),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(200));
            b
        };
        bar.set_message(what.to_string());
        StepBar { bar }
    }
}

/// The bar of one training stage.
pub struct TrainBar {
    bar: ProgressBar,
    epochs: usize,
    batch_size: usize,
    start: Instant,
    done_batches: u64,
}

impl TrainBar {
    /// Records one finished batch of `epoch` (from 0) and its mean loss.
    pub fn batch(&mut self, epoch: usize, loss: f32) {
        self.done_batches += 1;
        self.bar.inc(1);
        // Redrawing the message costs a format; every 8th batch is often enough for the eye.
        if self.done_batches % 8 == 1 {
            let secs = self.start.elapsed().as_secs_f64().max(1e-9);
            let ips = self.done_batches as f64 * self.batch_size as f64 / secs;
            self.bar.set_message(format!(
                "epoch {}/{} | {:.0} imp/s | loss {loss:.4}",
                epoch + 1,
                self.epochs,
                ips
            ));
        }
    }

    /// Records the end of an epoch with a one-line summary that stays on screen.
    pub fn epoch(&mut self, line: String) {
        self.bar.println(line);
    }

    /// Closes the bar (also when training stopped early).
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// A spinner shown while a stage without batches runs.
pub struct StepBar {
    bar: ProgressBar,
}

impl StepBar {
    /// Closes the spinner.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
