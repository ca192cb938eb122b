//! `cargo xtask scaling [--quick] [--only a,b] [--plot-only]`: how cost grows with the work.
//!
//! Builds the `scaling` binary of `benches/` in release mode and runs its sweeps, every point
//! in a process of its own (a thread count is set once per process, and a peak resident set
//! is one process's): the machine's bounds (a 1024x1024 SGEMM and a 1 GiB read, on 1 and 2
//! threads), the teacher's training step against batch size on 1 and 2 threads and against
//! its expert count and width, exact top-100 retrieval against corpus size beside Faiss
//! `IndexFlatIP` (when `faiss` imports), and CSV and Parquet reads against log length, in
//! memory and streamed, with peak memory. The points go to `docs/img/scaling/*.csv`; the
//! plots, each point beside the SGEMM or memory-bandwidth bound it cannot beat, to
//! `docs/img/scaling/*.svg`, and to PNG when `rsvg-convert` is installed.
//!
//! `--quick` runs small sizes and short windows (a minute or two); `--only` names the sweeps
//! to run again (`machine`, `batch`, `model`, `topk`, `ingest`), keeping the others' CSV
//! files; `--plot-only` only draws the stored CSV files again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use plotters::prelude::*;

/// The sweeps, in the order they run.
pub const SWEEPS: [&str; 5] = ["machine", "batch", "model", "topk", "ingest"];

/// Queries, dimension and K of the retrieval sweep, as the binary's.
const QUERIES: f64 = 1024.0;
const DIM: f64 = 64.0;

/// What `cargo xtask scaling` was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Small sizes and short windows.
    pub quick: bool,
    /// Only draw the stored CSV files again.
    pub plot_only: bool,
    /// The sweeps to run (all of [`SWEEPS`] by default).
    pub only: Vec<String>,
}

impl Options {
    /// Parses `--quick`, `--plot-only` and `--only a,b`; anything else is an error.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            quick: false,
            plot_only: false,
            only: SWEEPS.iter().map(|s| s.to_string()).collect(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--plot-only" => o.plot_only = true,
                "--only" => {
                    let v = it
                        .next()
                        .ok_or("--only needs sweeps, e.g. --only topk,ingest")?;
                    o.only = v.split(',').map(|s| s.trim().to_string()).collect();
                    if let Some(bad) = o.only.iter().find(|s| !SWEEPS.contains(&s.as_str())) {
                        return Err(format!(
                            "--only: unknown sweep `{bad}` (one of {})",
                            SWEEPS.join(", ")
                        ));
                    }
                }
                other => return Err(format!("unknown argument `{other}` of `xtask scaling`")),
            }
        }
        Ok(o)
    }
}

/// One run of the binary (or of the Faiss twin): the CSV file its lines go to and its args.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The sweep of [`SWEEPS`] it belongs to.
    pub sweep: &'static str,
    /// Arguments of the `scaling` binary.
    pub args: Vec<String>,
}

