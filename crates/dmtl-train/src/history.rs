//! What a [`TrainHistory`] offers besides its fields: a copy without its wall-clock timings, so
//! that two runs of the same seed compare equal however long each took.

use crate::epochs::TrainHistory;

impl<P: Clone, V: Clone> TrainHistory<P, V> {
    /// A copy with every epoch's wall-clock fields (`train_seconds`,
    /// `impressions_per_second`, and over several ranks `comm_seconds`) set to 0; everything
    /// else is kept.
    pub fn without_timings(&self) -> Self {
        let mut history = self.clone();
        for epoch in &mut history.epochs {
            epoch.train_seconds = 0.0;
            epoch.impressions_per_second = 0.0;
            epoch.comm_seconds = epoch.comm_seconds.map(|_| 0.0);
        }
        history
    }
}

#[cfg(test)]
mod tests {
    use crate::epochs::{EpochReport, TrainHistory};

    fn report(epoch: usize, seconds: f64) -> EpochReport<(), ()> {
        EpochReport {
            epoch,
            train_loss: 0.5 + epoch as f64,
            parts: (),
            valid: None,
            train_seconds: seconds,
            impressions_per_second: 1_000.0 / seconds,
            skipped_batches: epoch,
            comm_seconds: Some(seconds / 4.0),
        }
    }

    #[test]
    fn histories_differing_only_in_timings_compare_equal_without_them() {
        let slow = TrainHistory {
            epochs: vec![report(0, 2.0), report(1, 3.0)],
            best_epoch: Some(1),
            stopped_early: true,
        };
        let fast = TrainHistory {
            epochs: vec![report(0, 0.5), report(1, 0.25)],
            ..slow.clone()
        };
        assert_ne!(slow, fast);
        let timeless = slow.without_timings();
        assert_eq!(timeless, fast.without_timings());
        assert!(timeless
            .epochs
            .iter()
            .all(|e| e.train_seconds == 0.0 && e.impressions_per_second == 0.0));
        // The other fields are kept.
        assert_eq!(timeless.best_epoch, Some(1));
        assert!(timeless.stopped_early);
        assert_eq!(timeless.epochs[1].train_loss, 1.5);
        assert_eq!(timeless.epochs[1].skipped_batches, 1);
    }
}
