//! `cargo xtask bench`: one table of every figure of the reference workload beside its
//! PyTorch / Faiss / pandas twin measured in the same run, with the ratio, and the peak memory
//! of a teacher training run beside the PyTorch twin's.
//!
//! The figures with a PyTorch twin are timed by both sides the same way and in turn
//! ([`crate::alternate`]): clean windows on a quiet machine, dmtl and PyTorch alternating round
//! after round, medians and spreads of both. Retrieval and ingest come from their criterion
//! benchmarks, their Faiss and pandas twins run right after.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::alternate::{self, Side, SideResult};

/// One figure: a criterion benchmark id, its unit, and how to get its twin.
struct Figure {
    what: &'static str,
    /// `<group>/<function>` under target/criterion; figures timed in turn with a PyTorch twin
    /// ([`Twin::Torch`]) are not read from criterion (`"-"` where no criterion bench exists).
    criterion_id: &'static str,
    /// Items per iteration (impressions, queries or rows).
    per_iter: f64,
    unit: &'static str,
    twin: Twin,
    /// The target ratio from the performance goals.
    target: f64,
}

enum Twin {
    /// Timed in turn with the PyTorch twin: the key of its [`alternate::PAIRS`] entry and the
    /// twin's name.
    Torch(&'static str, &'static str),
    Faiss(u64),
    Pandas,
}

const FIGURES: &[Figure] = &[
    Figure {
        what: "teacher training step (MMoE+ESMM, batch 1024)",
        criterion_id: "teacher/train_step_mmoe_b1024",
        per_iter: 1024.0,
        unit: "imp/s",
        twin: Twin::Torch("teacher_train", "PyTorch"),
        target: 1.5,
    },
    Figure {
        what: "student distillation step (batch 1024)",
        criterion_id: "student/distillation_step_b1024",
        per_iter: 1024.0,
        unit: "imp/s",
        twin: Twin::Torch("student_train", "PyTorch"),
        target: 2.0,
    },
    Figure {
        what: "teacher training step, bf16 option (batch 1024)",
        criterion_id: "-",
        per_iter: 1024.0,
        unit: "imp/s",
        twin: Twin::Torch("teacher_train_bf16", "PyTorch (bf16 autocast)"),
        target: 1.5,
    },
    Figure {
        what: "student distillation step, bf16 option (batch 1024)",
        criterion_id: "-",
        per_iter: 1024.0,
        unit: "imp/s",
        twin: Twin::Torch("student_train_bf16", "PyTorch (bf16 autocast)"),
        target: 1.5,
    },
    Figure {
        what: "teacher scoring (16 batches of 1024)",
        criterion_id: "teacher/predict_16_batches_parallel_b1024",
        per_iter: 16384.0,
        unit: "imp/s",
        twin: Twin::Torch("teacher_infer", "PyTorch"),
        target: 1.3,
    },
    Figure {
        what: "user-tower inference (batch 1024)",
        criterion_id: "student/user_tower_inference_b1024",
        per_iter: 1024.0,
        unit: "imp/s",
        twin: Twin::Torch("user_tower_infer", "PyTorch"),
        target: 2.0,
    },
    Figure {
        what: "user-tower inference, bf16 option (batch 1024)",
        criterion_id: "student/user_tower_inference_bf16_b1024",
        per_iter: 1024.0,
        unit: "imp/s",
        twin: Twin::Torch("user_tower_infer_bf16", "PyTorch (bf16 autocast)"),
        target: 0.0,
    },
    Figure {
        what: "exact top-100, 200k items x 64",
        criterion_id: "retrieval_200000x64_k100/default",
        per_iter: 1024.0,
        unit: "q/s",
        twin: Twin::Faiss(200_000),
        target: 1.5,
    },
    Figure {
        what: "exact top-100, 1M items x 64",
        criterion_id: "retrieval_1000000x64_k100/default",
        per_iter: 1024.0,
        unit: "q/s",
        twin: Twin::Faiss(1_000_000),
        target: 1.5,
    },
    Figure {
        what: "CSV read, 200k rows",
        criterion_id: "ingest/csv_read",
        per_iter: 200_000.0,
        unit: "rows/s",
        twin: Twin::Pandas,
        target: 2.0,
    },
    Figure {
        what: "Parquet read, 200k rows",
        criterion_id: "ingest/parquet_read",
        per_iter: 200_000.0,
        unit: "rows/s",
        twin: Twin::Pandas,
        target: 0.0,
    },
];

