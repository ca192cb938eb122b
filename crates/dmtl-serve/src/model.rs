//! A served model: one two-tower student of a run folder, its schema and vocabularies, and the
//! run's item corpus encoded once into an exact index.
//!
//! Loading reads the run folder as `dmtl retrieve` does (`schema.toml`, `vocab.json`,
//! `models/<name>/`, `items.parquet`) and computes the item vectors with
//! [`Student::item_vectors`] over every corpus row, so a search here returns what `dmtl
//! retrieve` returns.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dmtl_data::{read_log, Dataset, RawColumn, ReadOptions, Schema, Side, Vocabularies};
use dmtl_student::retrieval::{ExactIndex, RetrievalError};
use dmtl_student::{Precision, Student, StudentError};

/// The schema file of a run folder.
pub const SCHEMA_FILE: &str = "schema.toml";
/// The vocabularies of a run folder.
pub const VOCAB_FILE: &str = "vocab.json";
/// The item corpus of a run folder.
pub const ITEMS_FILE: &str = "items.parquet";
/// The folder of the two-tower models of a run folder.
pub const MODELS_DIR: &str = "models";
/// The two-tower models a run folder can hold.
pub const MODEL_NAMES: [&str; 5] = ["dmtl", "b1", "b2", "b3-mse", "b3-wlr"];

/// Why a run folder could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The run folder does not exist.
    #[error("{0}: no such run folder")]
    NoRun(PathBuf),
    /// The model name is not one of [`MODEL_NAMES`].
    #[error("unknown model `{0}`; one of dmtl, b1, b2, b3-mse, b3-wlr")]
    UnknownModel(String),
    /// The run folder has no checkpoint of the model.
    #[error("{0}: the run has no such model (no student.toml)")]
    MissingModel(PathBuf),
    /// The schema, vocabularies or item corpus could not be read.
    #[error(transparent)]
    Data(#[from] dmtl_data::DataError),
    /// The student could not be loaded or run.
    #[error(transparent)]
    Student(#[from] StudentError),
    /// The item index could not be built.
    #[error(transparent)]
    Retrieval(#[from] RetrievalError),
    /// The corpus has no item id column.
    #[error("{0}: the item corpus has no categorical item id column `{1}`")]
    NoItemIds(PathBuf, String),
}

/// One loaded model, immutable once built: requests share it through an `Arc`, and a reload
/// builds a new one beside it.
#[derive(Debug)]
pub struct ServedModel {
    /// The run folder it was loaded from.
    pub run: PathBuf,
    /// The model's name in the run (`dmtl`, `b1`, ...).
    pub name: String,
    /// Counts loads within one server, starting at 1: responses carry it, so a client can tell
    /// which model answered.
    pub version: u64,
    /// The run's schema.
    pub schema: Schema,
    /// The run's vocabularies.
    pub vocabs: Vocabularies,
    /// The student.
    pub student: Student,
    /// The arithmetic of the user tower's MLP.
    pub precision: Precision,
    /// The item vectors of the corpus with their raw ids.
    pub index: ExactIndex,
    /// Raw item id -> row of the index.
    pub rows: HashMap<String, u32>,
}

impl ServedModel {
    /// Loads `model` of the run folder `run` and encodes its item corpus.
    ///
    /// # Errors
    /// [`LoadError`] naming the folder or file that is missing or invalid.
    pub fn load(
        run: &Path,
        model: &str,
        precision: Precision,
        version: u64,
    ) -> Result<ServedModel, LoadError> {
        if !MODEL_NAMES.contains(&model) {
            return Err(LoadError::UnknownModel(model.to_string()));
        }
        if !run.is_dir() {
            return Err(LoadError::NoRun(run.to_path_buf()));
        }
        let schema = Schema::load(run.join(SCHEMA_FILE))?;
        let vocabs = Vocabularies::load(run.join(VOCAB_FILE))?;
        vocabs.check_against(&schema)?;
        let dir = run.join(MODELS_DIR).join(model);
        if !dir.join(dmtl_student::two_tower::CONFIG_FILE).is_file() {
            return Err(LoadError::MissingModel(dir));
        }
        let student = Student::load(&dir, &schema, &vocabs)?;
        let items_path = run.join(ITEMS_FILE);
        let raw = read_log(&items_path, &schema, &ReadOptions::table_of(&[Side::Item]))?;
        let ids = match raw.column(&schema.ids.item) {
            Some(RawColumn::Categorical(v)) => v.to_vec(),
            _ => return Err(LoadError::NoItemIds(items_path, schema.ids.item.clone())),
        };
        let corpus = Dataset::encode(&schema, &raw, &vocabs)?;
        let all: Vec<u32> = (0..corpus.n_rows as u32).collect();
        let vectors = student.item_vectors(&corpus, &all)?;
        let rows = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u32))
            .collect();
        let index = ExactIndex::new(vectors)?.with_ids(ids)?;
        Ok(ServedModel {
            run: run.to_path_buf(),
            name: model.to_string(),
            version,
            schema,
            vocabs,
            student,
            precision,
            index,
            rows,
        })
    }

    /// Number of items in the corpus.
    pub fn n_items(&self) -> usize {
        self.index.len()
    }
}
