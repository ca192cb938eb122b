//! The Parquet reader: Arrow record batches of `chunk_rows` rows, their columns converted to the
//! raw form in parallel.
//!
//! Accepted Arrow types: categorical — strings, integers (ids become their decimal text, `"123"`)
//! or dictionaries of those, null = empty (out-of-vocabulary), except in the user and item id
//! columns, where a null is a bad value; multi-hot — a list of strings or
//! integers (null = empty bag), or a string joined by the column's separator; dense — any integer
//! or float; click — integer, float or boolean; duration — integer or float; time — integer,
//! date or timestamp.

use std::fs::File;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use rayon::prelude::*;

use super::values::*;
use super::{finish, Parsed, Plan, ReadOptions, ReadReport};
use crate::error::{DataError, Location, Result};
use crate::raw::{RawColumn, RawLog, StrColumn};
use crate::schema::{Kind, Schema};

pub(crate) struct ParquetChunks {
    pub(crate) file: String,
    /// The open reader; `None` between the row groups of a shard.
    reader: Option<ParquetRecordBatchReader>,
    schema: Schema,
    opts: ReadOptions,
    /// The plan in terms of the projected batch's columns.
    plan: Plan,
    rows_before: u64,
    /// A shard's row groups still to read, in reverse order, with the file row each starts at;
    /// each is read by a reader of its own so rows keep their numbers in the file.
    groups: Vec<(usize, u64)>,
    /// What a shard needs to open a reader per row group.
    source: Option<(File, ArrowReaderMetadata, ProjectionMask)>,
}

fn pq_err(file: &str, e: impl std::fmt::Display) -> DataError {
    DataError::Parquet {
        file: file.to_string(),
        message: e.to_string(),
    }
}

impl ParquetChunks {
    /// Opens a Parquet file; with a shard in `opts`, only the row groups the shard owns, counting
    /// this file's groups from `groups_before` (the groups of the log's earlier parts). Returns
    /// the reader and the file's number of row groups.
    pub(crate) fn new(
        input: File,
        file: String,
        schema: &Schema,
        opts: &ReadOptions,
        groups_before: usize,
    ) -> Result<(ParquetChunks, usize)> {
        if input.metadata().map(|m| m.len() == 0).unwrap_or(false) {
            return Err(DataError::Empty {
                file,
                message: "the file is empty (0 bytes; expected a Parquet file)".to_string(),
            });
        }
        let meta = ArrowReaderMetadata::load(&input, Default::default())
            .map_err(|e| pq_err(&file, format!("not a readable Parquet file: {e}")))?;
        let n_groups = meta.metadata().num_row_groups();
        let names: Vec<String> = meta
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let full = Plan::new(&file, &names, schema, opts)?;
        // Read only the wanted columns; batch columns then come in file order.
        let mut wanted: Vec<usize> = full.features.iter().map(|&(_, fi)| fi).collect();
        wanted.extend(full.click);
        wanted.extend(full.duration);
        wanted.extend(full.time);
        wanted.sort_unstable();
        let pos = |fi: usize| wanted.binary_search(&fi).expect("wanted column");
        let plan = Plan {
            features: full
                .features
                .iter()
                .map(|&(si, fi)| (si, pos(fi)))
                .collect(),
            click: full.click.map(pos),
            duration: full.duration.map(pos),
            time: full.time.map(pos),
        };
        let mask = ProjectionMask::roots(meta.parquet_schema(), wanted.iter().copied());
        let mut chunks = ParquetChunks {
            file,
            reader: None,
            schema: schema.clone(),
            opts: opts.clone(),
            plan,
            rows_before: 0,
            groups: Vec::new(),
            source: None,
        };
        if opts.shard.is_whole() {
            chunks.reader = Some(
                ParquetRecordBatchReaderBuilder::new_with_metadata(input, meta)
                    .with_projection(mask)
                    .with_batch_size(opts.chunk_rows.max(1))
                    .build()
                    .map_err(|e| pq_err(&chunks.file, e))?,
            );
        } else {
            let mut first_row = 0u64;
            for (g, rg) in meta.metadata().row_groups().iter().enumerate() {
                if opts.shard.owns(groups_before + g) {
                    chunks.groups.push((g, first_row));
                }
                first_row += rg.num_rows().max(0) as u64;
            }
            chunks.groups.reverse();
            chunks.source = Some((input, meta, mask));
        }
        Ok((chunks, n_groups))
    }

    /// Opens the reader of the shard's next row group; false when none is left.
    fn open_group(&mut self) -> Result<bool> {
        let (Some((g, first_row)), Some((input, meta, mask))) = (self.groups.pop(), &self.source)
        else {
            return Ok(false);
        };
        let input = input
            .try_clone()
            .map_err(|e| DataError::io(&self.file, e))?;
        self.reader = Some(
            ParquetRecordBatchReaderBuilder::new_with_metadata(input, meta.clone())
                .with_projection(mask.clone())
                .with_row_groups(vec![g])
                .with_batch_size(self.opts.chunk_rows.max(1))
                .build()
                .map_err(|e| pq_err(&self.file, e))?,
        );
        self.rows_before = first_row;
        Ok(true)
    }

