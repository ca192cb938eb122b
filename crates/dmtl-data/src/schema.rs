//! The schema of an impression log: which columns are features (their side and kind), which are
//! the labels, which identify users and items, how to split train and test, and vocabulary options.
//!
//! The file format is TOML:
//!
//! ```toml
//! long_read_threshold = 50.0      # seconds, default 50, must be >= 0
//! [labels]
//! click = "click"
//! duration = "duration"
//! [ids]
//! user = "user_id"
//! item = "item_id"
//! [split]                         # optional
//! time_column = "day"             # an integer column, not a feature
//! test_from = 25                  # rows with day >= 25 form the test set
//! # test_fraction = 0.2           # alternatively: a seeded random split by row
//! [defaults]                      # optional
//! embedding_dim = 16
//! [[columns]]
//! name = "user_id"
//! side = "user"                   # user | item | context
//! kind = "categorical"            # categorical | multi_hot | dense
//! [[columns]]
//! name = "item_id"
//! side = "item"
//! kind = "categorical"
//! hash_buckets = 1000             # optional: hash instead of a vocabulary
//! [[columns]]
//! name = "item_tags"
//! side = "item"
//! kind = "multi_hot"
//! separator = "|"                 # multi_hot only, default "|"
//! min_count = 2                   # rarer tokens map to the out-of-vocabulary index
//! max_size = 5000                 # keep the most frequent tokens only
//! ```
//!
//! ```
//! # let text = r#"
//! # [labels]
//! # click = "click"
//! # duration = "duration"
//! # [ids]
//! # user = "user_id"
//! # item = "item_id"
//! # [[columns]]
//! # name = "user_id"
//! # side = "user"
//! # kind = "categorical"
//! # [[columns]]
//! # name = "item_id"
//! # side = "item"
//! # kind = "categorical"
//! # "#;
//! use dmtl_data::{Schema, Side};
//! let schema = Schema::from_toml_str(text, "inline").unwrap();
//! assert_eq!(schema.long_read_threshold, 50.0);
//! assert_eq!(schema.column_index("item_id"), Some(1));
//! assert_eq!(schema.features(Side::User).count(), 1);
//! ```

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// Which tower a feature column feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// A property of the user (user tower).
    User,
    /// A property of the item (item tower).
    Item,
    /// A property of the request, e.g. hour or network (user tower in a two-tower model).
    Context,
}

impl Side {
    /// The name used in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::User => "user",
            Side::Item => "item",
            Side::Context => "context",
        }
    }

    fn parse(s: &str) -> Option<Side> {
        match s {
            "user" => Some(Side::User),
            "item" => Some(Side::Item),
            "context" => Some(Side::Context),
            _ => None,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a feature column's values are represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One id per row (looked up in an embedding table).
    Categorical,
    /// A bag of ids per row, written as one cell joined by a separator (or a list in Parquet).
    MultiHot,
    /// One number per row.
    Dense,
}

impl Kind {
    /// The name used in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Categorical => "categorical",
            Kind::MultiHot => "multi_hot",
            Kind::Dense => "dense",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        match s {
            "categorical" => Some(Kind::Categorical),
            "multi_hot" => Some(Kind::MultiHot),
            "dense" => Some(Kind::Dense),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The default long-read threshold in seconds (about the mean reading time in the paper).
pub const DEFAULT_LONG_READ_THRESHOLD: f32 = 50.0;
/// The default embedding dimension of a field.
pub const DEFAULT_EMBEDDING_DIM: usize = 16;
/// The default separator of multi-hot cells.
pub const DEFAULT_SEPARATOR: &str = "|";

/// Names of the label columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelColumns {
    /// The click column (0 or 1).
    pub click: String,
    /// The reading-duration column (seconds, 0 without a click).
    pub duration: String,
}

/// Names of the feature columns that identify users and items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdColumns {
    /// A categorical user-side feature: GAUC groups, retrieval and vector export use it.
    pub user: String,
    /// A categorical item-side feature: the item corpus is keyed by it.
    pub item: String,
}

/// How to split a log into training and test rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// An integer column (not a feature) holding each row's time, e.g. a day number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<String>,
    /// With `time_column`: rows with time >= `test_from` form the test set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_from: Option<i64>,
    /// Without `time_column`: the share of rows (0 < f < 1) drawn at random (seeded) for test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_fraction: Option<f64>,
}

