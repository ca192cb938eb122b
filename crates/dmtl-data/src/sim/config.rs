//! The simulator's configuration: sizes, vocabulary sizes and knobs, with the demo, test and
//! reference scales and validation.

use serde::{Deserialize, Serialize};

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
