//! Evaluation: offline metrics on a test log, and retrieval quality judged by the simulator's
//! ground truth.
//!
//! **Offline** ([`offline_metrics`]): click AUC, long-read AUC (label `y z` over every test
//! impression), long-read GAUC (per-user AUC, impression-weighted, over users with both
//! classes) and, where `sigmoid(score)` is a probability ([`OutputKind`]), the logloss against
//! the label it estimates.
//!
//! **Retrieval** ([`RetrievalEvaluator`]): for a seeded sample of test users, the top-K of the
//! whole item corpus ([`Simulator::item_table`] encoded with the training vocabularies) by the
//! student's inner product, scored with the truth: mean expected reading seconds per
//! impression, mean long-read probability, mean click probability, click-bait share, and
//! recall@K of the user's held-out (test) long reads. The same numbers for the oracle (the
//! top-K by true expected reading seconds, [`oracle_lists`]) and for K items drawn at random
//! bracket the model.
//!
//! **The truth of retrieved lists** ([`list_truth`]) is defined once, here, and pooled: every
//! mean is taken over all retrieved (user, item) pairs together, not per user first. The
//! `dmtl` runner's table and [`RetrievalEvaluator`] both take it.

use std::collections::HashMap;

use dmtl_data::sim::Simulator;
use dmtl_data::{Dataset, Schema, Vocabularies};
use ndarray::{Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StudentError};
use crate::objective::{ObjectiveExt, OutputKind};
use crate::retrieval::top_k;
use crate::two_tower::Student;

/// Offline metrics of a model's scores on a labelled test log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineMetrics {
    /// Test impressions.
    pub n_rows: usize,
    /// AUC against clicks (`None`: one class only).
    pub click_auc: Option<f64>,
    /// AUC against long reads `y z` over every impression.
    pub long_read_auc: Option<f64>,
    /// Per-user long-read AUC, impression-weighted over users with both classes.
    pub long_read_gauc: Option<f64>,
    /// Users that entered the GAUC.
    pub gauc_users: usize,
    /// Logloss of `sigmoid(score)` against clicks, when it estimates P(click).
    pub click_logloss: Option<f64>,
    /// Logloss of `sigmoid(score)` against long reads, when it estimates P(long read).
    pub long_read_logloss: Option<f64>,
}

/// The offline metrics of `scores` (logits, one per row of `test`); `output` says which
/// logloss, if any, is meaningful.
///
/// Fails when `test` is unlabelled or the lengths differ.
pub fn offline_metrics(
    scores: &[f32],
    output: OutputKind,
    test: &Dataset,
) -> Result<OfflineMetrics> {
    if !test.has_labels() {
        return Err(StudentError::Data("the test set has no labels".into()));
    }
    if scores.len() != test.n_rows {
        return Err(StudentError::Data(format!(
            "{} scores for {} test rows",
            scores.len(),
            test.n_rows
        )));
    }
    let gauc = if test.user_group.len() == test.n_rows {
        dmtl_metrics::gauc(scores, &test.long_read, &test.user_group)
    } else {
        None
    };
    let probs = || -> Vec<f32> {
        scores
            .iter()
            .map(|&s| dmtl_loss::stable::sigmoid(s))
            .collect()
    };
    let (click_logloss, long_read_logloss) = match output {
        OutputKind::ClickProbability => (Some(dmtl_metrics::logloss(&probs(), &test.click)), None),
        OutputKind::LongReadProbability => {
            (None, Some(dmtl_metrics::logloss(&probs(), &test.long_read)))
        }
        OutputKind::Score => (None, None),
    };
    Ok(OfflineMetrics {
        n_rows: test.n_rows,
        click_auc: dmtl_metrics::auc(scores, &test.click),
        long_read_auc: dmtl_metrics::auc(scores, &test.long_read),
        long_read_gauc: gauc.as_ref().map(|g| g.gauc),
        gauc_users: gauc.map_or(0, |g| g.groups_used),
        click_logloss,
        long_read_logloss,
    })
}

