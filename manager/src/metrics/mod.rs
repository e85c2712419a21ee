//! `GET /metrics`: rendered with `prometheus-client` (the Prometheus project's Rust client)
//! in the OpenMetrics text format.
//!
//! Two kinds of metric: what the manager counts as it goes ([`Telemetry`]: events applied
//! and dead-lettered, ingest lag, commands, pool waits, log follows), registered once; and
//! what the state says at the moment of the scrape (workers, jobs, pools, the broker
//! connection), read from the view by
//! [`collector::StateCollector`]. Job metrics carry the other Rust port's names and labels
//! (`mirror`, `worker`), so its dashboards work unchanged.

pub mod collector;
mod gzip_text;
pub use gzip_text::render_gzip;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the render histogram's buckets, in seconds.
const RENDER_BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Upper bounds of the wait and lag histograms' buckets, in seconds.
const BOUNDS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

/// What the manager counts as it goes. Cheap to clone: every handle shares its metric.
#[derive(Clone, Debug)]
pub struct Telemetry {
    /// Worker events applied and committed since start.
    pub events_applied: Counter,
    /// Events refused by ingestion and dead-lettered.
    pub dead_lettered: Counter,
    /// `hello`s and heartbeats skipped because a later one of the same worker came in the
    /// same batch.
    pub events_superseded: Counter,
    /// From an event's `sent_at` to its batch's commit.
    pub ingest_lag: Histogram,
    /// Commands published to workers (`POST /cmd` and the like).
    pub commands_sent: Counter,
    /// Commands that could not be published or got no answer in time.
    pub commands_failed: Counter,
    /// Pooled runs, from coming due to a member taking them.
    pub pool_wait: Histogram,
    /// Bringing the `GET /jobs` body up to date after a change (on the first read after it).
    pub jobs_render: Histogram,
    /// Job logs being followed through the manager now.
    pub log_follows: Gauge,
    /// Follows whose worker stopped sending after their reader went away.
    pub log_follows_stopped: Counter,
    /// Alert notifications, per sink.
    pub alerts: AlertTelemetry,
}

/// Labels of one alert sink.
type SinkLabels = Vec<(String, String)>;

/// What alert delivery counts.
#[derive(Clone, Debug, Default)]
pub struct AlertTelemetry {
    sent: Family<SinkLabels, Counter>,
    failed: Family<SinkLabels, Counter>,
    dropped: Family<SinkLabels, Counter>,
    open: Gauge,
}

impl AlertTelemetry {
    fn labels(sink: &str) -> SinkLabels {
        vec![("sink".to_owned(), sink.to_owned())]
    }

    /// A notification the sink took.
    pub fn sent(&self, sink: &str) {
        self.sent.get_or_create(&Self::labels(sink)).inc();
    }

    /// A notification not kept: the sink's outbox was full.
    pub fn dropped(&self, sink: &str) {
        self.dropped.get_or_create(&Self::labels(sink)).inc();
    }

    /// An attempt to deliver that failed (it is retried).
    pub fn failed(&self, sink: &str) {
        self.failed.get_or_create(&Self::labels(sink)).inc();
    }

    pub fn set_open(&self, n_open: usize) {
        self.open.set(i64::try_from(n_open).unwrap_or(i64::MAX));
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            events_applied: Counter::default(),
            dead_lettered: Counter::default(),
            events_superseded: Counter::default(),
            ingest_lag: Histogram::new(BOUNDS),
            commands_sent: Counter::default(),
            commands_failed: Counter::default(),
            pool_wait: Histogram::new(BOUNDS),
            jobs_render: Histogram::new(RENDER_BOUNDS),
            log_follows: Gauge::default(),
            log_follows_stopped: Counter::default(),
            alerts: AlertTelemetry::default(),
        }
    }
}

impl Telemetry {
    pub fn record_pool_wait(&self, waited: Duration) {
        self.pool_wait.observe(waited.as_secs_f64());
    }

