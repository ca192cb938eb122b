//! Batches for training from memory or streamed from a log file, and the label checks both
//! share.
//!
//! Trainers take a [`BatchSource`]: an in-memory [`Dataset`] is one, and so is a
//! [`StreamSource`], which reads a log chunk by chunk, encodes it with fixed vocabularies and
//! shuffles within a bounded buffer, so a log larger than memory can be trained on.

use crate::dataset::{Batch, Dataset};
use crate::error::Result;

/// Where a trainer's batches come from.
///
/// The batches of epoch `e` must depend only on `(batch_size, shuffle)`: a resumed run asks for
/// the same epoch again and skips the batches it already trained on.
pub trait BatchSource {
    /// Rows in one epoch.
    fn n_rows(&self) -> usize;

    /// The batches of one epoch in order, without the first `skip` (which a resumed run has
    /// already trained on). `shuffle = Some((seed, epoch))` shuffles; `None` keeps file order.
    /// Every batch carries labels; `Batch::rows` are row numbers within the whole source.
    fn epoch_batches(
        &self,
        batch_size: usize,
        shuffle: Option<(u64, u64)>,
        skip: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<Batch>> + '_>>;

    /// The whole source when it is in memory (trainers then check it once, up front, instead
    /// of batch by batch).
    fn in_memory(&self) -> Option<&Dataset> {
        None
    }
}

impl BatchSource for Dataset {
    fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// [`Dataset::batches`]' order ([`Dataset::epoch_order`]), the skipped batches never
    /// gathered.
    fn epoch_batches(
        &self,
        batch_size: usize,
        shuffle: Option<(u64, u64)>,
        skip: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<Batch>> + '_>> {
        assert!(batch_size > 0, "batch_size must be at least 1");
        let order = self.epoch_order(shuffle);
        let n_batches = order.len().div_ceil(batch_size);
        Ok(Box::new((skip.min(n_batches)..n_batches).map(move |b| {
            let end = ((b + 1) * batch_size).min(order.len());
            Ok(self.batch(&order[b * batch_size..end]))
        })))
    }

    fn in_memory(&self) -> Option<&Dataset> {
        Some(self)
    }
}

/// Checks the labels training relies on: click 0 or 1, duration finite and `>= 0`, long read
/// in `[0, 1]`, every one of `n_rows` entries present. The error names the row (`rows[i]` when
/// given, else `i`) and the column, e.g. "row 7, column `click`: NaN is not 0 or 1".
pub fn check_labels(
    click: &[f32],
    duration: &[f32],
    long_read: &[f32],
    rows: Option<&[u32]>,
) -> std::result::Result<(), String> {
    let n = click.len();
    if duration.len() != n || long_read.len() != n {
        return Err(format!(
            "label columns of different lengths: click {n}, duration {}, long_read {}",
            duration.len(),
            long_read.len()
        ));
    }
    let row = |i: usize| rows.map_or(i, |r| r[i] as usize);
    let bad = |i: usize, column: &str, v: f32, why: &str| {
        Err(format!("row {}, column `{column}`: {v} {why}", row(i)))
    };
    for i in 0..n {
        let (c, d, z) = (click[i], duration[i], long_read[i]);
        if !(c == 0.0 || c == 1.0) {
            return bad(i, "click", c, "is not 0 or 1");
        }
        if !(d.is_finite() && d >= 0.0) {
            return bad(i, "duration", d, "is not a finite number >= 0");
        }
        if !(0.0..=1.0).contains(&z) {
            return bad(i, "long_read", z, "is outside [0, 1]");
        }
    }
    Ok(())
}

/// [`check_labels`] over a whole dataset; rows are dataset rows.
pub fn check_dataset_labels(data: &Dataset) -> std::result::Result<(), String> {
    check_labels(&data.click, &data.duration, &data.long_read, None)
}

/// [`check_labels`] over a batch; rows are the source's rows (`Batch::rows`).
pub fn check_batch_labels(batch: &Batch) -> std::result::Result<(), String> {
    check_labels(
        &batch.click,
        &batch.duration,
        &batch.long_read,
        Some(&batch.rows),
    )
}
