//! The numbers of the paper's table: offline metrics of per-impression scores on the test split,
//! and retrieval metrics of top-K lists over the whole item corpus (recall@K of held-out long
//! reads; on simulated data also the true reading time, long-read probability and click-bait
//! share of what was retrieved).

use dmtl_data::sim::Simulator;
use dmtl_data::Dataset;
use dmtl_student::eval::list_truth;
use dmtl_student::OutputKind;
use serde::{Deserialize, Serialize};

/// Offline metrics of one model's scores on the test impressions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OfflineMetrics {
    /// AUC of the score against the click label.
    pub click_auc: Option<f64>,
    /// AUC of the score against the long-read label `y z`, over every impression.
    pub long_read_auc: Option<f64>,
    /// Impression-weighted per-user AUC of the long-read label (users with both classes).
    pub long_read_gauc: Option<f64>,
    /// Logloss of `sigmoid(score)` against the long-read label, when it estimates
    /// P(long read) (teacher pCTCVR, DMTL, B2).
    pub long_read_logloss: Option<f64>,
    /// Logloss against the click label, when the output estimates P(click).
    pub click_logloss: Option<f64>,
}

/// What a model's output estimates, which decides the loglosses reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Probabilities of a long read (per impression).
    LongRead,
    /// Probabilities of a click.
    Click,
    /// A ranking score only.
    Score,
}

/// Click AUC, long-read AUC and GAUC of `scores` (one per test row) and the loglosses that
/// make sense for `probs` (the same rows as probabilities, when the model has them).
///
/// The AUCs and the GAUC are [`dmtl_student::eval::offline_metrics`]'s, so the table and the
/// student crate measure alike. The loglosses are taken here, of `probs`: that function applies
/// the sigmoid to logits, while the teacher's and the oracle's outputs are probabilities
/// already.
///
/// # Panics
/// When `test` is unlabelled or the lengths differ.
pub fn offline(
    scores: &[f32],
    probs: Option<&[f32]>,
    output: Output,
    test: &Dataset,
) -> OfflineMetrics {
    assert_eq!(scores.len(), test.n_rows, "one score per test row");
    let ranked = dmtl_student::eval::offline_metrics(scores, OutputKind::Score, test)
        .unwrap_or_else(|e| panic!("offline metrics: {e}"));
    let (click_logloss, long_read_logloss) = match (probs, output) {
        (Some(p), Output::LongRead) => (None, Some(dmtl_metrics::logloss(p, &test.long_read))),
        (Some(p), Output::Click) => (Some(dmtl_metrics::logloss(p, &test.click)), None),
        _ => (None, None),
    };
    OfflineMetrics {
        click_auc: ranked.click_auc,
        long_read_auc: ranked.long_read_auc,
        long_read_gauc: ranked.long_read_gauc,
        long_read_logloss,
        click_logloss,
    }
}

/// The users retrieval is evaluated on, and what each of them read in the test period.
#[derive(Debug, Clone)]
pub struct RetrievalTask {
    /// Raw user ids.
    pub user_ids: Vec<String>,
    /// Per user, the corpus rows of the items they read long in the test period (sorted,
    /// unique); the relevant set of recall@K.
    pub long_reads: Vec<Vec<u32>>,
    /// Per user, the simulator's user index when the data is simulated.
    pub sim_users: Option<Vec<usize>>,
    /// Per corpus row, the number of training impressions of the item (0 for an item the
    /// training log never showed): how much data its vector was learned from.
    pub corpus_train_impressions: Vec<u32>,
}

/// Retrieval metrics of top-K lists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    /// K.
    pub k: usize,
    /// Users evaluated.
    pub users: usize,
    /// Mean recall@K of the user's held-out long reads (users with at least one).
    pub recall_at_k: Option<f64>,
    /// Users with at least one held-out long read.
    pub recall_users: usize,
    /// Simulated data: the true expected reading seconds per impression, pooled over every
    /// retrieved (user, item) pair ([`dmtl_student::eval::ListTruth`]).
    pub true_read_seconds: Option<f64>,
    /// Simulated data: the true long-read probability per impression, pooled likewise.
    pub true_long_read_p: Option<f64>,
    /// Simulated data: share of click-bait among the retrieved (user, item) pairs.
    pub clickbait_share: Option<f64>,
    /// Median number of training impressions of the retrieved items (over every retrieved
    /// (user, item) pair): low values mean the lists are crowded by items whose vectors saw
    /// little data.
    #[serde(default)]
    pub median_train_impressions: Option<f64>,
    /// Simulated data: histogram of true expected reading seconds of every retrieved
    /// (user, item) pair, over `histogram_edges`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub histogram: Vec<u64>,
    /// Bin edges of `histogram` (`histogram.len() + 1` values).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub histogram_edges: Vec<f64>,
}

