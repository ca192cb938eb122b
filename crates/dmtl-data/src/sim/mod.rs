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

mod math;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, StandardNormal, WeightedAliasIndex};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::raw::{RawColumn, RawLog, StrColumn};
use crate::schema::Schema;
use math::{lognormal_capped_mean, lognormal_sf, sigmoid};

/// Dimension of the latent taste vectors `p_u`, `q_i`.
const LATENT_DIM: usize = 8;
/// Share of a user's interest vector on their interest topics (the rest is spread uniformly).
const INTEREST_MASS: f64 = 0.85;
/// Weight of the topic term of the affinity.
const W_TOPIC: f64 = 0.6;
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
const READ_SIGMA: f64 = 0.75;
/// Weight of attractiveness in the log popularity of an item.
const POPULARITY_TILT: f64 = 0.15;
/// Share of a click-bait farm's items that are click-bait.
const FARM_BAIT_RATE: f64 = 0.75;
/// Share of an honest author's items that are click-bait.
const HONEST_BAIT_RATE: f64 = 0.03;
/// Share of impressions whose hour follows the global daily curve (the rest: near the user's
/// preferred hour).
const GLOBAL_HOUR_SHARE: f64 = 0.5;
/// Share of impressions on the user's home network.
const HOME_NETWORK_SHARE: f64 = 0.7;
/// Click-logit offsets of the four day parts (night, morning, afternoon, evening).
const DAYPART_OFFSET: [f64; 4] = [-0.25, 0.05, -0.05, 0.15];
/// Rows per independently seeded block of impressions.
const BLOCK_ROWS: usize = 16_384;

/// Sizes, vocabulary sizes and knobs of the simulator. Serialisable; missing keys take the
/// values of [`SimConfig::default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Number of users.
    pub n_users: usize,
    /// Number of items in the corpus.
    pub n_items: usize,
    /// Number of impressions (rows) in the log.
    pub n_impressions: usize,
    /// Number of days; the `day` column runs over `0..n_days`.
    pub n_days: usize,
    /// Number of latent topics.
    pub n_topics: usize,
    /// Age buckets.
    pub n_age: usize,
    /// Gender values ("f", "m", "u" for three).
    pub n_gender: usize,
    /// Cities.
    pub n_city: usize,
    /// Vocabulary of user interest tags.
    pub n_user_tags: usize,
    /// Hours of the day.
    pub n_hour: usize,
    /// Network types ("wifi", "4g", "5g", "3g" for four).
    pub n_network: usize,
    /// Item categories.
    pub n_category: usize,
    /// Item sub-categories.
    pub n_sub_category: usize,
    /// Authors.
    pub n_author: usize,
    /// Vocabulary of item tags.
    pub n_item_tags: usize,
    /// Article length buckets.
    pub n_length_bucket: usize,
    /// Expected share of click-bait items in the corpus, in [0, 1].
    pub clickbait_share: f64,
    /// Reading time (seconds) above which a click counts as a long read.
    pub long_read_threshold: f64,
    /// Reading times are capped at this many seconds.
    pub max_read_seconds: f64,
    /// Share of users with an empty `user_tags` list.
    pub empty_tag_share: f64,
    /// Zipf exponent of item popularity.
    pub popularity_exponent: f64,
    /// Share of impressions drawn by popularity.
    pub exposure_popular: f64,
    /// Share of impressions drawn from the user's interest topics.
    pub exposure_interest: f64,
    /// Embedding dimension written into the schema's `[defaults]`.
    pub embedding_dim: usize,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for SimConfig {
    /// Demo scale: 10,000 users, 20,000 items, 500,000 impressions over 30 days.
    fn default() -> Self {
        SimConfig {
            n_users: 10_000,
            n_items: 20_000,
            n_impressions: 500_000,
            n_days: 30,
            n_topics: 50,
            n_age: 8,
            n_gender: 3,
            n_city: 400,
            n_user_tags: 2_000,
            n_hour: 24,
            n_network: 4,
            n_category: 40,
            n_sub_category: 400,
            n_author: 2_000,
            n_item_tags: 2_000,
            n_length_bucket: 10,
            clickbait_share: 0.18,
            long_read_threshold: 50.0,
            max_read_seconds: 600.0,
            empty_tag_share: 0.02,
            popularity_exponent: 1.0,
            exposure_popular: 0.35,
            exposure_interest: 0.5,
            embedding_dim: 16,
            seed: 2021,
        }
    }
}

impl SimConfig {
    /// Test scale: 2,000 users, 2,000 items, 60,000 impressions over 12 days, 20 topics.
    pub fn tiny() -> Self {
        SimConfig {
            n_users: 2_000,
            n_items: 2_000,
            n_impressions: 60_000,
            n_days: 12,
            n_topics: 20,
            n_author: 200,
            ..SimConfig::default()
        }
    }

    /// The sizes of the reference workload (BENCHMARKS.md): 100,000 users, 200,000 items,
    /// 20,000 authors, 5,000,000 impressions over 30 days.
    pub fn reference() -> Self {
        SimConfig {
            n_users: 100_000,
            n_items: 200_000,
            n_impressions: 5_000_000,
            n_author: 20_000,
            ..SimConfig::default()
        }
    }

    /// First day of the test period written into the schema: the last sixth of the days (at
    /// least one) is held out.
    pub fn test_from(&self) -> usize {
        self.n_days - (self.n_days / 6).max(1).min(self.n_days.saturating_sub(1))
    }

