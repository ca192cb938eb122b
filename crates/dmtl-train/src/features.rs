//! Field embeddings: the input layer shared by the teacher and the student's towers.
//!
//! Every categorical and multi-hot feature column of the chosen sides gets an embedding table
//! of its own (`<prefix>.embedding.<column>`, one row per vocabulary entry, row 0 being the
//! out-of-vocabulary row); multi-hot bags are mean-pooled and dense columns pass through as one
//! column each. The pieces are concatenated in schema order.
//!
//! ```
//! use dmtl_data::{ColumnSpec, Dataset, FieldData, Kind, Schema, Side, Vocabularies, Vocabulary};
//! use dmtl_train::features::{FieldEmbeddingConfig, FieldEmbeddings};
//! use dmtl_tensor::{Graph, ParamStore};
//! use rand::SeedableRng;
//!
//! let schema = Schema::from_toml_str(r#"
//!     [labels]
//!     click = "click"
//!     duration = "duration"
//!     [ids]
//!     user = "user_id"
//!     item = "item_id"
//!     [[columns]]
//!     name = "user_id"
//!     side = "user"
//!     kind = "categorical"
//!     [[columns]]
//!     name = "item_id"
//!     side = "item"
//!     kind = "categorical"
//!     embedding_dim = 4
//! "#, "schema.toml").unwrap();
//! let vocabs = Vocabularies::from_vec(vec![
//!     Vocabulary::from_tokens("user_id", Kind::Categorical, vec!["u1".into(), "u2".into()]).unwrap(),
//!     Vocabulary::from_tokens("item_id", Kind::Categorical, vec!["i1".into()]).unwrap(),
//! ]);
//! let mut store = ParamStore::new();
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let cfg = FieldEmbeddingConfig::default();
//! // The item tower's input: item columns only.
//! let items = FieldEmbeddings::new(&mut store, "student.item", &schema, &vocabs, &[Side::Item], &cfg, &mut rng).unwrap();
//! assert_eq!(items.out_dim(), 4);
//! assert!(store.id("student.item.embedding.item_id").is_some());
//!
//! let fields = vec![FieldData::Ids(vec![1, 2, 0]), FieldData::Ids(vec![1, 0, 1])];
//! let g = Graph::new(&store);
//! let h = items.forward_fields(&g, &fields, 3);
//! assert_eq!(g.shape(h), (3, 4));
//! ```

use dmtl_data::{Dataset, FieldData, Kind, Schema, Side, Vocabularies};
use dmtl_tensor::{Graph, Init, ParamId, ParamStore, Pooling, Var};
use ndarray::Array2;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::InputError;

type Result<T> = std::result::Result<T, InputError>;

/// How the embedding tables are shaped and initialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FieldEmbeddingConfig {
    /// Embedding dimension of every field, overriding the schema's (per column or default).
    /// `None`: the schema decides.
    pub dim: Option<usize>,
    /// Standard deviation of the normal distribution the tables are drawn from.
    pub init_std: f32,
}

impl Default for FieldEmbeddingConfig {
    /// The schema's dimensions, tables drawn from `N(0, 0.05^2)` (as the PyTorch reference).
    fn default() -> Self {
        FieldEmbeddingConfig {
            dim: None,
            init_std: 0.05,
        }
    }
}

impl FieldEmbeddingConfig {
    /// The first out-of-range value, if any: its key as written in a model's configuration
    /// (`embedding.dim`, `embedding.init_std`) and what it must be.
    pub fn invalid_key(&self) -> Option<(&'static str, String)> {
        if self.dim == Some(0) {
            return Some(("embedding.dim", "must be at least 1".into()));
        }
        if !(self.init_std.is_finite() && self.init_std >= 0.0) {
            return Some((
                "embedding.init_std",
                format!("must be a finite number >= 0, got {}", self.init_std),
            ));
        }
        None
    }
}