/// [`offline_metrics`] of a student's scores on `test`.
pub fn evaluate_offline(student: &Student, test: &Dataset) -> Result<OfflineMetrics> {
    let s = student.score_dataset(test)?;
    offline_metrics(&s, student.config().objective.output_kind(), test)
}

/// How retrieval is evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalConfig {
    /// Items retrieved per user.
    pub k: usize,
    /// Test users sampled (all of them when fewer).
    pub n_users: usize,
    /// Seed of the user sample and of the random baseline.
    pub seed: u64,
}

impl Default for RetrievalConfig {
    /// K = 50 over 200 sampled test users.
    fn default() -> Self {
        RetrievalConfig {
            k: 50,
            n_users: 200,
            seed: 1,
        }
    }
}

/// The truth about a set of top-K lists ([`list_truth`]: pooled over every retrieved (user,
/// item) pair) and their recall@K.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopKQuality {
    /// Mean true expected reading seconds per impression, `p_click * E[d | click]`.
    pub mean_expected_read_seconds: f64,
    /// Mean true long-read probability per impression (the true pCTCVR).
    pub mean_p_long_read: f64,
    /// Mean true click probability.
    pub mean_p_click: f64,
    /// Share of retrieved items that are click-bait.
    pub clickbait_share: f64,
    /// Mean recall@K of the users' held-out long reads, over users with at least one
    /// (`None`: no sampled user has one).
    pub recall_at_k: Option<f64>,
}

/// Retrieval quality of a model beside the oracle and random.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalReport {
    /// Items retrieved per user.
    pub k: usize,
    /// Users evaluated.
    pub n_users: usize,
    /// Users with at least one held-out long read (those entering recall@K).
    pub recall_users: usize,
    /// Items in the corpus.
    pub n_items: usize,
    /// The model's top-K by inner product.
    pub model: TopKQuality,
    /// The top-K by true expected reading seconds.
    pub oracle: TopKQuality,
    /// K items drawn uniformly at random per user.
    pub random: TopKQuality,
}

/// Offline and retrieval results of one model, as written to a run's metrics JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Name of the model or objective.
    pub model: String,
    /// Metrics on the test log.
    pub offline: OfflineMetrics,
    /// Retrieval on the simulator's truth, when evaluated.
    pub retrieval: Option<RetrievalReport>,
}

/// The fixed part of a retrieval evaluation on the simulator — the sampled users, the encoded
/// corpus, the held-out long reads, the oracle's and random's quality — computed once and used
/// for every model.
pub struct RetrievalEvaluator<'a> {
    sim: &'a Simulator,
    cfg: RetrievalConfig,
    users: Vec<usize>,
    user_data: Dataset,
    item_data: Dataset,
    held_out: Vec<Vec<u32>>,
    oracle: TopKQuality,
    random: TopKQuality,
}