fn job(sweep: &'static str, args: &[&str]) -> Job {
    Job {
        sweep,
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

/// Corpus sizes of the retrieval sweep.
pub fn topk_sizes(quick: bool) -> Vec<usize> {
    if quick {
        vec![10_000, 100_000]
    } else {
        vec![10_000, 100_000, 1_000_000, 10_000_000]
    }
}

/// Every run of `sweep`, in order: one point per process.
pub fn jobs(sweep: &str, quick: bool) -> Vec<Job> {
    let timing: &[&str] = if quick {
        &[
            "--windows",
            "2",
            "--window_s",
            "0.5",
            "--max_s",
            "4",
            "--warmup_s",
            "0.5",
            "--wait_quiet_s",
            "1",
        ]
    } else {
        &[
            "--windows",
            "3",
            "--window_s",
            "1",
            "--max_s",
            "8",
            "--warmup_s",
            "1",
            "--wait_quiet_s",
            "5",
        ]
    };
    let with = |sweep: &'static str, args: &[&str]| {
        let mut j = job(sweep, args);
        j.args.extend(timing.iter().map(|s| s.to_string()));
        j
    };
    let mut out = Vec::new();
    match sweep {
        "machine" => {
            for kind in ["sgemm", "membw"] {
                for t in ["1", "2"] {
                    out.push(with("machine", &["--sweep", kind, "--threads", t]));
                }
            }
        }
        "batch" => {
            let batches: &[usize] = if quick {
                &[128, 1024, 8192]
            } else {
                &[128, 256, 512, 1024, 2048, 4096, 8192]
            };
            for t in ["1", "2"] {
                for b in batches {
                    let b = b.to_string();
                    out.push(with(
                        "batch",
                        &["--sweep", "batch", "--batch", &b, "--threads", t],
                    ));
                }
            }
        }
        "model" => {
            let (experts, widths): (&[usize], &[usize]) = if quick {
                (&[1, 8], &[64, 512])
            } else {
                (&[1, 2, 4, 8], &[64, 128, 256, 512])
            };
            for e in experts {
                let e = e.to_string();
                out.push(with(
                    "model",
                    &["--sweep", "experts", "--experts", &e, "--threads", "2"],
                ));
            }
            for w in widths {
                let w = w.to_string();
                out.push(with(
                    "model",
                    &["--sweep", "width", "--width", &w, "--threads", "2"],
                ));
            }
        }
        "topk" => {
            for n in topk_sizes(quick) {
                let runs = if n >= 10_000_000 { "2" } else { "5" };
                let n = n.to_string();
                out.push(job(
                    "topk",
                    &[
                        "--sweep",
                        "topk",
                        "--items",
                        &n,
                        "--runs",
                        runs,
                        "--threads",
                        "2",
                    ],
                ));
            }
        }
        "ingest" => {
            let rows: &[usize] = if quick {
                &[10_000, 100_000]
            } else {
                &[10_000, 100_000, 1_000_000, 10_000_000]
            };
            for &n in rows {
                let runs = if n >= 10_000_000 { "1" } else { "3" };
                let n = n.to_string();
                out.push(job("ingest", &["--sweep", "ingest_files", "--rows", &n]));
                for format in ["csv", "parquet"] {
                    for mode in ["memory", "stream"] {
                        out.push(job(
                            "ingest",
                            &[
                                "--sweep",
                                "ingest",
                                "--rows",
                                &n,
                                "--format",
                                format,
                                "--mode",
                                mode,
                                "--runs",
                                runs,
                                "--threads",
                                "2",
                            ],
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// The keys each sweep's CSV keeps of its points' JSON lines, in column order.
pub fn columns(sweep: &str) -> &'static [&'static str] {
    match sweep {
        "machine" => &[
            "sweep",
            "threads",
            "gflops",
            "gb_per_s",
            "imps_per_own_cpu_s_median",
            "foreign_cpu_median_pct",
            "clean_windows",
            "all_windows",
        ],
        "batch" | "model" => &[
            "sweep",
            "threads",
            "batch",
            "n_experts",
            "width",
            "imps_per_s_median",
            "imps_per_s_min",
            "imps_per_s_max",
            "step_ms_median",
            "flops_per_imp",
            "imps_per_own_cpu_s_median",
            "foreign_cpu_median_pct",
            "clean_windows",
            "all_windows",
        ],
        "topk" => &[
            "engine",
            "threads",
            "items",
            "imps_per_s_median",
            "imps_per_s_min",
            "imps_per_s_max",
            "imps_per_own_cpu_s_median",
            "foreign_cpu_median_pct",
            "clean_windows",
            "all_windows",
        ],
        _ => &[
            "format",
            "mode",
            "rows",
            "file_bytes",
            "imps_per_s_median",
            "imps_per_s_min",
            "imps_per_s_max",
            "peak_rss_mb",
            "imps_per_own_cpu_s_median",
            "foreign_cpu_median_pct",
            "clean_windows",
            "all_windows",
        ],
    }
}

/// The value of `key` in a one-line JSON object as text: a string's contents or a number's
/// digits; `None` when absent.
pub fn json_field(line: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\": ");
    let rest = &line[line.find(&pat)? + pat.len()..];
    if let Some(s) = rest.strip_prefix('"') {
        return Some(s[..s.find('"')?].to_string());
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().to_string())
}

/// A table of points: a header and rows of text cells, as stored in the CSV files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Rows of cells, one per column.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds the point of a JSON line: each column's value, empty when the line has none
    /// (`engine` is `dmtl <kernel>` for the binary's retrieval lines).
    pub fn push_json(&mut self, line: &str) {
        let row = self
            .header
            .iter()
            .map(|k| match k.as_str() {
                "engine" => json_field(line, "engine")
                    .or_else(|| json_field(line, "kernel").map(|k| format!("dmtl {k}")))
                    .unwrap_or_default(),
                k => json_field(line, k).unwrap_or_default(),
            })
            .collect();
        self.rows.push(row);
    }

    /// The CSV text (no cell holds a comma or a quote).
    pub fn to_csv(&self) -> String {
        let mut s = self.header.join(",") + "\n";
        for r in &self.rows {
            s += &(r.join(",") + "\n");
        }
        s
    }

    /// Parses [`Table::to_csv`]'s text; `origin` names the file in errors.
    pub fn from_csv(text: &str, origin: &str) -> Result<Table, String> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<String> = lines
            .next()
            .ok_or_else(|| format!("{origin}: empty file"))?
            .split(',')
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for (i, l) in lines.enumerate() {
            let row: Vec<String> = l.split(',').map(str::to_string).collect();
            if row.len() != header.len() {
                return Err(format!(
                    "{origin}: line {}: {} cells for {} columns",
                    i + 2,
                    row.len(),
                    header.len()
                ));
            }
            rows.push(row);
        }
        Ok(Table { header, rows })
    }

    /// The cell of `key` in row `r`.
    pub fn text(&self, r: usize, key: &str) -> &str {
        self.header
            .iter()
            .position(|h| h == key)
            .map_or("", |c| self.rows[r][c].as_str())
    }

    /// The cell of `key` in row `r` as a number (NaN when empty or not a number).
    pub fn num(&self, r: usize, key: &str) -> f64 {
        self.text(r, key).parse().unwrap_or(f64::NAN)
    }

    /// `(x, y)` of the rows `keep` keeps, sorted by x, rows without a finite y left out.
    pub fn points(&self, x: &str, y: &str, keep: impl Fn(usize) -> bool) -> Vec<(f64, f64)> {
        let mut p: Vec<(f64, f64)> = (0..self.rows.len())
            .filter(|&r| keep(r))
            .map(|r| (self.num(r, x), self.num(r, y)))
            .filter(|(a, b)| a.is_finite() && b.is_finite() && *a > 0.0 && *b > 0.0)
            .collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        p
    }
}

/// The machine's bounds: SGEMM GFLOP/s and read bandwidth GB/s per thread count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds {
    /// GFLOP/s of a 1024x1024 SGEMM by thread count.
    pub gflops: BTreeMap<u32, f64>,
    /// GB/s of a 1 GiB sum by thread count.
    pub gb_per_s: BTreeMap<u32, f64>,
}

impl Bounds {
    /// The bounds in `machine.csv`'s table.
    pub fn of(t: &Table) -> Bounds {
        let mut b = Bounds::default();
        for r in 0..t.rows.len() {
            let threads = t.num(r, "threads") as u32;
            match t.text(r, "sweep") {
                "sgemm" => b.gflops.insert(threads, t.num(r, "gflops")),
                "membw" => b.gb_per_s.insert(threads, t.num(r, "gb_per_s")),
                _ => None,
            };
        }
        b
    }

    /// Most impressions per second a step of `flops` matrix-product FLOPs per impression can
    /// reach on `threads` threads: every FLOP at the SGEMM rate.
    pub fn step_imp_per_s(&self, threads: u32, flops: f64) -> f64 {
        self.gflops
            .get(&threads)
            .map_or(f64::NAN, |g| g * 1e9 / flops)
    }

    /// Most queries per second of an exact search over `items` vectors of [`DIM`] floats with
    /// f32 scores: `(SGEMM bound, memory bound)`. Every query costs `2 items dim` FLOPs; a
    /// batch of [`QUERIES`] must read the corpus at least once.
    pub fn topk_q_per_s(&self, threads: u32, items: f64) -> (f64, f64) {
        let flops = self
            .gflops
            .get(&threads)
            .map_or(f64::NAN, |g| g * 1e9 / (2.0 * items * DIM));
        let bytes = self
            .gb_per_s
            .get(&threads)
            .map_or(f64::NAN, |b| QUERIES * b * 1e9 / (items * DIM * 4.0));
        (flops, bytes)
    }

    /// Most rows per second of any pass over a file of `bytes` bytes holding `rows` rows: the
    /// file read at the memory bandwidth.
    pub fn rows_per_s(&self, threads: u32, rows: f64, bytes: f64) -> f64 {
        self.gb_per_s
            .get(&threads)
            .map_or(f64::NAN, |b| b * 1e9 * rows / bytes)
    }
}

/// `v` in a few characters: 1.5k, 20k, 3M, 0.25.
pub fn short(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let digits = if scaled.abs() >= 10.0 || scaled.fract().abs() < 1e-9 {
        0
    } else if (scaled * 10.0).fract().abs() < 1e-9 {
        1
    } else {
        2
    };
    format!("{scaled:.digits$}{suffix}")
}

/// Ticks at 1, 2 and 5 times powers of ten from `lo` to `hi` (both > 0), only powers of ten
/// when that still gives three or more.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let all = |mantissas: &[f64]| -> Vec<f64> {
        let mut t = Vec::new();
        for k in lo.log10().floor() as i32..=hi.log10().ceil() as i32 {
            for m in mantissas {
                let v = m * 10f64.powi(k);
                if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                    t.push(v);
                }
            }
        }
        t
    };
    let decades = all(&[1.0]);
    if decades.len() >= 3 {
        decades
    } else {
        all(&[1.0, 2.0, 5.0])
    }
}

/// One curve of a panel.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend's text.
    pub label: String,
    /// Points, sorted by x.
    pub points: Vec<(f64, f64)>,
    /// Its colour.
    pub colour: RGBColor,
    /// A bound, drawn dashed without dots.
    pub bound: bool,
}

