//! The router: routes, the shared state, reload, and the layers that bound the work of a
//! request (body size, time, concurrency) and record its metrics.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Json, Router};
use dmtl_student::Precision;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;

use crate::batcher::Batcher;
use crate::error::{ApiError, ErrorKind};
use crate::handlers::{body_bytes, retrieve, score};
use crate::model::{LoadError, ServedModel};
use crate::wire::{deserialize, ModelInfo, ReloadRequest};

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

fn info(m: &ServedModel) -> ModelInfo {
    ModelInfo {
        status: "ok".into(),
        run: m.run.display().to_string(),
        model: m.name.clone(),
        version: m.version,
        items: m.n_items(),
        dim: m.index.dim(),
    }
}

/// The service's routes with their layers.
pub fn router(state: Arc<AppState>) -> Router {
    let limits = state.limits;
    // `/retrieve` and `/score`: bounded in time (the body's arrival included) and in number.
    let api = Router::new()
        .route("/retrieve", post(retrieve))
        .route("/score", post(score))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: BoxError| async {
                    ApiError::new(
                        ErrorKind::Overloaded,
                        None,
                        "the server is at its concurrency limit (--max-concurrency); retry later",
                    )
                }))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(limits.max_concurrency))
                .layer(middleware::from_fn_with_state(limits.timeout, time_limit)),
        );
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(render_metrics))
        .route("/reload", post(reload))
        .merge(api)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

/// Answers [`ErrorKind::Timeout`] when the request is not done within the limit.
async fn time_limit(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            ErrorKind::Timeout,
            None,
            format!(
                "the request took over {} ms (body included); the limit is --timeout-ms",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

/// Counts every response by route and status, and times it.
async fn observe(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| match p.as_str() {
            "/retrieve" => "retrieve",
            "/score" => "score",
            "/health" => "health",
            "/metrics" => "metrics",
            "/reload" => "reload",
            _ => "other",
        });
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!(crate::metrics::REQUESTS, "endpoint" => route, "status" => status)
        .increment(1);
    metrics::histogram!(crate::metrics::LATENCY, "endpoint" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

async fn health(State(st): State<Arc<AppState>>) -> Json<ModelInfo> {
    Json(info(&st.model.load()))
}

async fn render_metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::handle().render(),
    )
}

async fn reload(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ModelInfo>, ApiError> {
    let bytes = body_bytes(body)?;
    let req: ReloadRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        ReloadRequest::default()
    } else {
        deserialize(&bytes)?
    };
    Ok(Json(
        st.reload(req.run.map(PathBuf::from), req.model).await?,
    ))
}

async fn not_found() -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        None,
        "no such route: POST /retrieve, POST /score, POST /reload, GET /health, GET /metrics",
    )
}
