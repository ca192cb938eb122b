//! The one error type of the crate. Every variant that comes from a file names the file, and a
//! bad value also names where in the file (line or row) and which column, and what was expected.

use std::fmt;
use std::path::PathBuf;

/// Where in a file a bad value sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A CSV line, counting the header as line 1.
    Line(u64),
    /// A Parquet (or in-memory) data row, counting the first data row as row 1.
    Row(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// Everything that can go wrong while loading, checking, splitting or encoding a log.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened, read, written or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A schema file is not valid TOML or does not have the expected shape.
    #[error("schema {origin}: {message}")]
    SchemaSyntax {
        /// File (or other origin) of the schema text.
        origin: String,
        /// What the TOML parser reported (it includes the line).
        message: String,
    },
    /// A schema parses but says something invalid.
    #[error("schema {origin}: `{key}`: {message}")]
    Schema {
        /// File (or other origin) of the schema text.
        origin: String,
        /// The offending key, e.g. `columns[3].side` or `ids.user`.
        key: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The file has no header, no rows, or no rows left after skipping bad ones.
    #[error("{file}: {message}")]
    Empty {
        /// The file concerned.
        file: String,
        /// What is missing.
        message: String,
    },
    /// A column the schema names is not in the file.
    #[error(
        "{file}: column `{column}` named by the schema is missing (the file has: {available})"
    )]
    MissingColumn {
        /// The file concerned.
        file: String,
        /// The missing column.
        column: String,
        /// The columns the file does have, comma separated.
        available: String,
    },
    /// A CSV row with a different number of fields from the header.
    #[error("{file}: {location}: expected {expected} fields (as in the header), found {found}")]
    FieldCount {
        /// The file concerned.
        file: String,
        /// Where the row is.
        location: Location,
        /// Number of header fields.
        expected: usize,
        /// Number of fields on the row.
        found: usize,
    },
    /// A value that does not fit its column.
    #[error("{file}: {location}, column `{column}`: expected {expected}, found {found}")]
    BadValue {
        /// The file concerned.
        file: String,
        /// Where the value is.
        location: Location,
        /// The column.
        column: String,
        /// What a valid value looks like.
        expected: String,
        /// The offending value (quoted) or a description of it.
        found: String,
    },
    /// A column has a type the reader cannot turn into the schema's kind.
    #[error("{file}: column `{column}`: expected {expected}, found {found}")]
    ColumnType {
        /// The file concerned.
        file: String,
        /// The column.
        column: String,
        /// The accepted types.
        expected: String,
        /// The type found.
        found: String,
    },
    /// The CSV parser itself failed (e.g. invalid quoting).
    #[error("{file}: {location}: {message}")]
    Csv {
        /// The file concerned.
        file: String,
        /// Where the parser stopped.
        location: Location,
        /// The parser's message.
        message: String,
    },
    /// The Parquet or Arrow layer failed (not a Parquet file, corrupt page, ...).
    #[error("{file}: {message}")]
    Parquet {
        /// The file concerned.
        file: String,
        /// The underlying message.
        message: String,
    },
    /// A vocabulary file does not match the schema, or cannot be parsed.
    #[error("vocabulary {origin}: {message}")]
    Vocab {
        /// File (or other origin) of the vocabularies.
        origin: String,
        /// What does not match.
        message: String,
    },
    /// The train/test split cannot be made as configured.
    #[error("{source_name}: split `{key}`: {message}")]
    Split {
        /// The log being split.
        source_name: String,
        /// The schema key of the split setting, e.g. `split.test_from`.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// An in-memory log does not fit the schema or a writer cannot represent a value.
    #[error("{source_name}: {message}")]
    Invalid {
        /// The log concerned (its `RawLog::source`).
        source_name: String,
        /// What is wrong.
        message: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(source_name: &str, message: impl Into<String>) -> Self {
        DataError::Invalid {
            source_name: source_name.to_string(),
            message: message.into(),
        }
    }
}