/// One feature column as seen by [`FieldEmbeddings`].
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedField {
    /// Index of the column in the schema (and in `Dataset::fields` / `Batch::fields`).
    pub column: usize,
    /// The column's name.
    pub name: String,
    /// Categorical, multi-hot or dense.
    pub kind: Kind,
    /// The embedding table `(vocabulary, dim)`; `None` for a dense column.
    pub table: Option<ParamId>,
    /// Rows in the table (0 for a dense column).
    pub vocab: usize,
    /// Columns this field contributes to the output (1 for a dense column).
    pub dim: usize,
}

/// The embedding tables of the feature columns of some sides of a schema, and the forward pass
/// that concatenates them.
#[derive(Debug, Clone)]
pub struct FieldEmbeddings {
    fields: Vec<EmbeddedField>,
    n_columns: usize,
    out_dim: usize,
}

impl FieldEmbeddings {
    /// Registers one table `<prefix>.embedding.<column>` of shape
    /// `(vocabulary length, dim)` for every categorical and multi-hot column whose side is in
    /// `sides`, drawn from `N(0, cfg.init_std^2)`.
    ///
    /// Fails when a column has no vocabulary, a dimension is 0, `init_std` is not a finite
    /// non-negative number, or no column is on `sides`.
    pub fn new<R: Rng + ?Sized>(
        store: &mut ParamStore,
        prefix: &str,
        schema: &Schema,
        vocabs: &Vocabularies,
        sides: &[Side],
        cfg: &FieldEmbeddingConfig,
        rng: &mut R,
    ) -> Result<Self> {
        if let Some((key, message)) = cfg.invalid_key() {
            return Err(InputError::Config {
                origin: "<config>".into(),
                key: key.into(),
                message,
            });
        }
        let mut fields = Vec::new();
        for (column, spec) in schema.columns.iter().enumerate() {
            if !sides.contains(&spec.side) {
                continue;
            }
            let (table, vocab, dim) = match spec.kind {
                Kind::Dense => (None, 0, 1),
                Kind::Categorical | Kind::MultiHot => {
                    let vocab = vocabs.table_size(&spec.name).ok_or_else(|| {
                        InputError::Data(format!(
                            "column `{}` has no vocabulary (were the vocabularies built from this schema?)",
                            spec.name
                        ))
                    })?;
                    let dim = cfg.dim.unwrap_or_else(|| schema.embedding_dim(column));
                    if dim == 0 {
                        return Err(InputError::Data(format!(
                            "column `{}`: embedding_dim is 0",
                            spec.name
                        )));
                    }
                    let name = format!("{prefix}.embedding.{}", spec.name);
                    let id = store.embedding(&name, vocab, dim, Init::Normal(cfg.init_std), rng);
                    (Some(id), vocab, dim)
                }
            };
            fields.push(EmbeddedField {
                column,
                name: spec.name.clone(),
                kind: spec.kind,
                table,
                vocab,
                dim,
            });
        }
        if fields.is_empty() {
            let sides: Vec<&str> = sides.iter().map(|s| s.as_str()).collect();
            return Err(InputError::Data(format!(
                "the schema has no feature column on the sides {sides:?}"
            )));
        }
        let out_dim = fields.iter().map(|f| f.dim).sum();
        Ok(FieldEmbeddings {
            fields,
            n_columns: schema.columns.len(),
            out_dim,
        })
    }

    /// The fields, in schema order.
    pub fn fields(&self) -> &[EmbeddedField] {
        &self.fields
    }

