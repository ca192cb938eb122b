//! SVG plots of a run, drawn with plotters: the retrieval results per model as bars, the
//! validation long-read AUC and the training loss per epoch, and the distribution of the true
//! reading time of retrieved items (simulated data).
//!
//! Every plot draws a model in the colour [`model_colour`] gives its name, and DMTL stands out
//! (red, thicker lines, bold labels).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::eval::{mean_std, RetrievalMetrics};
use crate::fsutil::write_text;
use crate::run::ModelResult;

/// One plot written by [`write_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plot {
    /// Its title.
    pub title: String,
    /// Its file name in the plots folder.
    pub file: String,
    /// One sentence on how to read it.
    pub caption: String,
}

/// The model every plot highlights.
const HIGHLIGHT: &str = "dmtl";

/// Font sizes in plotters' units (the SVG's pixels are these divided by 1.24).
const TITLE_SIZE: f64 = 25.0;
const PANEL_SIZE: f64 = 20.0;
const DESC_SIZE: f64 = 18.0;
const TICK_SIZE: f64 = 16.0;
const LEGEND_SIZE: f64 = 17.0;

/// Canvas of the line charts, and the part of it the legend takes on the right.
const LINE_SIZE: (u32, u32) = (1000, 500);
const LEGEND_WIDTH: u32 = 270;

/// Radius of the ring marking a model's best epoch.
const RING_RADIUS: u32 = 10;

/// The colour of a model in every plot, keyed by its name: `dmtl` red (the highlight), the
/// teacher purple, the baselines orange, blue, green and brown, the oracle near black and random
/// grey. Any other name gets a colour of its own derived from the name (never the highlight's
/// red), the same in every run.
pub fn model_colour(name: &str) -> RGBColor {
    match name {
        "dmtl" => RGBColor(215, 25, 28),
        "teacher" => RGBColor(117, 112, 179),
        "b1" => RGBColor(230, 159, 0),
        "b2" => RGBColor(0, 114, 178),
        "b3-mse" => RGBColor(0, 158, 115),
        "b3-wlr" => RGBColor(140, 86, 75),
        "oracle" => RGBColor(40, 40, 40),
        "random" => RGBColor(150, 150, 150),
        other => {
            // FNV-1a of the name picks a hue away from the highlight's red.
            let h = other.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            let hue = 30.0 + (h % 300) as f64;
            let (r, g, b) = HSLColor(hue / 360.0, 0.6, 0.42).rgb();
            RGBColor(r, g, b)
        }
    }
}

fn is_highlight(name: &str) -> bool {
    name == HIGHLIGHT
}

fn text_style(size: f64, colour: RGBColor, bold: bool) -> TextStyle<'static> {
    let style = if bold {
        FontStyle::Bold
    } else {
        FontStyle::Normal
    };
    FontDesc::new(FontFamily::SansSerif, size, style).color(&colour)
}

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e}")
}

/// One axis: its range in plot coordinates, ticks (position, label) and description.
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<(f64, String)>,
    desc: String,
}

impl Axis {
    /// Linear from `lo` to `hi` with about six round ticks.
    fn linear(lo: f64, hi: f64, desc: &str) -> Axis {
        let raw = (hi - lo).max(1e-12) / 6.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = mag
            * match raw / mag {
                n if n < 1.5 => 1.0,
                n if n < 3.0 => 2.0,
                n if n < 7.0 => 5.0,
                _ => 10.0,
            };
        let digits = (-step.log10().floor()).max(0.0) as usize;
        let ticks = ((lo / step).ceil() as i64..=(hi / step).floor() as i64)
            .map(|i| {
                let v = i as f64 * step;
                (v, format!("{v:.digits$}"))
            })
            .collect();
        Axis {
            lo,
            hi,
            ticks,
            desc: desc.to_string(),
        }
    }

    /// Epochs 1..=`n` with a little room on both sides and integer ticks.
    fn epochs(n: usize) -> Axis {
        let step = n.div_ceil(12).max(1);
        Axis {
            lo: 0.7,
            hi: n as f64 + 0.3,
            ticks: (1..=n)
                .filter(|e| (e - 1) % step == 0)
                .map(|e| (e as f64, e.to_string()))
                .collect(),
            desc: "epoch".to_string(),
        }
    }