/// Scores retrieved lists: `lists[u]` holds corpus rows (best first; entries `>= n_items` are
/// padding and are skipped). On simulated data, corpus row `r` must be simulator item `r`, and
/// the truth columns are [`dmtl_student::eval::list_truth`]'s, pooled over every retrieved
/// (user, item) pair.
///
/// # Panics
/// When there is not one list per user of `task`.
pub fn retrieval(
    task: &RetrievalTask,
    lists: &[Vec<u32>],
    k: usize,
    sim: Option<&Simulator>,
    histogram_edges: &[f64],
) -> RetrievalMetrics {
    assert_eq!(lists.len(), task.user_ids.len(), "one list per user");
    let recall = dmtl_metrics::mean_recall_at_k(lists, &task.long_reads);
    let mut m = RetrievalMetrics {
        k,
        users: lists.len(),
        recall_at_k: recall.as_ref().map(|r| r.mean),
        recall_users: recall.as_ref().map_or(0, |r| r.users_used),
        median_train_impressions: median_count(lists, &task.corpus_train_impressions),
        ..RetrievalMetrics::default()
    };
    if let (Some(sim), Some(users)) = (sim, &task.sim_users) {
        let truth = list_truth(sim, users, lists);
        m.true_read_seconds = truth.mean_expected_read_seconds;
        m.true_long_read_p = truth.mean_p_long_read;
        m.clickbait_share = truth.clickbait_share;
        if histogram_edges.len() >= 2 {
            let mut h = vec![0u64; histogram_edges.len() - 1];
            for &x in &truth.read_seconds {
                h[bin(histogram_edges, x)] += 1;
            }
            m.histogram = h;
            m.histogram_edges = histogram_edges.to_vec();
        }
    }
    m
}

/// The median of `counts[i]` over every entry `i` of `lists` (padding `>= counts.len()`
/// skipped); `None` when `counts` is empty or no entry is a corpus row.
fn median_count(lists: &[Vec<u32>], counts: &[u32]) -> Option<f64> {
    let mut all: Vec<u32> = lists
        .iter()
        .flatten()
        .filter_map(|&i| counts.get(i as usize).copied())
        .collect();
    if all.is_empty() {
        return None;
    }
    let mid = all.len() / 2;
    let (_, &mut hi, _) = all.select_nth_unstable(mid);
    if all.len() % 2 == 1 {
        return Some(hi as f64);
    }
    let lo = *all[..mid].iter().max().expect("mid >= 1");
    Some((lo as f64 + hi as f64) / 2.0)
}

/// The bin of `x` among `edges` (values outside go to the first or last bin).
fn bin(edges: &[f64], x: f64) -> usize {
    let n = edges.len() - 1;
    match edges.partition_point(|&e| e <= x) {
        0 => 0,
        p => (p - 1).min(n - 1),
    }
}

/// Where the log-spaced bins of [`edges`] start, in seconds.
pub const HISTOGRAM_LOW_SECONDS: f64 = 0.1;

/// `bins` bins of expected reading seconds up to `max`: the first from 0 to
/// [`HISTOGRAM_LOW_SECONDS`], the others of equal width on a log scale from there to `max`, so
/// that the many small values spread over several bins instead of filling the first. One bin,
/// or `max` not above the low end, gives equal bins from 0 to `max`.
pub fn edges(max: f64, bins: usize) -> Vec<f64> {
    let low = HISTOGRAM_LOW_SECONDS;
    if bins < 2 || max <= low {
        return (0..=bins).map(|b| max * b as f64 / bins as f64).collect();
    }
    let ratio = (max / low).ln() / (bins - 1) as f64;
    let mut e = vec![0.0];
    e.extend((0..bins - 1).map(|b| low * (ratio * b as f64).exp()));
    e.push(max);
    e
}

