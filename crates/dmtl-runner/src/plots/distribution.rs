//! The distribution of the true reading seconds of the retrieved items (simulated data): per
//! model, the share of retrieved pairs at or above each reading time, both axes logarithmic.

use crate::metrics::ModelResult;

use super::lines::Line;

/// The share of retrieved items with true reading seconds at or above each inner histogram
/// edge, pooled over `runs`, per model with a histogram; points are (log10 seconds, log10
/// share), zero shares left out.
pub(crate) fn survival_lines(runs: &[Vec<ModelResult>]) -> Vec<Line> {
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
