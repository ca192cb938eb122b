//! The encoded dataset (embedding-table indices, dense values, labels and user/item groups) and
//! its batches, plus the train/test split at the raw level.

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{DataError, Result};
use crate::raw::{RawColumn, RawLog, StrColumn};
use crate::schema::{Kind, Schema};
use crate::vocab::{Vocabularies, OOV};

/// The encoded values of one feature column.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldData {
    /// Categorical: one embedding-table index per row. Shape `[n_rows]`.
    Ids(Vec<u32>),
    /// Multi-hot: row `r` owns `ids[offsets[r]..offsets[r + 1]]`; `offsets.len() == n_rows + 1`,
    /// `offsets[0] == 0`. A row's bag may be empty.
    Bag {
        /// All rows' indices, flattened.
        ids: Vec<u32>,
        /// Row boundaries into `ids`.
        offsets: Vec<u32>,
    },
    /// Dense: one value per row. Shape `[n_rows]`.
    Dense(Vec<f32>),
}

impl FieldData {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            FieldData::Ids(v) => v.len(),
            FieldData::Bag { offsets, .. } => offsets.len().saturating_sub(1),
            FieldData::Dense(v) => v.len(),
        }
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `rows`, in that order.
    ///
    /// # Panics
    /// When a row is out of range.
    pub fn gather(&self, rows: &[u32]) -> FieldData {
        match self {
            FieldData::Ids(v) => FieldData::Ids(rows.iter().map(|&r| v[r as usize]).collect()),
            FieldData::Dense(v) => FieldData::Dense(rows.iter().map(|&r| v[r as usize]).collect()),
            FieldData::Bag { ids, offsets } => {
                let mut out = Vec::new();
                let mut offs = Vec::with_capacity(rows.len() + 1);
                offs.push(0u32);
                for &r in rows {
                    let r = r as usize;
                    out.extend_from_slice(&ids[offsets[r] as usize..offsets[r + 1] as usize]);
                    offs.push(out.len() as u32);
                }
                FieldData::Bag {
                    ids: out,
                    offsets: offs,
                }
            }
        }
    }

    fn filler(kind: Kind, n: usize) -> FieldData {
        match kind {
            Kind::Categorical => FieldData::Ids(vec![OOV; n]),
            Kind::MultiHot => FieldData::Bag {
                ids: Vec::new(),
                offsets: vec![0; n + 1],
            },
            Kind::Dense => FieldData::Dense(vec![0.0; n]),
        }
    }
}

/// An encoded log, column-major, ready for batching.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// One entry per schema feature column, in schema order. A column absent from a one-side
    /// table is filled with OOV ids (0), empty bags or 0.0.
    pub fields: Vec<FieldData>,
    /// Click labels (0.0/1.0), shape `[n_rows]`; empty when the log is unlabelled.
    pub click: Vec<f32>,
    /// Reading duration in seconds, shape `[n_rows]`; empty when unlabelled.
    pub duration: Vec<f32>,
    /// Long-read label: 1.0 when click = 1 and duration > the schema's threshold; shape `[n_rows]`;
    /// empty when unlabelled.
    pub long_read: Vec<f32>,
    /// Per row, the dense index (into `user_ids`) of its raw user id within this dataset: the GAUC
    /// group. Users unseen in training stay distinct. Empty when the log has no user id column.
    pub user_group: Vec<u32>,
    /// The raw user id of each group, in order of first appearance.
    pub user_ids: Vec<String>,
    /// Per row, the dense index (into `item_ids`) of its raw item id. Empty without an item column.
    pub item_group: Vec<u32>,
    /// The raw item id of each group, in order of first appearance.
    pub item_ids: Vec<String>,
    /// Number of rows.
    pub n_rows: usize,
}

/// A batch of rows gathered from a [`Dataset`]; every per-row vector has `n_rows` entries (bag
/// offsets `n_rows + 1`), labels are empty when the dataset is unlabelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The dataset rows in this batch, in batch order.
    pub rows: Vec<u32>,
    /// One entry per schema feature column, in schema order.
    pub fields: Vec<FieldData>,
    /// Click labels.
    pub click: Vec<f32>,
    /// Reading durations in seconds.
    pub duration: Vec<f32>,
    /// Long-read labels.
    pub long_read: Vec<f32>,
    /// GAUC group (index into the dataset's `user_ids`) of each row.
    pub user_group: Vec<u32>,
    /// Index into the dataset's `item_ids` of each row.
    pub item_group: Vec<u32>,
    /// Number of rows.
    pub n_rows: usize,
}

