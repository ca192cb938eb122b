//! Vocabularies: OOV at index 0, deterministic order, min_count / max_size / hashing, save/load.

mod common;

use common::*;
use dmtl_data::*;

fn cat(v: &[&str]) -> RawColumn {
    RawColumn::Categorical(v.iter().map(|s| s.to_string()).collect())
}

fn tiny_schema(extra: &str) -> Schema {
    let text = format!(
        r#"
[labels]
click = "click"
duration = "duration"
[ids]
user = "u"
item = "i"
[[columns]]
name = "u"
side = "user"
kind = "categorical"
[[columns]]
name = "i"
side = "item"
kind = "categorical"
{extra}
[[columns]]
name = "tags"
side = "item"
kind = "multi_hot"
"#
    );
    Schema::from_toml_str(&text, "tiny.toml").unwrap()
}

fn tiny_log(u: &[&str], i: &[&str], tags: &[&[&str]]) -> RawLog {
    let mut tokens = Vec::new();
    let mut offsets = vec![0];
    for t in tags {
        tokens.extend(t.iter().map(|s| s.to_string()));
        offsets.push(tokens.len());
    }
    RawLog {
        source: "tiny".into(),
        columns: vec![
            ("u".into(), cat(u)),
            ("i".into(), cat(i)),
            (
                "tags".into(),
                RawColumn::MultiHot {
                    tokens: tokens.into(),
                    offsets,
                },
            ),
        ],
        click: None,
        duration: None,
        time: None,
        n_rows: u.len(),
    }
}

#[test]
fn order_is_by_count_then_token_and_unseen_maps_to_oov() {
    let s = tiny_schema("");
    let train = tiny_log(
        &["b", "a", "c", "a", "b", "", "d"],
        &["x", "x", "x", "y", "y", "z", "z"],
        &[&["t2"], &["t1", "t2"], &[], &["t3"], &[], &[], &["t1"]],
    );
    let v = Vocabularies::build(&s, &train).unwrap();
    let u = v.get("u").unwrap();
    // a and b twice (tie broken by text), then c and d once; "" is not a token.
    assert_eq!(u.tokens(), ["a", "b", "c", "d"]);
    assert_eq!(u.len(), 5, "4 tokens + the OOV row");
    assert_eq!((u.index("a"), u.index("b"), u.index("d")), (1, 2, 4));
    assert_eq!(u.index("never-seen"), OOV);
    assert_eq!(u.index(""), OOV);
    assert_eq!(u.token(2), Some("b"));
    assert_eq!(u.token(0), None);
    assert_eq!(v.get("tags").unwrap().tokens(), ["t1", "t2", "t3"]);
    assert!(v.get("price").is_none());

    let test = tiny_log(
        &["d", "zz", ""],
        &["x", "new", "y"],
        &[&["t3", "t9"], &[], &["t1"]],
    );
    let d = Dataset::encode(&s, &test, &v).unwrap();
    assert_eq!(d.fields[0], FieldData::Ids(vec![4, 0, 0]));
    assert_eq!(d.fields[1], FieldData::Ids(vec![1, 0, 2]));
    assert_eq!(
        d.fields[2],
        FieldData::Bag {
            ids: vec![3, 0, 1],
            offsets: vec![0, 2, 2, 3]
        }
    );
    // GAUC groups keep unseen users distinct even though both map to OOV.
    assert_eq!(d.user_group, vec![0, 1, 2]);
    assert_eq!(d.user_ids, ["d", "zz", ""]);
}

#[test]
fn min_count_and_max_size() {
    let s = tiny_schema("min_count = 2\n");
    let train = tiny_log(
        &["a"; 6],
        &["p", "q", "q", "r", "r", "r"],
        &[&[] as &[&str]; 6],
    );
    let v = Vocabularies::build(&s, &train).unwrap();
    assert_eq!(
        v.get("i").unwrap().tokens(),
        ["r", "q"],
        "p seen once is dropped"
    );
    assert_eq!(v.get("i").unwrap().index("p"), OOV);

    let s = tiny_schema("max_size = 1\n");
    let v = Vocabularies::build(&s, &train).unwrap();
    assert_eq!(v.get("i").unwrap().tokens(), ["r"]);
    assert_eq!(v.table_size("i"), Some(2));
    assert_eq!(v.get("i").unwrap().index("q"), OOV);
}

