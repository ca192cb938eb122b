//! The MPI test of `cargo xtask test`: dmtl-dist built with its `mpi` feature and its
//! `tests/mpi.rs` run, which launches jobs of 2 and 3 ranks with `mpirun`. OpenMPI and
//! libclang (the `mpi` crate generates its bindings with bindgen) are installed with apt-get
//! where xtask can (root); elsewhere the test is skipped with one line saying why.

use std::path::Path;

use crate::{apt_install, can_apt_install, cargo, have, run};

/// The Debian packages the MPI test needs.
const PACKAGES: [&str; 3] = ["libopenmpi-dev", "openmpi-bin", "libclang-dev"];

/// True when some `libclang*.so*` sits in a directory where bindgen's clang-sys looks.
fn libclang_present() -> bool {
    let mut dirs = vec![
        "/usr/lib/x86_64-linux-gnu".into(),
        "/usr/lib/aarch64-linux-gnu".into(),
        "/usr/lib".into(),
        "/usr/lib64".into(),
        "/usr/local/lib".into(),
    ];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        dirs.extend(
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("llvm-"))
                .map(|e| e.path().join("lib")),
        );
    }
    dirs.iter().any(|d: &std::path::PathBuf| {
        std::fs::read_dir(d).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libclang") && name.contains(".so")
            })
        })
    })
}

/// True when OpenMPI's launcher and compiler wrapper (which the `mpi` crate's build asks for
/// the flags) and libclang are installed.
fn mpi_present() -> bool {
    have("mpirun") && have("mpicc") && libclang_present()
}

/// Runs the MPI test when OpenMPI is installed or can be; otherwise prints one line and
/// returns. A failing test ends xtask with its exit code.
pub fn test(root: &Path, pure: bool) {
    if !mpi_present() && can_apt_install() {
        eprintln!(
            "xtask: installing {} with apt-get for the MPI test",
            PACKAGES.join(" ")
        );
        apt_install(&PACKAGES);
    }
    if !mpi_present() {
        eprintln!(
            "xtask: skipping the MPI test: it needs {} (mpirun, mpicc, libclang), which are \
             missing and cannot be installed here (needs root and apt-get)",
            PACKAGES.join(" ")
        );
        return;
    }
    // Both MPI tests in one build of the whole workspace: its features then unify as in the
    // suite's own build, so only the crates the `mpi` feature changes are built again (a build
    // of one package resolves the shared dependencies' features anew and rebuilds them).
    // dmtl-dist's: collectives and the exchange on 2 ranks; dmtl-runner's: the split step
    // against one process, `dmtl train` on 2 ranks.
    let mut c = cargo(root);
    c.args([
        "test",
        "--workspace",
        "--features",
        "dmtl-dist/mpi,dmtl-runner/mpi",
        "--test",
        "mpi",
    ]);
    if pure {
        c.arg("--no-default-features");
    }
    run(c);
}

/// Makes sure MPI is there (installing it where it can), or stops with one sentence.
fn ensure_mpi() {
    if !mpi_present() && can_apt_install() {
        eprintln!("xtask: installing {} with apt-get", PACKAGES.join(" "));
        apt_install(&PACKAGES);
    }
    if !mpi_present() {
        eprintln!(
            "error: training over several ranks needs {} (mpirun, mpicc, libclang); install \
             them, or run as root where apt-get can",
            PACKAGES.join(" ")
        );
        std::process::exit(1);
    }
}

/// `cargo xtask train --ranks N [dmtl train args]`: builds `dmtl` in release mode with the
/// `mpi` feature and starts `dmtl train` on `N` ranks under `mpirun` on this machine, each rank
/// with its share of the cores as BLAS and Rayon threads (at least one).
pub fn train(root: &Path, ranks: usize, args: &[String]) {
    ensure_mpi();
    let mut c = cargo(root);
    c.args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "dmtl-runner",
        "--features",
        "mpi",
        "--bin",
        "dmtl",
    ]);
    run(c);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = std::env::var("DMTL_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or((cores / ranks).max(1));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let mut c = std::process::Command::new("mpirun");
    c.args(["--oversubscribe", "--bind-to", "none"]);
    if crate::is_root() {
        c.arg("--allow-run-as-root");
    }
    c.args(["-x", &format!("DMTL_THREADS={threads}")]);
    c.args(["-np", &ranks.to_string()]);
    c.arg(target.join("release").join("dmtl"));
    c.arg("train");
    c.args(args);
    run(c);
}
