//! Errors of the parameter store and its files.

use std::path::PathBuf;

/// What can go wrong when saving, loading or registering parameters.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A safetensors file could not be parsed (truncated, not safetensors, ...).
    #[error("{path}: not a valid safetensors file: {reason}")]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A file's tensors do not match the model's parameters.
    #[error("{path}: {reason}")]
    Mismatch {
        /// The file concerned.
        path: PathBuf,
        /// Which tensor differs and how.
        reason: String,
    },
    /// A parameter name is registered twice.
    #[error("parameter `{0}` is already registered")]
    DuplicateName(String),
    /// Parameters do not have the shapes a layer expects.
    #[error("{0}")]
    Shape(String),
    /// A gradient or loss is NaN or infinite.
    #[error("non-finite gradient in parameter `{0}`")]
    NonFinite(String),
}