    /// Logarithmic from `lo` to `hi` (values > 0): plot coordinates are log10 of the values,
    /// ticks at 1, 2, 5 or 1, 3 (or only 1) times powers of ten, labelled by `label(m, k)` for
    /// the value `m 10^k`.
    fn log10(lo: f64, hi: f64, desc: &str, label: fn(u64, i32) -> String) -> Axis {
        let (a, b) = (lo.log10(), hi.log10());
        let mantissas: &[u64] = match b - a {
            d if d <= 2.2 => &[1, 2, 5],
            d if d <= 4.5 => &[1, 3],
            _ => &[1],
        };
        let mut ticks = Vec::new();
        for k in a.floor() as i32..=b.ceil() as i32 {
            for &m in mantissas {
                let v = (m as f64).log10() + f64::from(k);
                if v >= a - 1e-9 && v <= b + 1e-9 {
                    ticks.push((v, label(m, k)));
                }
            }
        }
        let pad = (b - a).max(0.1) * 0.03;
        Axis {
            lo: a - pad,
            hi: b + pad,
            ticks,
            desc: desc.to_string(),
        }
    }

    /// The label of the tick nearest to `v`.
    fn label(&self, v: f64) -> String {
        self.ticks
            .iter()
            .min_by(|p, q| (p.0 - v).abs().total_cmp(&(q.0 - v).abs()))
            .map(|t| t.1.clone())
            .unwrap_or_default()
    }

    fn coord(&self) -> AxisCoord {
        AxisCoord {
            lo: self.lo,
            hi: self.hi,
            ticks: self.ticks.iter().map(|t| t.0).collect(),
        }
    }
}

