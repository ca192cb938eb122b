//! The ground truth: affinity, click probability and reading-time distribution of every
//! user-item pair, with the context averaged out over the user's own context distribution.

use rayon::prelude::*;

use super::math::{lognormal_capped_mean, lognormal_sf, sigmoid};
use super::{Simulator, LATENT_DIM};

/// Weight of the topic term of the affinity.
pub(super) const W_TOPIC: f64 = 0.6;
/// Weight of the latent term of the affinity.
const W_LATENT: f64 = 0.5;
/// Intercept of the click logit.
const CLICK_BIAS: f64 = -4.0;
/// Intercept of the log reading time.
const READ_BASE: f64 = 3.6;
/// Weight of content quality in the log reading time.
const W_READ_QUALITY: f64 = 1.0;
/// Weight of affinity in the log reading time.
const W_READ_AFFINITY: f64 = 0.25;
/// Weight of the centred length bucket in the log reading time.
const W_READ_LENGTH: f64 = 0.4;
/// Standard deviation of the log reading time.
pub(super) const READ_SIGMA: f64 = 0.75;

/// Ground truth of one user against every item of the corpus (index = item), context averaged
/// out; see [`Simulator::user_truth`].
#[derive(Debug, Clone, PartialEq)]
pub struct UserTruth {
    /// `p_click(u, i)` for every item `i`.
    pub p_click: Vec<f64>,
    /// `p_long_read(u, i)` (per impression) for every item `i`.
    pub p_long_read: Vec<f64>,
    /// `expected_read_seconds(u, i)` (per impression) for every item `i`.
    pub expected_read_seconds: Vec<f64>,
}

impl Simulator {
    /// Affinity `aff(u, i) = 0.6 ln(n_topics theta_u[topic_i]) + 0.5 <p_u, q_i>`.
    pub(super) fn affinity(&self, u: usize, i: usize) -> f64 {
        let nt = self.cfg.n_topics;
        let topic = self.user_topic_aff[u * nt + self.item_topic[i] as usize] as f64;
        let pu = &self.user_latent[u * LATENT_DIM..(u + 1) * LATENT_DIM];
        let qi = &self.item_latent[i * LATENT_DIM..(i + 1) * LATENT_DIM];
        let dot: f32 = pu.iter().zip(qi).map(|(a, b)| a * b).sum();
        topic + W_LATENT * dot as f64
    }

    /// Click logit without the context offset.
    pub(super) fn click_logit(&self, aff: f64, i: usize) -> f64 {
        CLICK_BIAS + aff + self.item_attractiveness[i]
    }

    /// Mean of the log reading time after a click.
    pub(super) fn read_mu(&self, aff: f64, i: usize) -> f64 {
        let span = (self.cfg.n_length_bucket - 1) as f64;
        let len = if span > 0.0 {
            (self.item_length[i] as f64 - span / 2.0) / (span / 2.0)
        } else {
            0.0
        };
        READ_BASE
            + W_READ_QUALITY * self.item_quality[i]
            + W_READ_AFFINITY * aff
            + W_READ_LENGTH * len
    }

    pub(super) fn context_class(&self, hour: usize, network: usize) -> usize {
        self.hour_daypart[hour] as usize * self.cfg.n_network + network
    }

    fn p_click_at(&self, u: usize, i: usize, aff: f64) -> f64 {
        let n_ctx = self.context_offset.len();
        let l0 = self.click_logit(aff, i);
        self.user_context[u * n_ctx..(u + 1) * n_ctx]
            .iter()
            .zip(&self.context_offset)
            .map(|(w, o)| w * sigmoid(l0 + o))
            .sum()
    }

    /// True probability that user `u` clicks item `i` when shown it, with the context averaged
    /// over the user's context distribution.
    ///
    /// # Panics
    /// When `u >= n_users()` or `i >= n_items()`.
    pub fn p_click(&self, u: usize, i: usize) -> f64 {
        self.p_click_at(u, i, self.affinity(u, i))
    }

    /// True mean reading time in seconds after a click, `E[min(d, max_read_seconds) | click]`.
    ///
    /// # Panics
    /// When `u >= n_users()` or `i >= n_items()`.
    pub fn mean_read_seconds_given_click(&self, u: usize, i: usize) -> f64 {
        let mu = self.read_mu(self.affinity(u, i), i);
        lognormal_capped_mean(mu, READ_SIGMA, self.cfg.max_read_seconds)
    }

    /// True probability of a long read after a click, `P(d > long_read_threshold | click)`.
    ///
    /// # Panics
    /// When `u >= n_users()` or `i >= n_items()`.
    pub fn p_long_read_given_click(&self, u: usize, i: usize) -> f64 {
        let mu = self.read_mu(self.affinity(u, i), i);
        lognormal_sf(mu, READ_SIGMA, self.cfg.long_read_threshold)
    }

    /// True expected reading seconds per impression: `p_click * E[d | click]`.
    ///
    /// # Panics
    /// When `u >= n_users()` or `i >= n_items()`.
    pub fn expected_read_seconds(&self, u: usize, i: usize) -> f64 {
        let aff = self.affinity(u, i);
        let mu = self.read_mu(aff, i);
        self.p_click_at(u, i, aff)
            * lognormal_capped_mean(mu, READ_SIGMA, self.cfg.max_read_seconds)
    }

    /// True probability of a long read per impression (the paper's pCTCVR):
    /// `p_click * P(d > T | click)`.
    ///
    /// # Panics
    /// When `u >= n_users()` or `i >= n_items()`.
    pub fn p_long_read(&self, u: usize, i: usize) -> f64 {
        let aff = self.affinity(u, i);
        let mu = self.read_mu(aff, i);
        self.p_click_at(u, i, aff) * lognormal_sf(mu, READ_SIGMA, self.cfg.long_read_threshold)
    }

    /// The truth of user `u` against every item of the corpus, computed in parallel; what an
    /// oracle top-K over the corpus needs.
    ///
    /// # Panics
    /// When `u >= n_users()`.
    pub fn user_truth(&self, u: usize) -> UserTruth {
        let rows: Vec<(f64, f64, f64)> = (0..self.cfg.n_items)
            .into_par_iter()
            .map(|i| {
                let aff = self.affinity(u, i);
                let mu = self.read_mu(aff, i);
                let p = self.p_click_at(u, i, aff);
                (
                    p,
                    p * lognormal_sf(mu, READ_SIGMA, self.cfg.long_read_threshold),
                    p * lognormal_capped_mean(mu, READ_SIGMA, self.cfg.max_read_seconds),
                )
            })
            .collect();
        UserTruth {
            p_click: rows.iter().map(|r| r.0).collect(),
            p_long_read: rows.iter().map(|r| r.1).collect(),
            expected_read_seconds: rows.iter().map(|r| r.2).collect(),
        }
    }
}
