//! The checkpoints of a run folder: its schema and vocabularies, the teacher and the two-tower
//! models loaded against them, and the item corpus; with errors that say which file to look at
//! (a model the run does not have, vocabularies of another run).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use dmtl_data::{Dataset, Schema, Vocabularies};
use dmtl_student::run_folder::{self, RunFolderError};
use dmtl_student::{Student, StudentError};
use dmtl_teacher::{Teacher, TeacherError};
use dmtl_tensor::TensorError;
use safetensors::SafeTensors;

use crate::config::ModelName;
use crate::fsutil::killed_build_hint;
use crate::layout::{student_dir, teacher_dir, METRICS_FILE, VOCAB_FILE};

/// The schema and vocabularies saved in a run folder.
pub fn load_run_basics(run: &Path) -> Result<(Schema, Vocabularies)> {
    if !run.is_dir() {
        bail!(
            "{}: no such run folder{}",
            run.display(),
            killed_build_hint(run)
        );
    }
    Ok(run_folder::load_schema_and_vocabs(run)?)
}

/// The folder of `model`'s checkpoint in a run folder.
pub fn model_dir(run: &Path, model: ModelName) -> PathBuf {
    match model {
        ModelName::Teacher => teacher_dir(run),
        m => student_dir(run, m.as_str()),
    }
}

/// Loads a two-tower model of a run folder.
pub fn load_student(run: &Path, model: ModelName) -> Result<(Schema, Vocabularies, Student)> {
    if model == ModelName::Teacher {
        bail!("the teacher is not a two-tower model (choose dmtl, b1, b2, b3-mse or b3-wlr)");
    }
    let (schema, vocabs) = load_run_basics(run)?;
    let s = match run_folder::load_student(run, model.as_str(), &schema, &vocabs) {
        Ok(s) => s,
        Err(RunFolderError::MissingModel(_)) => return Err(missing_model(run, model)),
        Err(RunFolderError::Student(e)) => {
            let weights = match &e {
                StudentError::Tensor(TensorError::Mismatch { path, .. }) => Some(path.clone()),
                _ => None,
            };
            return Err(with_vocab_mismatch(
                e.into(),
                weights.as_deref(),
                run,
                &vocabs,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    Ok((schema, vocabs, s))
}

/// Loads the teacher checkpoint in `dir` against `schema` and `vocabs`, the run folder `run`'s
/// (the run it belongs to, or the run that reuses it): an error names what failed, with the
/// run's vocabularies first when they do not fit the checkpoint ([`VocabMismatch`]).
pub fn load_teacher(
    run: &Path,
    dir: &Path,
    schema: &Schema,
    vocabs: &Vocabularies,
) -> Result<Teacher> {
    Teacher::load(dir, schema, vocabs).map_err(|e| {
        let weights = match &e {
            TeacherError::Tensor(TensorError::Mismatch { path, .. }) => Some(path.clone()),
            _ => None,
        };
        with_vocab_mismatch(e.into(), weights.as_deref(), run, vocabs)
    })
}

/// The error for `model` missing from the run folder `run`: a run that has not finished (no
/// `metrics.json`, which a run writes last) is said to be incomplete, with the command that
/// continues it; a finished run did not train that model.
pub fn missing_model(run: &Path, model: ModelName) -> anyhow::Error {
    let dir = model_dir(run, model);
    if !run.join(METRICS_FILE).is_file() {
        return anyhow!(
            "{}: the run is incomplete: it stopped before `{model}` was saved (no {}); \
             continue it with `dmtl train --resume {}`",
            run.display(),
            dir.display(),
            run.display()
        );
    }
    anyhow!(
        "{}: the run has no `{model}` model (was it in stages.models?)",
        dir.display()
    )
}

/// A checkpoint's embedding table whose row count differs from what the run's vocabularies
/// give its column: the vocabularies and the checkpoint come from different runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}: the vocabularies do not match the checkpoint: they give column `{column}` {vocab_rows} \
     rows (with the out-of-vocabulary row), the checkpoint's `{tensor}` has {checkpoint_rows} \
     (are the vocabularies or the checkpoint from another run?)",
    vocab_file.display()
)]
pub struct VocabMismatch {
    /// The run's vocabularies.
    pub vocab_file: PathBuf,
    /// The column of the table.
    pub column: String,
    /// The checkpoint's tensor of that column's embedding table.
    pub tensor: String,
    /// Rows the vocabularies give the column (with the out-of-vocabulary row).
    pub vocab_rows: usize,
    /// Rows of the checkpoint's table.
    pub checkpoint_rows: usize,
}

/// The first embedding table (by tensor name) of the safetensors file `weights` whose rows are
/// not what `vocabs` give its column; `None` when every table fits or the file cannot be read.
/// Embedding tables are the tensors `<model>.embedding.<column>`.
pub fn find_vocab_mismatch(
    weights: &Path,
    vocabs: &Vocabularies,
    vocab_file: &Path,
) -> Option<VocabMismatch> {
    let bytes = std::fs::read(weights).ok()?;
    let st = SafeTensors::deserialize(&bytes).ok()?;
    let mut names = st.names();
    names.sort();
    names.into_iter().find_map(|tensor| {
        let (_, column) = tensor.rsplit_once(".embedding.")?;
        let vocab_rows = vocabs.table_size(column)?;
        let checkpoint_rows = *st.tensor(tensor).ok()?.shape().first()?;
        (checkpoint_rows != vocab_rows).then(|| VocabMismatch {
            vocab_file: vocab_file.to_path_buf(),
            column: column.to_string(),
            tensor: tensor.clone(),
            vocab_rows,
            checkpoint_rows,
        })
    })
}

/// `e`, a failed load of a checkpoint of the run folder `run` whose tensors in `weights` did
/// not fit the model, with the [`VocabMismatch`] first when the cause is the vocabularies: the
/// bare shape error would not say which file to look at.
fn with_vocab_mismatch(
    e: anyhow::Error,
    weights: Option<&Path>,
    run: &Path,
    vocabs: &Vocabularies,
) -> anyhow::Error {
    match weights.and_then(|w| find_vocab_mismatch(w, vocabs, &run.join(VOCAB_FILE))) {
        Some(m) => e.context(m),
        None => e,
    }
}

/// The item corpus of a run: raw ids and its encoded rows.
pub fn run_corpus(
    run: &Path,
    schema: &Schema,
    vocabs: &Vocabularies,
) -> Result<(Vec<String>, Dataset)> {
    Ok(run_folder::load_corpus(run, schema, vocabs)?)
}