/// A linear coordinate whose ticks are exactly an [`Axis`]'s.
struct AxisCoord {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for AxisCoord {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// `m 10^k` in decimal notation.
fn decimal(m: u64, k: i32) -> String {
    if k >= 0 {
        (m * 10u64.pow(k as u32)).to_string()
    } else {
        format!("{:.*}", (-k) as usize, m as f64 * 10f64.powi(k))
    }
}

/// The share `m 10^k` as a percentage.
fn percent(m: u64, k: i32) -> String {
    format!("{}%", decimal(m, k + 2))
}

/// One model's curve of a line chart, in plot coordinates.
struct Line {
    name: String,
    label: String,
    points: Vec<(f64, f64)>,
    /// The point to ring (the best epoch).
    ring: Option<usize>,
}

/// What stands before a legend entry's text.
enum Glyph {
    /// A line with a dot, as the curves are drawn.
    Line(u32),
    /// The ring of the best epoch.
    Ring,
}

/// An entry of a legend.
struct LegendEntry {
    text: String,
    colour: RGBColor,
    glyph: Glyph,
    bold: bool,
}

/// Draws `entries` top down into `area`, each glyph right before its text.
fn draw_legend(area: &DrawingArea<SVGBackend<'_>, Shift>, entries: &[LegendEntry]) -> Result<()> {
    const ROW: i32 = 30;
    for (i, e) in entries.iter().enumerate() {
        let y = 24 + i as i32 * ROW;
        match e.glyph {
            Glyph::Line(width) => {
                area.draw(&PathElement::new(
                    vec![(6, y), (40, y)],
                    e.colour.stroke_width(width),
                ))
                .map_err(plot_err)?;
                area.draw(&Circle::new((23, y), 4, e.colour.filled()))
                    .map_err(plot_err)?;
            }
            Glyph::Ring => {
                area.draw(&Circle::new((23, y), RING_RADIUS, e.colour.stroke_width(3)))
                    .map_err(plot_err)?;
            }
        }
        area.draw(&Text::new(
            e.text.clone(),
            (50, y),
            text_style(LEGEND_SIZE, BLACK, e.bold).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(plot_err)?;
    }
    Ok(())
}

/// A drawing area of an SVG canvas, in pixels from its top left corner.
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A chart on [`AxisCoord`]s.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<AxisCoord, AxisCoord>>;

/// Draws an SVG of `size` pixels: a white canvas, `title` on top and `draw` below it.
fn canvas(
    size: (u32, u32),
    title: &str,
    draw: impl FnOnce(&Area<'_>) -> Result<()>,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let body = root
            .titled(title, text_style(TITLE_SIZE, BLACK, false))
            .map_err(plot_err)?;
        draw(&body)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// A chart on `area` with `x` and `y` as axes (light grid lines at their ticks), an optional
/// caption, and `y_area` pixels for the y axis' labels.
fn new_chart<'a, 'b>(
    area: &'a Area<'b>,
    caption: Option<&str>,
    y_area: u32,
    x: &Axis,
    y: &Axis,
) -> Result<Chart<'a, 'b>> {
    let mut builder = ChartBuilder::on(area);
    if let Some(c) = caption {
        builder.caption(c, text_style(PANEL_SIZE, BLACK, false));
    }
    let mut chart = builder
        .margin(10)
        .margin_right(24)
        .x_label_area_size(62)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x.coord(), y.coord())
        .map_err(plot_err)?;
    let x_fmt = |v: &f64| x.label(*v);
    let y_fmt = |v: &f64| y.label(*v);
    chart
        .configure_mesh()
        .x_desc(x.desc.as_str())
        .y_desc(y.desc.as_str())
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(text_style(TICK_SIZE, BLACK, false))
        .axis_desc_style(text_style(DESC_SIZE, BLACK, false))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(plot_err)?;
    Ok(chart)
}

/// Draws a line chart with its legend on the right; `ring_note` is the legend text of the
/// rings, when some line has one.
fn line_chart(
    title: &str,
    x: &Axis,
    y: &Axis,
    lines: &[Line],
    ring_note: Option<&str>,
) -> Result<String> {
    canvas(LINE_SIZE, title, |body| {
        let (left, legend) = body.split_horizontally(LINE_SIZE.0 - LEGEND_WIDTH);
        let mut chart = new_chart(&left, None, 86, x, y)?;
        // The highlight last, on top of the others.
        let mut order: Vec<&Line> = lines.iter().collect();
        order.sort_by_key(|l| is_highlight(&l.name));
        for line in &order {
            let colour = model_colour(&line.name);
            let (width, dot) = if is_highlight(&line.name) {
                (4, 5)
            } else {
                (2, 3)
            };
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    colour.stroke_width(width),
                ))
                .map_err(plot_err)?;
            chart
                .draw_series(
                    line.points
                        .iter()
                        .map(|&p| Circle::new(p, dot, colour.filled())),
                )
                .map_err(plot_err)?;
        }
        // Rings over every line, so that no line hides one.
        for line in &order {
            if let Some(p) = line.ring.and_then(|i| line.points.get(i)) {
                chart
                    .draw_series(std::iter::once(Circle::new(
                        *p,
                        RING_RADIUS,
                        model_colour(&line.name).stroke_width(3),
                    )))
                    .map_err(plot_err)?;
            }
        }
        let mut entries: Vec<LegendEntry> = lines
            .iter()
            .map(|l| LegendEntry {
                text: l.label.clone(),
                colour: model_colour(&l.name),
                glyph: Glyph::Line(if is_highlight(&l.name) { 4 } else { 2 }),
                bold: is_highlight(&l.name),
            })
            .collect();
        if let Some(note) = ring_note.filter(|_| lines.iter().any(|l| l.ring.is_some())) {
            entries.push(LegendEntry {
                text: note.to_string(),
                colour: RGBColor(60, 60, 60),
                glyph: Glyph::Ring,
                bold: false,
            });
        }
        draw_legend(&legend, &entries)
    })
}

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
fn retrieval_bars(runs: &[Vec<ModelResult>], title: &str) -> Result<Option<String>> {
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

/// The share of retrieved items with true reading seconds at or above each inner histogram
/// edge, pooled over `runs`, per model with a histogram; points are (log10 seconds, log10
/// share), zero shares left out.
fn survival_lines(runs: &[Vec<ModelResult>]) -> Vec<Line> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .filter_map(|m| {
            let r = m.retrieval.as_ref().filter(|r| !r.histogram.is_empty())?;
            let bins = r.histogram.len();
            let mut counts = vec![0u64; bins];
            for h in runs
                .iter()
                .filter_map(|run| run.iter().find(|x| x.name == m.name))
                .filter_map(|x| x.retrieval.as_ref())
                .filter(|x| x.histogram.len() == bins)
            {
                counts
                    .iter_mut()
                    .zip(&h.histogram)
                    .for_each(|(c, v)| *c += v);
            }
            let total = counts.iter().sum::<u64>();
            if total == 0 {
                return None;
            }
            // Edge j starts bin j; the last edge closes the last bin, which also holds the
            // values above it, so the share at or above it is unknown.
            let e = &r.histogram_edges;
            let points = (1..counts.len())
                .filter(|&j| e[j] > 0.0)
                .filter_map(|j| {
                    let above = counts[j..].iter().sum::<u64>();
                    (above > 0).then(|| (e[j].log10(), (above as f64 / total as f64).log10()))
                })
                .collect();
            Some(Line {
                name: m.name.clone(),
                label: m.label.clone(),
                points,
                ring: None,
            })
        })
        .filter(|l| !l.points.is_empty())
        .collect()
}

/// Writes the plots of `runs` (one `Vec` per seed, the same models in each) into `dir`: the
/// retrieval bars (mean and spread over the seeds), the training loss and validation AUC
/// curves (the first run), and the distribution of true reading seconds of the retrieved
/// items (pooled over the runs). Returns the plots written, in the order to show them.
pub fn write_all(dir: &Path, runs: &[Vec<ModelResult>]) -> Result<Vec<Plot>> {
    let mut written = Vec::new();
    let Some(first) = runs.first() else {
        return Ok(written);
    };
    let seeds = runs.len();
    let mut write = |file: &str, title: &str, caption: String, svg: String| -> Result<()> {
        write_text(&dir.join(file), &svg).with_context(|| format!("writing the plot {file}"))?;
        written.push(Plot {
            title: title.to_string(),
            file: file.to_string(),
            caption,
        });
        Ok(())
    };
    let first_curve = if seeds > 1 { " (seed 1)" } else { "" };

    let k = first
        .iter()
        .find_map(|m| m.retrieval.as_ref().map(|r| r.k))
        .unwrap_or(0);
    let title = format!("Top-{k} retrieval over the whole corpus");
    if let Some(svg) = retrieval_bars(runs, &title).context("the retrieval bars")? {
        let spread = if seeds > 1 {
            format!(
                " Bars: mean over {seeds} seeds; whiskers: ± one standard deviation; hollow \
                 dots: the single seeds."
            )
        } else {
            String::new()
        };
        let caption = format!(
            "Per model, the true expected reading seconds per impression of the items in each \
             user's top-{k} (left, longer is better) and their click-bait share (right, lower \
             is better); oracle and random mark the best and the chance level.{spread}"
        );
        write("retrieval_bars.svg", &title, caption, svg)?;
    }

    let trained: Vec<&ModelResult> = first.iter().filter(|m| !m.history.is_empty()).collect();
    let epochs = trained.iter().map(|m| m.history.len()).max().unwrap_or(0);
    let auc: Vec<Line> = trained
        .iter()
        .map(|m| {
            let points: Vec<(usize, (f64, f64))> = m
                .history
                .iter()
                .filter_map(|e| {
                    e.valid_long_read_auc
                        .map(|a| (e.epoch, ((e.epoch + 1) as f64, a)))
                })
                .collect();
            let kept = m.best_epoch.or_else(|| m.history.last().map(|e| e.epoch));
            Line {
                name: m.name.clone(),
                label: m.label.clone(),
                ring: points.iter().position(|p| Some(p.0) == kept),
                points: points.into_iter().map(|p| p.1).collect(),
            }
        })
        .filter(|l| !l.points.is_empty())
        .collect();
    if !auc.is_empty() {
        let title = format!("Validation long-read AUC per epoch{first_curve}");
        let y_desc = "validation long-read AUC";
        let svg = epoch_chart(
            &title,
            epochs,
            y_desc,
            &auc,
            Some("best epoch (weights kept)"),
        )
        .context("the validation AUC plot")?;
        let caption = format!(
            "Each trained model's long-read AUC on the validation rows after every \
             epoch{first_curve}, higher is better; the ring marks the epoch whose weights the \
             model kept."
        );
        write("valid_long_read_auc.svg", &title, caption, svg)?;
    }

    let loss: Vec<Line> = trained
        .iter()
        .map(|m| Line {
            name: m.name.clone(),
            label: m.label.clone(),
            points: m
                .history
                .iter()
                .map(|e| ((e.epoch + 1) as f64, e.train_loss))
                .collect(),
            ring: None,
        })
        .collect();
    if !loss.is_empty() {
        let title = format!("Training loss per epoch{first_curve}");
        let svg = epoch_chart(&title, epochs, "mean training loss", &loss, None)
            .context("the training loss plot")?;
        let caption = format!(
            "Mean training loss per epoch{first_curve}; every model minimises its own \
             objective, so read the shape of a curve (still falling or flat), not its level \
             against the others."
        );
        write("train_loss.svg", &title, caption, svg)?;
    }

    let survival = survival_lines(runs);
    if !survival.is_empty() {
        let (x_lo, x_hi) = survival
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let (y_lo, _) = y_extent(&survival);
        let y_lo = y_lo.floor().min(-1.0);
        let pooled = if seeds > 1 {
            format!(" ({seeds} seeds pooled)")
        } else {
            String::new()
        };
        let title = "True reading seconds of the retrieved items";
        let svg = line_chart(
            title,
            &Axis::log10(
                10f64.powf(x_lo),
                10f64.powf(x_hi),
                "x: true expected reading seconds per impression (log scale)",
                decimal,
            ),
            &Axis::log10(
                10f64.powf(y_lo),
                1.0,
                "share of retrieved items ≥ x (log scale)",
                percent,
            ),
            &survival,
            None,
        )
        .context("the reading-time distribution plot")?;
        let caption = format!(
            "For each x, the share of the retrieved (user, item) pairs{pooled} whose true \
             expected reading seconds per impression are at least x, both axes logarithmic; a \
             higher curve retrieves more long reads, and its right end shows how far the tail \
             reaches."
        );
        write("retrieved_read_time.svg", title, caption, svg)?;
    }
    Ok(written)
}

/// A line chart of `lines` over epochs 1..=`epochs`, the y axis fitted to their values.
fn epoch_chart(
    title: &str,
    epochs: usize,
    y_desc: &str,
    lines: &[Line],
    ring_note: Option<&str>,
) -> Result<String> {
    let (lo, hi) = y_extent(lines);
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let y = Axis::linear(lo - pad, hi + pad, y_desc);
    line_chart(title, &Axis::epochs(epochs), &y, lines, ring_note)
}

/// The smallest and largest y over `lines`.
fn y_extent(lines: &[Line]) -> (f64, f64) {
    let (lo, hi) = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        (0.0, 1.0)
    } else {
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{EpochPoint, RowKind};

    /// A model of a fake run: validation AUCs per epoch (none for references) and, when
    /// `retrieves`, retrieval numbers and a histogram that depend on `level`.
    fn model(
        name: &str,
        label: &str,
        aucs: &[f64],
        best: Option<usize>,
        level: f64,
    ) -> ModelResult {
        let edges = crate::eval::edges(300.0, 30);
        let histogram: Vec<u64> = (0..30)
            .map(|b| (1000.0 * (-(b as f64) / (1.0 + level)).exp()) as u64)
            .collect();
        let retrieves = name != "teacher";
        ModelResult {
            name: name.into(),
            label: label.into(),
            kind: if aucs.is_empty() {
                RowKind::Reference
            } else {
                RowKind::Student
            },
            offline: None,
            retrieval: retrieves.then(|| RetrievalMetrics {
                k: 50,
                users: 20,
                true_read_seconds: Some(level),
                clickbait_share: Some(0.5 / (1.0 + level)),
                histogram,
                histogram_edges: edges,
                ..RetrievalMetrics::default()
            }),
            history: aucs
                .iter()
                .enumerate()
                .map(|(epoch, &a)| EpochPoint {
                    epoch,
                    train_loss: 1.0 / (1.0 + epoch as f64 + level),
                    valid_long_read_auc: Some(a),
                    impressions_per_second: 1.0,
                })
                .collect(),
            best_epoch: best,
            train_seconds: 1.0,
        }
    }

    /// Two seeds of a run with every known model and one unknown name.
    fn runs() -> Vec<Vec<ModelResult>> {
        (0..2)
            .map(|s| {
                let d = 0.01 * s as f64;
                vec![
                    model("teacher", "Teacher", &[0.60, 0.66 + d, 0.64], Some(1), 0.0),
                    model(
                        "dmtl",
                        "DMTL (distilled)",
                        &[0.55, 0.62, 0.65 + d],
                        Some(2),
                        3.0 + d,
                    ),
                    model("b1", "B1 click", &[0.52, 0.58, 0.61], None, 1.0),
                    model("b2", "B2", &[0.70 + d, 0.69, 0.67], Some(0), 2.5),
                    model("b3-mse", "B3", &[0.57, 0.63, 0.62], Some(1), 1.5),
                    model(
                        "b3-wlr",
                        "B3' weighted LR",
                        &[0.60, 0.61, 0.63],
                        Some(2),
                        2.4,
                    ),
                    model("b4-new", "B4 new", &[0.50, 0.51, 0.52], Some(2), 1.2),
                    model("oracle", "Oracle", &[], None, 9.0 + d),
                    model("random", "Random", &[], None, 1.1),
                ]
            })
            .collect()
    }

    fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    fn attr(element: &str, name: &str) -> Option<String> {
        let key = format!(" {name}=\"");
        let at = element.find(&key)? + key.len();
        element[at..].split('"').next().map(str::to_string)
    }

    /// The colour of the element drawn right before the text `label` (its fill, or its stroke
    /// when it is not filled).
    fn colour_before(svg: &str, label: &str) -> Option<String> {
        let text = format!(">\n{}\n</text>", label.replace('\'', "&apos;"));
        let before = &svg[..svg.find(&text)?];
        let text_start = before.rfind("<text")?;
        let element = &before[before[..text_start].rfind('<')?..text_start];
        attr(element, "fill")
            .filter(|f| f != "none")
            .or_else(|| attr(element, "stroke"))
    }

    /// (cx, cy, r, fill, stroke) of every circle.
    fn circles(svg: &str) -> Vec<(i32, i32, u32, String, String)> {
        svg.split("<circle")
            .skip(1)
            .map(|c| {
                let c = &c[..c.find("/>").unwrap()];
                let num = |a| attr(c, a).unwrap().parse::<i32>().unwrap();
                (
                    num("cx"),
                    num("cy"),
                    num("r") as u32,
                    attr(c, "fill").unwrap(),
                    attr(c, "stroke").unwrap(),
                )
            })
            .collect()
    }

    fn write(runs: &[Vec<ModelResult>]) -> (tempfile::TempDir, Vec<Plot>) {
        let dir = tempfile::tempdir().unwrap();
        let plots = write_all(dir.path(), runs).unwrap();
        (dir, plots)
    }

    #[test]
    fn a_model_has_the_same_colour_in_every_plot() {
        let runs = runs();
        let (dir, plots) = write(&runs);
        let files: Vec<&str> = plots.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "retrieval_bars.svg",
                "valid_long_read_auc.svg",
                "train_loss.svg",
                "retrieved_read_time.svg"
            ]
        );
        let svgs: Vec<String> = files
            .iter()
            .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap())
            .collect();
        let mut colours = Vec::new();
        for m in &runs[0] {
            let want = hex(model_colour(&m.name));
            let found: Vec<(&str, String)> = files
                .iter()
                .zip(&svgs)
                .filter_map(|(f, svg)| colour_before(svg, &m.label).map(|c| (*f, c)))
                .collect();
            // Retrieving models are in all four plots, the teacher in the two curves, the
            // references in the bars and the distribution.
            let expected = match m.name.as_str() {
                "teacher" | "oracle" | "random" => 2,
                _ => 4,
            };
            assert_eq!(found.len(), expected, "{}: {found:?}", m.name);
            for (file, c) in found {
                assert_eq!(c, want, "{} in {file}", m.name);
            }
            colours.push(want);
        }
        // One colour per model, the unknown name's the same on every call.
        let n = colours.len();
        colours.sort();
        colours.dedup();
        assert_eq!(colours.len(), n, "{colours:?}");
        assert_eq!(model_colour("b4-new"), model_colour("b4-new"));
        // The highlight is drawn thicker than the others.
        let auc = &svgs[1];
        let dmtl = hex(model_colour("dmtl"));
        assert!(auc.contains(&format!("stroke=\"{dmtl}\" stroke-width=\"4\"")));
        assert!(!auc.contains(&format!(
            "stroke=\"{}\" stroke-width=\"4\"",
            hex(model_colour("b1"))
        )));
    }

