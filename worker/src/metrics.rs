//! The worker's own `/metrics` (served when `[health] addr` is set): its jobs' runs by
//! result, how long they took, the mirrors' sizes, what runs now. Recorded by each job's
//! `Reporter` as it reports; rendered with `prometheus-client`.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tunasync_shared::status::SyncStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    mirror: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MirrorLabels {
    mirror: String,
}

/// Run durations' bucket bounds, in seconds: a minute to a day.
const DURATION_BOUNDS: [f64; 10] = [
    10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BOUNDS)
}

/// The worker's job metrics. Cheap to clone: every handle shares its metric.
#[derive(Clone, Debug)]
pub struct JobMetrics {
    runs: Family<RunLabels, Counter>,
    durations: Family<MirrorLabels, Histogram, fn() -> Histogram>,
    last_duration: Family<MirrorLabels, Gauge<f64, AtomicU64>>,
    size: Family<MirrorLabels, Gauge<f64, AtomicU64>>,
    running: Family<MirrorLabels, Gauge>,
    transferred: Family<MirrorLabels, Counter>,
}

impl Default for JobMetrics {
    fn default() -> Self {
        JobMetrics {
            runs: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            last_duration: Family::default(),
            size: Family::default(),
            running: Family::default(),
            transferred: Family::default(),
        }
    }
}

impl JobMetrics {
    /// A run of `mirror` started.
    pub fn started(&self, mirror: &str) {
        self.running.get_or_create(&labels(mirror)).set(1);
    }

    /// A run of `mirror` ended with `status` after `took`; `size` is the mirror's size as
    /// reported.
    pub fn ended(&self, mirror: &str, status: SyncStatus, took: Duration, size: Option<&str>) {
        let mirror_labels = labels(mirror);
        self.running.get_or_create(&mirror_labels).set(0);
        self.runs
            .get_or_create(&RunLabels {
                mirror: mirror.to_owned(),
                result: status.as_str().to_owned(),
            })
            .inc();
        self.durations
            .get_or_create(&mirror_labels)
            .observe(took.as_secs_f64());
        self.last_duration
            .get_or_create(&mirror_labels)
            .set(took.as_secs_f64());
        if let Some(bytes) = size.and_then(tunasync_shared::size::size_bytes) {
            self.size.get_or_create(&mirror_labels).set(bytes);
        }
    }

    /// A successful rsync run of `mirror` transferred `bytes` (its `--stats`).
    pub fn transferred(&self, mirror: &str, bytes: u64) {
        self.transferred
            .get_or_create(&labels(mirror))
            .inc_by(bytes);
    }

    /// A registry with these metrics, for the health endpoint.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        registry.register(
            "tunasync_worker_runs",
            "Runs of the worker's jobs, by result",
            self.runs.clone(),
        );
        registry.register(
            "tunasync_worker_run_duration_seconds",
            "How long the worker's runs took",
            self.durations.clone(),
        );
        registry.register(
            "tunasync_worker_last_run_duration_seconds",
            "How long the job's last run took",
            self.last_duration.clone(),
        );
        registry.register(
            "tunasync_worker_mirror_size_bytes",
            "The mirror's size as last reported, in bytes",
            self.size.clone(),
        );
        registry.register(
            "tunasync_worker_transferred_bytes",
            "What the job's successful rsync runs transferred (their --stats)",
            self.transferred.clone(),
        );
        registry.register(
            "tunasync_worker_job_running",
            "Whether the job runs now",
            self.running.clone(),
        );
        registry
    }
}

fn labels(mirror: &str) -> MirrorLabels {
    MirrorLabels {
        mirror: mirror.to_owned(),
    }
}

pub use tunasync_shared::exposition::render;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_durations_and_sizes_by_mirror() {
        let metrics = JobMetrics::default();
        let registry = metrics.registry();
        metrics.started("debian");
        assert!(render(&registry).contains("tunasync_worker_job_running{mirror=\"debian\"} 1\n"));
        metrics.ended(
            "debian",
            SyncStatus::Success,
            Duration::from_secs(90),
            Some("2G"),
        );
        metrics.transferred("debian", 4096);
        metrics.started("debian");
        metrics.ended("debian", SyncStatus::Failed, Duration::from_secs(5), None);
        let text = render(&registry);
        for expected in [
            "tunasync_worker_runs_total{mirror=\"debian\",result=\"success\"} 1\n",
            "tunasync_worker_runs_total{mirror=\"debian\",result=\"failed\"} 1\n",
            "tunasync_worker_run_duration_seconds_count{mirror=\"debian\"} 2\n",
            "tunasync_worker_run_duration_seconds_bucket{le=\"10.0\",mirror=\"debian\"} 1\n",
            "tunasync_worker_last_run_duration_seconds{mirror=\"debian\"} 5.0\n",
            "tunasync_worker_mirror_size_bytes{mirror=\"debian\"} 2147483648.0\n",
            "tunasync_worker_job_running{mirror=\"debian\"} 0\n",
            "tunasync_worker_transferred_bytes_total{mirror=\"debian\"} 4096\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
