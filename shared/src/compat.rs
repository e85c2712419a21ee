//! tunasync's JSON types, byte-compatible with what tunasync v0.10.0 sends and answers.
//!
//! These are the ecosystem's API: `GET /jobs` (tunasync.json, read by mirror-web, MirrorZ
//! parsers and monitors), the other manager routes and tunasynctl's requests. Field order and
//! names follow tunasync's structs exactly, because some consumers compare bytes.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::gotime::GoTime;
use crate::status::{CmdVerb, SyncStatus};

/// One job's status as the manager stores and lists it per worker (`GET /workers/{id}/jobs`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MirrorStatus {
    pub name: String,
    pub worker: String,
    pub is_master: bool,
    pub status: SyncStatus,
    pub last_update: GoTime,
    pub last_started: GoTime,
    pub last_ended: GoTime,
    pub next_schedule: GoTime,
    pub upstream: String,
    pub size: String,
    pub error_msg: String,
    /// Ours: where users find the mirror (worker.conf's `url`); absent when not set, so the
    /// record is tunasync's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Ours, not tunasync's (Go clients ignore it): how far a running job has got, from
    /// its worker's latest `progress` event. Absent unless the job is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<crate::wire::event::JobProgress>,
    /// Ours: the job is in maintenance (of the cluster, its worker or itself), with the
    /// operator's message (possibly empty). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<String>,
}

/// One entry of `GET /jobs`: tunasync.json. No worker and no error text, text times plus
/// their Unix-second twins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebMirrorStatus {
    pub name: String,
    pub is_master: bool,
    pub status: SyncStatus,
    pub last_update: WebTime,
    pub last_update_ts: i64,
    pub last_started: WebTime,
    pub last_started_ts: i64,
    pub last_ended: WebTime,
    pub last_ended_ts: i64,
    pub next_schedule: WebTime,
    pub next_schedule_ts: i64,
    pub upstream: String,
    pub size: String,
    /// Where users find the mirror, when worker.conf sets `url` (MirrorZ's parser of
    /// tunasync.json reads it); absent otherwise, as in tunasync.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
}

impl From<&MirrorStatus> for WebMirrorStatus {
    fn from(status: &MirrorStatus) -> Self {
        WebMirrorStatus {
            name: status.name.clone(),
            is_master: status.is_master,
            status: status.status,
            last_update: WebTime(status.last_update),
            last_update_ts: status.last_update.unix(),
            last_started: WebTime(status.last_started),
            last_started_ts: status.last_started.unix(),
            last_ended: WebTime(status.last_ended),
            last_ended_ts: status.last_ended.unix(),
            next_schedule: WebTime(status.next_schedule),
            next_schedule_ts: status.next_schedule.unix(),
            upstream: status.upstream.clone(),
            size: status.size.clone(),
            url: status.url.clone(),
        }
    }
}

/// A time in `GET /jobs`' text form, `2006-01-02 15:04:05 -0700`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebTime(pub GoTime);

crate::openapi::string_schema!(
    WebTime,
    "A time as `GET /jobs` writes it: `2006-01-02 15:04:05 -0700`.",
    None,
    Some("^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} [-+][0-9]{4}$")
);

impl Serialize for WebTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.web_text().as_str())
    }
}

impl<'de> Deserialize<'de> for WebTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        chrono::DateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S %z")
            .map(|time| WebTime(GoTime::new(time)))
            .map_err(|err| serde::de::Error::custom(format!("invalid time {text:?}: {err}")))
    }
}

/// A worker record (`GET /workers`). tunasync's `token` is always shown as `REDACTED`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerStatus {
    pub id: String,
    pub url: String,
    pub token: String,
    pub last_online: GoTime,
    pub last_register: GoTime,
    /// New in this implementation: whether the worker's heartbeats are current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// New: for a pool (listed among the workers, as `-w POOL` addresses it), what it is.
    /// (Its fields are beside the others; the OpenAPI schema lists them as `PoolStatus`.)
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub pool: Option<PoolStatus>,
    /// New: the worker (or pool) is in maintenance, itself or with the whole cluster, with
    /// the operator's message (possibly empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<String>,
    /// New: a Go tunasync worker that registered over HTTP (the manager's `[legacy]`
    /// bridge), with tunasync's liveness only (no heartbeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<bool>,
}

/// A pool in `GET /workers`: `"pool": true` and its members, slots and queued runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PoolStatus {
    /// Always true: tells a pool from a worker.
    pub pool: bool,
    pub members: Vec<PoolMemberStatus>,
    /// Slots free for the pool's runs on its online members.
    pub free_slots: u32,
    /// Runs handed to the pool's queue and not taken yet.
    pub queued_runs: u32,
    /// Seconds the oldest of them has waited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_queued_secs: Option<i64>,
    /// Members whose definition of a pooled mirror differs from the one the pool runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differing: Vec<DifferingDefinition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PoolMemberStatus {
    pub id: String,
    pub online: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_slots: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DifferingDefinition {
    pub mirror: String,
    pub worker: String,
    pub fingerprint: String,
    /// The definition the pool runs.
    pub pool_fingerprint: String,
}

