//! The raw, columnar form of an impression log: what the CSV and Parquet readers produce and the
//! simulator emits, before vocabularies turn strings into embedding-table indices.

/// One raw feature column, as read from a log.
#[derive(Debug, Clone, PartialEq)]
pub enum RawColumn {
    /// Categorical ids, one string per row (ids are strings even when they look numeric).
    Categorical(Vec<String>),
    /// Multi-hot bags: every row's tokens flattened into `tokens`; row `r` owns
    /// `tokens[offsets[r]..offsets[r + 1]]`. `offsets.len() == n_rows + 1`. A bag may be empty.
    MultiHot {
        /// All tokens, row after row.
        tokens: Vec<String>,
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