/// Settings that apply to every column unless the column overrides them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Embedding dimension of each field.
    #[serde(default = "default_embedding_dim")]
    pub embedding_dim: usize,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            embedding_dim: DEFAULT_EMBEDDING_DIM,
        }
    }
}

fn default_embedding_dim() -> usize {
    DEFAULT_EMBEDDING_DIM
}

fn default_threshold() -> f32 {
    DEFAULT_LONG_READ_THRESHOLD
}

/// One feature column of the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Column name in the file.
    pub name: String,
    /// Which tower it feeds.
    pub side: Side,
    /// How its values are represented.
    pub kind: Kind,
    /// Token separator of a multi-hot cell (multi-hot only; `None` means `"|"`).
    pub separator: Option<String>,
    /// Embedding dimension, overriding `[defaults]`.
    pub embedding_dim: Option<usize>,
    /// Tokens seen fewer times than this in training map to the OOV index.
    pub min_count: Option<u64>,
    /// Keep only the `max_size` most frequent tokens.
    pub max_size: Option<usize>,
    /// When > 0, hash tokens into this many buckets instead of building a vocabulary.
    pub hash_buckets: Option<u64>,
}

impl ColumnSpec {
    /// A column with no options set.
    pub fn new(name: impl Into<String>, side: Side, kind: Kind) -> Self {
        ColumnSpec {
            name: name.into(),
            side,
            kind,
            separator: None,
            embedding_dim: None,
            min_count: None,
            max_size: None,
            hash_buckets: None,
        }
    }

    /// The multi-hot separator in effect (`"|"` unless set).
    pub fn separator(&self) -> &str {
        self.separator.as_deref().unwrap_or(DEFAULT_SEPARATOR)
    }

    /// The number of hash buckets when hashing is on (`hash_buckets > 0`).
    pub fn hashing(&self) -> Option<u64> {
        self.hash_buckets.filter(|&b| b > 0)
    }
}

/// A validated schema. Build it with [`Schema::load`] or [`Schema::from_toml_str`]; it also
/// (de)serializes with serde in the file format, so it can be embedded in a larger config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SchemaFile", into = "SchemaFile")]
pub struct Schema {
    /// A clicked impression with duration strictly above this many seconds is a long read.
    pub long_read_threshold: f32,
    /// The label columns.
    pub labels: LabelColumns,
    /// The user and item id columns.
    pub ids: IdColumns,
    /// The train/test split, if configured.
    pub split: Option<SplitSpec>,
    /// Defaults for every column.
    pub defaults: Defaults,
    /// Feature columns, in order; this order is the order of fields everywhere downstream.
    pub columns: Vec<ColumnSpec>,
}

/// The file form: side and kind as strings so that a bad value gets an error naming its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    #[serde(default = "default_threshold")]
    long_read_threshold: f32,
    labels: LabelColumns,
    ids: IdColumns,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    split: Option<SplitSpec>,
    #[serde(default)]
    defaults: Defaults,
    columns: Vec<ColumnFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    name: String,
    side: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    separator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    embedding_dim: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash_buckets: Option<u64>,
}

impl TryFrom<SchemaFile> for Schema {
    type Error = DataError;
    fn try_from(file: SchemaFile) -> Result<Schema> {
        Schema::from_file_form(file, "<serde>")
    }
}

impl From<Schema> for SchemaFile {
    fn from(s: Schema) -> SchemaFile {
        SchemaFile {
            long_read_threshold: s.long_read_threshold,
            labels: s.labels,
            ids: s.ids,
            split: s.split,
            defaults: s.defaults,
            columns: s
                .columns
                .into_iter()
                .map(|c| ColumnFile {
                    name: c.name,
                    side: c.side.as_str().to_string(),
                    kind: c.kind.as_str().to_string(),
                    separator: c.separator,
                    embedding_dim: c.embedding_dim,
                    min_count: c.min_count,
                    max_size: c.max_size,
                    hash_buckets: c.hash_buckets,
                })
                .collect(),
        }
    }
}

