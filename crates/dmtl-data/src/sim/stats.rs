//! Summary rates of a simulated log: click-through, long reads, click-bait and popularity skew.

use serde::{Deserialize, Serialize};

use crate::raw::{RawColumn, RawLog};

use super::Simulator;

/// Summary rates of a simulated log, as documented at the top of this module; see
/// [`Simulator::stats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    /// Number of impressions.
    pub n_rows: usize,
    /// Clicks / impressions.
    pub ctr: f64,
    /// Long reads (duration > threshold) / clicks.
    pub long_read_share_of_clicks: f64,
    /// Mean reading time of a click, seconds.
    pub mean_read_seconds: f64,
    /// Click-bait items / items of the corpus.
    pub clickbait_item_share: f64,
    /// Impressions of click-bait items / impressions.
    pub clickbait_impression_share: f64,
    /// CTR of click-bait impressions.
    pub ctr_clickbait: f64,
    /// CTR of the other impressions.
    pub ctr_other: f64,
    /// Mean reading time of a click on click-bait, seconds.
    pub mean_read_clickbait: f64,
    /// Mean reading time of a click on other items, seconds.
    pub mean_read_other: f64,
    /// Long-read share of clicks on click-bait.
    pub long_read_share_clickbait: f64,
    /// Long-read share of clicks on other items.
    pub long_read_share_other: f64,
    /// Share of impressions that go to the 10 % most shown items.
    pub top_decile_impression_share: f64,
}

impl Simulator {
    /// Rates of `log`, which must carry labels and an `item_id` column of this simulator's ids.
    ///
    /// # Errors
    /// When the labels or `item_id` are missing or an item id is not one of this simulator's.
    pub fn stats(&self, log: &RawLog) -> Result<SimStats, String> {
        let (Some(click), Some(duration)) = (&log.click, &log.duration) else {
            return Err(format!(
                "{}: the log has no click or duration labels",
                log.source
            ));
        };
        let Some(RawColumn::Categorical(ids)) = log.column("item_id") else {
            return Err(format!("{}: no categorical item_id column", log.source));
        };
        let t = self.cfg.long_read_threshold as f32;
        // [impressions, clicks, long reads, read seconds] for click-bait (0) and others (1).
        let mut acc = [[0f64; 4]; 2];
        let mut shown = vec![0usize; self.cfg.n_items];
        for (r, id) in ids.iter().enumerate() {
            let i = self
                .item_index(id)
                .ok_or_else(|| format!("{}: row {r}: unknown item id {id:?}", log.source))?;
            shown[i] += 1;
            let a = &mut acc[usize::from(!self.item_clickbait[i])];
            a[0] += 1.0;
            if click[r] > 0.5 {
                a[1] += 1.0;
                a[2] += f64::from(u8::from(duration[r] > t));
                a[3] += duration[r] as f64;
            }
        }
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let all: Vec<f64> = (0..4).map(|k| acc[0][k] + acc[1][k]).collect();
        shown.sort_unstable_by(|a, b| b.cmp(a));
        let top = shown.len().div_ceil(10);
        let top_sum: usize = shown[..top].iter().sum();
        Ok(SimStats {
            n_rows: ids.len(),
            ctr: ratio(all[1], all[0]),
            long_read_share_of_clicks: ratio(all[2], all[1]),
            mean_read_seconds: ratio(all[3], all[1]),
            clickbait_item_share: ratio(
                self.item_clickbait.iter().filter(|&&b| b).count() as f64,
                self.cfg.n_items as f64,
            ),
            clickbait_impression_share: ratio(acc[0][0], all[0]),
            ctr_clickbait: ratio(acc[0][1], acc[0][0]),
            ctr_other: ratio(acc[1][1], acc[1][0]),
            mean_read_clickbait: ratio(acc[0][3], acc[0][1]),
            mean_read_other: ratio(acc[1][3], acc[1][1]),
            long_read_share_clickbait: ratio(acc[0][2], acc[0][1]),
            long_read_share_other: ratio(acc[1][2], acc[1][1]),
            top_decile_impression_share: ratio(top_sum as f64, all[0]),
        })
    }
}
