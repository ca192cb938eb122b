//! A model on disk, the same for every model: its configuration as TOML (parsed and validated
//! with errors naming the file and the key) beside its parameters as safetensors.
//!
//! A model's configuration implements [`ModelConfig`]; its `from_toml_str`, `save` and `load`
//! are then calls of [`from_toml_str`], [`save`] and [`load`].

use std::path::{Path, PathBuf};

use dmtl_tensor::{ParamStore, TensorError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::InputError;

/// A model's configuration as data, checked after parsing.
pub trait ModelConfig: Serialize + DeserializeOwned {
    /// The first out-of-range value: its key as written in the file (`train.lr`,
    /// `objective.alpha`) and what it must be. `None` when every value is valid.
    fn invalid_key(&self) -> Option<(String, String)>;
}

/// The names of a model's two files inside its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Files {
    /// The parameters (safetensors), e.g. `teacher.safetensors`.
    pub weights: &'static str,
    /// The configuration (TOML), e.g. `teacher.toml`.
    pub config: &'static str,
}

/// Why a model could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The configuration file does not parse or holds a value out of range.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The parameters could not be saved or loaded (the message names the tensor).
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// Checks `cfg`; the error names `origin` and the key.
pub fn validate<C: ModelConfig>(cfg: &C, origin: &str) -> Result<(), InputError> {
    match cfg.invalid_key() {
        Some((key, message)) => Err(InputError::Config {
            origin: origin.to_string(),
            key,
            message,
        }),
        None => Ok(()),
    }
}

/// Parses and validates TOML text; `origin` names it in errors.
pub fn from_toml_str<C: ModelConfig>(text: &str, origin: &str) -> Result<C, InputError> {
    // toml's message names the line, the column and the unknown or mistyped key.
    let cfg: C = toml::from_str(text).map_err(|e| InputError::Parse {
        origin: origin.to_string(),
        message: e.to_string(),
    })?;
    validate(&cfg, origin)?;
    Ok(cfg)
}

/// The configuration as TOML text.
///
/// # Panics
/// When `cfg` does not serialize as a TOML table (a model configuration always does).
pub fn to_toml_string<C: Serialize>(cfg: &C) -> String {
    toml::to_string(cfg).expect("a model configuration always serializes")
}

/// Writes `files.weights` (every parameter of `store` by name) and `files.config` (`cfg`)
/// into `dir`, creating it if needed; each file is written atomically.
pub fn save<C: Serialize>(
    dir: &Path,
    files: Files,
    store: &ParamStore,
    cfg: &C,
) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    store.save(&dir.join(files.weights))?;
    dmtl_tensor::io::atomic_write(&dir.join(files.config), to_toml_string(cfg).as_bytes())?;
    Ok(())
}

/// Rebuilds the model saved in `dir` by [`save`]: parses `files.config` (errors name the
/// file), builds the model with `build`, then loads `files.weights` into the store `store`
/// gives of it (errors name the tensor when the file is missing, truncated or holds another
/// model's parameters).
pub fn load<C, M, E>(
    dir: &Path,
    files: Files,
    build: impl FnOnce(C) -> Result<M, E>,
    store: impl FnOnce(&mut M) -> &mut ParamStore,
) -> Result<M, E>
where
    C: ModelConfig,
    E: From<CheckpointError>,
{
    let path = dir.join(files.config);
    let text = std::fs::read_to_string(&path).map_err(|source| CheckpointError::Io {
        path: path.clone(),
        source,
    })?;
    let cfg = from_toml_str(&text, &path.display().to_string()).map_err(CheckpointError::from)?;
    let mut model = build(cfg)?;
    store(&mut model)
        .load(&dir.join(files.weights))
        .map_err(CheckpointError::from)?;
    Ok(model)
}