impl<'a> RetrievalEvaluator<'a> {
    /// Samples `cfg.n_users` users of `test` (the simulator's users, seeded), encodes them (with
    /// their typical context) and the whole corpus with `vocabs`, collects each user's test
    /// long reads and ranks the oracle and random lists.
    ///
    /// Fails when `cfg.k` is 0, `test` holds none of the simulator's users, or the encoding
    /// fails.
    pub fn new(
        sim: &'a Simulator,
        schema: &Schema,
        vocabs: &Vocabularies,
        test: &Dataset,
        cfg: RetrievalConfig,
    ) -> Result<RetrievalEvaluator<'a>> {
        if cfg.k == 0 {
            return Err(StudentError::Config {
                origin: "<config>".into(),
                key: "retrieval.k".into(),
                message: "must be at least 1".into(),
            });
        }
        // Test users known to the simulator, by group.
        let known: Vec<(u32, usize)> = test
            .user_ids
            .iter()
            .enumerate()
            .filter_map(|(gi, raw)| sim.user_index(raw).map(|u| (gi as u32, u)))
            .collect();
        if known.is_empty() {
            return Err(StudentError::Data(
                "the test set holds none of the simulator's users".into(),
            ));
        }
        let mut picked = known;
        picked.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed));
        picked.truncate(cfg.n_users);
        let slot: HashMap<u32, usize> = picked
            .iter()
            .enumerate()
            .map(|(j, &(gi, _))| (gi, j))
            .collect();
        let mut held_out = vec![Vec::new(); picked.len()];
        if test.has_labels() && test.item_group.len() == test.n_rows {
            for r in 0..test.n_rows {
                if test.long_read[r] <= 0.5 {
                    continue;
                }
                let Some(&j) = slot.get(&test.user_group[r]) else {
                    continue;
                };
                let raw = &test.item_ids[test.item_group[r] as usize];
                if let Some(i) = sim.item_index(raw) {
                    held_out[j].push(i as u32);
                }
            }
        }
        for h in &mut held_out {
            h.sort_unstable();
            h.dedup();
        }
        let users: Vec<usize> = picked.iter().map(|&(_, u)| u).collect();
        let user_data = Dataset::encode(schema, &sim.user_table(&users), vocabs)?;
        let item_data = Dataset::encode(schema, &sim.item_table(), vocabs)?;
        let k = cfg.k.min(sim.n_items());
        let oracle_lists = oracle_lists(sim, &users, k);
        let random_lists: Vec<Vec<u32>> = (0..users.len())
            .map(|j| {
                let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
                rng.set_stream(j as u64 + 1);
                rand::seq::index::sample(&mut rng, sim.n_items(), k)
                    .into_iter()
                    .map(|i| i as u32)
                    .collect()
            })
            .collect();
        let mut ev = RetrievalEvaluator {
            sim,
            cfg,
            users,
            user_data,
            item_data,
            held_out,
            oracle: placeholder(),
            random: placeholder(),
        };
        ev.oracle = ev.quality(&oracle_lists);
        ev.random = ev.quality(&random_lists);
        Ok(ev)
    }

    /// The sampled users (simulator indices), in query order.
    pub fn users(&self) -> &[usize] {
        &self.users
    }

    /// The sampled users encoded with their typical context: row `j` is `users()[j]`.
    pub fn user_data(&self) -> &Dataset {
        &self.user_data
    }

    /// The whole corpus encoded: row `i` is the simulator's item `i`.
    pub fn item_data(&self) -> &Dataset {
        &self.item_data
    }

    /// Each sampled user's held-out long reads (simulator item indices, sorted).
    pub fn held_out(&self) -> &[Vec<u32>] {
        &self.held_out
    }

    /// The truth about per-user lists of item indices ([`list_truth`], pooled over every
    /// retrieved pair; padding entries such as [`PAD_INDEX`](crate::retrieval::PAD_INDEX) are skipped), and the recall@K of
    /// the held-out long reads.
    ///
    /// # Panics
    /// When there is not one list per sampled user.
    pub fn quality(&self, lists: &[Vec<u32>]) -> TopKQuality {
        assert_eq!(lists.len(), self.users.len(), "one list per sampled user");
        let truth = list_truth(self.sim, &self.users, lists);
        TopKQuality {
            mean_expected_read_seconds: truth.mean_expected_read_seconds.unwrap_or(0.0),
            mean_p_long_read: truth.mean_p_long_read.unwrap_or(0.0),
            mean_p_click: truth.mean_p_click.unwrap_or(0.0),
            clickbait_share: truth.clickbait_share.unwrap_or(0.0),
            recall_at_k: dmtl_metrics::mean_recall_at_k(lists, &self.held_out).map(|r| r.mean),
        }
    }

    /// Evaluates the top-K of the given user vectors (row `j` for `users()[j]`) against the
    /// corpus's item vectors (row `i` for item `i`).
    ///
    /// # Shapes
    /// `user_vectors` `(users().len(), dim)`, `item_vectors` `(n_items, dim)`.
    pub fn evaluate_vectors(
        &self,
        user_vectors: ArrayView2<'_, f32>,
        item_vectors: ArrayView2<'_, f32>,
    ) -> Result<RetrievalReport> {
        if user_vectors.nrows() != self.users.len() || item_vectors.nrows() != self.sim.n_items() {
            return Err(StudentError::Data(format!(
                "expected {} user and {} item vectors, got {} and {}",
                self.users.len(),
                self.sim.n_items(),
                user_vectors.nrows(),
                item_vectors.nrows()
            )));
        }
        let top = top_k(user_vectors, item_vectors, self.cfg.k, None)?;
        let lists: Vec<Vec<u32>> = top.indices.rows().into_iter().map(|r| r.to_vec()).collect();
        Ok(self.report(self.quality(&lists)))
    }

    /// Evaluates a student: its user vectors for the sampled users and its item vectors for
    /// the whole corpus, then [`RetrievalEvaluator::evaluate_vectors`].
    pub fn evaluate(&self, student: &Student) -> Result<RetrievalReport> {
        let (u, v) = self.vectors(student)?;
        self.evaluate_vectors(u.view(), v.view())
    }

    /// A student's vectors for the sampled users and for the corpus.
    ///
    /// # Shapes
    /// -> `(users().len(), dim)` and `(n_items, dim)`.
    pub fn vectors(&self, student: &Student) -> Result<(Array2<f32>, Array2<f32>)> {
        let ur: Vec<u32> = (0..self.user_data.n_rows as u32).collect();
        let ir: Vec<u32> = (0..self.item_data.n_rows as u32).collect();
        Ok((
            student.user_vectors(&self.user_data, &ur)?,
            student.item_vectors(&self.item_data, &ir)?,
        ))
    }

    fn report(&self, model: TopKQuality) -> RetrievalReport {
        RetrievalReport {
            k: self.cfg.k,
            n_users: self.users.len(),
            recall_users: self.held_out.iter().filter(|h| !h.is_empty()).count(),
            n_items: self.sim.n_items(),
            model,
            oracle: self.oracle.clone(),
            random: self.random.clone(),
        }
    }
}