/// `POST /cmd` body, as tunasynctl sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"cmd": "start", "worker_id": "worker1", "mirror_id": "debian"}))]
pub struct ClientCmd {
    pub cmd: CmdVerb,
    /// Empty for `ping` and `reload` of a whole worker.
    #[schema(pattern = "^[A-Za-z0-9._-]{0,128}$")]
    pub mirror_id: String,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub worker_id: String,
    #[serde(default)]
    pub args: Option<Vec<String>>,
    #[serde(default)]
    pub options: Option<BTreeMap<String, bool>>,
}

impl ClientCmd {
    /// tunasync's only option: `force` (start past the concurrency limit).
    pub fn force(&self) -> bool {
        self.options
            .as_ref()
            .and_then(|options| options.get("force").copied())
            .unwrap_or(false)
    }
}

/// `POST /workers/{id}/jobs/{job}/size` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "debian", "size": "1.2T"}))]
pub struct SizeMsg {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub name: String,
    pub size: String,
}

/// One entry of a worker's schedule list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorSchedule {
    pub name: String,
    pub next_schedule: GoTime,
}

/// `POST /workers/{id}/schedules` from a Go worker: its whole queue (`null` when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorSchedules {
    #[serde(default)]
    pub schedules: Option<Vec<MirrorSchedule>>,
}

/// `{"message": …}`: tunasync's informational answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InfoBody {
    pub message: String,
}

/// `{"error": …}`: tunasync's error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// Decodes a request body the way Go's `encoding/json` does: object keys match field names
/// without regard to case, so controllers that send `Name` / `Size` keep working.
pub fn from_json_ignoring_key_case<T: DeserializeOwned>(
    body: &[u8],
) -> Result<T, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    serde_json::from_value(lowercase_keys(value))
}

