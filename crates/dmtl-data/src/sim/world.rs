//! The drawn world: topics, the context curves and the users, and [`Simulator::try_new`], which
//! draws them with the authors and items of the corpus, each stage from its own stream.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, WeightedAliasIndex};

use super::corpus::{draw_authors, draw_items, popularity};
use super::draw::{alias, bucket, draw_tags, normal, stream};
use super::draw::{STREAM_ITEMS, STREAM_TOPICS, STREAM_USERS};
use super::truth::W_TOPIC;
use super::{latent_sd, GLOBAL_HOUR_SHARE, HOME_NETWORK_SHARE, LATENT_DIM};
use super::{Names, SimConfig, Simulator};

/// Share of a user's interest vector on their interest topics (the rest is spread uniformly).
const INTEREST_MASS: f64 = 0.85;
/// Click-logit offsets of the four day parts (night, morning, afternoon, evening).
const DAYPART_OFFSET: [f64; 4] = [-0.25, 0.05, -0.05, 0.15];

/// The topics: popularity and what their users and items look like.
struct Topics {
    /// Picks a topic by popularity.
    pick: WeightedAliasIndex<f64>,
    /// Age centre of the topic's users, in age buckets.
    age: Vec<f64>,
    /// Probability that a user of the topic is female.
    female: Vec<f64>,
    /// Typical length bucket of the topic's items.
    length: Vec<f64>,
}

/// The context classes (day part x network): global curves and click-logit offsets.
struct Context {
    hour_daypart: Vec<u8>,
    /// Probability of each day part under the global hour curve.
    daypart_global: [f64; 4],
    network_global_p: Vec<f64>,
    hour_pick: WeightedAliasIndex<f64>,
    net_pick: WeightedAliasIndex<f64>,
    /// Click-logit offset of each context class.
    context_offset: Vec<f64>,
}

/// The users: interests, side features, typical context and activity.
struct Users {
    topic_aff: Vec<f32>,
    interests: Vec<Vec<(u32, f64)>>,
    latent: Vec<f32>,
    age: Vec<u16>,
    gender: Vec<u16>,
    city: Vec<u32>,
    tags: Vec<Vec<u32>>,
    hour: Vec<u16>,
    network: Vec<u16>,
    context: Vec<f64>,
    activity: WeightedAliasIndex<f64>,
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
        let topics = draw_topics(c);
        let ctx = context(c);
        let users = draw_users(c, &topics, &ctx);
        let authors = draw_authors(c);
        // Items and their popularity ranks share one stream.
        let mut rng = stream(c.seed, STREAM_ITEMS);
        let items = draw_items(c, &topics.pick, &topics.length, &authors, &mut rng);
        let pop = popularity(c, &items.topic, &items.attractiveness, &mut rng);
        Ok(Simulator {
            names: Names::new(c),
            user_topic_aff: users.topic_aff,
            user_interests: users.interests,
            user_latent: users.latent,
            user_age: users.age,
            user_gender: users.gender,
            user_city: users.city,
            user_tags: users.tags,
            user_hour: users.hour,
            user_network: users.network,
            user_context: users.context,
            user_activity: users.activity,
            item_topic: items.topic,
            item_category: items.category,
            item_sub_category: items.sub_category,
            item_author: items.author,
            item_tags: items.tags,
            item_length: items.length,
            item_attractiveness: items.attractiveness,
            item_quality: items.quality,
            item_clickbait: items.clickbait,
            item_latent: items.latent,
            item_popularity: pop.items,
            topic_items: pop.topic_items,
            topic_popularity: pop.topic_popularity,
            hour_daypart: ctx.hour_daypart,
            hour_global: ctx.hour_pick,
            network_global: ctx.net_pick,
            context_offset: ctx.context_offset,
            cfg,
        })
    }
}

/// Draws the topics from their stream.
fn draw_topics(c: &SimConfig) -> Topics {
    let nt = c.n_topics;
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
    Topics {
        pick: alias(topic_weight),
        age: topic_age,
        female: topic_female,
        length: topic_length,
    }
}

/// The global hour and network curves and the context offsets (no random draws).
fn context(c: &SimConfig) -> Context {
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
    Context {
        hour_pick: alias(hour_weight),
        net_pick: alias(network_global_p.clone()),
        hour_daypart,
        daypart_global,
        network_global_p,
        context_offset,
    }
}

