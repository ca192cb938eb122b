//! The streaming [`LogReader`] over a file, a folder of parts or a glob (each part CSV or
//! Parquet, whole or one shard), and the whole reads built on it ([`read_log`],
//! [`read_log_with_report`], [`read_csv_from`]).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::concat::concat;
use super::parts::{self, log_parts};
use super::{csv_reader, parquet_reader, Format, ReadOptions, ReadReport};
use crate::error::{DataError, Result};
use crate::raw::RawLog;
use crate::schema::Schema;

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
        let mut reader = LogReader::unopened(&path.display().to_string(), schema, opts);
        reader.several = parts.len() > 1 || parts.first().is_some_and(|p| p != path);
        reader.pending = parts;
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
        let chunks = csv_reader::CsvChunks::new(reader, source.to_string(), schema, opts)?;
        let mut reader = LogReader::unopened(source, schema, opts);
        reader.inner = Some(Inner::Csv(Box::new(chunks)));
        Ok(reader)
    }

    /// A reader of one part named `source`, nothing open, no part pending, nothing read.
    fn unopened(source: &str, schema: &Schema, opts: &ReadOptions) -> LogReader {
        LogReader {
            inner: None,
            pending: Vec::new(),
            source: source.to_string(),
            several: false,
            schema: schema.clone(),
            opts: opts.clone(),
            row_groups_before: 0,
            columns: None,
            report: ReadReport::default(),
            finished: false,
        }
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