fn lowercase_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .map(|(key, value)| (key.to_ascii_lowercase(), lowercase_keys(value)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies as tunasync v0.10.0 wrote them; each must decode and encode back byte for byte.
    const MIRROR_STATUS_SAMPLES: &[&str] = &[
        r#"{"name":"debian","worker":"w1","is_master":true,"status":"success","last_update":"2026-04-13T21:57:25.1+08:00","last_started":"2026-04-13T21:50:00+08:00","last_ended":"2026-04-13T21:57:25.1+08:00","next_schedule":"2026-04-13T23:57:25.1+08:00","upstream":"rsync://ftp.debian.org/debian/","size":"1.33T","error_msg":""}"#,
        r#"{"name":"m-bad","worker":"w1","is_master":false,"status":"none","last_update":"0001-01-01T00:00:00Z","last_started":"0001-01-01T00:00:00Z","last_ended":"0001-01-01T00:00:00Z","next_schedule":"0001-01-01T00:00:00Z","upstream":"","size":"","error_msg":""}"#,
        r#"{"name":"m-fail","worker":"w1","is_master":true,"status":"failed","last_update":"0001-01-01T00:00:00Z","last_started":"2026-11-26T11:42:43.681257497+08:00","last_ended":"2026-11-26T03:42:43.5Z","next_schedule":"0001-01-01T00:00:00Z","upstream":"rsync://example.invalid/m/","size":"unknown","error_msg":"exit status 3"}"#,
        r#"{"name":"m-pre","worker":"w2","is_master":true,"status":"pre-syncing","last_update":"0001-01-01T00:00:00Z","last_started":"2026-11-26T11:42:43+08:00","last_ended":"0001-01-01T00:00:00Z","next_schedule":"0001-01-01T00:00:00Z","upstream":"","size":"unknown","error_msg":""}"#,
    ];

    #[test]
    fn mirror_status_round_trips_byte_for_byte() {
        for sample in MIRROR_STATUS_SAMPLES {
            let status: MirrorStatus = serde_json::from_str(sample).unwrap();
            assert_eq!(&serde_json::to_string(&status).unwrap(), sample);
        }
    }

    /// (MirrorStatus as stored, the tunasync.json entry tunasync printed for it)
    const WEB_SAMPLES: &[(&str, &str)] = &[
        (
            r#"{"name":"openwrt","worker":"w1","is_master":true,"status":"success","last_update":"2020-03-10T17:45:07+08:00","last_started":"0001-01-01T00:00:00Z","last_ended":"0001-01-01T00:00:00Z","next_schedule":"2020-03-11T17:45:07+08:00","upstream":"rsync://downloads.openwrt.org/","size":"unknown","error_msg":"x"}"#,
            r#"{"name":"openwrt","is_master":true,"status":"success","last_update":"2020-03-10 17:45:07 +0800","last_update_ts":1583833507,"last_started":"0001-01-01 00:00:00 +0000","last_started_ts":-62135596800,"last_ended":"0001-01-01 00:00:00 +0000","last_ended_ts":-62135596800,"next_schedule":"2020-03-11 17:45:07 +0800","next_schedule_ts":1583919907,"upstream":"rsync://downloads.openwrt.org/","size":"unknown"}"#,
        ),
        (
            r#"{"name":"m-success","worker":"w1","is_master":true,"status":"success","last_update":"2026-11-26T11:42:43.681257497+08:00","last_started":"2026-11-26T11:42:43.6+08:00","last_ended":"2026-11-26T11:42:43.681257497+08:00","next_schedule":"2030-01-02T03:04:05+08:00","upstream":"rsync://example.invalid/m-success/","size":"5GB","error_msg":""}"#,
            r#"{"name":"m-success","is_master":true,"status":"success","last_update":"2026-11-26 11:42:43 +0800","last_update_ts":1795664563,"last_started":"2026-11-26 11:42:43 +0800","last_started_ts":1795664563,"last_ended":"2026-11-26 11:42:43 +0800","last_ended_ts":1795664563,"next_schedule":"2030-01-02 03:04:05 +0800","next_schedule_ts":1893524645,"upstream":"rsync://example.invalid/m-success/","size":"5GB"}"#,
        ),
    ];

    #[test]
    fn web_status_matches_tunasync_json() {
        for (stored, web) in WEB_SAMPLES {
            let status: MirrorStatus = serde_json::from_str(stored).unwrap();
            let built = WebMirrorStatus::from(&status);
            assert_eq!(&serde_json::to_string(&built).unwrap(), web);
            let parsed: WebMirrorStatus = serde_json::from_str(web).unwrap();
            assert_eq!(&serde_json::to_string(&parsed).unwrap(), web);
        }
    }

    #[test]
    fn worker_status_round_trips() {
        let sample = r#"{"id":"w1","url":"http://127.0.0.1:26100/","token":"REDACTED","last_online":"2026-11-26T03:49:04.30612841Z","last_register":"2026-11-26T03:49:04.298536163Z"}"#;
        let worker: WorkerStatus = serde_json::from_str(sample).unwrap();
        assert_eq!(serde_json::to_string(&worker).unwrap(), sample);
        let online = WorkerStatus {
            online: Some(true),
            ..worker
        };
        assert!(
            serde_json::to_string(&online)
                .unwrap()
                .ends_with(r#","online":true}"#)
        );
    }

    #[test]
    fn client_cmd_as_tunasynctl_sends_it() {
        let cases = [
            (
                r#"{"cmd":"start","mirror_id":"debian","worker_id":"w1","args":["a","b"],"options":{"force":true}}"#,
                true,
            ),
            (
                r#"{"cmd":"stop","mirror_id":"debian","worker_id":"w1","args":null,"options":null}"#,
                false,
            ),
            (
                r#"{"cmd":"reload","mirror_id":"","worker_id":"w1","args":null,"options":null}"#,
                false,
            ),
        ];
        for (sample, force) in cases {
            let cmd: ClientCmd = serde_json::from_str(sample).unwrap();
            assert_eq!(cmd.force(), force);
            assert_eq!(serde_json::to_string(&cmd).unwrap(), sample);
        }
        assert!(
            serde_json::from_str::<ClientCmd>(
                r#"{"cmd":"frobnicate","mirror_id":"m","worker_id":"w"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn request_keys_match_without_case() {
        let size: SizeMsg =
            from_json_ignoring_key_case(br#"{"Name":"debian","SIZE":"5GB"}"#).unwrap();
        assert_eq!(
            size,
            SizeMsg {
                name: "debian".into(),
                size: "5GB".into()
            }
        );
        let cmd: ClientCmd = from_json_ignoring_key_case(
            br#"{"Cmd":"start","Mirror_ID":"m","Worker_Id":"w","Options":{"Force":true}}"#,
        )
        .unwrap();
        assert!(cmd.force());
        assert!(from_json_ignoring_key_case::<SizeMsg>(b"{not json").is_err());
    }

    #[test]
    fn bodies_of_info_and_error() {
        let info = InfoBody {
            message: "pong".into(),
        };
        assert_eq!(
            serde_json::to_string(&info).unwrap(),
            r#"{"message":"pong"}"#
        );
        let error = ErrorBody {
            error: "invalid workerID w9".into(),
        };
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"error":"invalid workerID w9"}"#
        );
    }
}
