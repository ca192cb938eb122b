//! The retrieval task built from test rows given whole or chunk by chunk: which test users
//! are evaluated (a seeded sample, [`sample_positions`]), what each of them read long in the
//! test period, and how many training impressions each corpus item had ([`TaskBuilder`]).

use std::collections::HashMap;

use anyhow::{anyhow, Result};
use dmtl_data::sim::Simulator;
use dmtl_data::RawLog;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::RunConfig;
use crate::eval::RetrievalTask;

/// Of `n` test users in order of first appearance, the positions of those sampled for
/// retrieval (`eval.retrieval_users` of them, seeded by `eval.seed`), ascending.
pub fn sample_positions(cfg: &RunConfig, n: usize) -> Vec<usize> {
    let mut sample: Vec<usize> = (0..n).collect();
    sample.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.eval.seed ^ 0x5eed));
    sample.truncate(cfg.eval.retrieval_users);
    sample.sort_unstable();
    sample
}

/// The retrieval task under construction: the sampled users' long reads and the corpus
/// items' training impressions, added rows at a time.
pub struct TaskBuilder<'a> {
    user_ids: Vec<String>,
    user_pos: HashMap<String, usize>,
    corpus_index: HashMap<&'a str, u32>,
    long_reads: Vec<Vec<u32>>,
    corpus_train_impressions: Vec<u32>,
}

impl<'a> TaskBuilder<'a> {
    /// A task over the sampled users `user_ids` (raw ids) and the corpus `corpus_ids`.
    pub fn new(user_ids: Vec<String>, corpus_ids: &'a [String]) -> TaskBuilder<'a> {
        TaskBuilder {
            user_pos: user_ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i))
                .collect(),
            corpus_index: corpus_ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), i as u32))
                .collect(),
            long_reads: vec![Vec::new(); user_ids.len()],
            corpus_train_impressions: vec![0; corpus_ids.len()],
            user_ids,
        }
    }

    /// Whether `user` is a sampled user.
    pub fn is_sampled(&self, user: &str) -> bool {
        self.user_pos.contains_key(user)
    }

    /// A long read of `item` by `user` in the test period (counted when the user is sampled
    /// and the item is in the corpus).
    pub fn add_long_read(&mut self, user: &str, item: &str) {
        if let (Some(&u), Some(&i)) = (self.user_pos.get(user), self.corpus_index.get(item)) {
            self.long_reads[u].push(i);
        }
    }

    /// An impression of `item` in the training rows.
    pub fn add_train_item(&mut self, item: &str) {
        if let Some(&i) = self.corpus_index.get(item) {
            self.corpus_train_impressions[i as usize] += 1;
        }
    }

    /// The sampled users' raw ids.
    pub fn user_ids(&self) -> &[String] {
        &self.user_ids
    }

    /// The task, with the simulator's index of every user on simulated data.
    pub fn finish(mut self, sim_users: Option<Vec<usize>>) -> RetrievalTask {
        self.long_reads.iter_mut().for_each(|l| {
            l.sort_unstable();
            l.dedup();
        });
        RetrievalTask {
            user_ids: self.user_ids,
            long_reads: self.long_reads,
            sim_users,
            corpus_train_impressions: self.corpus_train_impressions,
        }
    }
}

/// Whether each labelled row of `raw` is a long read (click and duration above
/// `threshold`, as `Dataset::encode` labels it); none when `raw` has no labels.
pub fn long_reads(raw: &RawLog, threshold: f32) -> Vec<bool> {
    match (&raw.click, &raw.duration) {
        (Some(c), Some(d)) => c
            .iter()
            .zip(d)
            .map(|(&c, &d)| c > 0.5 && d > threshold)
            .collect(),
        _ => vec![false; raw.n_rows],
    }
}

/// The simulator's index of each sampled user and their query rows (each user's typical
/// context, as in serving).
pub fn sim_queries(sim: &Simulator, user_ids: &[String]) -> Result<(Vec<usize>, RawLog)> {
    let idx: Vec<usize> = user_ids
        .iter()
        .map(|id| {
            sim.user_index(id)
                .ok_or_else(|| anyhow!("simulated user id {id} is not the simulator's"))
        })
        .collect::<Result<_>>()?;
    let queries = sim.user_table(&idx);
    Ok((idx, queries))
}
