//! Exposure: which user sees which item in which context, and what they do with it. The log is
//! cut into blocks of rows, each drawn from its own seeded stream, so it can be generated in
//! parallel and still depend on the configuration only.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::draw::{stream, STREAM_BLOCKS};
use super::math::sigmoid;
use super::truth::READ_SIGMA;
use super::{Simulator, GLOBAL_HOUR_SHARE, HOME_NETWORK_SHARE};

/// Rows per independently seeded block of impressions.
const BLOCK_ROWS: usize = 16_384;

/// One simulated impression before it becomes strings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Impression {
    pub(super) user: u32,
    pub(super) item: u32,
    pub(super) hour: u16,
    pub(super) network: u16,
    pub(super) day: u32,
    pub(super) click: bool,
    pub(super) duration: f32,
}

impl Simulator {
    /// Generates one block of impressions from its own stream.
    fn block(&self, day: usize, len: usize, block_id: usize) -> Vec<Impression> {
        let c = &self.cfg;
        let mut rng = stream(c.seed, STREAM_BLOCKS + block_id as u64);
        let p_pop = c.exposure_popular;
        let p_interest = c.exposure_popular + c.exposure_interest;
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            let u = self.user_activity.sample(&mut rng);
            let hour = if rng.gen::<f64>() < GLOBAL_HOUR_SHARE {
                self.hour_global.sample(&mut rng)
            } else {
                let off = rng.gen_range(-2i64..=2);
                (self.user_hour[u] as i64 + off).rem_euclid(c.n_hour as i64) as usize
            };
            let network = if rng.gen::<f64>() < HOME_NETWORK_SHARE {
                self.user_network[u] as usize
            } else {
                self.network_global.sample(&mut rng)
            };
            let r: f64 = rng.gen();
            let i = if r < p_pop {
                self.item_popularity.sample(&mut rng)
            } else if r < p_interest {
                let x: f64 = rng.gen();
                let interests = &self.user_interests[u];
                let t = interests
                    .iter()
                    .find(|(_, cw)| x < *cw)
                    .map_or(interests[interests.len() - 1].0, |(t, _)| *t)
                    as usize;
                match &self.topic_popularity[t] {
                    Some(a) => self.topic_items[t][a.sample(&mut rng)] as usize,
                    None => self.item_popularity.sample(&mut rng),
                }
            } else {
                rng.gen_range(0..c.n_items)
            };
            let aff = self.affinity(u, i);
            let logit =
                self.click_logit(aff, i) + self.context_offset[self.context_class(hour, network)];
            let click = rng.gen::<f64>() < sigmoid(logit);
            let duration = if click {
                let z: f64 = rng.sample(StandardNormal);
                (self.read_mu(aff, i) + READ_SIGMA * z)
                    .exp()
                    .min(c.max_read_seconds) as f32
            } else {
                0.0
            };
            out.push(Impression {
                user: u as u32,
                item: i as u32,
                hour: hour as u16,
                network: network as u16,
                day: day as u32,
                click,
                duration,
            });
        }
        out
    }

    /// Every impression of the log, in day order: `n_impressions` rows spread evenly over the
    /// days, each day cut into blocks of at most `BLOCK_ROWS` rows generated in parallel.
    pub(super) fn impression_rows(&self) -> Vec<Impression> {
        let c = &self.cfg;
        let base = c.n_impressions / c.n_days;
        let extra = c.n_impressions % c.n_days;
        let mut blocks = Vec::new();
        for day in 0..c.n_days {
            let rows = base + usize::from(day < extra);
            let mut start = 0;
            while start < rows {
                let len = BLOCK_ROWS.min(rows - start);
                blocks.push((day, len, blocks.len()));
                start += len;
            }
        }
        blocks
            .par_iter()
            .map(|&(day, len, id)| self.block(day, len, id))
            .collect::<Vec<_>>()
            .concat()
    }
}
