//! Evaluation metrics for recommendation: ROC AUC, group AUC (GAUC), logloss, calibration,
//! recall@K and NDCG@K.
//!
//! Every metric takes plain slices, so it can be used on the output of any model. Labels are
//! `f32` with the convention of the rest of the project: a label above 0.5 is a positive.
//!
//! The plain functions ([`auc`], [`gauc`], ...) panic on inputs of different lengths and on NaN
//! scores (a caller's bug); each has a `try_` twin that returns a [`MetricError`] instead.

#![deny(missing_docs)]

use rayon::prelude::*;
use std::collections::HashSet;

/// Above this many elements the sorts run on Rayon's pool.
const PAR_SORT_MIN: usize = 1 << 15;

/// Lower and upper clip of probabilities in [`logloss`].
pub const LOGLOSS_EPS: f64 = 1e-7;

/// Why a metric could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// Two inputs that must pair up element by element have different lengths.
    #[error("length mismatch: `{left}` has {left_len} elements but `{right}` has {right_len}")]
    LengthMismatch {
        /// Name of the first argument.
        left: &'static str,
        /// Its length.
        left_len: usize,
        /// Name of the second argument.
        right: &'static str,
        /// Its length.
        right_len: usize,
    },
    /// A score or probability is NaN, so it cannot be ranked.
    #[error("`{arg}` is NaN at index {index}")]
    NaN {
        /// Name of the argument.
        arg: &'static str,
        /// Position of the first NaN.
        index: usize,
    },
    /// A weight is negative or not finite.
    #[error("weight at index {index} is {value}; weights must be finite and >= 0")]
    BadWeight {
        /// Position of the weight.
        index: usize,
        /// The offending value.
        value: f32,
    },
    /// AUC needs at least one positive and one negative (with positive weight).
    #[error("AUC is undefined: {positives} positives and {negatives} negatives")]
    OneClass {
        /// Number (or weight) of positives seen.
        positives: f64,
        /// Number (or weight) of negatives seen.
        negatives: f64,
    },
    /// No group holds both classes, so GAUC is undefined.
    #[error("GAUC is undefined: none of the {groups} groups holds both classes")]
    NoUsableGroup {
        /// Number of distinct groups seen.
        groups: usize,
    },
    /// The input is empty.
    #[error("`{arg}` is empty")]
    Empty {
        /// Name of the argument.
        arg: &'static str,
    },
}

fn check_len(
    left: &'static str,
    left_len: usize,
    right: &'static str,
    right_len: usize,
) -> Result<(), MetricError> {
    if left_len == right_len {
        Ok(())
    } else {
        Err(MetricError::LengthMismatch {
            left,
            left_len,
            right,
            right_len,
        })
    }
}

fn check_nan(arg: &'static str, xs: &[f32]) -> Result<(), MetricError> {
    match xs.iter().position(|x| x.is_nan()) {
        Some(index) => Err(MetricError::NaN { arg, index }),
        None => Ok(()),
    }
}

