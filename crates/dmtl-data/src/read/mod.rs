//! Readers of impression logs: CSV (header row) and Parquet, whole or streamed in chunks, both
//! producing the same [`RawLog`].
//!
//! Every bad value is a [`DataError`] naming the file, the line (CSV, header = line 1) or row
//! (Parquet, first data row = row 1), the column and what was expected. With
//! [`ReadOptions::skip_bad_rows`] bad rows are dropped instead and counted in a [`ReadReport`].

mod csv_reader;
mod parquet_reader;
mod parts;
mod values;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub use parts::{log_parts, Shard};

use crate::error::{DataError, Result};
use crate::raw::{RawColumn, RawLog, StrColumn};
use crate::schema::{Kind, Schema, Side};

use rayon::prelude::*;

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

/// Whether the file at `path` begins with Parquet's magic bytes.
fn starts_like_parquet(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|_| &magic == b"PAR1")
}

enum Inner {
    Csv(Box<csv_reader::CsvChunks>),
    Parquet(Box<parquet_reader::ParquetChunks>),
}

/// A streaming reader: an iterator of chunks of at most `chunk_rows` rows each, so a file larger
/// than memory can be passed over. Chunks concatenated equal [`read_log`] of the same file.
///
/// The log may be one file, a folder of part files or a glob ([`log_parts`]): parts are read one
/// after the other as one log. With [`ReadOptions::shard`] it reads only that share of the log.
///
/// After an error the iterator ends. A log with no (valid) rows yields one `Empty` error; a shard
/// may be empty (another reader holds the rows).
pub struct LogReader {
    inner: Option<Inner>,
    /// Parts not yet opened, in reverse order (the next one last).
    pending: Vec<PathBuf>,
    /// The log as named by the caller (a folder or glob when there are several parts).
    source: String,
    several: bool,
    schema: Schema,
    opts: ReadOptions,
    /// Parquet row groups of the parts opened so far, for dealing them over shards.
    row_groups_before: usize,
    /// Which of click, duration and time the log's chunks carry (set by the first chunk).
    columns: Option<[bool; 3]>,
    report: ReadReport,
    finished: bool,
}

impl LogReader {
    /// Opens the log at `path` (a file, a folder of parts or a glob: see [`log_parts`]; the
    /// format from the options, else from the extensions) and reads the first part's header.
    pub fn open(path: impl AsRef<Path>, schema: &Schema, opts: &ReadOptions) -> Result<LogReader> {
        let path = path.as_ref();
        let mut parts = log_parts(path, opts)?;
        parts.reverse();
        let mut reader = LogReader {
            inner: None,
            several: parts.len() > 1 || parts.first().is_some_and(|p| p != path),
            pending: parts,
            source: path.display().to_string(),
            schema: schema.clone(),
            opts: opts.clone(),
            row_groups_before: 0,
            columns: None,
            report: ReadReport::default(),
            finished: false,
        };
        reader.open_next()?;
        Ok(reader)
    }

    /// A CSV reader over any byte stream (stdin, a decompressor, memory); `source` names it in
    /// errors. A stream is read whole: `opts.shard` must be the whole log.
    pub fn from_csv_reader(
        reader: Box<dyn Read + Send>,
        source: &str,
        schema: &Schema,
        opts: &ReadOptions,
    ) -> Result<LogReader> {
        if !opts.shard.is_whole() {
            return Err(DataError::invalid(
                source,
                "a stream cannot be read in shards: give a file or a folder of parts",
            ));
        }
        Ok(LogReader {
            inner: Some(Inner::Csv(Box::new(csv_reader::CsvChunks::new(
                reader,
                source.to_string(),
                schema,
                opts,
            )?))),
            pending: Vec::new(),
            source: source.to_string(),
            several: false,
            schema: schema.clone(),
            opts: opts.clone(),
            row_groups_before: 0,
            columns: None,
            report: ReadReport::default(),
            finished: false,
        })
    }

