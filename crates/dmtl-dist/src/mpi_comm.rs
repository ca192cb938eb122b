//! The collective over MPI (the `mpi` crate over the system's OpenMPI), behind the `mpi`
//! feature.
//!
//! MPI's default error handler ends the job on a failed call (a lost peer, a truncated
//! message), so the errors left for this type to return are the ones it can see before calling
//! MPI: a failed start and buffers too long for MPI's 32-bit counts. Lengths are exchanged
//! first, so every rank sees such an error at the same call and none is left waiting.

use ::mpi::collective::SystemOperation;
use ::mpi::datatype::PartitionMut;
use ::mpi::environment::Universe;
use ::mpi::topology::SimpleCommunicator;
use ::mpi::traits::{Communicator, CommunicatorCollectives, Equivalence, Root};
use ::mpi::{Count, Threading};

use crate::launch::launcher_rank;
use crate::{Collective, DistError, Gathered};

/// `MPI_COMM_WORLD` of a job started by an MPI launcher (`mpirun -np N program`). MPI is
/// finalised when this value is dropped.
pub struct Mpi {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpi")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish()
    }
}

impl Mpi {
    /// Starts MPI in this process. Only the thread that calls this may make MPI calls (MPI's
    /// "funneled" level: the other threads only compute).
    ///
    /// # Errors
    /// [`DistError::Init`] when MPI was already started in this process or cannot give the
    /// funneled thread level.
    pub fn init() -> Result<Mpi, DistError> {
        let (universe, level) =
            ::mpi::initialize_with_threading(Threading::Funneled).ok_or(DistError::Init {
                rank: launcher_rank(),
                reason: "MPI was already initialised in this process",
            })?;
        if level < Threading::Funneled {
            return Err(DistError::Init {
                rank: launcher_rank(),
                reason: "the MPI library does not support calls from a multi-threaded process",
            });
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Mpi {
            world,
            rank,
            size,
            _universe: universe,
        })
    }

    /// Every rank's `len`, by rank; an error on every rank when one of them, or their sum, is
    /// more than one MPI call carries.
    fn gather_counts(&self, len: usize) -> Result<Vec<Count>, DistError> {
        let mut lens = vec![0u64; self.size];
        self.world.all_gather_into(&(len as u64), &mut lens[..]);
        let too_large = |from, len| DistError::TooLarge {
            rank: self.rank,
            from,
            len,
        };
        let mut total = 0u64;
        for (from, &n) in lens.iter().enumerate() {
            total += n;
            if n > Count::MAX as u64 {
                return Err(too_large(from, n));
            }
        }
        if total > Count::MAX as u64 {
            return Err(too_large(self.rank, total));
        }
        Ok(lens.into_iter().map(|n| n as Count).collect())
    }

    fn all_gather<T: Equivalence + Copy + Default>(
        &self,
        local: &[T],
    ) -> Result<Gathered<T>, DistError> {
        let counts = self.gather_counts(local.len())?;
        let displs: Vec<Count> = counts
            .iter()
            .scan(0, |acc, &n| {
                let start = *acc;
                *acc += n;
                Some(start)
            })
            .collect();
        let total: usize = counts.iter().map(|&n| n as usize).sum();
        let mut values = vec![T::default(); total];
        {
            let mut partition = PartitionMut::new(&mut values[..], &counts[..], &displs[..]);
            self.world.all_gather_varcount_into(local, &mut partition);
        }
        Ok(Gathered {
            values,
            counts: counts.into_iter().map(|n| n as usize).collect(),
        })
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<(), DistError> {
        if buf.len() > Count::MAX as usize {
            return Err(DistError::TooLarge {
                rank: self.rank,
                from: self.rank,
                len: buf.len() as u64,
            });
        }
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }

    fn all_gather_u32(&self, local: &[u32]) -> Result<Gathered<u32>, DistError> {
        self.all_gather(local)
    }

    fn all_gather_f32(&self, local: &[f32]) -> Result<Gathered<f32>, DistError> {
        self.all_gather(local)
    }

    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) -> Result<(), DistError> {
        let root = self.world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        if len > Count::MAX as u64 {
            return Err(DistError::TooLarge {
                rank: self.rank,
                from: 0,
                len,
            });
        }
        bytes.resize(len as usize, 0);
        root.broadcast_into(&mut bytes[..]);
        Ok(())
    }

    fn barrier(&self) -> Result<(), DistError> {
        self.world.barrier();
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
