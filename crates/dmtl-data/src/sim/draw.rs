//! Seeded random streams and the small draws the population and corpus are made of.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{StandardNormal, WeightedAliasIndex};

/// A ChaCha8 generator for one named purpose: the seed picks the key, the purpose the stream,
/// so draws for one purpose never shift when another changes.
pub(super) fn stream(seed: u64, purpose: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(purpose);
    rng
}

pub(super) const STREAM_TOPICS: u64 = 1;
pub(super) const STREAM_USERS: u64 = 2;
pub(super) const STREAM_AUTHORS: u64 = 3;
pub(super) const STREAM_ITEMS: u64 = 4;
pub(super) const STREAM_BLOCKS: u64 = 1 << 32;

pub(super) fn alias(weights: Vec<f64>) -> WeightedAliasIndex<f64> {
    WeightedAliasIndex::new(weights).expect("positive finite weights")
}

pub(super) fn normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64) -> f64 {
    mean + sd * rng.sample::<f64, _>(StandardNormal)
}

/// A rounded normal draw clamped to `0..n`.
pub(super) fn bucket(rng: &mut ChaCha8Rng, mean: f64, sd: f64, n: usize) -> usize {
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
pub(super) fn draw_tags(
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
