//! The bad-input matrix through the real `dmtl` binary: every kind of bad input (logs, schema,
//! run config, checkpoints, vocabularies, user files) against one small good run.
//!
//! For each failure: a non-zero exit; exactly one `error:` line on stderr, naming the file (or
//! key) and what is wrong; no panic; every file of the good run, of the data and of the run the
//! command was given byte-identical before and after; the command's output path not created, or
//! left as it was when it existed. Users never seen in training are not an error: `retrieve`
//! serves them with the out-of-vocabulary id and reports how many there were.

mod common;

use std::path::{Path, PathBuf};

use common::{args, copy_dir, dmtl, expect_failure_in, s, small_sim, snapshot, Cfg};

use dmtl_data::{read_log, ReadOptions, Side, Vocabularies};
use dmtl_runner::config::ModelName;
use dmtl_runner::{checkpoints, columns, layout};

/// A small CSV table (no quoted fields: the simulator writes none) to edit cell by cell.
#[derive(Clone)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn read(p: &Path) -> Table {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(
            !text.contains('"'),
            "quoted CSV fields are not handled here"
        );
        let mut lines = text
            .lines()
            .map(|l| l.split(',').map(str::to_string).collect());
        Table {
            header: lines.next().unwrap(),
            rows: lines.collect(),
        }
    }

    fn col(&self, name: &str) -> usize {
        self.header.iter().position(|h| h == name).unwrap()
    }

    /// Sets `column` of file line `line` (line 1 is the header).
    fn set(mut self, line: usize, column: &str, value: &str) -> Table {
        let c = self.col(column);
        self.rows[line - 2][c] = value.to_string();
        self
    }

    fn drop_column(mut self, name: &str) -> Table {
        let c = self.col(name);
        self.header.remove(c);
        self.rows.iter_mut().for_each(|r| {
            r.remove(c);
        });
        self
    }

    fn add_column(mut self, name: &str, values: impl Fn(&[String], &[String]) -> String) -> Table {
        let header = self.header.clone();
        for r in &mut self.rows {
            let v = values(&header, r);
            r.push(v);
        }
        self.header.push(name.to_string());
        self
    }

    fn text(&self) -> String {
        let mut out = self.header.join(",") + "\n";
        for r in &self.rows {
            out.push_str(&r.join(","));
            out.push('\n');
        }
        out
    }

    fn write(&self, p: &Path) -> PathBuf {
        std::fs::write(p, self.text()).unwrap();
        p.to_path_buf()
    }
}

/// A dense item feature so the dense-value rows of the matrix have a column to break.
fn quality(item_id: &str) -> String {
    let h = item_id
        .bytes()
        .fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    format!("{}", (h % 10) as f32 / 10.0)
}