#[test]
fn hashing_is_stable_in_range_and_spreads() {
    let s = tiny_schema("hash_buckets = 64\n");
    let train = tiny_log(&["a"], &["x"], &[&[]]);
    let v = Vocabularies::build(&s, &train).unwrap();
    let h = v.get("i").unwrap();
    assert_eq!(h.len(), 65);
    assert_eq!(h.hash_buckets(), Some(64));
    assert_eq!(h.index(""), OOV);
    let mut hits = vec![0usize; 65];
    for k in 0..6400 {
        let idx = h.index(&format!("item-{k}"));
        assert!((1..=64).contains(&idx));
        assert_eq!(idx, h.index(&format!("item-{k}")), "deterministic");
        hits[idx as usize] += 1;
    }
    // 100 expected per bucket: a sane hash keeps every bucket within a wide band.
    assert!(
        hits[1..].iter().all(|&c| (50..=160).contains(&c)),
        "{hits:?}"
    );
    // The hash is a fixed function: these values must never change between versions.
    assert_eq!(
        dmtl_data::vocab::token_hash(""),
        dmtl_data::vocab::token_hash("")
    );
    assert_ne!(
        dmtl_data::vocab::token_hash("a"),
        dmtl_data::vocab::token_hash("b")
    );
}

#[test]
fn save_load_round_trip_and_check_against() {
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let v = Vocabularies::build(&s, &log(500, 4)).unwrap();
    let p = dir.path().join("vocab.json");
    v.save(&p).unwrap();
    let back = Vocabularies::load(&p).unwrap();
    assert_eq!(back, v);
    back.check_against(&s).unwrap();
    assert_eq!(back.len(), 6, "6 non-dense columns");
    for voc in v.iter() {
        for (k, t) in voc.tokens().iter().enumerate() {
            assert_eq!(back.get(voc.column()).unwrap().index(t), k as u32 + 1);
        }
    }

    // A schema with another column, or a hashed column, does not fit.
    let other = tiny_schema("");
    let t = back.check_against(&other).unwrap_err().to_string();
    assert!(
        t.contains("vocabulary")
            && t.contains("no vocabulary for the schema's categorical column `u`"),
        "{t}"
    );
    let mut hashed = s.clone();
    hashed.columns[4].hash_buckets = Some(10);
    let t = back.check_against(&hashed).unwrap_err().to_string();
    assert!(t.contains("column `item_id`: vocabulary hashing None differs from the schema's hash_buckets Some(10)"), "{t}");
    // Encoding with mismatched vocabularies fails instead of producing wrong ids.
    assert!(Dataset::encode(&hashed, &log(5, 1), &back).is_err());

    std::fs::write(&p, "{\"format\": 9, \"columns\": []}").unwrap();
    let t = Vocabularies::load(&p).unwrap_err().to_string();
    assert!(
        t.contains("vocab.json: format version 9 is not supported"),
        "{t}"
    );
    std::fs::write(&p, "not json").unwrap();
    let t = Vocabularies::load(&p).unwrap_err().to_string();
    assert!(t.contains("vocab.json: not a vocabulary file"), "{t}");
}

#[test]
fn vocabulary_sees_only_training_rows() {
    let s = schema();
    let l = log(2000, 9);
    let (train, test) = split_train_test(&l, &s, 0).unwrap();
    let v = Vocabularies::build(&s, &train).unwrap();
    let Some(RawColumn::Categorical(test_items)) = test.column("item_id") else {
        panic!()
    };
    let Some(RawColumn::Categorical(train_items)) = train.column("item_id") else {
        panic!()
    };
    let d = Dataset::encode(&s, &test, &v).unwrap();
    let FieldData::Ids(ids) = &d.fields[4] else {
        panic!()
    };
    for (t, &id) in test_items.iter().zip(ids) {
        assert_eq!(id == OOV, !train_items.contains(t), "{t}");
    }
}