fn placeholder() -> TopKQuality {
    TopKQuality {
        mean_expected_read_seconds: 0.0,
        mean_p_long_read: 0.0,
        mean_p_click: 0.0,
        clickbait_share: 0.0,
        recall_at_k: None,
    }
}

/// The simulator's truth about retrieved lists, pooled over every retrieved (user, item) pair:
/// each mean is the sum over all pairs divided by the number of pairs, so a user whose list is
/// shorter (padded) weighs less, and with lists of K items each it is the mean over users of
/// each user's own mean. The one definition of the retrieval truth ([`list_truth`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ListTruth {
    /// Retrieved (user, item) pairs of corpus items (padding skipped).
    pub pairs: usize,
    /// Mean true expected reading seconds per impression, `p_click * E[d | click]`; `None`
    /// without pairs (likewise below).
    pub mean_expected_read_seconds: Option<f64>,
    /// Mean true long-read probability per impression (the true pCTCVR).
    pub mean_p_long_read: Option<f64>,
    /// Mean true click probability.
    pub mean_p_click: Option<f64>,
    /// Share of the retrieved pairs whose item is click-bait.
    pub clickbait_share: Option<f64>,
    /// Every pair's true expected reading seconds, user by user in list order (histograms).
    pub read_seconds: Vec<f64>,
}

