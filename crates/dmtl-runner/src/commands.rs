//! The library functions behind the `dmtl` commands; `main.rs` only parses arguments and calls
//! these, so tests and other programs can run the same steps.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dmtl_data::sim::{SimConfig, Simulator};
use dmtl_data::{read_log, write_csv, write_parquet, Dataset, ReadOptions, Schema, Side};
use dmtl_student::retrieval::top_k;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::checkpoints::{
    load_run_basics, load_student, load_teacher, missing_model, model_dir, run_corpus,
};
use crate::columns::{all_rows, categorical, oov_count};
use crate::config::{demo_config, ModelName, RunConfig, Scale};
use crate::fsutil::{
    check_off_inputs, check_output, check_train_out, create_run_dir, killed_build_hint,
    run_dir_path, write_text, RunLock, StagedRunDir,
};
use crate::layout::{CONFIG_FILE, SCHEMA_FILE, STATE_DIR, USERS_FILE, VOCAB_FILE};
use crate::metrics::RunMetrics;
use crate::pipeline::{run_pipeline, run_pipeline_with};
use crate::progress::Progress;
use crate::report::{table_over_seeds, write_demo, DemoMetrics};
use crate::states::States;
use crate::table::{check_output_path, write_table, Column};

/// Runs `dmtl train`: the pipeline of the configuration file into a run folder (`out`, or
/// `runs/train-<timestamp>`). The configuration, the data and (with `stages.teacher = "load"`)
/// the earlier run's teacher are checked before anything is written: bad input leaves `out`
/// as it was, or not created. The run is built in a sibling folder and swapped in whole once
/// complete, so a run failing later (the teacher diverges, the disk fills) also leaves `out`
/// as it was ([`StagedRunDir`]). An existing `out` must be a run folder holding nothing else
/// ([`check_train_out`]), and the run folder is locked for the whole command ([`RunLock`]).
pub fn train(
    config: &Path,
    out: Option<&Path>,
    progress: &Progress,
) -> Result<(PathBuf, RunMetrics)> {
    let cfg = RunConfig::load(config)?;
    train_config(&cfg, out, progress)
}

/// [`train`] with a configuration already in memory (validated by the caller).
pub fn train_config(
    cfg: &RunConfig,
    out: Option<&Path>,
    progress: &Progress,
) -> Result<(PathBuf, RunMetrics)> {
    if let Some(out) = out {
        check_train_out(out)?;
        check_off_inputs("--out", out, &crate::inputs::input_files(cfg))?;
    }
    let dir = run_dir_path(out, "train");
    let _lock = RunLock::exclusive(&dir, "dmtl train")?;
    info!(dir = %dir.display(), "run folder");
    let seed = cfg.student.seed;
    // The build folder is created by the pipeline once the data has been read (bad input
    // creates nothing) and removed when the pipeline fails. A resumed run instead keeps
    // writing into `dir` itself ([`train_resume`]).
    let stage = StagedRunDir::new(&dir)?;
    match run_pipeline_with(cfg, stage.path(), "train", seed, States::Fresh, progress) {
        Ok(m) => {
            let dir = stage.commit()?;
            Ok((dir, m))
        }
        // A requested stop: the states are saved, so the partial run is moved into place
        // (replacing an earlier folder there) to be resumed.
        Err(e) if interrupted(&e) => {
            let dir = stage.commit()?;
            Err(e.context(resume_hint(&dir)))
        }
        Err(e) => Err(e),
    }
}

/// Whether a training error is a requested stop (`stop_after_batches`) after which the state
/// was saved.
pub(crate) fn interrupted(e: &anyhow::Error) -> bool {
    use dmtl_teacher::TrainError::Interrupted;
    matches!(
        e.downcast_ref(),
        Some(dmtl_teacher::TeacherError::Train(Interrupted { .. }))
    ) || matches!(
        e.downcast_ref(),
        Some(dmtl_student::StudentError::Train(Interrupted { .. }))
    )
}