/// One chart: log-log axes, x ticks at `x_ticks`.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Caption above the chart.
    pub caption: String,
    /// x axis description, with its unit.
    pub x_desc: String,
    /// y axis description, with its unit.
    pub y_desc: String,
    /// The x values to label.
    pub x_ticks: Vec<f64>,
    /// Label x ticks with every digit (8192) rather than in short form (10k, 1M).
    pub x_exact: bool,
    /// Where the legend goes, away from the curves.
    pub legend: SeriesLabelPosition,
    /// The curves.
    pub series: Vec<Series>,
}

fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 6] = [
        RGBColor(215, 25, 28),
        RGBColor(0, 114, 178),
        RGBColor(0, 158, 115),
        RGBColor(230, 159, 0),
        RGBColor(117, 112, 179),
        RGBColor(90, 90, 90),
    ];
    C[i % C.len()]
}

fn font(size: f64) -> TextStyle<'static> {
    FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal).color(&BLACK)
}

fn draw_err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing: {e}")
}

/// An SVG of `panels` side by side under `title`, each `panel_size` pixels.
pub fn svg(title: &str, panels: &[Panel], panel_size: (u32, u32)) -> Result<String, String> {
    let size = (panel_size.0 * panels.len() as u32, panel_size.1 + 40);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let body = root.titled(title, font(26.0)).map_err(draw_err)?;
        let areas = body.split_evenly((1, panels.len().max(1)));
        for (panel, area) in panels.iter().zip(&areas) {
            draw_panel(panel, area)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(out)
}

fn draw_panel(
    p: &Panel,
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
) -> Result<(), String> {
    let xs = p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0));
    let ys: Vec<f64> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|q| q.1))
        .collect();
    let (x0, x1) = xs.fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    let (y0, y1) = ys
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &y| (a.min(y), b.max(y)));
    if !(x0.is_finite() && y0.is_finite()) {
        return Ok(());
    }
    // A little room around the points, and at least a factor of 4 on y so ticks fit.
    let (x0, x1) = (x0 / 1.15, x1 * 1.15);
    let mid = (y0 * y1).sqrt();
    let span = (y1 / y0).max(4.0).sqrt() * 1.3;
    let (y0, y1) = (mid / span, mid * span);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.caption, font(20.0))
        .margin(12)
        .margin_right(24)
        .x_label_area_size(56)
        .y_label_area_size(78)
        .build_cartesian_2d(
            (x0..x1).log_scale().with_key_points(p.x_ticks.clone()),
            (y0..y1).log_scale().with_key_points(log_ticks(y0, y1)),
        )
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(p.x_desc.as_str())
        .y_desc(p.y_desc.as_str())
        .x_label_formatter(&|v| {
            if p.x_exact {
                format!("{v:.0}")
            } else {
                short(*v)
            }
        })
        .y_label_formatter(&|v| short(*v))
        .label_style(font(15.0))
        .axis_desc_style(font(17.0))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(draw_err)?;
    for s in &p.series {
        let c = s.colour;
        if s.bound {
            chart
                .draw_series(DashedLineSeries::new(
                    s.points.iter().copied(),
                    8,
                    6,
                    c.stroke_width(2),
                ))
                .map_err(draw_err)?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (7, 0)], c.stroke_width(2))
                        + PathElement::new(vec![(13, 0), (20, 0)], c.stroke_width(2))
                });
        } else {
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(3)))
                .map_err(draw_err)?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (20, 0)], c.stroke_width(3))
                        + Circle::new((10, 0), 4, c.filled())
                });
            chart
                .draw_series(s.points.iter().map(|&q| Circle::new(q, 4, c.filled())))
                .map_err(draw_err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(p.legend.clone())
        .label_font(font(14.0))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(draw_err)
}

