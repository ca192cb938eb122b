//! One query's running top K, shared by both search paths, and the parallel grid of (query
//! range x item range) tasks whose partial top Ks are merged per query.

use rayon::prelude::*;
use std::cmp::Ordering;

/// Ranking order of (score, index) pairs: higher score first, then the lower index.
#[inline]
pub(super) fn rank_order(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    // Candidates are never NaN, so the partial order is total here.
    b.0.partial_cmp(&a.0)
        .unwrap_or(Ordering::Equal)
        .then(a.1.cmp(&b.1))
}

/// One query's running top K: a buffer of candidates with a threshold.
///
/// A candidate is appended in O(1); when the buffer holds `cap` entries it is cut back to the
/// best K (by score, then lower index) with a linear-time selection, and the threshold becomes
/// the K-th best score. That costs O(1) amortised per candidate however many scores tie,
/// against O(log K) with unpredictable branches for a heap. The buffer may be in any index
/// order, so the result is the top K of all candidates offered, whatever order they came in.
#[derive(Clone)]
pub(super) struct Candidates {
    k: usize,
    cap: usize,
    /// Once K candidates were seen: the K-th best score known, `-inf` before. The final K-th
    /// best can only be higher, so a candidate scoring below it never enters the result.
    threshold: f32,
    filled: bool,
    buf: Vec<(f32, u32)>,
    /// Room for the scores during a cut.
    scratch: Vec<f32>,
}