fn resume_hint(dir: &Path) -> String {
    format!(
        "the run stopped part-way (stop_after_batches); its training states are in {}: \
         continue it with `dmtl train --resume {}`",
        dir.join(STATE_DIR).display(),
        dir.display()
    )
}

/// Runs `dmtl train --resume RUN_DIR`: continues the run in the run folder `run` in place.
///
/// The run's own `config.toml`, schema and vocabularies are reused (the log it names is read
/// and split again with the same seeds, and encoded with the saved vocabularies, so the
/// resumed run sees exactly the rows the first one did); every stage continues from its state
/// under `run/state/<stage>/` (a stage whose state says it is done is loaded from it, not
/// retrained; a stage without a state starts afresh). `stop_after_batches` of the saved
/// configuration is ignored. Outputs are written into `run` file by file, atomically.
///
/// Fails, naming the folder, when `run` is not a run folder or another process holds it
/// ([`RunLock`]); naming the key and the file when an input changed since the run started
/// ([`crate::inputs::check`]); and naming the file and the key when a state does not match
/// the configuration.
pub fn train_resume(run: &Path, progress: &Progress) -> Result<(PathBuf, RunMetrics)> {
    if !run.is_dir() {
        bail!(
            "{}: no such run folder to resume{}",
            run.display(),
            killed_build_hint(run)
        );
    }
    let _lock = RunLock::exclusive(run, "dmtl train --resume")?;
    for f in [CONFIG_FILE, SCHEMA_FILE, VOCAB_FILE] {
        if !run.join(f).is_file() {
            bail!(
                "{}: not a run folder of `dmtl train` (no {f}); nothing to resume",
                run.display()
            );
        }
    }
    let mut cfg = RunConfig::load(&run.join(CONFIG_FILE))
        .with_context(|| format!("{}: reading the run's configuration", run.display()))?;
    cfg.teacher.train.stop_after_batches = None;
    cfg.student.train.stop_after_batches = None;
    crate::inputs::check(&cfg, run)?;
    info!(dir = %run.display(), "resuming the run");
    let seed = cfg.student.seed;
    let m = run_pipeline_with(&cfg, run, "train", seed, States::Resume, progress)
        .with_context(|| format!("resuming the run {}", run.display()))?;
    Ok((run.to_path_buf(), m))
}

/// Options of `dmtl demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Repeat with seeds 1..=seeds.
    pub seeds: usize,
    /// The simulator's scale.
    pub scale: Scale,
    /// The run folder (default `runs/demo-<timestamp>`).
    pub out: Option<PathBuf>,
    /// Retrieval list length.
    pub k: Option<usize>,
    /// Override the epochs of every model (quick trials).
    pub epochs: Option<usize>,
    /// Override the training precision of the teacher and the students
    /// (`[teacher.train] precision`, `[student.train] precision`).
    pub precision: Option<dmtl_tensor::Precision>,
}

/// What a demo produced.
#[derive(Debug, Clone)]
pub struct DemoResult {
    /// The run folder.
    pub dir: PathBuf,
    /// The table (markdown), mean ± std over seeds when more than one.
    pub table: String,
    /// Each seed's metrics.
    pub runs: Vec<RunMetrics>,
}

