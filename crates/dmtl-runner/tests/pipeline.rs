//! train -> score -> export -> retrieve through the functions behind the `dmtl` commands, on a
//! small simulated log written to files, with small towers and one epoch.

mod common;

use std::collections::HashSet;
use std::path::Path;

use dmtl_data::sim::SimConfig;
use dmtl_data::{read_log, Dataset, ReadOptions, Schema};
use dmtl_runner::commands;
use dmtl_runner::config::{ModelName, RunConfig};
use dmtl_runner::progress::Progress;
use dmtl_runner::{checkpoints, columns, layout, prepare};

use common::Cfg;

fn small_sim() -> SimConfig {
    SimConfig {
        n_users: 300,
        n_items: 400,
        n_impressions: 12_000,
        n_author: 50,
        seed: 5,
        ..common::small_sim()
    }
}

/// The tiny run config over the files in `data`, with DMTL and B1, and `extra` lines at the
/// end (in `[eval]`, or sections of their own).
fn run_toml(data: &Path, extra: &str) -> String {
    Cfg {
        models: r#"["dmtl", "b1"]"#.into(),
        eval: format!("k = 10\nretrieval_users = 40\n{extra}\n"),
        ..Cfg::tiny(data)
    }
    .text()
}

fn read_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn train_score_export_retrieve_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    commands::simulate(&data, small_sim(), false).unwrap();
    let cfg_path = tmp.path().join("run.toml");
    std::fs::write(&cfg_path, run_toml(&data, "")).unwrap();

    // train: the run folder holds every promised file.
    let quiet = Progress::new(true);
    let out = tmp.path().join("run");
    let (dir, metrics) = commands::train(&cfg_path, Some(&out), &quiet).unwrap();
    for f in [
        layout::CONFIG_FILE,
        layout::SCHEMA_FILE,
        layout::VOCAB_FILE,
        layout::ITEMS_FILE,
        layout::USERS_FILE,
        layout::METRICS_FILE,
        layout::REPORT_FILE,
        "teacher/teacher.safetensors",
        "models/dmtl/student.safetensors",
        "models/b1/student.safetensors",
        "plots/train_loss.svg",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let names: Vec<&str> = metrics.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["teacher", "dmtl", "b1", "random"]);
    // The resolved config reads back to the same configuration.
    let resolved = RunConfig::load(&dir.join(layout::CONFIG_FILE)).unwrap();
    assert_eq!(resolved, RunConfig::load(&cfg_path).unwrap());
    let report = std::fs::read_to_string(dir.join(layout::REPORT_FILE)).unwrap();
    assert!(report.contains("| DMTL (distilled two-tower) |"));

    // score: one row per log row, raw ids in log order; pCTCVR = pCTR * pCVR.
    let log = data.join("log.csv");
    let schema = Schema::load(data.join("schema.toml")).unwrap();
    let raw = read_log(&log, &schema, &ReadOptions::default()).unwrap();
    let raw_users = columns::categorical(&raw, "user_id").unwrap().to_vec();
    let scored_csv = tmp.path().join("teacher_scores.csv");
    let t = commands::score(&dir, &log, &scored_csv, ModelName::Teacher).unwrap();
    assert_eq!(t.user_ids, raw_users);
    let names: Vec<&str> = t.columns.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, ["p_ctr", "p_cvr", "p_ctcvr"]);
    for r in 0..raw.n_rows {
        let (a, b, c) = (t.columns[0].1[r], t.columns[1].1[r], t.columns[2].1[r]);
        assert!((a * b - c).abs() < 1e-6 && (0.0..=1.0).contains(&c));
    }
    let lines = read_lines(&scored_csv);
    assert_eq!(lines.len(), raw.n_rows + 1);
    assert_eq!(lines[0], "user_id,item_id,p_ctr,p_cvr,p_ctcvr");
    assert!(lines[1].starts_with(&format!("{},", raw_users[0])));
    let s = commands::score(
        &dir,
        &log,
        &tmp.path().join("dmtl.parquet"),
        ModelName::Dmtl,
    )
    .unwrap();
    assert_eq!(s.columns[0].0, "score");
    assert_eq!(s.columns[1].1.len(), raw.n_rows);
    assert!(tmp.path().join("dmtl.parquet").is_file());

    // Reloaded checkpoints score like the model in memory: the test metrics written during
    // training were computed by the in-memory models, and the reloaded ones reproduce them.
    let (schema_run, vocabs) = checkpoints::load_run_basics(&dir).unwrap();
    let cfg = RunConfig::load(&cfg_path).unwrap();
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let prep = prepare::prepare(&cfg, &scratch, &quiet).unwrap();
    assert_eq!(prep.schema, schema_run);
    let (_, _, dmtl) = checkpoints::load_student(&dir, ModelName::Dmtl).unwrap();
    let test_scores = dmtl.score_dataset(&prep.test).unwrap();
    let want = metrics.models[1].offline.as_ref().unwrap();
    let got = dmtl_metrics::auc(&test_scores, &prep.test.long_read);
    assert_eq!(got, want.long_read_auc, "reloaded DMTL student");
    let teacher = dmtl_teacher::Teacher::load(&dir.join("teacher"), &schema_run, &vocabs).unwrap();
    let tp = teacher.predict(&prep.test).unwrap();
    let want = metrics.models[0].offline.as_ref().unwrap();
    assert_eq!(
        dmtl_metrics::auc(&tp.p_ctcvr, &prep.test.long_read),
        want.long_read_auc
    );
    assert_eq!(
        dmtl_metrics::auc(&tp.p_ctr, &prep.test.click),
        want.click_auc
    );

    // export: shapes, ids, and vectors that reproduce the student's scores.
    let ex = tmp.path().join("export");
    let m = commands::export(&dir, &ex, ModelName::Dmtl).unwrap();
    let (users_v, items_v) = dmtl_student::export::load_vectors(&ex).unwrap();
    let (uv, iv, uids, iids) = (users_v.vectors, items_v.vectors, users_v.ids, items_v.ids);
    assert_eq!(m.dim, 8);
    assert_eq!(uv.dim(), (uids.len(), 8));
    assert_eq!(iv.dim(), (iids.len(), 8));
    assert_eq!(iids.len(), 400, "the corpus is the whole item table");
    assert_eq!(iids.iter().collect::<HashSet<_>>().len(), iids.len());
    let train_users: HashSet<&str> = prep
        .train
        .in_memory()
        .expect("a small log is read into memory")
        .user_ids
        .iter()
        .map(String::as_str)
        .collect();
    assert!(uids.iter().all(|u| train_users.contains(u.as_str())));
    assert_eq!(uids.len(), train_users.len());

    // retrieve: the run's own user table scores exactly like the exported vectors; an unseen
    // user is served (OOV id embedding) and counted.
    let r =
        commands::retrieve_users(&dir, &dir.join(layout::USERS_FILE), 10, ModelName::Dmtl).unwrap();
    assert_eq!(r.user_ids, uids);
    let item_row: std::collections::HashMap<&str, usize> = iids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    for q in [0, uids.len() / 2, uids.len() - 1] {
        assert_eq!(r.items[q].len(), 10);
        let dots: Vec<f32> = r.items[q]
            .iter()
            .map(|it| uv.row(q).dot(&iv.row(item_row[it.as_str()])))
            .collect();
        for (d, s) in dots.iter().zip(&r.scores[q]) {
            assert!((d - s).abs() < 1e-4 * (1.0 + d.abs()), "{d} vs {s}");
        }
        assert!(r.scores[q].windows(2).all(|w| w[0] >= w[1]), "best first");
        // Brute force: no item outside the list beats the list's last score.
        let last = *r.scores[q].last().unwrap();
        let better = (0..iids.len())
            .filter(|&i| uv.row(q).dot(&iv.row(i)) > last + 1e-4)
            .count();
        assert!(better <= 9);
    }
    let users_csv = data.join("users.csv");
    let mut lines = read_lines(&users_csv);
    lines.truncate(4);
    let fresh = lines[1].replacen(
        &lines[1].split(',').next().unwrap().to_string(),
        "brand-new-user",
        1,
    );
    lines.push(fresh);
    let qfile = tmp.path().join("queries.csv");
    std::fs::write(&qfile, lines.join("\n") + "\n").unwrap();
    let out_csv = tmp.path().join("top.csv");
    let r = commands::retrieve(&dir, &qfile, 5, &out_csv, ModelName::Dmtl).unwrap();
    assert_eq!(r.user_ids.len(), 4);
    assert_eq!(r.user_ids[3], "brand-new-user");
    assert!(!r.known_user[3]);
    assert_eq!(r.items[3].len(), 5);
    let out_lines = read_lines(&out_csv);
    assert_eq!(out_lines.len(), 1 + 4 * 5);
    assert_eq!(out_lines[0], "user_id,rank,item_id,score,known_user");
    assert!(out_lines.last().unwrap().starts_with("brand-new-user,5,"));
    assert!(out_lines.last().unwrap().ends_with(",0"));

    // Encoding the log through the run's vocabularies gives the training vocabulary sizes.
    let enc = Dataset::encode(&schema_run, &raw, &vocabs).unwrap();
    assert_eq!(enc.n_rows, raw.n_rows);
}

