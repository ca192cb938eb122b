//! Line charts: one curve per model with its legend on the right (the training curves per
//! epoch, with the kept epoch ringed, and the distribution of reading seconds).

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::Axis;
use super::chart::{canvas, new_chart};
use super::colours::{is_highlight, model_colour, plot_err, text_style, LEGEND_SIZE};

/// Canvas of the line charts, and the part of it the legend takes on the right.
pub(crate) const LINE_SIZE: (u32, u32) = (1000, 500);
pub(crate) const LEGEND_WIDTH: u32 = 270;

/// Radius of the ring marking a model's best epoch.
pub(crate) const RING_RADIUS: u32 = 10;

/// One model's curve of a line chart, in plot coordinates.
pub(crate) struct Line {
    /// The model's name (its colour).
    pub(crate) name: String,
    /// The legend's text.
    pub(crate) label: String,
    /// The curve, in plot coordinates.
    pub(crate) points: Vec<(f64, f64)>,
    /// The point to ring (the best epoch).
    pub(crate) ring: Option<usize>,
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

/// Draws a line chart with its legend on the right; `ring_note` is the legend text of the
/// rings, when some line has one.
pub(crate) fn line_chart(
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

/// A line chart of `lines` over epochs 1..=`epochs`, the y axis fitted to their values.
pub(crate) fn epoch_chart(
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
pub(crate) fn y_extent(lines: &[Line]) -> (f64, f64) {
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
