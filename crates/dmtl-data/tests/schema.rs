//! Schema parsing and validation: each mistake gets an error naming the file and the key.

mod common;

use dmtl_data::*;

const BASE: &str = r#"
[labels]
click = "click"
duration = "duration"
[ids]
user = "user_id"
item = "item_id"
[[columns]]
name = "user_id"
side = "user"
kind = "categorical"
[[columns]]
name = "item_id"
side = "item"
kind = "categorical"
"#;

fn err(text: &str) -> String {
    let e = Schema::from_toml_str(text, "s.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("schema s.toml: "), "{e}");
    e
}

fn with_column(extra: &str) -> String {
    format!("{BASE}[[columns]]\n{extra}\n")
}

#[test]
fn defaults_and_helpers() {
    let s = Schema::from_toml_str(
        &with_column("name = \"tags\"\nside = \"item\"\nkind = \"multi_hot\"\nembedding_dim = 8"),
        "s.toml",
    )
    .unwrap();
    assert_eq!(s.long_read_threshold, 50.0);
    assert_eq!(s.defaults.embedding_dim, 16);
    assert_eq!(s.embedding_dim(0), 16);
    assert_eq!(s.embedding_dim(2), 8);
    assert_eq!(s.columns[2].separator(), "|");
    assert_eq!(s.column_index("tags"), Some(2));
    assert_eq!(s.column_index("click"), None);
    let items: Vec<&str> = s.features(Side::Item).map(|c| c.name.as_str()).collect();
    assert_eq!(items, ["item_id", "tags"]);
    assert_eq!(s.feature_indices(Side::Item), vec![1, 2]);
    assert_eq!(s.features(Side::Context).count(), 0);
    assert_eq!((s.user_column(), s.item_column()), (0, 1));
    assert!(s.split.is_none());
}

#[test]
fn toml_round_trip_and_load() {
    let s = Schema::from_toml_str(common::SCHEMA, "x").unwrap();
    let text = s.to_toml_string();
    assert_eq!(Schema::from_toml_str(&text, "again").unwrap(), s);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("schema.toml");
    s.save(&p).unwrap();
    assert_eq!(Schema::load(&p).unwrap(), s);
    let e = Schema::load(dir.path().join("nope.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.toml") && e.contains("No such file"), "{e}");
    // Serde embedding uses the same file form.
    let v: Schema = toml::from_str(&text).unwrap();
    assert_eq!(v, s);
}

#[test]
fn unknown_side_and_kind() {
    let e = err(&with_column(
        "name = \"x\"\nside = \"usr\"\nkind = \"dense\"",
    ));
    assert!(e.contains("`columns[2].side`: unknown side \"usr\" of column \"x\"; expected one of user, item, context"), "{e}");
    let e = err(&with_column(
        "name = \"x\"\nside = \"user\"\nkind = \"float\"",
    ));
    assert!(e.contains("`columns[2].kind`: unknown kind \"float\" of column \"x\"; expected one of categorical, multi_hot, dense"), "{e}");
}

#[test]
fn unknown_keys_and_syntax() {
    let e = err(&with_column(
        "name = \"x\"\nside = \"user\"\nkind = \"dense\"\nsepartor = \",\"",
    ));
    assert!(e.contains("unknown field `separtor`"), "{e}");
    let e = err(&format!("treshold = 3\n{BASE}"));
    assert!(e.contains("unknown field `treshold`"), "{e}");
    let e = err("[labels\nclick=");
    assert!(e.contains("line 1"), "{e}");
    let e = err(&BASE.replace("[ids]\nuser = \"user_id\"\nitem = \"item_id\"\n", ""));
    assert!(e.contains("missing field `ids`"), "{e}");
}

#[test]
fn duplicate_column() {
    let e = err(&with_column(
        "name = \"user_id\"\nside = \"user\"\nkind = \"categorical\"",
    ));
    assert!(
        e.contains("`columns[2].name`: duplicate column \"user_id\""),
        "{e}"
    );
}

#[test]
fn label_or_time_as_feature_is_refused() {
    let e = err(&with_column(
        "name = \"duration\"\nside = \"item\"\nkind = \"dense\"",
    ));
    assert!(e.contains("`columns[2].name`: column \"duration\" is a label and cannot also be a feature (it would leak the label)"), "{e}");
    let e = err(&format!(
        "{}[split]\ntime_column = \"day\"\ntest_from = 3\n",
        with_column("name = \"day\"\nside = \"context\"\nkind = \"categorical\"")
    ));
    assert!(
        e.contains("`columns[2].name`: column \"day\" is the split's time column"),
        "{e}"
    );
}

#[test]
fn id_columns_must_be_categorical_of_their_side() {
    let e = err(&BASE.replace("user = \"user_id\"", "user = \"uid\""));
    assert!(
        e.contains(
            "`ids.user`: \"uid\" is not a feature column; expected a categorical user column"
        ),
        "{e}"
    );
    let e = err(&BASE.replace("item = \"item_id\"", "item = \"user_id\""));
    assert!(e.contains("`ids.item`: \"user_id\" is a categorical user column; expected a categorical item column"), "{e}");
    let text = BASE.replacen("kind = \"categorical\"", "kind = \"dense\"", 1);
    let e = err(&text);
    assert!(
        e.contains("`ids.user`: \"user_id\" is a dense user column"),
        "{e}"
    );
}

#[test]
fn threshold_and_options() {
    let e = err(&format!("long_read_threshold = -1.0\n{BASE}"));
    assert!(
        e.contains("`long_read_threshold`: expected a finite number of seconds >= 0, found -1"),
        "{e}"
    );
    let e = err(&with_column(
        "name = \"x\"\nside = \"user\"\nkind = \"categorical\"\nseparator = \",\"",
    ));
    assert!(e.contains("`columns[2].separator`: column \"x\" is categorical, only multi_hot columns take a separator"), "{e}");
    let e = err(&with_column(
        "name = \"x\"\nside = \"user\"\nkind = \"dense\"\nmin_count = 2",
    ));
    assert!(
        e.contains("`columns[2].min_count`: column \"x\" is dense"),
        "{e}"
    );
    let e = err(&with_column(
        "name = \"x\"\nside = \"user\"\nkind = \"multi_hot\"\nhash_buckets = 10\nmax_size = 3",
    ));
    assert!(
        e.contains("`columns[2].max_size`: column \"x\" is hashed"),
        "{e}"
    );
    let e = err(&with_column(
        "name = \"x\"\nside = \"user\"\nkind = \"categorical\"\nembedding_dim = 0",
    ));
    assert!(
        e.contains("`columns[2].embedding_dim`: expected a dimension >= 1, found 0"),
        "{e}"
    );
    let e = err(&BASE.replace("duration = \"duration\"", "duration = \"click\""));
    assert!(e.contains("`labels.duration`"), "{e}");
}

#[test]
fn split_settings() {
    let e = err(&format!("{BASE}[split]\ntest_from = 3\n"));
    assert!(
        e.contains("`split.time_column`: test_from needs a time_column"),
        "{e}"
    );
    let e = err(&format!("{BASE}[split]\ntime_column = \"day\"\n"));
    assert!(e.contains("`split.test_from`"), "{e}");
    let e = err(&format!("{BASE}[split]\ntest_fraction = 1.5\n"));
    assert!(
        e.contains(
            "`split.test_fraction`: expected a fraction strictly between 0 and 1, found 1.5"
        ),
        "{e}"
    );
    let e = err(&format!(
        "{BASE}[split]\ntime_column = \"click\"\ntest_from = 1\n"
    ));
    assert!(
        e.contains("`split.time_column`: \"click\" is a label column"),
        "{e}"
    );
    let ok = Schema::from_toml_str(&format!("{BASE}[split]\ntest_fraction = 0.2\n"), "s").unwrap();
    assert_eq!(ok.split.unwrap().test_fraction, Some(0.2));
}