/// The criterion benches `cargo xtask bench` runs, for the figures not timed in turn with a
/// twin: (package, bench target).
pub const BENCHES: &[(&str, &str)] = &[("dmtl-student", "retrieval"), ("dmtl-data", "ingest")];

/// Cargo's target directory: `CARGO_TARGET_DIR` when set (cargo then writes criterion's
/// results there too), else `target/` of the workspace.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root.join(d),
        _ => root.join("target"),
    }
}

/// Where the last peak-memory run's JSON line is kept, for `--summary-only`.
fn memory_result(root: &Path) -> PathBuf {
    target_dir(root).join("dmtl-memory/teacher_train.json")
}

/// Runs one teacher training run of the reference workload (release build, `threads` threads)
/// in its own process, so that its VmHWM is that run's alone, and stores its JSON line.
pub fn measure_memory(root: &Path, threads: usize) {
    let t = threads.to_string();
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "dmtl-teacher",
            "--example",
            "train_reference",
            "--",
            "--steps",
            "200",
            "--threads",
            &t,
        ])
        .stderr(std::process::Stdio::inherit())
        .output();
    let line = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.contains("\"peak_rss_mb\""))
            .map(str::to_string),
        Ok(o) => {
            eprintln!(
                "xtask: the teacher training run for peak memory failed ({})",
                o.status
            );
            None
        }
        Err(e) => {
            eprintln!("xtask: could not start cargo for the peak-memory run: {e}");
            None
        }
    };
    let Some(line) = line else { return };
    println!("{line}");
    let path = memory_result(root);
    let tmp = path.with_extension("json.tmp");
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, format!("{line}\n")))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        eprintln!("xtask: could not store {}: {e}", path.display());
    }
}

/// Median seconds per iteration of a criterion benchmark, from its `new/estimates.json`.
fn criterion_median(root: &Path, id: &str) -> Option<f64> {
    let text = std::fs::read_to_string(
        target_dir(root)
            .join("criterion")
            .join(id)
            .join("new/estimates.json"),
    )
    .ok()?;
    let after = &text[text.find("\"median\"")?..];
    let pe = &after[after.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = pe.find([',', '}'])?;
    pe[..end].trim().parse::<f64>().ok().map(|ns| ns * 1e-9)
}

/// The number after `"key":` in a one-line JSON object.
pub(crate) fn json_number(line: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\": ");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn python_lines(root: &Path, script: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new("python3")
        .arg(root.join(script))
        .args(args)
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        Ok(o) => {
            eprintln!(
                "xtask: {script} failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            Vec::new()
        }
        Err(e) => {
            eprintln!("xtask: could not run python3 {script}: {e}");
            Vec::new()
        }
    }
}

/// What `cargo xtask bench` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only print the table again from the stored results.
    pub summary_only: bool,
    /// Only these alternately timed figures (keys of [`alternate::PAIRS`]); no criterion run,
    /// no peak-memory run.
    pub only: Vec<String>,
    /// Rounds of (dmtl, twin).
    pub rounds: usize,
    /// Clean windows per run.
    pub windows: usize,
    /// Arguments passed on to criterion.
    pub criterion_args: Vec<String>,
}

impl Options {
    /// Parses `--summary-only`, `--only a,b`, `--rounds N`, `--windows N`; everything else goes
    /// to criterion.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            summary_only: false,
            only: Vec::new(),
            rounds: 3,
            windows: 7,
            criterion_args: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let count = |name: &str, v: String| {
                v.parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("{name} needs a whole number >= 1, not `{v}`"))
            };
            match a.as_str() {
                "--summary-only" => o.summary_only = true,
                "--only" => {
                    o.only = value("--only")?.split(',').map(str::to_string).collect();
                    if let Some(k) = o
                        .only
                        .iter()
                        .find(|k| !alternate::PAIRS.iter().any(|p| p.key == k.as_str()))
                    {
                        let keys: Vec<&str> = alternate::PAIRS.iter().map(|p| p.key).collect();
                        return Err(format!(
                            "--only: unknown figure `{k}` ({})",
                            keys.join(", ")
                        ));
                    }
                }
                "--rounds" => o.rounds = count("--rounds", value("--rounds")?)?,
                "--windows" => o.windows = count("--windows", value("--windows")?)?,
                _ => o.criterion_args.push(a.clone()),
            }
        }
        Ok(o)
    }
}