    /// Checks the configuration; the error names the offending key and what was expected.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("n_users", self.n_users),
            ("n_items", self.n_items),
            ("n_days", self.n_days),
            ("n_topics", self.n_topics),
            ("n_age", self.n_age),
            ("n_gender", self.n_gender),
            ("n_city", self.n_city),
            ("n_user_tags", self.n_user_tags),
            ("n_hour", self.n_hour),
            ("n_network", self.n_network),
            ("n_category", self.n_category),
            ("n_sub_category", self.n_sub_category),
            ("n_author", self.n_author),
            ("n_item_tags", self.n_item_tags),
            ("n_length_bucket", self.n_length_bucket),
            ("embedding_dim", self.embedding_dim),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(format!("simulator config: {key} must be at least 1, got 0"));
            }
        }
        if self.n_users > u32::MAX as usize || self.n_items > u32::MAX as usize {
            return Err("simulator config: n_users and n_items must fit in 32 bits".into());
        }
        let shares = [
            ("clickbait_share", self.clickbait_share),
            ("empty_tag_share", self.empty_tag_share),
            ("exposure_popular", self.exposure_popular),
            ("exposure_interest", self.exposure_interest),
        ];
        for (key, v) in shares {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!(
                    "simulator config: {key} must be in [0, 1], got {v}"
                ));
            }
        }
        if self.exposure_popular + self.exposure_interest > 1.0 {
            return Err(format!(
                "simulator config: exposure_popular + exposure_interest must be at most 1, got {}",
                self.exposure_popular + self.exposure_interest
            ));
        }
        if !(self.long_read_threshold.is_finite() && self.long_read_threshold > 0.0) {
            return Err(format!(
                "simulator config: long_read_threshold must be a positive number, got {}",
                self.long_read_threshold
            ));
        }
        if !(self.max_read_seconds.is_finite() && self.max_read_seconds > self.long_read_threshold)
        {
            return Err(format!(
                "simulator config: max_read_seconds must exceed long_read_threshold ({}), got {}",
                self.long_read_threshold, self.max_read_seconds
            ));
        }
        if !(self.popularity_exponent.is_finite() && self.popularity_exponent >= 0.0) {
            return Err(format!(
                "simulator config: popularity_exponent must be a non-negative number, got {}",
                self.popularity_exponent
            ));
        }
        Ok(())
    }
}

/// Paths of the files [`Simulator::write`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFiles {
    /// The impression log (`log.csv` or `log.parquet`).
    pub log: PathBuf,
    /// The schema of the log (`schema.toml`).
    pub schema: PathBuf,
    /// Every item of the corpus with its item-side columns (`items.csv` / `items.parquet`).
    pub items: PathBuf,
    /// Every user with the user-side columns and a typical context (`users.csv` / `users.parquet`).
    pub users: PathBuf,
}

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

/// One simulated impression before it becomes strings.
#[derive(Debug, Clone, Copy)]
struct Impression {
    user: u32,
    item: u32,
    hour: u16,
    network: u16,
    day: u32,
    click: bool,
    duration: f32,
}

/// String forms of every categorical value, made once.
#[derive(Debug)]
struct Names {
    age: Vec<String>,
    gender: Vec<String>,
    city: Vec<String>,
    user_tag: Vec<String>,
    hour: Vec<String>,
    network: Vec<String>,
    category: Vec<String>,
    sub_category: Vec<String>,
    author: Vec<String>,
    item_tag: Vec<String>,
    length: Vec<String>,
}

impl Names {
    fn new(c: &SimConfig) -> Names {
        let fixed_or = |fixed: &[&str], n: usize, prefix: &str| -> Vec<String> {
            (0..n)
                .map(|k| match fixed.get(k) {
                    Some(s) if n <= fixed.len() => s.to_string(),
                    _ => format!("{prefix}{k}"),
                })
                .collect()
        };
        let numbered = |n: usize, prefix: &str| (0..n).map(|k| format!("{prefix}{k}")).collect();
        let ages = [
            "<18", "18-24", "25-29", "30-34", "35-39", "40-49", "50-59", "60+",
        ];
        let age = if c.n_age == ages.len() {
            ages.iter().map(|s| s.to_string()).collect()
        } else {
            numbered(c.n_age, "age")
        };
        Names {
            age,
            gender: fixed_or(&["f", "m", "u"], c.n_gender, "g"),
            city: numbered(c.n_city, "c"),
            user_tag: numbered(c.n_user_tags, "t"),
            hour: numbered(c.n_hour, ""),
            network: fixed_or(&["wifi", "4g", "5g", "3g"], c.n_network, "net"),
            category: numbered(c.n_category, "cat"),
            sub_category: numbered(c.n_sub_category, "sub"),
            author: numbered(c.n_author, "a"),
            item_tag: numbered(c.n_item_tags, "t"),
            length: numbered(c.n_length_bucket, ""),
        }
    }
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

/// A ChaCha8 generator for one named purpose: the seed picks the key, the purpose the stream,
/// so draws for one purpose never shift when another changes.
fn stream(seed: u64, purpose: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(purpose);
    rng
}

const STREAM_TOPICS: u64 = 1;
const STREAM_USERS: u64 = 2;
const STREAM_AUTHORS: u64 = 3;
const STREAM_ITEMS: u64 = 4;
const STREAM_BLOCKS: u64 = 1 << 32;

fn alias(weights: Vec<f64>) -> WeightedAliasIndex<f64> {
    WeightedAliasIndex::new(weights).expect("positive finite weights")
}

fn normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64) -> f64 {
    mean + sd * rng.sample::<f64, _>(StandardNormal)
}

