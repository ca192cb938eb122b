//! dmtl and its PyTorch twin timed the same way and in turn: `reference` (the dmtl side, from
//! `benches/src/bin/reference.rs`) and `benches/anchors/torch_reference.py` each wait for a
//! quiet machine, warm up and keep only the timed windows in which no other process used the
//! CPU; the two run alternately, dmtl then PyTorch, round after round, so that a drift of the
//! machine's speed touches both sides alike.
//!
//! Each run's JSON line is kept (`<target>/dmtl-bench/alternate/<key>.{dmtl,twin}.jsonl`, one
//! line per round), so the table can be printed again without measuring.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bench::json_number;

/// One figure timed alternately: the task both sides run and the twin's own options.
pub struct Pair {
    /// File name of its results, and the name `--only` selects it by.
    pub key: &'static str,
    /// Arguments both sides take (`--task ...`).
    pub task: &'static [&'static str],
    /// Arguments only the twin takes.
    pub twin_only: &'static [&'static str],
}

/// The figures with a PyTorch twin.
pub const PAIRS: &[Pair] = &[
    Pair {
        key: "teacher_train",
        task: &["--task", "teacher_train"],
        twin_only: &["--emb", "dense", "--fused"],
    },
    Pair {
        key: "student_train",
        task: &["--task", "student_train"],
        twin_only: &["--emb", "dense", "--fused"],
    },
    Pair {
        key: "teacher_train_bf16",
        task: &["--task", "teacher_train", "--bf16"],
        twin_only: &["--emb", "dense", "--fused"],
    },
    Pair {
        key: "student_train_bf16",
        task: &["--task", "student_train", "--bf16"],
        twin_only: &["--emb", "dense", "--fused"],
    },
    Pair {
        key: "teacher_infer",
        task: &["--task", "teacher_infer"],
        twin_only: &[],
    },
    Pair {
        key: "user_tower_infer",
        task: &["--task", "user_tower_infer"],
        twin_only: &[],
    },
    Pair {
        key: "user_tower_infer_bf16",
        task: &["--task", "user_tower_infer", "--bf16"],
        twin_only: &[],
    },
];

/// How the alternating runs go.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Rounds of (dmtl, twin).
    pub rounds: usize,
    /// Clean windows each run collects.
    pub windows: usize,
    /// Longest wait for a quiet machine before each run, seconds.
    pub wait_quiet_s: u32,
    /// Thread count of both sides.
    pub threads: usize,
}

fn results_dir(target: &Path) -> PathBuf {
    target.join("dmtl-bench/alternate")
}

fn results_file(target: &Path, key: &str, side: Side) -> PathBuf {
    results_dir(target).join(format!("{key}.{}.jsonl", side.name()))
}

/// One side of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The dmtl `reference` binary.
    Dmtl,
    /// The PyTorch twin.
    Twin,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Dmtl => "dmtl",
            Side::Twin => "twin",
        }
    }
}

/// Builds the dmtl side (release) and returns its executable, or `None` with a message.
fn build_reference(root: &Path, target: &Path) -> Option<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "dmtl-benches",
            "--bin",
            "reference",
        ])
        .status();
    match status {
        Ok(s) if s.success() => Some(target.join("release/reference")),
        other => {
            eprintln!("xtask: could not build the reference binary ({other:?})");
            None
        }
    }
}

/// Runs one side once and returns its JSON line.
fn run_once(root: &Path, exe: &Path, pair: &Pair, side: Side, plan: &Plan) -> Option<String> {
    let common = [
        "--threads".to_string(),
        plan.threads.to_string(),
        "--windows".into(),
        plan.windows.to_string(),
        "--wait_quiet_s".into(),
        plan.wait_quiet_s.to_string(),
    ];
    let mut c = match side {
        Side::Dmtl => Command::new(exe),
        Side::Twin => {
            let mut c = Command::new("python3");
            c.arg(root.join("benches/anchors/torch_reference.py"));
            c.args(pair.twin_only);
            c
        }
    };
    c.current_dir(root).args(pair.task).args(common);
    let out = match c.output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xtask: could not start the {} side: {e}", side.name());
            return None;
        }
    };
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("\"imps_per_s_median\""))
        .map(str::to_string);
    if line.is_none() {
        eprintln!(
            "xtask: the {} side of {} printed no result ({}): {}",
            side.name(),
            pair.key,
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    line
}

/// Times every pair of `keys` (all when empty) in `plan.rounds` alternating rounds and stores
/// the lines. Without PyTorch only the dmtl side runs.
pub fn run(root: &Path, target: &Path, plan: &Plan, keys: &[String], with_twin: bool) {
    let Some(exe) = build_reference(root, target) else {
        return;
    };
    if let Err(e) = std::fs::create_dir_all(results_dir(target)) {
        eprintln!(
            "xtask: could not create {}: {e}",
            results_dir(target).display()
        );
        return;
    }
    for pair in PAIRS
        .iter()
        .filter(|p| keys.is_empty() || keys.iter().any(|k| k == p.key))
    {
        let mut lines = (Vec::new(), Vec::new());
        for round in 0..plan.rounds {
            for side in [Side::Dmtl, Side::Twin] {
                if side == Side::Twin && !with_twin {
                    continue;
                }
                let Some(line) = run_once(root, &exe, pair, side, plan) else {
                    continue;
                };
                eprintln!("{} round {} {}: {line}", pair.key, round + 1, side.name());
                match side {
                    Side::Dmtl => lines.0.push(line),
                    Side::Twin => lines.1.push(line),
                }
            }
        }
        for (side, lines) in [(Side::Dmtl, lines.0), (Side::Twin, lines.1)] {
            let path = results_file(target, pair.key, side);
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("xtask: could not store {}: {e}", path.display());
            }
        }
    }
}