/// `cargo xtask bench [options]`: measures (unless `--summary-only`) and prints the table.
pub fn command(root: &Path, threads: usize, opts: &Options, cargo: impl Fn() -> Command) {
    if !opts.summary_only {
        if opts.only.is_empty() {
            for (package, target) in BENCHES {
                let mut c = cargo();
                c.args(["bench", "-p", package, "--bench", target, "--"]);
                c.args(["--warm-up-time", "2", "--measurement-time", "5"]);
                c.args(&opts.criterion_args);
                if !c.status().is_ok_and(|s| s.success()) {
                    eprintln!("xtask: `cargo bench -p {package} --bench {target}` failed");
                }
            }
            measure_memory(root, threads);
        }
        let plan = alternate::Plan {
            rounds: opts.rounds,
            windows: opts.windows,
            wait_quiet_s: 30,
            threads,
        };
        let with_twin = python_has("torch");
        if !with_twin {
            eprintln!("xtask: PyTorch is missing (`pip install torch`): timing the dmtl side only");
        }
        alternate::run(root, &target_dir(root), &plan, &opts.only, with_twin);
    }
    summary(root, threads, &opts.only);
}

/// Thousands separated by commas.
fn grouped(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if v < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// `median (min-max) unit` of one side's pooled clean windows.
fn spread_cell(r: Option<&SideResult>, unit: &str) -> String {
    match r {
        Some(r) => {
            let (lo, hi) = r.range();
            format!(
                "{} {unit} ({}-{})",
                grouped(r.median()),
                grouped(lo),
                grouped(hi)
            )
        }
        None => "-".into(),
    }
}

/// The figure column of an alternately timed row: both sides, the ratio with the spread of the
/// per-round ratios, and how many clean windows each side kept.
fn alternating_cells(target: &Path, key: &str, unit: &str) -> [String; 4] {
    let ours = SideResult::load(target, key, Side::Dmtl);
    let twin = SideResult::load(target, key, Side::Twin);
    let ratio = match (&ours, &twin) {
        (Some(a), Some(b)) => {
            let (r, lo, hi) = alternate::ratio(a, b);
            format!("{r:.2}x ({lo:.2}-{hi:.2})")
        }
        _ => "-".into(),
    };
    let count = |r: &Option<SideResult>| {
        r.as_ref().map_or("-".to_string(), |r| {
            format!("{}/{}", r.clean_windows, r.all_windows)
        })
    };
    let none_clean = [&ours, &twin]
        .iter()
        .any(|r| r.as_ref().is_some_and(|r| r.clean_windows == 0));
    [
        spread_cell(ours.as_ref(), unit),
        spread_cell(twin.as_ref(), unit),
        ratio,
        format!(
            "in turn, {} rounds; clean windows {} vs {}{}",
            ours.as_ref().map_or(0, |r| r.round_medians.len()),
            count(&ours),
            count(&twin),
            if none_clean {
                " (a side without clean windows counts all of its windows: the machine was busy)"
            } else {
                ""
            }
        ),
    ]
}

/// The twin's peak RSS of the teacher training runs (median over rounds), from its stored lines.
fn torch_teacher_mb(target: &Path) -> Option<f64> {
    let path = target.join("dmtl-bench/alternate/teacher_train.twin.jsonl");
    let text = std::fs::read_to_string(path).ok()?;
    let v: Vec<f64> = text
        .lines()
        .filter_map(|l| json_number(l, "peak_rss_mb"))
        .collect();
    (!v.is_empty()).then(|| alternate::median(&v))
}

/// Prints the summary table: alternately timed figures from their stored runs; criterion
/// figures with their Faiss and pandas twins measured now. With `only` set, just those rows.
pub fn summary(root: &Path, threads: usize, only: &[String]) {
    let t = threads.to_string();
    let target = target_dir(root);
    let have_faiss = only.is_empty() && python_has("faiss");
    let have_pandas = only.is_empty() && python_has("pandas");
    if only.is_empty() && !(have_faiss && have_pandas) {
        eprintln!("xtask: for the twins, `pip install torch faiss-cpu pandas numpy` (missing ones are left blank)");
    }
    let mut faiss_lines: Option<Vec<String>> = None;
    let mut pandas_rate: Option<Option<f64>> = None;
    println!("\n| figure | dmtl | twin | twin figure | ratio | target | timing |");
    println!("|---|---:|---|---:|---:|---:|---|");
    for f in FIGURES {
        let target_cell = if f.target > 0.0 {
            format!(">= {:.1}x", f.target)
        } else {
            "reported".into()
        };
        if let Twin::Torch(key, name) = f.twin {
            if !only.is_empty() && !only.iter().any(|k| k == key) {
                continue;
            }
            let [ours, twin, ratio, timing] = alternating_cells(&target, key, f.unit);
            println!(
                "| {} | {ours} | {name} | {twin} | {ratio} | {target_cell} | {timing} |",
                f.what
            );
            continue;
        }
        if !only.is_empty() {
            continue;
        }
        let ours = criterion_median(root, f.criterion_id).map(|s| f.per_iter / s);
        let (twin_name, twin) = match f.twin {
            Twin::Faiss(n) if have_faiss => {
                let lines = faiss_lines.get_or_insert_with(|| {
                    python_lines(
                        root,
                        "crates/dmtl-student/benches/faiss_compare.py",
                        &["--threads", &t],
                    )
                });
                let v = lines
                    .iter()
                    .find(|l| json_number(l, "items") == Some(n as f64))
                    .and_then(|l| json_number(l, "qps_median"));
                ("Faiss IndexFlatIP", v)
            }
            Twin::Pandas if have_pandas => {
                let rate = *pandas_rate.get_or_insert_with(|| {
                    python_lines(root, "crates/dmtl-data/benches/pandas_read_csv.py", &[])
                        .iter()
                        .find(|l| l.starts_with("engine=c:"))
                        .and_then(|l| l.split('=').next_back())
                        .and_then(|s| {
                            s.trim()
                                .trim_end_matches(" rows/s")
                                .replace(',', "")
                                .parse()
                                .ok()
                        })
                });
                ("pandas.read_csv", rate)
            }
            _ => ("-", None),
        };
        let fmt =
            |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{} {}", grouped(v), f.unit));
        let ratio = match (ours, twin) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | criterion median, then the twin |",
            f.what,
            fmt(ours),
            twin_name,
            fmt(twin),
            ratio,
            target_cell
        );
    }
    if !only.is_empty() {
        return;
    }
    let ours_mb = std::fs::read_to_string(memory_result(root))
        .ok()
        .and_then(|s| json_number(&s, "peak_rss_mb"));
    let torch_mb = torch_teacher_mb(&target);
    let mb = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} MB"));
    let ratio = match (ours_mb, torch_mb) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    };
    println!(
        "| peak memory, teacher training run | {} | PyTorch | {} | {} | <= 0.33x | one run each |",
        mb(ours_mb),
        mb(torch_mb),
        ratio
    );
    println!(
        "\nRows timed in turn: dmtl (benches/src/bin/reference.rs) and PyTorch \
         (benches/anchors/torch_reference.py) alternate, each waiting for a quiet machine and \
         keeping only windows where no other process used the CPU; median (min-max) of the clean \
         windows of all rounds, the ratio of the medians (min-max of the per-round ratios). \
         Other rows: criterion medians (target/criterion), twins measured just now; {threads} threads."
    );
    println!(
        "Peak memory: VmHWM of a 200-step teacher training run (crates/dmtl-teacher/examples/train_reference.rs, \
         {}) beside the twin's ru_maxrss; lower is better.",
        memory_result(root).display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_take_ours_and_pass_the_rest_to_criterion() {
        let o = Options::parse(&args(&[
            "--rounds",
            "5",
            "--only",
            "teacher_train,student_train",
            "--sample-size",
            "10",
        ]))
        .expect("valid");
        assert_eq!(o.rounds, 5);
        assert_eq!(o.windows, 7);
        assert_eq!(o.only, ["teacher_train", "student_train"]);
        assert_eq!(o.criterion_args, ["--sample-size", "10"]);
        assert!(!o.summary_only);
        assert!(Options::parse(&args(&["--only", "nonsense"])).is_err());
        assert!(Options::parse(&args(&["--rounds", "0"])).is_err());
        assert!(Options::parse(&args(&["--windows"])).is_err());
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(grouped(44070.4), "44,070");
        assert_eq!(grouped(1234567.0), "1,234,567");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(-1000.0), "-1,000");
    }
}
