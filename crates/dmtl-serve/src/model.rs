//! A served model: one two-tower student of a run folder, its schema and vocabularies, and the
//! run's item corpus encoded once into an exact index.
//!
//! Loading reads the run folder through [`dmtl_student::run_folder`], as `dmtl retrieve` does
//! (`schema.toml`, `vocab.json`, `models/<name>/`, `items.parquet`), and computes the item
//! vectors with [`Student::item_vectors`] over every corpus row, so a search here returns what
//! `dmtl retrieve` returns.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dmtl_data::{Schema, Vocabularies};
use dmtl_student::retrieval::{ExactIndex, RetrievalError};
use dmtl_student::run_folder::{self, RunFolderError};
pub use dmtl_student::run_folder::{ITEMS_FILE, MODELS_DIR, SCHEMA_FILE, VOCAB_FILE};
use dmtl_student::{Precision, Student, StudentError};

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

impl From<RunFolderError> for LoadError {
    fn from(e: RunFolderError) -> LoadError {
        match e {
            RunFolderError::NoRun(run) => LoadError::NoRun(run),
            RunFolderError::MissingModel(dir) => LoadError::MissingModel(dir),
            RunFolderError::NoItemIds(file, column) => LoadError::NoItemIds(file, column),
            RunFolderError::Data(e) => LoadError::Data(e),
            RunFolderError::Student(e) => LoadError::Student(e),
        }
    }
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
        let (schema, vocabs) = run_folder::load_schema_and_vocabs(run)?;
        let student = run_folder::load_student(run, model, &schema, &vocabs)?;
        let (ids, corpus) = run_folder::load_corpus(run, &schema, &vocabs)?;
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
