//! Events: what a worker tells the manager, published to `<ns>.events` with routing key
//! `<worker id>.<kind>`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DecodeError, Header, body, open, seal};
use crate::gotime::GoTime;
use crate::names::{MirrorName, PoolName, WorkerId};
use crate::schedule::ScheduleExtras;
use crate::status::SyncStatus;
use crate::wire::command::CommandKind;
use crate::wire::pool::{Claim, PooledRun};

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The kinds of event, as written in `kind` and the AMQP `type` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Hello,
    Heartbeat,
    Status,
    Schedule,
    CmdResult,
    JobRemoved,
    Claim,
    Progress,
    LogChunk,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::Hello,
        EventKind::Heartbeat,
        EventKind::Status,
        EventKind::Schedule,
        EventKind::CmdResult,
        EventKind::JobRemoved,
        EventKind::Claim,
        EventKind::Progress,
        EventKind::LogChunk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Hello => "hello",
            EventKind::Heartbeat => "heartbeat",
            EventKind::Status => "status",
            EventKind::Schedule => "schedule",
            EventKind::CmdResult => "cmd-result",
            EventKind::JobRemoved => "job-removed",
            EventKind::Claim => "claim",
            EventKind::Progress => "progress",
            EventKind::LogChunk => "log-chunk",
        }
    }

    fn from_wire(kind: &str) -> Option<Self> {
        EventKind::ALL
            .into_iter()
            .find(|known| known.as_str() == kind)
    }
}

/// An event a worker sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Sent by a worker on every (re)connect: who it is and a full snapshot of its jobs, so a
    /// manager that lost its store can rebuild its view. Answered with a `welcome` command.
    Hello(Hello),
    /// Sent periodically; a manager that misses them marks the worker offline.
    Heartbeat(Heartbeat),
    /// A job changed state (tunasync's status post). Not answered.
    Status(JobStatus),
    /// The worker's full schedule: the next run of each job. Not answered.
    Schedule(Schedule),
    /// The answer to a command, naming the command's id.
    CmdResult(CmdResult),
    /// A job was removed from the worker's config by a reload. Not answered.
    JobRemoved(JobRemoved),
    /// A member took a pool run off its pool's queue and asks to run it (see
    /// [`crate::wire::pool`]). Answered with a `grant`.
    Claim(Claim),
    /// How far a running job has got, coalesced (at most one per job every few seconds).
    /// Not answered; a later one supersedes it.
    Progress(JobProgress),
    /// A piece of a job's log, answering a `log` command (routed to whoever waits for it,
    /// never stored).
    LogChunk(LogChunk),
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Hello(_) => EventKind::Hello,
            Event::Heartbeat(_) => EventKind::Heartbeat,
            Event::Status(_) => EventKind::Status,
            Event::Schedule(_) => EventKind::Schedule,
            Event::CmdResult(_) => EventKind::CmdResult,
            Event::JobRemoved(_) => EventKind::JobRemoved,
            Event::Claim(_) => EventKind::Claim,
            Event::Progress(_) => EventKind::Progress,
            Event::LogChunk(_) => EventKind::LogChunk,
        }
    }
}

/// An event with its envelope header and the worker's sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    pub header: Header,
    pub seq: u64,
    pub event: Event,
}

impl EventEnvelope {
    pub fn new(worker: WorkerId, seq: u64, event: Event) -> Self {
        EventEnvelope {
            header: Header::new(worker),
            seq,
            event,
        }
    }