    /// Rows kept and skipped so far.
    pub fn report(&self) -> &ReadReport {
        &self.report
    }

    /// Consumes the reader, returning its report.
    pub fn into_report(self) -> ReadReport {
        self.report
    }

    /// Opens parts until one is open or none is left (a 0-byte part of several is skipped).
    fn open_next(&mut self) -> Result<()> {
        self.inner = None;
        while let Some(path) = self.pending.pop() {
            if self.several && std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
                continue;
            }
            self.inner = Some(self.open_part(&path)?);
            return Ok(());
        }
        Ok(())
    }

    fn open_part(&mut self, path: &Path) -> Result<Inner> {
        let name = path.display().to_string();
        let format = match self.opts.format.or_else(|| Format::from_path(path)) {
            Some(f) => f,
            None => {
                return Err(DataError::invalid(
                    &name,
                    "cannot tell the format from the extension: name the file .csv, .parquet \
                     or .pq",
                ))
            }
        };
        let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        if format == Format::Csv && starts_like_parquet(path) {
            return Err(DataError::invalid(
                &name,
                "is a Parquet file (it starts with `PAR1`), not CSV: name it .parquet",
            ));
        }
        let (schema, opts, shard) = (&self.schema, &self.opts, self.opts.shard);
        Ok(match format {
            Format::Csv if shard.is_whole() => Inner::Csv(Box::new(csv_reader::CsvChunks::new(
                Box::new(file),
                name,
                schema,
                opts,
            )?)),
            Format::Csv => Inner::Csv(Box::new(csv_shard(file, path, name, schema, opts)?)),
            Format::Parquet => {
                let (chunks, groups) = parquet_reader::ParquetChunks::new(
                    file,
                    name,
                    schema,
                    opts,
                    self.row_groups_before,
                )?;
                self.row_groups_before += groups;
                Inner::Parquet(Box::new(chunks))
            }
        })
    }

    fn file(&self) -> &str {
        match &self.inner {
            Some(Inner::Csv(c)) => &c.file,
            Some(Inner::Parquet(p)) => &p.file,
            None => &self.source,
        }
    }

    /// Checks that a chunk carries the same label and time columns as the log's first chunk (a
    /// part without labels among parts with them would misalign the rows).
    fn check_columns(&mut self, log: &RawLog) -> Result<()> {
        let has = [
            log.click.is_some(),
            log.duration.is_some(),
            log.time.is_some(),
        ];
        match self.columns {
            None => self.columns = Some(has),
            Some(first) if first != has => {
                let names = |h: [bool; 3]| {
                    let all = [
                        self.schema.labels.click.as_str(),
                        self.schema.labels.duration.as_str(),
                        self.schema.time_column().unwrap_or("time"),
                    ];
                    let v: Vec<&str> = (0..3).filter(|&i| h[i]).map(|i| all[i]).collect();
                    if v.is_empty() {
                        "none".to_string()
                    } else {
                        v.join(", ")
                    }
                };
                return Err(DataError::invalid(
                    &log.source,
                    format!(
                        "has the label and time columns [{}] but the parts before it have [{}]: \
                         every part of a log needs the same ones",
                        names(has),
                        names(first)
                    ),
                ));
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// Opens the share of a CSV part that `opts.shard` reads: the header, then the part's byte range
/// of data cut at line starts ([`parts`]), its lines numbered as in the whole file.
fn csv_shard(
    mut file: std::fs::File,
    path: &Path,
    name: String,
    schema: &Schema,
    opts: &ReadOptions,
) -> Result<csv_reader::CsvChunks> {
    let io = |e| DataError::io(path, e);
    let len = file.metadata().map_err(io)?.len();
    // The first line break at or after `from`, reading in blocks.
    let mut find_newline = |from: u64| -> Result<Option<u64>> {
        let mut f = std::fs::File::open(path).map_err(io)?;
        f.seek(SeekFrom::Start(from)).map_err(io)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut at = from;
        loop {
            let n = f.read(&mut buf).map_err(io)?;
            if n == 0 {
                return Ok(None);
            }
            if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
                return Ok(Some(at + i as u64));
            }
            at += n as u64;
        }
    };
    let data_start = find_newline(0)?.map_or(len, |nl| nl + 1);
    let (start, end) = parts::csv_range(data_start, len, opts.shard, &mut find_newline)?;
    // Line breaks between the header and the range, so errors name the file's own lines.
    let mut before = 0u64;
    {
        let mut f = std::fs::File::open(path).map_err(io)?;
        f.seek(SeekFrom::Start(data_start)).map_err(io)?;
        let mut rest = f.take(start - data_start);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = rest.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            before += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        }
    }
    let mut header = vec![0u8; data_start as usize];
    file.read_exact(&mut header).map_err(io)?;
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    let input = std::io::Cursor::new(header).chain(file.take(end - start));
    let mut chunks = csv_reader::CsvChunks::new(Box::new(input), name, schema, opts)?;
    chunks.skip_lines(before);
    Ok(chunks)
}

impl LogReader {
    /// The next chunk as pieces in file order (concatenated, they are the chunk), skipping
    /// chunks whose rows were all dropped.
    fn next_parts(&mut self) -> Option<Result<Vec<RawLog>>> {
        if self.finished {
            return None;
        }
        loop {
            let parts = match &mut self.inner {
                Some(Inner::Csv(c)) => c.next_parts(&mut self.report),
                Some(Inner::Parquet(p)) => {
                    p.next_chunk(&mut self.report).map(|c| c.map(|c| vec![c]))
                }
                None => Ok(None),
            };
            match parts {
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
                Ok(Some(mut parts)) => {
                    parts.retain(|p| p.n_rows > 0);
                    if !parts.is_empty() {
                        if self.several {
                            for p in &parts {
                                if let Err(e) = self.check_columns(p) {
                                    self.finished = true;
                                    return Some(Err(e));
                                }
                            }
                        }
                        return Some(Ok(parts));
                    }
                    // Every row of this chunk was skipped: go on to the next one.
                }
                Ok(None) if !self.pending.is_empty() => {
                    if let Err(e) = self.open_next() {
                        self.finished = true;
                        return Some(Err(e));
                    }
                }
                Ok(None) => {
                    self.finished = true;
                    if self.report.rows_read == 0 && self.opts.shard.is_whole() {
                        let message = if self.report.rows_skipped > 0 {
                            format!(
                                "no valid rows: all {} rows were skipped; first: {}",
                                self.report.rows_skipped, self.report.first_errors[0]
                            )
                        } else if self.several {
                            "no data rows in any part".to_string()
                        } else {
                            "no data rows (expected at least one row after the header)".to_string()
                        };
                        let file = if self.several {
                            self.source.clone()
                        } else {
                            self.file().to_string()
                        };
                        return Some(Err(DataError::Empty { file, message }));
                    }
                    return None;
                }
            }
        }
    }
}

impl Iterator for LogReader {
    type Item = Result<RawLog>;

    fn next(&mut self) -> Option<Result<RawLog>> {
        self.next_parts().map(|parts| parts.map(concat))
    }
}

/// Reads a whole log (see [`LogReader`] for the format choice and errors).
pub fn read_log(path: impl AsRef<Path>, schema: &Schema, opts: &ReadOptions) -> Result<RawLog> {
    read_log_with_report(path, schema, opts).map(|(log, _)| log)
}

/// Reads a whole log and reports how many rows were kept and skipped.
pub fn read_log_with_report(
    path: impl AsRef<Path>,
    schema: &Schema,
    opts: &ReadOptions,
) -> Result<(RawLog, ReadReport)> {
    let mut reader = LogReader::open(path, schema, opts)?;
    let log = collect_chunks(&mut reader)?;
    Ok((log, reader.into_report()))
}

/// Reads a whole CSV log from a byte stream; `source` names it in errors.
pub fn read_csv_from(
    reader: Box<dyn Read + Send>,
    source: &str,
    schema: &Schema,
    opts: &ReadOptions,
) -> Result<(RawLog, ReadReport)> {
    let mut reader = LogReader::from_csv_reader(reader, source, schema, opts)?;
    let log = collect_chunks(&mut reader)?;
    Ok((log, reader.into_report()))
}

fn collect_chunks(reader: &mut LogReader) -> Result<RawLog> {
    // Pieces of every chunk are joined once at the end, into columns of the final size.
    let mut parts = Vec::new();
    while let Some(p) = reader.next_parts() {
        parts.extend(p?);
    }
    Ok(concat(parts))
}

/// Joins logs of the same columns (pieces of one file), in order: each column is built once at
/// its final size, columns in parallel.
fn concat(mut parts: Vec<RawLog>) -> RawLog {
    if parts.len() <= 1 {
        return parts.pop().unwrap_or_default();
    }
    let n_rows = parts.iter().map(|p| p.n_rows).sum();
    let source = parts[0].source.clone();
    let names: Vec<String> = parts[0].columns.iter().map(|(n, _)| n.clone()).collect();
    let mut by_column: Vec<Vec<RawColumn>> = names.iter().map(|_| Vec::new()).collect();
    let (mut click, mut duration, mut time) = (Vec::new(), Vec::new(), Vec::new());
    for p in parts {
        for (j, (_, c)) in p.columns.into_iter().enumerate() {
            by_column[j].push(c);
        }
        click.push(p.click);
        duration.push(p.duration);
        time.push(p.time);
    }
    fn join<T>(parts: Vec<Option<Vec<T>>>) -> Option<Vec<T>> {
        let mut out: Option<Vec<T>> = None;
        let total = parts.iter().flatten().map(Vec::len).sum();
        for v in parts.into_iter().flatten() {
            out.get_or_insert_with(|| Vec::with_capacity(total))
                .extend(v);
        }
        out
    }
    // The joined columns are allocated here and filled in parallel (see `csv_reader` on why
    // large buffers are not allocated on the workers).
    let joined: Vec<RawColumn> = by_column.iter().map(|c| room_for(c)).collect();
    let columns: Vec<(String, RawColumn)> = names
        .into_par_iter()
        .zip(joined)
        .zip(by_column)
        .map(|((name, mut out), cols)| {
            for c in cols {
                out.append(c);
            }
            (name, out)
        })
        .collect();
    RawLog {
        source,
        columns,
        click: join(click),
        duration: join(duration),
        time: join(time),
        n_rows,
    }
}

/// An empty column with room for the rows of `cols` (all of one kind).
fn room_for(cols: &[RawColumn]) -> RawColumn {
    let rows = cols.iter().map(RawColumn::len).sum();
    // (values, bytes) of the string columns.
    let strings = |f: fn(&RawColumn) -> Option<&StrColumn>| {
        cols.iter()
            .filter_map(f)
            .fold((0, 0), |(n, b), s| (n + s.len(), b + s.byte_len()))
    };
    match cols[0].kind() {
        Kind::Categorical => {
            let (n, bytes) = strings(|c| match c {
                RawColumn::Categorical(v) => Some(v),
                _ => None,
            });
            RawColumn::Categorical(StrColumn::with_capacity(n, bytes))
        }
        Kind::Dense => RawColumn::Dense(Vec::with_capacity(rows)),
        Kind::MultiHot => {
            let (n_tokens, bytes) = strings(|c| match c {
                RawColumn::MultiHot { tokens, .. } => Some(tokens),
                _ => None,
            });
            let mut offsets = Vec::with_capacity(rows + 1);
            offsets.push(0);
            RawColumn::MultiHot {
                tokens: StrColumn::with_capacity(n_tokens, bytes),
                offsets,
            }
        }
    }
}
