//! Errors of building, training, exporting and evaluating a student.

use std::path::PathBuf;

use dmtl_tensor::TensorError;

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum StudentError {
    /// A configuration value is out of range; `key` is its name in `student.toml`.
    #[error("{origin}: `{key}`: {message}")]
    Config {
        /// Where the configuration came from (a file path, or `<config>`).
        origin: String,
        /// The offending key, e.g. `user_hidden` or `train.lr`.
        key: String,
        /// What was expected.
        message: String,
    },
    /// A configuration file is not valid TOML or has an unknown or mistyped key.
    #[error("{origin}: {message}")]
    Parse {
        /// The file (or `<config>`).
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The schema, the vocabularies, a dataset or the teacher's scores do not fit together.
    #[error("{0}")]
    Data(String),
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Parameters could not be saved or loaded (the message names the tensor).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A training state could not be written, read, or does not belong to this model and
    /// configuration (the message names the file and the key or tensor).
    #[error(transparent)]
    State(#[from] dmtl_train::StateError),
    /// An error of the data crate (vocabularies, encoding).
    #[error(transparent)]
    DataCrate(#[from] dmtl_data::DataError),
    /// Retrieval could not run.
    #[error(transparent)]
    Retrieval(#[from] crate::retrieval::RetrievalError),
    /// Training diverged, every batch of an epoch was skipped, or training stopped on
    /// request (the loop shared with the teacher).
    #[error(transparent)]
    Train(#[from] dmtl_train::TrainError),
}

impl From<dmtl_train::InputError> for StudentError {
    fn from(e: dmtl_train::InputError) -> StudentError {
        match e {
            dmtl_train::InputError::Config {
                origin,
                key,
                message,
            } => StudentError::Config {
                origin,
                key,
                message,
            },
            dmtl_train::InputError::Parse { origin, message } => {
                StudentError::Parse { origin, message }
            }
            dmtl_train::InputError::Data(m) => StudentError::Data(m),
        }
    }
}

impl From<dmtl_train::CheckpointError> for StudentError {
    fn from(e: dmtl_train::CheckpointError) -> StudentError {
        match e {
            dmtl_train::CheckpointError::Io { path, source } => StudentError::io(&path, source),
            dmtl_train::CheckpointError::Input(e) => e.into(),
            dmtl_train::CheckpointError::Tensor(e) => StudentError::Tensor(e),
        }
    }
}

impl StudentError {
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> StudentError {
        StudentError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = StudentError> = std::result::Result<T, E>;
