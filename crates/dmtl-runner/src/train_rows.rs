//! The training rows of a run: encoded in memory, or a log streamed from its file
//! ([`open_training_source`], the one place a streamed run opens its training rows, given
//! the read options: a data-parallel rank passes its shard there).

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use dmtl_data::{
    BatchSource, DataError, Dataset, ReadOptions, RowFilter, Schema, StreamSource, Vocabularies,
};

use crate::row_split::{RowPart, RowSplit};

/// Rows a streamed run holds at once while training (raw and encoded): four chunks of the
/// reader's default 65,536 rows. Batches are shuffled within such a buffer, not over the log.
pub const STREAM_BUFFER_ROWS: usize = 4 * 65_536;

/// The training rows.
pub enum TrainRows {
    /// Read and encoded whole.
    Memory(Dataset),
    /// Streamed from the log, chunk by chunk, every epoch.
    Stream(StreamSource),
}

impl TrainRows {
    /// The rows as trainers take them.
    pub fn source(&self) -> &dyn BatchSource {
        match self {
            TrainRows::Memory(d) => d,
            TrainRows::Stream(s) => s,
        }
    }

    /// Number of training rows.
    pub fn n_rows(&self) -> usize {
        self.source().n_rows()
    }

    /// The rows when they are in memory.
    pub fn in_memory(&self) -> Option<&Dataset> {
        match self {
            TrainRows::Memory(d) => Some(d),
            TrainRows::Stream(_) => None,
        }
    }
}

/// The buffer of a stream read with `opts` into batches of up to `batch_size` rows:
/// [`STREAM_BUFFER_ROWS`], or a chunk and a batch when they need more.
pub fn buffer_rows(opts: &ReadOptions, batch_size: usize) -> usize {
    STREAM_BUFFER_ROWS.max(opts.chunk_rows + batch_size)
}

/// The training rows of the log `log` (the rows `split` calls training rows), streamed with
/// `opts` and encoded with `vocabs`, batches shuffled within `buffer_rows` rows (at least a
/// chunk and a batch: [`buffer_rows`]).
pub fn open_training_source(
    log: &Path,
    schema: &Schema,
    vocabs: &Vocabularies,
    split: &RowSplit,
    opts: &ReadOptions,
    buffer_rows: usize,
) -> Result<StreamSource> {
    let split = split.clone();
    let keep: RowFilter = Arc::new(move |chunk| {
        split
            .rows_of(chunk, RowPart::Train)
            .map_err(|e| DataError::Invalid {
                source_name: chunk.source.clone(),
                message: format!("{e:#}"),
            })
    });
    Ok(StreamSource::open_filtered(
        log,
        schema,
        vocabs,
        opts,
        buffer_rows,
        keep,
    )?)
}
