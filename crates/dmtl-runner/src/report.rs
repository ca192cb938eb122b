//! The paper's table (one run, or mean ± std over seeds), `metrics.json` and `report.md`, of a
//! run and of a demo over several seeds.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::config::Scale;
use crate::eval::mean_std;
use crate::fsutil::write_text;
use crate::layout::{METRICS_FILE, PLOTS_DIR, REPORT_FILE};
use crate::metrics::{ModelResult, RunMetrics};
use crate::plots::Plot;

/// One column of the table: its header and how to read its value from a row.
struct Column {
    header: String,
    get: fn(&ModelResult) -> Option<f64>,
    digits: usize,
}

fn columns(k: usize) -> Vec<Column> {
    vec![
        Column {
            header: "click AUC".into(),
            get: |m| m.offline.as_ref().and_then(|o| o.click_auc),
            digits: 4,
        },
        Column {
            header: "long-read AUC".into(),
            get: |m| m.offline.as_ref().and_then(|o| o.long_read_auc),
            digits: 4,
        },
        Column {
            header: "long-read GAUC".into(),
            get: |m| m.offline.as_ref().and_then(|o| o.long_read_gauc),
            digits: 4,
        },
        Column {
            header: format!("top-{k} true read s"),
            get: |m| m.retrieval.as_ref().and_then(|r| r.true_read_seconds),
            digits: 2,
        },
        Column {
            header: format!("top-{k} true long-read p"),
            get: |m| m.retrieval.as_ref().and_then(|r| r.true_long_read_p),
            digits: 4,
        },
        Column {
            header: "click-bait share".into(),
            get: |m| m.retrieval.as_ref().and_then(|r| r.clickbait_share),
            digits: 3,
        },
        Column {
            header: "median train impressions of top-K".into(),
            get: |m| {
                m.retrieval
                    .as_ref()
                    .and_then(|r| r.median_train_impressions)
            },
            digits: 0,
        },
        Column {
            header: format!("recall@{k}"),
            get: |m| m.retrieval.as_ref().and_then(|r| r.recall_at_k),
            digits: 4,
        },
    ]
}

/// The table of one run in markdown; columns without any value (e.g. truth columns on real
/// logs) are left out.
pub fn table(models: &[ModelResult], k: usize) -> String {
    table_over_seeds(&[models.to_vec()], k)
}

/// The table of several runs of the same models (one `Vec` per seed): `mean ± std` per cell
/// when there is more than one run. Rows follow the first run's order.
pub fn table_over_seeds(runs: &[Vec<ModelResult>], k: usize) -> String {
    let cols: Vec<Column> = columns(k)
        .into_iter()
        .filter(|c| runs.iter().flatten().any(|m| (c.get)(m).is_some()))
        .collect();
    let mut out = String::new();
    let _ = write!(out, "| model |");
    for c in &cols {
        let _ = write!(out, " {} |", c.header);
    }
    out.push('\n');
    out.push_str("|---|");
    for _ in &cols {
        out.push_str("---:|");
    }
    out.push('\n');
    let Some(first) = runs.first() else {
        return out;
    };
    for row in first {
        let _ = write!(out, "| {} |", row.label);
        for c in &cols {
            let values: Vec<Option<f64>> = runs
                .iter()
                .map(|r| r.iter().find(|m| m.name == row.name).and_then(c.get))
                .collect();
            let cell = match mean_std(&values) {
                None => "–".to_string(),
                Some((m, _)) if runs.len() == 1 => format!("{m:.*}", c.digits),
                Some((m, s)) => format!("{m:.*} ± {s:.*}", c.digits, c.digits),
            };
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}

/// Writes `metrics.json`, the plots and `report.md` of one run into `dir`.
pub fn write_run(dir: &Path, metrics: &RunMetrics, k: usize) -> Result<()> {
    write_text(
        &dir.join(METRICS_FILE),
        &serde_json::to_string_pretty(metrics)?,
    )?;
    let plots =
        crate::plots::write_all(&dir.join(PLOTS_DIR), std::slice::from_ref(&metrics.models))?;
    let mut md = String::new();
    let d = &metrics.data;
    let _ = writeln!(
        md,
        "# dmtl {} run (seed {})\n",
        metrics.command, metrics.seed
    );
    let _ = writeln!(md, "Data: {}.\n", d.source);
    let _ = writeln!(
        md,
        "Training rows {}, validation rows {}, test rows {}; training click rate {:.4}, long-read \
         rate {:.4}; corpus {} items; retrieval evaluated on {} test users. Wall time {:.1} s on \
         {} threads.\n",
        d.train_rows,
        d.valid_rows,
        d.test_rows,
        d.train_ctr,
        d.train_long_read_rate,
        d.corpus_items,
        d.retrieval_users,
        metrics.wall_seconds,
        metrics.threads
    );
    md.push_str(&table(&metrics.models, k));
    md.push('\n');
    md.push_str(LEGEND);
    md.push_str("\n## Training\n\n| model | epochs | best epoch | seconds | impressions/s |\n|---|---:|---:|---:|---:|\n");
    for m in metrics.models.iter().filter(|m| !m.history.is_empty()) {
        let ips = m
            .history
            .iter()
            .map(|e| e.impressions_per_second)
            .sum::<f64>()
            / m.history.len() as f64;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.0} |",
            m.label,
            m.history.len(),
            m.best_epoch.map_or("last".into(), |e| (e + 1).to_string()),
            m.train_seconds,
            ips
        );
    }
    md.push_str("\n## Plots\n\n");
    md.push_str(&plot_list(&plots));
    write_text(&dir.join(REPORT_FILE), &md)
}

