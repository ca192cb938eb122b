//! The canvas every plot is drawn on and the chart with its axes and grid.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{Axis, AxisCoord};
use super::colours::{plot_err, text_style, DESC_SIZE, PANEL_SIZE, TICK_SIZE, TITLE_SIZE};

/// A drawing area of an SVG canvas, in pixels from its top left corner.
pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A chart on [`AxisCoord`]s.
pub(crate) type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<AxisCoord, AxisCoord>>;

/// Draws an SVG of `size` pixels: a white canvas, `title` on top and `draw` below it.
pub(crate) fn canvas(
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
pub(crate) fn new_chart<'a, 'b>(
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
