//! A seeded simulator of Kandian-like feed logs that carries its ground truth.
//!
//! The DMTL paper's claim is that a two-tower model trained on clicks retrieves click-bait (titles
//! that attract clicks and are abandoned within seconds) while a model of long reads does not.
//! This module generates impression logs in which that story is true by construction and exposes
//! the exact truth (click probability, reading-time distribution) of every user-item pair, so the
//! whole pipeline can run without outside data and be judged on what matters.
//!
//! # Generative model
//!
//! **Topics.** `n_topics` topics, each with a popularity weight `exp(N(0, 0.5^2))`, an age
//! centre, a gender lean, a typical article length, a block of tag ids (tag `g` belongs to topic
//! `g mod n_topics`), a category (`topic mod n_category`) and a handful of sub-categories
//! (`(topic + n_topics k) mod n_sub_category`).
//!
//! **Users.** User `u` has 1 to 4 interest topics with weights `w_u` (normalised exponentials) and
//! interest vector `theta_u = 0.85 w_u + 0.15 / n_topics`. Side features follow the dominant
//! topic: age is its age centre plus noise (75 %) or a global age profile, gender its lean (5 %
//! unknown), `user_tags` 1 to 8 tags drawn 85 % from the interest topics' tag blocks (a share
//! `empty_tag_share` of users has none). City is Zipf-skewed (weight `1 / (rank + 1)`). A latent
//! taste vector `p_u` in R^8 (entries `N(0, 1/sqrt 8)`) adds structure no side feature shows, so
//! ids matter too. Each user has an activity weight (log-normal), a preferred hour and a home
//! network.
//!
//! **Authors and items.** An author writes in one topic and is a click-bait farm with probability
//! `f` (75 % of a farm's items are click-bait, 3 % of an honest author's; `f` is solved so that
//! the expected click-bait share of items is `clickbait_share`, 18 % by default); authors also
//! carry small quality and attractiveness offsets, so the `author` feature generalises. Item `i`
//! has a topic (by topic popularity), an author of that topic (Zipf among the topic's authors),
//! 1 to 5 tags (85 % from its topic), a latent vector `q_i`, a length bucket, a title
//! attractiveness `a_i` and a content quality `quality_i`:
//!
//! | | attractiveness `a_i` | quality `quality_i` | length bucket |
//! |---|---|---|---|
//! | click-bait | `N(1.4, 0.3^2)` | `N(-1.6, 0.4^2)` | short: around 20 % of the range |
//! | other | `N(0, 0.4^2)` + author offset | `N(0.2, 0.5^2)` + author offset | around the topic's length |
//!
//! Popularity is Zipf-like: a random rank `r_i` gives weight `(r_i + 1)^-s * exp(0.15 a_i)`, with
//! `s = popularity_exponent` (1.0); the attractiveness factor mimics a click-trained logging
//! policy that already favours catchy titles.
//!
//! **Truth.** Affinity `aff(u, i) = 0.6 ln(n_topics theta_u[topic_i]) + 0.5 <p_u, q_i>`
//! (between about -1.1 off-interest and +2.3 for a single-interest user). A context
//! `c = (hour, network)` adds an item-independent offset `o(c)` (day part: night -0.25,
//! morning +0.05, afternoon -0.05, evening +0.15; network: wifi +0.1, 4g 0, 5g +0.05, 3g -0.3).
//!
//! - click: `y ~ Bernoulli(sigmoid(-4.0 + aff(u, i) + a_i + o(c)))`;
//! - reading time after a click: `ln d ~ N(mu(u, i), 0.75^2)`, capped at `max_read_seconds`
//!   (600 s), with `mu(u, i) = 3.6 + 1.0 quality_i + 0.25 aff(u, i) + 0.4 len_i` where
//!   `len_i` in [-1, 1] is the centred length bucket; `d = 0` without a click;
//! - long read: `z = [d > long_read_threshold]` (50 s).
//!
//! The truth methods average the context out over the user's own context distribution (exact, a
//! finite sum): `p_click(u, i) = sum_c P_u(c) sigmoid(-4.0 + aff + a_i + o(c))`;
//! `E[d | click] = e^(mu + s^2/2) Phi((ln cap - mu - s^2)/s) + cap (1 - Phi((ln cap - mu)/s))`;
//! `P(d > T | click) = 1 - Phi((ln T - mu)/s)`. Since exposure never depends on the context, the
//! empirical click rate of any set of logged pairs converges to the mean of `p_click` over them.
//! Because click-bait gains about 1.4 in click logit but loses about 1.8 in log reading time
//! (plus its short length), ranking a user's corpus by `p_click` puts click-bait on top while
//! ranking by expected reading seconds (`p_click * E[d | click]`) or long-read probability
//! pushes it down.
//!
//! **Exposure.** An impression picks a user by activity, a day (rows are in day order, an equal
//! share per day), an hour (half the time the global daily curve, half the time within two hours
//! of the user's preferred hour) and a network (70 % the home network), then an item: by
//! popularity (`exposure_popular`, 35 %), from one of the user's interest topics by popularity
//! within the topic (`exposure_interest`, 50 %), or uniformly (the rest, exploration).
//!
//! # Rates
//!
//! Measured on `SimConfig::default()` (500,000 impressions, seed 2021; `cargo run --release -p
//! dmtl-data --example simulate -- DIR`): CTR 10.8 %, long reads 44 % of clicks (mean read of a
//! click 84 s), click-bait 18.2 % of items and 17.7 % of impressions, with a CTR of 22.8 % against
//! 8.3 % for the others and a mean read of 14 s against 125 s (long reads 3 % against 68 % of
//! clicks); the 10 % most shown items take 65 % of impressions. In each user's oracle top-50 of
//! the corpus, click-bait is 86 % by `p_click` and 0 % by expected reading seconds. On
//! `SimConfig::tiny()`: CTR 8.6 %, long reads 38 % of clicks, click-bait 16.9 % of items. The
//! tests assert the ranges: CTR in [5 %, 20 %], long-read share of clicks in [1/3, 1/2],
//! click-bait share of items within 4 points of `clickbait_share`.
//!
//! # Determinism
//!
//! Every random draw comes from ChaCha8 streams keyed by `seed` (one stream for topics, users,
//! authors and items, one per block of impressions), so the same configuration gives the same
//! log whatever the number of threads.

