//! The reference rows of the table: the oracle (simulated data only: the true probabilities
//! offline, the true expected reading time for retrieval) and random scores and lists.

use anyhow::{anyhow, Result};
use dmtl_data::sim::Simulator;
use dmtl_student::eval::oracle_lists;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::config::RunConfig;
use crate::eval::{self, Output};
use crate::metrics::ModelResult;
use crate::prepare::Prepared;
use crate::progress::Progress;

/// The oracle's row (simulated data) and the random row, histograms over `edges`.
pub fn rows(
    cfg: &RunConfig,
    data: &Prepared,
    edges: &[f64],
    progress: &Progress,
) -> Result<Vec<ModelResult>> {
    let step = progress.step("reference rows: oracle and random");
    let mut rows = Vec::new();
    if let (Some(sim), Some(users)) = (&data.sim, &data.task.sim_users) {
        rows.push(oracle(cfg, data, sim, users, edges)?);
    }
    rows.push(random(cfg, data, edges));
    step.finish();
    Ok(rows)
}

/// The oracle: the simulator's true click and long-read probabilities of every test row, and
/// each sampled user's top K by true expected reading seconds.
fn oracle(
    cfg: &RunConfig,
    data: &Prepared,
    sim: &Simulator,
    users: &[usize],
    edges: &[f64],
) -> Result<ModelResult> {
    let (ug, ig) = (&data.test.user_group, &data.test.item_group);
    let uidx = sim_indices(&data.test.user_ids, "user", |id| sim.user_index(id))?;
    let iidx = sim_indices(&data.test.item_ids, "item", |id| sim.item_index(id))?;
    let (p_click, p_long): (Vec<f32>, Vec<f32>) = (0..data.test.n_rows)
        .into_par_iter()
        .map(|r| {
            let (u, i) = (uidx[ug[r] as usize], iidx[ig[r] as usize]);
            (sim.p_click(u, i) as f32, sim.p_long_read(u, i) as f32)
        })
        .unzip();
    let mut off = eval::offline(&p_long, Some(&p_long), Output::LongRead, &data.test);
    off.click_auc = dmtl_metrics::auc(&p_click, &data.test.click);
    off.click_logloss = Some(dmtl_metrics::logloss(&p_click, &data.test.click));
    let k = cfg.eval.k;
    let lists = oracle_lists(sim, users, k);
    let ret = eval::retrieval(&data.task, &lists, k, Some(sim), edges);
    Ok(ModelResult::reference(
        "oracle",
        "Oracle (true probabilities)",
        off,
        ret,
    ))
}

/// The simulator's index of every raw id (`what`: user or item), or an error naming the first
/// unknown one.
fn sim_indices(
    ids: &[String],
    what: &str,
    index: impl Fn(&str) -> Option<usize>,
) -> Result<Vec<usize>> {
    ids.iter()
        .map(|id| index(id).ok_or_else(|| anyhow!("unknown {what} {id}")))
        .collect()
}

/// Random scores of the test rows and K random corpus items per sampled user (seeded by
/// `eval.seed`).
fn random(cfg: &RunConfig, data: &Prepared, edges: &[f64]) -> ModelResult {
    let k = cfg.eval.k;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.eval.seed ^ 0xabcd);
    let scores: Vec<f32> = (0..data.test.n_rows).map(|_| rng.gen::<f32>()).collect();
    let off = eval::offline(&scores, None, Output::Score, &data.test);
    let n_items = data.corpus.n_rows;
    let lists: Vec<Vec<u32>> = (0..data.task.user_ids.len())
        .map(|_| {
            rand::seq::index::sample(&mut rng, n_items, k.min(n_items))
                .into_iter()
                .map(|i| i as u32)
                .collect()
        })
        .collect();
    let ret = eval::retrieval(&data.task, &lists, k, data.sim.as_ref(), edges);
    ModelResult::reference("random", "Random", off, ret)
}
