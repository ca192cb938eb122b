//! How the paper's effect grows with the data each item gets: the demo's pipeline (the default
//! scale's models, epochs and early stopping) on the simulator with the log size fixed and the
//! corpus shrunk, so that impressions per item rise, one run per corpus size.
//!
//! ```text
//! cargo run --release -p dmtl-runner --example data_per_item -- OUT_DIR [--student-lr LR] [N_ITEMS ...]
//! ```
//!
//! `--student-lr` replaces the two-tower models' learning rate of the demo (3e-3).
//!
//! Writes `OUT_DIR/data_per_item.csv` (one row per corpus size and model: long-read AUC and
//! GAUC, true reading seconds of the top-K, click-bait share, best epoch) and
//! `OUT_DIR/data_per_item.svg` (long-read AUC, and the top-K's true reading seconds as a share of
//! the oracle's, against impressions per item). Each run's own folder (`OUT_DIR/items-N/`) keeps its report; a folder that already
//! holds a finished run's `metrics.json` is read back instead of run again. Default corpus
//! sizes: 20,000, 10,000, 5,000 (the demo's) and 2,500 items.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use dmtl_runner::config::{demo_config, Scale};
use dmtl_runner::metrics::{ModelResult, RunMetrics};
use dmtl_runner::pipeline::run_pipeline;
use dmtl_runner::plots::model_colour;
use dmtl_runner::progress::Progress;
use plotters::prelude::*;