/// The truth about `lists[j]`, the corpus rows retrieved for the simulator's user `users[j]`
/// (corpus row `i` is the simulator's item `i`; entries `>= n_items`, such as [`PAD_INDEX`](crate::retrieval::PAD_INDEX),
/// are padding and skipped), pooled over every retrieved pair ([`ListTruth`]). Users are
/// scored in parallel; the sums are taken in user order, so the result does not depend on the
/// thread count.
///
/// # Panics
/// When there is not one list per user, or a user index is outside the simulator.
pub fn list_truth(sim: &Simulator, users: &[usize], lists: &[Vec<u32>]) -> ListTruth {
    assert_eq!(lists.len(), users.len(), "one list per user");
    let n_items = sim.n_items() as u32;
    // Per user: sums of read seconds, of p long read and of p click, the click-bait count and
    // each pair's read seconds.
    let per_user: Vec<(f64, f64, f64, usize, Vec<f64>)> = users
        .par_iter()
        .zip(lists)
        .map(|(&u, list)| {
            let mut out = (0.0, 0.0, 0.0, 0, Vec::with_capacity(list.len()));
            for &i in list.iter().filter(|&&i| i < n_items) {
                let i = i as usize;
                let secs = sim.expected_read_seconds(u, i);
                out.0 += secs;
                out.1 += sim.p_long_read(u, i);
                out.2 += sim.p_click(u, i);
                out.3 += usize::from(sim.is_clickbait(i));
                out.4.push(secs);
            }
            out
        })
        .collect();
    let read_seconds: Vec<f64> = per_user.iter().flat_map(|p| p.4.iter().copied()).collect();
    let pairs = read_seconds.len();
    let mean = |sum: f64| (pairs > 0).then(|| sum / pairs as f64);
    ListTruth {
        pairs,
        mean_expected_read_seconds: mean(per_user.iter().map(|x| x.0).sum::<f64>()),
        mean_p_long_read: mean(per_user.iter().map(|x| x.1).sum::<f64>()),
        mean_p_click: mean(per_user.iter().map(|x| x.2).sum::<f64>()),
        clickbait_share: mean(per_user.iter().map(|x| x.3).sum::<usize>() as f64),
        read_seconds,
    }
}

/// The oracle's top-`k` for each of the simulator's `users`: the items of the whole corpus with
/// the highest true expected reading seconds per impression, best first ([`top_indices`]).
pub fn oracle_lists(sim: &Simulator, users: &[usize], k: usize) -> Vec<Vec<u32>> {
    users
        .iter()
        .map(|&u| top_indices(&sim.user_truth(u).expected_read_seconds, k))
        .collect()
}

/// Indices of the `k` largest values (all of them when fewer), largest first; ties: lower
/// index first.
pub fn top_indices(values: &[f64], k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..values.len() as u32).collect();
    let k = k.min(idx.len());
    let cmp = |a: &u32, b: &u32| {
        values[*b as usize]
            .total_cmp(&values[*a as usize])
            .then(a.cmp(b))
    };
    if k < idx.len() && k > 0 {
        idx.select_nth_unstable_by(k - 1, cmp);
    }
    idx.truncate(k);
    idx.sort_by(cmp);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::PAD_INDEX;
    use dmtl_data::sim::SimConfig;

    #[test]
    fn top_indices_matches_a_full_sort() {
        let v = [0.3, 0.9, 0.1, 0.9, 0.5, -1.0];
        assert_eq!(top_indices(&v, 3), vec![1, 3, 4]);
        assert_eq!(top_indices(&v, 10), vec![1, 3, 4, 0, 2, 5]);
        assert!(top_indices(&v, 0).is_empty());
    }

    #[test]
    fn list_truth_is_pooled_over_pairs_and_skips_padding() {
        let sim = Simulator::try_new(SimConfig {
            n_users: 200,
            n_items: 300,
            n_impressions: 4_000,
            n_days: 6,
            n_author: 40,
            ..SimConfig::tiny()
        })
        .unwrap();
        // A full list and a short (padded) one: the pooled mean weighs the full list's three
        // pairs three times as much as the short list's one pair, which a mean of per-user
        // means would not.
        let lists = vec![vec![0, 5, 9], vec![7, PAD_INDEX, 300]];
        let t = list_truth(&sim, &[1, 2], &lists);
        assert_eq!(t.pairs, 4);
        let pairs = [(1, 0), (1, 5), (1, 9), (2, 7)];
        let want: f64 = pairs
            .iter()
            .map(|&(u, i)| sim.expected_read_seconds(u, i))
            .sum::<f64>()
            / 4.0;
        assert!((t.mean_expected_read_seconds.unwrap() - want).abs() < 1e-12);
        let want_bait = pairs.iter().filter(|p| sim.is_clickbait(p.1)).count() as f64 / 4.0;
        assert_eq!(t.clickbait_share, Some(want_bait));
        assert_eq!(t.read_seconds.len(), 4);
        assert_eq!(t.read_seconds[3], sim.expected_read_seconds(2, 7));
        let none = list_truth(&sim, &[1], &[vec![PAD_INDEX]]);
        assert_eq!((none.pairs, none.mean_p_click), (0, None));
    }
}
