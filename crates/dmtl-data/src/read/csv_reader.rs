//! The CSV reader. Input is read in large blocks into one byte buffer; the rows of a chunk are
//! found sequentially (a `memchr` scan for line ends when the chunk holds no quote character,
//! `csv_core` otherwise, so quoted fields may hold delimiters, quotes and newlines); then the
//! chunk is cut into pieces of contiguous rows that are split into fields and parsed in
//! parallel on Rayon, each piece straight from the bytes into its own columns (a string column
//! being one [`crate::StrColumn`]: the cells' bytes copied back to back, no allocation per
//! cell or token). Pieces come back in file order, so rows keep their order and the first bad
//! row of the file is reported.
//!
//! A row's line is 1 plus the number of `\n` before its first byte (blank lines and newlines
//! inside quoted fields count), the header being line 1.

use std::io::Read;
use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use super::values::*;
use super::{finish, Parsed, Plan, ReadOptions, ReadReport};
use crate::error::{DataError, Location, Result};
use crate::raw::{RawColumn, RawLog, StrColumn};
use crate::schema::{Kind, Schema};

/// Bytes asked of the input per read.
const BLOCK: u64 = 1 << 20;
/// The smallest piece worth a Rayon task.
const MIN_PIECE_ROWS: usize = 256;

pub(crate) struct CsvChunks {
    pub(crate) file: String,
    input: Box<dyn Read + Send>,
    schema: Schema,
    opts: ReadOptions,
    plan: Plan,
    n_fields: usize,
    /// Bytes read and not yet consumed start at `pos`.
    buf: Vec<u8>,
    pos: usize,
    /// The line of `buf[pos]`.
    line: u64,
    input_done: bool,
    /// A read error, returned once the rows before it are handled.
    io_error: Option<DataError>,
    eof: bool,
    /// Rows per parallel piece; 0 chooses from the thread count.
    pub(crate) piece_rows: usize,
    /// Cell tables of the last chunk's pieces, for reuse.
    tables: Vec<TableBuf>,
    /// Field ends of the record `csv_core` is reading.
    ends_scratch: Vec<usize>,
}

/// The rows of one chunk, as found by the scan.
enum Rows {
    /// Byte ranges of rows without quotes: fields are the text between delimiters.
    Plain(Vec<Range<usize>>),
    /// Rows unquoted by `csv_core`: row `r`'s fields are `bytes[starts[i]..ends[i]]` for `i` in
    /// `rec[r]..rec[r + 1]`.
    Split {
        bytes: Vec<u8>,
        starts: Vec<usize>,
        ends: Vec<usize>,
        rec: Vec<usize>,
    },
}

impl Rows {
    fn len(&self) -> usize {
        match self {
            Rows::Plain(spans) => spans.len(),
            Rows::Split { rec, .. } => rec.len() - 1,
        }
    }
}

/// The reusable buffers of a [`Table`]: cell ranges and row widths.
type TableBuf = (Vec<(usize, usize)>, Vec<bool>);

/// One cell: text, or bytes that are not UTF-8.
type Cell<'a> = std::result::Result<&'a str, &'a [u8]>;