    /// The next chunk, `None` at the end of the file.
    pub(crate) fn next_chunk(&mut self, report: &mut ReadReport) -> Result<Option<RawLog>> {
        let batch = loop {
            match self.reader.as_mut().and_then(|r| r.next()) {
                Some(b) => break b.map_err(|e| pq_err(&self.file, e))?,
                None => {
                    if !self.open_group()? {
                        return Ok(None);
                    }
                }
            }
        };
        let base = self.rows_before;
        self.rows_before += batch.num_rows() as u64;
        let parsed = convert(&batch, base, &self.file, &self.schema, &self.plan)?;
        finish(
            parsed,
            &self.file,
            &self.schema,
            &self.plan,
            &self.opts,
            report,
        )
        .map(Some)
    }
}

type Errors = Vec<(usize, usize, DataError)>;

enum Out {
    Column(String, RawColumn),
    Click(Vec<f32>),
    Duration(Vec<f32>),
    Time(Vec<i64>),
}

fn is_int(t: &DataType) -> bool {
    t.is_integer()
}

fn is_stringish(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_stringish(v) || is_int(v),
        t => is_int(t),
    }
}

fn convert(
    batch: &RecordBatch,
    base: u64,
    file: &str,
    schema: &Schema,
    plan: &Plan,
) -> Result<Parsed> {
    let n = batch.num_rows();
    let loc = move |r: usize| Location::Row(base + r as u64 + 1);
    let bad = |r: usize, fi: usize, column: &str, expected: &str, found: String| {
        (
            r,
            fi,
            DataError::BadValue {
                file: file.to_string(),
                location: loc(r),
                column: column.to_string(),
                expected: expected.to_string(),
                found,
            },
        )
    };
    let wrong_type = |column: &str, expected: &str, found: &DataType| DataError::ColumnType {
        file: file.to_string(),
        column: column.to_string(),
        expected: expected.to_string(),
        found: format!("Arrow type {found}"),
    };
    let cast = |a: &ArrayRef, t: &DataType| arrow_cast::cast(a, t).map_err(|e| pq_err(file, e));
    // Numeric columns: cast to f64, then check each value with `ok`.
    let numbers = |fi: usize,
                   column: &str,
                   expected: &str,
                   accept: &dyn Fn(&DataType) -> bool,
                   ok: &dyn Fn(f64) -> bool|
     -> Result<(Vec<f32>, Errors)> {
        let a = batch.column(fi);
        if !accept(a.data_type()) {
            return Err(wrong_type(column, expected, a.data_type()));
        }
        let c = cast(a, &DataType::Float64)?;
        let c = c.as_primitive::<Float64Type>();
        let mut errs = Errors::new();
        let v = (0..n)
            .map(|r| {
                if c.is_null(r) {
                    errs.push(bad(r, fi, column, expected, "null".to_string()));
                    return 0.0;
                }
                let x = c.value(r);
                if ok(x) {
                    x as f32
                } else {
                    errs.push(bad(r, fi, column, expected, format!("{x}")));
                    0.0
                }
            })
            .collect();
        Ok((v, errs))
    };
    let numeric = |t: &DataType| t.is_numeric();
    let numeric_or_bool = |t: &DataType| t.is_numeric() || *t == DataType::Boolean;

    let mut jobs: Vec<(u8, usize, usize)> =
        plan.features.iter().map(|&(si, fi)| (0, si, fi)).collect();
    jobs.extend(plan.click.map(|fi| (1, 0, fi)));
    jobs.extend(plan.duration.map(|fi| (2, 0, fi)));
    jobs.extend(plan.time.map(|fi| (3, 0, fi)));

    let outs: Vec<Result<(Out, Errors)>> = jobs
        .par_iter()
        .map(|&(what, si, fi)| -> Result<(Out, Errors)> {
            match what {
                1 => {
                    let (v, e) = numbers(
                        fi,
                        &schema.labels.click,
                        EXPECT_CLICK,
                        &numeric_or_bool,
                        &|x| x == 0.0 || x == 1.0,
                    )?;
                    Ok((Out::Click(v), e))
                }
                2 => {
                    let (v, e) = numbers(
                        fi,
                        &schema.labels.duration,
                        EXPECT_DURATION,
                        &numeric,
                        &|x| x.is_finite() && x >= 0.0,
                    )?;
                    Ok((Out::Duration(v), e))
                }
                3 => {
                    let column = schema.time_column().unwrap_or_default();
                    let a = batch.column(fi);
                    let t = a.data_type();
                    let accepted = is_int(t)
                        || matches!(
                            t,
                            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
                        );
                    if !accepted {
                        return Err(wrong_type(
                            column,
                            "an integer, date or timestamp column",
                            t,
                        ));
                    }
                    let c = cast(a, &DataType::Int64)?;
                    let c = c.as_primitive::<Int64Type>();
                    let mut errs = Errors::new();
                    let v = (0..n)
                        .map(|r| {
                            if c.is_null(r) {
                                errs.push(bad(r, fi, column, EXPECT_TIME, "null".to_string()));
                                0
                            } else {
                                c.value(r)
                            }
                        })
                        .collect();
                    Ok((Out::Time(v), errs))
                }
                _ => {
                    let spec = &schema.columns[si];
                    let name = &spec.name;
                    let a = batch.column(fi);
                    let t = a.data_type();
                    let col = match spec.kind {
                        Kind::Categorical => {
                            if !is_stringish(t) {
                                return Err(wrong_type(
                                    name,
                                    "a string or integer column (ids)",
                                    t,
                                ));
                            }
                            let c = cast(a, &DataType::Utf8)?;
                            let c = c.as_string::<i32>();
                            let mut v = StrColumn::with_capacity(n, text_bytes(c));
                            // A null feature is out of vocabulary; a null user or item id is
                            // an error (it would make an anonymous user or item of all such
                            // rows).
                            let is_id = *name == schema.ids.user || *name == schema.ids.item;
                            let mut errs = Errors::new();
                            for r in 0..n {
                                if c.is_null(r) && is_id {
                                    errs.push(bad(r, fi, name, EXPECT_ID, "null".to_string()));
                                }
                                v.push(if c.is_null(r) { "" } else { c.value(r) });
                            }
                            let col = RawColumn::Categorical(v);
                            return Ok((Out::Column(name.clone(), col), errs));
                        }
                        Kind::MultiHot => {
                            multi_hot(a, spec.separator(), n, name, &wrong_type, &cast)?
                        }
                        Kind::Dense => {
                            let (v, e) =
                                numbers(fi, name, EXPECT_DENSE, &numeric, &|x| x.is_finite())?;
                            return Ok((Out::Column(name.clone(), RawColumn::Dense(v)), e));
                        }
                    };
                    Ok((Out::Column(name.clone(), col), Errors::new()))
                }
            }
        })
        .collect();

    let mut parsed = Parsed {
        columns: Vec::new(),
        click: None,
        duration: None,
        time: None,
        n_rows: n,
        errors: Vec::new(),
        location: Box::new(loc),
    };
    for out in outs {
        let (out, errs) = out?;
        parsed.errors.extend(errs);
        match out {
            Out::Column(name, c) => parsed.columns.push((name, c)),
            Out::Click(v) => parsed.click = Some(v),
            Out::Duration(v) => parsed.duration = Some(v),
            Out::Time(v) => parsed.time = Some(v),
        }
    }
    Ok(parsed)
}

