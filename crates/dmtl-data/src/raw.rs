//! The raw, columnar form of an impression log: what the CSV and Parquet readers produce and the
//! simulator emits, before vocabularies turn strings into embedding-table indices.
//!
//! String columns are [`StrColumn`]s: each column's values sit back to back in one buffer, so a
//! log of millions of ids and tags costs a few allocations rather than one per value.

pub use crate::strings::{Iter as StrIter, StrColumn};

/// One raw feature column, as read from a log.
#[derive(Debug, Clone, PartialEq)]
pub enum RawColumn {
    /// Categorical ids, one string per row (ids are strings even when they look numeric).
    Categorical(StrColumn),
    /// Multi-hot bags: every row's tokens flattened into `tokens`; row `r` owns
    /// `tokens[offsets[r]..offsets[r + 1]]`. `offsets.len() == n_rows + 1`. A bag may be empty.
    MultiHot {
        /// All tokens, row after row.
        tokens: StrColumn,
        /// Row boundaries into `tokens`, starting at 0.
        offsets: Vec<usize>,
    },
    /// Dense numbers, one per row.
    Dense(Vec<f32>),
}

impl RawColumn {
    /// Number of rows this column holds.
    pub fn len(&self) -> usize {
        match self {
            RawColumn::Categorical(v) => v.len(),
            RawColumn::MultiHot { offsets, .. } => offsets.len().saturating_sub(1),
            RawColumn::Dense(v) => v.len(),
        }
    }

    /// True when the column holds no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A raw impression log (or a part of one): feature columns plus labels, column-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawLog {
    /// Where the rows came from (a file path or `"simulator"`), used in error messages.
    pub source: String,
    /// Feature columns by name, in schema order; a table of one side (an item catalogue, say)
    /// holds only that side's columns.
    pub columns: Vec<(String, RawColumn)>,
    /// Click labels (0.0 or 1.0), when the table carries labels.
    pub click: Option<Vec<f32>>,
    /// Reading duration in seconds (0 without a click), when the table carries labels.
    pub duration: Option<Vec<f32>>,
    /// The time column, when the schema names one.
    pub time: Option<Vec<i64>>,
    /// Number of rows.
    pub n_rows: usize,
}

impl RawLog {
    /// The column called `name`, if present.
    pub fn column(&self, name: &str) -> Option<&RawColumn> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }
}

impl RawColumn {
    /// The kind of column this is.
    pub fn kind(&self) -> crate::schema::Kind {
        match self {
            RawColumn::Categorical(_) => crate::schema::Kind::Categorical,
            RawColumn::MultiHot { .. } => crate::schema::Kind::MultiHot,
            RawColumn::Dense(_) => crate::schema::Kind::Dense,
        }
    }

    /// An empty column of the given kind.
    pub fn empty(kind: crate::schema::Kind) -> RawColumn {
        match kind {
            crate::schema::Kind::Categorical => RawColumn::Categorical(StrColumn::new()),
            crate::schema::Kind::MultiHot => RawColumn::MultiHot {
                tokens: StrColumn::new(),
                offsets: vec![0],
            },
            crate::schema::Kind::Dense => RawColumn::Dense(Vec::new()),
        }
    }

    /// The rows `rows` of this column, in that order (a row may repeat).
    ///
    /// # Panics
    /// When a row index is out of range.
    pub fn take(&self, rows: &[usize]) -> RawColumn {
        match self {
            RawColumn::Categorical(v) => RawColumn::Categorical(v.take(rows)),
            RawColumn::Dense(v) => RawColumn::Dense(rows.iter().map(|&r| v[r]).collect()),
            RawColumn::MultiHot { tokens, offsets } => {
                // The kept tokens are gathered by index, so that their bytes are copied once
                // into a buffer of the final size.
                let mut o = Vec::with_capacity(rows.len() + 1);
                o.push(0);
                let mut picked = Vec::new();
                for &r in rows {
                    picked.extend(offsets[r]..offsets[r + 1]);
                    o.push(picked.len());
                }
                let t = tokens.take(&picked);
                RawColumn::MultiHot {
                    tokens: t,
                    offsets: o,
                }
            }
        }
    }

    /// Appends the rows of `other` (of the same kind) after this column's rows.
    ///
    /// # Panics
    /// When the kinds differ.
    pub fn append(&mut self, other: RawColumn) {
        match (self, other) {
            (RawColumn::Categorical(a), RawColumn::Categorical(b)) => a.append(&b),
            (RawColumn::Dense(a), RawColumn::Dense(b)) => a.extend(b),
            (
                RawColumn::MultiHot { tokens, offsets },
                RawColumn::MultiHot {
                    tokens: t2,
                    offsets: o2,
                },
            ) => {
                let base = tokens.len();
                let start = o2.first().copied().unwrap_or(0);
                tokens.append(&t2);
                offsets.extend(o2.iter().skip(1).map(|&o| o - start + base));
            }
            (a, b) => panic!(
                "cannot append a {} column to a {} column",
                b.kind(),
                a.kind()
            ),
        }
    }

