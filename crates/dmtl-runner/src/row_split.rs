//! The part of a streamed log each row belongs to (training, validation or test), decided
//! from the row alone so that every pass over the log, and every reader of a share of it,
//! agrees without holding the log:
//!
//! - test: the schema's `[split]` by time exactly as in memory (`time >= test_from`); with
//!   `test_fraction`, a row is a test row when its share ([`row_share`]) under `data.split_seed`
//!   is below the fraction (in memory it is an exact count drawn by a shuffle of the whole
//!   log); with `data.test_log`, no row of the log is a test row;
//! - validation: a row of the training period whose share under `eval.seed` is below
//!   `eval.valid_fraction` (in memory: an exact count drawn by a shuffle).
//!
//! A row's share is a hash of its user id, item id and time ([`row_key`]) with a salt: the same
//! impression (user, item, time) repeated falls in the same part.

use anyhow::{anyhow, bail, Result};
use dmtl_data::vocab::token_hash;
use dmtl_data::{RawLog, Schema};

use crate::columns::categorical;
use crate::config::{DataConfig, RunConfig};

/// The part of the log a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowPart {
    /// A training row.
    Train,
    /// A validation row (held out of training).
    Valid,
    /// A test row.
    Test,
}

/// How test rows are told from the others.
#[derive(Debug, Clone, PartialEq)]
enum TestRule {
    /// `time >= from`.
    Time(i64),
    /// A share below `fraction` under `seed`.
    Share { fraction: f64, seed: u64 },
    /// The test rows are another file's: none here.
    Elsewhere,
}

/// The row-by-row split of a streamed log; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct RowSplit {
    test: TestRule,
    valid_fraction: f64,
    valid_seed: u64,
    user_col: String,
    item_col: String,
}

/// Salts keeping the hashed decisions apart.
const TEST_SALT: u64 = 0x7e57_0000_0000_0001;
const VALID_SALT: u64 = 0x7a11_d000_0000_0002;

impl RowSplit {
    /// The split of the log of `d` under `schema` (the run's `eval.valid_fraction` and
    /// `eval.seed` for validation rows). Fails, naming the key, when the log needs the
    /// schema's `[split]` and it has none.
    pub fn new(cfg: &RunConfig, d: &DataConfig, schema: &Schema) -> Result<RowSplit> {
        let test = match (&d.test_log, &schema.split) {
            (Some(_), _) => TestRule::Elsewhere,
            (None, None) => bail!(
                "{}: `split`: the schema has no [split] section and `data.test_log` is not set",
                d.log.display()
            ),
            (None, Some(s)) => match (s.time_column.is_some(), s.test_from, s.test_fraction) {
                (true, Some(from), _) => TestRule::Time(from),
                (false, None, Some(fraction)) => TestRule::Share {
                    fraction,
                    seed: d.split_seed,
                },
                _ => bail!("`split`: invalid split (validate the schema)"),
            },
        };
        Ok(RowSplit {
            test,
            valid_fraction: cfg.eval.valid_fraction.max(0.0),
            valid_seed: cfg.eval.seed,
            user_col: schema.ids.user.clone(),
            item_col: schema.ids.item.clone(),
        })
    }

    /// The schema key that decides the test rows, for errors (`None` with a test log).
    pub fn test_key(&self) -> Option<&'static str> {
        match self.test {
            TestRule::Time(_) => Some("split.test_from"),
            TestRule::Share { .. } => Some("split.test_fraction"),
            TestRule::Elsewhere => None,
        }
    }

    /// The hash of each row of `chunk` ([`row_key`]).
    pub fn keys(&self, chunk: &RawLog) -> Result<Vec<u64>> {
        let users = categorical(chunk, &self.user_col)?;
        let items = categorical(chunk, &self.item_col)?;
        Ok((0..chunk.n_rows)
            .map(|r| row_key(&users[r], &items[r], chunk.time.as_ref().map(|t| t[r])))
            .collect())
    }

    /// The part of each row of `chunk` whose keys are `keys`.
    pub fn parts(&self, chunk: &RawLog, keys: &[u64]) -> Result<Vec<RowPart>> {
        let time = match self.test {
            TestRule::Time(_) => Some(chunk.time.as_ref().ok_or_else(|| {
                anyhow!(
                    "{}: `split.time_column`: the log has no time column to split on",
                    chunk.source
                )
            })?),
            _ => None,
        };
        Ok((0..chunk.n_rows)
            .map(|r| {
                let test = match self.test {
                    TestRule::Time(from) => time.expect("checked")[r] >= from,
                    TestRule::Share { fraction, seed } => {
                        row_share(keys[r], seed ^ TEST_SALT) < fraction
                    }
                    TestRule::Elsewhere => false,
                };
                if test {
                    RowPart::Test
                } else if row_share(keys[r], self.valid_seed ^ VALID_SALT) < self.valid_fraction {
                    RowPart::Valid
                } else {
                    RowPart::Train
                }
            })
            .collect())
    }

    /// The rows of `chunk` in `part`, ascending.
    pub fn rows_of(&self, chunk: &RawLog, part: RowPart) -> Result<Vec<usize>> {
        let keys = self.keys(chunk)?;
        let parts = self.parts(chunk, &keys)?;
        Ok((0..chunk.n_rows).filter(|&r| parts[r] == part).collect())
    }
}

/// SplitMix64's finaliser: every bit of `x` moves every bit of the result.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The key of a row: a hash of its user id, item id and time (stable across runs and
/// machines: [`token_hash`] of the ids).
pub fn row_key(user: &str, item: &str, time: Option<i64>) -> u64 {
    let t = time.map_or(0, |t| mix(t as u64 ^ 0x7173_0000_0000_0000));
    mix(token_hash(user) ^ token_hash(item).rotate_left(29) ^ t)
}

/// Where a row of key `key` falls in `[0, 1)` under `salt`: uniform over keys, independent
/// between salts.
pub fn row_share(key: u64, salt: u64) -> f64 {
    (mix(key ^ mix(salt)) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_uniform_and_salts_independent() {
        let keys: Vec<u64> = (0..20_000)
            .map(|i| row_key(&format!("u{}", i % 97), &format!("i{i}"), Some(i / 500)))
            .collect();
        let below = |salt: u64, p: f64| keys.iter().filter(|&&k| row_share(k, salt) < p).count();
        for p in [0.05, 0.3] {
            let n = below(1, p) as f64;
            let want = p * keys.len() as f64;
            assert!((n - want).abs() < 4.0 * want.sqrt(), "{n} vs {want}");
        }
        // Both below 0.3 under two salts: about 0.09 of the rows if independent.
        let both = keys
            .iter()
            .filter(|&&k| row_share(k, 1) < 0.3 && row_share(k, 2) < 0.3)
            .count() as f64;
        assert!((both / keys.len() as f64 - 0.09).abs() < 0.01, "{both}");
        assert_ne!(row_key("u1", "i2", None), row_key("u2", "i1", None));
        assert_ne!(row_key("u1", "i2", Some(1)), row_key("u1", "i2", Some(2)));
    }
}