/// The models drawn, in legend order.
const MODELS: [&str; 6] = ["teacher", "dmtl", "b2", "b3-mse", "b3-wlr", "b1"];

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let out =
        PathBuf::from(args.next().ok_or_else(|| {
            anyhow!("usage: data_per_item OUT_DIR [--student-lr LR] [N_ITEMS ...]")
        })?);
    let mut student_lr: Option<f32> = None;
    let mut sizes: Vec<usize> = Vec::new();
    while let Some(a) = args.next() {
        if a == "--student-lr" {
            let v = args.next().unwrap_or_default();
            student_lr = Some(
                v.parse()
                    .ok()
                    .filter(|x: &f32| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| anyhow!("--student-lr `{v}` is not a positive number"))?,
            );
        } else {
            sizes.push(
                a.parse()
                    .with_context(|| format!("N_ITEMS `{a}` is not a count"))?,
            );
        }
    }
    if sizes.is_empty() {
        sizes = vec![20_000, 10_000, 5_000, 2_500];
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let progress = Progress::new(true);
    // (impressions per item, the run's rows)
    let mut points: Vec<(f64, Vec<ModelResult>)> = Vec::new();
    let mut csv = String::from(
        "n_items,impressions_per_item,model,long_read_auc,long_read_gauc,true_read_seconds,\
         clickbait_share,best_epoch,epochs,wall_seconds\n",
    );
    for &n_items in &sizes {
        let mut cfg = demo_config(Scale::Default, 1);
        if let Some(lr) = student_lr {
            cfg.student.train.lr = lr;
        }
        let sim = cfg.simulator.as_mut().expect("the demo simulates");
        sim.n_items = n_items;
        let per_item = sim.n_impressions as f64 / n_items as f64;
        cfg.validate("<data_per_item>")?;
        let dir = out.join(format!("items-{n_items}"));
        eprintln!(
            "{n_items} items ({per_item:.0} impressions per item) -> {}",
            dir.display()
        );
        // A finished run of the same corpus size is read back, not repeated, so a stopped
        // sweep continues where it stopped.
        let done = dir.join("metrics.json");
        let m: RunMetrics = if done.is_file() {
            let text = std::fs::read_to_string(&done)
                .with_context(|| format!("reading {}", done.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", done.display()))?
        } else {
            run_pipeline(&cfg, &dir, "demo", 1, &progress)?
        };
        for r in &m.models {
            let o = r.offline.as_ref();
            let t = r.retrieval.as_ref();
            let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.5}"));
            let _ = writeln!(
                csv,
                "{n_items},{per_item:.1},{},{},{},{},{},{},{},{:.0}",
                r.name,
                f(o.and_then(|o| o.long_read_auc)),
                f(o.and_then(|o| o.long_read_gauc)),
                f(t.and_then(|t| t.true_read_seconds)),
                f(t.and_then(|t| t.clickbait_share)),
                r.best_epoch.map_or(String::new(), |e| (e + 1).to_string()),
                r.history.len(),
                m.wall_seconds
            );
        }
        points.push((per_item, m.models));
        dmtl_runner::fsutil::write_text(&out.join("data_per_item.csv"), &csv)?;
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let svg = chart(&points)?;
    dmtl_runner::fsutil::write_text(&out.join("data_per_item.svg"), &svg)?;
    eprintln!("wrote {}", out.join("data_per_item.svg").display());
    Ok(())
}

/// Two panels: long-read AUC, and the top-K true reading seconds as a share of the oracle's.
fn chart(points: &[(f64, Vec<ModelResult>)]) -> Result<String> {
    let value = |rows: &[ModelResult], name: &str, auc: bool| -> Option<f64> {
        let r = rows.iter().find(|r| r.name == name)?;
        if auc {
            r.offline.as_ref()?.long_read_auc
        } else {
            // The share of the oracle's: the oracle's own top 100 reads less as the corpus
            // shrinks (fewer excellent items to choose from).
            let oracle = rows.iter().find(|r| r.name == "oracle")?;
            Some(
                r.retrieval.as_ref()?.true_read_seconds?
                    / oracle.retrieval.as_ref()?.true_read_seconds?,
            )
        }
    };
    let (x0, x1) = (
        points.first().map_or(1.0, |p| p.0) * 0.8,
        points.last().map_or(2.0, |p| p.0) * 1.25,
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let panels = root.split_evenly((1, 2));
        for (panel, auc) in panels.iter().zip([true, false]) {
            let names: Vec<&str> = if auc {
                MODELS.to_vec()
            } else {
                MODELS[1..].to_vec()
            };
            let ys: Vec<f64> = points
                .iter()
                .flat_map(|(_, rows)| names.iter().filter_map(|n| value(rows, n, auc)))
                .collect();
            let (lo, hi) = ys
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &y| (a.min(y), b.max(y)));
            let (y0, y1) = if auc {
                // Room below the lowest curve for the legend.
                ((lo - 0.1).max(0.0), (hi + 0.02).min(1.0))
            } else {
                (0.0, (hi * 1.15).max(lo))
            };
            let title = if auc {
                "Test long-read AUC"
            } else {
                "Top-100 true reading time, share of the oracle's"
            };
            let mut b = ChartBuilder::on(panel);
            b.caption(title, ("sans-serif", 20))
                .margin(14)
                .x_label_area_size(44)
                .y_label_area_size(56);
            let x_desc = "impressions per item (log scale)";
            macro_rules! draw {
                ($chart:expr) => {{
                    let mut chart = $chart;
                    chart
                        .configure_mesh()
                        .x_desc(x_desc)
                        .y_desc(if auc { "AUC" } else { "model / oracle" })
                        .x_label_formatter(&|x| format!("{x:.0}"))
                        .y_label_formatter(&|y| {
                            if auc {
                                format!("{y:.2}")
                            } else {
                                format!("{:.0} %", y * 100.0)
                            }
                        })
                        .light_line_style(WHITE)
                        .draw()
                        .map_err(|e| anyhow!("{e}"))?;
                    for name in &names {
                        let pts: Vec<(f64, f64)> = points
                            .iter()
                            .filter_map(|(x, rows)| value(rows, name, auc).map(|y| (*x, y)))
                            .collect();
                        let colour = model_colour(name);
                        let width = if *name == "dmtl" { 4 } else { 2 };
                        chart
                            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(width)))
                            .map_err(|e| anyhow!("{e}"))?
                            .label(*name)
                            .legend(move |(x, y)| {
                                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(3))
                            });
                        chart
                            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, colour.filled())))
                            .map_err(|e| anyhow!("{e}"))?;
                    }
                    chart
                        .configure_series_labels()
                        .background_style(WHITE.mix(0.85))
                        .border_style(BLACK)
                        .position(if auc {
                            SeriesLabelPosition::LowerRight
                        } else {
                            SeriesLabelPosition::UpperLeft
                        })
                        .draw()
                        .map_err(|e| anyhow!("{e}"))?;
                }};
            }
            if auc {
                draw!(b
                    .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                    .map_err(|e| anyhow!("{e}"))?);
            } else {
                draw!(b
                    .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                    .map_err(|e| anyhow!("{e}"))?);
            }
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}
