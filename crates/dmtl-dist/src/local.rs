//! The collective of a job of one process: every operation is the identity.

use crate::{Collective, DistError, Gathered};

/// One process, rank 0 of 1: sums and gathers over one rank return this rank's data. The
/// default when a program is not started by an MPI launcher.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

impl Collective for Local {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_sum(&self, _buf: &mut [f32]) -> Result<(), DistError> {
        Ok(())
    }

    fn all_gather_u32(&self, local: &[u32]) -> Result<Gathered<u32>, DistError> {
        Ok(Gathered::from_parts(vec![local.to_vec()]))
    }

    fn all_gather_f32(&self, local: &[f32]) -> Result<Gathered<f32>, DistError> {
        Ok(Gathered::from_parts(vec![local.to_vec()]))
    }

    fn broadcast_bytes(&self, _bytes: &mut Vec<u8>) -> Result<(), DistError> {
        Ok(())
    }

    fn barrier(&self) -> Result<(), DistError> {
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}