/// The stored rounds of one side of a pair.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideResult {
    /// Every clean window's rate, all rounds pooled.
    pub windows: Vec<f64>,
    /// Each round's median.
    pub round_medians: Vec<f64>,
    /// Windows timed in all, clean or not.
    pub all_windows: usize,
    /// Of those, the clean ones.
    pub clean_windows: usize,
}

impl SideResult {
    /// Parses one side's stored lines (one JSON object per round).
    pub fn parse(text: &str) -> SideResult {
        let mut r = SideResult::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let clean = json_numbers(line, "clean_rates");
            if let Some(m) = json_number(line, "imps_per_s_median") {
                r.round_medians.push(m);
                // A run without clean windows counts with its median over all windows.
                if clean.is_empty() {
                    r.windows.push(m);
                }
            }
            r.clean_windows += clean.len();
            r.windows.extend(clean);
            r.all_windows += json_number(line, "all_windows").unwrap_or(0.0) as usize;
        }
        r
    }

    /// Reads one side of `key` from the last run; `None` when nothing is stored.
    pub fn load(target: &Path, key: &str, side: Side) -> Option<SideResult> {
        let text = std::fs::read_to_string(results_file(target, key, side)).ok()?;
        let r = SideResult::parse(&text);
        (!r.round_medians.is_empty()).then_some(r)
    }

    /// Median of the pooled windows.
    pub fn median(&self) -> f64 {
        median(&self.windows)
    }

    /// Smallest and largest pooled window.
    pub fn range(&self) -> (f64, f64) {
        let lo = self.windows.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self
            .windows
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    }
}

/// The ratio of the pooled medians, and the smallest and largest ratio of one round's medians
/// (dmtl's round `i` against the twin's round `i`, which ran right after it).
pub fn ratio(dmtl: &SideResult, twin: &SideResult) -> (f64, f64, f64) {
    let per_round: Vec<f64> = dmtl
        .round_medians
        .iter()
        .zip(&twin.round_medians)
        .map(|(a, b)| a / b)
        .collect();
    let lo = per_round.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (dmtl.median() / twin.median(), lo, hi)
}

/// The numbers of the array after `"key": ` in a one-line JSON object (empty when absent).
fn json_numbers(line: &str, key: &str) -> Vec<f64> {
    let pat = format!("\"{key}\": [");
    let Some(start) = line.find(&pat).map(|i| i + pat.len()) else {
        return Vec::new();
    };
    let rest = &line[start..];
    rest[..rest.find(']').unwrap_or(rest.len())]
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect()
}

/// Median (mean of the middle two for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_pool_clean_windows_and_fall_back_to_the_median() {
        let text =
            "{\"imps_per_s_median\": 20, \"all_windows\": 4, \"clean_rates\": [10, 20, 30]}\n\
                    {\"imps_per_s_median\": 7, \"all_windows\": 5, \"clean_rates\": []}\n";
        let r = SideResult::parse(text);
        assert_eq!(r.windows, vec![10.0, 20.0, 30.0, 7.0]);
        assert_eq!(r.round_medians, vec![20.0, 7.0]);
        assert_eq!(r.all_windows, 9);
        assert_eq!(r.clean_windows, 3);
        assert_eq!(r.median(), 15.0);
        assert_eq!(r.range(), (7.0, 30.0));
    }

    #[test]
    fn ratio_spread_is_over_paired_rounds() {
        let a = SideResult {
            windows: vec![100.0, 120.0],
            round_medians: vec![100.0, 120.0],
            all_windows: 2,
            clean_windows: 2,
        };
        let b = SideResult {
            windows: vec![50.0, 80.0],
            round_medians: vec![50.0, 80.0],
            all_windows: 2,
            clean_windows: 2,
        };
        let (r, lo, hi) = ratio(&a, &b);
        assert!((r - 110.0 / 65.0).abs() < 1e-12);
        assert_eq!((lo, hi), (1.5, 2.0));
    }
}
