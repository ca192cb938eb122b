//! Each rank's share of a global mean: the weight of its gradient in the sum over ranks.
//!
//! A global batch is split over the ranks and each rank's loss is the mean over its own rows,
//! so the global batch's mean gradient is the sum of the ranks' gradients, each weighted by
//! `rows / global rows` (or, for a weighted mean, by its share of the total weight).

use crate::{Collective, DistError};

/// Every rank's count (its rows, or the sum of its rows' weights) and so its share.
#[derive(Debug, Clone, PartialEq)]
pub struct Shares {
    counts: Vec<f64>,
}

impl Shares {
    /// From every rank's count, by rank (known without communication when the split is fixed,
    /// as `dmtl_tensor::parallel::shard_ranges` makes it).
    pub fn from_counts(counts: Vec<f64>) -> Shares {
        Shares { counts }
    }

    /// Gathers every rank's `local` count (one all-gather, exact: each count travels as its 64
    /// bits).
    ///
    /// # Errors
    /// What the collective returns.
    pub fn gather<C: Collective + ?Sized>(coll: &C, local: f64) -> Result<Shares, DistError> {
        let bits = local.to_bits();
        let g = coll.all_gather_u32(&[bits as u32, (bits >> 32) as u32])?;
        let counts = g
            .parts()
            .map(|p| f64::from_bits(u64::from(p[0]) | (u64::from(p[1]) << 32)))
            .collect();
        Ok(Shares { counts })
    }

    /// The sum of the counts (the global batch's rows), summed in rank order.
    pub fn total(&self) -> f64 {
        self.counts.iter().sum()
    }

    /// Rank `rank`'s weight, `count / total`; when the total is not positive and finite (no
    /// weight anywhere), an equal share `1 / ranks`.
    ///
    /// # Panics
    /// When `rank` is not below the number of ranks.
    pub fn weight(&self, rank: usize) -> f32 {
        let total = self.total();
        if total > 0.0 && total.is_finite() {
            (self.counts[rank] / total) as f32
        } else {
            1.0 / self.counts.len() as f32
        }
    }
}
