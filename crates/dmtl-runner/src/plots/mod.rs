//! SVG plots of a run, drawn with plotters: the retrieval results per model as bars, the
//! validation long-read AUC and the training loss per epoch, and the distribution of the true
//! reading time of retrieved items (simulated data).
//!
//! Every plot draws a model in the colour [`model_colour`] gives its name, and DMTL stands out
//! (red, thicker lines, bold labels).

//!
//! One file per concern: [`colours`] (a model's colour, fonts), [`axis`] (axes and ticks),
//! [`chart`] (canvas and chart), [`lines`] (line charts and their legend), [`bars`] (the
//! retrieval bars), [`distribution`] (the reading-time distribution).

pub mod axis;
pub mod bars;
pub mod chart;
pub mod colours;
pub mod distribution;
pub mod lines;

use std::path::Path;

use anyhow::{Context, Result};

use crate::fsutil::write_text;
use crate::metrics::ModelResult;
use axis::{decimal, percent, Axis};
use bars::retrieval_bars;
pub use colours::model_colour;
use distribution::survival_lines;
use lines::{epoch_chart, line_chart, y_extent, Line};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::RetrievalMetrics;
    use crate::metrics::{EpochPoint, RowKind};
    use lines::{LEGEND_WIDTH, LINE_SIZE, RING_RADIUS};
    use plotters::style::RGBColor;

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
}