    /// The routing key on `<ns>.events`: `<worker id>.<kind>`.
    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.header.worker, self.event.kind().as_str())
    }

    pub fn encode(&self) -> Vec<u8> {
        let kind = self.event.kind().as_str();
        let seq = Some(self.seq);
        match &self.event {
            Event::Hello(body) => seal(&self.header, kind, seq, body),
            Event::Heartbeat(body) => seal(&self.header, kind, seq, body),
            Event::Status(body) => seal(&self.header, kind, seq, body),
            Event::Schedule(body) => seal(&self.header, kind, seq, body),
            Event::CmdResult(body) => seal(&self.header, kind, seq, body),
            Event::JobRemoved(body) => seal(&self.header, kind, seq, body),
            Event::Claim(body) => seal(&self.header, kind, seq, body),
            Event::Progress(body) => seal(&self.header, kind, seq, body),
            Event::LogChunk(body) => seal(&self.header, kind, seq, body),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let opened = open(bytes)?;
        let kind = EventKind::from_wire(&opened.kind)
            .ok_or_else(|| DecodeError::UnknownKind(opened.kind.clone().into_owned()))?;
        let seq = opened.seq.ok_or(DecodeError::MissingField("seq"))?;
        let name = kind.as_str();
        let event = match kind {
            EventKind::Hello => Event::Hello(body(opened.body, name)?),
            EventKind::Heartbeat => Event::Heartbeat(body(opened.body, name)?),
            EventKind::Status => Event::Status(body(opened.body, name)?),
            EventKind::Schedule => Event::Schedule(body(opened.body, name)?),
            EventKind::CmdResult => Event::CmdResult(body(opened.body, name)?),
            EventKind::JobRemoved => Event::JobRemoved(body(opened.body, name)?),
            EventKind::Claim => Event::Claim(body(opened.body, name)?),
            EventKind::Progress => Event::Progress(body(opened.body, name)?),
            EventKind::LogChunk => Event::LogChunk(body(opened.body, name)?),
        };
        Ok(EventEnvelope {
            header: opened.header,
            seq,
            event,
        })
    }
}

/// Which provider runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Rsync,
    TwoStageRsync,
    Command,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Rsync => "rsync",
            ProviderKind::TwoStageRsync => "two-stage-rsync",
            ProviderKind::Command => "command",
        }
    }
}

/// `hello`: see [`Event::Hello`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The worker's software version.
    pub version: String,
    /// The host the worker runs on.
    pub host: String,
    /// New for every start of the worker process.
    pub session: Uuid,
    /// How often the worker sends heartbeats, so the manager can judge liveness.
    pub heartbeat_interval_secs: u32,
    pub jobs: Vec<JobSnapshot>,
}

/// One job in a `hello`: its config summary and its current state as the worker knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSnapshot {
    pub mirror: MirrorName,
    pub provider: ProviderKind,
    pub upstream: String,
    pub is_master: bool,
    /// Minutes between runs (tunasync's `interval`), when the job is not on a cron schedule.
    pub interval_minutes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Up to this many seconds of random delay added to each scheduled run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub jitter_secs: u64,
    pub status: SyncStatus,
    /// The run in progress or last run, if any since the worker started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<Uuid>,
    pub last_update: GoTime,
    pub last_started: GoTime,
    pub last_ended: GoTime,
    pub next_schedule: GoTime,
    /// The last known size, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    pub error_msg: String,
    /// The pool the job belongs to, if it is pooled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolName>,
    /// A digest of the job's resolved definition: members of a pool must agree on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Where users find the mirror, and a line about it (worker.conf's `url`, `desc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// Time zone, blackouts, fixed rate, re-run after failure and priority, for a pooled
    /// mirror (the manager schedules it); absent when none is set.
    #[serde(default, skip_serializing_if = "ScheduleExtras::is_empty")]
    pub rules: ScheduleExtras,
}

/// `heartbeat`: see [`Event::Heartbeat`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub session: Uuid,
    pub interval_secs: u32,
    /// Jobs with a run in progress.
    pub running: Vec<MirrorName>,
    /// Slots free for a pool's run (none while the worker's own jobs wait for one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_slots: Option<u32>,
}

/// `status`: a job's state change, tunasync's sequence
/// `pre-syncing → (syncing → failed)* → syncing → success | failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub mirror: MirrorName,
    pub status: SyncStatus,
    /// Which run this belongs to; new at every `pre-syncing`.
    pub run_id: Uuid,
    /// 1 for the first attempt of the run.
    pub attempt: u32,
    /// When the worker saw the change.
    pub at: GoTime,
    pub upstream: String,
    pub is_master: bool,
    /// The size the run found (or the last known one); absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    pub error_msg: String,
    /// For a run of a pooled mirror: its pool and lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooled: Option<PooledRun>,
    /// A successful rsync run: the bytes it transferred (its `--stats`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_bytes: Option<u64>,
    /// The run's last report: its `success`, or the `failed` of its last attempt (a
    /// `failed` without it is followed by a retry). Absent from older workers' reports.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ends_run: bool,
}