    #[test]
    fn the_ring_sits_on_the_kept_epoch() {
        let runs = runs();
        let (dir, _) = write(&runs);
        let svg = std::fs::read_to_string(dir.path().join("valid_long_read_auc.svg")).unwrap();
        let chart_right = (LINE_SIZE.0 - LEGEND_WIDTH) as i32;
        let circles: Vec<_> = circles(&svg)
            .into_iter()
            .filter(|c| c.0 < chart_right)
            .collect();
        for m in runs[0].iter().filter(|m| !m.history.is_empty()) {
            let colour = hex(model_colour(&m.name));
            // The epochs' dots, left to right, and the ring.
            let mut dots: Vec<(i32, i32)> = circles
                .iter()
                .filter(|c| c.3 == colour)
                .map(|c| (c.0, c.1))
                .collect();
            dots.sort();
            assert_eq!(dots.len(), m.history.len(), "{}", m.name);
            let rings: Vec<_> = circles
                .iter()
                .filter(|c| c.4 == colour && c.3 == "none")
                .collect();
            assert_eq!(rings.len(), 1, "{}: {rings:?}", m.name);
            assert_eq!(rings[0].2, RING_RADIUS);
            let kept = m.best_epoch.unwrap_or(m.history.len() - 1);
            assert_eq!((rings[0].0, rings[0].1), dots[kept], "{}", m.name);
        }
        // The legend says what the ring means.
        assert!(svg.contains(">\nbest epoch (weights kept)\n</text>"));
    }

    #[test]
    fn no_bars_or_distribution_without_the_truth() {
        let mut runs = runs();
        for m in runs.iter_mut().flatten() {
            if let Some(r) = m.retrieval.as_mut() {
                *r = RetrievalMetrics {
                    recall_at_k: Some(0.1),
                    ..RetrievalMetrics::default()
                };
            }
        }
        let (_dir, plots) = write(&runs);
        let files: Vec<&str> = plots.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(files, ["valid_long_read_auc.svg", "train_loss.svg"]);
    }

    #[test]
    fn log_ticks_are_round_numbers() {
        let x = Axis::log10(0.1, 300.0, "s", decimal);
        let labels: Vec<&str> = x.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0.1", "0.3", "1", "3", "10", "30", "100", "300"]);
        let y = Axis::log10(1e-3, 1.0, "share", percent);
        let labels: Vec<&str> = y.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0.1%", "0.3%", "1%", "3%", "10%", "30%", "100%"]);
        let e = Axis::epochs(30);
        assert_eq!(e.ticks.first().unwrap().1, "1");
        assert!(e.ticks.len() <= 12);
    }
}
