//! Impression logs in (schema, CSV and Parquet readers, vocabularies), batches out, and a feed
//! simulator that carries its ground truth.

pub mod raw;
pub use raw::{RawColumn, RawLog};
