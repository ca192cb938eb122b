//! The CSV reader: records are read sequentially into a chunk, then the chunk's columns are
//! parsed in parallel (one Rayon task per column).

use std::io::Read;

use csv::ByteRecord;
use rayon::prelude::*;

use super::values::*;
use super::{finish, Parsed, Plan, ReadOptions, ReadReport};
use crate::error::{DataError, Location, Result};
use crate::raw::{RawColumn, RawLog};
use crate::schema::{Kind, Schema};

pub(crate) struct CsvChunks {
    pub(crate) file: String,
    reader: csv::Reader<Box<dyn Read + Send>>,
    schema: Schema,
    opts: ReadOptions,
    plan: Plan,
    n_fields: usize,
    records: Vec<ByteRecord>,
    eof: bool,
}

fn csv_error(file: &str, e: csv::Error) -> DataError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    match e.into_kind() {
        csv::ErrorKind::Io(io) => DataError::io(file, io),
        other => DataError::Csv {
            file: file.to_string(),
            location: Location::Line(line),
            message: format!("{other:?}"),
        },
    }
}

impl CsvChunks {
    pub(crate) fn new(
        input: Box<dyn Read + Send>,
        file: String,
        schema: &Schema,
        opts: &ReadOptions,
    ) -> Result<CsvChunks> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            // Field counts are checked here, to report them in this crate's words.
            .flexible(true)
            .delimiter(opts.csv_delimiter)
            .from_reader(input);
        let header = reader
            .byte_headers()
            .map_err(|e| csv_error(&file, e))?
            .clone();
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err(DataError::Empty {
                file,
                message: "no header row (the file is empty)".to_string(),
            });
        }
        let names: Vec<String> = header
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_string())
            .collect();
        let plan = Plan::new(&file, &names, schema, opts)?;
        Ok(CsvChunks {
            file,
            reader,
            schema: schema.clone(),
            opts: opts.clone(),
            plan,
            n_fields: names.len(),
            records: Vec::new(),
            eof: false,
        })
    }

    /// The next chunk, `None` at the end of the file.
    pub(crate) fn next_chunk(&mut self, report: &mut ReadReport) -> Result<Option<RawLog>> {
        if self.eof {
            return Ok(None);
        }
        let chunk_rows = self.opts.chunk_rows.max(1);
        let mut n = 0;
        // A bad field count stops the chunk there, so that an earlier bad value is reported first.
        let mut pending: Option<DataError> = None;
        while n < chunk_rows {
            if self.records.len() <= n {
                self.records.push(ByteRecord::new());
            }
            let rec = &mut self.records[n];
            match self.reader.read_byte_record(rec) {
                Err(e) => {
                    let e = csv_error(&self.file, e);
                    if self.opts.skip_bad_rows && matches!(e, DataError::Csv { .. }) {
                        report.record(e, self.opts.max_reported_errors);
                        continue;
                    }
                    pending = Some(e);
                    break;
                }
                Ok(false) => {
                    self.eof = true;
                    break;
                }
                Ok(true) => {
                    if rec.len() != self.n_fields {
                        // A blank line inside the file is not a row.
                        if rec.len() == 1 && rec[0].is_empty() {
                            continue;
                        }
                        let e = DataError::FieldCount {
                            file: self.file.clone(),
                            location: Location::Line(line_of(rec)),
                            expected: self.n_fields,
                            found: rec.len(),
                        };
                        if self.opts.skip_bad_rows {
                            report.record(e, self.opts.max_reported_errors);
                            continue;
                        }
                        pending = Some(e);
                        break;
                    }
                    n += 1;
                }
            }
        }
        if n == 0 {
            if let Some(e) = pending {
                self.eof = true;
                return Err(e);
            }
            return Ok(None);
        }
        let parsed = parse_records(&self.records[..n], &self.file, &self.schema, &self.plan);
        let log = finish(
            parsed,
            &self.file,
            &self.schema,
            &self.plan,
            &self.opts,
            report,
        )?;
        if let Some(e) = pending {
            self.eof = true;
            return Err(e);
        }
        Ok(Some(log))
    }
}

fn line_of(rec: &ByteRecord) -> u64 {
    rec.position().map(|p| p.line()).unwrap_or(0)
}

enum Job {
    Feature(usize, usize),
    Click(usize),
    Duration(usize),
    Time(usize),
}

enum Out {
    Column(String, RawColumn),
    Click(Vec<f32>),
    Duration(Vec<f32>),
    Time(Vec<i64>),
}

type Errors = Vec<(usize, usize, DataError)>;