impl Context {
    /// Appends the exact context distribution the impression sampler follows for a user with
    /// preferred hour `pref_hour` and home network `home` (day part-major, then network).
    fn push_user_distribution(
        &self,
        n_hour: usize,
        pref_hour: usize,
        home: usize,
        out: &mut Vec<f64>,
    ) {
        let mut dp = self.daypart_global.map(|p| GLOBAL_HOUR_SHARE * p);
        for off in -2i64..=2 {
            let h = (pref_hour as i64 + off).rem_euclid(n_hour as i64) as usize;
            dp[self.hour_daypart[h] as usize] += (1.0 - GLOBAL_HOUR_SHARE) / 5.0;
        }
        for d in dp {
            for (n, &pg) in self.network_global_p.iter().enumerate() {
                let pn = (1.0 - HOME_NETWORK_SHARE) * pg
                    + if n == home { HOME_NETWORK_SHARE } else { 0.0 };
                out.push(d * pn);
            }
        }
    }
}

/// Draws 1 to 4 distinct interest topics of a user (by topic popularity) with their raw
/// (unnormalised exponential) weights.
fn draw_interest_topics(
    rng: &mut ChaCha8Rng,
    topic_pick: &WeightedAliasIndex<f64>,
    nt: usize,
) -> (Vec<usize>, Vec<f64>) {
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
        let t = topic_pick.sample(rng);
        if !topics.contains(&t) {
            topics.push(t);
        }
    }
    let raw: Vec<f64> = topics
        .iter()
        .map(|_| -(1.0 - rng.gen::<f64>()).ln())
        .collect();
    (topics, raw)
}

/// Draws the users from their stream.
fn draw_users(c: &SimConfig, topics: &Topics, ctx: &Context) -> Users {
    let nt = c.n_topics;
    let n_ctx = 4 * c.n_network;
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
    let latent_sd = latent_sd();
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
    for _ in 0..c.n_users {
        let (topics_u, raw) = draw_interest_topics(&mut rng, &topics.pick, nt);
        let total: f64 = raw.iter().sum();
        let mut theta = vec![(1.0 - INTEREST_MASS) / nt as f64; nt];
        let mut cumulative = 0.0;
        let mut interests = Vec::with_capacity(topics_u.len());
        for (&t, &w) in topics_u.iter().zip(&raw) {
            theta[t] += INTEREST_MASS * w / total;
            cumulative += w / total;
            interests.push((t as u32, cumulative));
        }
        user_topic_aff.extend(
            theta
                .iter()
                .map(|&p| (W_TOPIC * (p * nt as f64).ln()) as f32),
        );
        let dominant = topics_u[raw
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(j, _)| j)
            .unwrap_or(0)];
        for _ in 0..LATENT_DIM {
            user_latent.push(normal(&mut rng, 0.0, latent_sd) as f32);
        }
        let age = if rng.gen::<f64>() < 0.75 {
            bucket(&mut rng, topics.age[dominant], 1.2, c.n_age)
        } else {
            age_profile.sample(&mut rng)
        };
        user_age.push(age as u16);
        let gender = if c.n_gender >= 3 && rng.gen::<f64>() < 0.05 {
            rng.gen_range(2..c.n_gender)
        } else if c.n_gender >= 2 && rng.gen::<f64>() >= topics.female[dominant] {
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
                    .map_or(interests[interests.len() - 1].0, |(t, _)| *t) as usize
            })
        };
        user_tags.push(tags);
        let pref_hour = ctx.hour_pick.sample(&mut rng);
        let home = ctx.net_pick.sample(&mut rng);
        user_hour.push(pref_hour as u16);
        user_network.push(home as u16);
        activity_w.push(activity.sample(&mut rng));
        ctx.push_user_distribution(c.n_hour, pref_hour, home, &mut user_context);
        user_interests.push(interests);
    }
    Users {
        topic_aff: user_topic_aff,
        interests: user_interests,
        latent: user_latent,
        age: user_age,
        gender: user_gender,
        city: user_city,
        tags: user_tags,
        hour: user_hour,
        network: user_network,
        context: user_context,
        activity: alias(activity_w),
    }
}