impl Batch {
    /// The rows `range` of this batch: the batch itself, borrowed, when `range` covers it
    /// whole, else [`Batch::slice_rows`].
    ///
    /// # Panics
    /// When `range` reaches past `n_rows`.
    pub fn part(&self, range: std::ops::Range<usize>) -> std::borrow::Cow<'_, Batch> {
        if range == (0..self.n_rows) {
            std::borrow::Cow::Borrowed(self)
        } else {
            std::borrow::Cow::Owned(self.slice_rows(range))
        }
    }

    /// The contiguous rows `range` of this batch as a batch of their own (in the same order),
    /// e.g. to split a batch into shards that run in parallel.
    ///
    /// # Panics
    /// When `range` reaches past `n_rows`.
    pub fn slice_rows(&self, range: std::ops::Range<usize>) -> Batch {
        assert!(
            range.start <= range.end && range.end <= self.n_rows,
            "rows {range:?} out of range for a batch of {} rows",
            self.n_rows
        );
        let local: Vec<u32> = (range.start as u32..range.end as u32).collect();
        let part = |v: &[f32]| -> Vec<f32> {
            if v.is_empty() {
                Vec::new()
            } else {
                v[range.clone()].to_vec()
            }
        };
        let part_u = |v: &[u32]| -> Vec<u32> {
            if v.is_empty() {
                Vec::new()
            } else {
                v[range.clone()].to_vec()
            }
        };
        Batch {
            rows: self.rows[range.clone()].to_vec(),
            fields: self.fields.iter().map(|f| f.gather(&local)).collect(),
            click: part(&self.click),
            duration: part(&self.duration),
            long_read: part(&self.long_read),
            user_group: part_u(&self.user_group),
            item_group: part_u(&self.item_group),
            n_rows: range.len(),
        }
    }
}

fn group(ids: &StrColumn) -> (Vec<u32>, Vec<String>) {
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut names = Vec::new();
    let groups = ids
        .iter()
        .map(|id| {
            *index.entry(id).or_insert_with(|| {
                names.push(id.to_string());
                names.len() as u32 - 1
            })
        })
        .collect();
    (groups, names)
}