/// Mean and sample standard deviation (0 for one value) of the present values; `None` when
/// none is present.
pub fn mean_std(values: &[Option<f64>]) -> Option<(f64, f64)> {
    let v: Vec<f64> = values.iter().flatten().copied().collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((mean, var.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_count_matches_a_sort() {
        let counts: Vec<u32> = (0..50u32).map(|i| (i * 37) % 23).collect();
        for lists in [
            vec![vec![3u32, 9, 17], vec![4, 40, 99]],
            vec![vec![0u32, 1, 2, 3], vec![5]],
            vec![(0..50).collect::<Vec<u32>>()],
        ] {
            let mut all: Vec<u32> = lists
                .iter()
                .flatten()
                .filter(|&&i| (i as usize) < counts.len())
                .map(|&i| counts[i as usize])
                .collect();
            all.sort_unstable();
            let n = all.len();
            let want = if n % 2 == 1 {
                all[n / 2] as f64
            } else {
                (all[n / 2 - 1] + all[n / 2]) as f64 / 2.0
            };
            assert_eq!(median_count(&lists, &counts), Some(want), "{lists:?}");
        }
        assert_eq!(median_count(&[vec![100, 200]], &counts), None);
        assert_eq!(median_count(&[vec![1]], &[]), None);
    }

    #[test]
    fn offline_matches_the_student_crate_on_logits() {
        use dmtl_student::synthetic::{random_dataset, tiny_fields};
        let test = random_dataset(&tiny_fields(), 3000, 4);
        // Scores that rank long reads a little better than chance, so the AUCs are not 0.5.
        let scores: Vec<f32> = test
            .long_read
            .iter()
            .enumerate()
            .map(|(r, &y)| y + ((r * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let probs: Vec<f32> = scores
            .iter()
            .map(|&s| dmtl_loss::stable::sigmoid(s))
            .collect();
        for (output, kind) in [
            (Output::LongRead, OutputKind::LongReadProbability),
            (Output::Click, OutputKind::ClickProbability),
            (Output::Score, OutputKind::Score),
        ] {
            let ours = offline(&scores, Some(&probs), output, &test);
            let theirs = dmtl_student::eval::offline_metrics(&scores, kind, &test).unwrap();
            assert_eq!(ours.click_auc, theirs.click_auc);
            assert_eq!(ours.long_read_auc, theirs.long_read_auc);
            assert_eq!(ours.long_read_gauc, theirs.long_read_gauc);
            assert_eq!(ours.click_logloss, theirs.click_logloss);
            assert_eq!(ours.long_read_logloss, theirs.long_read_logloss);
        }
        let auc = offline(&scores, None, Output::Score, &test).long_read_auc;
        assert!(auc.unwrap() > 0.55, "{auc:?}");
        // Probabilities are taken as they are: no second sigmoid.
        let p = vec![0.25f32; test.n_rows];
        let m = offline(&p, Some(&p), Output::Click, &test);
        let want = dmtl_metrics::logloss(&p, &test.click);
        assert_eq!(m.click_logloss, Some(want));
    }

    #[test]
    fn bins_cover_the_range_and_clamp() {
        let e = edges(10.0, 1);
        assert_eq!(e, vec![0.0, 10.0]);
        let e = edges(0.05, 2);
        assert_eq!(e, vec![0.0, 0.025, 0.05]);
        // Log-spaced above 0.1 s: 0.1, 1, 10, 100, 1000 (equal ratios), below it one bin.
        let e = edges(1000.0, 5);
        assert_eq!(e.len(), 6);
        assert_eq!((e[0], e[1], e[5]), (0.0, HISTOGRAM_LOW_SECONDS, 1000.0));
        for (got, want) in e[1..].iter().zip([0.1, 1.0, 10.0, 100.0, 1000.0]) {
            assert!((got / want - 1.0).abs() < 1e-12, "{e:?}");
        }
        assert_eq!(bin(&e, 0.05), 0);
        assert_eq!(bin(&e, 0.5), 1);
        assert_eq!(bin(&e, 50.0), 3);
        let e = vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0];
        assert_eq!(bin(&e, 0.0), 0);
        assert_eq!(bin(&e, 1.99), 0);
        assert_eq!(bin(&e, 2.0), 1);
        assert_eq!(bin(&e, 10.0), 4);
        assert_eq!(bin(&e, 55.0), 4);
        assert_eq!(bin(&e, -1.0), 0);
    }

    #[test]
    fn mean_std_is_the_sample_estimate() {
        let (m, s) = mean_std(&[Some(1.0), None, Some(3.0)]).unwrap();
        assert_eq!(m, 2.0);
        assert!((s - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[None]), None);
        assert_eq!(mean_std(&[Some(4.0)]), Some((4.0, 0.0)));
    }
}
