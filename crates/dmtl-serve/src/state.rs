//! What every handler shares: the served model (swapped whole by a reload), the batching
//! worker and the bounds on one request.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dmtl_student::Precision;

use crate::batcher::Batcher;
use crate::error::{ApiError, ErrorKind};
use crate::model::{LoadError, ServedModel};
use crate::wire::ModelInfo;

/// The bounds on one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests in one body.
    pub max_requests: usize,
    /// `k`, and items to score, per request.
    pub max_k: usize,
    /// Bytes of a body.
    pub max_body_bytes: usize,
    /// Time from arrival to response of `/retrieve` and `/score` (reading the body included).
    pub timeout: Duration,
    /// `/retrieve` and `/score` requests in progress at once; more are refused at once.
    pub max_concurrency: usize,
}

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The model served; a reload swaps it whole.
    pub model: ArcSwap<ServedModel>,
    /// The batching worker.
    pub batcher: Batcher,
    /// The bounds on one request.
    pub limits: Limits,
    /// The arithmetic of the user tower, kept across reloads.
    pub precision: Precision,
    reload_lock: tokio::sync::Mutex<()>,
    next_version: AtomicU64,
}

impl AppState {
    /// The state serving `model` (whose version is 1).
    pub fn new(model: ServedModel, batcher: Batcher, limits: Limits) -> AppState {
        AppState {
            precision: model.precision,
            next_version: AtomicU64::new(model.version + 1),
            model: ArcSwap::from_pointee(model),
            batcher,
            limits,
            reload_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads `run` (default: the run served) and `model` (default: the model served) beside
    /// the model served and swaps it in: requests already admitted finish on the old model,
    /// later ones get the new one. One reload at a time; on failure nothing changes.
    ///
    /// # Errors
    /// [`ErrorKind::ReloadFailed`] (or [`ErrorKind::UnknownModel`]) naming the field at fault.
    pub async fn reload(
        &self,
        run: Option<PathBuf>,
        model: Option<String>,
    ) -> Result<ModelInfo, ApiError> {
        let _one = self.reload_lock.lock().await;
        let cur = self.model.load_full();
        let run = run.unwrap_or_else(|| cur.run.clone());
        let name = model.unwrap_or_else(|| cur.name.clone());
        let version = self.next_version.fetch_add(1, Ordering::Relaxed);
        let precision = self.precision;
        let loaded =
            tokio::task::spawn_blocking(move || ServedModel::load(&run, &name, precision, version))
                .await
                .map_err(|e| ApiError::internal(format!("the reload task failed: {e}")))?;
        let result = if loaded.is_ok() { "ok" } else { "failed" };
        metrics::counter!(crate::metrics::RELOADS, "result" => result).increment(1);
        let m = loaded.map_err(|e| {
            let (kind, field) = match &e {
                LoadError::UnknownModel(_) => (ErrorKind::UnknownModel, "model"),
                LoadError::MissingModel(_) => (ErrorKind::ReloadFailed, "model"),
                _ => (ErrorKind::ReloadFailed, "run"),
            };
            ApiError::new(kind, Some(field.into()), e.to_string())
        })?;
        tracing::info!(run = %m.run.display(), model = %m.name, version = m.version, "reloaded");
        let m = Arc::new(m);
        record_model(&m);
        self.model.store(m.clone());
        Ok(info(&m))
    }
}

/// The model's gauges.
pub fn record_model(m: &ServedModel) {
    metrics::gauge!(crate::metrics::MODEL_VERSION).set(m.version as f64);
    metrics::gauge!(crate::metrics::CORPUS_ITEMS).set(m.n_items() as f64);
}

/// The served model's description, as `/health` and `/reload` answer it.
pub fn info(m: &ServedModel) -> ModelInfo {
    ModelInfo {
        status: "ok".into(),
        run: m.run.display().to_string(),
        model: m.name.clone(),
        version: m.version,
        items: m.n_items(),
        dim: m.index.dim(),
    }
}
