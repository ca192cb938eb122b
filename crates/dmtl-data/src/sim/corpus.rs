//! The corpus: authors (some of them click-bait farms), items with their topic, features,
//! attractiveness and quality, and the popularity the logging policy shows them by.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, WeightedAliasIndex};

use super::draw::{alias, bucket, draw_tags, normal, stream, STREAM_AUTHORS};
use super::{latent_sd, SimConfig, LATENT_DIM};

/// Weight of attractiveness in the log popularity of an item.
const POPULARITY_TILT: f64 = 0.15;
/// Share of a click-bait farm's items that are click-bait.
const FARM_BAIT_RATE: f64 = 0.75;
/// Share of an honest author's items that are click-bait.
const HONEST_BAIT_RATE: f64 = 0.03;

/// The authors: each writes in one topic, with its own quality and attractiveness offsets and
/// click-bait rate.
pub(super) struct Authors {
    quality: Vec<f64>,
    attractiveness: Vec<f64>,
    /// The authors of each topic, most prolific first.
    by_topic: Vec<Vec<u32>>,
    /// Picks a rank among the topic's authors (Zipf-like).
    pick: Vec<WeightedAliasIndex<f64>>,
    /// Probability that an item of the author is click-bait.
    bait_rate: Vec<f64>,
}

/// The items of the corpus, by index.
pub(super) struct Items {
    pub(super) topic: Vec<u32>,
    pub(super) category: Vec<u32>,
    pub(super) sub_category: Vec<u32>,
    pub(super) author: Vec<u32>,
    pub(super) tags: Vec<Vec<u32>>,
    pub(super) length: Vec<u16>,
    pub(super) attractiveness: Vec<f64>,
    pub(super) quality: Vec<f64>,
    pub(super) clickbait: Vec<bool>,
    pub(super) latent: Vec<f32>,
}

/// What popularity-driven exposure samples from.
pub(super) struct Popularity {
    /// Picks an item of the corpus by popularity.
    pub(super) items: WeightedAliasIndex<f64>,
    /// The items of each topic.
    pub(super) topic_items: Vec<Vec<u32>>,
    /// Picks among `topic_items[t]` by popularity; `None` for a topic without items.
    pub(super) topic_popularity: Vec<Option<WeightedAliasIndex<f64>>>,
}

/// Draws the authors from their stream.
pub(super) fn draw_authors(c: &SimConfig) -> Authors {
    let nt = c.n_topics;
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
    Authors {
        quality: author_quality,
        attractiveness: author_attractiveness,
        by_topic: topic_authors,
        pick: topic_author_pick,
        bait_rate: author_bait_rate,
    }
}

/// Draws the items from `rng` (the items' stream): topics by `topic_pick`, lengths around
/// `topic_length`.
pub(super) fn draw_items(
    c: &SimConfig,
    topic_pick: &WeightedAliasIndex<f64>,
    topic_length: &[f64],
    authors: &Authors,
    rng: &mut ChaCha8Rng,
) -> Items {
    let nt = c.n_topics;
    let len_span = (c.n_length_bucket - 1) as f64;
    let subs_per_topic = (c.n_sub_category / nt).max(1);
    let latent_sd = latent_sd();
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
        let t = topic_pick.sample(rng);
        item_topic.push(t as u32);
        item_category.push((t % c.n_category) as u32);
        let k = rng.gen_range(0..subs_per_topic);
        item_sub_category.push(((t + nt * k) % c.n_sub_category) as u32);
        let a = authors.by_topic[t][authors.pick[t].sample(rng)] as usize;
        item_author.push(a as u32);
        let bait = rng.gen::<f64>() < authors.bait_rate[a];
        item_clickbait.push(bait);
        let (attr, quality, length) = if bait {
            (
                normal(rng, 1.4, 0.3),
                normal(rng, -1.6, 0.4),
                bucket(rng, 0.2 * len_span, 1.0, c.n_length_bucket),
            )
        } else {
            (
                normal(rng, 0.0, 0.4) + authors.attractiveness[a],
                normal(rng, 0.2, 0.5) + authors.quality[a],
                bucket(rng, topic_length[t], 1.8, c.n_length_bucket),
            )
        };
        item_attractiveness.push(attr);
        item_quality.push(quality);
        item_length.push(length as u16);
        let n_tags = rng.gen_range(1..=5);
        item_tags.push(draw_tags(rng, n_tags, c.n_item_tags, nt, |_| t));
        for _ in 0..LATENT_DIM {
            item_latent.push(normal(rng, 0.0, latent_sd) as f32);
        }
    }
    Items {
        topic: item_topic,
        category: item_category,
        sub_category: item_sub_category,
        author: item_author,
        tags: item_tags,
        length: item_length,
        attractiveness: item_attractiveness,
        quality: item_quality,
        clickbait: item_clickbait,
        latent: item_latent,
    }
}

/// Popularity: a random Zipf rank per item (drawn from `rng`, the items' stream, after the
/// items), tilted towards catchy titles.
pub(super) fn popularity(
    c: &SimConfig,
    item_topic: &[u32],
    item_attractiveness: &[f64],
    rng: &mut ChaCha8Rng,
) -> Popularity {
    let nt = c.n_topics;
    let n = c.n_items;
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
    Popularity {
        items: alias(pop),
        topic_items,
        topic_popularity,
    }
}
