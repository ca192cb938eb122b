//! A user's files are never lost, through the real `dmtl` binary: `train --out` never replaces a
//! folder that is not a run, one writer at a time per run folder, outputs never overwrite an
//! input or a run folder's file, the README's flow with relative paths works and resumes, a
//! resume refuses changed data, and degenerate settings or sizes are refused before training.
//!
//! Every refusal is checked as in `bad_input.rs`: a non-zero exit, one `error:` line naming the
//! path, key or flag, no panic, the watched files byte-identical and the output not created.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{args, copy_dir, dmtl, dmtl_in, expect_failure_in, s, small_sim, snapshot, Cfg, BIN};

/// A temporary folder with the small feed simulated into `data/` (CSV): schema.toml, log.csv,
/// items.csv, users.csv.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    dmtl_runner::commands::simulate(&d, small_sim(), false).unwrap();
    (tmp, d)
}

/// The run config over `schema.toml`, `log.csv` and `items.csv` in `dir` (as given: empty,
/// relative or absolute): one epoch of a small teacher and DMTL student, with `data_extra` in
/// `[data]` and `teacher_extra` in `[teacher.train]`.
fn run_toml(dir: &Path, data_extra: &str, teacher_extra: &str) -> String {
    Cfg {
        data_extra: data_extra.into(),
        teacher_train: format!("epochs = 1\nbatch_size = 512\n{teacher_extra}\n"),
        ..Cfg::tiny(dir)
    }
    .text()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `a` in `cwd` and expects success.
fn ok_in(cwd: Option<&Path>, a: &[String]) -> Output {
    let o = dmtl_in(cwd, a);
    assert!(o.status.success(), "{a:?} failed: {}", stderr(&o));
    o
}

/// Trains the config text `toml` (written to `t/<name>.toml`) into `t/<name>`.
fn train(t: &Path, name: &str, toml: &str) -> PathBuf {
    let cfg = t.join(format!("{name}.toml"));
    std::fs::write(&cfg, toml).unwrap();
    let run = t.join(name);
    ok_in(
        None,
        &args(&["train", "--config", &s(&cfg), "--out", &s(&run)]),
    );
    run
}

/// The hidden entries of `dir` (build folders, lock files), which no finished command leaves.
fn hidden_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// Writes the config `toml` to `t/<name>.toml` and expects `train` of it into `t/fresh` to be
/// refused with `phrases`, the data `d` unchanged and `t/fresh` not created.
fn refused_train(t: &Path, d: &Path, name: &str, toml: &str, phrases: &[&str]) -> Vec<String> {
    let cfg = t.join(format!("{}.toml", name.replace(' ', "-")));
    std::fs::write(&cfg, toml).unwrap();
    let fresh = t.join("fresh");
    expect_failure_in(
        None,
        name,
        &args(&["train", "--config", &s(&cfg), "--out", &s(&fresh)]),
        phrases,
        &[&d.to_path_buf()],
        &[&fresh],
    )
}

/// Fails the test with every problem found, and when a command left a hidden entry (a build
/// folder, a lock file) in `t`.
fn finish(t: &Path, mut problems: Vec<String>) {
    let left = hidden_entries(t);
    if !left.is_empty() {
        problems.push(format!("left beside the folders: {left:?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn train_out_never_replaces_a_folder_that_is_not_a_run() {
    let (tmp, d) = setup();
    let t = tmp.path();
    let cfg = t.join("run.toml");
    std::fs::write(&cfg, run_toml(&d, "", "")).unwrap();
    let train_into = |out: &str| args(&["train", "--config", &s(&cfg), "--out", out]);
    let mut problems = Vec::new();

    // A folder of the user's files, with what a run reads (its log, its config) and notes.
    let mine = t.join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::copy(d.join("log.csv"), mine.join("log.csv")).unwrap();
    std::fs::write(mine.join("run.toml"), "notes").unwrap();
    std::fs::write(mine.join("notes.txt"), "mine").unwrap();
    problems.extend(expect_failure_in(
        None,
        "--out a folder that is not a run",
        &train_into(&s(&mine)),
        &[&s(&mine), "not a dmtl run folder", "left as it is"],
        &[&mine, &d],
        &[],
    ));
    // An existing file.
    let file = t.join("notes.txt");
    std::fs::write(&file, "a file").unwrap();
    problems.extend(expect_failure_in(
        None,
        "--out a file",
        &train_into(&s(&file)),
        &[&s(&file), "is a file"],
        &[&file, &d],
        &[],
    ));
    // The current folder, and a folder the current folder is in.
    let work = t.join("work").join("sub");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("keep.txt"), "mine").unwrap();
    for out in [".", "..", "./"] {
        problems.extend(expect_failure_in(
            Some(&work),
            &format!("--out {out}"),
            &train_into(out),
            &[&format!("--out {out}"), "the current folder"],
            &[&t.join("work"), &d],
            &[],
        ));
    }
    // A run folder the user added a file to: it would be replaced whole.
    let run = train(t, "run", &run_toml(&d, "", ""));
    std::fs::write(run.join("notes.md"), "my notes on this run").unwrap();
    problems.extend(expect_failure_in(
        None,
        "--out a run folder holding the user's file",
        &train_into(&s(&run)),
        &[&s(&run), "`notes.md`", "which a run does not write"],
        &[&run, &d],
        &[],
    ));
    // Without the file it is a run folder again, and a new run replaces it.
    std::fs::remove_file(run.join("notes.md")).unwrap();
    ok_in(None, &train_into(&s(&run)));
    finish(t, problems);
}

/// Starts `dmtl train --config config --out run` and returns once it holds the run folder and
/// is training: its lock file names it and its build folder exists.
fn start_training(config: &Path, run: &Path) -> Child {
    let mut writer = Command::new(BIN)
        .args(["--quiet", "--threads", "1", "train", "--config", &s(config)])
        .args(["--out", &s(run)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = writer.id();
    let name = run.file_name().unwrap().to_string_lossy();
    let lock = run.parent().unwrap().join(format!(".{name}.lock"));
    let build = run.parent().unwrap().join(format!(".{name}.new-{pid}"));
    let start = Instant::now();
    while !(std::fs::read_to_string(&lock).is_ok_and(|t| t.starts_with(&format!("{pid}\n")))
        && build.join("config.toml").is_file())
    {
        if let Some(status) = writer.try_wait().unwrap() {
            panic!("the writer ended before training: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "process {pid} never started training into {}",
            build.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    writer
}

/// The arguments of `dmtl score --run run --log log --out out`.
fn score_args(run: &Path, log: &Path, out: &Path) -> Vec<String> {
    args(&[
        "score",
        "--run",
        &s(run),
        "--log",
        &s(log),
        "--out",
        &s(out),
    ])
}

#[test]
fn a_run_folder_has_one_writer_and_is_never_swapped_under_a_reader() {
    let (tmp, d) = setup();
    let t = tmp.path();
    let run = train(t, "run", &run_toml(&d, "", ""));
    let before = snapshot(&run);
    let scores = t.join("scores.csv");
    let score = score_args(&run, &d.join("log.csv"), &scores);

    // A long run into the same folder holds it while it trains.
    let slow = t.join("slow.toml");
    // (No early stopping: it trains until it is killed.)
    let toml = run_toml(&d, "", "epochs = 100000\npatience = 0").replacen("epochs = 1\n", "", 1);
    std::fs::write(&slow, toml).unwrap();
    let mut writer = start_training(&slow, &run);
    let pid = writer.id();
    let held = format!("in use by process {pid} (`dmtl train`)");
    let cfg = t.join("run.toml");
    let mut problems = Vec::new();
    for (name, a) in [
        (
            "a second train",
            args(&["train", "--config", &s(&cfg), "--out", &s(&run)]),
        ),
        ("a resume", args(&["train", "--resume", &s(&run)])),
        ("score", score.clone()),
        (
            "export",
            args(&["export", "--run", &s(&run), "--out", &s(&t.join("vectors"))]),
        ),
    ] {
        problems.extend(expect_failure_in(
            None,
            &format!("{name} while a train writes the folder"),
            &a,
            &[&s(&run), &held],
            &[&run, &d],
            &[&scores, &t.join("vectors")],
        ));
    }
    // Its build folder is locked too: nobody resumes or reads it while it is built.
    let build = t.join(format!(".run.new-{pid}"));
    for (name, a) in [
        (
            "a resume of the build folder",
            args(&["train", "--resume", &s(&build)]),
        ),
        (
            "score on the build folder",
            score_args(&build, &d.join("log.csv"), &scores),
        ),
    ] {
        problems.extend(expect_failure_in(
            None,
            &format!("{name} while it is built"),
            &a,
            &[&s(&build), &held],
            &[&run, &d],
            &[&scores],
        ));
    }
    writer.kill().unwrap();
    writer.wait().unwrap();
    // The killed writer never swapped its build in: the run is as it was, and the lock died
    // with the process (its file, naming a dead process, does not block).
    assert!(snapshot(&run) == before, "the killed train changed the run");
    ok_in(None, &score);

    // A reader holds the folder: a writer is refused, and may go on once the reader is done.
    let reader = dmtl_runner::fsutil::RunLock::shared(&run).unwrap().unwrap();
    problems.extend(expect_failure_in(
        None,
        "a train while a reader holds the folder",
        &args(&["train", "--config", &s(&cfg), "--out", &s(&run)]),
        &[&s(&run), "being read by another dmtl process"],
        &[&run, &d],
        &[],
    ));
    drop(reader);
    ok_in(None, &args(&["train", "--resume", &s(&run)]));
    // What the kill left: the build folder and its lock file (named in docs/reliability.md).
    std::fs::remove_dir_all(&build).unwrap();
    std::fs::remove_file(t.join(format!("..run.new-{pid}.lock"))).unwrap();

    // A run being built into a new folder: the folder is not there yet, and a reader or a
    // resume of it is told that a run is being built, not that one was killed.
    let fresh = t.join("fresh");
    let mut writer = start_training(&slow, &fresh);
    let pid = writer.id();
    let being_built = "a run is being built beside it: ";
    let scores = t.join("scores-2.csv");
    for (name, a) in [
        ("a resume", args(&["train", "--resume", &s(&fresh)])),
        ("score", score_args(&fresh, &d.join("log.csv"), &scores)),
    ] {
        problems.extend(expect_failure_in(
            None,
            &format!("{name} of a folder being built"),
            &a,
            &[&s(&fresh), being_built, &format!("in use by process {pid}")],
            &[&d],
            &[&scores, &fresh],
        ));
    }
    writer.kill().unwrap();
    writer.wait().unwrap();
    std::fs::remove_dir_all(t.join(format!(".fresh.new-{pid}"))).unwrap();
    for lock in [format!("..fresh.new-{pid}.lock"), ".fresh.lock".to_string()] {
        std::fs::remove_file(t.join(lock)).unwrap();
    }
    finish(t, problems);
}

#[test]
fn outputs_never_overwrite_an_input_or_a_run_folder() {
    let (tmp, d) = setup();
    let t = tmp.path();
    let run = train(t, "run", &run_toml(&d, "", ""));
    let other = t.join("other-run");
    copy_dir(&run, &other);
    let log = d.join("log.csv");
    let users = d.join("users.csv");
    std::fs::create_dir(t.join("links")).unwrap();
    let symlink = t.join("links").join("log-link.csv");
    let hardlink = t.join("links").join("log-hard.csv");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&log, &symlink).unwrap();
    std::fs::hard_link(&log, &hardlink).unwrap();
    let dotdot = t.join("nowhere").join("..").join("data").join("log.csv");
    let watched = [&run, &other, &d, &t.join("links")];
    let mut problems = Vec::new();
    let score = |out: &Path| {
        args(&[
            "score",
            "--run",
            &s(&run),
            "--log",
            &s(&log),
            "--out",
            &s(out),
        ])
    };
    let score_cases: Vec<(&str, PathBuf, &str)> = vec![
        ("the log", log.clone(), "is the log"),
        ("the log through ..", dotdot.clone(), "is the log"),
        ("a symlink to the log", symlink.clone(), "is the log"),
        ("a hard link to the log", hardlink.clone(), "is the log"),
        (
            "the run's corpus",
            run.join("items.parquet"),
            "inside the run folder",
        ),
        (
            "a new file in the run",
            run.join("scores.csv"),
            "inside the run folder",
        ),
        (
            "a file of another run",
            other.join("users.parquet"),
            "inside the run folder",
        ),
    ];
    for (name, out, phrase) in &score_cases {
        problems.extend(expect_failure_in(
            None,
            &format!("score --out {name}"),
            &score(out),
            &[&format!("--out {}", s(out)), phrase],
            &watched,
            &[&t.join("nowhere")],
        ));
    }
    let retrieve = |out: &Path| {
        args(&[
            "retrieve",
            "--run",
            &s(&run),
            "--users",
            &s(&users),
            "--out",
            &s(out),
        ])
    };
    for (name, out, phrase) in [
        ("the users file", users.clone(), "is the users file"),
        (
            "the run's users",
            run.join("users.parquet"),
            "inside the run folder",
        ),
    ] {
        problems.extend(expect_failure_in(
            None,
            &format!("retrieve --out {name}"),
            &retrieve(&out),
            &[&format!("--out {}", s(&out)), phrase],
            &watched,
            &[],
        ));
    }
    for (name, out) in [
        ("the run", run.clone()),
        ("the run's model", run.join("models").join("dmtl")),
        ("another run", other.clone()),
    ] {
        problems.extend(expect_failure_in(
            None,
            &format!("export --out {name}"),
            &args(&["export", "--run", &s(&run), "--out", &s(&out)]),
            &[&format!("--out {}", s(&out)), "inside the run folder"],
            &watched,
            &[],
        ));
    }
    finish(t, problems);

    // A K far beyond the corpus is capped at it before the users x K lists are allocated.
    let n_users = std::fs::read_to_string(&users).unwrap().lines().count() - 1;
    let corpus = std::fs::read_to_string(d.join("items.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    for k in ["4611686018427387904", "1000000"] {
        let top = t.join(format!("top-{k}.csv"));
        let mut a = retrieve(&top);
        a.extend(args(&["--k", k]));
        let o = dmtl(&a);
        assert!(o.status.success(), "--k {k}: {}", stderr(&o));
        let lines = std::fs::read_to_string(&top).unwrap().lines().count();
        assert_eq!(lines, 1 + n_users * corpus, "--k {k}");
    }
}

/// The README's "running on your own logs", literally: a folder with the schema, the log, the
/// items and a run.toml naming them by relative paths; `dmtl train --config run.toml` from that
/// folder (into the default `runs/train-<timestamp>`) and from elsewhere, then resumes.
#[test]
fn the_readme_flow_with_relative_paths_trains_and_resumes() {
    let (tmp, proj) = setup();
    let t = tmp.path();
    std::fs::write(proj.join("run.toml"), run_toml(Path::new(""), "", "")).unwrap();
    let table_of = |o: &Output| {
        let out = stdout(o);
        assert!(
            out.contains("| model |") && out.contains("| Teacher (MMoE+ESMM) |"),
            "no table printed:\n{out}"
        );
        assert!(out.contains("report: "), "{out}");
    };
    // From the config's folder, into runs/train-<timestamp>.
    let o = ok_in(Some(&proj), &args(&["train", "--config", "run.toml"]));
    table_of(&o);
    let runs: Vec<PathBuf> = std::fs::read_dir(proj.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let rel = Path::new("runs").join(runs[0].file_name().unwrap());
    // The saved configuration names the data wherever it is read from.
    dmtl_runner::RunConfig::load(&runs[0].join("config.toml")).unwrap();
    let o = ok_in(Some(&proj), &args(&["train", "--resume", &s(&rel)]));
    table_of(&o);

    // From elsewhere: the config by a relative path, stopped part-way, then resumed by a
    // relative path.
    std::fs::write(
        proj.join("stop.toml"),
        run_toml(Path::new(""), "", "stop_after_batches = 3"),
    )
    .unwrap();
    let o = dmtl_in(
        Some(t),
        &args(&["train", "--config", "data/stop.toml", "--out", "stopped"]),
    );
    assert!(!o.status.success(), "the stop must fail the run");
    assert!(
        stderr(&o).contains("dmtl train --resume stopped"),
        "{}",
        stderr(&o)
    );
    let o = ok_in(Some(t), &args(&["train", "--resume", "stopped"]));
    table_of(&o);
    assert!(t
        .join("stopped")
        .join("models/dmtl/student.safetensors")
        .is_file());
}

#[test]
fn a_resume_over_changed_inputs_is_refused_naming_the_file() {
    let (tmp, d) = setup();
    let t = tmp.path();
    let cfg = t.join("stop.toml");
    std::fs::write(&cfg, run_toml(&d, "", "stop_after_batches = 3")).unwrap();
    let run = t.join("run");
    let o = dmtl(&args(&["train", "--config", &s(&cfg), "--out", &s(&run)]));
    assert!(!o.status.success(), "the stop must fail the run");
    let log = d.join("log.csv");
    let original = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let cut = lines[..lines.len() - 500].join("\n") + "\n";
    let mut shuffled = lines.clone();
    shuffled[1..].reverse();
    let shuffled = shuffled.join("\n") + "\n";
    let resume = args(&["train", "--resume", &s(&run)]);
    let mut problems = Vec::new();
    for (name, text) in [("cut", &cut), ("shuffled (same size)", &shuffled)] {
        std::fs::write(&log, text).unwrap();
        problems.extend(expect_failure_in(
            None,
            &format!("resume over a {name} log"),
            &resume,
            &[
                &format!("`data.log`: {}", s(&log)),
                "changed since the run started",
            ],
            &[&run, &d],
            &[],
        ));
    }
    std::fs::write(&log, &original).unwrap();
    let items = std::fs::read(d.join("items.csv")).unwrap();
    std::fs::write(d.join("items.csv"), "item_id,category\n").unwrap();
    problems.extend(expect_failure_in(
        None,
        "resume over a changed items file",
        &resume,
        &["`data.items`", "changed since the run started"],
        &[&run, &d],
        &[],
    ));
    finish(t, problems);
    // The same bytes written again (a new modification time) are the same data.
    std::fs::write(&log, &original).unwrap();
    std::fs::write(d.join("items.csv"), items).unwrap();
    ok_in(None, &resume);
}

#[test]
fn degenerate_settings_and_sizes_are_refused_before_training() {
    let (tmp, d) = setup();
    let t = tmp.path();
    let fresh = t.join("fresh");
    let mut problems = Vec::new();
    let mut case = |name: &str, toml: String, phrases: &[&str]| {
        problems.extend(refused_train(t, &d, name, &toml, phrases))
    };
    case(
        "teacher epochs 0",
        run_toml(&d, "", "epochs = 0").replacen("epochs = 1\n", "", 1),
        &["`teacher.train.epochs`", "must be at least 1"],
    );
    case(
        "student epochs 0",
        run_toml(&d, "", "").replace("[student.train]\nepochs = 1", "[student.train]\nepochs = 0"),
        &["`student.train.epochs`", "must be at least 1"],
    );
    case(
        "no long read",
        run_toml(&d, "long_read_threshold = 1e30", ""),
        &[
            "log.csv",
            "no long read",
            "data.long_read_threshold",
            "0 of ",
            "`long read`",
        ],
    );
    // A log without a click (and so without a reading time).
    let no_click = t.join("no-click");
    copy_dir(&d, &no_click);
    let text = std::fs::read_to_string(d.join("log.csv")).unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let mut cells: Vec<&str> = line.split(',').collect();
        if i > 0 {
            let n = cells.len();
            cells[n - 3] = "0";
            cells[n - 2] = "0";
        }
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    assert!(text.starts_with(
        "user_id,age,gender,city,user_tags,hour,network,item_id,category,sub_category,author,item_tags,length_bucket,click,duration,day\n"
    ));
    std::fs::write(no_click.join("log.csv"), out).unwrap();
    case(
        "no click",
        run_toml(&no_click, "", ""),
        &["no-click/log.csv", "no click", "0 of ", "`click`"],
    );
    // Tables far beyond the machine's memory.
    let schema = std::fs::read_to_string(d.join("schema.toml")).unwrap();
    let huge_dim = t.join("huge-dim");
    copy_dir(&d, &huge_dim);
    std::fs::write(
        huge_dim.join("schema.toml"),
        schema.replace("embedding_dim = 16", "embedding_dim = 100000000000"),
    )
    .unwrap();
    case(
        "embedding_dim 1e11",
        run_toml(&huge_dim, "", ""),
        &["the teacher would need about", "`defaults.embedding_dim`"],
    );
    let huge_hash = t.join("huge-hash");
    copy_dir(&d, &huge_hash);
    std::fs::write(
        huge_hash.join("schema.toml"),
        schema.replace(
            "name = \"author\"\nside = \"item\"\nkind = \"categorical\"\n",
            "name = \"author\"\nside = \"item\"\nkind = \"categorical\"\nhash_buckets = 4000000000\n",
        ),
    )
    .unwrap();
    case(
        "hash_buckets 4e9",
        run_toml(&huge_hash, "", ""),
        &["would need about", "`columns[10].hash_buckets`", "`author`"],
    );
    // Far more threads than cores.
    let cfg = t.join("good.toml");
    std::fs::write(&cfg, run_toml(&d, "", "")).unwrap();
    let o = Command::new(BIN)
        .args([
            "--quiet",
            "--threads",
            "100000",
            "train",
            "--config",
            &s(&cfg),
        ])
        .args(["--out", &s(&fresh)])
        .output()
        .unwrap();
    let err = stderr(&o);
    if o.status.success() || !err.contains("error: --threads 100000: at most") {
        problems.push(format!("--threads 100000 was not refused: {err}"));
    }
    let o = Command::new(BIN)
        .args([
            "--quiet",
            "train",
            "--config",
            &s(&cfg),
            "--out",
            &s(&fresh),
        ])
        .env("DMTL_THREADS", "100000")
        .output()
        .unwrap();
    let err = stderr(&o);
    if o.status.success() || !err.contains("error: DMTL_THREADS=100000: at most") {
        problems.push(format!("DMTL_THREADS=100000 was not refused: {err}"));
    }
    if fresh.exists() {
        problems.push("a refused thread count created the run folder".into());
    }
    finish(t, problems);
}

/// Rewrites the Parquet file `p` with the user id of its data row `row` (from 1) null.
fn null_user_id(p: &Path, row: usize) {
    use arrow_array::cast::AsArray;
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use arrow_schema::{Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Arc;
    let file = std::fs::File::open(p).unwrap();
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let old = batches[0].schema();
    let col = old.index_of("user_id").unwrap();
    let fields: Vec<Field> = old
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(f.name() == "user_id"))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(p).unwrap(),
        schema.clone(),
        None,
    )
    .unwrap();
    let mut first = 1;
    for b in batches {
        let ids = b.column(col).as_string::<i32>();
        let ids: StringArray = (0..b.num_rows())
            .map(|r| (first + r != row).then(|| ids.value(r)))
            .collect();
        first += b.num_rows();
        let mut cols: Vec<ArrayRef> = b.columns().to_vec();
        cols[col] = Arc::new(ids);
        writer
            .write(&RecordBatch::try_new(schema.clone(), cols).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
}

#[test]
fn unclear_inputs_get_errors_a_user_can_act_on() {
    let (tmp, d) = setup();
    let t = tmp.path();
    let mut problems = Vec::new();
    let train_case = |name: &str, toml: String, phrases: &[&str], problems: &mut Vec<_>| {
        problems.extend(refused_train(t, &d, name, &toml, phrases))
    };
    // A folder where a file is expected.
    // A folder is a log of part files; one without a data file (a Spark `_SUCCESS` marker
    // only) is refused, and a schema must be a file.
    let folder = t.join("parts");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("_SUCCESS"), "").unwrap();
    let base = run_toml(&d, "", "");
    for (key, why) in [
        ("log", "no data file"),
        ("schema", "is a folder, not a file"),
    ] {
        let file = format!("{key} = \"{}/", s(&d));
        let line = base.lines().find(|l| l.starts_with(&file)).unwrap();
        train_case(
            &format!("a folder as data.{key}"),
            base.replace(line, &format!("{key} = \"{}\"", s(&folder))),
            &[&format!("`data.{key}`"), &s(&folder), why],
            &mut problems,
        );
    }
    // A Parquet file named .csv.
    let pq = t.join("pq");
    dmtl_runner::commands::simulate(&pq, small_sim(), true).unwrap();
    std::fs::rename(pq.join("log.parquet"), pq.join("log.csv")).unwrap();
    std::fs::rename(pq.join("items.parquet"), pq.join("items.csv")).unwrap();
    train_case(
        "a Parquet file named .csv",
        run_toml(&pq, "", ""),
        &["log.csv", "is a Parquet file", "name it .parquet"],
        &mut problems,
    );
    // A null user id in a Parquet log.
    let nulls = t.join("nulls");
    dmtl_runner::commands::simulate(&nulls, small_sim(), true).unwrap();
    null_user_id(&nulls.join("log.parquet"), 6);
    train_case(
        "a null user id",
        run_toml(&nulls, "", "").replace(".csv\"", ".parquet\""),
        &["log.parquet", "row 6, column `user_id`", "found null"],
        &mut problems,
    );
    // An item listed twice in the items file.
    let dup = t.join("dup");
    copy_dir(&d, &dup);
    let items = std::fs::read_to_string(d.join("items.csv")).unwrap();
    let fourth = items.lines().nth(3).unwrap();
    let id = fourth.split(',').next().unwrap();
    let n_lines = items.lines().count();
    std::fs::write(dup.join("items.csv"), format!("{items}{fourth}\n")).unwrap();
    train_case(
        "a duplicate item id",
        run_toml(&dup, "", ""),
        &[
            "`data.items`",
            &format!("item id `{id}`"),
            &format!("(lines 4 and {})", n_lines + 1),
        ],
        &mut problems,
    );

    // A run that stopped part-way, and one killed before its folder was swapped in.
    let cfg = t.join("stop.toml");
    std::fs::write(&cfg, run_toml(&d, "", "stop_after_batches = 3")).unwrap();
    let stopped = t.join("stopped");
    let o = dmtl(&args(&[
        "train",
        "--config",
        &s(&cfg),
        "--out",
        &s(&stopped),
    ]));
    assert!(!o.status.success(), "the stop must fail the run");
    problems.extend(expect_failure_in(
        None,
        "score --log a folder (on a run with its vocabularies)",
        &args(&[
            "score",
            "--run",
            &s(&stopped),
            "--log",
            &s(&folder),
            "--out",
            &s(&t.join("scores.csv")),
        ]),
        &[&s(&folder), "no data file"],
        &[&d, &folder, &stopped],
        &[&t.join("scores.csv")],
    ));
    let killed = t.join("killed");
    let build = t.join(".killed.new-999999");
    std::fs::create_dir(&build).unwrap();
    let out = t.join("out.csv");
    let log = s(&d.join("log.csv"));
    let users = s(&d.join("users.csv"));
    for (run, hint) in [
        (&stopped, "the run is incomplete"),
        (&killed, "a killed run left its build folder"),
    ] {
        let r = s(run);
        let resume = format!(
            "dmtl train --resume {}",
            s(if run == &killed { &build } else { run })
        );
        for (name, a) in [
            (
                "score",
                args(&["score", "--run", &r, "--log", &log, "--out", &s(&out)]),
            ),
            (
                "score the teacher",
                args(&[
                    "score",
                    "--run",
                    &r,
                    "--log",
                    &log,
                    "--out",
                    &s(&out),
                    "--model",
                    "teacher",
                ]),
            ),
            (
                "retrieve",
                args(&[
                    "retrieve",
                    "--run",
                    &r,
                    "--users",
                    &users,
                    "--out",
                    &s(&out),
                ]),
            ),
            (
                "export",
                args(&["export", "--run", &r, "--out", &s(&t.join("vectors"))]),
            ),
        ] {
            let resume_phrase = if run == &killed {
                s(&build)
            } else {
                resume.clone()
            };
            problems.extend(expect_failure_in(
                None,
                &format!("{name} on {}", run.display()),
                &a,
                &[&r, hint, &resume_phrase],
                &[&stopped, &d, &build],
                &[&out, &t.join("vectors")],
            ));
        }
    }
    // Output names in capitals, as the readers take them.
    let good = train(t, "good", &base);
    let upper = t.join("scores.CSV");
    ok_in(
        None,
        &args(&[
            "score",
            "--run",
            &s(&good),
            "--log",
            &log,
            "--out",
            &s(&upper),
        ]),
    );
    assert!(std::fs::read_to_string(&upper)
        .unwrap()
        .starts_with("user_id,item_id,"));
    std::fs::remove_dir(&build).unwrap();
    finish(t, problems);
}