/// Every file of `dir` (recursively) went through an atomic write: no temporary file is left
/// behind, and each has the mode of a file created plainly in the same folder (the atomic
/// writers create their temporary files with the umask's mode, not tempfile's private 0600).
fn check_written_atomically(dir: &Path) {
    for (p, _) in snapshot(dir) {
        if p.is_dir() {
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy();
        assert!(
            !name.starts_with(".tmp") && !name.contains(".tmp"),
            "a temporary file was left behind: {}",
            p.display()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            let probe = p.parent().unwrap().join("probe-plain-file");
            std::fs::File::create(&probe).unwrap();
            let want = mode(&probe);
            std::fs::remove_file(&probe).unwrap();
            assert_eq!(mode(&p), want, "{} has another mode", p.display());
        }
    }
}

/// The data and the good run every case is measured against.
struct Setup {
    /// The simulated data: schema.toml, log.csv, items.csv, users.csv.
    data: PathBuf,
    /// The log, to edit.
    log: Table,
    /// The schema, to edit.
    schema_text: String,
    /// The good run's configuration.
    base: Cfg,
    /// The good run's folder.
    good: PathBuf,
}

/// Simulates a small log (with a dense item column added) into `t/data` and trains the good
/// run into `t/run` through the binary.
fn good_run(t: &Path) -> Setup {
    let data = t.join("data");
    dmtl_runner::commands::simulate(&data, small_sim(), false).unwrap();
    let with_quality = |h: &[String], r: &[String]| {
        let c = h.iter().position(|x| x == "item_id").unwrap();
        quality(&r[c])
    };
    let log = Table::read(&data.join("log.csv")).add_column("quality", with_quality);
    log.write(&data.join("log.csv"));
    Table::read(&data.join("items.csv"))
        .add_column("quality", with_quality)
        .write(&data.join("items.csv"));
    let schema_text = std::fs::read_to_string(data.join("schema.toml")).unwrap()
        + "\n[[columns]]\nname = \"quality\"\nside = \"item\"\nkind = \"dense\"\n";
    std::fs::write(data.join("schema.toml"), &schema_text).unwrap();

    let base = Cfg::tiny(&data);
    let good_cfg = base.write(&t.join("run.toml"));
    let good = t.join("run");
    let out = dmtl(&args(&[
        "train",
        "--config",
        &s(&good_cfg),
        "--out",
        &s(&good),
    ]));
    assert!(
        out.status.success(),
        "the good run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Setup {
        data,
        log,
        schema_text,
        base,
        good,
    }
}

#[test]
fn every_bad_input_fails_cleanly_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let Setup {
        data,
        log,
        schema_text,
        base,
        good,
    } = good_run(t);
    let exported = t.join("exported");
    let out = dmtl(&args(&[
        "export",
        "--run",
        &s(&good),
        "--out",
        &s(&exported),
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scored = t.join("scored.csv");
    std::fs::write(&scored, "an earlier output\n").unwrap();
    check_written_atomically(&good);
    check_written_atomically(&exported);

    let cases_dir = t.join("cases");
    std::fs::create_dir_all(&cases_dir).unwrap();
    let mut problems: Vec<String> = Vec::new();

    // --- The data readers, through `train` (into a fresh folder and over the good run) and,
    // for the rows that do not need labels, through `score`.
    let bad_logs: Vec<(&str, Option<String>, Vec<String>)> = {
        let f = |name: &str| cases_dir.join(name);
        let mut v: Vec<(&str, Option<String>, Vec<String>)> = Vec::new();
        let mut add = |name: &'static str, text: Option<String>, phrases: &[&str]| {
            let mut p: Vec<String> = phrases.iter().map(|x| x.to_string()).collect();
            p.push(name.to_string());
            v.push((name, text, p));
        };
        add("missing.csv", None, &["No such file"]);
        add(
            "missing_column.csv",
            Some(log.clone().drop_column("category").text()),
            &["column `category` named by the schema is missing"],
        );
        add(
            "missing_label.csv",
            Some(log.clone().drop_column("duration").text()),
            &["column `duration` named by the schema is missing"],
        );
        let mut short = log.clone();
        short.rows[4].pop();
        add(
            "field_count.csv",
            Some(short.text()),
            &["line 6: expected 17 fields (as in the header), found 16"],
        );
        add(
            "click_two.csv",
            Some(log.clone().set(6, "click", "2").text()),
            &["line 6, column `click`: expected a click of 0 or 1, found \"2\""],
        );
        add(
            "bad_duration.csv",
            Some(
                log.clone()
                    .set(6, "click", "1")
                    .set(6, "duration", "-3")
                    .text(),
            ),
            &["line 6, column `duration`: expected a duration in seconds"],
        );
        add(
            "duration_no_click.csv",
            Some(
                log.clone()
                    .set(6, "click", "0")
                    .set(6, "duration", "12.5")
                    .text(),
            ),
            &["line 6, column `duration`", "no reading without a click"],
        );
        add(
            "dense_text.csv",
            Some(log.clone().set(6, "quality", "cheap").text()),
            &["line 6, column `quality`: expected a finite number, found \"cheap\""],
        );
        add(
            "dense_nan.csv",
            Some(log.clone().set(6, "quality", "NaN").text()),
            &["line 6, column `quality`: expected a finite number, found \"NaN\""],
        );
        add(
            "bad_time.csv",
            Some(log.clone().set(6, "day", "monday").text()),
            &["line 6, column `day`: expected an integer time, found \"monday\""],
        );
        add(
            "empty.csv",
            Some(String::new()),
            &["no header row (the file is empty)"],
        );
        add(
            "header_only.csv",
            Some(log.header.join(",") + "\n"),
            &["no data rows"],
        );
        for (name, text, _) in &v {
            if let Some(text) = text {
                std::fs::write(f(name), text).unwrap();
            }
        }
        v
    };
    for (i, (name, _, phrases)) in bad_logs.iter().enumerate() {
        let path = cases_dir.join(name);
        let mut phrases: Vec<&str> = phrases.iter().map(String::as_str).collect();
        let cfg = Cfg {
            log: path.clone(),
            ..base.clone()
        }
        .write(&cases_dir.join(format!("log{i}.toml")));
        if *name == "missing.csv" {
            // The config names the file that does not exist before anything is read.
            phrases = vec!["data.log", "no such file", "missing.csv"];
        }
        let fresh = t.join(format!("fresh{i}"));
        for out in [&fresh, &good] {
            problems.extend(expect_failure_in(
                None,
                &format!("train on {name} into {}", out.display()),
                &args(&["train", "--config", &s(&cfg), "--out", &s(out)]),
                &phrases,
                &[&good, &data],
                &if out == &fresh { vec![&fresh] } else { vec![] },
            ));
        }
        // `score` needs no labels: the label rows are checked by `train` above.
        let labels_only = matches!(
            *name,
            "missing_label.csv" | "click_two.csv" | "bad_duration.csv" | "duration_no_click.csv"
        );
        if !labels_only {
            let phrases: Vec<&str> = if *name == "missing.csv" {
                vec!["missing.csv", "No such file"]
            } else {
                phrases.clone()
            };
            problems.extend(expect_failure_in(
                None,
                &format!("score {name}"),
                &args(&[
                    "score",
                    "--run",
                    &s(&good),
                    "--log",
                    &s(&path),
                    "--out",
                    &s(&scored),
                ]),
                &phrases,
                &[&good, &data, &scored],
                &[],
            ));
        }
    }

    // --- Bad user tables for `retrieve`.
    let users = Table::read(&data.join("users.csv"));
    let no_id = users
        .clone()
        .drop_column("user_id")
        .write(&cases_dir.join("users_no_id.csv"));
    let users_empty = cases_dir.join("users_empty.csv");
    std::fs::write(&users_empty, users.header.join(",") + "\n").unwrap();
    let top = t.join("top.csv");
    for (file, phrase) in [
        (&no_id, "column `user_id` named by the schema is missing"),
        (&users_empty, "no data rows"),
    ] {
        let name = file.file_name().unwrap().to_str().unwrap();
        problems.extend(expect_failure_in(
            None,
            &format!("retrieve {name}"),
            &args(&[
                "retrieve",
                "--run",
                &s(&good),
                "--users",
                &s(file),
                "--out",
                &s(&top),
            ]),
            &[name, phrase],
            &[&good, &data],
            &[&top],
        ));
    }
    for (k, phrase) in [("0", "--k must be at least 1"), ("-1", "-1")] {
        problems.extend(expect_failure_in(
            None,
            &format!("retrieve --k {k}"),
            &args(&[
                "retrieve",
                "--run",
                &s(&good),
                "--users",
                &s(&data.join("users.csv")),
                "--k",
                k,
                "--out",
                &s(&top),
            ]),
            &[phrase],
            &[&good],
            &[&top],
        ));
    }
    problems.extend(expect_failure_in(
        None,
        "score to a .txt file",
        &args(&[
            "score",
            "--run",
            &s(&good),
            "--log",
            &s(&data.join("log.csv")),
            "--out",
            &s(&t.join("scores.txt")),
        ]),
        &["scores.txt", "must end in .csv or .parquet"],
        &[&good],
        &[&t.join("scores.txt")],
    ));

    // --- The schema and the run config: refused before any work, naming the key.
    let leak = cases_dir.join("schema_leak.toml");
    std::fs::write(
        &leak,
        schema_text.clone()
            + "\n[[columns]]\nname = \"click\"\nside = \"context\"\nkind = \"categorical\"\n",
    )
    .unwrap();
    let negative_threshold = cases_dir.join("schema_threshold.toml");
    std::fs::write(
        &negative_threshold,
        schema_text.replacen("long_read_threshold = ", "long_read_threshold = -", 1),
    )
    .unwrap();
    let late_split = cases_dir.join("schema_late_split.toml");
    let test_from = format!("test_from = {}", small_sim().test_from());
    assert!(schema_text.contains(&test_from));
    std::fs::write(
        &late_split,
        schema_text.replace(&test_from, "test_from = 99"),
    )
    .unwrap();
    let header_only = cases_dir.join("header_only.csv");
    let configs: Vec<(&str, Cfg, Vec<&str>)> = vec![
        (
            "label as a feature",
            Cfg {
                schema: leak.clone(),
                ..base.clone()
            },
            vec![
                "data.schema",
                "schema_leak.toml",
                "\"click\" is a label",
                "leak the label",
            ],
        ),
        (
            "unknown key",
            Cfg {
                eval: "k = 10\nkk = 3\n".into(),
                ..base.clone()
            },
            vec!["`kk`", "unknown field"],
        ),
        (
            "batch size 0",
            Cfg {
                student_train: "batch_size = 0\n".into(),
                ..base.clone()
            },
            vec!["`student.train.batch_size`"],
        ),
        (
            "batch size -1",
            Cfg {
                teacher_train: "batch_size = -1\n".into(),
                ..base.clone()
            },
            vec!["`teacher.train.batch_size`", "integer >= 0", "(at line"],
        ),
        (
            "lr 0",
            Cfg {
                teacher_train: "lr = 0.0\n".into(),
                ..base.clone()
            },
            vec!["`teacher.train.lr`", "> 0"],
        ),
        (
            "lr -0.01",
            Cfg {
                student_train: "lr = -0.01\n".into(),
                ..base.clone()
            },
            vec!["`student.train.lr`", "> 0"],
        ),
        (
            "K 0",
            Cfg {
                eval: "k = 0\n".into(),
                ..base.clone()
            },
            vec!["`eval.k`", "at least 1"],
        ),
        (
            "K -5",
            Cfg {
                eval: "k = -5\n".into(),
                ..base.clone()
            },
            vec!["`eval.k`", "integer >= 0"],
        ),
        (
            "long-read threshold -1",
            Cfg {
                data_extra: "long_read_threshold = -1.0\n".into(),
                ..base.clone()
            },
            vec!["`data.long_read_threshold`", ">= 0"],
        ),
        (
            "schema long-read threshold below 0",
            Cfg {
                schema: negative_threshold.clone(),
                ..base.clone()
            },
            vec![
                "data.schema",
                "schema_threshold.toml",
                "long_read_threshold",
            ],
        ),
        // An empty test set is an error naming where it came from: the test log, or the
        // schema's split that leaves no row in the test period.
        (
            "empty test log",
            Cfg {
                data_extra: format!("test_log = \"{}\"\n", s(&header_only)),
                ..base.clone()
            },
            vec!["header_only.csv", "no data rows"],
        ),
        (
            "split leaving no test row",
            Cfg {
                schema: late_split.clone(),
                ..base.clone()
            },
            vec!["log.csv", "split.test_from", "test set would be empty"],
        ),
    ];
    for (i, (name, cfg, phrases)) in configs.iter().enumerate() {
        let p = cfg.write(&cases_dir.join(format!("config{i}.toml")));
        let mut phrases = phrases.clone();
        let file = p.file_name().unwrap().to_str().unwrap().to_string();
        let data_error = name.contains("empty test") || name.contains("split");
        if !data_error {
            phrases.push(&file);
        }
        let fresh = t.join(format!("fresh-config{i}"));
        for out in [&fresh, &good] {
            problems.extend(expect_failure_in(
                None,
                &format!("train with {name} into {}", out.display()),
                &args(&["train", "--config", &s(&p), "--out", &s(out)]),
                &phrases,
                &[&good, &data],
                &if out == &fresh { vec![&fresh] } else { vec![] },
            ));
        }
    }

    // --- Checkpoints and vocabularies: each case is a copy of the good run with one file
    // replaced; the copy, the good run and the earlier outputs stay as they were.
    let broken = |name: &str, edit: &dyn Fn(&Path)| -> PathBuf {
        let dir = t.join(name);
        copy_dir(&good, &dir);
        edit(&dir);
        dir
    };
    let teacher_w = Path::new("teacher/teacher.safetensors");
    let student_w = Path::new("models/dmtl/student.safetensors");
    let truncate = |rel: &'static Path, keep: fn(usize) -> usize| {
        move |dir: &Path| {
            let p = dir.join(rel);
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..keep(bytes.len())]).unwrap();
        }
    };
    let (schema, vocabs, student) = checkpoints::load_student(&good, ModelName::Dmtl).unwrap();
    let teacher = dmtl_teacher::Teacher::load(&good.join("teacher"), &schema, &vocabs).unwrap();
    // Same models, other widths.
    let wide = t.join("wide");
    let mut scfg = student.config().clone();
    scfg.user_layers = vec![12, 8];
    dmtl_student::Student::new(scfg, &schema, &vocabs)
        .unwrap()
        .save(&wide.join("student"))
        .unwrap();
    let mut tcfg = teacher.config().clone();
    tcfg.expert_hidden = vec![24];
    dmtl_teacher::Teacher::new(tcfg, &schema, &vocabs)
        .unwrap()
        .save(&wide.join("teacher"))
        .unwrap();
    // Another run's vocabularies: built on half of the log, so every table is smaller.
    let raw = read_log(data.join("log.csv"), &schema, &ReadOptions::default()).unwrap();
    let half: Vec<usize> = (0..raw.n_rows / 2).collect();
    let other_vocab = t.join("other_vocab.json");
    Vocabularies::build(&schema, &raw.take(&half))
        .unwrap()
        .save(&other_vocab)
        .unwrap();

    let copy_in = |from: PathBuf, rel: &'static Path| {
        move |dir: &Path| {
            std::fs::copy(&from, dir.join(rel)).unwrap();
        }
    };
    let ck_cases: Vec<(&str, PathBuf, &str, Vec<&str>)> = vec![
        (
            "teacher cut in the header",
            broken("ck-teacher-head", &truncate(teacher_w, |_| 100)),
            "teacher",
            vec!["teacher.safetensors"],
        ),
        (
            "teacher cut in the data",
            broken("ck-teacher-data", &truncate(teacher_w, |n| n - 8)),
            "teacher",
            vec!["teacher.safetensors"],
        ),
        (
            "student cut in the length prefix",
            broken("ck-student-prefix", &truncate(student_w, |_| 5)),
            "dmtl",
            vec!["student.safetensors"],
        ),
        (
            "student cut in the data",
            broken("ck-student-data", &truncate(student_w, |n| n / 2)),
            "dmtl",
            vec!["student.safetensors"],
        ),
        (
            "a student's weights as the teacher",
            broken("ck-swap-teacher", &copy_in(good.join(student_w), teacher_w)),
            "teacher",
            vec![
                "teacher.safetensors",
                "tensor `teacher.",
                "is missing",
                "another model",
            ],
        ),
        (
            "the teacher's weights as a student",
            broken("ck-swap-student", &copy_in(good.join(teacher_w), student_w)),
            "dmtl",
            vec![
                "student.safetensors",
                "tensor `student.",
                "is missing",
                "another model",
            ],
        ),
        (
            "a teacher of other widths",
            broken(
                "ck-wide-teacher",
                &copy_in(wide.join("teacher/teacher.safetensors"), teacher_w),
            ),
            "teacher",
            vec!["teacher.safetensors", "has shape", "the model expects"],
        ),
        (
            "a student of other widths",
            broken(
                "ck-wide-student",
                &copy_in(wide.join("student/student.safetensors"), student_w),
            ),
            "dmtl",
            vec!["student.safetensors", "has shape", "the model expects"],
        ),
        (
            "another run's vocabularies (teacher)",
            broken(
                "ck-vocab-t",
                &copy_in(other_vocab.clone(), Path::new("vocab.json")),
            ),
            "teacher",
            vec![
                "vocab.json",
                "the vocabularies do not match the checkpoint",
                "teacher.safetensors",
            ],
        ),
        (
            "another run's vocabularies (student)",
            broken(
                "ck-vocab-s",
                &copy_in(other_vocab.clone(), Path::new("vocab.json")),
            ),
            "dmtl",
            vec![
                "vocab.json",
                "the vocabularies do not match the checkpoint",
                "student.safetensors",
            ],
        ),
    ];
    for (name, dir, model, phrases) in &ck_cases {
        let dn = dir.file_name().unwrap().to_str().unwrap();
        let mut phrases = phrases.clone();
        phrases.push(dn);
        let log_csv = s(&data.join("log.csv"));
        let users_csv = s(&data.join("users.csv"));
        let mut commands = vec![(
            "score",
            args(&[
                "score",
                "--run",
                &s(dir),
                "--log",
                &log_csv,
                "--model",
                *model,
                "--out",
            ]),
            scored.clone(),
        )];
        if *model != "teacher" {
            commands.push((
                "retrieve",
                args(&["retrieve", "--run", &s(dir), "--users", &users_csv, "--out"]),
                t.join(format!("{dn}-top.parquet")),
            ));
            commands.push((
                "export",
                args(&["export", "--run", &s(dir), "--out"]),
                exported.clone(),
            ));
            commands.push((
                "export (fresh)",
                args(&["export", "--run", &s(dir), "--out"]),
                t.join(format!("{dn}-export")),
            ));
        }
        for (cmd, mut a, out) in commands {
            a.push(s(&out));
            let existed = out.exists();
            problems.extend(expect_failure_in(
                None,
                &format!("{cmd} with {name}"),
                &a,
                &phrases,
                &[&good, dir, &exported, &scored],
                &if existed { vec![] } else { vec![&out] },
            ));
        }
    }
    // The teacher of another run, loaded by `stages.teacher = "load"`: refused before the new
    // run's folder is created or the existing one touched.
    let from = Cfg {
        data_extra: String::new(),
        ..base.clone()
    }
    .text()
    .replace(
        "[stages]\n",
        &format!(
            "[stages]\nteacher = \"load\"\nfrom_run = \"{}\"\n",
            s(&t.join("ck-wide-teacher"))
        ),
    );
    let from_cfg = cases_dir.join("from_run.toml");
    std::fs::write(&from_cfg, from).unwrap();
    let fresh_from = t.join("fresh-from");
    for out in [&fresh_from, &good] {
        problems.extend(expect_failure_in(
            None,
            &format!(
                "train loading a teacher of other widths into {}",
                out.display()
            ),
            &args(&["train", "--config", &s(&from_cfg), "--out", &s(out)]),
            &["ck-wide-teacher", "teacher.safetensors", "has shape"],
            &[&good, &t.join("ck-wide-teacher")],
            &if out == &good { vec![] } else { vec![out] },
        ));
    }

    // --- Users never seen in training are served, not refused: the out-of-vocabulary id,
    // `known_user = 0` in the output, and the count on stdout and stderr.
    let train_users = read_log(
        good.join(layout::USERS_FILE),
        &schema,
        &ReadOptions::table_of(&[Side::User, Side::Context]),
    )
    .unwrap();
    let known = columns::categorical(&train_users, "user_id").unwrap()[0].to_string();
    let mut q = users.clone();
    q.rows.truncate(3);
    let id = q.col("user_id");
    q.rows[0][id] = known.clone();
    q.rows[1][id] = "never-seen-1".into();
    q.rows[2][id] = "never-seen-2".into();
    let q = q.write(&cases_dir.join("new_users.csv"));
    let before = snapshot(&good);
    let top_new = t.join("top_new.csv");
    let out = dmtl(&args(&[
        "retrieve",
        "--run",
        &s(&good),
        "--users",
        &s(&q),
        "--k",
        "4",
        "--out",
        &s(&top_new),
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut check = |ok: bool, what: &str| {
        if !ok {
            problems.push(format!(
                "[unseen users] {what}\n  stdout: {stdout}\n  stderr: {stderr}"
            ));
        }
    };
    check(
        out.status.success(),
        "unseen users must be served, not refused",
    );
    check(
        !stderr.contains("panicked at") && !stderr.contains("error:"),
        "an error or a panic",
    );
    check(
        stdout.contains("2 users unseen in training"),
        "the count is not on stdout",
    );
    let notes: Vec<&str> = stderr.lines().filter(|l| l.contains("unseen")).collect();
    check(
        notes.len() == 1
            && notes[0].contains("new_users.csv")
            && notes[0].contains("2 of 3 users unseen"),
        "not one line on stderr naming the file and the count",
    );
    let text = std::fs::read_to_string(&top_new).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    check(
        lines.first() == Some(&"user_id,rank,item_id,score,known_user"),
        "the output's header",
    );
    check(lines.len() == 1 + 3 * 4, "one line per user and rank");
    // The known user's rows say 1, the unseen users' rows 0.
    check(
        lines.iter().skip(1).all(|l| {
            l.ends_with(if l.starts_with(&format!("{known},")) {
                ",1"
            } else {
                ",0"
            })
        }),
        "known_user is wrong",
    );
    check(snapshot(&good) == before, "the run folder changed");

    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A `train` over an existing run folder that fails after its input was read (here the
/// teacher's gradient overflows at lr = 1e30) leaves the folder as it was, and no build folder
/// beside it: the run is built in a sibling and swapped in only on success.
#[test]
fn a_train_that_fails_late_leaves_an_existing_run_folder_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let Setup { base, good, .. } = good_run(t);
    let cfg = Cfg {
        teacher_train: "epochs = 1\nbatch_size = 64\nlr = 1e30\n".into(),
        ..base
    }
    .write(&t.join("diverging.toml"));
    let problems = expect_failure_in(
        None,
        "train diverging over the good run",
        &args(&["train", "--config", &s(&cfg), "--out", &s(&good)]),
        &["not finite"],
        &[&good],
        &[],
    );
    let mut problems = problems;
    let parent = good.parent().unwrap();
    let leftovers: Vec<String> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    if !leftovers.is_empty() {
        problems.push(format!("left beside the run folder: {leftovers:?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
