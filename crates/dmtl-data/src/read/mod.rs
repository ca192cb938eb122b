//! Readers of impression logs: CSV (header row) and Parquet, whole or streamed in chunks, both
//! producing the same [`RawLog`].
//!
//! Every bad value is a [`DataError`] naming the file, the line (CSV, header = line 1) or row
//! (Parquet, first data row = row 1), the column and what was expected. With
//! [`ReadOptions::skip_bad_rows`] bad rows are dropped instead and counted in a [`ReadReport`].

mod concat;
mod csv_reader;
mod parquet_reader;
mod parts;
mod reader;
mod values;

use std::path::Path;

pub use parts::{log_parts, Shard};
pub use reader::{read_csv_from, read_log, read_log_with_report, LogReader};

use crate::error::{DataError, Result};
use crate::raw::{RawColumn, RawLog};
use crate::schema::{Schema, Side};

/// A log file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet (as written by Spark, Hive, pandas or [`crate::write_parquet`]).
    Parquet,
}

impl Format {
    /// The format implied by a file extension: `.csv` (also `.tsv`, read with the
    /// delimiter of the options), `.parquet` or `.pq`.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "tsv" | "txt" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }
}

/// How to read a log.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// The format; `None` chooses by extension.
    pub format: Option<Format>,
    /// Rows per chunk of a [`LogReader`] (whole reads use it too, as their unit of work).
    pub chunk_rows: usize,
    /// Drop rows with a bad value instead of failing; see [`ReadReport`].
    pub skip_bad_rows: bool,
    /// When true the click and duration columns must be present. When false they are read if
    /// both are present (a one-side table such as an item catalogue has none).
    pub require_labels: bool,
    /// Read only the feature columns of these sides (`None`: every feature column). The
    /// resulting [`RawLog`] holds only those columns, in schema order.
    pub sides: Option<Vec<Side>>,
    /// The CSV field delimiter.
    pub csv_delimiter: u8,
    /// How many skip reasons a [`ReadReport`] keeps.
    pub max_reported_errors: usize,
    /// This reader's share of the log (default: the whole log); see [`Shard`].
    pub shard: Shard,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: None,
            chunk_rows: 65_536,
            skip_bad_rows: false,
            require_labels: true,
            sides: None,
            csv_delimiter: b',',
            max_reported_errors: 10,
            shard: Shard::whole(),
        }
    }
}

impl ReadOptions {
    /// Options for a table of some sides only (e.g. `&[Side::Item]` for an item catalogue):
    /// only those sides' columns are read, labels are not required.
    pub fn table_of(sides: &[Side]) -> Self {
        ReadOptions {
            sides: Some(sides.to_vec()),
            require_labels: false,
            ..ReadOptions::default()
        }
    }

    /// The same options with `chunk_rows` set.
    pub fn with_chunk_rows(mut self, chunk_rows: usize) -> Self {
        self.chunk_rows = chunk_rows;
        self
    }

    /// The same options with `skip_bad_rows` set.
    pub fn with_skip_bad_rows(mut self, skip: bool) -> Self {
        self.skip_bad_rows = skip;
        self
    }

    /// The same options reading only `shard`'s share of the log.
    pub fn with_shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// The same options with an explicit format.
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    fn wants(&self, side: Side) -> bool {
        self.sides.as_ref().is_none_or(|s| s.contains(&side))
    }
}

/// What a read kept and what it skipped.
#[derive(Debug, Default)]
pub struct ReadReport {
    /// Rows kept.
    pub rows_read: usize,
    /// Rows dropped because of a bad value (only with `skip_bad_rows`).
    pub rows_skipped: usize,
    /// The first few reasons for skipping (at most `max_reported_errors`).
    pub first_errors: Vec<DataError>,
}

impl ReadReport {
    fn record(&mut self, e: DataError, max: usize) {
        self.rows_skipped += 1;
        if self.first_errors.len() < max {
            self.first_errors.push(e);
        }
    }
}

/// What to read from a file: positions of the wanted columns in the file.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// (schema column index, file column index), in schema order.
    pub features: Vec<(usize, usize)>,
    pub click: Option<usize>,
    pub duration: Option<usize>,
    pub time: Option<usize>,
}

