//! Commands: what the manager tells one worker, published to `<ns>.cmd` with the worker id
//! as routing key, so they land in `<ns>.worker.<id>`.

use serde::{Deserialize, Serialize};

use super::pool::{Grant, PoolRun};
use super::{DecodeError, Header, body, open, seal};
use crate::gotime::GoTime;
use crate::names::{MirrorName, WorkerId};
use crate::status::{CmdVerb, SyncStatus};

/// The kinds of command, as written in `kind` and the AMQP `type` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandKind {
    Start,
    Stop,
    Disable,
    Restart,
    Ping,
    Reload,
    Welcome,
    PoolRun,
    Grant,
    Log,
    LogStop,
    Maintenance,
}

impl CommandKind {
    pub const ALL: [CommandKind; 12] = [
        CommandKind::Start,
        CommandKind::Stop,
        CommandKind::Disable,
        CommandKind::Restart,
        CommandKind::Ping,
        CommandKind::Reload,
        CommandKind::Welcome,
        CommandKind::PoolRun,
        CommandKind::Grant,
        CommandKind::Log,
        CommandKind::LogStop,
        CommandKind::Maintenance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Start => "start",
            CommandKind::Stop => "stop",
            CommandKind::Disable => "disable",
            CommandKind::Restart => "restart",
            CommandKind::Ping => "ping",
            CommandKind::Reload => "reload",
            CommandKind::Welcome => "welcome",
            CommandKind::PoolRun => "pool-run",
            CommandKind::Grant => "grant",
            CommandKind::Log => "log",
            CommandKind::LogStop => "log-stop",
            CommandKind::Maintenance => "maintenance",
        }
    }

    fn from_wire(kind: &str) -> Option<Self> {
        CommandKind::ALL
            .into_iter()
            .find(|known| known.as_str() == kind)
    }
}

impl From<CmdVerb> for CommandKind {
    fn from(verb: CmdVerb) -> Self {
        match verb {
            CmdVerb::Start => CommandKind::Start,
            CmdVerb::Stop => CommandKind::Stop,
            CmdVerb::Disable => CommandKind::Disable,
            CmdVerb::Restart => CommandKind::Restart,
            CmdVerb::Ping => CommandKind::Ping,
            CmdVerb::Reload => CommandKind::Reload,
        }
    }
}

/// A command the manager sends to one worker. Every command except `welcome` is answered with
/// a `cmd-result` event naming the command's envelope id.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run the job now; `force` bypasses the concurrency limit. Re-enables a disabled job.
    Start(StartJob),
    /// Stop a running job (it is killed) and pause it until started again.
    Stop(JobTarget),
    /// Stop and disable the job.
    Disable(JobTarget),
    /// Kill a running job and run it again.
    Restart(JobTarget),
    /// Checks that the worker (and, with a mirror, that job) is there.
    Ping(Ping),
    /// Re-read the worker's config file and apply it.
    Reload(Reload),
    /// The answer to `hello`: the manager's stored state of the worker's jobs, which decides
    /// at start-up what stays disabled or paused and when each job runs next.
    Welcome(Welcome),
    /// A due run of a pooled mirror, on the pool's queue (see [`crate::wire::pool`]). Not
    /// answered: the member that takes it sends a `claim`.
    PoolRun(PoolRun),
    /// The answer to a member's `claim`. Not answered.
    Grant(Grant),
    /// Send the latest log of a job: answered with `log-chunk` events naming the command's
    /// envelope id (not with a `cmd-result`).
    Log(LogRequest),
    /// Stop following a log (its reader went away). Not answered.
    LogStop(LogStop),
    /// Which of the worker's mirrors are in maintenance: the whole set, replacing the one
    /// the worker has (a `welcome` carries it too). Not answered.
    Maintenance(MaintenanceSet),
}

impl Command {
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::Start(_) => CommandKind::Start,
            Command::Stop(_) => CommandKind::Stop,
            Command::Disable(_) => CommandKind::Disable,
            Command::Restart(_) => CommandKind::Restart,
            Command::Ping(_) => CommandKind::Ping,
            Command::Reload(_) => CommandKind::Reload,
            Command::Welcome(_) => CommandKind::Welcome,
            Command::PoolRun(_) => CommandKind::PoolRun,
            Command::Grant(_) => CommandKind::Grant,
            Command::Log(_) => CommandKind::Log,
            Command::LogStop(_) => CommandKind::LogStop,
            Command::Maintenance(_) => CommandKind::Maintenance,
        }
    }

    /// The mirror a command is about, if any.
    pub fn mirror(&self) -> Option<&MirrorName> {
        match self {
            Command::Start(target) => Some(&target.mirror),
            Command::Stop(target) | Command::Disable(target) | Command::Restart(target) => {
                Some(&target.mirror)
            }
            Command::Ping(ping) => ping.mirror.as_ref(),
            Command::PoolRun(run) => Some(&run.mirror),
            Command::Grant(grant) => Some(&grant.mirror),
            Command::Log(request) => Some(&request.mirror),
            Command::Reload(_)
            | Command::Welcome(_)
            | Command::LogStop(_)
            | Command::Maintenance(_) => None,
        }
    }
}

