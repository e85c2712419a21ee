//! What the manager stores: workers, job statuses and finished runs, with a format version.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tunasync_shared::compat::{MirrorStatus, WorkerStatus};
use tunasync_shared::gotime::GoTime;

use tunasync_shared::names::{MirrorName, PoolName, WorkerId};
use tunasync_shared::schedule::{CronExpr, Rules, ScheduleExtras, Timing};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::event::JobProgress;
use uuid::Uuid;

/// The format of the values below; the first byte of every stored value.
pub const RECORD_FORMAT: u8 = 1;

/// A worker as the manager knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub last_online: GoTime,
    pub last_register: GoTime,
    pub host: String,
    pub version: String,
    pub session: Option<Uuid>,
    pub heartbeat_interval_secs: u32,
    /// The highest event sequence number applied for this worker.
    pub last_seq: u64,
    /// `last_seq` when jobs of this worker were last flushed: a report numbered at or below
    /// it about a job that does not exist is a late copy about a flushed job.
    #[serde(default)]
    pub flushed_at: u64,
    /// The pooled mirrors its file defines, by pool, as its last `hello` described them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<PoolName, BTreeMap<MirrorName, PooledDefinition>>,
    /// Slots free for a pool's run, as its last heartbeat said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_slots: Option<u32>,
    /// A Go tunasync worker registered over HTTP (`[legacy] go_workers`): the URL it
    /// gave, where its commands are relayed. Such a worker has no broker session, and its
    /// id cannot be used over the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_url: Option<String>,
}

/// A pooled mirror as one member defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PooledDefinition {
    pub fingerprint: String,
    pub interval_minutes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default)]
    pub jitter_secs: u64,
    pub upstream: String,
    pub is_master: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub desc: String,
    /// Time zone, blackouts, fixed rate, re-run after failure, priority.
    #[serde(default, skip_serializing_if = "ScheduleExtras::is_empty")]
    pub extras: ScheduleExtras,
}

impl PooledDefinition {
    /// Its schedule, by the rules every worker applies (an expression this build cannot
    /// read falls back to the interval).
    pub fn rules(&self) -> Rules {
        let timing = match self.cron.as_deref().map(CronExpr::parse) {
            Some(Ok(cron)) => Timing::Cron(cron),
            _ => Timing::Interval {
                minutes: self.interval_minutes,
            },
        };
        Rules::new(timing, std::time::Duration::from_secs(self.jitter_secs))
            .with_extras(&self.extras)
    }
}

/// Where a pooled mirror's current run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum PoolRunState {
    /// No run: the next one is due at the job's `next_due`.
    Idle,
    /// Handed to the pool's queue, for whichever member is free.
    Queued {
        run_id: Uuid,
        lease: u64,
        /// The definition the run is for.
        fingerprint: String,
        force: bool,
        since: GoTime,
        /// When to publish it (again); none once the broker confirmed it.
        publish_at: Option<GoTime>,
        /// When it came due (its schedule's time, or the `start`); none in stores written
        /// before this was kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due: Option<GoTime>,
    },
    /// A member claimed it and was told to run it.
    Granted {
        run_id: Uuid,
        lease: u64,
        member: WorkerId,
        since: GoTime,
    },
    /// The member reports it running.
    Running {
        run_id: Uuid,
        lease: u64,
        member: WorkerId,
        since: GoTime,
        /// The member's sequence number of the last report applied.
        last_seq: u64,
    },
}

/// A pooled mirror's schedule, kept in the store (table `pool_jobs`, keyed by pool and
/// mirror) so that a manager restart neither loses nor repeats a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolJobRecord {
    /// When the next run is due (zero: as soon as a member is there).
    pub next_due: GoTime,
    /// The last lease handed out; every run (and every hand-out again) takes the next.
    pub lease: u64,
    pub run: PoolRunState,
    /// `start -f`: the next hand-out may run beyond its member's concurrency limit.
    #[serde(default)]
    pub force_next: bool,
    /// The operator's `start`: the next hand-out is theirs (it runs in maintenance too).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub started: bool,
}

impl Default for PoolJobRecord {
    fn default() -> Self {
        PoolJobRecord {
            next_due: GoTime::ZERO,
            lease: 0,
            run: PoolRunState::Idle,
            force_next: false,
            started: false,
        }
    }
}

impl WorkerRecord {
    pub fn new(now: GoTime) -> Self {
        WorkerRecord {
            last_online: now,
            last_register: now,
            host: String::new(),
            version: String::new(),
            session: None,
            heartbeat_interval_secs: 0,
            last_seq: 0,
            flushed_at: 0,
            pools: BTreeMap::new(),
            free_slots: None,
            legacy_url: None,
        }
    }

