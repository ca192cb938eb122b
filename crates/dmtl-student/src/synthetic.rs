//! Schemas, vocabularies and random datasets of given sizes, built directly in memory: the
//! reference workload of BENCHMARKS.md for benchmarks, and small models for tests and examples.
//!
//! Every column is hashed (`hash_buckets = vocabulary - 1`), so the vocabularies cost nothing
//! to build whatever their size; ids are drawn uniformly from the real rows `1..vocabulary`.
//!
//! ```
//! use dmtl_student::synthetic::{random_dataset, schema_and_vocabs, tiny_fields};
//! let fields = tiny_fields();
//! let (schema, vocabs) = schema_and_vocabs(&fields, 4);
//! let data = random_dataset(&fields, 100, 7);
//! assert_eq!(data.n_rows, 100);
//! assert_eq!(data.fields.len(), schema.columns.len());
//! assert_eq!(vocabs.table_size("user_id"), Some(fields[0].vocab));
//! ```
//!
//! [`resume_workload`], [`resume_config`] and [`train_in_pieces`] are the set-up the tests of
//! resumed training share (the student's here, joint training's in `dmtl-joint`).

use std::collections::HashMap;
use std::path::Path;

use dmtl_data::{Dataset, FieldData, Kind, Schema, Side, Vocabularies, Vocabulary};
use dmtl_train::{StateDir, TrainError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{ObjectiveConfig, StudentConfig, StudentError, TrainOptions};

/// One feature column of a synthetic workload.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    /// Column name.
    pub name: &'static str,
    /// Which tower it feeds.
    pub side: Side,
    /// Embedding-table rows, the OOV row included (at least 2).
    pub vocab: usize,
    /// For a multi-hot column, the least and most ids per row; `None` for a categorical one.
    pub bag: Option<(usize, usize)>,
}

const fn field(
    name: &'static str,
    side: Side,
    vocab: usize,
    bag: Option<(usize, usize)>,
) -> FieldSpec {
    FieldSpec {
        name,
        side,
        vocab,
        bag,
    }
}

/// The 13 columns of the reference workload (BENCHMARKS.md), in its order: user side
/// `user_id` 100,000, `age` 8, `gender` 3, `city` 400, `user_tags` 1-8 of 2,000; context
/// `hour` 24, `network` 4; item side `item_id` 200,000, `category` 40, `sub_category` 400,
/// `author` 20,000, `item_tags` 1-5 of 2,000, `length_bucket` 10 (vocabularies plus one OOV
/// row each).
pub fn reference_fields() -> Vec<FieldSpec> {
    vec![
        field("user_id", Side::User, 100_001, None),
        field("age", Side::User, 9, None),
        field("gender", Side::User, 4, None),
        field("city", Side::User, 401, None),
        field("user_tags", Side::User, 2_001, Some((1, 8))),
        field("hour", Side::Context, 25, None),
        field("network", Side::Context, 5, None),
        field("item_id", Side::Item, 200_001, None),
        field("category", Side::Item, 41, None),
        field("sub_category", Side::Item, 401, None),
        field("author", Side::Item, 20_001, None),
        field("item_tags", Side::Item, 2_001, Some((1, 5))),
        field("length_bucket", Side::Item, 11, None),
    ]
}

/// A small workload with the reference's columns: 50 users, 80 items, bags of 0 to 3 tags
/// (empty bags included).
pub fn tiny_fields() -> Vec<FieldSpec> {
    vec![
        field("user_id", Side::User, 51, None),
        field("age", Side::User, 9, None),
        field("user_tags", Side::User, 21, Some((0, 3))),
        field("hour", Side::Context, 25, None),
        field("item_id", Side::Item, 81, None),
        field("category", Side::Item, 6, None),
        field("item_tags", Side::Item, 21, Some((0, 3))),
    ]
}

/// The schema (click and duration labels, `user_id` / `item_id` ids, long reads above 50 s,
/// embedding dimension `dim`) and hashed vocabularies of `fields`.
///
/// # Panics
/// When `fields` lacks `user_id` or `item_id`, or a vocabulary has fewer than 2 rows.
pub fn schema_and_vocabs(fields: &[FieldSpec], dim: usize) -> (Schema, Vocabularies) {
    let mut toml = format!(
        "long_read_threshold = 50.0\n[labels]\nclick = \"click\"\nduration = \"duration\"\n\
         [ids]\nuser = \"user_id\"\nitem = \"item_id\"\n[defaults]\nembedding_dim = {dim}\n"
    );
    for f in fields {
        assert!(f.vocab >= 2, "field `{}`: vocabulary below 2 rows", f.name);
        let kind = if f.bag.is_some() {
            "multi_hot"
        } else {
            "categorical"
        };
        toml.push_str(&format!(
            "[[columns]]\nname = \"{}\"\nside = \"{}\"\nkind = \"{kind}\"\nhash_buckets = {}\n",
            f.name,
            f.side.as_str(),
            f.vocab - 1
        ));
    }
    let schema = Schema::from_toml_str(&toml, "synthetic schema")
        .unwrap_or_else(|e| panic!("synthetic schema: {e}"));
    let vocabs = Vocabularies::from_vec(
        fields
            .iter()
            .map(|f| {
                let kind = if f.bag.is_some() {
                    Kind::MultiHot
                } else {
                    Kind::Categorical
                };
                Vocabulary::hashed(f.name, kind, f.vocab as u64 - 1)
            })
            .collect(),
    );
    (schema, vocabs)
}