impl Plan {
    pub(crate) fn new(
        file: &str,
        names: &[String],
        schema: &Schema,
        opts: &ReadOptions,
    ) -> Result<Plan> {
        let find = |name: &str| -> Result<Option<usize>> {
            let mut hits = names.iter().enumerate().filter(|(_, n)| n.as_str() == name);
            let first = hits.next().map(|(i, _)| i);
            if first.is_some() && hits.next().is_some() {
                return Err(DataError::invalid(
                    file,
                    format!("column `{name}` appears more than once in the file"),
                ));
            }
            Ok(first)
        };
        let missing = |name: &str| DataError::MissingColumn {
            file: file.to_string(),
            column: name.to_string(),
            available: names.join(", "),
        };
        let mut features = Vec::new();
        for (si, c) in schema.columns.iter().enumerate() {
            if !opts.wants(c.side) {
                continue;
            }
            let fi = find(&c.name)?.ok_or_else(|| missing(&c.name))?;
            features.push((si, fi));
        }
        let click = find(&schema.labels.click)?;
        let duration = find(&schema.labels.duration)?;
        let (click, duration) = if opts.require_labels {
            (
                Some(click.ok_or_else(|| missing(&schema.labels.click))?),
                Some(duration.ok_or_else(|| missing(&schema.labels.duration))?),
            )
        } else if click.is_some() && duration.is_some() {
            (click, duration)
        } else {
            (None, None)
        };
        let time = match schema.time_column() {
            Some(t) => find(t)?,
            None => None,
        };
        Ok(Plan {
            features,
            click,
            duration,
            time,
        })
    }
}

/// One parsed chunk before bad rows are resolved.
pub(crate) struct Parsed {
    pub columns: Vec<(String, RawColumn)>,
    pub click: Option<Vec<f32>>,
    pub duration: Option<Vec<f32>>,
    pub time: Option<Vec<i64>>,
    pub n_rows: usize,
    /// (row in chunk, file column index, error); the placeholder value in the row is garbage.
    pub errors: Vec<(usize, usize, DataError)>,
    /// The location of each row, for the click/duration consistency check.
    pub location: Box<dyn Fn(usize) -> crate::error::Location + Send + Sync>,
}

/// Applies the label consistency check, then fails on the first bad row or drops bad rows.
pub(crate) fn finish(
    mut p: Parsed,
    file: &str,
    schema: &Schema,
    plan: &Plan,
    opts: &ReadOptions,
    report: &mut ReadReport,
) -> Result<RawLog> {
    if let (Some(click), Some(duration), Some(dfi)) = (&p.click, &p.duration, plan.duration) {
        for r in 0..p.n_rows {
            if click[r] == 0.0 && duration[r] > 0.0 {
                p.errors.push((
                    r,
                    dfi,
                    DataError::BadValue {
                        file: file.to_string(),
                        location: (p.location)(r),
                        column: schema.labels.duration.clone(),
                        expected: "a duration of 0 when click is 0 (no reading without a click)"
                            .to_string(),
                        found: format!("{} with click 0", duration[r]),
                    },
                ));
            }
        }
    }
    if !p.errors.is_empty() {
        p.errors.sort_by_key(|(r, c, _)| (*r, *c));
        if !opts.skip_bad_rows {
            return Err(p.errors.swap_remove(0).2);
        }
        let mut bad = vec![false; p.n_rows];
        for (r, _, e) in p.errors {
            if !bad[r] {
                bad[r] = true;
                report.record(e, opts.max_reported_errors);
            }
        }
        let keep: Vec<usize> = (0..p.n_rows).filter(|&r| !bad[r]).collect();
        let log = RawLog {
            source: file.to_string(),
            columns: p.columns,
            click: p.click,
            duration: p.duration,
            time: p.time,
            n_rows: p.n_rows,
        };
        let kept = log.take(&keep);
        report.rows_read += kept.n_rows;
        return Ok(kept);
    }
    report.rows_read += p.n_rows;
    Ok(RawLog {
        source: file.to_string(),
        columns: p.columns,
        click: p.click,
        duration: p.duration,
        time: p.time,
        n_rows: p.n_rows,
    })
}
