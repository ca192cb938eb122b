//! Helpers shared by the tests that run the real `dmtl` binary: running it, snapshots of
//! folders, and the check that a command failed cleanly.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dmtl_data::sim::SimConfig;

pub const BIN: &str = env!("CARGO_BIN_EXE_dmtl");

/// Runs `dmtl --quiet --threads 1 ARGS` in the current folder.
pub fn dmtl(args: &[String]) -> Output {
    dmtl_in(None, args)
}

/// Runs `dmtl --quiet --threads 1 ARGS` in `cwd` (or the current folder).
pub fn dmtl_in(cwd: Option<&Path>, args: &[String]) -> Output {
    let mut c = Command::new(BIN);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    c.args(["--quiet", "--threads", "1"])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the dmtl binary runs")
}

/// The path as an argument.
pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Owned arguments.
pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

/// Every file under `p` (or `p` itself) with its bytes; an absent path is an empty map.
pub fn snapshot(p: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(p: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        if p.is_dir() {
            out.insert(p.join(""), Vec::new());
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), out);
            }
        } else if p.exists() {
            out.insert(p.to_path_buf(), std::fs::read(p).unwrap());
        }
    }
    walk(p, &mut out);
    out
}

/// Runs `args` in `cwd` (or the current folder), expecting a clean failure; returns what went
/// wrong, if anything.
///
/// `phrases` must all appear in the one `error:` line of stderr; every path of `watched` keeps
/// its bytes; `fresh` paths are not created.
pub fn expect_failure_in(
    cwd: Option<&Path>,
    name: &str,
    args: &[String],
    phrases: &[&str],
    watched: &[&PathBuf],
    fresh: &[&PathBuf],
) -> Vec<String> {
    let before: Vec<_> = watched.iter().map(|p| snapshot(p)).collect();
    let out = dmtl_in(cwd, args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let mut problems = Vec::new();
    let mut fail = |what: String| problems.push(format!("[{name}] {what}\n  stderr: {stderr}"));
    if out.status.success() {
        fail("exit code 0".into());
    }
    if stderr.contains("panicked at") {
        fail("panicked".into());
    }
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    if errors.len() != 1 {
        fail(format!("{} `error:` lines, expected one", errors.len()));
    } else {
        for p in phrases {
            if !errors[0].contains(p) {
                fail(format!("the error does not say `{p}`"));
            }
        }
    }
    for (p, b) in watched.iter().zip(before) {
        if snapshot(p) != b {
            fail(format!("{} changed", p.display()));
        }
    }
    for p in fresh {
        if p.exists() {
            fail(format!("{} was created", p.display()));
        }
    }
    problems
}

/// Copies the folder `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A small simulated feed: 200 users, 300 items, 4,000 impressions over 6 days.
pub fn small_sim() -> SimConfig {
    SimConfig {
        n_users: 200,
        n_items: 300,
        n_impressions: 4_000,
        n_days: 6,
        n_author: 40,
        seed: 9,
        ..SimConfig::tiny()
    }
}

/// The sections of a run config over a small teacher and small towers, each replaceable by a
/// case; [`Cfg::tiny`] is one epoch of each model.
#[derive(Clone)]
pub struct Cfg {
    /// `stages.models`, a TOML array.
    pub models: String,
    /// `data.schema`.
    pub schema: PathBuf,
    /// `data.log`.
    pub log: PathBuf,
    /// `data.items`.
    pub items: PathBuf,
    /// More lines of `[data]`.
    pub data_extra: String,
    /// The lines of `[teacher.train]`.
    pub teacher_train: String,
    /// The lines of `[student.train]`.
    pub student_train: String,
    /// The lines of `[eval]`.
    pub eval: String,
}

impl Cfg {
    /// The files `schema.toml`, `log.csv` and `items.csv` in `data` (as given: empty,
    /// relative or absolute), the DMTL student only, one epoch of 512-row batches for each
    /// model, K = 10 over 40 users.
    pub fn tiny(data: &Path) -> Cfg {
        Cfg {
            models: r#"["dmtl"]"#.into(),
            schema: data.join("schema.toml"),
            log: data.join("log.csv"),
            items: data.join("items.csv"),
            data_extra: String::new(),
            teacher_train: "epochs = 1\nbatch_size = 512\n".into(),
            student_train: "epochs = 1\nbatch_size = 512\n".into(),
            eval: "k = 10\nretrieval_users = 40\n".into(),
        }
    }

    /// The config as TOML.
    pub fn text(&self) -> String {
        format!(
            r#"[data]
schema = "{}"
log = "{}"
items = "{}"
{}
[stages]
models = {}

[teacher]
n_experts = 2
expert_hidden = [16]
tower_hidden = [8]

[teacher.train]
{}
[student]
user_layers = [16, 8]
item_layers = [16, 8]

[student.train]
{}
[eval]
{}"#,
            s(&self.schema),
            s(&self.log),
            s(&self.items),
            self.data_extra,
            self.models,
            self.teacher_train,
            self.student_train,
            self.eval
        )
    }

    /// Writes the config to `p`; returns `p`.
    pub fn write(&self, p: &Path) -> PathBuf {
        std::fs::write(p, self.text()).unwrap();
        p.to_path_buf()
    }
}

/// `metrics.json` of `run` without the fields that measure wall-clock time (on several ranks,
/// the time spent exchanging gradients too).
pub fn metrics_without_clock(run: &Path) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for k in [
                    "wall_seconds",
                    "train_seconds",
                    "impressions_per_second",
                    "comm_seconds",
                ] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(run.join("metrics.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    strip(&mut v);
    v
}
