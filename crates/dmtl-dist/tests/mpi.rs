//! The MPI collective in a real job: `mpi_check` (src/bin) launched by `mpirun` on 2 and 3
//! ranks, and a failing or crashing rank ending the whole job non-zero with its rank named.
//! Only with the `mpi` feature (and OpenMPI's `mpirun` on the PATH).

#![cfg(feature = "mpi")]

use std::process::{Command, Output};

/// Runs `mpi_check args` on `ranks` ranks under mpirun (at most 60 s, mpirun's own timeout).
fn mpirun(ranks: usize, args: &[&str]) -> (Output, String) {
    let out = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "--timeout", "60"])
        .args(["-np", &ranks.to_string(), env!("CARGO_BIN_EXE_mpi_check")])
        .args(args)
        // One BLAS and Rayon thread per rank: the ranks share the machine's cores.
        .env("DMTL_THREADS", "1")
        .output()
        .expect("mpirun (OpenMPI: apt-get install openmpi-bin libopenmpi-dev) must be on the PATH");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn every_collective_and_the_exchange_agree_with_local_computation() {
    for ranks in [2, 3] {
        let (out, text) = mpirun(ranks, &[]);
        assert!(out.status.success(), "{ranks} ranks:\n{text}");
        for r in 0..ranks {
            let line = format!("mpi_check: rank {r} of {ranks}: all checks passed");
            assert!(
                text.contains(&line),
                "{ranks} ranks, missing `{line}`:\n{text}"
            );
        }
    }
}

#[test]
fn a_failing_rank_ends_the_job_non_zero_naming_the_rank() {
    let (out, text) = mpirun(2, &["--fail-rank", "1"]);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("error: rank 1 of 2: failing on purpose"),
        "{text}"
    );
    // Rank 0 was stopped while waiting, not left to finish.
    assert!(!text.contains("all checks passed"), "{text}");
}

#[test]
fn a_crashing_rank_ends_the_job_non_zero_naming_the_rank() {
    let (out, text) = mpirun(2, &["--crash-rank", "1"]);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("rank 1"), "{text}");
    assert!(!text.contains("all checks passed"), "{text}");
}