    /// The tokens of row `row` of a multi-hot column, or the one id of a categorical column,
    /// borrowed from the column.
    ///
    /// # Panics
    /// On a dense column or an out-of-range row.
    pub fn tokens_of_row(&self, row: usize) -> StrIter<'_> {
        match self {
            RawColumn::Categorical(v) => v.range(row..row + 1),
            RawColumn::MultiHot { tokens, offsets } => tokens.range(offsets[row]..offsets[row + 1]),
            RawColumn::Dense(_) => panic!("a dense column has no tokens"),
        }
    }
}

impl RawLog {
    /// True when the log carries click and duration labels.
    pub fn has_labels(&self) -> bool {
        self.click.is_some() && self.duration.is_some()
    }

    /// The rows `rows`, in that order, as a new log with the same columns and source.
    ///
    /// # Panics
    /// When a row index is `>= n_rows`.
    pub fn take(&self, rows: &[usize]) -> RawLog {
        use rayon::prelude::*;
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.n_rows) {
            panic!("row {bad} out of range for a log of {} rows", self.n_rows);
        }
        let gather =
            |v: &Option<Vec<f32>>| v.as_ref().map(|v| rows.iter().map(|&r| v[r]).collect());
        RawLog {
            source: self.source.clone(),
            columns: self
                .columns
                .par_iter()
                .map(|(n, c)| (n.clone(), c.take(rows)))
                .collect(),
            click: gather(&self.click),
            duration: gather(&self.duration),
            time: self
                .time
                .as_ref()
                .map(|t| rows.iter().map(|&r| t[r]).collect()),
            n_rows: rows.len(),
        }
    }

    /// Appends the rows of `other`, which must have the same columns (names, kinds, order) and
    /// the same optional parts (labels, time).
    pub fn append(&mut self, other: RawLog) -> Result<(), crate::error::DataError> {
        let same_columns = self.columns.len() == other.columns.len()
            && self
                .columns
                .iter()
                .zip(&other.columns)
                .all(|((a, ca), (b, cb))| a == b && ca.kind() == cb.kind());
        if !same_columns
            || self.click.is_some() != other.click.is_some()
            || self.duration.is_some() != other.duration.is_some()
            || self.time.is_some() != other.time.is_some()
        {
            return Err(crate::error::DataError::invalid(
                &self.source,
                format!(
                    "cannot append rows of `{}`: its columns differ",
                    other.source
                ),
            ));
        }
        for ((_, a), (_, b)) in self.columns.iter_mut().zip(other.columns) {
            a.append(b);
        }
        if let (Some(a), Some(b)) = (&mut self.click, other.click) {
            a.extend(b);
        }
        if let (Some(a), Some(b)) = (&mut self.duration, other.duration) {
            a.extend(b);
        }
        if let (Some(a), Some(b)) = (&mut self.time, other.time) {
            a.extend(b);
        }
        self.n_rows += other.n_rows;
        Ok(())
    }

    /// Checks that every part has `n_rows` rows and multi-hot offsets are well formed.
    pub fn check_lengths(&self) -> Result<(), crate::error::DataError> {
        let bad = |what: &str, len: usize| {
            Err(crate::error::DataError::invalid(
                &self.source,
                format!("{what} has {len} rows, the log has {}", self.n_rows),
            ))
        };
        for (name, c) in &self.columns {
            if let RawColumn::MultiHot { tokens, offsets } = c {
                let ok = offsets.first() == Some(&0)
                    && offsets.windows(2).all(|w| w[0] <= w[1])
                    && offsets.last() == Some(&tokens.len());
                if !ok {
                    return Err(crate::error::DataError::invalid(
                        &self.source,
                        format!("column `{name}`: multi-hot offsets must start at 0, never decrease and end at the token count"),
                    ));
                }
            }
            if c.len() != self.n_rows {
                return bad(&format!("column `{name}`"), c.len());
            }
        }
        for (what, v) in [("click", &self.click), ("duration", &self.duration)] {
            if let Some(v) = v {
                if v.len() != self.n_rows {
                    return bad(what, v.len());
                }
            }
        }
        if let Some(t) = &self.time {
            if t.len() != self.n_rows {
                return bad("time", t.len());
            }
        }
        Ok(())
    }
}
