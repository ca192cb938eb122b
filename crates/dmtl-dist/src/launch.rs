//! The collective a program should use: MPI's when an MPI launcher started it with more than
//! one rank, [`Local`] otherwise.

use crate::{Collective, DistError, Local};

/// The number of ranks an MPI launcher (OpenMPI, MPICH, PMIx) started, from the environment
/// it gives each process; `None` when no launcher started this one.
pub fn launcher_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
}

/// The rank an MPI launcher gave this process, from its environment, for errors raised before
/// MPI can say.
pub fn launcher_rank() -> Option<usize> {
    ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
}

/// The job's collective: `Mpi` (feature `mpi`) when an MPI launcher started this process
/// with more than one rank, [`Local`] otherwise.
///
/// # Errors
/// What `Mpi::init` returns; [`DistError::NoMpi`] when a launcher started several ranks but
/// this build has no `mpi` feature (each rank would otherwise train alone and write the same
/// files).
pub fn world() -> Result<Box<dyn Collective>, DistError> {
    match launcher_size() {
        Some(size) if size > 1 => mpi_world(size),
        _ => Ok(Box::new(Local)),
    }
}

#[cfg(feature = "mpi")]
fn mpi_world(_size: usize) -> Result<Box<dyn Collective>, DistError> {
    Ok(Box::new(crate::Mpi::init()?))
}

#[cfg(not(feature = "mpi"))]
fn mpi_world(size: usize) -> Result<Box<dyn Collective>, DistError> {
    Err(DistError::NoMpi {
        rank: launcher_rank(),
        size,
    })
}
