//! A tiny trained run folder and its user and log tables, made once per test binary, and the
//! JSON requests of its rows.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dmtl_data::sim::SimConfig;
use dmtl_data::{read_log, RawColumn, RawLog, ReadOptions, Schema, Side, StrColumn};
use dmtl_runner::commands;
use dmtl_runner::progress::Progress;
use serde_json::{json, Map, Value};

/// The run folder and the tables made from it.
pub struct Fixture {
    /// Keeps the folder alive.
    _tmp: tempfile::TempDir,
    /// The run folder (models `dmtl` and `b1`).
    pub run: PathBuf,
    /// The run's schema.
    pub schema: Schema,
    /// Users to query (user and context columns), the last with a user id unseen in training.
    pub users: RawLog,
    /// `users` as a CSV file, for `dmtl retrieve`.
    pub users_csv: PathBuf,
    /// A log of (user, item) pairs, for `dmtl score`.
    pub log_csv: PathBuf,
    /// The pairs of `log_csv`: user row in `users`, raw item id.
    pub pairs: Vec<(usize, String)>,
}

/// Users queried.
pub const N_USERS: usize = 12;
/// Items scored per user.
pub const N_PAIRS: usize = 5;
/// The user id no training row has.
pub const UNSEEN: &str = "never-seen-user";

fn build() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sim = SimConfig {
        n_users: 300,
        n_items: 400,
        n_impressions: 12_000,
        n_days: 6,
        n_author: 50,
        seed: 5,
        ..SimConfig::tiny()
    };
    commands::simulate(&data, sim, false).unwrap();
    let cfg = tmp.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[data]
schema = "{d}/schema.toml"
log = "{d}/log.csv"
items = "{d}/items.csv"
[stages]
models = ["dmtl", "b1"]
[teacher]
n_experts = 2
expert_hidden = [16]
tower_hidden = [8]
[teacher.train]
epochs = 1
batch_size = 512
[student]
user_layers = [16, 8]
item_layers = [16, 8]
[student.train]
epochs = 1
batch_size = 512
[eval]
k = 10
retrieval_users = 20
"#,
            d = data.display()
        ),
    )
    .unwrap();
    let (run, _) =
        commands::train(&cfg, Some(&tmp.path().join("run")), &Progress::new(true)).unwrap();
    let schema = Schema::load(run.join("schema.toml")).unwrap();
    let all = read_log(
        run.join("users.parquet"),
        &schema,
        &ReadOptions::table_of(&[Side::User, Side::Context]),
    )
    .unwrap();
    let mut users = all.take(&(0..N_USERS).collect::<Vec<_>>());
    rename_last_user(&mut users, &schema.ids.user);
    let users_csv = tmp.path().join("users.csv");
    dmtl_data::write_csv(&users, &schema, &users_csv).unwrap();
    let items = read_log(
        run.join("items.parquet"),
        &schema,
        &ReadOptions::table_of(&[Side::Item]),
    )
    .unwrap();
    let (mut urows, mut irows) = (Vec::new(), Vec::new());
    for u in 0..N_USERS {
        for j in 0..N_PAIRS {
            urows.push(u);
            irows.push((u * 31 + j * 17) % items.n_rows);
        }
    }
    let (lu, li) = (users.take(&urows), items.take(&irows));
    let mut columns = Vec::new();
    for spec in &schema.columns {
        let col = lu.column(&spec.name).or_else(|| li.column(&spec.name));
        columns.push((spec.name.clone(), col.unwrap().clone()));
    }
    let log = RawLog {
        source: "pairs".into(),
        columns,
        n_rows: urows.len(),
        ..RawLog::default()
    };
    let log_csv = tmp.path().join("pairs.csv");
    dmtl_data::write_csv(&log, &schema, &log_csv).unwrap();
    let Some(RawColumn::Categorical(ids)) = li.column(&schema.ids.item) else {
        panic!("item ids")
    };
    let pairs = urows
        .into_iter()
        .zip(ids.iter().map(str::to_string))
        .collect();
    Fixture {
        _tmp: tmp,
        run,
        schema,
        users,
        users_csv,
        log_csv,
        pairs,
    }
}

fn rename_last_user(users: &mut RawLog, id_col: &str) {
    for (name, col) in &mut users.columns {
        if name == id_col {
            let RawColumn::Categorical(v) = col else {
                panic!("user id column")
            };
            let mut renamed = StrColumn::new();
            for (i, s) in v.iter().enumerate() {
                renamed.push(if i + 1 == N_USERS { UNSEEN } else { s });
            }
            *v = renamed;
        }
    }
}

/// The fixture, built on first use.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(build)
}

/// The user side of row `r` as request fields: `user_id`, `features`, `context`.
pub fn user_fields(f: &Fixture, r: usize) -> Map<String, Value> {
    let (mut features, mut context) = (Map::new(), Map::new());
    let mut out = Map::new();
    for spec in &f.schema.columns {
        let Some(col) = f.users.column(&spec.name) else {
            continue;
        };
        let v = match col {
            RawColumn::Categorical(v) => json!(v.get(r).unwrap()),
            RawColumn::MultiHot { tokens, offsets } => {
                json!(tokens.range(offsets[r]..offsets[r + 1]).collect::<Vec<_>>())
            }
            RawColumn::Dense(v) => json!(v[r]),
        };
        if spec.name == f.schema.ids.user {
            out.insert("user_id".into(), v);
        } else if spec.side == Side::Context {
            context.insert(spec.name.clone(), v);
        } else {
            features.insert(spec.name.clone(), v);
        }
    }
    out.insert("features".into(), Value::Object(features));
    out.insert("context".into(), Value::Object(context));
    out
}

/// A `/retrieve` request for user row `r`.
pub fn retrieve_request(f: &Fixture, r: usize, k: usize) -> Value {
    let mut m = user_fields(f, r);
    m.insert("k".into(), json!(k));
    Value::Object(m)
}

/// The run folder's path as a string.
pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