/// A command aimed at one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTarget {
    pub mirror: MirrorName,
    /// tunasync's `args` (passed along by tunasynctl; workers ignore them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// `start`: see [`Command::Start`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartJob {
    pub mirror: MirrorName,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Bypass the worker's concurrency limit.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorName>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reload {}

/// `log`: see [`Command::Log`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    pub mirror: MirrorName,
    /// Only the last this many lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<u32>,
    /// Then go on sending what the running job writes, until the run ends (or a
    /// `log-stop`, or the worker's time limit for a follow).
    #[serde(default)]
    pub follow: bool,
    /// That run's log (its newest attempt) instead of the latest; a follow of a run that
    /// is not the running one ends at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<uuid::Uuid>,
}

/// `log-stop`: see [`Command::LogStop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStop {
    /// The `log` command's envelope id.
    pub request: uuid::Uuid,
}

/// `maintenance`: see [`Command::Maintenance`]. While a mirror is in maintenance its
/// schedule starts nothing (a run going on finishes; an operator's `start` still runs); a
/// run that comes due meanwhile starts when the maintenance ends.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MaintenanceSet {
    /// Grows with every change the manager makes (it is never below the manager's clock in
    /// milliseconds): a set older than the one the worker has is ignored, so a `welcome` and
    /// a `maintenance` that cross on the way cannot undo a newer change.
    pub generation: u64,
    /// The whole worker: the cluster or this worker is in maintenance. A member of a pool
    /// also stops taking the pool's runs.
    #[serde(default)]
    pub all: bool,
    /// These of its mirrors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<MirrorName>,
}

impl MaintenanceSet {
    /// Whether the set holds `mirror` back.
    pub fn holds(&self, mirror: &MirrorName) -> bool {
        self.all || self.mirrors.contains(mirror)
    }
}

/// `welcome`: see [`Command::Welcome`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Welcome {
    pub jobs: Vec<StoredJob>,
    /// The highest sequence number the manager holds from this worker. A worker whose own
    /// numbers are not above it (its clock was stepped back since) continues after it, or
    /// the manager would take its events for late copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// The manager's `offline_after`: a member of a pool cut off from the broker this long
    /// stops its pooled runs (the manager has given them away).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_after_secs: Option<u64>,
    /// What of the worker is in maintenance (see [`Command::Maintenance`]), so that a worker
    /// starting during a maintenance starts nothing on its schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceSet>,
}

/// The manager's stored state of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredJob {
    pub mirror: MirrorName,
    pub status: SyncStatus,
    pub last_update: GoTime,
    pub last_started: GoTime,
    pub last_ended: GoTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// A command with its envelope header (`worker` is the target).
#[derive(Debug, Clone, PartialEq)]
pub struct CommandEnvelope {
    pub header: Header,
    pub command: Command,
}

impl CommandEnvelope {
    pub fn new(worker: WorkerId, command: Command) -> Self {
        CommandEnvelope {
            header: Header::new(worker),
            command,
        }
    }

    /// The routing key on `<ns>.cmd`: the target worker's id.
    pub fn routing_key(&self) -> &str {
        self.header.worker.as_str()
    }