/// `progress`: see [`Event::Progress`]. Counted from the attempt's log as it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobProgress {
    pub mirror: MirrorName,
    pub run_id: Uuid,
    pub attempt: u32,
    /// Seconds since the attempt started.
    pub running_secs: u64,
    /// The attempt's log so far.
    pub log_bytes: u64,
    pub log_lines: u64,
    /// rsync: files transferred so far (its `-v` file lines, or `xfr#` of
    /// `--info=progress2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// rsync `--info=progress2`: bytes transferred so far, and its percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
}

/// `log-chunk`: see [`Event::LogChunk`]. Chunks of one answer are numbered from 0; the
/// last says so (and carries the error, if the worker could not send the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// The `log` command's envelope id.
    pub request: Uuid,
    pub index: u32,
    pub text: String,
    pub last: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<LogError>,
}

/// Why a worker sends no log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogError {
    /// The worker has no such job.
    NoSuchJob,
    /// The job has not written a log yet (or it was removed).
    NoLog,
    /// The worker keeps no log of that run (never its run, or pruned).
    NoSuchRun,
}

/// `schedule`: see [`Event::Schedule`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub schedules: Vec<ScheduledRun>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledRun {
    pub mirror: MirrorName,
    pub next_schedule: GoTime,
}

/// `cmd-result`: see [`Event::CmdResult`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmdResult {
    /// The `id` of the command's envelope.
    pub cmd_id: Uuid,
    /// The command's kind.
    pub cmd: CommandKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorName>,
    pub outcome: CmdOutcome,
}

/// Whether the worker took a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum CmdOutcome {
    /// Applied to the job controller.
    Accepted,
    /// Not applied; `reason` says why (e.g. an unknown mirror, a bad config on reload).
    Refused { reason: String },
    /// Taken, but it waits: `reason` says until when (a `start` in a blackout window).
    Deferred { reason: String },
}