/// Maps a non-NaN `f32` to a `u32` whose unsigned order is the numeric order of the floats.
///
/// `-0.0` is mapped like `+0.0` so that the two count as a tie.
#[inline]
fn order_key(x: f32) -> u32 {
    let x = if x == 0.0 { 0.0f32 } else { x };
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

fn sort_u64(v: &mut [u64]) {
    if v.len() >= PAR_SORT_MIN {
        v.par_sort_unstable();
    } else {
        v.sort_unstable();
    }
}

/// Mann-Whitney sum over runs of equal keys, in ascending key order.
///
/// `runs` yields `(positive weight, negative weight)` of each run of tied scores. Each
/// positive earns the negative weight strictly below it plus half the tied negative weight.
/// Returns `(sum, total positive weight, total negative weight)`.
#[inline]
fn mann_whitney(runs: impl Iterator<Item = (f64, f64)>) -> (f64, f64, f64) {
    let (mut sum, mut pos, mut neg) = (0.0f64, 0.0f64, 0.0f64);
    for (p, n) in runs {
        sum += p * (neg + 0.5 * n);
        pos += p;
        neg += n;
    }
    (sum, pos, neg)
}

/// ROC AUC of `scores` against binary `labels`, or `None` when a class is absent.
///
/// Definition: the probability that a random positive outscores a random negative, ties
/// counting 1/2 (the Mann-Whitney U statistic divided by `P * N`, i.e. midranks):
/// `AUC = (sum over pairs (i pos, j neg) of [s_i > s_j] + 0.5 [s_i = s_j]) / (P N)`.
/// A label above 0.5 is a positive. `-0.0` and `+0.0` tie. Runs in O(n log n) (one sort,
/// parallel for large `n`) and O(n) extra memory.
///
/// ```
/// use dmtl_metrics::auc;
/// // Pairs (pos, neg): (0.8, 0.1) win, (0.8, 0.4) win, (0.4, 0.1) win, (0.4, 0.4) tie -> 3.5 / 4.
/// let a = auc(&[0.1, 0.4, 0.4, 0.8], &[0.0, 0.0, 1.0, 1.0]).unwrap();
/// assert!((a - 0.875).abs() < 1e-12);
/// assert_eq!(auc(&[0.3, 0.5], &[1.0, 1.0]), None); // no negative
/// ```
///
/// # Panics
/// If the slices differ in length or a score is NaN; [`try_auc`] returns an error instead.
pub fn auc(scores: &[f32], labels: &[f32]) -> Option<f64> {
    match try_auc(scores, labels) {
        Ok(a) => Some(a),
        Err(MetricError::OneClass { .. }) => None,
        Err(e) => panic!("auc: {e}"),
    }
}

/// [`auc`] returning an error for mismatched lengths, NaN scores or a missing class.
///
/// ```
/// use dmtl_metrics::{try_auc, MetricError};
/// assert!(matches!(try_auc(&[0.1, f32::NAN], &[0.0, 1.0]), Err(MetricError::NaN { index: 1, .. })));
/// ```
pub fn try_auc(scores: &[f32], labels: &[f32]) -> Result<f64, MetricError> {
    check_len("scores", scores.len(), "labels", labels.len())?;
    check_nan("scores", scores)?;
    // One u64 per impression: the score's order key above, the label in the lowest bit, so a
    // plain integer sort groups ties and no index indirection is needed.
    let mut keyed: Vec<u64> = if scores.len() >= PAR_SORT_MIN {
        scores
            .par_iter()
            .zip(labels.par_iter())
            .map(|(&s, &y)| ((order_key(s) as u64) << 32) | (y > 0.5) as u64)
            .collect()
    } else {
        scores
            .iter()
            .zip(labels)
            .map(|(&s, &y)| ((order_key(s) as u64) << 32) | (y > 0.5) as u64)
            .collect()
    };
    sort_u64(&mut keyed);
    let (sum, pos, neg) = mann_whitney(TieRuns::new(keyed.iter().copied()));
    if pos == 0.0 || neg == 0.0 {
        return Err(MetricError::OneClass {
            positives: pos,
            negatives: neg,
        });
    }
    Ok(sum / (pos * neg))
}

/// Runs of equal scores in sorted `(key << 32) | label` words, as (pos, neg) counts.
struct TieRuns<I: Iterator<Item = u64>> {
    words: std::iter::Peekable<I>,
}

impl<I: Iterator<Item = u64>> TieRuns<I> {
    fn new(words: impl IntoIterator<IntoIter = I>) -> Self {
        Self {
            words: words.into_iter().peekable(),
        }
    }
}

impl<I: Iterator<Item = u64>> Iterator for TieRuns<I> {
    type Item = (f64, f64);
    #[inline]
    fn next(&mut self) -> Option<(f64, f64)> {
        let key = *self.words.peek()? >> 32;
        let (mut p, mut n) = (0u64, 0u64);
        while let Some(w) = self.words.next_if(|w| w >> 32 == key) {
            p += w & 1;
            n += 1 - (w & 1);
        }
        Some((p as f64, n as f64))
    }
}

/// Weighted ROC AUC, or `None` when the positives or the negatives have zero total weight.
///
/// Definition: every pair (i positive, j negative) counts with weight `w_i * w_j`:
/// `AUC_w = (sum w_i w_j ([s_i > s_j] + 0.5 [s_i = s_j])) / (W_pos W_neg)`. With all weights
/// equal it is [`auc`]. O(n log n).
///
/// ```
/// use dmtl_metrics::{auc, auc_weighted};
/// let (s, y) = ([0.2, 0.6, 0.4, 0.9], [0.0, 0.0, 1.0, 1.0]);
/// // A weight of 2 acts like a duplicated impression.
/// let w = auc_weighted(&s, &y, &[1.0, 2.0, 1.0, 1.0]).unwrap();
/// let dup = auc(&[0.2, 0.6, 0.6, 0.4, 0.9], &[0.0, 0.0, 0.0, 1.0, 1.0]).unwrap();
/// assert!((w - dup).abs() < 1e-12);
/// ```
///
/// # Panics
/// On mismatched lengths, NaN scores or negative / non-finite weights; see
/// [`try_auc_weighted`].
pub fn auc_weighted(scores: &[f32], labels: &[f32], weights: &[f32]) -> Option<f64> {
    match try_auc_weighted(scores, labels, weights) {
        Ok(a) => Some(a),
        Err(MetricError::OneClass { .. }) => None,
        Err(e) => panic!("auc_weighted: {e}"),
    }
}

/// [`auc_weighted`] returning an error instead of panicking or `None`.
///
/// ```
/// use dmtl_metrics::{try_auc_weighted, MetricError};
/// let r = try_auc_weighted(&[0.1, 0.2], &[0.0, 1.0], &[1.0, -1.0]);
/// assert!(matches!(r, Err(MetricError::BadWeight { index: 1, .. })));
/// ```
pub fn try_auc_weighted(
    scores: &[f32],
    labels: &[f32],
    weights: &[f32],
) -> Result<f64, MetricError> {
    check_len("scores", scores.len(), "labels", labels.len())?;
    check_len("scores", scores.len(), "weights", weights.len())?;
    check_nan("scores", scores)?;
    if let Some(index) = weights.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
        return Err(MetricError::BadWeight {
            index,
            value: weights[index],
        });
    }
    // Key above, row number below: weights and labels are fetched through the row number.
    let mut keyed: Vec<u64> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| ((order_key(s) as u64) << 32) | i as u64)
        .collect();
    sort_u64(&mut keyed);
    let mut runs = Vec::new();
    let mut at = 0;
    while at < keyed.len() {
        let key = keyed[at] >> 32;
        let (mut p, mut n) = (0.0f64, 0.0f64);
        while at < keyed.len() && keyed[at] >> 32 == key {
            let i = (keyed[at] & 0xffff_ffff) as usize;
            if labels[i] > 0.5 {
                p += weights[i] as f64;
            } else {
                n += weights[i] as f64;
            }
            at += 1;
        }
        runs.push((p, n));
    }
    let (sum, pos, neg) = mann_whitney(runs.into_iter());
    if pos <= 0.0 || neg <= 0.0 {
        return Err(MetricError::OneClass {
            positives: pos,
            negatives: neg,
        });
    }
    Ok(sum / (pos * neg))
}

