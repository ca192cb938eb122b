//! What a run folder of `dmtl train` or `dmtl demo` holds for its two-tower models, and
//! loading it: the schema, the vocabularies, `models/<name>/` and the item corpus. `dmtl
//! retrieve` (dmtl-runner) and `dmtl serve` (dmtl-serve) both read a run through here, so they
//! read the same files the same way (the runner's `layout` names the folder's other files).

use std::path::{Path, PathBuf};

use dmtl_data::{read_log, DataError, Dataset, RawColumn, ReadOptions, Schema, Side, Vocabularies};

use crate::error::StudentError;
use crate::two_tower::{Student, CONFIG_FILE};

/// The schema in a run folder.
pub const SCHEMA_FILE: &str = "schema.toml";
/// The vocabularies in a run folder.
pub const VOCAB_FILE: &str = "vocab.json";
/// The item corpus (item-side columns) in a run folder.
pub const ITEMS_FILE: &str = "items.parquet";
/// The folder of the two-tower models (one sub-folder per model) in a run folder.
pub const MODELS_DIR: &str = "models";

/// Why a run folder's model or corpus could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RunFolderError {
    /// The run folder does not exist.
    #[error("{0}: no such run folder")]
    NoRun(PathBuf),
    /// The run folder has no checkpoint of the model (the folder named).
    #[error("{0}: the run has no such model (no student.toml)")]
    MissingModel(PathBuf),
    /// The item corpus (the file named) has no categorical item id column (the one named).
    #[error("{0}: the item corpus has no categorical item id column `{1}`")]
    NoItemIds(PathBuf, String),
    /// The schema, vocabularies or item corpus could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The student could not be loaded or run.
    #[error(transparent)]
    Student(#[from] StudentError),
}

/// The checkpoint folder of the two-tower model `name` (`dmtl`, `b1`, ...) in the run folder
/// `run`.
pub fn student_dir(run: &Path, name: &str) -> PathBuf {
    run.join(MODELS_DIR).join(name)
}

/// The schema and vocabularies of the run folder `run`, the vocabularies checked against the
/// schema.
///
/// # Errors
/// [`RunFolderError::NoRun`] when `run` is not a folder; [`RunFolderError::Data`] when a file
/// is missing or invalid, or the two do not fit.
pub fn load_schema_and_vocabs(run: &Path) -> Result<(Schema, Vocabularies), RunFolderError> {
    if !run.is_dir() {
        return Err(RunFolderError::NoRun(run.to_path_buf()));
    }
    let schema = Schema::load(run.join(SCHEMA_FILE))?;
    let vocabs = Vocabularies::load(run.join(VOCAB_FILE))?;
    vocabs.check_against(&schema)?;
    Ok((schema, vocabs))
}

/// The two-tower model `name` of the run folder `run`, against the run's `schema` and
/// `vocabs`.
///
/// # Errors
/// [`RunFolderError::MissingModel`] when the run has no checkpoint of it;
/// [`RunFolderError::Student`] when the checkpoint does not load.
pub fn load_student(
    run: &Path,
    name: &str,
    schema: &Schema,
    vocabs: &Vocabularies,
) -> Result<Student, RunFolderError> {
    let dir = student_dir(run, name);
    if !dir.join(CONFIG_FILE).is_file() {
        return Err(RunFolderError::MissingModel(dir));
    }
    Ok(Student::load(&dir, schema, vocabs)?)
}

/// The item corpus of the run folder `run`: the raw item ids and the encoded rows, in the
/// file's order.
///
/// # Errors
/// [`RunFolderError::Data`] when the corpus cannot be read or encoded;
/// [`RunFolderError::NoItemIds`] when it has no categorical item id column.
pub fn load_corpus(
    run: &Path,
    schema: &Schema,
    vocabs: &Vocabularies,
) -> Result<(Vec<String>, Dataset), RunFolderError> {
    let path = run.join(ITEMS_FILE);
    let raw = read_log(&path, schema, &ReadOptions::table_of(&[Side::Item]))?;
    let ids = match raw.column(&schema.ids.item) {
        Some(RawColumn::Categorical(v)) => v.to_vec(),
        _ => return Err(RunFolderError::NoItemIds(path, schema.ids.item.clone())),
    };
    Ok((ids, Dataset::encode(schema, &raw, vocabs)?))
}
