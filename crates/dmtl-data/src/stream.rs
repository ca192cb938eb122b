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

/// A log file streamed chunk by chunk into training batches, never held whole.
///
/// Each epoch reads the file again with a [`LogReader`](crate::LogReader) in chunks of `opts.chunk_rows`, fills
/// a buffer of at most `buffer_rows` rows (whole chunks, plus the fewer than `batch_size`
/// rows left over from the previous buffer), encodes it with the fixed vocabularies,
/// shuffles it with a ChaCha8 stream seeded by `(seed, epoch)` and cuts it into batches; the
/// rows left over go on to the next buffer, the last buffer gives the last, shorter batch.
/// Rows are numbered in file order (`Batch::rows`), so per-row side data (a teacher's
/// scores, say) can be looked up. GAUC groups are not filled (`Batch::user_group` and
/// `item_group` are empty): training does not use them.
///
/// Opened with [`StreamSource::open_filtered`], only the rows a [`RowFilter`] keeps are the
/// source's rows (numbered `0..n_rows` in file order among them): the training rows of a log
/// that also holds validation or test rows, say.
pub struct StreamSource {
    path: std::path::PathBuf,
    schema: crate::Schema,
    vocabs: crate::Vocabularies,
    opts: crate::ReadOptions,
    buffer_rows: usize,
    keep: Option<RowFilter>,
    n_rows: usize,
    max_held: std::sync::atomic::AtomicUsize,
}

/// Which rows of a chunk a [`StreamSource`] keeps: their indices in the chunk, ascending, or
/// an error that ends the pass. It must depend on the chunk's rows only (every epoch reads
/// the log again and must keep the same rows).
pub type RowFilter = std::sync::Arc<dyn Fn(&crate::RawLog) -> Result<Vec<usize>> + Send + Sync>;

/// The rows of `chunk` that `keep` keeps (all of them without a filter).
fn kept(chunk: crate::RawLog, keep: Option<&RowFilter>) -> Result<crate::RawLog> {
    let Some(f) = keep else { return Ok(chunk) };
    let rows = f(&chunk)?;
    Ok(match rows.len() == chunk.n_rows {
        true => chunk,
        false => chunk.take(&rows),
    })
}

impl StreamSource {
    /// Opens `path` and counts its rows in one streamed pass (checking the labels are there).
    ///
    /// Fails when the file cannot be read, has no label columns, or `buffer_rows` is smaller
    /// than `opts.chunk_rows + 1`.
    pub fn open(
        path: impl AsRef<std::path::Path>,
        schema: &crate::Schema,
        vocabs: &crate::Vocabularies,
        opts: &crate::ReadOptions,
        buffer_rows: usize,
    ) -> Result<StreamSource> {
        Self::open_with(path.as_ref(), schema, vocabs, opts, buffer_rows, None)
    }

    /// [`StreamSource::open`] keeping only the rows `keep` keeps of each chunk (counted in the
    /// opening pass, which checks the labels of every chunk, kept rows or not).
    pub fn open_filtered(
        path: impl AsRef<std::path::Path>,
        schema: &crate::Schema,
        vocabs: &crate::Vocabularies,
        opts: &crate::ReadOptions,
        buffer_rows: usize,
        keep: RowFilter,
    ) -> Result<StreamSource> {
        Self::open_with(path.as_ref(), schema, vocabs, opts, buffer_rows, Some(keep))
    }

    fn open_with(
        path: &std::path::Path,
        schema: &crate::Schema,
        vocabs: &crate::Vocabularies,
        opts: &crate::ReadOptions,
        buffer_rows: usize,
        keep: Option<RowFilter>,
    ) -> Result<StreamSource> {
        let name = path.display().to_string();
        vocabs.check_against(schema)?;
        if buffer_rows <= opts.chunk_rows {
            return Err(crate::DataError::invalid(
                &name,
                format!(
                    "a stream buffer of {buffer_rows} rows cannot hold a chunk of {} rows and more",
                    opts.chunk_rows
                ),
            ));
        }
        let mut n_rows = 0;
        for chunk in crate::LogReader::open(path, schema, opts)? {
            let chunk = chunk?;
            if !chunk.has_labels() {
                return Err(crate::DataError::invalid(
                    &name,
                    "training needs the click and duration columns",
                ));
            }
            n_rows += kept(chunk, keep.as_ref())?.n_rows;
        }
        Ok(StreamSource {
            path: path.to_path_buf(),
            schema: schema.clone(),
            vocabs: vocabs.clone(),
            opts: opts.clone(),
            buffer_rows,
            keep,
            n_rows,
            max_held: Default::default(),
        })
    }