/// A curve of a measured table.
fn measured(label: String, points: Vec<(f64, f64)>, i: usize) -> Series {
    Series {
        label,
        points,
        colour: colour(i),
        bound: false,
    }
}

/// A bound's curve.
fn bound(label: String, points: Vec<(f64, f64)>, i: usize) -> Series {
    Series {
        label,
        points,
        colour: colour(i),
        bound: true,
    }
}

fn xs(points: &[(f64, f64)]) -> Vec<f64> {
    points.iter().map(|p| p.0).collect()
}

/// The plots of the stored tables: (file stem, title, panels).
pub fn plots(tables: &BTreeMap<String, Table>) -> Vec<(String, String, Vec<Panel>)> {
    let empty = Table::default();
    let machine = Bounds::of(tables.get("machine").unwrap_or(&empty));
    let mut out = Vec::new();
    if let Some(t) = tables.get("batch") {
        let mut series = Vec::new();
        let mut ticks = Vec::new();
        for (i, threads) in [1u32, 2].into_iter().enumerate() {
            let keep = |r: usize| t.num(r, "threads") as u32 == threads;
            let p = t.points("batch", "imps_per_s_median", keep);
            let b: Vec<(f64, f64)> = t
                .points("batch", "flops_per_imp", keep)
                .into_iter()
                .map(|(x, f)| (x, machine.step_imp_per_s(threads, f)))
                .filter(|q| q.1.is_finite())
                .collect();
            ticks.extend(xs(&p));
            let s = if threads == 1 { "" } else { "s" };
            series.push(measured(format!("teacher step, {threads} thread{s}"), p, i));
            series.push(bound(format!("SGEMM bound, {threads} thread{s}"), b, i));
        }
        ticks.dedup();
        out.push((
            "teacher_batch".to_string(),
            "Teacher training step against batch size".to_string(),
            vec![Panel {
                caption: "MMoE+ESMM reference teacher, Adam".to_string(),
                x_desc: "batch size (impressions)".to_string(),
                y_desc: "impressions per second".to_string(),
                x_ticks: ticks,
                x_exact: true,
                legend: SeriesLabelPosition::LowerRight,
                series,
            }],
        ));
    }
    if let Some(t) = tables.get("model") {
        let panel = |sweep: &str, x: &str, caption: &str, desc: &str| {
            let keep = |r: usize| t.text(r, "sweep") == sweep;
            let p = t.points(x, "step_ms_median", keep);
            let b: Vec<(f64, f64)> = t
                .points(x, "flops_per_imp", keep)
                .into_iter()
                .map(|(v, f)| (v, 1e3 * 1024.0 / machine.step_imp_per_s(2, f)))
                .filter(|q| q.1.is_finite())
                .collect();
            Panel {
                caption: caption.to_string(),
                x_desc: desc.to_string(),
                y_desc: "step time (ms), batch 1,024".to_string(),
                x_ticks: xs(&p),
                x_exact: true,
                legend: SeriesLabelPosition::LowerRight,
                series: vec![
                    measured("teacher step, 2 threads".to_string(), p, 0),
                    bound("SGEMM bound, 2 threads".to_string(), b, 0),
                ],
            }
        };
        out.push((
            "teacher_model".to_string(),
            "Teacher training step against model size".to_string(),
            vec![
                panel("experts", "n_experts", "experts of [256, 128]", "experts"),
                panel(
                    "width",
                    "width",
                    "4 experts of [w, 128]",
                    "first expert layer width w",
                ),
            ],
        ));
    }
    if let Some(t) = tables.get("topk") {
        let mut series = Vec::new();
        let engines = ["dmtl default", "dmtl gemm", "faiss"];
        let labels = [
            "dmtl (bf16 filter, exact rescoring)",
            "dmtl (f32 GEMM)",
            "Faiss IndexFlatIP",
        ];
        let mut ticks = Vec::new();
        for (i, (e, l)) in engines.iter().zip(labels).enumerate() {
            let p = t.points("items", "imps_per_s_median", |r| t.text(r, "engine") == *e);
            ticks.extend(xs(&p));
            if !p.is_empty() {
                series.push(measured(l.to_string(), p, i));
            }
        }
        ticks.sort_by(f64::total_cmp);
        ticks.dedup();
        let sgemm: Vec<(f64, f64)> = ticks
            .iter()
            .map(|&n| (n, machine.topk_q_per_s(2, n).0))
            .filter(|q| q.1.is_finite())
            .collect();
        let mem: Vec<(f64, f64)> = ticks
            .iter()
            .map(|&n| (n, machine.topk_q_per_s(2, n).1))
            .filter(|q| q.1.is_finite())
            .collect();
        series.push(bound("f32 SGEMM bound, 2 threads".to_string(), sgemm, 4));
        series.push(bound("memory-bandwidth bound".to_string(), mem, 5));
        out.push((
            "topk".to_string(),
            "Exact top-100 retrieval against corpus size".to_string(),
            vec![Panel {
                caption: "1,024 queries, 64 floats, 2 threads".to_string(),
                x_desc: "corpus (items)".to_string(),
                y_desc: "queries per second".to_string(),
                x_ticks: ticks,
                x_exact: false,
                legend: SeriesLabelPosition::UpperRight,
                series,
            }],
        ));
    }
    if let Some(t) = tables.get("ingest") {
        let mut rate = Vec::new();
        let mut memory = Vec::new();
        let mut ticks = Vec::new();
        let mut i = 0;
        for format in ["csv", "parquet"] {
            for mode in ["memory", "stream"] {
                let keep = |r: usize| t.text(r, "format") == format && t.text(r, "mode") == mode;
                let label = match mode {
                    "memory" => format!("{format}, read into memory"),
                    _ => format!("{format}, streamed"),
                };
                let p = t.points("rows", "imps_per_s_median", keep);
                ticks.extend(xs(&p));
                rate.push(measured(label.clone(), p, i));
                memory.push(measured(label, t.points("rows", "peak_rss_mb", keep), i));
                i += 1;
            }
            let keep = |r: usize| t.text(r, "format") == format && t.text(r, "mode") == "memory";
            let b: Vec<(f64, f64)> = (0..t.rows.len())
                .filter(|&r| keep(r))
                .map(|r| {
                    let rows = t.num(r, "rows");
                    (rows, machine.rows_per_s(2, rows, t.num(r, "file_bytes")))
                })
                .filter(|q| q.1.is_finite())
                .collect();
            let mut b = b;
            b.sort_by(|x, y| x.0.total_cmp(&y.0));
            rate.push(bound(
                format!("{format} file at memory bandwidth"),
                b,
                i - 2,
            ));
        }
        ticks.sort_by(f64::total_cmp);
        ticks.dedup();
        out.push((
            "ingest".to_string(),
            "Reading a log against its length".to_string(),
            vec![
                Panel {
                    caption: "read + encode, 2 threads".to_string(),
                    x_desc: "log length (rows)".to_string(),
                    y_desc: "rows per second".to_string(),
                    x_ticks: ticks.clone(),
                    x_exact: false,
                    legend: SeriesLabelPosition::MiddleRight,
                    series: rate,
                },
                Panel {
                    caption: "peak resident memory of the process".to_string(),
                    x_desc: "log length (rows)".to_string(),
                    y_desc: "peak RSS (MB)".to_string(),
                    x_ticks: ticks,
                    x_exact: false,
                    legend: SeriesLabelPosition::UpperLeft,
                    series: memory,
                },
            ],
        ));
    }
    out
}