/// Runs `dmtl demo`: for each seed, simulate, train the teacher, distil DMTL, train B1-B3,
/// evaluate; one sub-folder per seed when there are several, and the combined table.
pub fn demo(opts: &DemoOptions, progress: &Progress) -> Result<DemoResult> {
    if opts.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let start = std::time::Instant::now();
    let dir = create_run_dir(opts.out.as_deref(), "demo")?;
    let _lock = RunLock::exclusive(&dir, "dmtl demo")?;
    let mut runs = Vec::new();
    let mut k = 100;
    for seed in 1..=opts.seeds as u64 {
        let mut cfg = demo_config(opts.scale, seed);
        if let Some(kk) = opts.k {
            cfg.eval.k = kk;
        }
        if let Some(e) = opts.epochs {
            cfg.teacher.train.epochs = e;
            cfg.student.train.epochs = e;
        }
        if let Some(p) = opts.precision {
            cfg.teacher.train.precision = p;
            cfg.student.train.precision = p;
        }
        cfg.validate("<demo>")?;
        k = cfg.eval.k;
        let sub = if opts.seeds > 1 {
            dir.join(format!("seed-{seed}"))
        } else {
            dir.clone()
        };
        std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        if !progress.is_quiet() {
            eprintln!("== seed {seed} of {} -> {}", opts.seeds, sub.display());
        }
        let m = run_pipeline(&cfg, &sub, "demo", seed, progress)?;
        if !progress.is_quiet() && opts.seeds > 1 {
            eprintln!(
                "seed {seed} done in {:.0} s\n{}",
                m.wall_seconds,
                crate::report::table(&m.models, k)
            );
        }
        runs.push(m);
    }
    let all: Vec<_> = runs.iter().map(|r| r.models.clone()).collect();
    let table = table_over_seeds(&all, k);
    if opts.seeds > 1 {
        let dm = DemoMetrics {
            seeds: (1..=opts.seeds as u64).collect(),
            scale: opts.scale,
            runs: runs.clone(),
            wall_seconds: start.elapsed().as_secs_f64(),
        };
        write_demo(&dir, &dm, &table)?;
    }
    Ok(DemoResult { dir, table, runs })
}

/// Runs `dmtl simulate`: writes the simulated log, its schema, the item catalogue and the user
/// table into `out` (CSV or Parquet).
pub fn simulate(out: &Path, cfg: SimConfig, parquet: bool) -> Result<Vec<PathBuf>> {
    let sim = Simulator::try_new(cfg).map_err(|e| anyhow::anyhow!("simulator: {e}"))?;
    let schema_text = sim.schema_toml();
    let schema = Schema::from_toml_str(&schema_text, "the simulator's schema")?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ext = if parquet { "parquet" } else { "csv" };
    let write = |raw: &dmtl_data::RawLog, name: &str| -> Result<PathBuf> {
        let p = out.join(format!("{name}.{ext}"));
        if parquet {
            write_parquet(raw, &schema, &p)?;
        } else {
            write_csv(raw, &schema, &p)?;
        }
        Ok(p)
    };
    let schema_path = out.join("schema.toml");
    write_text(&schema_path, &schema_text)?;
    let log = write(&sim.impressions(), "log")?;
    let items = write(&sim.item_table(), "items")?;
    let users: Vec<usize> = (0..sim.n_users()).collect();
    let users = write(&sim.user_table(&users), "users")?;
    Ok(vec![schema_path, log, items, users])
}

/// Per-impression predictions of one model for a log.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The raw user id of each row.
    pub user_ids: Vec<String>,
    /// The raw item id of each row.
    pub item_ids: Vec<String>,
    /// Named prediction columns (teacher: `p_ctr`, `p_cvr`, `p_ctcvr`; two towers: `score`,
    /// `probability`), one value per row.
    pub columns: Vec<(String, Vec<f32>)>,
    /// Rows whose user id was not in the training vocabulary.
    pub unseen_users: usize,
    /// Rows whose item id was not in the training vocabulary.
    pub unseen_items: usize,
}

