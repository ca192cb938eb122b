//! The bar chart of the retrieval results: per model, the true reading seconds and the
//! click-bait share of its lists (mean over the seeds, with their spread).

use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::Axis;
use super::chart::{canvas, new_chart, Area};
use super::colours::{is_highlight, model_colour, plot_err, text_style, LEGEND_SIZE, TICK_SIZE};
use crate::eval::{mean_std, RetrievalMetrics};
use crate::metrics::ModelResult;

/// One panel of the bar chart: which number, its title, axis text and decimals.
struct Panel {
    title: &'static str,
    desc: &'static str,
    get: fn(&RetrievalMetrics) -> Option<f64>,
    digits: usize,
}

const PANELS: [Panel; 2] = [
    Panel {
        title: "True reading seconds per impression",
        desc: "seconds (higher is better)",
        get: |r| r.true_read_seconds,
        digits: 2,
    },
    Panel {
        title: "Click-bait share",
        desc: "share of the retrieved items (lower is better)",
        get: |r| r.clickbait_share,
        digits: 3,
    },
];

/// A model's values of one panel over the seeds.
fn seed_values(runs: &[Vec<ModelResult>], name: &str, panel: &Panel) -> Vec<f64> {
    runs.iter()
        .filter_map(|r| r.iter().find(|m| m.name == name))
        .filter_map(|m| m.retrieval.as_ref().and_then(panel.get))
        .collect()
}

/// One bar: a model's values over the seeds, their mean and std, the value label and where the
/// drawing ends (bar, whisker or dot, whichever reaches further).
struct Bar {
    values: Vec<f64>,
    mean: f64,
    std: f64,
    label: String,
    end: f64,
}

impl Bar {
    fn new(values: Vec<f64>, digits: usize) -> Bar {
        let present: Vec<Option<f64>> = values.iter().copied().map(Some).collect();
        let (mean, std) = mean_std(&present).unwrap_or((0.0, 0.0));
        let label = if values.len() > 1 {
            format!("{mean:.digits$} ± {std:.digits$}")
        } else {
            format!("{mean:.digits$}")
        };
        let end = values.iter().copied().fold(mean + std, f64::max);
        Bar {
            values,
            mean,
            std,
            label,
            end,
        }
    }
}

/// Width of the names' column of the bar chart, in pixels.
const NAMES_WIDTH: u32 = 250;

/// The bar chart of the retrieval results: one row per model that retrieves, one panel per
/// number of [`PANELS`] that some model has; `None` when no model has any (real logs).
pub(crate) fn retrieval_bars(runs: &[Vec<ModelResult>], title: &str) -> Result<Option<String>> {
    let Some(first) = runs.first() else {
        return Ok(None);
    };
    let has = |m: &ModelResult, p: &Panel| !seed_values(runs, &m.name, p).is_empty();
    let panels: Vec<&Panel> = PANELS
        .iter()
        .filter(|p| first.iter().any(|m| has(m, p)))
        .collect();
    let rows: Vec<&ModelResult> = first
        .iter()
        .filter(|m| panels.iter().any(|p| has(m, p)))
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let size = (1150, 170 + 46 * rows.len() as u32);
    let svg = canvas(size, title, |body| {
        let (names, rest) = body.split_horizontally(NAMES_WIDTH);
        let areas = rest.split_evenly((1, panels.len()));
        for (p, (panel, area)) in panels.iter().zip(&areas).enumerate() {
            bar_panel(runs, &rows, panel, area, (p == 0).then_some(&names))?;
        }
        Ok(())
    })?;
    Ok(Some(svg))
}

/// Draws one panel of the bar chart into `area`, and each model's name into `names` (the first
/// panel) right after the model's bar.
fn bar_panel(
    runs: &[Vec<ModelResult>],
    rows: &[&ModelResult],
    panel: &Panel,
    area: &Area<'_>,
    names: Option<&Area<'_>>,
) -> Result<()> {
    let bars: Vec<Bar> = rows
        .iter()
        .map(|m| Bar::new(seed_values(runs, &m.name, panel), panel.digits))
        .collect();
    // Room on the right of the furthest bar for the longest value label.
    let max_end = bars.iter().map(|b| b.end).fold(0.0, f64::max);
    let label_chars = bars.iter().map(|b| b.label.chars().count()).max();
    let label_px = label_chars.unwrap_or(0) as f64 * TICK_SIZE / 1.24 * 0.62 + 16.0;
    let plot_px = f64::from(area.dim_in_pixel().0) - 40.0;
    let x_max = if max_end > 0.0 {
        max_end * plot_px / (plot_px - label_px).max(plot_px * 0.3)
    } else {
        1.0
    };
    let n = rows.len() as f64;
    let x = Axis::linear(0.0, x_max, panel.desc);
    let y = Axis {
        lo: 0.0,
        hi: n,
        ticks: Vec::new(),
        desc: String::new(),
    };
    let mut chart = new_chart(area, Some(panel.title), 6, &x, &y)?;
    let base = area.get_base_pixel();
    for (i, (m, bar)) in rows.iter().zip(&bars).enumerate() {
        let yc = n - i as f64 - 0.5;
        let bold = is_highlight(&m.name);
        if i % 2 == 0 {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, yc - 0.5), (x_max, yc + 0.5)],
                    BLACK.mix(0.04).filled(),
                )))
                .map_err(plot_err)?;
        }
        if !bar.values.is_empty() {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, yc - 0.32), (bar.mean, yc + 0.32)],
                    model_colour(&m.name).filled(),
                )))
                .map_err(plot_err)?;
        }
        if let Some(names) = names {
            let (_, y_px) = chart.backend_coord(&(0.0, yc));
            names
                .draw(&Text::new(
                    m.label.clone(),
                    (NAMES_WIDTH as i32 - 10, y_px - names.get_base_pixel().1),
                    text_style(LEGEND_SIZE, BLACK, bold).pos(Pos::new(HPos::Right, VPos::Center)),
                ))
                .map_err(plot_err)?;
        }
        if bar.values.is_empty() {
            continue;
        }
        if bar.values.len() > 1 {
            let whisker = BLACK.stroke_width(2);
            let (lo, hi) = ((bar.mean - bar.std).max(0.0), bar.mean + bar.std);
            chart
                .draw_series([
                    PathElement::new(vec![(lo, yc), (hi, yc)], whisker),
                    PathElement::new(vec![(lo, yc - 0.14), (lo, yc + 0.14)], whisker),
                    PathElement::new(vec![(hi, yc - 0.14), (hi, yc + 0.14)], whisker),
                ])
                .map_err(plot_err)?;
            for style in [WHITE.mix(0.9).filled(), BLACK.stroke_width(1)] {
                chart
                    .draw_series(bar.values.iter().map(|&v| Circle::new((v, yc), 4, style)))
                    .map_err(plot_err)?;
            }
        }
        let (x_px, y_px) = chart.backend_coord(&(bar.end, yc));
        area.draw(&Text::new(
            bar.label.clone(),
            (x_px - base.0 + 8, y_px - base.1),
            text_style(TICK_SIZE, BLACK, bold).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(plot_err)?;
    }
    Ok(())
}