    pub fn encode(&self) -> Vec<u8> {
        let kind = self.command.kind().as_str();
        match &self.command {
            Command::Start(body) => seal(&self.header, kind, None, body),
            Command::Stop(body) | Command::Disable(body) | Command::Restart(body) => {
                seal(&self.header, kind, None, body)
            }
            Command::Ping(body) => seal(&self.header, kind, None, body),
            Command::Reload(body) => seal(&self.header, kind, None, body),
            Command::Welcome(body) => seal(&self.header, kind, None, body),
            Command::PoolRun(body) => seal(&self.header, kind, None, body),
            Command::Grant(body) => seal(&self.header, kind, None, body),
            Command::Log(body) => seal(&self.header, kind, None, body),
            Command::LogStop(body) => seal(&self.header, kind, None, body),
            Command::Maintenance(body) => seal(&self.header, kind, None, body),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let opened = open(bytes)?;
        let kind = CommandKind::from_wire(&opened.kind)
            .ok_or_else(|| DecodeError::UnknownKind(opened.kind.clone().into_owned()))?;
        let name = kind.as_str();
        let command = match kind {
            CommandKind::Start => Command::Start(body(opened.body, name)?),
            CommandKind::Stop => Command::Stop(body(opened.body, name)?),
            CommandKind::Disable => Command::Disable(body(opened.body, name)?),
            CommandKind::Restart => Command::Restart(body(opened.body, name)?),
            CommandKind::Ping => Command::Ping(body(opened.body, name)?),
            CommandKind::Reload => Command::Reload(body(opened.body, name)?),
            CommandKind::Welcome => Command::Welcome(body(opened.body, name)?),
            CommandKind::PoolRun => Command::PoolRun(body(opened.body, name)?),
            CommandKind::Grant => Command::Grant(body(opened.body, name)?),
            CommandKind::Log => Command::Log(body(opened.body, name)?),
            CommandKind::LogStop => Command::LogStop(body(opened.body, name)?),
            CommandKind::Maintenance => Command::Maintenance(body(opened.body, name)?),
        };
        Ok(CommandEnvelope {
            header: opened.header,
            command,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(name: &str) -> MirrorName {
        MirrorName::new(name).unwrap()
    }

    fn target() -> JobTarget {
        JobTarget {
            mirror: mirror("debian"),
            args: Vec::new(),
        }
    }

    fn start(force: bool) -> StartJob {
        StartJob {
            mirror: mirror("debian"),
            args: Vec::new(),
            force,
        }
    }

    #[test]
    fn every_command_round_trips() {
        let at = GoTime::parse_rfc3339("2026-11-26T11:42:43+08:00").unwrap();
        let commands = vec![
            Command::Start(StartJob {
                args: vec!["x".into(), "y".into()],
                ..start(true)
            }),
            Command::Start(start(false)),
            Command::Stop(target()),
            Command::Disable(target()),
            Command::Restart(target()),
            Command::Ping(Ping::default()),
            Command::Ping(Ping {
                mirror: Some(mirror("debian")),
            }),
            Command::Reload(Reload {}),
            Command::Welcome(Welcome {
                jobs: vec![StoredJob {
                    mirror: mirror("debian"),
                    status: SyncStatus::Paused,
                    last_update: at,
                    last_started: at,
                    last_ended: GoTime::ZERO,
                    size: Some("5G".into()),
                }],
                last_seq: Some(1_764_000_000_000_000),
                offline_after_secs: Some(30),
                maintenance: Some(MaintenanceSet {
                    generation: 1_764_000_000_000,
                    all: false,
                    mirrors: vec![mirror("debian")],
                }),
            }),
            Command::Maintenance(MaintenanceSet {
                generation: 1_764_000_000_001,
                all: true,
                mirrors: Vec::new(),
            }),
            Command::PoolRun(PoolRun {
                pool: crate::names::PoolName::new("shared").unwrap(),
                mirror: mirror("debian"),
                run_id: uuid::Uuid::new_v4(),
                lease: 7,
                fingerprint: "v1:0123456789abcdef".into(),
                force: true,
            }),
            Command::Grant(Grant {
                pool: crate::names::PoolName::new("shared").unwrap(),
                mirror: mirror("debian"),
                run_id: uuid::Uuid::new_v4(),
                lease: 7,
                granted: false,
                reason: "claimed by w2".into(),
            }),
        ];
        for command in commands {
            let envelope = CommandEnvelope::new(WorkerId::new("w1").unwrap(), command);
            let decoded = CommandEnvelope::decode(&envelope.encode()).unwrap();
            assert_eq!(decoded, envelope);
            assert_eq!(envelope.routing_key(), "w1");
        }
    }

    #[test]
    fn start_body_is_plain_json() {
        let envelope =
            CommandEnvelope::new(WorkerId::new("w1").unwrap(), Command::Start(start(true)));
        let value: serde_json::Value = serde_json::from_slice(&envelope.encode()).unwrap();
        assert_eq!(value["kind"], "start");
        assert_eq!(
            value["body"],
            serde_json::json!({"mirror": "debian", "force": true})
        );
        assert!(value.get("seq").is_none());
    }

    #[test]
    fn an_event_kind_is_not_a_command() {
        let text = r#"{"v":1,"kind":"hello","id":"7f1c5a3e-2b1d-4c57-9a43-0b8f3c1f6e21","sent_at":"2026-11-26T03:42:43Z","worker":"w1","body":{}}"#;
        let err = CommandEnvelope::decode(text.as_bytes()).unwrap_err();
        assert!(
            matches!(err, DecodeError::UnknownKind(ref kind) if kind == "hello"),
            "{err}"
        );
        let text = text.replace("\"hello\"", "\"stop\"");
        let err = CommandEnvelope::decode(text.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("invalid body of a \"stop\""),
            "{err}"
        );
    }
}