/// Runs `c` and returns its standard output's lines, echoing each; `None` when it fails.
fn lines_of(mut c: Command, what: &str) -> Option<Vec<String>> {
    c.stderr(std::process::Stdio::inherit());
    match c.output() {
        Ok(o) if o.status.success() => {
            let lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            for l in &lines {
                println!("{l}");
            }
            Some(lines)
        }
        Ok(o) => {
            eprintln!("xtask: {what} failed ({})", o.status);
            None
        }
        Err(e) => {
            eprintln!("xtask: could not start {what}: {e}");
            None
        }
    }
}

fn out_dir(root: &Path) -> PathBuf {
    root.join("docs/img/scaling")
}

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("error: could not write {}: {e}", path.display());
        std::process::exit(1);
    }
}

/// Runs the sweeps of `opts`, stores their CSV files, and draws every stored one.
pub fn command(root: &Path, opts: &Options, cargo: impl Fn() -> Command) {
    let dir = out_dir(root);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: could not create {}: {e}", dir.display());
        std::process::exit(1);
    }
    if !opts.plot_only {
        let mut build = cargo();
        build.args([
            "build",
            "--release",
            "-p",
            "dmtl-benches",
            "--bin",
            "scaling",
        ]);
        if !build.status().is_ok_and(|s| s.success()) {
            eprintln!("error: building the scaling binary failed");
            std::process::exit(1);
        }
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(d) if !d.is_empty() => root.join(d),
            _ => root.join("target"),
        };
        let bin = target.join("release/scaling");
        for sweep in &opts.only {
            let mut table = Table::new(columns(sweep));
            for j in jobs(sweep, opts.quick) {
                let mut c = Command::new(&bin);
                c.args(&j.args);
                let what = format!("scaling {}", j.args.join(" "));
                eprintln!("xtask: {what}");
                for l in lines_of(c, &what).unwrap_or_default() {
                    if json_field(&l, "imps_per_s_median").is_some() {
                        table.push_json(&l);
                    }
                }
            }
            if sweep == "topk" {
                faiss(root, opts.quick, &mut table);
            }
            write(&dir.join(format!("{sweep}.csv")), &table.to_csv());
        }
    }
    draw(&dir);
}

