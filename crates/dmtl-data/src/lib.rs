//! Impression logs in, batches out: the data side of DMTL.
//!
//! - [`Schema`] (TOML) says which columns are features — their side (user, item, context) and
//!   kind (categorical, multi-hot, dense) — which are the click and duration labels, which identify
//!   users and items, the long-read threshold, and how to split train and test.
//! - [`read_log`] and the streaming [`LogReader`] read CSV or Parquet into a columnar [`RawLog`]
//!   (each string column a [`StrColumn`]: one text buffer plus value ends, no allocation per
//!   value); [`write_csv`] and [`write_parquet`] write one back. Bad input is a [`DataError`] naming the
//!   file, line or row, column and what was expected (or, on request, a skipped row).
//! - [`split_train_test`] splits the raw log by time or at random, so that [`Vocabularies`] are
//!   built from training rows only; index 0 of every table is the out-of-vocabulary row.
//! - [`Dataset::encode`] turns a raw log into embedding indices, dense values, labels
//!   (click, duration, long read) and GAUC user groups; [`Dataset::batches`] gives seeded,
//!   shuffled [`Batch`]es.
//!
//! ```no_run
//! use dmtl_data::*;
//! # fn main() -> Result<(), DataError> {
//! let schema = Schema::load("schema.toml")?;
//! let log = read_log("log.parquet", &schema, &ReadOptions::default())?;
//! let (train, test) = split_train_test(&log, &schema, 7)?;
//! let vocabs = Vocabularies::build(&schema, &train)?;
//! vocabs.save("vocab.json")?;
//! let train = Dataset::encode(&schema, &train, &vocabs)?;
//! let _test = Dataset::encode(&schema, &test, &vocabs)?;
//! for batch in train.batches(1024, Some((7, 0)), false) {
//!     assert_eq!(batch.click.len(), batch.n_rows);
//! }
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod atomic;
pub mod dataset;
pub mod error;
pub mod raw;
pub mod read;
pub mod schema;
pub mod sim;
pub mod stream;
pub mod strings;
pub mod vocab;
pub mod vocab_count;
pub mod write;

pub use dataset::{split_train_test, Batch, Dataset, FieldData};
pub use error::{DataError, Location};
pub use raw::{RawColumn, RawLog};
pub use read::{
    log_parts, read_csv_from, read_log, read_log_with_report, Format, LogReader, ReadOptions,
    ReadReport, Shard,
};
pub use schema::{ColumnSpec, Defaults, IdColumns, Kind, LabelColumns, Schema, Side, SplitSpec};
pub use stream::{
    check_batch_labels, check_dataset_labels, check_labels, BatchSource, RowFilter, StreamSource,
};
pub use strings::StrColumn;
pub use vocab::{Vocabularies, Vocabulary, OOV};
pub use vocab_count::VocabCounter;
pub use write::{write_csv, write_parquet, write_parquet_row_groups};
