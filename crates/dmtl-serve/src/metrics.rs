//! The service's metrics, recorded with the `metrics` crate and rendered in the Prometheus
//! text format by `metrics-exporter-prometheus` at `GET /metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, labelled `endpoint` and `status`.
pub const REQUESTS: &str = "dmtl_serve_requests_total";
/// Seconds from a request's arrival to its response, labelled `endpoint`.
pub const LATENCY: &str = "dmtl_serve_request_seconds";
/// Rows (user queries) per run of the user tower.
pub const BATCH_ROWS: &str = "dmtl_serve_batch_rows";
/// Queries whose user id was unseen in training.
pub const UNSEEN_USERS: &str = "dmtl_serve_unseen_users_total";
/// Reloads, labelled `result` (`ok` or `failed`).
pub const RELOADS: &str = "dmtl_serve_reloads_total";
/// The load counter of the model served.
pub const MODEL_VERSION: &str = "dmtl_serve_model_version";
/// Items in the served corpus.
pub const CORPUS_ITEMS: &str = "dmtl_serve_corpus_items";

/// Bucket bounds of the latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];
/// Bucket bounds of the batch-size histogram.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed as the global `metrics` recorder on first
/// call (every server of the process shares it).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(LATENCY.into()), &LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(BATCH_ROWS.into()), &BATCH_BUCKETS)
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a host program's): then ours only
        // renders what is recorded through it, which is nothing; the host's gets the values.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}