/// Group AUC and how much of the data it rests on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaucReport {
    /// Impression-weighted mean of the per-group AUCs.
    pub gauc: f64,
    /// Groups that held both classes and so entered the mean.
    pub groups_used: usize,
    /// Distinct groups in the input.
    pub groups_total: usize,
    /// Impressions of the groups used (the denominator of the weighted mean).
    pub impressions_used: usize,
}

/// GAUC: the per-group [`auc`] averaged with each group's impression count as its weight.
///
/// Definition: `GAUC = sum_g n_g AUC_g / sum_g n_g` over the groups `g` (users, typically) that
/// hold at least one positive and one negative; groups with one class are skipped and do not
/// count in the denominator. `None` when no group qualifies. O(n log n).
///
/// ```
/// use dmtl_metrics::gauc;
/// let scores = [0.9, 0.1, 0.5, 0.2, 0.3, 0.7, 0.6];
/// let labels = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0];
/// let groups = [7, 7, 3, 3, 3, 9, 9]; // group 9 has positives only: skipped
/// // Group 7: AUC 1 over 2 impressions; group 3: AUC 0 over 3 impressions.
/// let r = gauc(&scores, &labels, &groups).unwrap();
/// assert!((r.gauc - 2.0 / 5.0).abs() < 1e-12);
/// assert_eq!((r.groups_used, r.groups_total, r.impressions_used), (2, 3, 5));
/// ```
///
/// # Panics
/// On mismatched lengths or NaN scores; see [`try_gauc`].
pub fn gauc(scores: &[f32], labels: &[f32], groups: &[u32]) -> Option<GaucReport> {
    match try_gauc(scores, labels, groups) {
        Ok(r) => Some(r),
        Err(MetricError::NoUsableGroup { .. }) => None,
        Err(e) => panic!("gauc: {e}"),
    }
}