/// Scores every row of `log` with `model` of the run folder `run`, using the run's schema and
/// vocabularies (ids unseen in training map to the out-of-vocabulary row). Labels are not
/// needed.
pub fn score_log(run: &Path, log: &Path, model: ModelName) -> Result<Scored> {
    let (schema, vocabs) = load_run_basics(run)?;
    let opts = ReadOptions {
        require_labels: false,
        ..ReadOptions::default()
    };
    let raw = read_log(log, &schema, &opts)?;
    let data = Dataset::encode(&schema, &raw, &vocabs)?;
    let ids = |name: &str| -> Vec<String> {
        categorical(&raw, name)
            .map(|v| v.to_vec())
            .unwrap_or_else(|_| vec![String::new(); raw.n_rows])
    };
    let columns = match model {
        ModelName::Teacher => {
            let dir = model_dir(run, model);
            if !dir.join(dmtl_teacher::teacher::CONFIG_FILE).is_file() {
                return Err(missing_model(run, model));
            }
            let t = load_teacher(run, &dir, &schema, &vocabs)
                .with_context(|| format!("loading the teacher of {}", run.display()))?;
            let s = t.predict(&data)?;
            vec![
                ("p_ctr".to_string(), s.p_ctr),
                ("p_cvr".to_string(), s.p_cvr),
                ("p_ctcvr".to_string(), s.p_ctcvr),
            ]
        }
        m => {
            let (_, _, st) = load_student(run, m)?;
            let s = st.score_dataset(&data)?;
            let p = s.iter().map(|&x| dmtl_loss::stable::sigmoid(x)).collect();
            vec![("score".to_string(), s), ("probability".to_string(), p)]
        }
    };
    Ok(Scored {
        user_ids: ids(&schema.ids.user),
        item_ids: ids(&schema.ids.item),
        columns,
        unseen_users: oov_count(&data, &schema, &schema.ids.user),
        unseen_items: oov_count(&data, &schema, &schema.ids.item),
    })
}

/// Runs `dmtl score`: [`score_log`] written to `out` (.csv or .parquet) with the raw user and
/// item ids first. `out` may not be the log or lie in a run folder ([`check_output`]); the run
/// folder is locked for reading ([`RunLock::shared`]).
pub fn score(run: &Path, log: &Path, out: &Path, model: ModelName) -> Result<Scored> {
    check_output_path(out)?;
    check_output("--out", out, &[("log", log)], Some(run))?;
    let _lock = RunLock::shared(run)?;
    let s = score_log(run, log, model)?;
    let mut cols: Vec<(&str, Column)> = vec![
        ("user_id", Column::Str(s.user_ids.clone())),
        ("item_id", Column::Str(s.item_ids.clone())),
    ];
    for (name, v) in &s.columns {
        cols.push((name.as_str(), Column::F32(v.clone())));
    }
    write_table(out, &cols)?;
    Ok(s)
}

/// What `dmtl export` wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportManifest {
    /// The model exported.
    pub model: String,
    /// Vector dimension.
    pub dim: usize,
    /// Users exported (rows of `user_vectors.npy`, entries of `user_ids.npy`).
    pub users: usize,
    /// Items exported (rows of `item_vectors.npy`, entries of `item_ids.npy`).
    pub items: usize,
}

/// Runs `dmtl export` through `dmtl_student::export`: `user_vectors.npy` (users x dim, f32)
/// for every training user (with the context of their first training row),
/// `item_vectors.npy` (items x dim) for the run's corpus, `user_ids.npy` / `item_ids.npy` (the
/// raw ids in row order, numpy unicode arrays), `vectors.json`, the student's checkpoint and
/// the vocabularies, into `out`, which may not lie in a run folder ([`check_output`]).
pub fn export(run: &Path, out: &Path, model: ModelName) -> Result<ExportManifest> {
    use dmtl_student::export::Vectors;
    check_output("--out", out, &[], Some(run))?;
    let _lock = RunLock::shared(run)?;
    let (schema, vocabs, st) = load_student(run, model)?;
    let (_, corpus) = run_corpus(run, &schema, &vocabs)?;
    let users_raw = read_log(
        run.join(USERS_FILE),
        &schema,
        &ReadOptions::table_of(&[Side::User, Side::Context]),
    )?;
    let users = Dataset::encode(&schema, &users_raw, &vocabs)?;
    let uv = Vectors::users(&st, &users)?;
    let iv = Vectors::items(&st, &corpus)?;
    dmtl_student::export::export(out, &st, &vocabs, &uv, &iv)?;
    Ok(ExportManifest {
        model: model.as_str().to_string(),
        dim: st.dim(),
        users: uv.ids.len(),
        items: iv.ids.len(),
    })
}

