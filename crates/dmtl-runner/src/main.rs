//! The `dmtl` command line; every command is a thin call into `dmtl_runner::commands`.

// The doc comments below are clap's `--help` texts, written for the terminal (`<timestamp>`,
// `[simulator]`), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dmtl_runner::commands::{self, DemoOptions};
use dmtl_runner::config::{ModelName, Scale};
use dmtl_runner::progress::Progress;
use dmtl_runner::ranks::{self, Ranks};

/// DMTL: a multi-task teacher (MMoE + ESMM) distilled into a two-tower candidate generator, and
/// the paper's comparison against two towers trained on clicks, long reads and durations.
#[derive(Parser, Debug)]
#[command(name = "dmtl", version, about, long_about = None)]
struct Cli {
    /// Threads for BLAS and Rayon (default: DMTL_THREADS, else every core; at most 4 per core,
    /// or 64).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// No progress bars (logs still go to stderr; set RUST_LOG=info for more).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

fn parse_model(s: &str) -> Result<ModelName, String> {
    ModelName::parse(s)
        .ok_or_else(|| format!("unknown model `{s}`; one of teacher, dmtl, b1, b2, b3-mse, b3-wlr"))
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The paper's experiment end to end on the built-in simulator (no outside data).
    ///
    /// Simulate a feed log,
    /// train the teacher, distil the DMTL student, train the competitors B1 (click), B2 (hard
    /// long read), B3 (log-duration MSE) and B3' (duration-weighted LR), evaluate them all on the
    /// test days and print the table, with the teacher, the oracle and random as reference rows.
    Demo {
        /// Repeat with seeds 1..=N and show mean ± std.
        #[arg(long, default_value_t = 1)]
        seeds: usize,
        /// Size of the simulated feed: tiny (seconds), default (1M impressions over 5,000 items:
        /// about three and a half minutes on 2 cores), reference (the benchmark workload, 5M
        /// impressions: long).
        #[arg(long, value_enum, default_value_t = Scale::Default)]
        scale: Scale,
        /// Run folder (default runs/demo-<timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Length of the retrieved lists.
        #[arg(long)]
        k: Option<usize>,
        /// Epochs of every model (default: the scale's setting).
        #[arg(long)]
        epochs: Option<usize>,
        /// Precision of the dense products while training every model: f32 (the default) or
        /// bf16 (needs AVX-512 BF16; elsewhere training says so and runs in f32).
        #[arg(long)]
        precision: Option<dmtl_tensor::Precision>,
    },
    /// The same pipeline on your own CSV/Parquet logs, from a run.toml.
    ///
    /// The logs may also be simulated (a [simulator] section). See `dmtl_runner::config` or
    /// the README for the format. The config is checked before any work; errors name the file
    /// and the key.
    Train {
        /// The run configuration (run.toml).
        #[arg(long, required_unless_present = "resume")]
        config: Option<PathBuf>,
        /// Run folder (default runs/train-<timestamp>).
        #[arg(long, conflicts_with = "resume")]
        out: Option<PathBuf>,
        /// Continue a stopped run in its folder, from its saved configuration and training
        /// states (stages already done are loaded, not retrained).
        #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
        resume: Option<PathBuf>,
    },
    /// Per-impression predictions of a trained model for a log, to CSV or Parquet.
    ///
    /// Labels are not needed. Columns: the raw
    /// user and item ids, then p_ctr, p_cvr, p_ctcvr (teacher) or score, probability (two
    /// towers).
    Score {
        /// A run folder written by `train` or `demo`.
        #[arg(long)]
        run: PathBuf,
        /// The log to score (CSV or Parquet, the run's schema).
        #[arg(long)]
        log: PathBuf,
        /// Output file, .csv or .parquet.
        #[arg(long)]
        out: PathBuf,
        /// teacher, dmtl, b1, b2, b3-mse or b3-wlr.
        #[arg(long, default_value = "teacher", value_parser = parse_model)]
        model: ModelName,
    },
    /// User and item vectors (.npy) with raw ids, for an outside index.
    ///
    /// For e.g. Faiss with the inner product as the score; writes user_vectors.npy, item_vectors.npy, user_ids.npy, item_ids.npy (raw ids, numpy unicode), vectors.json, the checkpoint and the vocabularies.
    Export {
        /// A run folder.
        #[arg(long)]
        run: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// dmtl, b1, b2, b3-mse or b3-wlr.
        #[arg(long, default_value = "dmtl", value_parser = parse_model)]
        model: ModelName,
    },
    /// Top-K item ids for the users of a file of user rows.
    ///
    /// Searches the run's item corpus exactly, for every row of the file (user and context
    /// columns). Users unseen in training get the out-of-vocabulary id embedding and are
    /// counted. Output in long form: user_id, rank, item_id, score, known_user.
    Retrieve {
        /// A run folder.
        #[arg(long)]
        run: PathBuf,
        /// The user rows (CSV or Parquet, the run's schema's user and context columns).
        #[arg(long)]
        users: PathBuf,
        /// Items per user.
        #[arg(long, default_value_t = 100)]
        k: usize,
        /// Output file, .csv or .parquet.
        #[arg(long)]
        out: PathBuf,
        /// dmtl, b1, b2, b3-mse or b3-wlr.
        #[arg(long, default_value = "dmtl", value_parser = parse_model)]
        model: ModelName,
    },
    /// The two-tower model of a run folder as an HTTP service (docs/serving.md).
    ///
    /// POST /retrieve, POST /score, POST /reload; GET /health, GET /metrics.
    #[cfg(feature = "serve")]
    Serve(dmtl_serve::ServeOptions),
    /// Writes a simulated log, its schema, items and users, to try `train` on files.
    ///
    /// Writes a simulated feed log with its schema, the item catalogue and the user table, to
    /// try `train` on files: schema.toml, log.csv, items.csv, users.csv (or .parquet).
    Simulate {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Size of the simulated feed: by default the demo's, on which the teacher has enough
        /// data to learn from; `tiny` writes one in a second to try the commands, too small for
        /// the models to be compared on it.
        #[arg(long, value_enum, default_value_t = Scale::Default)]
        scale: Scale,
        /// Parquet instead of CSV.
        #[arg(long)]
        parquet: bool,
        /// The simulator's seed (default: the scale's).
        #[arg(long)]
        seed: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let asked = match cli.threads {
        Some(n) => Some((format!("--threads {n}"), n)),
        None => std::env::var("DMTL_THREADS").ok().and_then(|v| {
            v.parse::<usize>()
                .ok()
                .map(|n| (format!("DMTL_THREADS={v}"), n))
        }),
    };
    if let Some((what, n)) = asked {
        let max = max_threads();
        if n > max {
            eprintln!(
                "error: {what}: at most {max} (4 per core, or 64 when that is more); more \
                 threads than that only slow the run down"
            );
            return ExitCode::FAILURE;
        }
    }
    dmtl_tensor::threads::init(cli.threads);
    // Under `mpirun -np N` (N > 1): this process is one rank of a data-parallel job.
    let ranks = match Ranks::join() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let rank = ranks.as_ref().map_or(0, Ranks::rank);
    if let Some(r) = &ranks {
        if !matches!(cli.command, Command::Train { .. }) {
            r.abort(&anyhow::anyhow!(
                "only `dmtl train` runs over several ranks ({} were started); run the other \
                 commands in one process",
                r.size()
            ));
        }
    }
    let progress = Progress::new(cli.quiet || rank > 0);
    match run(cli.command, &progress, rank) {
        Ok(()) => ExitCode::SUCCESS,
        // One rank failing ends the whole job, naming the rank.
        Err(e) => match &ranks {
            Some(r) if r.stopped_everywhere(&e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
            Some(r) => r.abort(&e),
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The most threads `--threads` accepts: 4 per core, at least 64 (thousands of threads take
/// seconds to start and spin, and far more never finish starting).
fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (4 * cores).max(64)
}

fn run(command: Command, progress: &Progress, rank: usize) -> anyhow::Result<()> {
    match command {
        Command::Demo {
            seeds,
            scale,
            out,
            k,
            epochs,
            precision,
        } => {
            let r = commands::demo(
                &DemoOptions {
                    seeds,
                    scale,
                    out,
                    k,
                    epochs,
                    precision,
                },
                progress,
            )?;
            let wall: f64 = r.runs.iter().map(|m| m.wall_seconds).sum();
            println!("{}", r.table);
            println!(
                "{} seed(s), {:.0} s; report: {}",
                r.runs.len(),
                wall,
                r.dir.join(dmtl_runner::layout::REPORT_FILE).display()
            );
        }
        Command::Train {
            config,
            out,
            resume,
        } => {
            if rank > 0 {
                return ranks::train_follower(config.as_deref(), resume.as_deref(), rank, progress);
            }
            let (dir, m) = match (&resume, &config) {
                (Some(run), _) => commands::train_resume(run, progress)?,
                (None, Some(config)) => commands::train(config, out.as_deref(), progress)?,
                (None, None) => anyhow::bail!("give --config or --resume"),
            };
            let cfg = dmtl_runner::RunConfig::load(&dir.join(dmtl_runner::layout::CONFIG_FILE))?;
            println!("{}", dmtl_runner::report::table(&m.models, cfg.eval.k));
            println!(
                "{:.0} s; report: {}",
                m.wall_seconds,
                dir.join(dmtl_runner::layout::REPORT_FILE).display()
            );
        }
        Command::Score {
            run,
            log,
            out,
            model,
        } => {
            let s = commands::score(&run, &log, &out, model)?;
            if s.unseen_users + s.unseen_items > 0 {
                eprintln!(
                    "note: {}: {} rows with a user and {} with an item unseen in training, scored with the out-of-vocabulary id",
                    log.display(),
                    s.unseen_users,
                    s.unseen_items
                );
            }
            println!(
                "{} rows scored with {model} -> {} ({} rows with an unseen user, {} with an unseen item)",
                s.user_ids.len(),
                out.display(),
                s.unseen_users,
                s.unseen_items
            );
        }
        Command::Export { run, out, model } => {
            let m = commands::export(&run, &out, model)?;
            println!(
                "{} users and {} items of dimension {} ({}) -> {}",
                m.users,
                m.items,
                m.dim,
                m.model,
                out.display()
            );
        }
        Command::Retrieve {
            run,
            users,
            k,
            out,
            model,
        } => {
            let r = commands::retrieve(&run, &users, k, &out, model)?;
            let unseen = r.known_user.iter().filter(|&&k| !k).count();
            if unseen > 0 {
                eprintln!(
                    "note: {}: {unseen} of {} users unseen in training, served with the out-of-vocabulary user id (known_user = 0 in {})",
                    users.display(),
                    r.user_ids.len(),
                    out.display()
                );
            }
            println!(
                "top-{k} for {} users -> {} ({unseen} users unseen in training: scored with the out-of-vocabulary id)",
                r.user_ids.len(),
                out.display()
            );
        }
        #[cfg(feature = "serve")]
        Command::Serve(opts) => dmtl_serve::run(&opts)?,
        Command::Simulate {
            out,
            scale,
            parquet,
            seed,
        } => {
            let mut cfg = scale.sim_config();
            if let Some(s) = seed {
                cfg.seed = s;
            }
            for p in commands::simulate(&out, cfg, parquet)? {
                println!("{}", p.display());
            }
        }
    }
    Ok(())
}
