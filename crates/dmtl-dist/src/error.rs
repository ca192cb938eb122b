//! What a collective or an exchange over ranks can fail with: every error names the rank that
//! reports it, so a job's log says which process failed.

use thiserror::Error;

/// A failure of a collective call or of the data exchanged through one.
#[derive(Debug, Error)]
pub enum DistError {
    /// MPI could not be started in this process.
    #[error("rank {}: MPI could not be initialised: {reason}", rank_text(*rank))]
    Init {
        /// The rank the launcher gave this process (from its environment), when it says.
        rank: Option<usize>,
        /// Why.
        reason: &'static str,
    },
    /// An MPI launcher started several ranks, but this build has no MPI (the `mpi` feature).
    #[error(
        "rank {}: started as one of {size} ranks by an MPI launcher, but built without the \
         `mpi` feature: rebuild with `--features mpi`",
        rank_text(*rank)
    )]
    NoMpi {
        /// The rank the launcher gave this process.
        rank: Option<usize>,
        /// The number of ranks it started.
        size: usize,
    },
    /// A buffer longer than one MPI call can carry (counts are 32-bit signed integers).
    #[error("rank {rank}: rank {from} sends {len} elements, more than one MPI call carries ({max})", max = i32::MAX)]
    TooLarge {
        /// The rank reporting the error.
        rank: usize,
        /// The rank whose buffer is too long.
        from: usize,
        /// Its length in elements (a total over ranks when `from` is this rank's own gather).
        len: u64,
    },
    /// The gradients gathered from rank `from` do not fit this rank's parameters (another
    /// model, another vocabulary, or a corrupted exchange).
    #[error("rank {rank}: the gradients from rank {from} do not fit this model: {reason}")]
    Layout {
        /// The rank reporting the error.
        rank: usize,
        /// The rank whose data does not fit.
        from: usize,
        /// What does not fit.
        reason: String,
    },
    /// The parameters are not the same on every rank.
    #[error(
        "rank {rank}: the parameters differ between ranks: rank {first} has hash {hash:016x}, \
         rank 0 has {expected:016x}"
    )]
    ParamsDiffer {
        /// The rank reporting the error.
        rank: usize,
        /// The first rank whose parameter hash differs from rank 0's.
        first: usize,
        /// That rank's hash.
        hash: u64,
        /// Rank 0's hash.
        expected: u64,
    },
}

impl DistError {
    /// The rank reporting the error (`None` only when MPI did not start and the launcher did not say).
    pub fn rank(&self) -> Option<usize> {
        match self {
            DistError::Init { rank, .. } | DistError::NoMpi { rank, .. } => *rank,
            DistError::TooLarge { rank, .. }
            | DistError::Layout { rank, .. }
            | DistError::ParamsDiffer { rank, .. } => Some(*rank),
        }
    }
}

fn rank_text(rank: Option<usize>) -> String {
    rank.map_or_else(|| "?".to_string(), |r| r.to_string())
}