/// [`gauc`] returning an error instead of panicking or `None`.
///
/// ```
/// use dmtl_metrics::{try_gauc, MetricError};
/// let r = try_gauc(&[0.1, 0.2], &[1.0, 0.0], &[1, 2]);
/// assert_eq!(r, Err(MetricError::NoUsableGroup { groups: 2 }));
/// ```
pub fn try_gauc(scores: &[f32], labels: &[f32], groups: &[u32]) -> Result<GaucReport, MetricError> {
    check_len("scores", scores.len(), "labels", labels.len())?;
    check_len("scores", scores.len(), "groups", groups.len())?;
    check_nan("scores", scores)?;
    // Group above, score key in the middle, label in the lowest bit: one sort orders by group
    // and then by score, so every group is a contiguous run of tie runs.
    let make = |(&s, (&y, &g)): (&f32, (&f32, &u32))| {
        ((g as u128) << 64) | ((order_key(s) as u128) << 32) | (y > 0.5) as u128
    };
    let keyed: Vec<u128> = if scores.len() >= PAR_SORT_MIN {
        let mut v: Vec<u128> = scores
            .par_iter()
            .zip(labels.par_iter().zip(groups.par_iter()))
            .map(make)
            .collect();
        v.par_sort_unstable();
        v
    } else {
        let mut v: Vec<u128> = scores
            .iter()
            .zip(labels.iter().zip(groups.iter()))
            .map(make)
            .collect();
        v.sort_unstable();
        v
    };
    let (mut weighted, mut impressions_used, mut groups_used, mut groups_total) =
        (0.0f64, 0usize, 0usize, 0usize);
    let mut at = 0;
    while at < keyed.len() {
        let g = keyed[at] >> 64;
        let end = at + keyed[at..].partition_point(|&w| w >> 64 == g);
        groups_total += 1;
        // Within a group the low 64 bits are (key << 32) | label words.
        let (sum, pos, neg) = mann_whitney(TieRuns::new(keyed[at..end].iter().map(|&w| w as u64)));
        if pos > 0.0 && neg > 0.0 {
            let n = end - at;
            weighted += n as f64 * sum / (pos * neg);
            impressions_used += n;
            groups_used += 1;
        }
        at = end;
    }
    if groups_used == 0 {
        return Err(MetricError::NoUsableGroup {
            groups: groups_total,
        });
    }
    Ok(GaucReport {
        gauc: weighted / impressions_used as f64,
        groups_used,
        groups_total,
        impressions_used,
    })
}