#[test]
fn bad_configs_stop_before_any_work_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    commands::simulate(
        &data,
        SimConfig {
            n_impressions: 2_000,
            ..small_sim()
        },
        false,
    )
    .unwrap();
    let cases = [
        (
            "[student.train]\nbatch_size = 0\n",
            "student.train.batch_size",
        ),
        ("[teacher.train]\nlr = -1.0\n", "teacher.train.lr"),
        ("[eval]\nk = 0\n", "eval.k"),
        (
            "[student.objective]\ntype = \"distill\"\nalpha = 2.0\n",
            "student.objective.alpha",
        ),
    ];
    let quiet = Progress::new(true);
    for (i, (extra, key)) in cases.iter().enumerate() {
        // The extra keys replace a section the base already has, so append to a copy
        // without that section.
        let base = run_toml(&data, "");
        let text = merge(&base, extra);
        let p = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&p, text).unwrap();
        let out = tmp.path().join(format!("out{i}"));
        let err = commands::train(&p, Some(&out), &quiet).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(key), "{key} not named in: {msg}");
        assert!(
            msg.contains(&p.display().to_string()),
            "file not named in: {msg}"
        );
        assert!(!out.exists(), "a run folder was created for a bad config");
    }
    // A missing file is named with its key.
    let p = tmp.path().join("missing.toml");
    std::fs::write(&p, run_toml(&data, "").replace("log.csv", "nope.csv")).unwrap();
    let msg = format!("{:#}", commands::train(&p, None, &quiet).unwrap_err());
    assert!(
        msg.contains("data.log") && msg.contains("nope.csv"),
        "{msg}"
    );
    // A syntax error and an unknown key are reported with the file.
    std::fs::write(&p, "[data\n").unwrap();
    assert!(format!("{:#}", RunConfig::load(&p).unwrap_err()).contains("missing.toml"));
    std::fs::write(&p, run_toml(&data, "[eval]\nbatch = 3\n")).unwrap();
    assert!(RunConfig::load(&p).is_err());
}