/// `n_rows` random impressions over `fields` (ids uniform in `1..vocab`), seeded: clicks with
/// probability 0.1, reading seconds log-normal around 50 s after a click (0 otherwise), long
/// reads above 50 s, users and items grouped by their `user_id` / `item_id` index.
pub fn random_dataset(fields: &[FieldSpec], n_rows: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let columns: Vec<FieldData> = fields
        .iter()
        .map(|f| match f.bag {
            None => FieldData::Ids(
                (0..n_rows)
                    .map(|_| rng.gen_range(1..f.vocab as u32))
                    .collect(),
            ),
            Some((lo, hi)) => {
                let mut ids = Vec::new();
                let mut offsets = vec![0u32];
                for _ in 0..n_rows {
                    let len = rng.gen_range(lo..=hi);
                    ids.extend((0..len).map(|_| rng.gen_range(1..f.vocab as u32)));
                    offsets.push(ids.len() as u32);
                }
                FieldData::Bag { ids, offsets }
            }
        })
        .collect();
    let click: Vec<f32> = (0..n_rows)
        .map(|_| f32::from(u8::from(rng.gen_bool(0.1))))
        .collect();
    let duration: Vec<f32> = click
        .iter()
        .map(|&c| {
            if c > 0.5 {
                (3.9 + rng.gen_range(-1.5f32..1.5)).exp()
            } else {
                0.0
            }
        })
        .collect();
    let long_read = click
        .iter()
        .zip(&duration)
        .map(|(&c, &d)| if c > 0.5 && d > 50.0 { 1.0 } else { 0.0 })
        .collect();
    let groups = |name: &str, prefix: &str| -> (Vec<u32>, Vec<String>) {
        let Some(k) = fields.iter().position(|f| f.name == name) else {
            return (Vec::new(), Vec::new());
        };
        let FieldData::Ids(ids) = &columns[k] else {
            return (Vec::new(), Vec::new());
        };
        let mut index: HashMap<u32, u32> = HashMap::new();
        let mut names = Vec::new();
        let group = ids
            .iter()
            .map(|&i| {
                *index.entry(i).or_insert_with(|| {
                    names.push(format!("{prefix}{i}"));
                    names.len() as u32 - 1
                })
            })
            .collect();
        (group, names)
    };
    let (user_group, user_ids) = groups("user_id", "u");
    let (item_group, item_ids) = groups("item_id", "i");
    Dataset {
        fields: columns,
        click,
        duration,
        long_read,
        user_group,
        user_ids,
        item_group,
        item_ids,
        n_rows,
    }
}

/// The data a test of resumed training runs on: the [`tiny_fields`] schema and vocabularies
/// (dimension 4), 1,500 training rows (seed 1), 500 validation rows (seed 2) and a teacher's
/// score per training row (`0.1 + 0.5 * long_read`).
#[derive(Debug, Clone)]
pub struct ResumeWorkload {
    /// The schema of [`tiny_fields`].
    pub schema: Schema,
    /// Its hashed vocabularies.
    pub vocabs: Vocabularies,
    /// 1,500 training rows.
    pub train: Dataset,
    /// 500 validation rows.
    pub valid: Dataset,
    /// The teacher's probability for each training row.
    pub teacher: Vec<f32>,
}

/// The [`ResumeWorkload`], with the thread pools set to 2 threads first (a run is reproducible
/// bit for bit for a given thread count).
pub fn resume_workload() -> ResumeWorkload {
    dmtl_tensor::threads::init(Some(2));
    let fields = tiny_fields();
    let (schema, vocabs) = schema_and_vocabs(&fields, 4);
    let train = random_dataset(&fields, 1_500, 1);
    let valid = random_dataset(&fields, 500, 2);
    let teacher = train.long_read.iter().map(|&z| 0.1 + 0.5 * z).collect();
    ResumeWorkload {
        schema,
        vocabs,
        train,
        valid,
        teacher,
    }
}

/// A small student for the [`ResumeWorkload`]: towers of 16 and 8, the default objective, 3
/// epochs of batches of 64 (24 batches each), patience 1, a training state every 4 batches.
pub fn resume_config() -> StudentConfig {
    StudentConfig {
        user_layers: vec![16, 8],
        item_layers: vec![16, 8],
        objective: ObjectiveConfig::default(),
        train: TrainOptions {
            lr: 2e-2,
            batch_size: 64,
            epochs: 3,
            patience: 1,
            checkpoint_every: 4,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Trains in pieces, as separate processes would: piece `k` gets [`resume_config`] with
/// `stop_after_batches = stops[k]` and the training state in `dir` (fresh for the first piece,
/// resumed after), and builds its model afresh. Returns what the first piece to finish returns.
///
/// # Panics
/// When a piece fails other than by its stop, a piece without a stop is interrupted, or no
/// piece finishes.
pub fn train_in_pieces<T>(
    dir: &Path,
    stops: &[Option<usize>],
    mut piece: impl FnMut(StudentConfig, &StateDir) -> Result<T, StudentError>,
) -> T {
    for (k, stop) in stops.iter().enumerate() {
        let mut cfg = resume_config();
        cfg.train.stop_after_batches = *stop;
        let state = if k == 0 {
            StateDir::fresh(dir)
        } else {
            StateDir::resume(dir)
        };
        match piece(cfg, &state) {
            Ok(done) => return done,
            Err(StudentError::Train(TrainError::Interrupted { .. })) => assert!(stop.is_some()),
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the last piece must run to the end")
}