/// Adds Faiss `IndexFlatIP` at the retrieval sweep's sizes (the twin of
/// `crates/dmtl-student/benches/faiss_compare.py`), or says why not.
fn faiss(root: &Path, quick: bool, table: &mut Table) {
    let has = Command::new("python3")
        .args(["-c", "import faiss, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        eprintln!("xtask: faiss is not installed (pip install faiss-cpu numpy): dmtl alone");
        return;
    }
    let mut c = Command::new("python3");
    c.arg(root.join("crates/dmtl-student/benches/faiss_compare.py"))
        .args(["--threads", "2", "--runs", "3", "--nb"])
        .args(topk_sizes(quick).iter().map(|n| n.to_string()));
    for l in lines_of(c, "faiss_compare.py").unwrap_or_default() {
        let Some(items) = json_field(&l, "items") else {
            continue;
        };
        let row = table
            .header
            .iter()
            .map(|k| match k.as_str() {
                "engine" => "faiss".to_string(),
                "threads" => "2".to_string(),
                "items" => items.clone(),
                "imps_per_s_median" => json_field(&l, "qps_median").unwrap_or_default(),
                "imps_per_s_max" => json_field(&l, "qps_max").unwrap_or_default(),
                "imps_per_own_cpu_s_median" => {
                    json_field(&l, "qps_per_cpu_s_median").unwrap_or_default()
                }
                _ => String::new(),
            })
            .collect();
        table.rows.push(row);
    }
}

/// Draws the plots of the CSV files in `dir` and converts them to PNG.
fn draw(dir: &Path) {
    let mut tables = BTreeMap::new();
    for sweep in SWEEPS {
        let path = dir.join(format!("{sweep}.csv"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        match Table::from_csv(&text, &path.display().to_string()) {
            Ok(t) => {
                tables.insert(sweep.to_string(), t);
            }
            Err(e) => eprintln!("xtask: {e}"),
        }
    }
    let rsvg = Command::new("rsvg-convert")
        .arg("--version")
        .output()
        .is_ok();
    if !rsvg {
        eprintln!("xtask: rsvg-convert is missing (Debian: librsvg2-bin): SVG only");
    }
    for (stem, title, panels) in plots(&tables) {
        let text = match svg(&title, &panels, (900, 560)) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("xtask: {stem}: {e}");
                continue;
            }
        };
        let svg_path = dir.join(format!("{stem}.svg"));
        write(&svg_path, &text);
        println!("xtask: wrote {}", svg_path.display());
        if rsvg {
            let png = dir.join(format!("{stem}.png"));
            let ok = Command::new("rsvg-convert")
                .args(["-b", "white", "-o"])
                .arg(&png)
                .arg(&svg_path)
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                println!("xtask: wrote {}", png.display());
            } else {
                eprintln!("xtask: rsvg-convert failed on {}", svg_path.display());
            }
        }
    }
    summary(&tables);
}

