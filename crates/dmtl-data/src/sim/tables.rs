//! The simulator's tables: impressions, items and users as [`RawLog`] columns of strings, the
//! schema that describes them, and writing them to files.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::DataError;
use crate::raw::{RawColumn, RawLog, StrColumn};
use crate::schema::Schema;

use super::{SimConfig, Simulator};

/// Paths of the files [`Simulator::write`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFiles {
    /// The impression log (`log.csv` or `log.parquet`).
    pub log: PathBuf,
    /// The schema of the log (`schema.toml`).
    pub schema: PathBuf,
    /// Every item of the corpus with its item-side columns (`items.csv` / `items.parquet`).
    pub items: PathBuf,
    /// Every user with the user-side columns and a typical context (`users.csv` / `users.parquet`).
    pub users: PathBuf,
}

/// String forms of every categorical value, made once.
#[derive(Debug)]
pub(super) struct Names {
    age: Vec<String>,
    gender: Vec<String>,
    city: Vec<String>,
    user_tag: Vec<String>,
    hour: Vec<String>,
    network: Vec<String>,
    category: Vec<String>,
    sub_category: Vec<String>,
    author: Vec<String>,
    item_tag: Vec<String>,
    length: Vec<String>,
}

impl Names {
    pub(super) fn new(c: &SimConfig) -> Names {
        let fixed_or = |fixed: &[&str], n: usize, prefix: &str| -> Vec<String> {
            (0..n)
                .map(|k| match fixed.get(k) {
                    Some(s) if n <= fixed.len() => s.to_string(),
                    _ => format!("{prefix}{k}"),
                })
                .collect()
        };
        let numbered = |n: usize, prefix: &str| (0..n).map(|k| format!("{prefix}{k}")).collect();
        let ages = [
            "<18", "18-24", "25-29", "30-34", "35-39", "40-49", "50-59", "60+",
        ];
        let age = if c.n_age == ages.len() {
            ages.iter().map(|s| s.to_string()).collect()
        } else {
            numbered(c.n_age, "age")
        };
        Names {
            age,
            gender: fixed_or(&["f", "m", "u"], c.n_gender, "g"),
            city: numbered(c.n_city, "c"),
            user_tag: numbered(c.n_user_tags, "t"),
            hour: numbered(c.n_hour, ""),
            network: fixed_or(&["wifi", "4g", "5g", "3g"], c.n_network, "net"),
            category: numbered(c.n_category, "cat"),
            sub_category: numbered(c.n_sub_category, "sub"),
            author: numbered(c.n_author, "a"),
            item_tag: numbered(c.n_item_tags, "t"),
            length: numbered(c.n_length_bucket, ""),
        }
    }
}

impl Simulator {
    /// The impression log: `n_impressions` rows in day order with feature columns `user_id`,
    /// `age`, `gender`, `city`, `user_tags`, `hour`, `network`, `item_id`, `category`,
    /// `sub_category`, `author`, `item_tags`, `length_bucket` (in that order), the `click` and
    /// `duration` labels and `time` = day. Generated in parallel from per-block seeded streams,
    /// so the output depends on the configuration only.
    pub fn impressions(&self) -> RawLog {
        let rows = self.impression_rows();
        let users: Vec<u32> = rows.iter().map(|r| r.user).collect();
        let items: Vec<u32> = rows.iter().map(|r| r.item).collect();
        let hours: Vec<u16> = rows.iter().map(|r| r.hour).collect();
        let networks: Vec<u16> = rows.iter().map(|r| r.network).collect();
        let ((mut columns, context), item_cols) = rayon::join(
            || {
                rayon::join(
                    || self.user_columns(&users),
                    || self.context_columns(&hours, &networks),
                )
            },
            || self.item_columns(&items),
        );
        columns.extend(context);
        columns.extend(item_cols);
        RawLog {
            source: "simulator".to_string(),
            columns,
            click: Some(rows.iter().map(|r| f32::from(u8::from(r.click))).collect()),
            duration: Some(rows.iter().map(|r| r.duration).collect()),
            time: Some(rows.iter().map(|r| r.day as i64).collect()),
            n_rows: rows.len(),
        }
    }

