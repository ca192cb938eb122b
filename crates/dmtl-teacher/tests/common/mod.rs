//! A small synthetic feed log with a known structure, shared by the tests.
//!
//! Users and items each belong to one of a few topics. A click is likelier when the topics
//! match and when the item is click-bait; a long read (given a click) is likelier when the
//! topics match and much less likely for click-bait. So click and long read disagree on
//! click-bait, and both depend on a user x item interaction that a linear model of the fields
//! cannot represent.

#![allow(dead_code)]

use dmtl_data::{Dataset, RawColumn, RawLog, Schema, Vocabularies};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const SCHEMA: &str = r#"
long_read_threshold = 50.0

[labels]
click = "click"
duration = "duration"

[ids]
user = "user_id"
item = "item_id"

[defaults]
embedding_dim = 8

[[columns]]
name = "user_id"
side = "user"
kind = "categorical"

[[columns]]
name = "user_tags"
side = "user"
kind = "multi_hot"
separator = "|"

[[columns]]
name = "hour"
side = "context"
kind = "categorical"

[[columns]]
name = "item_id"
side = "item"
kind = "categorical"

[[columns]]
name = "category"
side = "item"
kind = "categorical"
embedding_dim = 4

[[columns]]
name = "freshness"
side = "item"
kind = "dense"
"#;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `n_rows` impressions of `n_users` users and `n_items` items over `n_topics` topics.
pub fn synthetic_log(n_rows: usize, seed: u64) -> RawLog {
    let (n_users, n_items, n_topics) = (300usize, 400usize, 6usize);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // The world is fixed (seed 1); only the impressions depend on `seed`.
    let mut world = ChaCha8Rng::seed_from_u64(1);
    let user_topic: Vec<usize> = (0..n_users).map(|_| world.gen_range(0..n_topics)).collect();
    let item_topic: Vec<usize> = (0..n_items).map(|_| world.gen_range(0..n_topics)).collect();
    let item_bait: Vec<bool> = (0..n_items).map(|_| world.gen_bool(0.2)).collect();
    let (mut user_id, mut hour, mut item_id, mut category) = (vec![], vec![], vec![], vec![]);
    let (mut tags, mut offsets, mut fresh) = (vec![], vec![0usize], vec![]);
    let (mut click, mut duration) = (vec![], vec![]);
    for _ in 0..n_rows {
        let u = rng.gen_range(0..n_users);
        // Half the impressions come from the user's topic, as a logging policy would.
        let i = if rng.gen_bool(0.5) {
            loop {
                let i = rng.gen_range(0..n_items);
                if item_topic[i] == user_topic[u] {
                    break i;
                }
            }
        } else {
            rng.gen_range(0..n_items)
        };
        let h = rng.gen_range(0..24);
        user_id.push(format!("u{u}"));
        hour.push(format!("{h:02}"));
        item_id.push(format!("item-{i}"));
        category.push(format!("c{}", item_topic[i] % 3));
        // Tags: usually the user's topic, sometimes noise, sometimes none.
        if rng.gen_bool(0.9) {
            tags.push(format!("t{}", user_topic[u]));
            if rng.gen_bool(0.5) {
                tags.push(format!("t{}", rng.gen_range(0..n_topics)));
            }
        }
        offsets.push(tags.len());
        fresh.push(rng.gen::<f32>());
        let m = if user_topic[u] == item_topic[i] {
            1.0
        } else {
            0.0
        };
        let b = if item_bait[i] { 1.0 } else { 0.0 };
        let evening = if h >= 18 { 0.3 } else { 0.0 };
        let c = rng.gen_bool(sigmoid(-2.2 + 1.6 * m + 1.4 * b + evening));
        let long = c && rng.gen_bool(sigmoid(0.3 + 1.2 * m - 3.0 * b));
        click.push(if c { 1.0 } else { 0.0 });
        duration.push(match (c, long) {
            (false, _) => 0.0,
            (true, true) => 60.0 + rng.gen::<f32>() * 100.0,
            (true, false) => rng.gen::<f32>() * 50.0,
        });
    }
    RawLog {
        source: "synthetic".into(),
        columns: vec![
            ("user_id".into(), RawColumn::Categorical(user_id.into())),
            (
                "user_tags".into(),
                RawColumn::MultiHot {
                    tokens: tags.into(),
                    offsets,
                },
            ),
            ("hour".into(), RawColumn::Categorical(hour.into())),
            ("item_id".into(), RawColumn::Categorical(item_id.into())),
            ("category".into(), RawColumn::Categorical(category.into())),
            ("freshness".into(), RawColumn::Dense(fresh)),
        ],
        click: Some(click),
        duration: Some(duration),
        time: None,
        n_rows,
    }
}

