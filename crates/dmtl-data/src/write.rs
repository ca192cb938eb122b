//! Writers of impression logs, CSV and Parquet, atomic (temporary file, then rename). What they
//! write reads back through [`crate::read_log`] to an equal [`RawLog`].
//!
//! Columns are written in the log's order, then click, duration and the time column (named by the
//! schema). Multi-hot cells are joined by the column's separator in CSV and are lists of strings
//! in Parquet; click is an Int8 column in Parquet, duration Float32, time Int64.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Float32Array, Int64Array, Int8Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema as ArrowSchema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;

use crate::atomic::{write_atomic, write_atomic_with};
use crate::error::{DataError, Result};
use crate::raw::{RawColumn, RawLog};
use crate::schema::Schema;

/// Rows per Parquet row group (and per Arrow batch while writing).
const ROW_GROUP_ROWS: usize = 65_536;

/// Checks that the log can be written with this schema and returns each column's separator.
fn check(log: &RawLog, schema: &Schema) -> Result<Vec<String>> {
    log.check_lengths()?;
    let mut seps = Vec::new();
    for (name, col) in &log.columns {
        let spec = schema.column(name).ok_or_else(|| {
            DataError::invalid(&log.source, format!("column `{name}` is not in the schema"))
        })?;
        if spec.kind != col.kind() {
            return Err(DataError::invalid(
                &log.source,
                format!(
                    "column `{name}` is {} but the schema says {}",
                    col.kind(),
                    spec.kind
                ),
            ));
        }
        let sep = spec.separator().to_string();
        if let RawColumn::MultiHot { tokens, .. } = col {
            // A token holding the separator would read back as two tokens.
            if let Some(t) = tokens
                .iter()
                .find(|t| t.contains(sep.as_str()) || t.is_empty())
            {
                return Err(DataError::invalid(
                    &log.source,
                    format!("column `{name}`: token {t:?} is empty or contains the separator {sep:?} and cannot be written"),
                ));
            }
        }
        seps.push(sep);
    }
    Ok(seps)
}

fn time_name(log: &RawLog, schema: &Schema) -> Result<Option<String>> {
    match (&log.time, schema.time_column()) {
        (None, _) => Ok(None),
        (Some(_), Some(t)) => Ok(Some(t.to_string())),
        (Some(_), None) => Err(DataError::invalid(
            &log.source,
            "the log has a time column but the schema names none (split.time_column)",
        )),
    }
}

/// Writes `log` as CSV with a header row, atomically.
pub fn write_csv(log: &RawLog, schema: &Schema, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let seps = check(log, schema)?;
    let time = time_name(log, schema)?;
    let mut header: Vec<&str> = log.columns.iter().map(|(n, _)| n.as_str()).collect();
    let labels = log.has_labels();
    if labels {
        header.push(&schema.labels.click);
        header.push(&schema.labels.duration);
    }
    if let Some(t) = &time {
        header.push(t);
    }
    // Cells are formatted column by column in parallel, then written row by row.
    let cells: Vec<Vec<String>> = log
        .columns
        .par_iter()
        .zip(seps.par_iter())
        .map(|((_, col), sep)| match col {
            RawColumn::Categorical(v) => v.to_vec(),
            RawColumn::Dense(v) => v.iter().map(|x| x.to_string()).collect(),
            RawColumn::MultiHot { tokens, offsets } => offsets
                .windows(2)
                .map(|w| tokens.range(w[0]..w[1]).collect::<Vec<_>>().join(sep))
                .collect(),
        })
        .collect();
    write_atomic(path, |w| {
        let mut out = csv::Writer::from_writer(w);
        let io = |e: csv::Error| match e.into_kind() {
            csv::ErrorKind::Io(e) => e,
            k => std::io::Error::other(format!("{k:?}")),
        };
        out.write_record(&header).map_err(io)?;
        let mut row: Vec<String> = Vec::with_capacity(header.len());
        for r in 0..log.n_rows {
            row.clear();
            row.extend(cells.iter().map(|c| c[r].clone()));
            if let (Some(c), Some(d)) = (&log.click, &log.duration) {
                row.push(format!("{}", c[r] as i64));
                row.push(d[r].to_string());
            }
            if let Some(t) = &log.time {
                row.push(t[r].to_string());
            }
            out.write_record(&row).map_err(io)?;
        }
        out.flush()
    })
}