/// Mean binary cross-entropy (natural log) of probabilities against labels.
///
/// Definition: `-(1/n) sum_i (y_i ln p_i + (1 - y_i) ln(1 - p_i))` with `p_i` clipped to
/// `[1e-7, 1 - 1e-7]` ([`LOGLOSS_EPS`]) so a confident mistake costs about 16.1, not infinity.
/// Labels may be soft (in `[0, 1]`). Accumulates in `f64`. An empty input gives NaN.
///
/// ```
/// use dmtl_metrics::logloss;
/// let l = logloss(&[0.8, 0.3], &[1.0, 0.0]);
/// let want = -(0.8f64.ln() + 0.7f64.ln()) / 2.0;
/// assert!((l - want).abs() < 1e-6);
/// assert!((logloss(&[0.0], &[1.0]) - (1e7f64).ln()).abs() < 1e-3); // clipped
/// ```
///
/// # Panics
/// On mismatched lengths or NaN probabilities; see [`try_logloss`].
pub fn logloss(probs: &[f32], labels: &[f32]) -> f64 {
    match try_logloss(probs, labels) {
        Ok(l) => l,
        Err(MetricError::Empty { .. }) => f64::NAN,
        Err(e) => panic!("logloss: {e}"),
    }
}

/// [`logloss`] returning an error for mismatched lengths, NaN probabilities or empty input.
///
/// ```
/// use dmtl_metrics::{try_logloss, MetricError};
/// assert_eq!(try_logloss(&[], &[]), Err(MetricError::Empty { arg: "probs" }));
/// ```
pub fn try_logloss(probs: &[f32], labels: &[f32]) -> Result<f64, MetricError> {
    check_len("probs", probs.len(), "labels", labels.len())?;
    check_nan("probs", probs)?;
    if probs.is_empty() {
        return Err(MetricError::Empty { arg: "probs" });
    }
    let term = |(&p, &y): (&f32, &f32)| {
        let p = (p as f64).clamp(LOGLOSS_EPS, 1.0 - LOGLOSS_EPS);
        let y = y as f64;
        -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
    };
    let sum: f64 = if probs.len() >= PAR_SORT_MIN {
        probs.par_iter().zip(labels.par_iter()).map(term).sum()
    } else {
        probs.iter().zip(labels).map(term).sum()
    };
    Ok(sum / probs.len() as f64)
}

/// Calibration ratio: mean prediction over mean label (1.0 is calibrated on average).
///
/// Definition: `sum_i p_i / sum_i y_i`; above 1 the model over-predicts. With no positive
/// label it is `+inf` (or NaN when the predictions sum to 0 too).
///
/// ```
/// use dmtl_metrics::calibration;
/// assert!((calibration(&[0.2, 0.4, 0.6], &[0.0, 1.0, 0.0]) - 1.2).abs() < 1e-6);
/// ```
///
/// # Panics
/// If the slices differ in length.
pub fn calibration(probs: &[f32], labels: &[f32]) -> f64 {
    assert_eq!(
        probs.len(),
        labels.len(),
        "calibration: probs has {} elements, labels {}",
        probs.len(),
        labels.len()
    );
    let p: f64 = probs.iter().map(|&p| p as f64).sum();
    let y: f64 = labels.iter().map(|&y| y as f64).sum();
    p / y
}

/// Recall of one user's retrieved list: the share of the relevant items that were retrieved.
///
/// Definition: `|set(retrieved) ∩ set(relevant)| / |set(relevant)|`; K is `retrieved.len()`
/// (truncate the list first for a smaller K). Duplicates count once. NaN when `relevant` is
/// empty (such users are skipped by [`mean_recall_at_k`]).
///
/// ```
/// use dmtl_metrics::recall_at_k;
/// assert_eq!(recall_at_k(&[5, 1, 9], &[1, 2, 9, 4]), 0.5);
/// assert!(recall_at_k(&[5], &[]).is_nan());
/// ```
pub fn recall_at_k(retrieved: &[u32], relevant: &[u32]) -> f64 {
    let relevant: HashSet<u32> = relevant.iter().copied().collect();
    if relevant.is_empty() {
        return f64::NAN;
    }
    let found: HashSet<u32> = retrieved
        .iter()
        .copied()
        .filter(|i| relevant.contains(i))
        .collect();
    found.len() as f64 / relevant.len() as f64
}

