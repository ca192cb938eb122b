//! Collective communication for data-parallel training.
//!
//! - [`Collective`]: rank, size, all-reduce (sum of `f32`), all-gather of variable-length `u32`
//!   and `f32` buffers, broadcast of bytes from rank 0, barrier, abort. [`Local`] is the job of
//!   one process (every call the identity, the default); `Mpi` (cargo feature `mpi`, off by
//!   default) is `MPI_COMM_WORLD` over the system's MPI.
//! - [`exchange`]: the sum over ranks of a step's gradients, dense ones in one all-reduced
//!   buffer, embedding ones as sparse rows all-gathered and merged identically on every rank;
//!   [`Shares`] weighs each rank's gradient for the global batch's mean.
//! - [`hash`]: a hash of all parameters and the check that every rank holds the same.
//!
//! [`world`] picks the collective: MPI's when `mpirun` started the program with several ranks,
//! [`Local`] otherwise. Every failure is a [`DistError`] naming the rank; [`unwrap_or_abort`] ends the whole job
//! with such an error when one rank cannot go on. docs/distributed.md describes what is
//! exchanged per step and its cost.

#![deny(missing_docs)]

pub mod collective;
pub mod error;
pub mod exchange;
pub mod hash;
pub mod launch;
pub mod local;
#[cfg(feature = "mpi")]
pub mod mpi_comm;
pub mod shares;

pub use collective::{abort_with, unwrap_or_abort, Collective, Gathered};
pub use error::DistError;
pub use exchange::{sum_over_ranks, ExchangeStats, Layout, Summed};
pub use hash::{bytes_hash, check_same_params, first_differing, param_hash};
pub use launch::world;
pub use local::Local;
#[cfg(feature = "mpi")]
pub use mpi_comm::Mpi;
pub use shares::Shares;