    /// Its definition of `mirror` in `pool`, if it is a member that defines it.
    pub fn pooled(&self, pool: &PoolName, mirror: &MirrorName) -> Option<&PooledDefinition> {
        self.pools.get(pool)?.get(mirror)
    }

    /// Whether it is a Go worker that registered over HTTP.
    pub fn is_legacy(&self) -> bool {
        self.legacy_url.is_some()
    }

    /// The `GET /workers` entry.
    pub fn to_status(&self, id: &WorkerId, online: bool) -> WorkerStatus {
        WorkerStatus {
            id: id.to_string(),
            url: self.legacy_url.clone().unwrap_or_else(|| self.host.clone()),
            token: "REDACTED".to_owned(),
            last_online: self.last_online,
            last_register: self.last_register,
            // A Go worker has no heartbeat: it is neither online nor offline.
            online: (!self.is_legacy()).then_some(online),
            pool: None,
            maintenance: None,
            legacy: self.is_legacy().then_some(true),
        }
    }
}

/// One job (a mirror on a worker) as the manager knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub is_master: bool,
    pub status: SyncStatus,
    pub last_update: GoTime,
    pub last_started: GoTime,
    pub last_ended: GoTime,
    pub next_schedule: GoTime,
    pub upstream: String,
    /// tunasync's size text: `unknown` until known, then e.g. `1.33T`.
    pub size: String,
    pub error_msg: String,
    /// The run the status belongs to.
    pub run_id: Option<Uuid>,
    /// The sequence number of the last status event applied, so older ones are ignored.
    pub last_seq: u64,
    /// The operator's `stop` (paused) or `disable`, kept until a `start` or `restart`: what
    /// the job shows, and what the worker is told at every `welcome`, whatever it reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// Where users find the mirror, and a line about it (worker.conf's `url`, `desc`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub desc: String,
    /// What the latest run transferred, once it succeeded (rsync's `--stats`); cleared
    /// when a run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transferred_bytes: Option<u64>,
    /// What the job's successful runs transferred, all together.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total_transferred_bytes: u64,
    /// Runs in a row that ended failed (their last attempt failed), since the last success.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub consecutive_failures: u32,
    /// The history entry of the job's latest run, so a run's later events (also after a
    /// restart of the manager) update the entry its first event opened. Not stored with the
    /// job: the store reads it back from the history table (its newest entry).
    #[serde(skip)]
    pub current_run: Option<CurrentRun>,
    /// The running attempt's latest progress (in memory only: never stored).
    #[serde(skip)]
    pub progress: Option<JobProgress>,
}

/// The size shown while none is known, as tunasync shows it.
pub const UNKNOWN_SIZE: &str = "unknown";

/// An operator's decision that a job must not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hold {
    /// `stop`: paused until started.
    Paused,
    /// `disable`.
    Disabled,
}

impl Hold {
    pub fn status(self) -> SyncStatus {
        match self {
            Hold::Paused => SyncStatus::Paused,
            Hold::Disabled => SyncStatus::Disabled,
        }
    }

    /// The hold a status set by the operator stands for.
    pub fn of(status: SyncStatus) -> Option<Hold> {
        match status {
            SyncStatus::Paused => Some(Hold::Paused),
            SyncStatus::Disabled => Some(Hold::Disabled),
            _ => None,
        }
    }
}

/// A job's latest run and its key in the history table (the sequence number of the event
/// that opened it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentRun {
    pub key: u64,
    pub record: RunRecord,
}

