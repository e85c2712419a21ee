//! The metrics read from the state at each scrape: workers, jobs, pools, log follows, the
//! broker connection. Job metrics use the other Rust port's names, labels and codes.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;

use super::size_bytes;
use crate::model::Model;
use crate::pool_status::PoolSummary;
use crate::view::View;

/// `tunasync_mirror_status`'s value for each status (the other Rust port's codes).
pub fn status_code(status: SyncStatus) -> i64 {
    match status {
        SyncStatus::None => 0,
        SyncStatus::PreSyncing => 1,
        SyncStatus::Syncing => 2,
        SyncStatus::Success => 3,
        SyncStatus::Failed => 4,
        SyncStatus::Paused => 5,
        SyncStatus::Disabled => 6,
    }
}

/// Reads the view (and the broker connection) at each scrape.
pub struct StateCollector {
    pub view: Arc<View>,
    pub broker_connected: Box<dyn Fn() -> bool + Send + Sync>,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("StateCollector")
    }
}

/// One gauge family: its samples, each a label set (borrowed from the snapshot: no
/// allocation per sample) and a value.
fn gauges<L: EncodeLabelSet, N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, N)>,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: EncodeMetric,
{
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge<N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: EncodeMetric,
{
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn worker_labels(worker: &WorkerId) -> [(&'static str, &str); 1] {
    [("worker", worker.as_str())]
}

fn job_labels<'a>(mirror: &'a MirrorName, worker: &'a WorkerId) -> [(&'static str, &'a str); 2] {
    [("mirror", mirror.as_str()), ("worker", worker.as_str())]
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // The view's lock is held only to copy out the figures; the text (megabytes with
        // thousands of jobs) is written after it is let go.
        let snapshot = self.view.with_state(|model, offline| {
            let pools = crate::pool_status::summaries(model, offline, GoTime::now_local());
            StateSnapshot::of(model, |worker| !offline.contains(worker), pools)
        });
        encode_state(&mut encoder, &snapshot)?;
        gauge(
            &mut encoder,
            "tunasync_broker_connected",
            "Whether the manager is connected to the broker",
            i64::from((self.broker_connected)()),
        )
    }
}

/// A worker's figures at a scrape.
struct WorkerSample {
    worker: WorkerId,
    online: bool,
    last_online: i64,
}

/// A job's figures at a scrape.
struct JobSample {
    mirror: MirrorName,
    worker: WorkerId,
    status: SyncStatus,
    size_bytes: f64,
    last_success: i64,
    last_duration: i64,
    last_transferred: i64,
    total_transferred: i64,
    consecutive_failures: i64,
    maintenance: bool,
}

/// What a scrape reads of the model, copied out under the view's lock (a 104-byte record
/// and its two names a job, about 170 bytes, against some 700 of text).
pub struct StateSnapshot {
    workers: Vec<WorkerSample>,
    jobs: Vec<JobSample>,
    pools: Vec<PoolSummary>,
}

impl StateSnapshot {
    pub fn of(model: &Model, online: impl Fn(&WorkerId) -> bool, pools: Vec<PoolSummary>) -> Self {
        let workers = model
            .workers
            .iter()
            .map(|(worker, record)| WorkerSample {
                worker: worker.clone(),
                online: online(worker),
                last_online: record.last_online.unix(),
            })
            .collect();
        let jobs = model
            .jobs
            .iter()
            .map(|(key, job)| {
                let (mirror, worker) = key;
                JobSample {
                    mirror: mirror.clone(),
                    worker: worker.clone(),
                    status: job.status,
                    size_bytes: size_bytes(&job.size).unwrap_or(-1.0),
                    last_success: if job.last_update.is_zero() {
                        0
                    } else {
                        job.last_update.unix()
                    },
                    last_duration: if job.last_started.is_zero() || job.last_ended.is_zero() {
                        0
                    } else {
                        (job.last_ended.unix() - job.last_started.unix()).max(0)
                    },
                    last_transferred: i64::try_from(job.last_transferred_bytes.unwrap_or(0))
                        .unwrap_or(i64::MAX),
                    total_transferred: i64::try_from(job.total_transferred_bytes)
                        .unwrap_or(i64::MAX),
                    consecutive_failures: i64::from(job.consecutive_failures),
                    maintenance: model.maintenance.of_job(key).is_some(),
                }
            })
            .collect();
        StateSnapshot {
            workers,
            jobs,
            pools,
        }
    }
}

/// A per-job gauge: its name, its help text, and how to read it.
type JobGauge = (&'static str, &'static str, fn(&JobSample) -> i64);

/// Workers, jobs and pools as the model held them.
pub fn encode_state(
    encoder: &mut DescriptorEncoder,
    state: &StateSnapshot,
) -> Result<(), std::fmt::Error> {
    gauge(
        encoder,
        "tunasync_workers_total",
        "Known workers",
        i64::try_from(state.workers.len()).unwrap_or(i64::MAX),
    )?;
    gauges(
        encoder,
        "tunasync_worker_online",
        "Whether the worker's heartbeats are current",
        state
            .workers
            .iter()
            .map(|sample| (worker_labels(&sample.worker), i64::from(sample.online))),
    )?;
    gauges(
        encoder,
        "tunasync_worker_last_heartbeat_timestamp_seconds",
        "When the worker was last heard from",
        state
            .workers
            .iter()
            .map(|sample| (worker_labels(&sample.worker), sample.last_online)),
    )?;
    gauges(
        encoder,
        "tunasync_mirrors_total",
        "Jobs by status",
        SyncStatus::ALL.into_iter().map(|status| {
            let count = state.jobs.iter().filter(|job| job.status == status).count();
            (
                [("status", status.as_str())],
                i64::try_from(count).unwrap_or(i64::MAX),
            )
        }),
    )?;
    gauges(
        encoder,
        "tunasync_mirror_status",
        "The job's status: 0 none, 1 pre-syncing, 2 syncing, 3 success, 4 failed, 5 paused, 6 disabled",
        state.jobs.iter().map(|job| {
            (
                job_labels(&job.mirror, &job.worker),
                status_code(job.status),
            )
        }),
    )?;
    gauges(
        encoder,
        "tunasync_mirror_state",
        "The job's status as a label (1 for the current one)",
        state.jobs.iter().map(|job| {
            let [mirror, worker] = job_labels(&job.mirror, &job.worker);
            ([mirror, worker, ("status", job.status.as_str())], 1i64)
        }),
    )?;
    gauges(
        encoder,
        "tunasync_mirror_size_bytes",
        "The mirror's size as last reported, in bytes (-1 when unknown)",
        state
            .jobs
            .iter()
            .map(|job| (job_labels(&job.mirror, &job.worker), job.size_bytes)),
    )?;
    let job_gauges: [JobGauge; 6] = [
        (
            "tunasync_mirror_last_success_timestamp_seconds",
            "End of the last successful sync (0: never)",
            |job| job.last_success,
        ),
        (
            "tunasync_mirror_last_sync_duration_seconds",
            "How long the last finished run took (0: none yet)",
            |job| job.last_duration,
        ),
        (
            "tunasync_mirror_last_transferred_bytes",
            "What the latest run transferred, once it succeeded (0: unknown or running)",
            |job| job.last_transferred,
        ),
        // A running sum kept in the store, under the other port's exact name (a counter
        // here would have to be called `…_total`); `rate()` reads it all the same.
        (
            "tunasync_mirror_total_transferred_bytes",
            "What the job's successful runs transferred, all together",
            |job| job.total_transferred,
        ),
        (
            "tunasync_mirror_consecutive_failures",
            "Runs in a row that ended failed, since the last success",
            |job| job.consecutive_failures,
        ),
        (
            "tunasync_mirror_maintenance",
            "Whether a maintenance (of the cluster, the worker or the mirror) covers the job",
            |job| i64::from(job.maintenance),
        ),
    ];
    for (name, help, value) in job_gauges {
        gauges(
            encoder,
            name,
            help,
            state
                .jobs
                .iter()
                .map(|job| (job_labels(&job.mirror, &job.worker), value(job))),
        )?;
    }
    encode_pools(encoder, &state.pools)
}

/// A per-pool gauge: its name, its help text, and how to read it.
type PoolGauge = (&'static str, &'static str, fn(&PoolSummary) -> Option<i64>);

fn encode_pools(
    encoder: &mut DescriptorEncoder,
    pools: &[PoolSummary],
) -> Result<(), std::fmt::Error> {
    if pools.is_empty() {
        return Ok(());
    }
    let pool_gauges: [PoolGauge; 4] = [
        (
            "tunasync_pool_members_online",
            "Members of the pool that are online",
            |pool| {
                Some(
                    pool.status
                        .members
                        .iter()
                        .filter(|member| member.online)
                        .count() as i64,
                )
            },
        ),
        (
            "tunasync_pool_free_slots",
            "Slots free for the pool's runs on its online members",
            |pool| Some(i64::from(pool.status.free_slots)),
        ),
        (
            "tunasync_pool_queued_runs",
            "Runs waiting in the pool's queue",
            |pool| Some(i64::from(pool.status.queued_runs)),
        ),
        (
            "tunasync_pool_oldest_queued_seconds",
            "How long the oldest queued run has waited",
            |pool| pool.status.oldest_queued_secs,
        ),
    ];
    for (name, help, value) in pool_gauges {
        gauges(
            encoder,
            name,
            help,
            pools.iter().filter_map(|pool| {
                value(pool).map(|value| ([("pool", pool.pool.as_str())], value))
            }),
        )?;
    }
    gauges(
        encoder,
        "tunasync_pool_definition_differs",
        "A member's definition of a pooled mirror differs from the pool's",
        pools.iter().flat_map(|pool| {
            pool.status.differing.iter().map(|differing| {
                (
                    [
                        ("pool", pool.pool.as_str()),
                        ("mirror", differing.mirror.as_str()),
                        ("worker", differing.worker.as_str()),
                    ],
                    1i64,
                )
            })
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{JobRecord, WorkerRecord};

    #[derive(Debug)]
    struct Fixed(Model);

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode_state(
                &mut encoder,
                &StateSnapshot::of(&self.0, |_| true, Vec::new()),
            )
        }
    }

    #[test]
    fn the_other_ports_names_labels_and_codes() {
        let mut model = Model::default();
        let worker = WorkerId::new("w1").unwrap();
        model.workers.insert(
            worker.clone(),
            WorkerRecord::new(GoTime::from_unix(1_700_000_000).unwrap()),
        );
        model.jobs.insert(
            (MirrorName::new("debian").unwrap(), worker.clone()),
            JobRecord {
                status: SyncStatus::Success,
                size: "2G".into(),
                last_update: GoTime::from_unix(1_800_000_000).unwrap(),
                last_started: GoTime::from_unix(1_799_999_400).unwrap(),
                last_ended: GoTime::from_unix(1_800_000_000).unwrap(),
                last_transferred_bytes: Some(4096),
                total_transferred_bytes: 10_000,
                ..JobRecord::default()
            },
        );
        model.jobs.insert(
            (MirrorName::new("pypi").unwrap(), worker.clone()),
            JobRecord {
                status: SyncStatus::Failed,
                consecutive_failures: 2,
                ..JobRecord::default()
            },
        );
        model.maintenance.windows.insert(
            tunasync_shared::maintenance::Scope::new(None, Some(MirrorName::new("pypi").unwrap())),
            crate::model::maintenance::Window {
                message: String::new(),
                since: GoTime::ZERO,
            },
        );
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Fixed(model)));
        let text = super::super::render(&registry);
        for expected in [
            "# TYPE tunasync_workers_total gauge\n",
            "tunasync_workers_total 1\n",
            "tunasync_worker_online{worker=\"w1\"} 1\n",
            "tunasync_worker_last_heartbeat_timestamp_seconds{worker=\"w1\"} 1700000000\n",
            "tunasync_mirrors_total{status=\"success\"} 1\n",
            "tunasync_mirrors_total{status=\"failed\"} 1\n",
            "tunasync_mirrors_total{status=\"syncing\"} 0\n",
            "tunasync_mirror_status{mirror=\"debian\",worker=\"w1\"} 3\n",
            "tunasync_mirror_status{mirror=\"pypi\",worker=\"w1\"} 4\n",
            "tunasync_mirror_state{mirror=\"debian\",worker=\"w1\",status=\"success\"} 1\n",
            "tunasync_mirror_size_bytes{mirror=\"debian\",worker=\"w1\"} 2147483648.0\n",
            "tunasync_mirror_size_bytes{mirror=\"pypi\",worker=\"w1\"} -1.0\n",
            "tunasync_mirror_last_success_timestamp_seconds{mirror=\"debian\",worker=\"w1\"} 1800000000\n",
            "tunasync_mirror_last_success_timestamp_seconds{mirror=\"pypi\",worker=\"w1\"} 0\n",
            "tunasync_mirror_last_sync_duration_seconds{mirror=\"debian\",worker=\"w1\"} 600\n",
            "tunasync_mirror_last_transferred_bytes{mirror=\"debian\",worker=\"w1\"} 4096\n",
            "tunasync_mirror_total_transferred_bytes{mirror=\"debian\",worker=\"w1\"} 10000\n",
            "tunasync_mirror_consecutive_failures{mirror=\"pypi\",worker=\"w1\"} 2\n",
            "tunasync_mirror_maintenance{mirror=\"debian\",worker=\"w1\"} 0\n",
            "tunasync_mirror_maintenance{mirror=\"pypi\",worker=\"w1\"} 1\n",
            "tunasync_mirror_last_transferred_bytes{mirror=\"pypi\",worker=\"w1\"} 0\n",
            "# EOF\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