/// Writes `log` as Parquet (Snappy-compressed, row groups of 65,536 rows), atomically.
pub fn write_parquet(log: &RawLog, schema: &Schema, path: impl AsRef<Path>) -> Result<()> {
    write_parquet_row_groups(log, schema, path, ROW_GROUP_ROWS)
}

/// [`write_parquet`] with row groups of `rows_per_group` rows (the unit a sharded reader deals
/// out: see [`crate::Shard`]).
///
/// # Panics
/// If `rows_per_group` is 0.
pub fn write_parquet_row_groups(
    log: &RawLog,
    schema: &Schema,
    path: impl AsRef<Path>,
    rows_per_group: usize,
) -> Result<()> {
    assert!(rows_per_group > 0, "rows_per_group must be positive");
    let path = path.as_ref();
    check(log, schema)?;
    let time = time_name(log, schema)?;
    let mut fields: Vec<Field> = log
        .columns
        .iter()
        .map(|(name, col)| match col {
            RawColumn::Categorical(_) => Field::new(name, DataType::Utf8, false),
            RawColumn::Dense(_) => Field::new(name, DataType::Float32, false),
            RawColumn::MultiHot { .. } => Field::new(
                name,
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                false,
            ),
        })
        .collect();
    if log.has_labels() {
        fields.push(Field::new(&schema.labels.click, DataType::Int8, false));
        fields.push(Field::new(
            &schema.labels.duration,
            DataType::Float32,
            false,
        ));
    }
    if let Some(t) = &time {
        fields.push(Field::new(t, DataType::Int64, false));
    }
    let arrow_schema = Arc::new(ArrowSchema::new(fields));
    let file_name = path.display().to_string();
    let perr = |e: &dyn std::fmt::Display| DataError::Parquet {
        file: file_name.clone(),
        message: e.to_string(),
    };
    write_atomic_with(path, |file| {
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_size(rows_per_group)
            .build();
        let mut writer =
            ArrowWriter::try_new(file, arrow_schema.clone(), Some(props)).map_err(|e| perr(&e))?;
        let mut start = 0;
        while start < log.n_rows || (start == 0 && log.n_rows == 0) {
            let end = (start + rows_per_group).min(log.n_rows);
            let batch = batch_of(log, start, end, arrow_schema.clone()).map_err(|e| perr(&e))?;
            writer.write(&batch).map_err(|e| perr(&e))?;
            if log.n_rows == 0 {
                break;
            }
            start = end;
        }
        writer.close().map_err(|e| perr(&e))?;
        Ok(())
    })
}

fn batch_of(
    log: &RawLog,
    start: usize,
    end: usize,
    schema: Arc<ArrowSchema>,
) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let mut arrays: Vec<ArrayRef> = log
        .columns
        .par_iter()
        .map(|(_, col)| -> ArrayRef {
            match col {
                RawColumn::Categorical(v) => {
                    Arc::new(StringArray::from_iter_values(v.range(start..end)))
                }
                RawColumn::Dense(v) => Arc::new(Float32Array::from(v[start..end].to_vec())),
                RawColumn::MultiHot { tokens, offsets } => {
                    let mut b = ListBuilder::new(StringBuilder::new());
                    for r in start..end {
                        for t in tokens.range(offsets[r]..offsets[r + 1]) {
                            b.values().append_value(t);
                        }
                        b.append(true);
                    }
                    Arc::new(b.finish())
                }
            }
        })
        .collect();
    if let (Some(c), Some(d)) = (&log.click, &log.duration) {
        arrays.push(Arc::new(Int8Array::from_iter_values(
            c[start..end].iter().map(|&x| x as i8),
        )));
        arrays.push(Arc::new(Float32Array::from(d[start..end].to_vec())));
    }
    if let Some(t) = &log.time {
        arrays.push(Arc::new(Int64Array::from(t[start..end].to_vec())));
    }
    RecordBatch::try_new(schema, arrays)
}
