//! A job's state as the worker knows it, and the status events that change it.

use std::sync::Arc;

use tokio::sync::watch;
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::PoolName;
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::event::{Event, JobProgress, JobStatus};
use tunasync_shared::wire::pool::PooledRun;
use uuid::Uuid;

use crate::config::JobConfig;
use crate::outbox::Outbox;

/// What the worker knows of one job (for `hello` snapshots and `--check`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalState {
    pub status: SyncStatus,
    pub run_id: Option<Uuid>,
    pub last_update: GoTime,
    pub last_started: GoTime,
    pub last_ended: GoTime,
    /// The last known size.
    pub size: Option<String>,
    pub error_msg: String,
}

/// Sends a job's status events and keeps its [`LocalState`] in step.
#[derive(Clone)]
pub struct Reporter {
    pub job: Arc<JobConfig>,
    pub outbox: Outbox,
    pub state: Arc<watch::Sender<LocalState>>,
    /// For a run of a pooled mirror: its pool and lease, carried by every report.
    pub pooled: Option<(PoolName, u64)>,
    /// Where runs are counted (the worker's `/metrics`).
    pub metrics: crate::metrics::JobMetrics,
}

/// One status report of a run.
struct Report<'a> {
    status: SyncStatus,
    error_msg: &'a str,
    size: Option<String>,
    /// The run's last report.
    last: bool,
    transferred_bytes: Option<u64>,
}

impl<'a> Report<'a> {
    fn plain(status: SyncStatus, error_msg: &'a str, size: Option<String>, last: bool) -> Self {
        Report {
            status,
            error_msg,
            size,
            last,
            transferred_bytes: None,
        }
    }
}

impl Reporter {
    /// Reports `status` for attempt `attempt` of run `run_id`, with tunasync's timestamp
    /// rules; more reports of the run follow.
    pub fn report(
        &self,
        run_id: Uuid,
        attempt: u32,
        status: SyncStatus,
        error_msg: &str,
        size: Option<String>,
    ) {
        self.send(
            run_id,
            attempt,
            Report::plain(status, error_msg, size, false),
        );
    }

    /// Reports the run's last status (its `success`, or the `failed` of its last attempt).
    pub fn report_end(
        &self,
        run_id: Uuid,
        attempt: u32,
        status: SyncStatus,
        error_msg: &str,
        size: Option<String>,
    ) {
        self.send(
            run_id,
            attempt,
            Report::plain(status, error_msg, size, true),
        );
    }

    /// Reports the run's success, with its size and the bytes it transferred (when known).
    pub fn report_success(
        &self,
        run_id: Uuid,
        attempt: u32,
        size: Option<String>,
        transferred_bytes: Option<u64>,
    ) {
        let report = Report {
            transferred_bytes,
            ..Report::plain(SyncStatus::Success, "", size, true)
        };
        self.send(run_id, attempt, report);
    }

    fn send(&self, run_id: Uuid, attempt: u32, report: Report<'_>) {
        let Report {
            status,
            error_msg,
            size,
            last,
            transferred_bytes,
        } = report;
        let now = GoTime::now_local();
        let mut shown_size = None;
        let mut started = GoTime::ZERO;
        self.state.send_modify(|state| {
            match status {
                SyncStatus::PreSyncing => state.last_started = now,
                SyncStatus::Success => {
                    state.last_update = now;
                    state.last_ended = now;
                }
                SyncStatus::Failed => state.last_ended = now,
                _ => {}
            }
            if size.is_some() {
                state.size.clone_from(&size);
            }
            state.status = status;
            state.run_id = Some(run_id);
            state.error_msg = error_msg.to_owned();
            shown_size.clone_from(&state.size);
            started = state.last_started;
        });
        let mirror = self.job.name.as_str();
        if status == SyncStatus::PreSyncing {
            self.metrics.started(mirror);
        } else if last {
            let took = u64::try_from(now.unix() - started.unix()).unwrap_or(0);
            let took = std::time::Duration::from_secs(took);
            self.metrics
                .ended(mirror, status, took, shown_size.as_deref());
            if let Some(bytes) = transferred_bytes {
                self.metrics.transferred(mirror, bytes);
            }
        }
        self.outbox.push(Event::Status(JobStatus {
            mirror: self.job.name.clone(),
            status,
            run_id,
            attempt,
            at: now,
            upstream: self.job.upstream.clone(),
            is_master: self.job.is_master,
            size: shown_size,
            error_msg: error_msg.to_owned(),
            pooled: self.pooled.as_ref().map(|(pool, lease)| PooledRun {
                pool: pool.clone(),
                lease: *lease,
                last,
            }),
            transferred_bytes,
            ends_run: last,
        }));
    }

    /// Reports how far attempt `attempt` of run `run_id` has got.
    pub fn progress(
        &self,
        run_id: Uuid,
        attempt: u32,
        running: std::time::Duration,
        counts: crate::progress::Counts,
    ) {
        self.outbox.push(Event::Progress(JobProgress {
            mirror: self.job.name.clone(),
            run_id,
            attempt,
            running_secs: running.as_secs(),
            log_bytes: counts.log_bytes,
            log_lines: counts.log_lines,
            files: counts.files,
            transferred_bytes: counts.transferred_bytes,
            percent: counts.percent,
        }));
    }

    /// Records a state the manager set (paused, disabled) without reporting it.
    pub fn set_quietly(&self, status: SyncStatus) {
        self.state.send_modify(|state| state.status = status);
    }
}
