//! Errors of building, training, scoring and checkpointing a teacher.

use std::path::PathBuf;

use dmtl_tensor::TensorError;
pub use dmtl_train::TrainError;
use dmtl_train::{CheckpointError, InputError, StateError};

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum TeacherError {
    /// A configuration value is out of range; `key` is its name in `teacher.toml`.
    #[error("{origin}: `{key}`: {message}")]
    Config {
        /// Where the configuration came from (a file path, or `<config>`).
        origin: String,
        /// The offending key, e.g. `n_experts` or `train.lr`.
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
    /// The schema, the vocabularies and a dataset do not fit together.
    #[error("{0}")]
    Data(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint's parameters could not be saved or loaded (the message names the tensor).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// Training diverged, every batch of an epoch was skipped, or training stopped on
    /// request ([`TrainError`]).
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A training state could not be written, read, or does not belong to this model and
    /// configuration (the message names the file and the key or tensor).
    #[error("{path}: {message}")]
    State {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl From<InputError> for TeacherError {
    fn from(e: InputError) -> TeacherError {
        match e {
            InputError::Config {
                origin,
                key,
                message,
            } => TeacherError::Config {
                origin,
                key,
                message,
            },
            InputError::Parse { origin, message } => TeacherError::Parse { origin, message },
            InputError::Data(m) => TeacherError::Data(m),
        }
    }
}

impl From<CheckpointError> for TeacherError {
    fn from(e: CheckpointError) -> TeacherError {
        match e {
            CheckpointError::Io { path, source } => TeacherError::Io { path, source },
            CheckpointError::Input(e) => e.into(),
            CheckpointError::Tensor(e) => TeacherError::Tensor(e),
        }
    }
}

impl From<StateError> for TeacherError {
    fn from(e: StateError) -> TeacherError {
        match e {
            StateError::State { path, message } => TeacherError::State { path, message },
            StateError::Tensor(e) => TeacherError::Tensor(e),
            StateError::Config(m) => TeacherError::Data(m),
        }
    }
}

impl From<dmtl_data::DataError> for TeacherError {
    fn from(e: dmtl_data::DataError) -> TeacherError {
        TeacherError::Data(e.to_string())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = TeacherError> = std::result::Result<T, E>;