fn is_term(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

impl CsvChunks {
    pub(crate) fn new(
        input: Box<dyn Read + Send>,
        file: String,
        schema: &Schema,
        opts: &ReadOptions,
    ) -> Result<CsvChunks> {
        let mut c = CsvChunks {
            file,
            input,
            schema: schema.clone(),
            opts: opts.clone(),
            plan: Plan {
                features: Vec::new(),
                click: None,
                duration: None,
                time: None,
            },
            n_fields: 0,
            buf: Vec::new(),
            pos: 0,
            line: 1,
            input_done: false,
            io_error: None,
            eof: false,
            piece_rows: 0,
            tables: Vec::new(),
            ends_scratch: Vec::new(),
        };
        while c.buf.len() < 3 && c.fill() {}
        if let Some(e) = c.io_error.take() {
            return Err(e);
        }
        if c.buf.starts_with(b"\xEF\xBB\xBF") {
            c.pos = 3;
        }
        let mut rdr = c.core_reader();
        let (mut bytes, mut starts, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        let mut p = c.skip_terms(c.pos, &mut 1);
        let mut found = false;
        if p < c.buf.len() {
            let end = c.core_record(&mut rdr, p, &mut bytes, &mut starts, &mut ends);
            if let Some(e) = c.io_error.take() {
                return Err(e);
            }
            found = !ends.is_empty();
            p = end;
        }
        let names: Vec<String> = starts
            .iter()
            .zip(&ends)
            .map(|(&s, &e)| String::from_utf8_lossy(&bytes[s..e]).trim().to_string())
            .collect();
        if !found || (names.len() == 1 && names[0].is_empty()) {
            return Err(DataError::Empty {
                file: c.file,
                message: "no header row (the file is empty)".to_string(),
            });
        }
        c.line = 1 + c.buf[..p].iter().filter(|&&b| b == b'\n').count() as u64;
        c.pos = p;
        c.plan = Plan::new(&c.file, &names, schema, opts)?;
        c.n_fields = names.len();
        Ok(c)
    }

    /// Numbers the rows as if `n` more lines came before them (a shard starting inside a file).
    pub(crate) fn skip_lines(&mut self, n: u64) {
        self.line += n;
    }

    fn core_reader(&self) -> csv_core::Reader {
        csv_core::ReaderBuilder::new()
            .delimiter(self.opts.csv_delimiter)
            .build()
    }

    /// Appends up to [`BLOCK`] bytes of input to the buffer; false at the end of the input or
    /// on a read error (kept in `io_error`).
    fn fill(&mut self) -> bool {
        if self.input_done {
            return false;
        }
        match (&mut *self.input).take(BLOCK).read_to_end(&mut self.buf) {
            Ok(0) => {
                self.input_done = true;
                false
            }
            Ok(_) => true,
            Err(e) => {
                self.io_error = Some(DataError::io(&self.file, e));
                self.input_done = true;
                false
            }
        }
    }

    /// Skips line ends (blank lines) from `p`, reading more input when needed; counts the
    /// newlines into `line`.
    fn skip_terms(&mut self, mut p: usize, line: &mut u64) -> usize {
        loop {
            while p < self.buf.len() && is_term(self.buf[p]) {
                *line += (self.buf[p] == b'\n') as u64;
                p += 1;
            }
            if p < self.buf.len() || !self.fill() {
                return p;
            }
        }
    }

    /// Parses the record starting at `buf[start]` with `csv_core`, appending its unquoted
    /// bytes to `bytes` and each field's range to `starts`/`ends`; returns where the consumed
    /// input ends. Pushes no field when the input holds no record.
    fn core_record(
        &mut self,
        rdr: &mut csv_core::Reader,
        start: usize,
        bytes: &mut Vec<u8>,
        starts: &mut Vec<usize>,
        ends: &mut Vec<usize>,
    ) -> usize {
        use csv_core::ReadRecordResult::*;
        rdr.reset();
        // The record is unquoted straight into `bytes`, past `base`.
        let base = bytes.len();
        bytes.resize(base + 256, 0);
        let mut rec_ends = std::mem::take(&mut self.ends_scratch);
        rec_ends.resize(rec_ends.len().max(32), 0);
        let (mut nout, mut nend) = (0, 0);
        let mut p = start;
        loop {
            if p == self.buf.len() {
                // An empty input tells csv_core the data has ended: only give one at the end.
                self.fill();
            }
            let (res, i, o, e) = rdr.read_record(
                &self.buf[p..],
                &mut bytes[base + nout..],
                &mut rec_ends[nend..],
            );
            p += i;
            nout += o;
            nend += e;
            match res {
                InputEmpty => continue,
                OutputFull => bytes.resize(base + 2 * (bytes.len() - base), 0),
                OutputEndsFull => rec_ends.resize(rec_ends.len() * 2, 0),
                Record | End => break,
            }
        }
        if self.io_error.is_some() {
            // A record cut by a read error is not a record.
            bytes.truncate(base);
            self.ends_scratch = rec_ends;
            return p;
        }
        bytes.truncate(base + nout);
        let mut s = base;
        for &e in &rec_ends[..nend] {
            starts.push(s);
            ends.push(base + e);
            s = base + e;
        }
        self.ends_scratch = rec_ends;
        p
    }

    /// Finds up to `max_rows` rows from `pos`; returns them, their lines, and where they end
    /// (input position and line).
    fn scan(&mut self, max_rows: usize) -> (Rows, Vec<u64>, usize, u64) {
        let d = self.opts.csv_delimiter;
        if d != b'"' && !is_term(d) {
            let mut spans = Vec::new();
            let mut lines = Vec::new();
            let mut p = self.pos;
            let mut line = self.line;
            while spans.len() < max_rows {
                p = self.skip_terms(p, &mut line);
                if p == self.buf.len() {
                    break;
                }
                match memchr::memchr2(b'\n', b'\r', &self.buf[p..]) {
                    Some(i) => {
                        spans.push(p..p + i);
                        lines.push(line);
                        p += i;
                    }
                    None => {
                        if self.fill() {
                            continue;
                        }
                        if self.io_error.is_some() {
                            break;
                        }
                        spans.push(p..self.buf.len());
                        lines.push(line);
                        p = self.buf.len();
                    }
                }
            }
            if memchr::memchr(b'"', &self.buf[self.pos..p]).is_none() {
                return (Rows::Plain(spans), lines, p, line);
            }
        }
        self.scan_quoted(max_rows)
    }

    fn scan_quoted(&mut self, max_rows: usize) -> (Rows, Vec<u64>, usize, u64) {
        let mut rdr = self.core_reader();
        let (mut bytes, mut starts, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        let mut rec = vec![0];
        let mut lines = Vec::new();
        let mut p = self.pos;
        let mut line = self.line;
        while lines.len() < max_rows && self.io_error.is_none() {
            p = self.skip_terms(p, &mut line);
            if p == self.buf.len() {
                break;
            }
            let end = self.core_record(&mut rdr, p, &mut bytes, &mut starts, &mut ends);
            let row_line = line;
            line += self.buf[p..end].iter().filter(|&&b| b == b'\n').count() as u64;
            p = end;
            let first = *rec.last().unwrap();
            let n = ends.len() - first;
            if n == 0 || (n == 1 && starts[first] == ends[first]) {
                // No record, or a blank one (`""` alone): not a row.
                starts.truncate(first);
                ends.truncate(first);
                continue;
            }
            rec.push(ends.len());
            lines.push(row_line);
        }
        let rows = Rows::Split {
            bytes,
            starts,
            ends,
            rec,
        };
        (rows, lines, p, line)
    }

    /// The next chunk in pieces (concatenated, they are the chunk), `None` at the end of the
    /// file.
    pub(crate) fn next_parts(&mut self, report: &mut ReadReport) -> Result<Option<Vec<RawLog>>> {
        if self.eof {
            return Ok(None);
        }
        // Consumed bytes are dropped once they are half the buffer, so that small chunks do not
        // move the rest of a large buffer each time.
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let (rows, lines, end, end_line) = self.scan(self.opts.chunk_rows.max(1));
        let lines = Arc::new(lines);
        let n = rows.len();
        if n == 0 {
            self.eof = true;
            return match self.io_error.take() {
                Some(e) => Err(e),
                None => Ok(None),
            };
        }
        let piece = if self.piece_rows > 0 {
            self.piece_rows
        } else {
            n.div_ceil(4 * rayon::current_num_threads())
                .max(MIN_PIECE_ROWS)
        };
        let ranges: Vec<Range<usize>> = (0..n)
            .step_by(piece)
            .map(|a| a..(a + piece).min(n))
            .collect();
        let ctx = Ctx {
            file: &self.file,
            schema: &self.schema,
            plan: &self.plan,
            n_fields: self.n_fields,
            delimiter: self.opts.csv_delimiter,
            buf: &self.buf,
            rows: &rows,
            lines: &lines,
        };
        // Buffers whose size is known before the rows are cut (value ends, numbers) are
        // allocated here, off the workers; a piece reserves its string bytes once it has cut its
        // cells and knows each column's size.
        // The cell tables are kept from chunk to chunk, as fresh ones cost page faults.
        let bufs: Vec<PieceBuf> = ranges
            .iter()
            .map(|r| ctx.piece_buf(r.clone(), self.tables.pop().unwrap_or_default()))
            .collect();
        let (parsed, tables): (Vec<Parsed>, Vec<_>) = ranges
            .into_par_iter()
            .zip(bufs)
            .map(|(r, b)| ctx.piece(r, b))
            .unzip();
        self.tables = tables;
        self.pos = end;
        self.line = end_line;
        let mut logs = Vec::with_capacity(parsed.len());
        for p in parsed {
            logs.push(finish(
                p,
                &self.file,
                &self.schema,
                &self.plan,
                &self.opts,
                report,
            )?);
        }
        if let Some(e) = self.io_error.take() {
            self.eof = true;
            return Err(e);
        }
        Ok(Some(logs))
    }
}

/// What a piece needs to turn rows into columns.
struct Ctx<'a> {
    file: &'a str,
    schema: &'a Schema,
    plan: &'a Plan,
    n_fields: usize,
    delimiter: u8,
    buf: &'a [u8],
    rows: &'a Rows,
    lines: &'a Arc<Vec<u64>>,
}

/// Room for the values of one piece, allocated before the parallel section.
struct PieceBuf {
    cells: Vec<(usize, usize)>,
    good: Vec<bool>,
    columns: Vec<RawColumn>,
    click: Vec<f32>,
    duration: Vec<f32>,
    time: Vec<i64>,
}

/// The cells of a piece: row `k`'s field `f` is `src[cells[k * width + f]]`.
struct Table<'a> {
    src: &'a [u8],
    /// `src` as text, when it is UTF-8 and the cells are cut at ASCII delimiters.
    text: Option<&'a str>,
    width: usize,
    cells: Vec<(usize, usize)>,
    /// Rows of the header's width; others read as empty cells.
    good: Vec<bool>,
}

impl<'a> Table<'a> {
    /// The total length of each field's cells (0 for rows of the wrong width): room for the
    /// columns' text. One pass in row order, as a pass per field strided over the table cost
    /// several times more.
    fn field_bytes(&self) -> Vec<usize> {
        let mut sums = vec![0; self.width];
        for row in self.cells.chunks_exact(self.width) {
            for (sum, &(s, e)) in sums.iter_mut().zip(row) {
                *sum += e - s;
            }
        }
        sums
    }

    fn cell(&self, k: usize, f: usize) -> Cell<'a> {
        if !self.good[k] {
            return Ok("");
        }
        let (s, e) = self.cells[k * self.width + f];
        match self.text {
            Some(t) => Ok(&t[s..e]),
            None => std::str::from_utf8(&self.src[s..e]).map_err(|_| &self.src[s..e]),
        }
    }
}

