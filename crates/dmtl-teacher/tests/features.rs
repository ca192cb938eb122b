//! Field embeddings against a by-hand lookup, and the reference teacher's parameter layout.

mod common;

use common::synthetic;
use dmtl_data::{FieldData, Side};
use dmtl_teacher::{FieldEmbeddingConfig, FieldEmbeddings, Teacher, TeacherConfig};
use dmtl_tensor::{Graph, ParamStore};
use rand::SeedableRng;

#[test]
fn forward_is_the_concatenation_of_rows_bag_means_and_dense_values() {
    let (schema, vocabs, _, test) = synthetic(2_000, 64);
    let mut store = ParamStore::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let cfg = FieldEmbeddingConfig::default();
    let all = [Side::User, Side::Context, Side::Item];
    let emb =
        FieldEmbeddings::new(&mut store, "m", &schema, &vocabs, &all, &cfg, &mut rng).unwrap();
    // user_id 8 + user_tags 8 + hour 8 + item_id 8 + category 4 (its own dim) + freshness 1.
    assert_eq!(emb.out_dim(), 37);
    let rows: Vec<u32> = (0..64).collect();
    let batch = test.batch(&rows);
    let g = Graph::new(&store);
    let h = g.value(emb.forward(&g, &batch));
    assert_eq!(h.dim(), (64, 37));

    let mut n_empty = 0;
    for r in 0..64 {
        let mut want: Vec<f32> = Vec::new();
        for f in emb.fields() {
            match &batch.fields[f.column] {
                FieldData::Ids(ids) => {
                    let t = store.value(f.table.unwrap());
                    want.extend(t.row(ids[r] as usize).iter());
                }
                FieldData::Bag { ids, offsets } => {
                    let t = store.value(f.table.unwrap());
                    let bag = &ids[offsets[r] as usize..offsets[r + 1] as usize];
                    n_empty += bag.is_empty() as usize;
                    for d in 0..f.dim {
                        let s: f32 = bag.iter().map(|&i| t[[i as usize, d]]).sum();
                        want.push(if bag.is_empty() {
                            0.0
                        } else {
                            s / bag.len() as f32
                        });
                    }
                }
                FieldData::Dense(v) => want.push(v[r]),
            }
        }
        for (c, w) in want.iter().enumerate() {
            assert!(
                (h[[r, c]] - w).abs() < 1e-6,
                "row {r} column {c}: {} vs {w}",
                h[[r, c]]
            );
        }
    }
    assert!(n_empty > 0, "the test data should hold empty bags");
}

#[test]
fn sides_select_columns_and_tables_are_named_and_sized_by_vocabulary() {
    let (schema, vocabs, _, _) = synthetic(1_000, 10);
    let mut store = ParamStore::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let cfg = FieldEmbeddingConfig {
        dim: Some(3),
        init_std: 0.01,
    };
    let user = FieldEmbeddings::new(
        &mut store,
        "s.user",
        &schema,
        &vocabs,
        &[Side::User, Side::Context],
        &cfg,
        &mut rng,
    )
    .unwrap();
    let item = FieldEmbeddings::new(
        &mut store,
        "s.item",
        &schema,
        &vocabs,
        &[Side::Item],
        &cfg,
        &mut rng,
    )
    .unwrap();
    let names = |e: &FieldEmbeddings| {
        e.fields()
            .iter()
            .map(|f| f.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&user), ["user_id", "user_tags", "hour"]);
    assert_eq!(names(&item), ["item_id", "category", "freshness"]);
    assert_eq!(user.out_dim(), 9);
    assert_eq!(item.out_dim(), 3 + 3 + 1);
    let t = store.id("s.item.embedding.item_id").unwrap();
    assert_eq!(
        store.value(t).dim(),
        (vocabs.table_size("item_id").unwrap(), 3)
    );
    // init_std is honoured: the sample standard deviation of a large table is close to it.
    let v = store.value(t);
    let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    assert!((std - 0.01).abs() < 0.002, "{std}");
}

#[test]
fn reference_teacher_has_the_pytorch_reference_parameter_count_and_names() {
    // The reference workload's 13 fields, 16-d each (BENCHMARKS.md).
    let fields: [(&str, &str, usize, bool); 13] = [
        ("user_id", "user", 100_000, false),
        ("age", "user", 8, false),
        ("gender", "user", 3, false),
        ("city", "user", 400, false),
        ("user_tags", "user", 2_000, true),
        ("hour", "context", 24, false),
        ("network", "context", 4, false),
        ("item_id", "item", 200_000, false),
        ("category", "item", 40, false),
        ("sub_category", "item", 400, false),
        ("author", "item", 20_000, false),
        ("item_tags", "item", 2_000, true),
        ("length_bucket", "item", 10, false),
    ];
    let mut toml = String::from(
        "[labels]\nclick = \"click\"\nduration = \"duration\"\n[ids]\nuser = \"user_id\"\nitem = \"item_id\"\n",
    );
    let mut vocabs = Vec::new();
    for (name, side, n, multi) in fields {
        let kind = if multi { "multi_hot" } else { "categorical" };
        toml.push_str(&format!(
            "[[columns]]\nname = \"{name}\"\nside = \"{side}\"\nkind = \"{kind}\"\n"
        ));
        let k = if multi {
            dmtl_data::Kind::MultiHot
        } else {
            dmtl_data::Kind::Categorical
        };
        // Table size = n, the OOV row included.
        vocabs.push(dmtl_data::Vocabulary::hashed(name, k, n as u64 - 1));
    }
    let schema = dmtl_data::Schema::from_toml_str(&toml, "reference").unwrap();
    let vocabs = dmtl_data::Vocabularies::from_vec(vocabs);
    let teacher = Teacher::new(TeacherConfig::default(), &schema, &vocabs).unwrap();
    let store = teacher.store();
    assert_eq!(teacher.embeddings().out_dim(), 208);
    let tables: usize = fields.iter().map(|f| f.2 * 16).sum();
    let expert = 208 * 256 + 256 + 256 * 128 + 128;
    let gate = 208 * 4 + 4;
    let tower = 128 * 64 + 64 + 64 + 1;
    assert_eq!(
        store.num_scalars(),
        tables + 4 * expert + 2 * gate + 2 * tower
    );
    for (name, shape) in [
        ("teacher.embedding.user_id", (100_000, 16)),
        ("teacher.expert.0.layer.1.weight", (128, 256)),
        ("teacher.expert.3.layer.0.bias", (1, 256)),
        ("teacher.gate.ctr.weight", (4, 208)),
        ("teacher.gate.cvr.bias", (1, 4)),
        ("teacher.tower.cvr.layer.0.weight", (64, 128)),
        ("teacher.tower.ctr.layer.1.weight", (1, 64)),
    ] {
        let id = store
            .id(name)
            .unwrap_or_else(|| panic!("no parameter {name}"));
        assert_eq!(store.value(id).dim(), shape, "{name}");
    }
}