/// The combined metrics of a demo over several seeds (`metrics.json` at the top of the folder).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoMetrics {
    /// The seeds run.
    pub seeds: Vec<u64>,
    /// The simulator's scale.
    pub scale: Scale,
    /// Each seed's metrics.
    pub runs: Vec<RunMetrics>,
    /// Wall-clock seconds of the whole demo.
    pub wall_seconds: f64,
}

/// Writes the top of a demo folder over several seeds into `dir`: `metrics.json` (`demo`),
/// the plots over the seeds, and `report.md` with `table` (mean ± std, [`table_over_seeds`]).
pub fn write_demo(dir: &Path, demo: &DemoMetrics, table: &str) -> Result<()> {
    write_text(
        &dir.join(METRICS_FILE),
        &serde_json::to_string_pretty(demo)?,
    )?;
    let all: Vec<_> = demo.runs.iter().map(|r| r.models.clone()).collect();
    let plots = crate::plots::write_all(&dir.join(PLOTS_DIR), &all)?;
    let source = demo.runs.first().map_or("", |r| r.data.source.as_str());
    let mut md = format!(
        "# dmtl demo, {} seeds (mean ± std)\n\nScale `{:?}`: {}. Wall time {:.0} s.\n\n",
        demo.seeds.len(),
        demo.scale,
        source,
        demo.wall_seconds
    );
    md.push_str(table);
    md.push('\n');
    md.push_str(LEGEND);
    md.push_str("\nEach seed's own report is in its `seed-N/` folder.\n\n## Plots (curves of seed 1; histogram over all seeds)\n\n");
    md.push_str(&plot_list(&plots));
    write_text(&dir.join(REPORT_FILE), &md)
}

/// The markdown of `plots` (files in the run's plots folder): each picture followed by its
/// caption, a line on how to read it.
pub fn plot_list(plots: &[Plot]) -> String {
    let mut md = String::new();
    for p in plots {
        let _ = writeln!(
            md,
            "![{}]({PLOTS_DIR}/{})\n\n*{}.* {}\n",
            p.title, p.file, p.title, p.caption
        );
    }
    md
}

/// What the columns mean, under every table.
pub const LEGEND: &str = "\
Click AUC and long-read AUC are measured on every test impression (the long-read label is \
click and duration above the threshold); GAUC is the per-user long-read AUC weighted by \
impressions, over users with both classes. The retrieval columns take each sampled test user's \
top-K over the whole item corpus: the true expected reading seconds per impression and the true \
long-read probability of those items (simulated data only), their click-bait share, the median \
number of training impressions of the retrieved items (how much data their vectors saw), and \
the recall of the user's held-out long reads. The teacher is not a two-tower model and cannot \
retrieve; the oracle uses the simulator's true probabilities and ranks by true expected reading \
time.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plot_is_shown_with_its_caption() {
        let plots: Vec<Plot> = ["a", "b"]
            .iter()
            .map(|n| Plot {
                title: format!("Title {n}"),
                file: format!("{n}.svg"),
                caption: format!("How to read {n}."),
            })
            .collect();
        let md = plot_list(&plots);
        for n in ["a", "b"] {
            let line =
                format!("![Title {n}]({PLOTS_DIR}/{n}.svg)\n\n*Title {n}.* How to read {n}.\n");
            assert!(md.contains(&line), "{md}");
        }
    }
}
