//! Logs given as a folder of part files or a glob: `dmtl train` and `dmtl score` read them as
//! the one log the parts make, in name order, and an output is never written among the parts.

mod common;

use std::path::Path;

use common::{args, dmtl, s, small_sim, Cfg};

/// Splits the CSV `log` into `n` part files (each with the header) in `dir`, beside a Spark
/// `_SUCCESS` marker.
fn split_csv(log: &Path, dir: &Path, n: usize) {
    let text = std::fs::read_to_string(log).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    std::fs::create_dir_all(dir).unwrap();
    let per = rows.len().div_ceil(n);
    for (i, chunk) in rows.chunks(per).enumerate() {
        let mut body = format!("{header}\n");
        for r in chunk {
            body.push_str(r);
            body.push('\n');
        }
        std::fs::write(dir.join(format!("part-{i:05}.csv")), body).unwrap();
    }
    std::fs::write(dir.join("_SUCCESS"), "").unwrap();
}

fn ok(a: &[&str]) {
    let o = dmtl(&args(a));
    assert!(
        o.status.success(),
        "dmtl {a:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_folder_of_parts_trains_and_scores_as_the_whole_file() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    dmtl_runner::commands::simulate(&d, small_sim(), false).unwrap();
    let parts = t.path().join("parts");
    split_csv(&d.join("log.csv"), &parts, 3);

    let whole = Cfg::tiny(&d).write(&t.path().join("whole.toml"));
    let folder = Cfg {
        log: parts.clone(),
        ..Cfg::tiny(&d)
    }
    .write(&t.path().join("folder.toml"));
    let (run_a, run_b) = (t.path().join("run-a"), t.path().join("run-b"));
    ok(&["train", "-q", "--config", &s(&whole), "--out", &s(&run_a)]);
    ok(&["train", "-q", "--config", &s(&folder), "--out", &s(&run_b)]);
    for f in [
        "teacher/teacher.safetensors",
        "models/dmtl/student.safetensors",
        "vocab.json",
    ] {
        assert!(
            bytes(&run_a.join(f)) == bytes(&run_b.join(f)),
            "{f} differs between the whole log and its parts"
        );
    }

    // Scores of the parts, of a glob over them and of the whole file are the same file.
    let score = |log: &Path, out: &Path| {
        ok(&[
            "score",
            "--run",
            &s(&run_a),
            "--log",
            &s(log),
            "--model",
            "dmtl",
            "--out",
            &s(out),
        ]);
        bytes(out)
    };
    let want = score(&d.join("log.csv"), &t.path().join("whole.csv"));
    assert!(score(&parts, &t.path().join("parts.csv")) == want);
    assert!(score(&parts.join("part-*.csv"), &t.path().join("glob.csv")) == want);

    // An output among the parts would join the log: refused, nothing written.
    let inside = parts.join("scores.csv");
    let o = dmtl(&args(&[
        "score",
        "--run",
        &s(&run_a),
        "--log",
        &s(&parts),
        "--out",
        &s(&inside),
    ]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("is inside the log folder"),
        "{err}"
    );
    assert!(!inside.exists());
    // So is a run folder inside a data folder of the config.
    let o = dmtl(&args(&[
        "train",
        "-q",
        "--config",
        &s(&folder),
        "--out",
        &s(&parts.join("run")),
    ]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("inside the data.log folder"),
        "{err}"
    );
    assert!(!parts.join("run").exists());
}