/// A rounded normal draw clamped to `0..n`.
fn bucket(rng: &mut ChaCha8Rng, mean: f64, sd: f64, n: usize) -> usize {
    normal(rng, mean, sd).round().clamp(0.0, (n - 1) as f64) as usize
}

/// An index into a list of length `n`, skewed towards the front (P(k) falls like 1/sqrt).
fn skewed_index(rng: &mut ChaCha8Rng, n: usize) -> usize {
    let u: f64 = rng.gen();
    ((u * u * n as f64) as usize).min(n - 1)
}

/// Ids of the tags (out of `n_tags`) that belong to topic `t`.
fn topic_tag(rng: &mut ChaCha8Rng, t: usize, n_topics: usize, n_tags: usize) -> usize {
    if t >= n_tags {
        return rng.gen_range(0..n_tags);
    }
    let block = (n_tags - t).div_ceil(n_topics);
    t + n_topics * skewed_index(rng, block)
}

/// Draws up to `n` distinct tags: with probability 0.85 from a topic given by `topic`, else
/// uniformly.
fn draw_tags(
    rng: &mut ChaCha8Rng,
    n: usize,
    n_tags: usize,
    n_topics: usize,
    mut topic: impl FnMut(&mut ChaCha8Rng) -> usize,
) -> Vec<u32> {
    let mut tags: Vec<u32> = Vec::with_capacity(n);
    let mut attempts = 0;
    while tags.len() < n.min(n_tags) && attempts < 4 * n {
        attempts += 1;
        let g = if rng.gen::<f64>() < 0.85 {
            let t = topic(rng);
            topic_tag(rng, t, n_topics, n_tags)
        } else {
            rng.gen_range(0..n_tags)
        } as u32;
        if !tags.contains(&g) {
            tags.push(g);
        }
    }
    tags
}