fn parse_records(recs: &[ByteRecord], file: &str, schema: &Schema, plan: &Plan) -> Parsed {
    let mut jobs: Vec<Job> = plan
        .features
        .iter()
        .map(|&(si, fi)| Job::Feature(si, fi))
        .collect();
    jobs.extend(plan.click.map(Job::Click));
    jobs.extend(plan.duration.map(Job::Duration));
    jobs.extend(plan.time.map(Job::Time));

    let bad = |r: usize, fi: usize, column: &str, expected: &str, found: String| {
        (
            r,
            fi,
            DataError::BadValue {
                file: file.to_string(),
                location: Location::Line(line_of(&recs[r])),
                column: column.to_string(),
                expected: expected.to_string(),
                found,
            },
        )
    };
    // Numbers of every kind go through one helper: parse the trimmed text, else record why.
    let numbers = |fi: usize, column: &str, expected: &str, parse: &dyn Fn(&str) -> Option<f32>| {
        let mut errs = Errors::new();
        let v = recs
            .iter()
            .enumerate()
            .map(|(r, rec)| {
                let cell = &rec[fi];
                match std::str::from_utf8(cell).ok().and_then(parse) {
                    Some(x) => x,
                    None => {
                        errs.push(bad(r, fi, column, expected, show_bytes(cell)));
                        0.0
                    }
                }
            })
            .collect::<Vec<f32>>();
        (v, errs)
    };

    let outs: Vec<(Out, Errors)> = jobs
        .par_iter()
        .map(|job| match *job {
            Job::Feature(si, fi) => {
                let spec = &schema.columns[si];
                let name = &spec.name;
                let mut errs = Errors::new();
                let col = match spec.kind {
                    Kind::Categorical => RawColumn::Categorical(
                        recs.iter()
                            .enumerate()
                            .map(|(r, rec)| match std::str::from_utf8(&rec[fi]) {
                                Ok(s) => s.to_string(),
                                Err(_) => {
                                    errs.push(bad(r, fi, name, EXPECT_TEXT, show_bytes(&rec[fi])));
                                    String::new()
                                }
                            })
                            .collect(),
                    ),
                    Kind::MultiHot => {
                        let sep = spec.separator();
                        let mut tokens = Vec::new();
                        let mut offsets = Vec::with_capacity(recs.len() + 1);
                        offsets.push(0);
                        for (r, rec) in recs.iter().enumerate() {
                            match std::str::from_utf8(&rec[fi]) {
                                Ok(s) => tokens.extend(split_bag(s, sep).map(str::to_string)),
                                Err(_) => {
                                    errs.push(bad(r, fi, name, EXPECT_TEXT, show_bytes(&rec[fi])))
                                }
                            }
                            offsets.push(tokens.len());
                        }
                        RawColumn::MultiHot { tokens, offsets }
                    }
                    Kind::Dense => {
                        let (v, e) = numbers(fi, name, EXPECT_DENSE, &parse_dense);
                        errs = e;
                        RawColumn::Dense(v)
                    }
                };
                (Out::Column(name.clone(), col), errs)
            }
            Job::Click(fi) => {
                let (v, e) = numbers(fi, &schema.labels.click, EXPECT_CLICK, &parse_click);
                (Out::Click(v), e)
            }
            Job::Duration(fi) => {
                let (v, e) = numbers(
                    fi,
                    &schema.labels.duration,
                    EXPECT_DURATION,
                    &parse_duration,
                );
                (Out::Duration(v), e)
            }
            Job::Time(fi) => {
                let column = schema.time_column().unwrap_or_default();
                let mut errs = Errors::new();
                let v = recs
                    .iter()
                    .enumerate()
                    .map(|(r, rec)| {
                        let cell = &rec[fi];
                        match std::str::from_utf8(cell).ok().and_then(parse_time) {
                            Some(x) => x,
                            None => {
                                errs.push(bad(r, fi, column, EXPECT_TIME, show_bytes(cell)));
                                0
                            }
                        }
                    })
                    .collect();
                (Out::Time(v), errs)
            }
        })
        .collect();

    let lines: Vec<u64> = recs.iter().map(line_of).collect();
    let mut parsed = Parsed {
        columns: Vec::new(),
        click: None,
        duration: None,
        time: None,
        n_rows: recs.len(),
        errors: Vec::new(),
        location: Box::new(move |r| Location::Line(lines[r])),
    };
    for (out, errs) in outs {
        parsed.errors.extend(errs);
        match out {
            Out::Column(n, c) => parsed.columns.push((n, c)),
            Out::Click(v) => parsed.click = Some(v),
            Out::Duration(v) => parsed.duration = Some(v),
            Out::Time(v) => parsed.time = Some(v),
        }
    }
    parsed
}