/// The retrieved lists of `dmtl retrieve`.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieved {
    /// The raw user id of each query row.
    pub user_ids: Vec<String>,
    /// Per query row, the raw ids of the top-K items, best first.
    pub items: Vec<Vec<String>>,
    /// Per query row, the scores (logits) of those items.
    pub scores: Vec<Vec<f32>>,
    /// Per query row, whether its user id was seen in training (unseen users get the
    /// out-of-vocabulary embedding; their other features still count).
    pub known_user: Vec<bool>,
}

/// Top-`k` items of the run's corpus for every row of `users` (a table of user and context
/// columns, CSV or Parquet), from `model` of the run.
pub fn retrieve_users(run: &Path, users: &Path, k: usize, model: ModelName) -> Result<Retrieved> {
    if k == 0 {
        bail!("--k must be at least 1");
    }
    let (schema, vocabs, st) = load_student(run, model)?;
    let raw = read_log(
        users,
        &schema,
        &ReadOptions::table_of(&[Side::User, Side::Context]),
    )?;
    let user_ids = categorical(&raw, &schema.ids.user)
        .with_context(|| {
            format!(
                "{}: the user table needs the user id column",
                users.display()
            )
        })?
        .to_vec();
    let q = Dataset::encode(&schema, &raw, &vocabs)?;
    let col = schema
        .column_index(&schema.ids.user)
        .expect("the schema validates its id columns");
    let known_user: Vec<bool> = match &q.fields[col] {
        dmtl_data::FieldData::Ids(v) => v.iter().map(|&x| x != dmtl_data::OOV).collect(),
        _ => vec![true; q.n_rows],
    };
    let (item_ids, corpus) = run_corpus(run, &schema, &vocabs)?;
    let uv = st.user_vectors(&q, &all_rows(q.n_rows))?;
    let iv = st.item_vectors(&corpus, &all_rows(corpus.n_rows))?;
    // At most the corpus, before the users x K lists are allocated.
    let k = k.min(item_ids.len().max(1));
    let top = top_k(uv.view(), iv.view(), k, None)?;
    let mut items = Vec::with_capacity(q.n_rows);
    let mut scores = Vec::with_capacity(q.n_rows);
    for (ri, rs) in top.indices.outer_iter().zip(top.scores.outer_iter()) {
        let keep: Vec<usize> = (0..ri.len())
            .filter(|&j| (ri[j] as usize) < item_ids.len())
            .collect();
        items.push(
            keep.iter()
                .map(|&j| item_ids[ri[j] as usize].clone())
                .collect(),
        );
        scores.push(keep.iter().map(|&j| rs[j]).collect());
    }
    Ok(Retrieved {
        user_ids,
        items,
        scores,
        known_user,
    })
}

/// Runs `dmtl retrieve`: [`retrieve_users`] written to `out` (.csv or .parquet) in long form,
/// one line per (user, rank): `user_id, rank, item_id, score, known_user`. `out` may not be the
/// users file or lie in a run folder ([`check_output`]).
pub fn retrieve(
    run: &Path,
    users: &Path,
    k: usize,
    out: &Path,
    model: ModelName,
) -> Result<Retrieved> {
    check_output_path(out)?;
    check_output("--out", out, &[("users file", users)], Some(run))?;
    let _lock = RunLock::shared(run)?;
    let r = retrieve_users(run, users, k, model)?;
    let (mut u, mut rank, mut it, mut sc, mut known) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for q in 0..r.user_ids.len() {
        for (j, (item, s)) in r.items[q].iter().zip(&r.scores[q]).enumerate() {
            u.push(r.user_ids[q].clone());
            rank.push(j as u32 + 1);
            it.push(item.clone());
            sc.push(*s);
            known.push(u32::from(r.known_user[q]));
        }
    }
    write_table(
        out,
        &[
            ("user_id", Column::Str(u)),
            ("rank", Column::U32(rank)),
            ("item_id", Column::Str(it)),
            ("score", Column::F32(sc)),
            ("known_user", Column::U32(known)),
        ],
    )?;
    Ok(r)
}