impl Simulator {
    /// Draws the topics, users, authors and items of `cfg`.
    ///
    /// # Panics
    /// When `cfg` fails [`SimConfig::validate`] (the message names the key); use
    /// [`Simulator::try_new`] to get the error instead.
    pub fn new(cfg: SimConfig) -> Simulator {
        match Simulator::try_new(cfg) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Simulator::new`], returning the validation error instead of panicking.
    pub fn try_new(cfg: SimConfig) -> Result<Simulator, String> {
        cfg.validate()?;
        let c = &cfg;
        let nt = c.n_topics;

        // Topics.
        let mut rng = stream(c.seed, STREAM_TOPICS);
        let topic_weight: Vec<f64> = (0..nt).map(|_| normal(&mut rng, 0.0, 0.5).exp()).collect();
        let topic_age: Vec<f64> = (0..nt)
            .map(|_| rng.gen::<f64>() * (c.n_age - 1) as f64)
            .collect();
        let topic_female: Vec<f64> = (0..nt).map(|_| rng.gen_range(0.2..0.8)).collect();
        let len_span = (c.n_length_bucket - 1) as f64;
        let topic_length: Vec<f64> = (0..nt)
            .map(|_| rng.gen_range(0.25..=0.75) * len_span)
            .collect();
        let topic_pick = alias(topic_weight);
        let subs_per_topic = (c.n_sub_category / nt).max(1);

        // Context.
        let hour_weight: Vec<f64> = (0..c.n_hour)
            .map(|h| {
                let x = h as f64 * 24.0 / c.n_hour as f64;
                let g = |m: f64, s: f64| (-0.5 * ((x - m) / s).powi(2)).exp();
                0.2 + g(8.0, 1.5) + 0.8 * g(12.5, 1.5) + 1.3 * g(21.0, 2.0)
            })
            .collect();
        let hour_daypart: Vec<u8> = (0..c.n_hour).map(|h| (h * 4 / c.n_hour) as u8).collect();
        let hour_total: f64 = hour_weight.iter().sum();
        let mut daypart_global = [0.0f64; 4];
        for h in 0..c.n_hour {
            daypart_global[hour_daypart[h] as usize] += hour_weight[h] / hour_total;
        }
        let net_w: Vec<f64> = (0..c.n_network)
            .map(|k| [0.55, 0.35, 0.07, 0.03].get(k).copied().unwrap_or(0.02))
            .collect();
        let net_total: f64 = net_w.iter().sum();
        let network_global_p: Vec<f64> = net_w.iter().map(|w| w / net_total).collect();
        let net_offset: Vec<f64> = (0..c.n_network)
            .map(|k| [0.1, 0.0, 0.05, -0.3].get(k).copied().unwrap_or(-0.2))
            .collect();
        let n_ctx = 4 * c.n_network;
        let context_offset: Vec<f64> = (0..n_ctx)
            .map(|k| DAYPART_OFFSET[k / c.n_network] + net_offset[k % c.n_network])
            .collect();

        // Users.
        let mut rng = stream(c.seed, STREAM_USERS);
        let age_profile = alias(
            (0..c.n_age)
                .map(|k| {
                    if c.n_age == 8 {
                        [0.05, 0.15, 0.2, 0.18, 0.14, 0.13, 0.09, 0.06][k]
                    } else {
                        1.0
                    }
                })
                .collect(),
        );
        let city_pick = alias((0..c.n_city).map(|k| 1.0 / (k + 1) as f64).collect());
        let activity = LogNormal::new(0.0, 0.8).expect("valid log-normal");
        let latent_sd = (1.0 / LATENT_DIM as f64).sqrt().sqrt();
        let mut user_topic_aff = Vec::with_capacity(c.n_users * nt);
        let mut user_interests = Vec::with_capacity(c.n_users);
        let mut user_latent = Vec::with_capacity(c.n_users * LATENT_DIM);
        let mut user_age = Vec::with_capacity(c.n_users);
        let mut user_gender = Vec::with_capacity(c.n_users);
        let mut user_city = Vec::with_capacity(c.n_users);
        let mut user_tags = Vec::with_capacity(c.n_users);
        let mut user_hour = Vec::with_capacity(c.n_users);
        let mut user_network = Vec::with_capacity(c.n_users);
        let mut user_context = Vec::with_capacity(c.n_users * n_ctx);
        let mut activity_w = Vec::with_capacity(c.n_users);
        let hour_pick = alias(hour_weight.clone());
        let net_pick = alias(network_global_p.clone());
        for _ in 0..c.n_users {
            let k = {
                let r: f64 = rng.gen();
                (if r < 0.3 {
                    1
                } else if r < 0.65 {
                    2
                } else if r < 0.9 {
                    3
                } else {
                    4
                })
                .min(nt)
            };
            let mut topics: Vec<usize> = Vec::with_capacity(k);
            let mut tries = 0;
            while topics.len() < k && tries < 50 {
                tries += 1;
                let t = topic_pick.sample(&mut rng);
                if !topics.contains(&t) {
                    topics.push(t);
                }
            }
            let raw: Vec<f64> = topics
                .iter()
                .map(|_| -(1.0 - rng.gen::<f64>()).ln())
                .collect();
            let total: f64 = raw.iter().sum();
            let mut theta = vec![(1.0 - INTEREST_MASS) / nt as f64; nt];
            let mut cumulative = 0.0;
            let mut interests = Vec::with_capacity(k);
            for (&t, &w) in topics.iter().zip(&raw) {
                theta[t] += INTEREST_MASS * w / total;
                cumulative += w / total;
                interests.push((t as u32, cumulative));
            }
            user_topic_aff.extend(
                theta
                    .iter()
                    .map(|&p| (W_TOPIC * (p * nt as f64).ln()) as f32),
            );
            let dominant = topics[raw
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(j, _)| j)
                .unwrap_or(0)];
            for _ in 0..LATENT_DIM {
                user_latent.push(normal(&mut rng, 0.0, latent_sd) as f32);
            }
            let age = if rng.gen::<f64>() < 0.75 {
                bucket(&mut rng, topic_age[dominant], 1.2, c.n_age)
            } else {
                age_profile.sample(&mut rng)
            };
            user_age.push(age as u16);
            let gender = if c.n_gender >= 3 && rng.gen::<f64>() < 0.05 {
                rng.gen_range(2..c.n_gender)
            } else if c.n_gender >= 2 && rng.gen::<f64>() >= topic_female[dominant] {
                1
            } else {
                0
            };
            user_gender.push(gender as u16);
            user_city.push(city_pick.sample(&mut rng) as u32);
            let tags = if rng.gen::<f64>() < c.empty_tag_share {
                Vec::new()
            } else {
                let n = rng.gen_range(1..=8);
                draw_tags(&mut rng, n, c.n_user_tags, nt, |r| {
                    let x: f64 = r.gen();
                    interests
                        .iter()
                        .find(|(_, cw)| x < *cw)
                        .map_or(interests[interests.len() - 1].0, |(t, _)| *t)
                        as usize
                })
            };
            user_tags.push(tags);
            let pref_hour = hour_pick.sample(&mut rng);
            let home = net_pick.sample(&mut rng);
            user_hour.push(pref_hour as u16);
            user_network.push(home as u16);
            activity_w.push(activity.sample(&mut rng));
            // The exact context distribution the impression sampler below follows.
            let mut dp = [0.0f64; 4];
            for d in 0..4 {
                dp[d] = GLOBAL_HOUR_SHARE * daypart_global[d];
            }
            for off in -2i64..=2 {
                let h = (pref_hour as i64 + off).rem_euclid(c.n_hour as i64) as usize;
                dp[hour_daypart[h] as usize] += (1.0 - GLOBAL_HOUR_SHARE) / 5.0;
            }
            for d in dp {
                for (n, &pg) in network_global_p.iter().enumerate() {
                    let pn = (1.0 - HOME_NETWORK_SHARE) * pg
                        + if n == home { HOME_NETWORK_SHARE } else { 0.0 };
                    user_context.push(d * pn);
                }
            }
            user_interests.push(interests);
        }

        // Authors.
        let mut rng = stream(c.seed, STREAM_AUTHORS);
        let farm_rate = FARM_BAIT_RATE.max(c.clickbait_share);
        let honest_rate = HONEST_BAIT_RATE.min(c.clickbait_share);
        let farm_share = if farm_rate > honest_rate {
            ((c.clickbait_share - honest_rate) / (farm_rate - honest_rate)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut author_quality = Vec::with_capacity(c.n_author);
        let mut author_attractiveness = Vec::with_capacity(c.n_author);
        for _ in 0..c.n_author {
            author_quality.push(normal(&mut rng, 0.0, 0.3));
            author_attractiveness.push(normal(&mut rng, 0.0, 0.2));
        }
        let topic_authors: Vec<Vec<u32>> = (0..nt)
            .map(|t| {
                let own: Vec<u32> = (t..c.n_author).step_by(nt).map(|a| a as u32).collect();
                if own.is_empty() {
                    vec![(t % c.n_author) as u32]
                } else {
                    own
                }
            })
            .collect();
        let author_weight = |rank: usize| (rank as f64 + 1.0).powf(-0.8);
        let topic_author_pick: Vec<WeightedAliasIndex<f64>> = topic_authors
            .iter()
            .map(|a| alias((0..a.len()).map(author_weight).collect()))
            .collect();
        // Farms are drawn per topic, in random order, until they hold the farm share of the
        // topic's expected items: independent draws would let a few prolific authors swing the
        // corpus' click-bait share by several points.
        // The greedy pass never overshoots; both rates of the topic are then scaled so that its
        // expected click-bait share is exactly `clickbait_share`.
        let mut author_bait_rate = vec![honest_rate; c.n_author];
        for authors in &topic_authors {
            let total: f64 = (0..authors.len()).map(author_weight).sum();
            let mut order: Vec<usize> = (0..authors.len()).collect();
            for j in (1..order.len()).rev() {
                order.swap(j, rng.gen_range(0..=j));
            }
            let mut farm_weight = 0.0;
            let mut is_farm = vec![false; authors.len()];
            for r in order {
                let w = author_weight(r);
                if farm_weight + w <= farm_share * total {
                    farm_weight += w;
                    is_farm[r] = true;
                }
            }
            let s = farm_weight / total;
            let expected = s * farm_rate + (1.0 - s) * honest_rate;
            let scale = if expected > 0.0 {
                c.clickbait_share / expected
            } else {
                0.0
            };
            for (r, &a) in authors.iter().enumerate() {
                let rate = if is_farm[r] { farm_rate } else { honest_rate };
                author_bait_rate[a as usize] = (rate * scale).min(1.0);
            }
        }

        // Items.
        let mut rng = stream(c.seed, STREAM_ITEMS);
        let n = c.n_items;
        let mut item_topic = Vec::with_capacity(n);
        let mut item_category = Vec::with_capacity(n);
        let mut item_sub_category = Vec::with_capacity(n);
        let mut item_author = Vec::with_capacity(n);
        let mut item_tags = Vec::with_capacity(n);
        let mut item_length = Vec::with_capacity(n);
        let mut item_attractiveness = Vec::with_capacity(n);
        let mut item_quality = Vec::with_capacity(n);
        let mut item_clickbait = Vec::with_capacity(n);
        let mut item_latent = Vec::with_capacity(n * LATENT_DIM);
        for _ in 0..n {
            let t = topic_pick.sample(&mut rng);
            item_topic.push(t as u32);
            item_category.push((t % c.n_category) as u32);
            let k = rng.gen_range(0..subs_per_topic);
            item_sub_category.push(((t + nt * k) % c.n_sub_category) as u32);
            let a = topic_authors[t][topic_author_pick[t].sample(&mut rng)] as usize;
            item_author.push(a as u32);
            let bait = rng.gen::<f64>() < author_bait_rate[a];
            item_clickbait.push(bait);
            let (attr, quality, length) = if bait {
                (
                    normal(&mut rng, 1.4, 0.3),
                    normal(&mut rng, -1.6, 0.4),
                    bucket(&mut rng, 0.2 * len_span, 1.0, c.n_length_bucket),
                )
            } else {
                (
                    normal(&mut rng, 0.0, 0.4) + author_attractiveness[a],
                    normal(&mut rng, 0.2, 0.5) + author_quality[a],
                    bucket(&mut rng, topic_length[t], 1.8, c.n_length_bucket),
                )
            };
            item_attractiveness.push(attr);
            item_quality.push(quality);
            item_length.push(length as u16);
            let n_tags = rng.gen_range(1..=5);
            item_tags.push(draw_tags(&mut rng, n_tags, c.n_item_tags, nt, |_| t));
            for _ in 0..LATENT_DIM {
                item_latent.push(normal(&mut rng, 0.0, latent_sd) as f32);
            }
        }
        // Popularity: a random Zipf rank per item, tilted towards catchy titles.
        let mut rank: Vec<usize> = (0..n).collect();
        for j in (1..n).rev() {
            rank.swap(j, rng.gen_range(0..=j));
        }
        let pop: Vec<f64> = (0..n)
            .map(|i| {
                (rank[i] as f64 + 1.0).powf(-c.popularity_exponent)
                    * (POPULARITY_TILT * item_attractiveness[i]).exp()
            })
            .collect();
        let mut topic_items: Vec<Vec<u32>> = vec![Vec::new(); nt];
        for (i, &t) in item_topic.iter().enumerate() {
            topic_items[t as usize].push(i as u32);
        }
        let topic_popularity = topic_items
            .iter()
            .map(|items| {
                (!items.is_empty()).then(|| alias(items.iter().map(|&i| pop[i as usize]).collect()))
            })
            .collect();

        Ok(Simulator {
            names: Names::new(c),
            user_topic_aff,
            user_interests,
            user_latent,
            user_age,
            user_gender,
            user_city,
            user_tags,
            user_hour,
            user_network,
            user_context,
            user_activity: alias(activity_w),
            item_topic,
            item_category,
            item_sub_category,
            item_author,
            item_tags,
            item_length,
            item_attractiveness,
            item_quality,
            item_clickbait,
            item_latent,
            item_popularity: alias(pop),
            topic_items,
            topic_popularity,
            hour_daypart,
            hour_global: hour_pick,
            network_global: net_pick,
            context_offset,
            cfg,
        })
    }

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

    /// Affinity `aff(u, i) = 0.6 ln(n_topics theta_u[topic_i]) + 0.5 <p_u, q_i>`.
    fn affinity(&self, u: usize, i: usize) -> f64 {
        let nt = self.cfg.n_topics;
        let topic = self.user_topic_aff[u * nt + self.item_topic[i] as usize] as f64;
        let pu = &self.user_latent[u * LATENT_DIM..(u + 1) * LATENT_DIM];
        let qi = &self.item_latent[i * LATENT_DIM..(i + 1) * LATENT_DIM];
        let dot: f32 = pu.iter().zip(qi).map(|(a, b)| a * b).sum();
        topic + W_LATENT * dot as f64
    }

    /// Click logit without the context offset.
    fn click_logit(&self, aff: f64, i: usize) -> f64 {
        CLICK_BIAS + aff + self.item_attractiveness[i]
    }

    /// Mean of the log reading time after a click.
    fn read_mu(&self, aff: f64, i: usize) -> f64 {
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

    fn context_class(&self, hour: usize, network: usize) -> usize {
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

    /// The impression log: `n_impressions` rows in day order with feature columns `user_id`,
    /// `age`, `gender`, `city`, `user_tags`, `hour`, `network`, `item_id`, `category`,
    /// `sub_category`, `author`, `item_tags`, `length_bucket` (in that order), the `click` and
    /// `duration` labels and `time` = day. Generated in parallel from per-block seeded streams,
    /// so the output depends on the configuration only.
    pub fn impressions(&self) -> RawLog {
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
        let rows: Vec<Impression> = blocks
            .par_iter()
            .map(|&(day, len, id)| self.block(day, len, id))
            .collect::<Vec<_>>()
            .concat();
        let users: Vec<u32> = rows.iter().map(|r| r.user).collect();
        let items: Vec<u32> = rows.iter().map(|r| r.item).collect();
        let hours: Vec<u16> = rows.iter().map(|r| r.hour).collect();
        let networks: Vec<u16> = rows.iter().map(|r| r.network).collect();
        let ((mut columns, context), item_cols) = rayon::join(
            || {
                rayon::join(
                    || self.user_columns(&users),
                    || self.context_columns(&hours, &networks),
                )
            },
            || self.item_columns(&items),
        );
        columns.extend(context);
        columns.extend(item_cols);
        RawLog {
            source: "simulator".to_string(),
            columns,
            click: Some(rows.iter().map(|r| f32::from(u8::from(r.click))).collect()),
            duration: Some(rows.iter().map(|r| r.duration).collect()),
            time: Some(rows.iter().map(|r| r.day as i64).collect()),
            n_rows: rows.len(),
        }
    }

    /// Every item of the corpus once, in index order, with the item-side columns (`item_id`,
    /// `category`, `sub_category`, `author`, `item_tags`, `length_bucket`) and no labels.
    pub fn item_table(&self) -> RawLog {
        let items: Vec<u32> = (0..self.cfg.n_items as u32).collect();
        RawLog {
            source: "simulator items".to_string(),
            columns: self.item_columns(&items),
            click: None,
            duration: None,
            time: None,
            n_rows: items.len(),
        }
    }

    /// The given users, one row each, with the user-side columns (`user_id`, `age`, `gender`,
    /// `city`, `user_tags`) and the user's typical context (`hour`: preferred hour, `network`:
    /// home network); no labels. This is the query side of retrieval.
    ///
    /// # Panics
    /// When an index is `>= n_users()`.
    pub fn user_table(&self, users: &[usize]) -> RawLog {
        let ids: Vec<u32> = users.iter().map(|&u| u as u32).collect();
        let hours: Vec<u16> = users.iter().map(|&u| self.user_hour[u]).collect();
        let networks: Vec<u16> = users.iter().map(|&u| self.user_network[u]).collect();
        let mut columns = self.user_columns(&ids);
        columns.extend(self.context_columns(&hours, &networks));
        RawLog {
            source: "simulator users".to_string(),
            columns,
            click: None,
            duration: None,
            time: None,
            n_rows: users.len(),
        }
    }

    fn user_columns(&self, users: &[u32]) -> Vec<(String, RawColumn)> {
        let n = &self.names;
        vec![
            ("user_id".into(), cat(users, |u| self.user_id(u as usize))),
            (
                "age".into(),
                cat(users, |u| n.age[self.user_age[u as usize] as usize].clone()),
            ),
            (
                "gender".into(),
                cat(users, |u| {
                    n.gender[self.user_gender[u as usize] as usize].clone()
                }),
            ),
            (
                "city".into(),
                cat(users, |u| {
                    n.city[self.user_city[u as usize] as usize].clone()
                }),
            ),
            (
                "user_tags".into(),
                multi_hot(users, &self.user_tags, &n.user_tag),
            ),
        ]
    }

    fn context_columns(&self, hours: &[u16], networks: &[u16]) -> Vec<(String, RawColumn)> {
        let n = &self.names;
        vec![
            ("hour".into(), cat(hours, |h| n.hour[h as usize].clone())),
            (
                "network".into(),
                cat(networks, |k| n.network[k as usize].clone()),
            ),
        ]
    }

    fn item_columns(&self, items: &[u32]) -> Vec<(String, RawColumn)> {
        let n = &self.names;
        let at = |i: u32| i as usize;
        vec![
            ("item_id".into(), cat(items, |i| self.item_id(at(i)))),
            (
                "category".into(),
                cat(items, |i| {
                    n.category[self.item_category[at(i)] as usize].clone()
                }),
            ),
            (
                "sub_category".into(),
                cat(items, |i| {
                    n.sub_category[self.item_sub_category[at(i)] as usize].clone()
                }),
            ),
            (
                "author".into(),
                cat(items, |i| {
                    n.author[self.item_author[at(i)] as usize].clone()
                }),
            ),
            (
                "item_tags".into(),
                multi_hot(items, &self.item_tags, &n.item_tag),
            ),
            (
                "length_bucket".into(),
                cat(items, |i| {
                    n.length[self.item_length[at(i)] as usize].clone()
                }),
            ),
        ]
    }

    /// The schema file (TOML) describing [`Simulator::impressions`]: labels, ids, the time split
    /// (the last sixth of the days is the test set), the embedding dimension and one
    /// `[[columns]]` entry per feature column with its side and kind.
    pub fn schema_toml(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "long_read_threshold = {:?}\n\n",
            self.cfg.long_read_threshold
        ));
        s.push_str("[labels]\nclick = \"click\"\nduration = \"duration\"\n\n");
        s.push_str("[ids]\nuser = \"user_id\"\nitem = \"item_id\"\n\n");
        s.push_str(&format!(
            "[split]\ntime_column = \"day\"\ntest_from = {}\n\n",
            self.cfg.test_from()
        ));
        s.push_str(&format!(
            "[defaults]\nembedding_dim = {}\n",
            self.cfg.embedding_dim
        ));
        for (name, side, multi) in COLUMNS {
            s.push_str(&format!(
                "\n[[columns]]\nname = \"{name}\"\nside = \"{side}\"\n"
            ));
            if multi {
                s.push_str("kind = \"multi_hot\"\nseparator = \"|\"\n");
            } else {
                s.push_str("kind = \"categorical\"\n");
            }
        }
        s
    }

    /// Writes the impression log, its `schema.toml`, the item table (the whole corpus) and the
    /// user table (every user with a typical context) into `dir`, creating it if needed: as
    /// `log.csv`, `items.csv`, `users.csv` ([`crate::write_csv`]), or with `parquet = true` as
    /// `log.parquet`, `items.parquet`, `users.parquet` ([`crate::write_parquet`]). Every file is
    /// written to a temporary file and renamed into place; errors name the file.
    pub fn write(&self, dir: &Path, parquet: bool) -> std::io::Result<SimFiles> {
        std::fs::create_dir_all(dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        let text = self.schema_toml();
        let schema = Schema::from_toml_str(&text, "simulator schema").map_err(to_io)?;
        let ext = if parquet { "parquet" } else { "csv" };
        let files = SimFiles {
            log: dir.join(format!("log.{ext}")),
            schema: dir.join("schema.toml"),
            items: dir.join(format!("items.{ext}")),
            users: dir.join(format!("users.{ext}")),
        };
        let put = |log: &RawLog, path: &Path| {
            if parquet {
                crate::write_parquet(log, &schema, path)
            } else {
                crate::write_csv(log, &schema, path)
            }
            .map_err(to_io)
        };
        crate::atomic::write_atomic(&files.schema, |w| w.write_all(text.as_bytes()))
            .map_err(to_io)?;
        put(&self.item_table(), &files.items)?;
        let all: Vec<usize> = (0..self.cfg.n_users).collect();
        put(&self.user_table(&all), &files.users)?;
        put(&self.impressions(), &files.log)?;
        Ok(files)
    }
}

/// An I/O error carrying the data error's message (which names the file).
fn to_io(e: DataError) -> std::io::Error {
    let kind = match &e {
        DataError::Io { source, .. } => source.kind(),
        _ => std::io::ErrorKind::InvalidData,
    };
    std::io::Error::new(kind, e.to_string())
}

/// Summary rates of a simulated log, as documented at the top of this module; see
/// [`Simulator::stats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    /// Number of impressions.
    pub n_rows: usize,
    /// Clicks / impressions.
    pub ctr: f64,
    /// Long reads (duration > threshold) / clicks.
    pub long_read_share_of_clicks: f64,
    /// Mean reading time of a click, seconds.
    pub mean_read_seconds: f64,
    /// Click-bait items / items of the corpus.
    pub clickbait_item_share: f64,
    /// Impressions of click-bait items / impressions.
    pub clickbait_impression_share: f64,
    /// CTR of click-bait impressions.
    pub ctr_clickbait: f64,
    /// CTR of the other impressions.
    pub ctr_other: f64,
    /// Mean reading time of a click on click-bait, seconds.
    pub mean_read_clickbait: f64,
    /// Mean reading time of a click on other items, seconds.
    pub mean_read_other: f64,
    /// Long-read share of clicks on click-bait.
    pub long_read_share_clickbait: f64,
    /// Long-read share of clicks on other items.
    pub long_read_share_other: f64,
    /// Share of impressions that go to the 10 % most shown items.
    pub top_decile_impression_share: f64,
}

impl Simulator {
    /// Rates of `log`, which must carry labels and an `item_id` column of this simulator's ids.
    ///
    /// # Errors
    /// When the labels or `item_id` are missing or an item id is not one of this simulator's.
    pub fn stats(&self, log: &RawLog) -> Result<SimStats, String> {
        let (Some(click), Some(duration)) = (&log.click, &log.duration) else {
            return Err(format!(
                "{}: the log has no click or duration labels",
                log.source
            ));
        };
        let Some(RawColumn::Categorical(ids)) = log.column("item_id") else {
            return Err(format!("{}: no categorical item_id column", log.source));
        };
        let t = self.cfg.long_read_threshold as f32;
        // [impressions, clicks, long reads, read seconds] for click-bait (0) and others (1).
        let mut acc = [[0f64; 4]; 2];
        let mut shown = vec![0usize; self.cfg.n_items];
        for (r, id) in ids.iter().enumerate() {
            let i = self
                .item_index(id)
                .ok_or_else(|| format!("{}: row {r}: unknown item id {id:?}", log.source))?;
            shown[i] += 1;
            let a = &mut acc[usize::from(!self.item_clickbait[i])];
            a[0] += 1.0;
            if click[r] > 0.5 {
                a[1] += 1.0;
                a[2] += f64::from(u8::from(duration[r] > t));
                a[3] += duration[r] as f64;
            }
        }
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let all: Vec<f64> = (0..4).map(|k| acc[0][k] + acc[1][k]).collect();
        shown.sort_unstable_by(|a, b| b.cmp(a));
        let top = shown.len().div_ceil(10);
        let top_sum: usize = shown[..top].iter().sum();
        Ok(SimStats {
            n_rows: ids.len(),
            ctr: ratio(all[1], all[0]),
            long_read_share_of_clicks: ratio(all[2], all[1]),
            mean_read_seconds: ratio(all[3], all[1]),
            clickbait_item_share: ratio(
                self.item_clickbait.iter().filter(|&&b| b).count() as f64,
                self.cfg.n_items as f64,
            ),
            clickbait_impression_share: ratio(acc[0][0], all[0]),
            ctr_clickbait: ratio(acc[0][1], acc[0][0]),
            ctr_other: ratio(acc[1][1], acc[1][0]),
            mean_read_clickbait: ratio(acc[0][3], acc[0][1]),
            mean_read_other: ratio(acc[1][3], acc[1][1]),
            long_read_share_clickbait: ratio(acc[0][2], acc[0][1]),
            long_read_share_other: ratio(acc[1][2], acc[1][1]),
            top_decile_impression_share: ratio(top_sum as f64, all[0]),
        })
    }
}

/// Feature columns of the log: name, side, multi-hot.
const COLUMNS: [(&str, &str, bool); 13] = [
    ("user_id", "user", false),
    ("age", "user", false),
    ("gender", "user", false),
    ("city", "user", false),
    ("user_tags", "user", true),
    ("hour", "context", false),
    ("network", "context", false),
    ("item_id", "item", false),
    ("category", "item", false),
    ("sub_category", "item", false),
    ("author", "item", false),
    ("item_tags", "item", true),
    ("length_bucket", "item", false),
];

/// Rows per parallel part of a simulated string column.
const PART_ROWS: usize = 4096;

/// A categorical column built in parallel from per-row keys.
fn cat<K: Copy + Send + Sync>(keys: &[K], name: impl Fn(K) -> String + Sync + Send) -> RawColumn {
    let parts: Vec<StrColumn> = keys
        .par_chunks(PART_ROWS)
        .map(|ks| ks.iter().map(|&k| name(k)).collect())
        .collect();
    RawColumn::Categorical(join_parts(parts))
}

/// The values of `parts`, in order, in one column.
fn join_parts(parts: Vec<StrColumn>) -> StrColumn {
    let (n, bytes) = parts
        .iter()
        .fold((0, 0), |(n, b), p| (n + p.len(), b + p.byte_len()));
    let mut out = StrColumn::with_capacity(n, bytes);
    for p in &parts {
        out.append(p);
    }
    out
}

/// A multi-hot column: row `r` holds the bag `bags[keys[r]]`, spelled by `names`.
fn multi_hot(keys: &[u32], bags: &[Vec<u32>], names: &[String]) -> RawColumn {
    let mut offsets = Vec::with_capacity(keys.len() + 1);
    offsets.push(0);
    let mut total = 0;
    for &k in keys {
        total += bags[k as usize].len();
        offsets.push(total);
    }
    let parts: Vec<StrColumn> = keys
        .par_chunks(PART_ROWS)
        .map(|ks| {
            ks.iter()
                .flat_map(|&k| bags[k as usize].iter().map(|&g| &names[g as usize]))
                .collect()
        })
        .collect();
    let tokens = join_parts(parts);
    RawColumn::MultiHot { tokens, offsets }
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
