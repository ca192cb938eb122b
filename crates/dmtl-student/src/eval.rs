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
//! top-K by true expected reading seconds) and for K items drawn at random bracket the model.

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
use crate::objective::OutputKind;
use crate::retrieval::{top_k, PAD_INDEX};
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

/// The truth about a set of top-K lists, averaged over users (each user's list first averaged
/// over its items).
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
        let oracle_lists: Vec<Vec<u32>> = users
            .iter()
            .map(|&u| {
                let truth = sim.user_truth(u).expected_read_seconds;
                let mut idx: Vec<u32> = (0..truth.len() as u32).collect();
                let by_truth = |a: &u32, b: &u32| {
                    truth[*b as usize]
                        .total_cmp(&truth[*a as usize])
                        .then(a.cmp(b))
                };
                if k < idx.len() {
                    idx.select_nth_unstable_by(k, by_truth);
                    idx.truncate(k);
                }
                idx.sort_unstable_by(by_truth);
                idx
            })
            .collect();
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

    /// The truth about per-user lists of item indices (padding [`PAD_INDEX`] entries are
    /// skipped).
    ///
    /// # Panics
    /// When there is not one list per sampled user or an index is outside the corpus.
    pub fn quality(&self, lists: &[Vec<u32>]) -> TopKQuality {
        assert_eq!(lists.len(), self.users.len(), "one list per sampled user");
        let per_user: Vec<[f64; 4]> = lists
            .par_iter()
            .zip(&self.users)
            .map(|(list, &u)| {
                let items: Vec<usize> = list
                    .iter()
                    .filter(|&&i| i != PAD_INDEX)
                    .map(|&i| i as usize)
                    .collect();
                let n = items.len().max(1) as f64;
                let mut acc = [0.0f64; 4];
                for &i in &items {
                    acc[0] += self.sim.expected_read_seconds(u, i);
                    acc[1] += self.sim.p_long_read(u, i);
                    acc[2] += self.sim.p_click(u, i);
                    acc[3] += f64::from(u8::from(self.sim.is_clickbait(i)));
                }
                acc.map(|a| a / n)
            })
            .collect();
        let users = per_user.len().max(1) as f64;
        let mean = |k: usize| per_user.iter().map(|a| a[k]).sum::<f64>() / users;
        TopKQuality {
            mean_expected_read_seconds: mean(0),
            mean_p_long_read: mean(1),
            mean_p_click: mean(2),
            clickbait_share: mean(3),
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