impl Schema {
    /// Reads and validates a schema file.
    pub fn load(path: impl AsRef<Path>) -> Result<Schema> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Schema::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates schema text; `origin` (a file name, say) prefixes every error.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Schema> {
        let file: SchemaFile = toml::from_str(text).map_err(|e| DataError::SchemaSyntax {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Schema::from_file_form(file, origin)
    }

    fn from_file_form(file: SchemaFile, origin: &str) -> Result<Schema> {
        let err = |key: String, message: String| DataError::Schema {
            origin: origin.to_string(),
            key,
            message,
        };
        let mut columns = Vec::with_capacity(file.columns.len());
        for (i, c) in file.columns.into_iter().enumerate() {
            let side = Side::parse(&c.side).ok_or_else(|| {
                err(
                    format!("columns[{i}].side"),
                    format!(
                        "unknown side {:?} of column {:?}; expected one of user, item, context",
                        c.side, c.name
                    ),
                )
            })?;
            let kind = Kind::parse(&c.kind).ok_or_else(|| {
                err(
                    format!("columns[{i}].kind"),
                    format!(
                        "unknown kind {:?} of column {:?}; expected one of categorical, multi_hot, dense",
                        c.kind, c.name
                    ),
                )
            })?;
            columns.push(ColumnSpec {
                name: c.name,
                side,
                kind,
                separator: c.separator,
                embedding_dim: c.embedding_dim,
                min_count: c.min_count,
                max_size: c.max_size,
                hash_buckets: c.hash_buckets,
            });
        }
        let schema = Schema {
            long_read_threshold: file.long_read_threshold,
            labels: file.labels,
            ids: file.ids,
            split: file.split,
            defaults: file.defaults,
            columns,
        };
        schema.validate(origin)?;
        Ok(schema)
    }

    /// Checks every rule of the format; `origin` prefixes the error. [`Schema::load`] and
    /// [`Schema::from_toml_str`] call it; call it yourself after editing a schema in code.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let err = |key: &str, message: String| {
            Err(DataError::Schema {
                origin: origin.to_string(),
                key: key.to_string(),
                message,
            })
        };
        let t = self.long_read_threshold;
        if !t.is_finite() || t < 0.0 {
            return err(
                "long_read_threshold",
                format!("expected a finite number of seconds >= 0, found {t}"),
            );
        }
        if self.defaults.embedding_dim == 0 {
            return err(
                "defaults.embedding_dim",
                "expected a dimension >= 1, found 0".into(),
            );
        }
        if self.columns.is_empty() {
            return err("columns", "expected at least one [[columns]] entry".into());
        }
        if self.labels.click.is_empty() {
            return err(
                "labels.click",
                "expected a column name, found an empty string".into(),
            );
        }
        if self.labels.duration.is_empty() {
            return err(
                "labels.duration",
                "expected a column name, found an empty string".into(),
            );
        }
        if self.labels.click == self.labels.duration {
            return err(
                "labels.duration",
                format!(
                    "the same column {:?} cannot be both click and duration",
                    self.labels.click
                ),
            );
        }
        let mut seen = HashSet::new();
        for (i, c) in self.columns.iter().enumerate() {
            let key = |k: &str| format!("columns[{i}].{k}");
            if c.name.is_empty() {
                return err(
                    &key("name"),
                    "expected a column name, found an empty string".into(),
                );
            }
            if !seen.insert(c.name.as_str()) {
                return err(
                    &key("name"),
                    format!(
                        "duplicate column {:?}: each column may be listed once",
                        c.name
                    ),
                );
            }
            if c.name == self.labels.click || c.name == self.labels.duration {
                return err(
                    &key("name"),
                    format!(
                        "column {:?} is a label and cannot also be a feature (it would leak the label)",
                        c.name
                    ),
                );
            }
            if let Some(tc) = self.split.as_ref().and_then(|s| s.time_column.as_ref()) {
                if &c.name == tc {
                    return err(
                        &key("name"),
                        format!(
                            "column {:?} is the split's time column and cannot also be a feature",
                            c.name
                        ),
                    );
                }
            }
            if let Some(sep) = &c.separator {
                if c.kind != Kind::MultiHot {
                    return err(
                        &key("separator"),
                        format!(
                            "column {:?} is {}, only multi_hot columns take a separator",
                            c.name, c.kind
                        ),
                    );
                }
                if sep.is_empty() {
                    return err(&key("separator"), "expected a non-empty separator".into());
                }
            }
            if c.embedding_dim == Some(0) {
                return err(
                    &key("embedding_dim"),
                    "expected a dimension >= 1, found 0".into(),
                );
            }
            if c.kind == Kind::Dense {
                for (k, set) in [
                    ("min_count", c.min_count.is_some()),
                    ("max_size", c.max_size.is_some()),
                    ("hash_buckets", c.hash_buckets.is_some()),
                ] {
                    if set {
                        return err(
                            &key(k),
                            format!(
                                "column {:?} is dense and has no vocabulary to configure",
                                c.name
                            ),
                        );
                    }
                }
            }
            if c.max_size == Some(0) {
                return err(
                    &key("max_size"),
                    "expected at least 1 token, found 0".into(),
                );
            }
            if c.hashing().is_some() {
                if c.min_count.is_some() {
                    return err(
                        &key("min_count"),
                        format!(
                            "column {:?} is hashed (hash_buckets > 0), min_count would be ignored",
                            c.name
                        ),
                    );
                }
                if c.max_size.is_some() {
                    return err(
                        &key("max_size"),
                        format!(
                            "column {:?} is hashed (hash_buckets > 0), max_size would be ignored",
                            c.name
                        ),
                    );
                }
                if c.hash_buckets.unwrap() > u32::MAX as u64 - 1 {
                    return err(
                        &key("hash_buckets"),
                        "expected fewer than 2^32 - 1 buckets".into(),
                    );
                }
            }
        }
        for (key, name, side) in [
            ("ids.user", &self.ids.user, Side::User),
            ("ids.item", &self.ids.item, Side::Item),
        ] {
            match self.column(name) {
                None => {
                    return err(
                        key,
                        format!(
                        "{name:?} is not a feature column; expected a categorical {side} column"
                    ),
                    )
                }
                Some(c) if c.kind != Kind::Categorical || c.side != side => {
                    return err(
                        key,
                        format!(
                            "{name:?} is a {} {} column; expected a categorical {side} column",
                            c.kind, c.side
                        ),
                    )
                }
                Some(_) => {}
            }
        }
        if let Some(split) = &self.split {
            match (&split.time_column, split.test_from, split.test_fraction) {
                (Some(tc), Some(_), None) => {
                    if tc.is_empty() {
                        return err("split.time_column", "expected a column name, found an empty string".into());
                    }
                    if tc == &self.labels.click || tc == &self.labels.duration {
                        return err("split.time_column", format!("{tc:?} is a label column"));
                    }
                }
                (Some(_), None, _) => {
                    return err("split.test_from", "a time_column split needs test_from (rows with time >= test_from are the test set)".into())
                }
                (Some(_), Some(_), Some(_)) => {
                    return err("split.test_fraction", "give either time_column + test_from or test_fraction, not both".into())
                }
                (None, Some(_), _) => {
                    return err("split.time_column", "test_from needs a time_column".into())
                }
                (None, None, Some(f)) => {
                    if !(f > 0.0 && f < 1.0) {
                        return err("split.test_fraction", format!("expected a fraction strictly between 0 and 1, found {f}"));
                    }
                }
                (None, None, None) => {
                    return err("split", "expected time_column + test_from, or test_fraction".into())
                }
            }
        }
        Ok(())
    }