    /// Every item of the corpus once, in index order, with the item-side columns (`item_id`,
    /// `category`, `sub_category`, `author`, `item_tags`, `length_bucket`) and no labels.
    pub fn item_table(&self) -> RawLog {
        let items: Vec<u32> = (0..self.cfg.n_items as u32).collect();
        RawLog {
            source: "simulator items".to_string(),
            columns: self.item_columns(&items),
            click: None,
            duration: None,
            time: None,
            n_rows: items.len(),
        }
    }

    /// The given users, one row each, with the user-side columns (`user_id`, `age`, `gender`,
    /// `city`, `user_tags`) and the user's typical context (`hour`: preferred hour, `network`:
    /// home network); no labels. This is the query side of retrieval.
    ///
    /// # Panics
    /// When an index is `>= n_users()`.
    pub fn user_table(&self, users: &[usize]) -> RawLog {
        let ids: Vec<u32> = users.iter().map(|&u| u as u32).collect();
        let hours: Vec<u16> = users.iter().map(|&u| self.user_hour[u]).collect();
        let networks: Vec<u16> = users.iter().map(|&u| self.user_network[u]).collect();
        let mut columns = self.user_columns(&ids);
        columns.extend(self.context_columns(&hours, &networks));
        RawLog {
            source: "simulator users".to_string(),
            columns,
            click: None,
            duration: None,
            time: None,
            n_rows: users.len(),
        }
    }

    fn user_columns(&self, users: &[u32]) -> Vec<(String, RawColumn)> {
        let n = &self.names;
        vec![
            ("user_id".into(), cat(users, |u| self.user_id(u as usize))),
            (
                "age".into(),
                cat(users, |u| n.age[self.user_age[u as usize] as usize].clone()),
            ),
            (
                "gender".into(),
                cat(users, |u| {
                    n.gender[self.user_gender[u as usize] as usize].clone()
                }),
            ),
            (
                "city".into(),
                cat(users, |u| {
                    n.city[self.user_city[u as usize] as usize].clone()
                }),
            ),
            (
                "user_tags".into(),
                multi_hot(users, &self.user_tags, &n.user_tag),
            ),
        ]
    }

    fn context_columns(&self, hours: &[u16], networks: &[u16]) -> Vec<(String, RawColumn)> {
        let n = &self.names;
        vec![
            ("hour".into(), cat(hours, |h| n.hour[h as usize].clone())),
            (
                "network".into(),
                cat(networks, |k| n.network[k as usize].clone()),
            ),
        ]
    }

    fn item_columns(&self, items: &[u32]) -> Vec<(String, RawColumn)> {
        let n = &self.names;
        let at = |i: u32| i as usize;
        vec![
            ("item_id".into(), cat(items, |i| self.item_id(at(i)))),
            (
                "category".into(),
                cat(items, |i| {
                    n.category[self.item_category[at(i)] as usize].clone()
                }),
            ),
            (
                "sub_category".into(),
                cat(items, |i| {
                    n.sub_category[self.item_sub_category[at(i)] as usize].clone()
                }),
            ),
            (
                "author".into(),
                cat(items, |i| {
                    n.author[self.item_author[at(i)] as usize].clone()
                }),
            ),
            (
                "item_tags".into(),
                multi_hot(items, &self.item_tags, &n.item_tag),
            ),
            (
                "length_bucket".into(),
                cat(items, |i| {
                    n.length[self.item_length[at(i)] as usize].clone()
                }),
            ),
        ]
    }

