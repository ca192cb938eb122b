//! The router: routes, the shared state, reload, and the layers that bound the work of a
//! request (body size, time, concurrency) and record its metrics.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Json, Router};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;

use crate::error::{ApiError, ErrorKind};
use crate::handlers::{body_bytes, retrieve, score};
pub use crate::state::{info, record_model, AppState, Limits};
use crate::wire::{deserialize, ModelInfo, ReloadRequest};

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
