//! How every plot looks: a model's colour (the same in every plot; DMTL, the highlight, red
//! and drawn thicker), the fonts, and the error of a failed drawing.

use anyhow::anyhow;
use plotters::prelude::*;

/// The model every plot highlights.
pub(crate) const HIGHLIGHT: &str = "dmtl";

/// Font sizes in plotters' units (the SVG's pixels are these divided by 1.24).
pub(crate) const TITLE_SIZE: f64 = 25.0;
pub(crate) const PANEL_SIZE: f64 = 20.0;
pub(crate) const DESC_SIZE: f64 = 18.0;
pub(crate) const TICK_SIZE: f64 = 16.0;
pub(crate) const LEGEND_SIZE: f64 = 17.0;

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

pub(crate) fn is_highlight(name: &str) -> bool {
    name == HIGHLIGHT
}

pub(crate) fn text_style(size: f64, colour: RGBColor, bold: bool) -> TextStyle<'static> {
    let style = if bold {
        FontStyle::Bold
    } else {
        FontStyle::Normal
    };
    FontDesc::new(FontFamily::SansSerif, size, style).color(&colour)
}

pub(crate) fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e}")
}