/// Prints each measured point beside its bound and the share of the bound it reaches.
fn summary(tables: &BTreeMap<String, Table>) {
    let empty = Table::default();
    let m = Bounds::of(tables.get("machine").unwrap_or(&empty));
    println!(
        "\nmachine: SGEMM GFLOP/s {:?}, read GB/s {:?}",
        m.gflops, m.gb_per_s
    );
    let line = |what: String, v: f64, b: f64, unit: &str| {
        println!(
            "{what:<44} {:>10} {unit}  bound {:>10}  {:>5.1} %",
            short(v),
            short(b),
            100.0 * v / b
        );
    };
    for key in ["batch", "model"] {
        let Some(t) = tables.get(key) else { continue };
        for r in 0..t.rows.len() {
            let threads = t.num(r, "threads") as u32;
            let v = t.num(r, "imps_per_s_median");
            let b = m.step_imp_per_s(threads, t.num(r, "flops_per_imp"));
            let what = format!(
                "{} b={} e={} w={} t={threads}",
                t.text(r, "sweep"),
                t.text(r, "batch"),
                t.text(r, "n_experts"),
                t.text(r, "width")
            );
            line(what, v, b, "imp/s");
        }
    }
    if let Some(t) = tables.get("topk") {
        for r in 0..t.rows.len() {
            let n = t.num(r, "items");
            let (f, b) = m.topk_q_per_s(2, n);
            let what = format!("topk {} n={}", t.text(r, "engine"), short(n));
            line(what, t.num(r, "imps_per_s_median"), f.min(b), "q/s");
        }
    }
    if let Some(t) = tables.get("ingest") {
        for r in 0..t.rows.len() {
            let rows = t.num(r, "rows");
            let what = format!(
                "ingest {} {} rows={} rss={} MB",
                t.text(r, "format"),
                t.text(r, "mode"),
                short(rows),
                t.text(r, "peak_rss_mb")
            );
            let b = m.rows_per_s(2, rows, t.num(r, "file_bytes"));
            line(what, t.num(r, "imps_per_s_median"), b, "rows/s");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_name_the_bad_sweep() {
        let o = Options::parse(&args(&["--quick", "--only", "topk,ingest"])).unwrap();
        assert!(o.quick && !o.plot_only);
        assert_eq!(o.only, ["topk", "ingest"]);
        assert_eq!(Options::parse(&[]).unwrap().only.len(), SWEEPS.len());
        assert!(Options::parse(&args(&["--only", "gpu"]))
            .unwrap_err()
            .contains("`gpu`"));
        assert!(Options::parse(&args(&["--fast"])).is_err());
    }

    #[test]
    fn every_point_runs_in_a_process_of_its_own() {
        let batch = jobs("batch", false);
        assert_eq!(batch.len(), 14);
        // Each thread count and batch size once.
        for t in ["1", "2"] {
            let bs: Vec<&str> = batch
                .iter()
                .filter(|j| j.args.windows(2).any(|w| w[0] == "--threads" && w[1] == t))
                .map(|j| j.args[3].as_str())
                .collect();
            assert_eq!(bs, ["128", "256", "512", "1024", "2048", "4096", "8192"]);
        }
        let ingest = jobs("ingest", false);
        // Per size: the files, then 2 formats x 2 modes.
        assert_eq!(ingest.len(), 4 * 5);
        assert_eq!(ingest[0].args[1], "ingest_files");
        assert!(jobs("ingest", true).len() < ingest.len());
        assert_eq!(topk_sizes(false).last(), Some(&10_000_000));
    }

    #[test]
    fn json_lines_become_csv_rows_and_back() {
        let line = r#"{"task": "topk", "threads": 2, "imps_per_s_median": 455, "clean_windows": 0, "sweep": "topk", "items": 1000000, "kernel": "gemm", "clean_rates": [1, 2]}"#;
        assert_eq!(json_field(line, "kernel").as_deref(), Some("gemm"));
        assert_eq!(json_field(line, "items").as_deref(), Some("1000000"));
        assert_eq!(json_field(line, "absent"), None);
        let mut t = Table::new(columns("topk"));
        t.push_json(line);
        assert_eq!(t.text(0, "engine"), "dmtl gemm");
        assert_eq!(t.num(0, "imps_per_s_median"), 455.0);
        assert!(t.num(0, "imps_per_s_min").is_nan());
        let back = Table::from_csv(&t.to_csv(), "topk.csv").unwrap();
        assert_eq!(back, t);
        let err = Table::from_csv("a,b\n1\n", "x.csv").unwrap_err();
        assert!(err.contains("x.csv") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn bounds_follow_the_hand_count() {
        let mut t = Table::new(columns("machine"));
        t.push_json(r#"{"sweep": "sgemm", "threads": 2, "gflops": 100.0}"#);
        t.push_json(r#"{"sweep": "membw", "threads": 2, "gb_per_s": 8.0}"#);
        let b = Bounds::of(&t);
        // 2,173,440 FLOPs per impression (the reference teacher) at 100 GFLOP/s.
        assert!((b.step_imp_per_s(2, 2_173_440.0) - 46_010.01).abs() < 0.1);
        assert!(b.step_imp_per_s(1, 2_173_440.0).is_nan());
        // 1M items of 64 floats: 128 MFLOP per query; 256 MB read per batch of 1,024 queries.
        let (f, m) = b.topk_q_per_s(2, 1e6);
        assert!((f - 781.25).abs() < 1e-9);
        assert!((m - 32_000.0).abs() < 1e-6);
        assert!((b.rows_per_s(2, 1e6, 2e8) - 4e7).abs() < 1e-3);
    }

    #[test]
    fn ticks_and_labels_are_round() {
        assert_eq!(log_ticks(1e4, 1e7), vec![1e4, 1e5, 1e6, 1e7]);
        assert_eq!(log_ticks(15.0, 120.0), vec![20.0, 50.0, 100.0]);
        assert_eq!(short(8192.0), "8.19k");
        assert_eq!(short(10_000_000.0), "10M");
        assert_eq!(short(2_500.0), "2.5k");
        assert_eq!(short(0.5), "0.5");
    }

    #[test]
    fn plots_draw_every_sweep_with_its_bounds() {
        let mut tables = BTreeMap::new();
        let mut m = Table::new(columns("machine"));
        m.push_json(r#"{"sweep": "sgemm", "threads": 1, "gflops": 60.0}"#);
        m.push_json(r#"{"sweep": "sgemm", "threads": 2, "gflops": 100.0}"#);
        m.push_json(r#"{"sweep": "membw", "threads": 2, "gb_per_s": 8.0}"#);
        tables.insert("machine".to_string(), m);
        let mut b = Table::new(columns("batch"));
        for (t, batch, v) in [
            (1, 128, 9e3),
            (1, 1024, 2e4),
            (2, 128, 1.5e4),
            (2, 1024, 3.5e4),
        ] {
            b.push_json(&format!(
                r#"{{"sweep": "batch", "threads": {t}, "batch": {batch}, "imps_per_s_median": {v}, "flops_per_imp": 2173440}}"#
            ));
        }
        tables.insert("batch".to_string(), b);
        let plots = plots(&tables);
        assert_eq!(plots.len(), 1);
        let panel = &plots[0].2[0];
        assert_eq!(panel.series.len(), 4);
        let bound2 = &panel.series[3];
        assert!(bound2.bound && bound2.points.iter().all(|p| (p.1 - 46_010.01).abs() < 0.1));
        let text = svg(&plots[0].1, &plots[0].2, (900, 560)).unwrap();
        assert!(text.contains("impressions per second") && text.contains("SGEMM bound"));
    }
}