impl Dataset {
    /// Encodes `raw` with `vocabs` (checked against `schema` first). Columns of `raw` must have
    /// the schema's kinds; feature columns `raw` lacks are filled (see [`Dataset::fields`]).
    pub fn encode(schema: &Schema, raw: &RawLog, vocabs: &Vocabularies) -> Result<Dataset> {
        vocabs.check_against(schema)?;
        raw.check_lengths()?;
        let n = raw.n_rows;
        if n > u32::MAX as usize {
            return Err(DataError::invalid(
                &raw.source,
                "more than 2^32 - 1 rows in one dataset",
            ));
        }
        if let Some((name, _)) = raw
            .columns
            .iter()
            .find(|(name, _)| schema.column(name).is_none())
        {
            return Err(DataError::invalid(
                &raw.source,
                format!("column `{name}` is not in the schema"),
            ));
        }
        let fields = schema
            .columns
            .par_iter()
            .map(|spec| -> Result<FieldData> {
                let Some(col) = raw.column(&spec.name) else {
                    return Ok(FieldData::filler(spec.kind, n));
                };
                if col.kind() != spec.kind {
                    return Err(DataError::invalid(
                        &raw.source,
                        format!(
                            "column `{}` is {} but the schema says {}",
                            spec.name,
                            col.kind(),
                            spec.kind
                        ),
                    ));
                }
                let vocab = || vocabs.get(&spec.name).expect("checked against the schema");
                Ok(match col {
                    RawColumn::Categorical(v) => {
                        let voc = vocab();
                        FieldData::Ids(v.iter().map(|t| voc.index(t)).collect())
                    }
                    RawColumn::MultiHot { tokens, offsets } => {
                        let voc = vocab();
                        if tokens.len() > u32::MAX as usize {
                            return Err(DataError::invalid(
                                &raw.source,
                                format!("column `{}` has more than 2^32 - 1 tokens", spec.name),
                            ));
                        }
                        FieldData::Bag {
                            ids: tokens.iter().map(|t| voc.index(t)).collect(),
                            offsets: offsets.iter().map(|&o| o as u32).collect(),
                        }
                    }
                    RawColumn::Dense(v) => FieldData::Dense(v.clone()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (click, duration, long_read) = match (&raw.click, &raw.duration) {
            (Some(c), Some(d)) => {
                let t = schema.long_read_threshold;
                let z = c
                    .iter()
                    .zip(d)
                    .map(|(&c, &d)| if c > 0.5 && d > t { 1.0 } else { 0.0 })
                    .collect();
                (c.clone(), d.clone(), z)
            }
            _ => (Vec::new(), Vec::new(), Vec::new()),
        };
        let groups_of = |name: &str| match raw.column(name) {
            Some(RawColumn::Categorical(v)) => group(v),
            _ => (Vec::new(), Vec::new()),
        };
        let ((user_group, user_ids), (item_group, item_ids)) = rayon::join(
            || groups_of(&schema.ids.user),
            || groups_of(&schema.ids.item),
        );
        Ok(Dataset {
            fields,
            click,
            duration,
            long_read,
            user_group,
            user_ids,
            item_group,
            item_ids,
            n_rows: n,
        })
    }

    /// True when the dataset carries labels.
    pub fn has_labels(&self) -> bool {
        !self.click.is_empty()
    }

    /// Gathers the rows `rows` (in that order) into a batch; fields are gathered in parallel.
    ///
    /// # Panics
    /// When a row is `>= n_rows`.
    pub fn batch(&self, rows: &[u32]) -> Batch {
        let pick = |v: &[f32]| -> Vec<f32> {
            if v.is_empty() {
                Vec::new()
            } else {
                rows.iter().map(|&r| v[r as usize]).collect()
            }
        };
        let pick_u = |v: &[u32]| -> Vec<u32> {
            if v.is_empty() {
                Vec::new()
            } else {
                rows.iter().map(|&r| v[r as usize]).collect()
            }
        };
        if let Some(&r) = rows.iter().find(|&&r| r as usize >= self.n_rows) {
            panic!("row {r} out of range for a dataset of {} rows", self.n_rows);
        }
        Batch {
            rows: rows.to_vec(),
            fields: self.fields.par_iter().map(|f| f.gather(rows)).collect(),
            click: pick(&self.click),
            duration: pick(&self.duration),
            long_read: pick(&self.long_read),
            user_group: pick_u(&self.user_group),
            item_group: pick_u(&self.item_group),
            n_rows: rows.len(),
        }
    }

    /// The dataset of the rows `rows` (in that order): every per-row column gathered, the raw
    /// ids of the groups kept, so a row keeps its group.
    ///
    /// # Panics
    /// When a row is `>= n_rows`.
    pub fn select(&self, rows: &[u32]) -> Dataset {
        let b = self.batch(rows);
        Dataset {
            fields: b.fields,
            click: b.click,
            duration: b.duration,
            long_read: b.long_read,
            user_group: b.user_group,
            user_ids: self.user_ids.clone(),
            item_group: b.item_group,
            item_ids: self.item_ids.clone(),
            n_rows: b.n_rows,
        }
    }

    /// Rank `rank`'s share of the rows when `ranks` ranks split the dataset for data-parallel
    /// training: rows `rank, rank + ranks, rank + 2 ranks, ...` (round robin, so every share
    /// samples the whole log alike and the shares differ by at most one row; together they are
    /// every row exactly once).
    ///
    /// # Panics
    /// When `rank >= ranks`.
    pub fn shard(&self, rank: usize, ranks: usize) -> Dataset {
        assert!(rank < ranks, "rank {rank} of {ranks}");
        let rows: Vec<u32> = (rank..self.n_rows)
            .step_by(ranks)
            .map(|r| r as u32)
            .collect();
        self.select(&rows)
    }

    /// The row order of one epoch: `0..n_rows`, shuffled when `shuffle = Some((seed, epoch))`.
    /// The same seed and epoch always give the same order; each epoch draws from its own
    /// ChaCha8 stream, so different epochs give different orders.
    pub fn epoch_order(&self, shuffle: Option<(u64, u64)>) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.n_rows as u32).collect();
        if let Some((seed, epoch)) = shuffle {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(epoch);
            order.shuffle(&mut rng);
        }
        order
    }

    /// Batches of `batch_size` rows covering every row exactly once, in [`Dataset::epoch_order`];
    /// the last, shorter batch is dropped when `drop_last`.
    ///
    /// # Panics
    /// When `batch_size == 0`.
    pub fn batches(
        &self,
        batch_size: usize,
        shuffle: Option<(u64, u64)>,
        drop_last: bool,
    ) -> impl Iterator<Item = Batch> + '_ {
        assert!(batch_size > 0, "batch_size must be at least 1");
        let order = self.epoch_order(shuffle);
        let n_batches = if drop_last {
            order.len() / batch_size
        } else {
            order.len().div_ceil(batch_size)
        };
        (0..n_batches).map(move |b| {
            let end = ((b + 1) * batch_size).min(order.len());
            self.batch(&order[b * batch_size..end])
        })
    }

    /// For each user group in order, the first row holding that user (e.g. to compute each
    /// user's vector once).
    pub fn first_row_per_user(&self) -> Vec<u32> {
        first_rows(&self.user_group, self.user_ids.len())
    }

    /// For each item group in order, the first row holding that item.
    pub fn first_row_per_item(&self) -> Vec<u32> {
        first_rows(&self.item_group, self.item_ids.len())
    }
}

fn first_rows(groups: &[u32], n_groups: usize) -> Vec<u32> {
    let mut first = vec![u32::MAX; n_groups];
    for (r, &g) in groups.iter().enumerate() {
        if first[g as usize] == u32::MAX {
            first[g as usize] = r as u32;
        }
    }
    first
}

/// Splits a raw log into training and test rows as the schema's `[split]` says: by time
/// (`time >= test_from` is test) or, with `test_fraction`, a seeded random choice of
/// `round(fraction * n_rows)` test rows. Both parts keep the original row order.
///
/// Fails, naming the split key, when the schema has no split, the log lacks the time column, or
/// either part would be empty.
pub fn split_train_test(raw: &RawLog, schema: &Schema, seed: u64) -> Result<(RawLog, RawLog)> {
    let err = |key: &str, message: String| DataError::Split {
        source_name: raw.source.clone(),
        key: key.to_string(),
        message,
    };
    let Some(split) = &schema.split else {
        return Err(err(
            "split",
            "the schema has no [split] section".to_string(),
        ));
    };
    let n = raw.n_rows;
    let is_test: Vec<bool> = match (&split.time_column, split.test_from, split.test_fraction) {
        (Some(tc), Some(from), _) => {
            let Some(time) = &raw.time else {
                return Err(err(
                    "split.time_column",
                    format!("the log has no time column `{tc}` to split on"),
                ));
            };
            let is_test: Vec<bool> = time.iter().map(|&t| t >= from).collect();
            let n_test = is_test.iter().filter(|&&b| b).count();
            let (lo, hi) = (time.iter().min(), time.iter().max());
            let range = match (lo, hi) {
                (Some(lo), Some(hi)) => format!("`{tc}` ranges over {lo}..={hi}"),
                _ => "the log has no rows".to_string(),
            };
            if n_test == 0 {
                return Err(err(
                    "split.test_from",
                    format!("no row has {tc} >= {from}, the test set would be empty ({range})"),
                ));
            }
            if n_test == n {
                return Err(err(
                    "split.test_from",
                    format!(
                        "every row has {tc} >= {from}, the training set would be empty ({range})"
                    ),
                ));
            }
            is_test
        }
        (None, None, Some(f)) => {
            let n_test = (f * n as f64).round() as usize;
            if n_test == 0 {
                return Err(err(
                    "split.test_fraction",
                    format!("{f} of {n} rows rounds to 0 test rows, the test set would be empty"),
                ));
            }
            if n_test >= n {
                return Err(err(
                    "split.test_fraction",
                    format!("{f} of {n} rows leaves no training rows"),
                ));
            }
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
            let mut is_test = vec![false; n];
            for &r in &order[..n_test] {
                is_test[r] = true;
            }
            is_test
        }
        _ => {
            return Err(err(
                "split",
                "invalid split (validate the schema)".to_string(),
            ))
        }
    };
    let train: Vec<usize> = (0..n).filter(|&r| !is_test[r]).collect();
    let test: Vec<usize> = (0..n).filter(|&r| is_test[r]).collect();
    Ok((raw.take(&train), raw.take(&test)))
}