    /// Width of the concatenated output: the sum of the fields' dimensions.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Checks that `fields` (one entry per schema column, `n_rows` rows each) can be fed to
    /// [`FieldEmbeddings::forward_fields`]: kinds match the schema, every id is inside its
    /// table and bag offsets are well formed. The error names the column and the row.
    pub fn check_fields(&self, fields: &[FieldData], n_rows: usize) -> Result<()> {
        if fields.len() != self.n_columns {
            return Err(InputError::Data(format!(
                "the data has {} feature columns, the schema {}",
                fields.len(),
                self.n_columns
            )));
        }
        for f in &self.fields {
            let err = |msg: String| Err(InputError::Data(format!("column `{}`: {msg}", f.name)));
            match (&fields[f.column], f.kind) {
                (FieldData::Ids(ids), Kind::Categorical) => {
                    if ids.len() != n_rows {
                        return err(format!("{} rows, expected {n_rows}", ids.len()));
                    }
                    if let Some(r) = ids.iter().position(|&i| i as usize >= f.vocab) {
                        return err(format!(
                            "row {r}: id {} is outside the table of {} rows (encoded with other vocabularies?)",
                            ids[r], f.vocab
                        ));
                    }
                }
                (FieldData::Bag { ids, offsets }, Kind::MultiHot) => {
                    let ok = offsets.len() == n_rows + 1
                        && offsets[0] == 0
                        && *offsets.last().unwrap() as usize == ids.len()
                        && offsets.windows(2).all(|w| w[0] <= w[1]);
                    if !ok {
                        return err(format!(
                            "bag offsets must rise from 0 to {} over {} entries",
                            ids.len(),
                            n_rows + 1
                        ));
                    }
                    if let Some(k) = ids.iter().position(|&i| i as usize >= f.vocab) {
                        let row = offsets.partition_point(|&o| o as usize <= k) - 1;
                        return err(format!(
                            "row {row}: id {} is outside the table of {} rows (encoded with other vocabularies?)",
                            ids[k], f.vocab
                        ));
                    }
                }
                (FieldData::Dense(v), Kind::Dense) => {
                    if v.len() != n_rows {
                        return err(format!("{} rows, expected {n_rows}", v.len()));
                    }
                    if let Some(r) = v.iter().position(|x| !x.is_finite()) {
                        return err(format!("row {r}: value {} is not finite", v[r]));
                    }
                }
                (_, kind) => return err(format!("the data does not hold {kind} values")),
            }
        }
        Ok(())
    }

    /// [`FieldEmbeddings::check_fields`] over a whole dataset.
    pub fn check_dataset(&self, data: &Dataset) -> Result<()> {
        self.check_fields(&data.fields, data.n_rows)
    }

    /// The concatenated field embeddings of a batch.
    ///
    /// # Shapes
    /// `batch.fields` hold `n = batch.n_rows` rows -> `(n, out_dim)`.
    ///
    /// # Panics
    /// When the batch does not pass [`FieldEmbeddings::check_fields`].
    pub fn forward(&self, g: &Graph<'_>, batch: &dmtl_data::Batch) -> Var {
        self.forward_fields(g, &batch.fields, batch.n_rows)
    }

    /// The concatenated field embeddings of `n_rows` rows given column by column (one entry
    /// per schema column; columns of other sides are ignored).
    ///
    /// # Shapes
    /// -> `(n_rows, out_dim)`: the fields' blocks side by side in schema order; a categorical
    /// field is its table's row, a multi-hot field the mean of its bag's rows (zeros for an
    /// empty bag), a dense field its value.
    ///
    /// # Panics
    /// When the fields do not pass [`FieldEmbeddings::check_fields`].
    pub fn forward_fields(&self, g: &Graph<'_>, fields: &[FieldData], n_rows: usize) -> Var {
        let parts: Vec<Var> = self
            .fields
            .iter()
            .map(|f| match (&fields[f.column], f.table) {
                (FieldData::Ids(ids), Some(t)) => g.embedding(t, ids),
                (FieldData::Bag { ids, offsets }, Some(t)) => {
                    g.embedding_bag(t, ids, offsets, Pooling::Mean)
                }
                (FieldData::Dense(v), None) => g.input(
                    Array2::from_shape_vec((n_rows, 1), v.clone()).unwrap_or_else(|_| {
                        panic!("column `{}`: {} values for {n_rows} rows", f.name, v.len())
                    }),
                ),
                _ => panic!(
                    "column `{}`: the data does not hold {} values",
                    f.name, f.kind
                ),
            })
            .collect();
        if parts.len() == 1 {
            parts[0]
        } else {
            g.concat_cols(&parts)
        }
    }
}