    /// The schema file (TOML) describing [`Simulator::impressions`]: labels, ids, the time split
    /// (the last sixth of the days is the test set), the embedding dimension and one
    /// `[[columns]]` entry per feature column with its side and kind.
    pub fn schema_toml(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "long_read_threshold = {:?}\n\n",
            self.cfg.long_read_threshold
        ));
        s.push_str("[labels]\nclick = \"click\"\nduration = \"duration\"\n\n");
        s.push_str("[ids]\nuser = \"user_id\"\nitem = \"item_id\"\n\n");
        s.push_str(&format!(
            "[split]\ntime_column = \"day\"\ntest_from = {}\n\n",
            self.cfg.test_from()
        ));
        s.push_str(&format!(
            "[defaults]\nembedding_dim = {}\n",
            self.cfg.embedding_dim
        ));
        for (name, side, multi) in COLUMNS {
            s.push_str(&format!(
                "\n[[columns]]\nname = \"{name}\"\nside = \"{side}\"\n"
            ));
            if multi {
                s.push_str("kind = \"multi_hot\"\nseparator = \"|\"\n");
            } else {
                s.push_str("kind = \"categorical\"\n");
            }
        }
        s
    }

    /// Writes the impression log, its `schema.toml`, the item table (the whole corpus) and the
    /// user table (every user with a typical context) into `dir`, creating it if needed: as
    /// `log.csv`, `items.csv`, `users.csv` ([`crate::write_csv`]), or with `parquet = true` as
    /// `log.parquet`, `items.parquet`, `users.parquet` ([`crate::write_parquet`]). Every file is
    /// written to a temporary file and renamed into place; errors name the file.
    pub fn write(&self, dir: &Path, parquet: bool) -> std::io::Result<SimFiles> {
        std::fs::create_dir_all(dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        let text = self.schema_toml();
        let schema = Schema::from_toml_str(&text, "simulator schema").map_err(to_io)?;
        let ext = if parquet { "parquet" } else { "csv" };
        let files = SimFiles {
            log: dir.join(format!("log.{ext}")),
            schema: dir.join("schema.toml"),
            items: dir.join(format!("items.{ext}")),
            users: dir.join(format!("users.{ext}")),
        };
        let put = |log: &RawLog, path: &Path| {
            if parquet {
                crate::write_parquet(log, &schema, path)
            } else {
                crate::write_csv(log, &schema, path)
            }
            .map_err(to_io)
        };
        crate::atomic::write_atomic(&files.schema, |w| w.write_all(text.as_bytes()))
            .map_err(to_io)?;
        put(&self.item_table(), &files.items)?;
        let all: Vec<usize> = (0..self.cfg.n_users).collect();
        put(&self.user_table(&all), &files.users)?;
        put(&self.impressions(), &files.log)?;
        Ok(files)
    }
}

/// An I/O error carrying the data error's message (which names the file).
fn to_io(e: DataError) -> std::io::Error {
    let kind = match &e {
        DataError::Io { source, .. } => source.kind(),
        _ => std::io::ErrorKind::InvalidData,
    };
    std::io::Error::new(kind, e.to_string())
}

/// Feature columns of the log: name, side, multi-hot.
const COLUMNS: [(&str, &str, bool); 13] = [
    ("user_id", "user", false),
    ("age", "user", false),
    ("gender", "user", false),
    ("city", "user", false),
    ("user_tags", "user", true),
    ("hour", "context", false),
    ("network", "context", false),
    ("item_id", "item", false),
    ("category", "item", false),
    ("sub_category", "item", false),
    ("author", "item", false),
    ("item_tags", "item", true),
    ("length_bucket", "item", false),
];

/// Rows per parallel part of a simulated string column.
const PART_ROWS: usize = 4096;

/// A categorical column built in parallel from per-row keys.
fn cat<K: Copy + Send + Sync>(keys: &[K], name: impl Fn(K) -> String + Sync + Send) -> RawColumn {
    let parts: Vec<StrColumn> = keys
        .par_chunks(PART_ROWS)
        .map(|ks| ks.iter().map(|&k| name(k)).collect())
        .collect();
    RawColumn::Categorical(join_parts(parts))
}

/// The values of `parts`, in order, in one column.
fn join_parts(parts: Vec<StrColumn>) -> StrColumn {
    let (n, bytes) = parts
        .iter()
        .fold((0, 0), |(n, b), p| (n + p.len(), b + p.byte_len()));
    let mut out = StrColumn::with_capacity(n, bytes);
    for p in &parts {
        out.append(p);
    }
    out
}

/// A multi-hot column: row `r` holds the bag `bags[keys[r]]`, spelled by `names`.
fn multi_hot(keys: &[u32], bags: &[Vec<u32>], names: &[String]) -> RawColumn {
    let mut offsets = Vec::with_capacity(keys.len() + 1);
    offsets.push(0);
    let mut total = 0;
    for &k in keys {
        total += bags[k as usize].len();
        offsets.push(total);
    }
    let parts: Vec<StrColumn> = keys
        .par_chunks(PART_ROWS)
        .map(|ks| {
            ks.iter()
                .flat_map(|&k| bags[k as usize].iter().map(|&g| &names[g as usize]))
                .collect()
        })
        .collect();
    let tokens = join_parts(parts);
    RawColumn::MultiHot { tokens, offsets }
}