mod config;
mod corpus;
mod draw;
mod exposure;
mod math;
mod stats;
mod tables;
mod truth;
mod world;

use rand_distr::WeightedAliasIndex;

pub use config::SimConfig;
pub use stats::SimStats;
pub use tables::SimFiles;
pub use truth::UserTruth;

use tables::Names;

/// Dimension of the latent taste vectors `p_u`, `q_i`.
const LATENT_DIM: usize = 8;
/// Share of impressions whose hour follows the global daily curve (the rest: near the user's
/// preferred hour).
const GLOBAL_HOUR_SHARE: f64 = 0.5;
/// Share of impressions on the user's home network.
const HOME_NETWORK_SHARE: f64 = 0.7;
/// Standard deviation of each entry of the latent vectors `p_u`, `q_i`.
fn latent_sd() -> f64 {
    (1.0 / LATENT_DIM as f64).sqrt().sqrt()
}

/// The feed simulator: a drawn population of users and a corpus of items, from which impression
/// logs are generated and whose exact ground truth can be queried.
///
/// ```
/// use dmtl_data::sim::{SimConfig, Simulator};
/// let sim = Simulator::new(SimConfig { n_impressions: 1_000, ..SimConfig::tiny() });
/// let log = sim.impressions();
/// assert_eq!(log.n_rows, 1_000);
/// let (u, i) = (0, 0);
/// assert!(sim.p_long_read(u, i) <= sim.p_click(u, i));
/// ```
#[derive(Debug)]
pub struct Simulator {
    cfg: SimConfig,
    names: Names,
    // Users.
    /// `W_TOPIC ln(n_topics theta_u[t])`, row-major `n_users x n_topics`.
    user_topic_aff: Vec<f32>,
    /// Interest topics with cumulative weights, for interest-matched exposure.
    user_interests: Vec<Vec<(u32, f64)>>,
    user_latent: Vec<f32>,
    user_age: Vec<u16>,
    user_gender: Vec<u16>,
    user_city: Vec<u32>,
    user_tags: Vec<Vec<u32>>,
    user_hour: Vec<u16>,
    user_network: Vec<u16>,
    /// Probability of each context class (day part x network) for each user, row-major
    /// `n_users x (4 n_network)`.
    user_context: Vec<f64>,
    user_activity: WeightedAliasIndex<f64>,
    // Items.
    item_topic: Vec<u32>,
    item_category: Vec<u32>,
    item_sub_category: Vec<u32>,
    item_author: Vec<u32>,
    item_tags: Vec<Vec<u32>>,
    item_length: Vec<u16>,
    item_attractiveness: Vec<f64>,
    item_quality: Vec<f64>,
    item_clickbait: Vec<bool>,
    item_latent: Vec<f32>,
    item_popularity: WeightedAliasIndex<f64>,
    topic_items: Vec<Vec<u32>>,
    topic_popularity: Vec<Option<WeightedAliasIndex<f64>>>,
    // Context.
    hour_daypart: Vec<u8>,
    hour_global: WeightedAliasIndex<f64>,
    network_global: WeightedAliasIndex<f64>,
    /// Click-logit offset of each context class (day part x network).
    context_offset: Vec<f64>,
}

impl Simulator {
    /// The configuration the simulator was built from.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.cfg.n_users
    }

    /// Number of items in the corpus.
    pub fn n_items(&self) -> usize {
        self.cfg.n_items
    }

    /// Raw id of user `u`: `"u<u>"`.
    pub fn user_id(&self, u: usize) -> String {
        format!("u{u}")
    }

    /// Raw id of item `i`: `"i<i>"`.
    pub fn item_id(&self, i: usize) -> String {
        format!("i{i}")
    }

    /// Index of the user whose raw id is `raw_id`, or `None` for an id this simulator never
    /// produces.
    pub fn user_index(&self, raw_id: &str) -> Option<usize> {
        parse_id(raw_id, 'u', self.cfg.n_users)
    }

    /// Index of the item whose raw id is `raw_id`, or `None` for an id this simulator never
    /// produces.
    pub fn item_index(&self, raw_id: &str) -> Option<usize> {
        parse_id(raw_id, 'i', self.cfg.n_items)
    }

    /// Whether item `i` is click-bait (attractive title, poor content).
    ///
    /// # Panics
    /// When `i >= n_items()`.
    pub fn is_clickbait(&self, i: usize) -> bool {
        self.item_clickbait[i]
    }
}

/// Parses `"<prefix><digits>"` with no leading zeros into an index below `n`.
fn parse_id(raw: &str, prefix: char, n: usize) -> Option<usize> {
    let digits = raw.strip_prefix(prefix)?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse::<usize>().ok().filter(|&k| k < n)
}