impl Candidates {
    /// An empty top `k` (`k >= 1`).
    pub(super) fn new(k: usize) -> Self {
        Self {
            k,
            cap: k.saturating_mul(2).max(k + 32),
            threshold: f32::NEG_INFINITY,
            filled: false,
            // Reserved lazily: k may exceed the corpus.
            buf: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// `true` once K candidates were seen, so that [`Candidates::threshold`] means something.
    #[inline]
    pub(super) fn is_filled(&self) -> bool {
        self.filled
    }

    /// The K-th best score known once [`Candidates::is_filled`], `-inf` before.
    #[inline]
    pub(super) fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Offers the score `s` of item `i`; NaN and, once filled, scores below the threshold are
    /// not taken (a score equal to it may still win on a lower index). Returns `true` when the
    /// threshold changed.
    #[inline]
    pub(super) fn offer(&mut self, s: f32, i: u32) -> bool {
        if s.is_nan() || (self.filled && s < self.threshold) {
            return false;
        }
        self.buf.push((s, i));
        if !self.filled {
            if self.buf.len() == self.k {
                // The worst of the first K: nothing below it can enter any more.
                self.filled = true;
                self.threshold = self.buf.iter().fold(f32::INFINITY, |m, c| m.min(c.0));
                return true;
            }
            false
        } else if self.buf.len() >= self.cap {
            self.compact();
            true
        } else {
            false
        }
    }

    /// Keeps the best K and raises the threshold to the K-th best score.
    fn compact(&mut self) {
        if self.buf.len() <= self.k {
            if self.buf.len() == self.k && !self.filled {
                // K reached by a merge.
                self.filled = true;
                self.threshold = self.buf.iter().fold(f32::INFINITY, |m, c| m.min(c.0));
            }
            return;
        }
        // Selecting on bare scores is much cheaper than on (score, index) pairs.
        self.scratch.clear();
        self.scratch.extend(self.buf.iter().map(|c| c.0));
        let (better, &mut th, _) = self.scratch.select_nth_unstable_by(self.k - 1, |a, b| {
            b.partial_cmp(a).unwrap_or(Ordering::Equal)
        });
        let above = better.iter().filter(|&&s| s > th).count();
        let need = self.k - above;
        let ties = self.buf.iter().filter(|c| c.0 == th).count();
        // Among the scores equal to the K-th, the lowest indices win.
        let last = if ties > need {
            let mut idx: Vec<u32> = self.buf.iter().filter(|c| c.0 == th).map(|c| c.1).collect();
            *idx.select_nth_unstable(need - 1).1
        } else {
            u32::MAX
        };
        self.buf.retain(|c| c.0 > th || (c.0 == th && c.1 <= last));
        debug_assert_eq!(self.buf.len(), self.k);
        self.filled = true;
        self.threshold = th;
    }

    /// Folds in the candidates of the same query from another item range.
    pub(super) fn merge(&mut self, other: Candidates) {
        self.buf.extend(other.buf);
        self.compact();
    }

    /// The top K (fewer when fewer were offered), best first.
    pub(super) fn into_sorted(mut self) -> Vec<(f32, u32)> {
        self.compact();
        self.buf.sort_unstable_by(rank_order);
        self.buf
    }
}

/// `n` cut into `parts` contiguous ranges of nearly equal length (at least one range, none
/// empty unless `n` is 0).
pub(super) fn split(n: usize, parts: usize) -> Vec<(usize, usize)> {
    let parts = parts.clamp(1, n.max(1));
    (0..parts)
        .map(|p| (n * p / parts, n * (p + 1) / parts))
        .collect()
}

/// Runs `task(row range, item range)` for every pair of `rows` ranges and `items` ranges on
/// Rayon's pool and merges the item ranges of each row: the rows' top Ks, in row order.
///
/// A task returns the [`Candidates`] of its row range in order, as many for each item range
/// (one per query, or per lane of a panel of queries).
pub(super) fn search_grid<F>(
    rows: &[(usize, usize)],
    items: &[(usize, usize)],
    task: F,
) -> Vec<Candidates>
where
    F: Fn((usize, usize), (usize, usize)) -> Vec<Candidates> + Sync,
{
    let tasks: Vec<((usize, usize), (usize, usize))> = rows
        .iter()
        .flat_map(|&r| items.iter().map(move |&i| (r, i)))
        .collect();
    let partial: Vec<Vec<Candidates>> = tasks.par_iter().map(|&(r, i)| task(r, i)).collect();
    let mut out = Vec::new();
    let mut partial = partial.into_iter();
    for _ in rows {
        let mut acc = partial.next().expect("one result per task");
        for _ in 1..items.len() {
            let other = partial.next().expect("one result per task");
            for (a, b) in acc.iter_mut().zip(other) {
                a.merge(b);
            }
        }
        out.extend(acc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever order the candidates come in and however the item ranges are cut, the result
    /// is the top K by (score, lower index) of all non-NaN offers.
    #[test]
    fn top_k_of_any_order_and_any_merge() {
        let scores: Vec<f32> = (0..300u32)
            .map(|i| match i % 7 {
                0 => f32::NAN,
                1 | 2 => 1.0,
                _ => ((i * 37) % 11) as f32,
            })
            .collect();
        let mut want: Vec<(f32, u32)> = scores
            .iter()
            .enumerate()
            .filter(|c| !c.1.is_nan())
            .map(|(i, &s)| (s, i as u32))
            .collect();
        want.sort_by(rank_order);
        for k in [1, 5, 40, 255, 400] {
            for parts in [1, 2, 7] {
                let ranges = split(scores.len(), parts);
                let got = search_grid(&[(0, 1)], &ranges, |_, (i0, i1)| {
                    let mut c = Candidates::new(k);
                    // Reversed within a range: the buffer is not in index order.
                    for i in (i0..i1).rev() {
                        c.offer(scores[i], i as u32);
                    }
                    vec![c]
                });
                let got = got.into_iter().next().unwrap().into_sorted();
                let n = k.min(want.len());
                assert_eq!(got, want[..n], "k={k} parts={parts}");
            }
        }
    }

    #[test]
    fn split_covers_the_range_evenly() {
        assert_eq!(split(10, 3), vec![(0, 3), (3, 6), (6, 10)]);
        assert_eq!(split(2, 5), vec![(0, 1), (1, 2)]);
        assert_eq!(split(0, 4), vec![(0, 0)]);
    }
}
