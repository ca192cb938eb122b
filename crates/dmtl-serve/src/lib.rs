//! `dmtl serve`: the two-tower student of a run folder as an HTTP service (axum on tokio).
//!
//! The run's student, vocabularies and item corpus are loaded once and the corpus encoded
//! into an exact index ([`model`]); then
//! - `POST /retrieve` answers one request or an array of them (user id, user features,
//!   context, `k`, item ids to exclude) with the top-K raw item ids and scores, as `dmtl
//!   retrieve` computes them: same vectors, same exact search ([`dmtl_student::retrieval`],
//!   with its bf16 filter where the CPU has AVX-512 BF16);
//! - `POST /score` scores user-item pairs as `dmtl score` does;
//! - `GET /health` names the model served; `GET /metrics` renders counters and histograms in
//!   the Prometheus text format ([`metrics`]);
//! - `POST /reload` (or SIGHUP) swaps in a run folder atomically ([`app::AppState::reload`]).
//!
//! Concurrent requests share runs of the user tower and of the search ([`batcher`]). Bodies
//! are parsed and checked field by field ([`wire`], [`encode`]); every failure is a JSON
//! error naming the field ([`error`]). Docs: `docs/serving.md`.

#![deny(missing_docs)]

pub mod app;
pub mod batcher;
pub mod encode;
pub mod error;
pub mod handlers;
pub mod metrics;
pub mod model;
pub mod state;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dmtl_student::Precision;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::batcher::{BatchOptions, Batcher};
use crate::model::{LoadError, ServedModel};
use crate::state::{AppState, Limits};

/// The options of `dmtl serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeOptions {
    /// A run folder written by `dmtl train` or `dmtl demo`.
    #[arg(long)]
    pub run: PathBuf,
    /// The two-tower model of the run: dmtl, b1, b2, b3-mse or b3-wlr.
    #[arg(long, default_value = "dmtl")]
    pub model: String,
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Microseconds to wait for more requests after the first of a batch.
    #[arg(long, default_value_t = 200)]
    pub batch_window_us: u64,
    /// User rows beyond which a batch waits for no more requests.
    #[arg(long, default_value_t = 256)]
    pub max_batch_rows: usize,
    /// /retrieve and /score requests in progress at once; more get 503 at once.
    #[arg(long, default_value_t = 512)]
    pub max_concurrency: usize,
    /// Milliseconds a /retrieve or /score request may take, the body's arrival included.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Largest body accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Requests in one body.
    #[arg(long, default_value_t = 256)]
    pub max_requests: usize,
    /// Largest k, and most items to score, per request.
    #[arg(long, default_value_t = 1000)]
    pub max_k: usize,
    /// The user tower's MLP in bf16 (AVX-512 BF16 CPUs; scores then differ from `dmtl
    /// retrieve` by about 2^-7 relative).
    #[arg(long)]
    pub bf16_user_tower: bool,
}

impl ServeOptions {
    /// The defaults for `run`.
    pub fn new(run: PathBuf) -> ServeOptions {
        ServeOptions {
            run,
            model: "dmtl".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            batch_window_us: 200,
            max_batch_rows: 256,
            max_concurrency: 512,
            timeout_ms: 2000,
            max_body_bytes: 1 << 20,
            max_requests: 256,
            max_k: 1000,
            bf16_user_tower: false,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_requests: self.max_requests,
            max_k: self.max_k,
            max_body_bytes: self.max_body_bytes,
            timeout: Duration::from_millis(self.timeout_ms),
            max_concurrency: self.max_concurrency.max(1),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The run folder could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// The address it listens on (the port chosen when `addr` gave port 0).
    pub addr: SocketAddr,
    /// The shared state (the model served, reload).
    pub state: Arc<AppState>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    upkeep: JoinHandle<()>,
}

impl Server {
    /// Stops accepting, lets requests in flight finish, and waits for the end.
    ///
    /// # Errors
    /// [`ServeError::Io`] when the server failed.
    pub async fn stop(self) -> Result<(), ServeError> {
        let _ = self.stop.send(());
        self.upkeep.abort();
        match self.task.await {
            Ok(r) => Ok(r?),
            Err(e) => Err(ServeError::Io(std::io::Error::other(e))),
        }
    }
}

/// Loads the model, binds `opts.addr` and serves on the current tokio runtime until
/// [`Server::stop`].
///
/// # Errors
/// [`ServeError`] when the run cannot be loaded or the address bound.
pub async fn start(opts: &ServeOptions) -> Result<Server, ServeError> {
    let precision = if opts.bf16_user_tower {
        Precision::Bf16
    } else {
        Precision::F32
    };
    let (run, name) = (opts.run.clone(), opts.model.clone());
    let model = tokio::task::spawn_blocking(move || ServedModel::load(&run, &name, precision, 1))
        .await
        .map_err(|e| ServeError::Io(std::io::Error::other(e)))??;
    metrics::handle();
    // Histogram samples wait in the recorder until drained: drain them now and then, so memory
    // stays flat when nothing scrapes /metrics.
    let upkeep = tokio::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            metrics::handle().run_upkeep();
        }
    });
    app::record_model(&model);
    let batcher = Batcher::start(BatchOptions {
        window: Duration::from_micros(opts.batch_window_us),
        max_rows: opts.max_batch_rows.max(1),
        queue: opts.max_concurrency.max(1),
    });
    let state = Arc::new(AppState::new(model, batcher, opts.limits()));
    let listener = TcpListener::bind(opts.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: opts.addr,
            source,
        })?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = app::router(state.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(Server {
        addr,
        state,
        stop,
        task,
        upkeep,
    })
}

/// Runs `dmtl serve` until Ctrl-C: a tokio runtime, [`start`], and a reload of the same run
/// folder on SIGHUP.
///
/// # Errors
/// [`ServeError`] when the server cannot start or fails.
pub fn run(opts: &ServeOptions) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dmtl-serve")
        .build()?;
    rt.block_on(async {
        let server = start(opts).await?;
        let m = server.state.model.load_full();
        eprintln!(
            "serving `{}` of {} ({} items, dim {}) on http://{}",
            m.name,
            m.run.display(),
            m.n_items(),
            m.index.dim(),
            server.addr
        );
        drop(m);
        let state = server.state.clone();
        #[cfg(unix)]
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                match state.reload(None, None).await {
                    Ok(i) => eprintln!("reloaded {} (version {})", i.run, i.version),
                    Err(e) => eprintln!("reload failed: {}", e.message),
                }
            }
        });
        let _ = tokio::signal::ctrl_c().await;
        server.stop().await
    })
}