impl Default for JobRecord {
    fn default() -> Self {
        JobRecord {
            is_master: true,
            status: SyncStatus::None,
            last_update: GoTime::ZERO,
            last_started: GoTime::ZERO,
            last_ended: GoTime::ZERO,
            next_schedule: GoTime::ZERO,
            upstream: String::new(),
            size: UNKNOWN_SIZE.to_owned(),
            error_msg: String::new(),
            run_id: None,
            last_seq: 0,
            hold: None,
            url: String::new(),
            desc: String::new(),
            last_transferred_bytes: None,
            total_transferred_bytes: 0,
            consecutive_failures: 0,
            current_run: None,
            progress: None,
        }
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

/// The text shown for running jobs of a worker that stopped sending heartbeats.
pub const OFFLINE_ERROR: &str = "worker offline";

impl JobRecord {
    /// A copy for the view, which never reads the current run (history is read from the
    /// store), so it is left out.
    pub fn for_view(&self) -> JobRecord {
        JobRecord {
            is_master: self.is_master,
            status: self.status,
            last_update: self.last_update,
            last_started: self.last_started,
            last_ended: self.last_ended,
            next_schedule: self.next_schedule,
            upstream: self.upstream.clone(),
            size: self.size.clone(),
            error_msg: self.error_msg.clone(),
            run_id: self.run_id,
            last_seq: self.last_seq,
            hold: self.hold,
            url: self.url.clone(),
            desc: self.desc.clone(),
            last_transferred_bytes: self.last_transferred_bytes,
            total_transferred_bytes: self.total_transferred_bytes,
            consecutive_failures: self.consecutive_failures,
            current_run: None,
            progress: self.progress.clone(),
        }
    }

    /// The tunasync record, as `GET /workers/{id}/jobs` shows it. A running job of an offline
    /// worker is shown failed, with the reason.
    pub fn to_status(
        &self,
        mirror: &MirrorName,
        worker: &WorkerId,
        worker_online: bool,
    ) -> MirrorStatus {
        let (status, error_msg) = if !worker_online && self.status.is_running() {
            (SyncStatus::Failed, OFFLINE_ERROR.to_owned())
        } else {
            (self.status, self.error_msg.clone())
        };
        MirrorStatus {
            name: mirror.to_string(),
            worker: worker.to_string(),
            is_master: self.is_master,
            status,
            last_update: self.last_update,
            last_started: self.last_started,
            last_ended: self.last_ended,
            next_schedule: self.next_schedule,
            upstream: self.upstream.clone(),
            size: if self.size.is_empty() {
                UNKNOWN_SIZE.to_owned()
            } else {
                self.size.clone()
            },
            error_msg,
            url: self.url.clone(),
            progress: self
                .progress
                .as_ref()
                .filter(|progress| status.is_running() && self.run_id == Some(progress.run_id))
                .cloned(),
            maintenance: None,
        }
    }
}

/// One run of a job, for `GET /jobs/{worker}/{mirror}/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: Uuid,
    pub started: GoTime,
    pub ended: GoTime,
    /// `syncing` / `pre-syncing` while running, then `success` or `failed`.
    pub result: SyncStatus,
    pub attempts: u32,
    pub size: String,
    pub error_msg: String,
    /// For a run of a pooled mirror: the member that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<WorkerId>,
    /// The upstream the run used (a fallback, when the first did not answer).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub upstream: String,
}

/// A stored value that could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("stored value is empty")]
    Empty,
    #[error("stored value has format {0}, this build reads format {RECORD_FORMAT}")]
    UnknownFormat(u8),
    #[error("stored value is corrupt")]
    Corrupt(#[source] serde_json::Error),
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![RECORD_FORMAT];
    // Plain data with string keys: serialising into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut bytes, value);
    bytes
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordError> {
    let (&format, json) = bytes.split_first().ok_or(RecordError::Empty)?;
    if format != RECORD_FORMAT {
        return Err(RecordError::UnknownFormat(format));
    }
    serde_json::from_slice(json).map_err(RecordError::Corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_their_format_byte() {
        let job = JobRecord {
            status: SyncStatus::Success,
            size: "1.33T".into(),
            run_id: Some(Uuid::new_v4()),
            last_seq: 42,
            ..JobRecord::default()
        };
        let bytes = encode(&job);
        assert_eq!(bytes[0], RECORD_FORMAT);
        assert_eq!(decode::<JobRecord>(&bytes).unwrap(), job);
        let mut future = bytes.clone();
        future[0] = 2;
        assert!(matches!(
            decode::<JobRecord>(&future),
            Err(RecordError::UnknownFormat(2))
        ));
        assert!(matches!(decode::<JobRecord>(&[]), Err(RecordError::Empty)));
        assert!(matches!(
            decode::<JobRecord>(&[RECORD_FORMAT, b'{']),
            Err(RecordError::Corrupt(_))
        ));
    }

    #[test]
    fn offline_workers_show_running_jobs_failed() {
        let mirror = MirrorName::new("debian").unwrap();
        let worker = WorkerId::new("w1").unwrap();
        let running = JobRecord {
            status: SyncStatus::Syncing,
            ..JobRecord::default()
        };
        assert_eq!(
            running.to_status(&mirror, &worker, true).status,
            SyncStatus::Syncing
        );
        let shown = running.to_status(&mirror, &worker, false);
        assert_eq!(
            (shown.status, shown.error_msg.as_str()),
            (SyncStatus::Failed, OFFLINE_ERROR)
        );
        let paused = JobRecord {
            status: SyncStatus::Paused,
            ..JobRecord::default()
        };
        assert_eq!(
            paused.to_status(&mirror, &worker, false).status,
            SyncStatus::Paused
        );
    }
}