/// Schema, vocabularies (from the training log) and encoded train and test sets.
pub fn synthetic(n_train: usize, n_test: usize) -> (Schema, Vocabularies, Dataset, Dataset) {
    let schema = Schema::from_toml_str(SCHEMA, "synthetic schema").unwrap();
    let train_raw = synthetic_log(n_train, 11);
    let test_raw = synthetic_log(n_test, 12);
    let vocabs = Vocabularies::build(&schema, &train_raw).unwrap();
    let train = Dataset::encode(&schema, &train_raw, &vocabs).unwrap();
    let test = Dataset::encode(&schema, &test_raw, &vocabs).unwrap();
    (schema, vocabs, train, test)
}

/// Logistic regression on the same features, trained with the same ESMM loss: for each task
/// a 1-d embedding per id (its weight), the dense values, a linear map to one logit. It sees
/// the same fields as the teacher but no interaction between them.
pub struct LogisticRegression {
    store: dmtl_tensor::ParamStore,
    fields: Vec<dmtl_teacher::FieldEmbeddings>,
    heads: Vec<dmtl_tensor::nn::Linear>,
}

impl LogisticRegression {
    pub fn new(schema: &Schema, vocabs: &Vocabularies) -> Self {
        use dmtl_data::Side;
        let mut store = dmtl_tensor::ParamStore::new();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let cfg = dmtl_teacher::FieldEmbeddingConfig {
            dim: Some(1),
            init_std: 0.01,
        };
        let mut fields = Vec::new();
        let mut heads = Vec::new();
        for task in ["ctr", "cvr"] {
            let f = dmtl_teacher::FieldEmbeddings::new(
                &mut store,
                &format!("lr.{task}"),
                schema,
                vocabs,
                &[Side::User, Side::Context, Side::Item],
                &cfg,
                &mut rng,
            )
            .unwrap();
            let head = dmtl_tensor::nn::Linear::new(
                &mut store,
                &format!("lr.{task}.head"),
                f.out_dim(),
                1,
                dmtl_tensor::Init::Constant(1.0),
                &mut rng,
            );
            fields.push(f);
            heads.push(head);
        }
        LogisticRegression {
            store,
            fields,
            heads,
        }
    }

    fn logits(
        &self,
        g: &dmtl_tensor::Graph<'_>,
        batch: &dmtl_data::Batch,
    ) -> Vec<dmtl_tensor::Var> {
        (0..2)
            .map(|t| {
                let h = self.fields[t].forward(g, batch);
                self.heads[t].forward(g, h, dmtl_tensor::Activation::Identity)
            })
            .collect()
    }

    pub fn train(&mut self, data: &Dataset, epochs: usize, lr: f32, batch_size: usize) {
        use dmtl_tensor::optim::Optimizer;
        let mut adam = dmtl_tensor::optim::Adam::new(lr);
        for epoch in 0..epochs {
            for batch in data.batches(batch_size, Some((5, epoch as u64)), false) {
                let g = dmtl_tensor::Graph::new(&self.store);
                let l = self.logits(&g, &batch);
                let loss = dmtl_loss::esmm_loss(
                    &g,
                    l[0],
                    l[1],
                    &batch.click,
                    &batch.long_read,
                    1.0,
                    dmtl_loss::Reduction::Mean,
                );
                let grads = g.backward(loss.total);
                drop(g);
                adam.step(&mut self.store, &grads);
            }
        }
    }

    pub fn predict(&self, data: &Dataset) -> dmtl_teacher::TeacherScores {
        let mut ctr = Vec::new();
        let mut cvr = Vec::new();
        for batch in data.batches(4096, None, false) {
            let g = dmtl_tensor::Graph::new(&self.store);
            let l = self.logits(&g, &batch);
            ctr.extend(g.value(l[0]).iter().copied());
            cvr.extend(g.value(l[1]).iter().copied());
        }
        dmtl_teacher::TeacherScores::from_logits(&ctr, &cvr)
    }
}