    /// The schema in its TOML file form (parses back to an equal schema).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(&SchemaFile::from(self.clone()))
            .expect("a schema always serializes to TOML")
    }

    /// Writes the schema as TOML, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::atomic::write_atomic(path.as_ref(), |w| {
            use std::io::Write;
            w.write_all(self.to_toml_string().as_bytes())
        })
    }

    /// Index of the feature column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The feature column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Feature columns of one side, in schema order.
    pub fn features(&self, side: Side) -> impl Iterator<Item = &ColumnSpec> + '_ {
        self.columns.iter().filter(move |c| c.side == side)
    }

    /// Indices (into `columns`) of the feature columns of one side, in schema order.
    pub fn feature_indices(&self, side: Side) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|&i| self.columns[i].side == side)
            .collect()
    }

    /// Embedding dimension of column `index` (its own, else the default).
    ///
    /// # Panics
    /// When `index >= columns.len()`.
    pub fn embedding_dim(&self, index: usize) -> usize {
        self.columns[index]
            .embedding_dim
            .unwrap_or(self.defaults.embedding_dim)
    }

    /// Index of the user id column.
    pub fn user_column(&self) -> usize {
        self.column_index(&self.ids.user)
            .expect("a validated schema has its user id column")
    }

    /// Index of the item id column.
    pub fn item_column(&self) -> usize {
        self.column_index(&self.ids.item)
            .expect("a validated schema has its item id column")
    }

    /// The split's time column, if the schema has a time split.
    pub fn time_column(&self) -> Option<&str> {
        self.split.as_ref().and_then(|s| s.time_column.as_deref())
    }
}
