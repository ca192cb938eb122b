//! `cargo xtask bench`: the criterion benchmarks of the reference workload, then one table of
//! every figure beside its PyTorch / Faiss / pandas twin measured in the same run, with the ratio,
//! and the peak memory of a teacher training run beside the PyTorch twin's.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One figure: a criterion benchmark id, its unit, and how to get its twin.
struct Figure {
    what: &'static str,
    /// `<group>/<function>` under target/criterion.
    criterion_id: &'static str,
    /// Items per iteration (impressions, queries or rows).
    per_iter: f64,
    unit: &'static str,
    twin: Twin,
    /// The target ratio from the performance goals.
    target: f64,
}

enum Twin {
    Torch(&'static [&'static str]),
    Faiss(u64),
    Pandas,
}

const FIGURES: &[Figure] = &[
    Figure {
        what: "teacher training step (MMoE+ESMM, batch 1024)",
        criterion_id: "teacher/train_step_mmoe_b1024",
        per_iter: 1024.0,
        unit: "imp/s",
        twin: Twin::Torch(&["--task", "teacher_train", "--emb", "dense", "--fused"]),
        target: 1.5,
    },
    Figure {
        what: "student distillation step (batch 1024)",
        criterion_id: "student/distillation_step_b1024",
        per_iter: 1024.0,
        unit: "imp/s",
        twin: Twin::Torch(&["--task", "student_train", "--emb", "dense", "--fused"]),
        target: 2.0,
    },
    Figure {
        what: "teacher scoring (16 batches of 1024)",
        criterion_id: "teacher/predict_16_batches_parallel_b1024",
        per_iter: 16384.0,
        unit: "imp/s",
        twin: Twin::Torch(&["--task", "teacher_infer"]),
        target: 1.3,
    },
    Figure {
        what: "user-tower inference (batch 1024)",
        criterion_id: "student/user_tower_inference_b1024",
        per_iter: 1024.0,
        unit: "imp/s",
        twin: Twin::Torch(&["--task", "user_tower_infer"]),
        target: 2.0,
    },
    Figure {
        what: "user-tower inference, bf16 option (batch 1024)",
        criterion_id: "student/user_tower_inference_bf16_b1024",
        per_iter: 1024.0,
        unit: "imp/s",
        twin: Twin::Torch(&["--task", "user_tower_infer", "--bf16"]),
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

/// The benches `cargo xtask bench` runs: (package, bench target).
pub const BENCHES: &[(&str, &str)] = &[
    ("dmtl-teacher", "teacher_step"),
    ("dmtl-student", "student_step"),
    ("dmtl-student", "retrieval"),
    ("dmtl-data", "ingest"),
];

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
fn json_number(line: &str, key: &str) -> Option<f64> {
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

/// Prints the summary table; twins are measured now, right after the Rust benchmarks.
pub fn summary(root: &Path, threads: usize) {
    let t = threads.to_string();
    let have_torch = python_has("torch");
    let have_faiss = python_has("faiss");
    let have_pandas = python_has("pandas");
    if !(have_torch && have_faiss && have_pandas) {
        eprintln!("xtask: for the twins, `pip install torch faiss-cpu pandas numpy` (missing ones are left blank)");
    }
    let mut faiss_lines: Option<Vec<String>> = None;
    let mut pandas_rate: Option<Option<f64>> = None;
    // The teacher-training twin's peak RSS, from the same JSON line as its throughput.
    let mut torch_teacher_mb: Option<f64> = None;
    println!("\n| figure | dmtl | twin | twin figure | ratio | target |");
    println!("|---|---:|---|---:|---:|---:|");
    for f in FIGURES {
        let ours = criterion_median(root, f.criterion_id).map(|s| f.per_iter / s);
        let (twin_name, twin) = match f.twin {
            Twin::Torch(args) if have_torch => {
                let mut a: Vec<&str> = args.to_vec();
                a.extend(["--threads", &t, "--wait_quiet_s", "30"]);
                let lines = python_lines(root, "benches/anchors/torch_reference.py", &a);
                if args.contains(&"teacher_train") {
                    torch_teacher_mb = lines.iter().find_map(|l| json_number(l, "peak_rss_mb"));
                }
                (
                    if args.contains(&"--bf16") {
                        "PyTorch (bf16 autocast)"
                    } else {
                        "PyTorch"
                    },
                    lines
                        .iter()
                        .find_map(|l| json_number(l, "imps_per_s_median")),
                )
            }
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
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} {}", f.unit));
        let ratio = match (ours, twin) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        let target = if f.target > 0.0 {
            format!(">= {:.1}x", f.target)
        } else {
            "reported".into()
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            f.what,
            fmt(ours),
            twin_name,
            fmt(twin),
            ratio,
            target
        );
    }
    let ours_mb = std::fs::read_to_string(memory_result(root))
        .ok()
        .and_then(|s| json_number(&s, "peak_rss_mb"));
    let mb = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} MB"));
    let ratio = match (ours_mb, torch_teacher_mb) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    };
    println!(
        "| peak memory, teacher training run | {} | PyTorch | {} | {} | <= 0.33x |",
        mb(ours_mb),
        mb(torch_teacher_mb),
        ratio
    );
    println!("\nMedians; dmtl from criterion (target/criterion), twins measured just now with {threads} threads.");
    println!(
        "Peak memory: VmHWM of a 200-step teacher training run (crates/dmtl-teacher/examples/train_reference.rs, \
         {}) beside the twin's ru_maxrss; lower is better.",
        memory_result(root).display()
    );
}