/// Mean of a per-user metric over the users that have relevant items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanReport {
    /// Mean over the users used.
    pub mean: f64,
    /// Users with at least one relevant item.
    pub users_used: usize,
}

fn mean_over_users(
    retrieved: &[Vec<u32>],
    relevant: &[Vec<u32>],
    metric: impl Fn(&[u32], &[u32]) -> f64 + Sync,
) -> Option<MeanReport> {
    assert_eq!(
        retrieved.len(),
        relevant.len(),
        "retrieved has {} users, relevant {}",
        retrieved.len(),
        relevant.len()
    );
    let (sum, users_used) = retrieved
        .par_iter()
        .zip(relevant.par_iter())
        .filter(|(_, rel)| !rel.is_empty())
        .map(|(ret, rel)| (metric(ret, rel), 1usize))
        .reduce(|| (0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    (users_used > 0).then(|| MeanReport {
        mean: sum / users_used as f64,
        users_used,
    })
}

/// [`recall_at_k`] averaged over users, skipping users without relevant items.
///
/// `retrieved[u]` and `relevant[u]` belong to user `u`. `None` when no user has a relevant item.
///
/// ```
/// use dmtl_metrics::mean_recall_at_k;
/// let r = mean_recall_at_k(&[vec![1, 2], vec![3], vec![4]], &[vec![1], vec![], vec![5, 6]]).unwrap();
/// assert_eq!((r.mean, r.users_used), (0.5, 2));
/// ```
///
/// # Panics
/// If the two slices hold different numbers of users.
pub fn mean_recall_at_k(retrieved: &[Vec<u32>], relevant: &[Vec<u32>]) -> Option<MeanReport> {
    mean_over_users(retrieved, relevant, recall_at_k)
}

/// Binary-relevance NDCG of one user's ranked list (best first); K is `retrieved.len()`.
///
/// Definition: `DCG = sum_{r: retrieved[r] relevant} 1 / log2(r + 2)` (rank `r` from 0; a
/// repeated item counts once, at its first rank), `IDCG` is the DCG of an ideal list, i.e.
/// `sum_{r < min(K, |relevant|)} 1 / log2(r + 2)`, and `NDCG = DCG / IDCG`. NaN when
/// `relevant` is empty; 0 when `retrieved` is empty but `relevant` is not.
///
/// ```
/// use dmtl_metrics::ndcg_at_k;
/// // One relevant item, found at rank 1 (second place): 1/log2(3) over the ideal 1/log2(2).
/// let n = ndcg_at_k(&[4, 7, 9], &[7]);
/// assert!((n - 1.0 / 3f64.log2()).abs() < 1e-12);
/// assert_eq!(ndcg_at_k(&[7, 4], &[7]), 1.0);
/// ```
pub fn ndcg_at_k(retrieved: &[u32], relevant: &[u32]) -> f64 {
    let relevant: HashSet<u32> = relevant.iter().copied().collect();
    if relevant.is_empty() {
        return f64::NAN;
    }
    if retrieved.is_empty() {
        return 0.0;
    }
    let mut seen = HashSet::new();
    let dcg: f64 = retrieved
        .iter()
        .enumerate()
        .filter(|(_, i)| relevant.contains(i) && seen.insert(**i))
        .map(|(r, _)| 1.0 / ((r + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..retrieved.len().min(relevant.len()))
        .map(|r| 1.0 / ((r + 2) as f64).log2())
        .sum();
    dcg / ideal
}

/// [`ndcg_at_k`] averaged over users, skipping users without relevant items.
///
/// ```
/// use dmtl_metrics::mean_ndcg_at_k;
/// let r = mean_ndcg_at_k(&[vec![1, 2], vec![3]], &[vec![1], vec![4]]).unwrap();
/// assert_eq!((r.mean, r.users_used), (0.5, 2));
/// ```
///
/// # Panics
/// If the two slices hold different numbers of users.
pub fn mean_ndcg_at_k(retrieved: &[Vec<u32>], relevant: &[Vec<u32>]) -> Option<MeanReport> {
    mean_over_users(retrieved, relevant, ndcg_at_k)
}
