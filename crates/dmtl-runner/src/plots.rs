//! SVG plots of a run, drawn with plotters: training loss and validation long-read AUC per
//! epoch for every trained model, and the distribution of the true reading time of retrieved
//! items per model (simulated data).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::fsutil::write_text;
use crate::run::ModelResult;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A named series of (x, y) points.
type Series = (String, Vec<(f64, f64)>);

/// Draws one line chart into an SVG string.
fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<String> {
    let pts = series.iter().flat_map(|s| s.1.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.08).max(1e-6);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 440)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow!("plot {title}: {e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| anyhow!("plot {title}: {e}"))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(|e| anyhow!("plot {title}: {e}"))?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(|e| anyhow!("plot {title}: {e}"))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| anyhow!("plot {title}: {e}"))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| anyhow!("plot {title}: {e}"))?;
        root.present().map_err(|e| anyhow!("plot {title}: {e}"))?;
    }
    Ok(svg)
}

/// Writes the plots of `runs` (the curves of the first run; histograms summed over runs) into
/// `dir`; returns (title, file name) of each plot written.
pub fn write_all(dir: &Path, runs: &[Vec<ModelResult>]) -> Result<Vec<(String, String)>> {
    let mut written = Vec::new();
    let Some(first) = runs.first() else {
        return Ok(written);
    };
    let trained: Vec<&ModelResult> = first.iter().filter(|m| !m.history.is_empty()).collect();
    if !trained.is_empty() {
        let loss: Vec<Series> = trained
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    m.history
                        .iter()
                        .map(|e| ((e.epoch + 1) as f64, e.train_loss))
                        .collect(),
                )
            })
            .collect();
        let title = "Training loss per epoch (each model's own objective)";
        write_text(
            &dir.join("train_loss.svg"),
            &line_chart(title, "epoch", "mean training loss", &loss)?,
        )?;
        written.push((title.to_string(), "train_loss.svg".to_string()));
        let auc: Vec<Series> = trained
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    m.history
                        .iter()
                        .filter_map(|e| e.valid_long_read_auc.map(|a| ((e.epoch + 1) as f64, a)))
                        .collect(),
                )
            })
            .filter(|s: &Series| !s.1.is_empty())
            .collect();
        if !auc.is_empty() {
            let title = "Validation long-read AUC per epoch";
            write_text(
                &dir.join("valid_long_read_auc.svg"),
                &line_chart(title, "epoch", "long-read AUC", &auc)?,
            )?;
            written.push((title.to_string(), "valid_long_read_auc.svg".to_string()));
        }
    }
    // Histograms: share of retrieved (user, item) pairs per bin of true reading seconds.
    let hist: Vec<Series> = first
        .iter()
        .filter_map(|m| {
            let r = m.retrieval.as_ref()?;
            if r.histogram.is_empty() {
                return None;
            }
            let mut counts = vec![0u64; r.histogram.len()];
            for run in runs {
                if let Some(h) = run
                    .iter()
                    .find(|x| x.name == m.name)
                    .and_then(|x| x.retrieval.as_ref())
                    .filter(|x| x.histogram.len() == counts.len())
                {
                    counts
                        .iter_mut()
                        .zip(&h.histogram)
                        .for_each(|(c, v)| *c += v);
                }
            }
            let total = counts.iter().sum::<u64>().max(1) as f64;
            let e = &r.histogram_edges;
            Some((
                m.name.clone(),
                counts
                    .iter()
                    .enumerate()
                    .map(|(b, &c)| ((e[b] + e[b + 1]) / 2.0, c as f64 / total))
                    .collect(),
            ))
        })
        .collect();
    if !hist.is_empty() {
        let title = "True expected reading seconds of retrieved items";
        write_text(
            &dir.join("retrieved_read_time.svg"),
            &line_chart(
                title,
                "true expected reading seconds per impression (bin centre)",
                "share of retrieved items",
                &hist,
            )?,
        )?;
        written.push((title.to_string(), "retrieved_read_time.svg".to_string()));
    }
    Ok(written)
}
