//! The project's task runner: `cargo xtask <command>`.
//!
//! xtask links no BLAS on purpose: it checks for the system OpenBLAS (and installs it where it
//! can) before building anything that links it, then hands over to cargo and to the `dmtl`
//! binary of `crates/dmtl-runner`, which holds the pipeline itself.

use std::path::{Path, PathBuf};
use std::process::{exit, Command};

mod alternate;
mod bench;
mod mpi;
mod scaling;

const HELP: &str = "\
cargo xtask <command> [args]

Commands:
  demo [args]      The paper's experiment on the built-in simulator, end to end (release build).
                   Arguments go to `dmtl demo`, e.g. `cargo xtask demo --seeds 3`.
  test [args]      The whole test suite (`cargo test --workspace`); extra args go to cargo test.
                   Without args, then the MPI test of dmtl-dist on 2 and 3 ranks (installs
                   OpenMPI and libclang-dev where it can; skipped with a note where it cannot).
  bench [args]     One table of every figure of the reference workload beside its PyTorch /
                   Faiss / pandas twin measured in the same run, and the ratio; also the peak
                   memory of a teacher training run beside PyTorch's. Teacher and student
                   steps, scoring and the user tower are timed in turn with PyTorch, in
                   clean windows (`--rounds N`, default 3; `--windows N` per run, default
                   7; `--only teacher_train,...` for just those rows); retrieval and
                   ingest by criterion (other args go to criterion). `--summary-only`
                   re-reads the stored results. Every crate's own benches:
                   `cargo bench --workspace`.
  scaling [--quick] [--only a,b] [--plot-only]
                   How cost grows with the work: the teacher step against batch size, threads,
                   experts and width, exact top-100 against corpus size beside Faiss, CSV and
                   Parquet reads against log length with peak memory, each point beside its
                   SGEMM or memory-bandwidth bound; CSV files and plots in docs/img/scaling.
  train|score|export|retrieve|simulate|serve [args]
                   The `dmtl` runner's commands, in a release build (`cargo xtask train --help`).
                   `train --ranks N [args]`: data-parallel training on N processes under
                   mpirun (builds with the `mpi` feature; installs OpenMPI where it can).
  setup            Only check for (and install) the system libraries.

Set DMTL_PURE_RUST=1 to build without OpenBLAS (ndarray's pure-Rust matrix product).
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().map(String::as_str) else {
        print!("{HELP}");
        exit(2);
    };
    let rest = &args[1..];
    let root = workspace_root();
    let pure = std::env::var("DMTL_PURE_RUST").is_ok_and(|v| v == "1");
    match cmd {
        "-h" | "--help" | "help" => print!("{HELP}"),
        "setup" => ensure_openblas(),
        "test" => {
            if !pure {
                ensure_openblas();
            }
            let mut c = cargo(&root);
            c.args(["test", "--workspace"]);
            // One test at a time within each test binary: the BLAS thread count is one setting
            // per process, and the tests that train twice and compare bit for bit would see
            // another test's one-thread BLAS scope between their runs.
            if std::env::var_os("RUST_TEST_THREADS").is_none() {
                c.env("RUST_TEST_THREADS", "1");
            }
            if pure {
                c.arg("--no-default-features");
            }
            c.args(rest);
            run(c);
            if rest.is_empty() {
                mpi::test(&root, pure);
            }
        }
        "bench" => {
            let opts = bench::Options::parse(rest).unwrap_or_else(|e| {
                eprintln!("error: {e}");
                exit(2)
            });
            ensure_openblas();
            let threads = std::env::var("DMTL_THREADS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(2usize);
            bench::command(&root, threads, &opts, || cargo(&root));
        }
        "scaling" => {
            let opts = scaling::Options::parse(rest).unwrap_or_else(|e| {
                eprintln!("error: {e}");
                exit(2)
            });
            if !opts.plot_only {
                ensure_openblas();
            }
            scaling::command(&root, &opts, || cargo(&root));
        }
        "demo" | "train" | "score" | "export" | "retrieve" | "simulate" | "serve" => {
            if !pure {
                ensure_openblas();
            }
            match ranks_arg(cmd, rest) {
                Some((ranks, other)) if ranks > 1 => mpi::train(&root, ranks, &other),
                _ => runner(&root, &args),
            }
        }
        other => {
            eprintln!("error: unknown command `{other}`\n\n{HELP}");
            exit(2);
        }
    }
}

/// `train --ranks N ...`: N and the other arguments (exits with a message when N is not a
/// whole number).
fn ranks_arg(cmd: &str, rest: &[String]) -> Option<(usize, Vec<String>)> {
    if cmd != "train" {
        return None;
    }
    let i = rest.iter().position(|a| a == "--ranks")?;
    let Some(n) = rest
        .get(i + 1)
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    else {
        eprintln!("error: --ranks needs a number of processes, e.g. --ranks 2");
        exit(2);
    };
    let mut other = rest.to_vec();
    other.drain(i..i + 2);
    Some((n, other))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

fn cargo(root: &Path) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root);
    c
}

/// Builds and runs the `dmtl` binary in release mode with `args`, in the folder `cargo xtask`
/// was started in, so that relative paths in `args` mean what they say there.
fn runner(root: &Path, args: &[String]) {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(["run", "--release", "--quiet", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .args(["-p", "dmtl-runner", "--bin", "dmtl", "--"]);
    c.args(args);
    run(c);
}

fn run(mut c: Command) {
    match c.status() {
        Ok(s) if s.success() => {}
        Ok(s) => exit(s.code().unwrap_or(1)),
        Err(e) => {
            eprintln!("error: could not start {:?}: {e}", c.get_program());
            exit(1);
        }
    }
}

/// True when the linker can find the system OpenBLAS (`libopenblas.so` from libopenblas-dev).
fn openblas_present() -> bool {
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
        "/usr/lib64",
        "/usr/local/lib",
        "/usr/lib/x86_64-linux-gnu/openblas-pthread",
        "/usr/lib/aarch64-linux-gnu/openblas-pthread",
    ];
    dirs.iter()
        .any(|d| Path::new(d).join("libopenblas.so").exists())
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// True when this process can install Debian packages (root, with apt-get).
fn can_apt_install() -> bool {
    is_root() && have("apt-get")
}

/// Installs `packages` with apt-get, refreshing the package lists once when the first try
/// fails; the caller checks for what it needs afterwards.
fn apt_install(packages: &[&str]) {
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        eprintln!("xtask: refreshing the package lists (apt-get update) and trying again");
        let _ = Command::new("apt-get").arg("update").status();
        install();
    }
}

/// Makes sure the system OpenBLAS is installed: installs `libopenblas-dev` with apt-get when
/// running as root, otherwise stops with one sentence naming the package.
fn ensure_openblas() {
    if openblas_present() {
        return;
    }
    if can_apt_install() {
        eprintln!("xtask: the system OpenBLAS is missing; installing libopenblas-dev with apt-get");
        apt_install(&["libopenblas-dev"]);
        if openblas_present() {
            return;
        }
    }
    eprintln!(
        "error: dmtl needs the system OpenBLAS: install the package libopenblas-dev \
         (e.g. `sudo apt-get install libopenblas-dev`) and run the command again, \
         or set DMTL_PURE_RUST=1 to build without it."
    );
    exit(1);
}
