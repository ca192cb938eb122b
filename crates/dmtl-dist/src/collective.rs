//! The `Collective` trait: the few collective operations data-parallel training needs, over
//! one process ([`crate::Local`]) or MPI ([`crate::Mpi`], behind the `mpi` feature).

use std::fmt::Display;

use crate::DistError;

/// Collective operations over the ranks of one job. Every rank must make the same calls in the
/// same order (with equal lengths where a call says so); a call returns once every rank has made
/// it.
pub trait Collective {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;

    /// The number of ranks.
    fn size(&self) -> usize;

    /// Replaces `buf` by its element-wise sum over all ranks. Every rank passes a buffer of the
    /// same length. Every rank gets the same sum.
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<(), DistError>;

    /// Every rank's `local` (of any length), concatenated in rank order.
    fn all_gather_u32(&self, local: &[u32]) -> Result<Gathered<u32>, DistError>;

    /// Every rank's `local` (of any length), concatenated in rank order.
    fn all_gather_f32(&self, local: &[f32]) -> Result<Gathered<f32>, DistError>;

    /// Replaces `bytes` on every rank by rank 0's `bytes` (the other ranks' contents, and
    /// lengths, do not matter).
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) -> Result<(), DistError>;

    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<(), DistError>;

    /// Ends the whole job (every rank) with exit code `code`; for a rank that cannot go on, so
    /// that the others do not wait for it forever.
    fn abort(&self, code: i32) -> !;
}

/// The result of an all-gather: every rank's part, concatenated in rank order.
#[derive(Debug, Clone, PartialEq)]
pub struct Gathered<T> {
    /// The parts, concatenated.
    pub values: Vec<T>,
    /// The length of each rank's part, by rank.
    pub counts: Vec<usize>,
}

impl<T> Gathered<T> {
    /// The gathered parts of `parts` (rank `r`'s part is `parts[r]`), as an all-gather returns
    /// them.
    pub fn from_parts(parts: Vec<Vec<T>>) -> Self {
        let counts = parts.iter().map(Vec::len).collect();
        Gathered {
            values: parts.into_iter().flatten().collect(),
            counts,
        }
    }

    /// The number of ranks gathered from.
    pub fn ranks(&self) -> usize {
        self.counts.len()
    }

    /// Rank `rank`'s part.
    ///
    /// # Panics
    /// When `rank` is not below [`Gathered::ranks`].
    pub fn part(&self, rank: usize) -> &[T] {
        let start: usize = self.counts[..rank].iter().sum();
        &self.values[start..start + self.counts[rank]]
    }

    /// Every rank's part, in rank order.
    pub fn parts(&self) -> impl Iterator<Item = &[T]> {
        let mut start = 0;
        self.counts.iter().map(move |&n| {
            let p = &self.values[start..start + n];
            start += n;
            p
        })
    }
}

/// `result`'s value, or, on an error, a line `error: rank R of N: ...` on standard error and the
/// whole job ended with exit code 1 through [`Collective::abort`]: what a rank that cannot go on
/// does, so the job stops at once with an error naming the rank instead of the other ranks
/// waiting for it.
pub fn unwrap_or_abort<C, T, E>(coll: &C, result: Result<T, E>) -> T
where
    C: Collective + ?Sized,
    E: Display,
{
    match result {
        Ok(v) => v,
        Err(e) => abort_with(coll, &e),
    }
}

/// Writes `error: rank R of N: {err}` to standard error and ends the whole job with exit code 1.
pub fn abort_with<C: Collective + ?Sized>(coll: &C, err: &dyn Display) -> ! {
    eprintln!("error: rank {} of {}: {err}", coll.rank(), coll.size());
    coll.abort(1)
}
