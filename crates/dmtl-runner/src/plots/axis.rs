//! The axes of the plots: linear, epochs or logarithmic, each with its round ticks and their
//! labels, and the plotters coordinate whose ticks are exactly an axis' own.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

/// One axis: its range in plot coordinates, ticks (position, label) and description.
pub(crate) struct Axis {
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    pub(crate) ticks: Vec<(f64, String)>,
    pub(crate) desc: String,
}

impl Axis {
    /// Linear from `lo` to `hi` with about six round ticks.
    pub(crate) fn linear(lo: f64, hi: f64, desc: &str) -> Axis {
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
    pub(crate) fn epochs(n: usize) -> Axis {
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
    pub(crate) fn log10(lo: f64, hi: f64, desc: &str, label: fn(u64, i32) -> String) -> Axis {
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
    pub(crate) fn label(&self, v: f64) -> String {
        self.ticks
            .iter()
            .min_by(|p, q| (p.0 - v).abs().total_cmp(&(q.0 - v).abs()))
            .map(|t| t.1.clone())
            .unwrap_or_default()
    }

    pub(crate) fn coord(&self) -> AxisCoord {
        AxisCoord {
            lo: self.lo,
            hi: self.hi,
            ticks: self.ticks.iter().map(|t| t.0).collect(),
        }
    }
}

/// A linear coordinate whose ticks are exactly an [`Axis`]'s.
pub(crate) struct AxisCoord {
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
pub(crate) fn decimal(m: u64, k: i32) -> String {
    if k >= 0 {
        (m * 10u64.pow(k as u32)).to_string()
    } else {
        format!("{:.*}", (-k) as usize, m as f64 * 10f64.powi(k))
    }
}

/// The share `m 10^k` as a percentage.
pub(crate) fn percent(m: u64, k: i32) -> String {
    format!("{}%", decimal(m, k + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

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