    /// The most rows held in the buffer at once so far (raw and encoded copies of a row count
    /// once): never more than `buffer_rows`.
    pub fn max_rows_held(&self) -> usize {
        self.max_held.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn note_held(&self, rows: usize) {
        self.max_held
            .fetch_max(rows, std::sync::atomic::Ordering::Relaxed);
    }
}

impl BatchSource for StreamSource {
    fn n_rows(&self) -> usize {
        self.n_rows
    }

    fn epoch_batches(
        &self,
        batch_size: usize,
        shuffle: Option<(u64, u64)>,
        skip: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<Batch>> + '_>> {
        assert!(batch_size > 0, "batch_size must be at least 1");
        if self.buffer_rows < self.opts.chunk_rows + batch_size {
            return Err(crate::DataError::invalid(
                &self.path.display().to_string(),
                format!(
                    "a stream buffer of {} rows cannot hold a chunk of {} rows and a batch of {batch_size}",
                    self.buffer_rows, self.opts.chunk_rows
                ),
            ));
        }
        let rng = shuffle.map(|(seed, epoch)| {
            use rand::SeedableRng;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(epoch);
            rng
        });
        Ok(Box::new(StreamEpoch {
            src: self,
            reader: Some(crate::LogReader::open(
                &self.path,
                &self.schema,
                &self.opts,
            )?),
            carry: None,
            next_row: 0,
            rng,
            batch_size,
            skip,
            emitted: 0,
            window: None,
        }))
    }
}

/// One buffer: the raw rows, their encoding, file row numbers, the shuffled order, the cursor
/// and where its full batches end.
struct Window {
    raw: crate::RawLog,
    data: Dataset,
    ids: Vec<u32>,
    order: Vec<u32>,
    cursor: usize,
    end: usize,
}

struct StreamEpoch<'a> {
    src: &'a StreamSource,
    reader: Option<crate::LogReader>,
    carry: Option<(crate::RawLog, Vec<u32>)>,
    next_row: u32,
    rng: Option<rand_chacha::ChaCha8Rng>,
    batch_size: usize,
    skip: usize,
    emitted: usize,
    window: Option<Window>,
}

impl StreamEpoch<'_> {
    /// Reads the next buffer; `None` at the end of the file.
    fn fill(&mut self) -> Result<Option<Window>> {
        let (mut raw, mut ids) = match self.carry.take() {
            Some((r, i)) => (Some(r), i),
            None => (None, Vec::new()),
        };
        let chunk_rows = self.src.opts.chunk_rows;
        while let Some(reader) = self.reader.as_mut() {
            if ids.len() + chunk_rows > self.src.buffer_rows {
                break;
            }
            match reader.next() {
                None => self.reader = None,
                Some(chunk) => {
                    let chunk = kept(chunk?, self.src.keep.as_ref())?;
                    ids.extend(self.next_row..self.next_row + chunk.n_rows as u32);
                    self.next_row += chunk.n_rows as u32;
                    match raw.as_mut() {
                        Some(r) => r.append(chunk)?,
                        None => raw = Some(chunk),
                    }
                    self.src.note_held(ids.len());
                }
            }
        }
        let Some(raw) = raw.filter(|r| r.n_rows > 0) else {
            return Ok(None);
        };
        let data = Dataset::encode(&self.src.schema, &raw, &self.src.vocabs)?;
        let mut order: Vec<u32> = (0..raw.n_rows as u32).collect();
        if let Some(rng) = self.rng.as_mut() {
            use rand::seq::SliceRandom;
            order.shuffle(rng);
        }
        let n = order.len();
        let end = if self.reader.is_none() {
            n
        } else {
            n - n % self.batch_size
        };
        Ok(Some(Window {
            raw,
            data,
            ids,
            order,
            cursor: 0,
            end,
        }))
    }
}

impl Iterator for StreamEpoch<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        loop {
            if let Some(w) = self.window.as_mut() {
                if w.cursor < w.end {
                    let stop = (w.cursor + self.batch_size).min(w.end);
                    let local = &w.order[w.cursor..stop];
                    w.cursor = stop;
                    self.emitted += 1;
                    if self.emitted <= self.skip {
                        continue;
                    }
                    let mut b = w.data.batch(local);
                    b.rows = local.iter().map(|&r| w.ids[r as usize]).collect();
                    b.user_group.clear();
                    b.item_group.clear();
                    return Some(Ok(b));
                }
                // The rows short of a full batch wait for the next buffer.
                let w = self.window.take().expect("checked");
                let rest: Vec<usize> = w.order[w.end..].iter().map(|&r| r as usize).collect();
                if !rest.is_empty() {
                    let ids = rest.iter().map(|&r| w.ids[r]).collect();
                    self.carry = Some((w.raw.take(&rest), ids));
                }
            }
            match self.fill() {
                Ok(Some(w)) => self.window = Some(w),
                Ok(None) => return None,
                Err(e) => {
                    self.reader = None;
                    self.carry = None;
                    return Some(Err(e));
                }
            }
        }
    }
}