    /// A registry with these metrics and `collector` (the state at each scrape).
    pub fn registry(&self, collector: collector::StateCollector) -> Registry {
        let mut registry = Registry::default();
        registry.register(
            "tunasync_events_applied",
            "Worker events applied and committed since start",
            self.events_applied.clone(),
        );
        registry.register(
            "tunasync_events_dead_lettered",
            "Worker events refused by ingestion and dead-lettered",
            self.dead_lettered.clone(),
        );
        registry.register(
            "tunasync_events_superseded",
            "Worker hellos and heartbeats skipped because a later one of the same worker came in the same batch",
            self.events_superseded.clone(),
        );
        registry.register(
            "tunasync_ingest_lag_seconds",
            "From an event's sending by its worker to its commit in the store",
            self.ingest_lag.clone(),
        );
        registry.register(
            "tunasync_commands_sent",
            "Commands published to workers",
            self.commands_sent.clone(),
        );
        registry.register(
            "tunasync_commands_failed",
            "Commands that could not be published or were not answered in time",
            self.commands_failed.clone(),
        );
        registry.register(
            "tunasync_jobs_render_seconds",
            "Bringing the GET /jobs body up to date after a change: the chunks it touched rendered (and compressed for a gzip reader), the body assembled",
            self.jobs_render.clone(),
        );
        registry.register(
            "tunasync_pool_wait_seconds",
            "How long pooled runs waited from coming due to a member taking them",
            self.pool_wait.clone(),
        );
        registry.register(
            "tunasync_log_follows",
            "Job logs being followed through the manager now",
            self.log_follows.clone(),
        );
        registry.register(
            "tunasync_log_follows_stopped",
            "Follows whose worker stopped sending after their reader went away",
            self.log_follows_stopped.clone(),
        );
        registry.register(
            "tunasync_alerts_sent",
            "Alert notifications delivered, per sink",
            self.alerts.sent.clone(),
        );
        registry.register(
            "tunasync_alerts_failed",
            "Attempts to deliver an alert notification that failed (each is retried), per sink",
            self.alerts.failed.clone(),
        );
        registry.register(
            "tunasync_alerts_dropped",
            "Alert notifications not kept because the sink's outbox was full, per sink",
            self.alerts.dropped.clone(),
        );
        registry.register(
            "tunasync_alerts_open",
            "Open alert incidents",
            self.alerts.open.clone(),
        );
        registry.register_collector(Box::new(collector));
        registry
    }
}

pub use tunasync_shared::exposition::{CONTENT_TYPE, render};

/// The metrics' registry, shared by the API.
pub type SharedRegistry = Arc<Registry>;

pub use tunasync_shared::size::size_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    /// What the manager counts, as the registry renders it: counters with `_total`,
    /// histograms with cumulative buckets (the pools bench reads them this way).
    #[test]
    fn counters_and_histograms_in_the_exposition() {
        let telemetry = Telemetry::default();
        let view = crate::view::View::new(crate::model::Model::default());
        let registry = telemetry.registry(collector::StateCollector {
            view,
            broker_connected: Box::new(|| true),
        });
        telemetry.record_pool_wait(Duration::from_millis(5));
        telemetry.record_pool_wait(Duration::from_millis(80));
        telemetry.record_pool_wait(Duration::from_secs(4000));
        telemetry.commands_sent.inc();
        telemetry.dead_lettered.inc();
        telemetry.ingest_lag.observe(0.02);
        let text = render(&registry);
        for expected in [
            "tunasync_pool_wait_seconds_bucket{le=\"0.01\"} 1\n",
            "tunasync_pool_wait_seconds_bucket{le=\"0.1\"} 2\n",
            "tunasync_pool_wait_seconds_bucket{le=\"1800.0\"} 2\n",
            "tunasync_pool_wait_seconds_bucket{le=\"+Inf\"} 3\n",
            "tunasync_pool_wait_seconds_count 3\n",
            "tunasync_commands_sent_total 1\n",
            "tunasync_commands_failed_total 0\n",
            "tunasync_events_dead_lettered_total 1\n",
            "tunasync_ingest_lag_seconds_count 1\n",
            "tunasync_events_applied_total 0\n",
            "tunasync_broker_connected 1\n",
            "tunasync_log_follows 0\n",
            "tunasync_log_follows_stopped_total 0\n",
            "tunasync_alerts_open 0\n",
            "tunasync_workers_total 0\n",
            "# EOF\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
