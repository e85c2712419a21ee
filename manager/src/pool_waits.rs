//! How long pooled runs wait, from coming due (their schedule's time, or the `start`) to a
//! member taking them: a Prometheus histogram, `tunasync_pool_wait_seconds`.
//!
//! The state actor records each grant once it is committed; `/metrics` reads. Lock-free:
//! one atomic counter per bucket.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (`+Inf` is the count).
const BOUNDS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

#[derive(Default)]
pub struct PoolWaits {
    /// Waits at or below each bound (not cumulative; summed when rendered).
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl PoolWaits {
    pub fn record(&self, waited: Duration) {
        let secs = waited.as_secs_f64();
        if let Some(idx) = BOUNDS.iter().position(|bound| secs <= *bound) {
            self.buckets[idx].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The histogram in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP tunasync_pool_wait_seconds How long pooled runs waited from coming due to a member taking them.\n# TYPE tunasync_pool_wait_seconds histogram"
        );
        let mut cumulative = 0;
        for (bound, bucket) in BOUNDS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "tunasync_pool_wait_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "tunasync_pool_wait_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             tunasync_pool_wait_seconds_sum {sum}\n\
             tunasync_pool_wait_seconds_count {count}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_long_waits_count_only_in_inf() {
        let waits = PoolWaits::default();
        waits.record(Duration::from_millis(5));
        waits.record(Duration::from_millis(80));
        waits.record(Duration::from_secs(4000));
        let mut out = String::new();
        waits.render(&mut out);
        assert!(
            out.contains("tunasync_pool_wait_seconds_bucket{le=\"0.01\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("tunasync_pool_wait_seconds_bucket{le=\"0.1\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("tunasync_pool_wait_seconds_bucket{le=\"1800\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("tunasync_pool_wait_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("tunasync_pool_wait_seconds_count 3\n"),
            "{out}"
        );
        assert!(
            out.contains("tunasync_pool_wait_seconds_sum 4000.085\n"),
            "{out}"
        );
    }
}