fn multi_hot(
    a: &ArrayRef,
    sep: &str,
    n: usize,
    name: &str,
    wrong_type: &dyn Fn(&str, &str, &DataType) -> DataError,
    cast: &dyn Fn(&ArrayRef, &DataType) -> Result<ArrayRef>,
) -> Result<RawColumn> {
    const EXPECTED: &str =
        "a list of strings or integers, or a string of tokens joined by the separator";
    let mut tokens = StrColumn::new();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0);
    let t = a.data_type();
    // Lists with 32- and 64-bit offsets differ only in the offset type.
    macro_rules! from_list {
        ($list:expr) => {{
            let list = $list;
            let values = list.values();
            if !is_stringish(values.data_type()) {
                return Err(wrong_type(name, EXPECTED, t));
            }
            let values = cast(values, &DataType::Utf8)?;
            let values = values.as_string::<i32>();
            let offs = list.value_offsets();
            tokens.reserve(values.len(), text_bytes(values));
            for r in 0..n {
                if !list.is_null(r) {
                    for j in offs[r] as usize..offs[r + 1] as usize {
                        if !values.is_null(j) && !values.value(j).is_empty() {
                            tokens.push(values.value(j));
                        }
                    }
                }
                offsets.push(tokens.len());
            }
        }};
    }
    match t {
        DataType::List(_) => from_list!(a.as_list::<i32>()),
        DataType::LargeList(_) => from_list!(a.as_list::<i64>()),
        t if is_stringish(t) && !is_int(t) => {
            let c = cast(a, &DataType::Utf8)?;
            let c = c.as_string::<i32>();
            tokens.reserve(0, text_bytes(c));
            for r in 0..n {
                if !c.is_null(r) {
                    split_bag(c.value(r), sep).for_each(|t| tokens.push(t));
                }
                offsets.push(tokens.len());
            }
        }
        t => return Err(wrong_type(name, EXPECTED, t)),
    }
    Ok(RawColumn::MultiHot { tokens, offsets })
}

/// The bytes of text a string array holds: room for its values.
fn text_bytes(a: &arrow_array::StringArray) -> usize {
    match a.value_offsets() {
        [first, .., last] => (last - first) as usize,
        _ => 0,
    }
}