impl Ctx<'_> {
    /// The buffers of the piece of rows `range`, with room for all its values.
    fn piece_buf(&self, range: Range<usize>, (mut cells, mut good): TableBuf) -> PieceBuf {
        let n = range.len();
        let width = self.n_fields;
        // Each bag holds at most one token more than the separators' first bytes in the row.
        let mut bound = std::collections::HashMap::new();
        let columns = self
            .plan
            .features
            .iter()
            .map(|&(si, _)| {
                let spec = &self.schema.columns[si];
                match spec.kind {
                    Kind::Categorical => RawColumn::Categorical(StrColumn::with_capacity(n, 0)),
                    Kind::MultiHot => {
                        let first = spec.separator().as_bytes().first().copied();
                        let seps = *bound.entry(first).or_insert_with(|| match first {
                            Some(b) => memchr::memchr_iter(b, self.piece_bytes(&range)).count(),
                            None => 0,
                        });
                        let mut offsets = Vec::with_capacity(n + 1);
                        offsets.push(0);
                        RawColumn::MultiHot {
                            tokens: StrColumn::with_capacity(seps + n, 0),
                            offsets,
                        }
                    }
                    Kind::Dense => RawColumn::Dense(Vec::with_capacity(n)),
                }
            })
            .collect();
        let labels = |on: Option<usize>| Vec::with_capacity(if on.is_some() { n } else { 0 });
        cells.clear();
        cells.reserve(n * width);
        good.clear();
        good.reserve(n);
        PieceBuf {
            cells,
            good,
            columns,
            click: labels(self.plan.click),
            duration: labels(self.plan.duration),
            time: Vec::with_capacity(if self.plan.time.is_some() { n } else { 0 }),
        }
    }

    /// The bytes of rows `range` (unquoted ones for quoted rows).
    fn piece_bytes(&self, range: &Range<usize>) -> &[u8] {
        match self.rows {
            Rows::Plain(spans) => &self.buf[spans[range.start].start..spans[range.end - 1].end],
            Rows::Split {
                bytes,
                starts,
                ends,
                rec,
                ..
            } => {
                let (a, b) = (rec[range.start], rec[range.end]);
                if a == b {
                    &[]
                } else {
                    &bytes[starts[a]..ends[b - 1]]
                }
            }
        }
    }

    /// Cuts rows `range` of the chunk into cells.
    fn table(
        &self,
        range: Range<usize>,
        mut cells: Vec<(usize, usize)>,
        mut good: Vec<bool>,
    ) -> (Table<'_>, Vec<usize>) {
        let width = self.n_fields;
        let n = range.len();
        // (number of fields, row in piece) of rows of the wrong width.
        let mut widths = Vec::new();
        // Keeps row `k`'s cells (pushed from `before` on) when the row has the header's width,
        // else records the width and leaves empty cells.
        let mut settle = |cells: &mut Vec<(usize, usize)>, k: usize, before: usize| {
            let found = cells.len() - before;
            good.push(found == width);
            if found != width {
                cells.truncate(before);
                cells.resize(before + width, (0, 0));
                widths.push(found);
                widths.push(k);
            }
        };
        let d = self.delimiter;
        let table = match self.rows {
            Rows::Plain(spans) => {
                let spans = &spans[range];
                let whole = spans[0].start..spans[n - 1].end;
                let src = &self.buf[whole.clone()];
                for (k, span) in spans.iter().enumerate() {
                    let (a, b) = (span.start - whole.start, span.end - whole.start);
                    let before = cells.len();
                    let mut s = a;
                    for i in memchr::memchr_iter(d, &src[a..b]) {
                        cells.push((s, a + i));
                        s = a + i + 1;
                    }
                    cells.push((s, b));
                    settle(&mut cells, k, before);
                }
                let text = std::str::from_utf8(src).ok().filter(|_| d.is_ascii());
                Table {
                    src,
                    text,
                    width,
                    cells,
                    good,
                }
            }
            Rows::Split {
                bytes,
                starts,
                ends,
                rec,
            } => {
                for (k, r) in range.enumerate() {
                    let before = cells.len();
                    cells.extend((rec[r]..rec[r + 1]).map(|i| (starts[i], ends[i])));
                    settle(&mut cells, k, before);
                }
                Table {
                    src: bytes,
                    text: None,
                    width,
                    cells,
                    good,
                }
            }
        };
        (table, widths)
    }

    /// Parses rows `range` of the chunk, column after column.
    fn piece(&self, range: Range<usize>, buf: PieceBuf) -> (Parsed, TableBuf) {
        let n = range.len();
        let first = range.start;
        let lines = &self.lines[range.clone()];
        let PieceBuf {
            cells,
            good,
            columns: mut outs,
            mut click,
            mut duration,
            mut time,
        } = buf;
        let (table, widths) = self.table(range.clone(), cells, good);
        let mut errors = Vec::new();
        for w in widths.chunks(2) {
            let (found, k) = (w[0], w[1]);
            errors.push((
                k,
                0,
                DataError::FieldCount {
                    file: self.file.to_string(),
                    location: Location::Line(lines[k]),
                    expected: self.n_fields,
                    found,
                },
            ));
        }
        let bad = |k: usize, column: &str, expected: &str, cell: Cell| DataError::BadValue {
            file: self.file.to_string(),
            location: Location::Line(lines[k]),
            column: column.to_string(),
            expected: expected.to_string(),
            found: match cell {
                Ok(s) => show(s),
                Err(b) => show_bytes(b),
            },
        };
        let good = &table.good;
        // Numbers of every kind: parse, else record why (rows of the wrong width hold 0).
        let numbers = |out: &mut Vec<f32>,
                       errors: &mut Vec<(usize, usize, DataError)>,
                       fi: usize,
                       column: &str,
                       expected: &str,
                       parse: &dyn Fn(&str) -> Option<f32>| {
            out.extend((0..n).map(|k| {
                let c = table.cell(k, fi);
                match c.ok().and_then(parse) {
                    Some(x) => x,
                    None => {
                        if good[k] {
                            errors.push((k, fi, bad(k, column, expected, c)));
                        }
                        0.0
                    }
                }
            }))
        };
        let field_bytes = table.field_bytes();
        let mut columns = Vec::with_capacity(self.plan.features.len());
        for (&(si, fi), mut col) in self.plan.features.iter().zip(outs.drain(..)) {
            let spec = &self.schema.columns[si];
            match &mut col {
                RawColumn::Categorical(v) => {
                    v.reserve(0, field_bytes[fi]);
                    for k in 0..n {
                        match table.cell(k, fi) {
                            Ok(s) => v.push(s),
                            Err(b) => {
                                errors.push((k, fi, bad(k, &spec.name, EXPECT_TEXT, Err(b))));
                                v.push("");
                            }
                        }
                    }
                }
                RawColumn::MultiHot { tokens, offsets } => {
                    let sep = spec.separator();
                    // Tokens are the cells less their separators: the cells' size bounds them.
                    tokens.reserve(0, field_bytes[fi]);
                    for k in 0..n {
                        match table.cell(k, fi) {
                            Ok(s) => split_bag(s, sep).for_each(|t| tokens.push(t)),
                            Err(b) => errors.push((k, fi, bad(k, &spec.name, EXPECT_TEXT, Err(b)))),
                        }
                        offsets.push(tokens.len());
                    }
                }
                RawColumn::Dense(v) => {
                    numbers(v, &mut errors, fi, &spec.name, EXPECT_DENSE, &parse_dense)
                }
            }
            columns.push((spec.name.clone(), col));
        }
        let labels = &self.schema.labels;
        let click = self.plan.click.map(|fi| {
            numbers(
                &mut click,
                &mut errors,
                fi,
                &labels.click,
                EXPECT_CLICK,
                &|s| match s {
                    "0" => Some(0.0),
                    "1" => Some(1.0),
                    s => parse_click(s),
                },
            );
            click
        });
        let duration = self.plan.duration.map(|fi| {
            numbers(
                &mut duration,
                &mut errors,
                fi,
                &labels.duration,
                EXPECT_DURATION,
                &parse_duration,
            );
            duration
        });
        let time = self.plan.time.map(|fi| {
            let column = self.schema.time_column().unwrap_or_default();
            time.extend((0..n).map(|k| {
                let c = table.cell(k, fi);
                match c.ok().and_then(parse_time) {
                    Some(x) => x,
                    None => {
                        if good[k] {
                            errors.push((k, fi, bad(k, column, EXPECT_TIME, c)));
                        }
                        0
                    }
                }
            }));
            time
        });
        let lines = Arc::clone(self.lines);
        let parsed = Parsed {
            columns,
            click,
            duration,
            time,
            n_rows: n,
            errors,
            location: Box::new(move |r| Location::Line(lines[first + r])),
        };
        (parsed, (table.cells, table.good))
    }
}