/// `base` with the keys of `extra` set: a section header in `extra` already present in `base`
/// gets the new lines right after it (a TOML table cannot be declared twice).
fn merge(base: &str, extra: &str) -> String {
    let mut out = base.to_string();
    let mut header = None;
    for line in extra.lines() {
        if line.starts_with('[') {
            header = Some(line.to_string());
            continue;
        }
        let h = header.as_deref().expect("extra starts with a header");
        if let Some(pos) = out.find(&format!("{h}\n")) {
            let at = pos + h.len() + 1;
            // Drop an existing assignment of the same key in that section.
            let key = line.split('=').next().unwrap().trim();
            let section_end = out[at..].find("\n[").map_or(out.len(), |e| at + e + 1);
            let section: String = out[at..section_end]
                .lines()
                .filter(|l| l.split('=').next().unwrap().trim() != key)
                .map(|l| format!("{l}\n"))
                .collect();
            out = format!("{}{line}\n{section}{}", &out[..at], &out[section_end..]);
        } else {
            out.push_str(&format!("{h}\n{line}\n"));
        }
    }
    out
}

#[test]
fn demo_precision_reaches_every_model_and_defaults_to_f32() {
    use dmtl_runner::commands::DemoOptions;
    use dmtl_runner::Scale;
    use dmtl_tensor::Precision;
    let tmp = tempfile::tempdir().unwrap();
    let quiet = Progress::new(true);
    for (name, precision, want) in [
        ("default", None, Precision::F32),
        ("bf16", Some(Precision::Bf16), Precision::Bf16),
    ] {
        let out = tmp.path().join(name);
        let r = commands::demo(
            &DemoOptions {
                seeds: 1,
                scale: Scale::Tiny,
                out: Some(out.clone()),
                k: None,
                epochs: Some(1),
                precision,
            },
            &quiet,
        )
        .unwrap();
        let cfg = RunConfig::load(&r.dir.join(layout::CONFIG_FILE)).unwrap();
        assert_eq!(cfg.teacher.train.precision, want, "{name}: teacher");
        assert_eq!(cfg.student.train.precision, want, "{name}: students");
        assert_eq!(r.runs.len(), 1);
    }
}
