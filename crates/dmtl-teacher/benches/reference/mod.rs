//! The reference workload of BENCHMARKS.md for the teacher's benchmark and examples: its schema
//! and vocabularies, and random impressions over them.

use dmtl_data::{Dataset, FieldData, Kind, Schema, Vocabularies, Vocabulary};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// (name, side, table size, largest bag or 0 for categorical).
const FIELDS: [(&str, &str, usize, usize); 13] = [
    ("user_id", "user", 100_000, 0),
    ("age", "user", 8, 0),
    ("gender", "user", 3, 0),
    ("city", "user", 400, 0),
    ("user_tags", "user", 2_000, 8),
    ("hour", "context", 24, 0),
    ("network", "context", 4, 0),
    ("item_id", "item", 200_000, 0),
    ("category", "item", 40, 0),
    ("sub_category", "item", 400, 0),
    ("author", "item", 20_000, 0),
    ("item_tags", "item", 2_000, 5),
    ("length_bucket", "item", 10, 0),
];

/// The reference schema and hashed vocabularies (one table of the reference size per field).
pub fn reference_schema() -> (Schema, Vocabularies) {
    let mut toml = String::from(
        "[labels]\nclick = \"click\"\nduration = \"duration\"\n[ids]\nuser = \"user_id\"\nitem = \"item_id\"\n",
    );
    let mut vocabs = Vec::new();
    for (name, side, n, bag) in FIELDS {
        let kind = if bag > 0 { "multi_hot" } else { "categorical" };
        toml.push_str(&format!(
            "[[columns]]\nname = \"{name}\"\nside = \"{side}\"\nkind = \"{kind}\"\n"
        ));
        let k = if bag > 0 {
            Kind::MultiHot
        } else {
            Kind::Categorical
        };
        // A hashed vocabulary of n - 1 buckets has a table of n rows (with the OOV row).
        vocabs.push(Vocabulary::hashed(name, k, n as u64 - 1));
    }
    let schema = Schema::from_toml_str(&toml, "reference schema").expect("valid schema");
    (schema, Vocabularies::from_vec(vocabs))
}

/// `n` random impressions of the reference workload.
pub fn random_dataset(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let fields = FIELDS
        .iter()
        .map(|&(_, _, vocab, bag)| {
            if bag == 0 {
                FieldData::Ids((0..n).map(|_| rng.gen_range(0..vocab as u32)).collect())
            } else {
                let mut ids = Vec::new();
                let mut offsets = vec![0u32];
                for _ in 0..n {
                    for _ in 0..rng.gen_range(1..=bag) {
                        ids.push(rng.gen_range(0..vocab as u32));
                    }
                    offsets.push(ids.len() as u32);
                }
                FieldData::Bag { ids, offsets }
            }
        })
        .collect();
    let click: Vec<f32> = (0..n).map(|_| f32::from(rng.gen_bool(0.1))).collect();
    let duration: Vec<f32> = click
        .iter()
        .map(|&c| c * rng.gen::<f32>() * (50.0 / 0.6))
        .collect();
    let long_read = click
        .iter()
        .zip(&duration)
        .map(|(&c, &d)| f32::from(c > 0.5 && d > 50.0))
        .collect();
    Dataset {
        fields,
        click,
        duration,
        long_read,
        user_group: Vec::new(),
        user_ids: Vec::new(),
        item_group: Vec::new(),
        item_ids: Vec::new(),
        n_rows: n,
    }
}