/// `job-removed`: see [`Event::JobRemoved`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRemoved {
    pub mirror: MirrorName,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> WorkerId {
        WorkerId::new("w1").unwrap()
    }

    fn mirror(name: &str) -> MirrorName {
        MirrorName::new(name).unwrap()
    }

    fn samples() -> Vec<Event> {
        let at = GoTime::parse_rfc3339("2026-11-26T11:42:43.5+08:00").unwrap();
        vec![
            Event::Hello(Hello {
                version: "0.1.0".into(),
                host: "mirror-1".into(),
                session: Uuid::new_v4(),
                heartbeat_interval_secs: 10,
                jobs: vec![JobSnapshot {
                    mirror: mirror("debian"),
                    provider: ProviderKind::TwoStageRsync,
                    upstream: "rsync://ftp.debian.org/debian/".into(),
                    is_master: true,
                    interval_minutes: 120,
                    cron: Some("*/15 * * * *".into()),
                    jitter_secs: 0,
                    status: SyncStatus::Syncing,
                    run_id: Some(Uuid::new_v4()),
                    last_update: at,
                    last_started: at,
                    last_ended: GoTime::ZERO,
                    next_schedule: at,
                    size: Some("1.33T".into()),
                    error_msg: String::new(),
                    pool: None,
                    fingerprint: None,
                    url: None,
                    desc: None,
                    rules: Default::default(),
                }],
            }),
            Event::Heartbeat(Heartbeat {
                session: Uuid::new_v4(),
                interval_secs: 10,
                running: vec![mirror("debian")],
                free_slots: None,
            }),
            Event::Status(JobStatus {
                mirror: mirror("debian"),
                status: SyncStatus::Failed,
                run_id: Uuid::new_v4(),
                attempt: 2,
                at,
                upstream: "rsync://ftp.debian.org/debian/".into(),
                is_master: false,
                size: None,
                error_msg: "exit status 3".into(),
                pooled: None,
                transferred_bytes: None,
                ends_run: false,
            }),
            Event::Schedule(Schedule {
                schedules: vec![ScheduledRun {
                    mirror: mirror("debian"),
                    next_schedule: at,
                }],
            }),
            Event::CmdResult(CmdResult {
                cmd_id: Uuid::new_v4(),
                cmd: CommandKind::Start,
                mirror: Some(mirror("debian")),
                outcome: CmdOutcome::Refused {
                    reason: "mirror nosuch not found".into(),
                },
            }),
            Event::CmdResult(CmdResult {
                cmd_id: Uuid::new_v4(),
                cmd: CommandKind::Reload,
                mirror: None,
                outcome: CmdOutcome::Accepted,
            }),
            Event::JobRemoved(JobRemoved {
                mirror: mirror("old"),
            }),
            Event::Claim(Claim {
                pool: crate::names::PoolName::new("shared").unwrap(),
                mirror: mirror("debian"),
                run_id: Uuid::new_v4(),
                lease: 3,
                fingerprint: Some("v1:0123456789abcdef".into()),
            }),
            Event::Status(JobStatus {
                mirror: mirror("debian"),
                status: SyncStatus::Syncing,
                run_id: Uuid::new_v4(),
                attempt: 1,
                at: GoTime::parse_rfc3339("2026-11-26T11:42:43+08:00").unwrap(),
                upstream: "rsync://x/debian/".into(),
                is_master: true,
                size: None,
                error_msg: String::new(),
                pooled: Some(PooledRun {
                    pool: crate::names::PoolName::new("shared").unwrap(),
                    lease: 3,
                    last: false,
                }),
                transferred_bytes: None,
                ends_run: false,
            }),
        ]
    }

    #[test]
    fn every_event_round_trips() {
        for (idx, event) in samples().into_iter().enumerate() {
            let envelope = EventEnvelope::new(worker(), 1000 + idx as u64, event);
            let bytes = envelope.encode();
            let decoded = EventEnvelope::decode(&bytes).unwrap();
            assert_eq!(decoded, envelope);
            let kind = envelope.event.kind().as_str();
            assert_eq!(envelope.routing_key(), format!("w1.{kind}"));
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(value["v"], 1);
            assert_eq!(value["kind"], kind);
            assert_eq!(value["worker"], "w1");
        }
    }

    #[test]
    fn a_status_event_reads_as_documented() {
        let text = r#"{"v":1,"kind":"status","id":"7f1c5a3e-2b1d-4c57-9a43-0b8f3c1f6e21","sent_at":"2026-11-26T03:42:43.5Z","worker":"w1","seq":17,"body":{"mirror":"debian","status":"pre-syncing","run_id":"a0c1b2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d","attempt":1,"at":"2026-11-26T11:42:43+08:00","upstream":"rsync://x/debian/","is_master":true,"error_msg":""}}"#;
        let envelope = EventEnvelope::decode(text.as_bytes()).unwrap();
        assert_eq!(envelope.seq, 17);
        let Event::Status(status) = envelope.event else {
            panic!("expected a status event");
        };
        assert_eq!(status.status, SyncStatus::PreSyncing);
        assert_eq!(status.size, None);
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        let good = EventEnvelope::new(
            worker(),
            1,
            Event::JobRemoved(JobRemoved {
                mirror: mirror("m"),
            }),
        );
        let good: serde_json::Value = serde_json::from_slice(&good.encode()).unwrap();
        let with = |key: &str, value: serde_json::Value| {
            let mut changed = good.clone();
            changed[key] = value;
            serde_json::to_vec(&changed).unwrap()
        };
        let without = |key: &str| {
            let mut changed = good.clone();
            changed.as_object_mut().unwrap().remove(key);
            serde_json::to_vec(&changed).unwrap()
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"garbage".to_vec(), "not a JSON envelope"),
            (b"".to_vec(), "not a JSON envelope"),
            (b"[1,2]".to_vec(), "not a JSON envelope"),
            (with("v", 2.into()), "unsupported envelope version 2"),
            (with("v", "1".into()), "not a JSON envelope"),
            (without("v"), "no \"v\" field"),
            (
                with("kind", "frobnicate".into()),
                "unknown message kind \"frobnicate\"",
            ),
            (
                with("kind", "start".into()),
                "unknown message kind \"start\"",
            ),
            (without("seq"), "no \"seq\" field"),
            (with("worker", "w/1".into()), "invalid worker"),
            (with("id", "not-a-uuid".into()), "invalid id"),
            (
                with("body", serde_json::json!({"mirror": 5})),
                "invalid body of a \"job-removed\"",
            ),
            (
                with("body", serde_json::json!({"mirror": "../etc"})),
                "invalid body",
            ),
            (without("body"), "no \"body\" field"),
        ];
        for (bytes, expected) in cases {
            let err = EventEnvelope::decode(&bytes).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{}: {err}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}
