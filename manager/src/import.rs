//! `tunasync manager import --from URL`: seeds the store from a running tunasync (Go)
//! manager's public API, so the status page keeps each mirror's last success, size and
//! status across the switch.
//!
//! It reads `GET /workers` and each worker's `GET /workers/{id}/jobs` (tunasync.json has no
//! worker names), and writes every job whose record here is older than the Go manager's
//! (or missing). Idempotent: a second import finds nothing newer. The manager must be
//! stopped (its store file is locked while it runs).

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use tunasync_shared::compat::MirrorStatus;
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;

use crate::model::{Changes, JobKey, Model};
use crate::records::{Hold, JobRecord, UNKNOWN_SIZE, WorkerRecord};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {url}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} did not answer with tunasync's JSON")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read the CA certificate {path}")]
    Ca {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("cannot open or write the store (is the manager running? stop it first)")]
    Store(#[from] StoreError),
}

/// A worker as tunasync's `GET /workers` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct GoWorker {
    pub id: String,
    #[serde(default)]
    pub last_online: GoTime,
    #[serde(default)]
    pub last_register: GoTime,
}

/// What the Go manager said.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub workers: Vec<GoWorker>,
    pub jobs: Vec<MirrorStatus>,
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Imported,
    /// This store's record is as new or newer.
    Kept,
    Skipped(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub worker: String,
    pub mirror: String,
    pub status: SyncStatus,
    pub last_update: GoTime,
    pub outcome: Outcome,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let job = format!("{}/{}", self.worker, self.mirror);
        match &self.outcome {
            Outcome::Imported if self.last_update.is_zero() => {
                write!(f, "imported {job}: {}, never succeeded", self.status)
            }
            Outcome::Imported => write!(
                f,
                "imported {job}: {}, last success {}",
                self.status,
                self.last_update.web_string()
            ),
            Outcome::Kept => write!(f, "kept {job}: the record here is as new or newer"),
            Outcome::Skipped(why) => write!(f, "skipped {job:?}: {why}"),
        }
    }
}

/// The totals line.
pub fn summary(lines: &[Line]) -> String {
    let count =
        |want: fn(&Outcome) -> bool| lines.iter().filter(|line| want(&line.outcome)).count();
    format!(
        "{} imported, {} kept, {} skipped",
        count(|o| *o == Outcome::Imported),
        count(|o| *o == Outcome::Kept),
        count(|o| matches!(o, Outcome::Skipped(_)))
    )
}

async fn get<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: String,
) -> Result<T, ImportError> {
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|source| ImportError::Fetch {
            url: url.clone(),
            source,
        })?;
    if !response.status().is_success() {
        return Err(ImportError::Status {
            url,
            status: response.status().as_u16(),
        });
    }
    let body = response
        .bytes()
        .await
        .map_err(|source| ImportError::Fetch {
            url: url.clone(),
            source,
        })?;
    serde_json::from_slice(&body).map_err(|source| ImportError::Json { url, source })
}

/// Reads the Go manager at `base` (`https://host:port`), trusting `ca_cert` if given.
pub async fn fetch(base: &str, ca_cert: Option<&Path>) -> Result<Source, ImportError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).map_err(|source| ImportError::Ca {
            path: path.display().to_string(),
            source,
        })?;
        let certificate = reqwest::Certificate::from_pem(&pem).map_err(ImportError::Client)?;
        builder = builder.tls_certs_only([certificate]);
    }
    let client = builder.build().map_err(ImportError::Client)?;
    let base = base.trim_end_matches('/');
    // tunasync answers `null` while no worker is registered.
    let workers: Option<Vec<GoWorker>> = get(&client, format!("{base}/workers")).await?;
    let workers = workers.unwrap_or_default();
    let mut jobs = Vec::new();
    for worker in &workers {
        let listed: Option<Vec<MirrorStatus>> =
            get(&client, format!("{base}/workers/{}/jobs", worker.id)).await?;
        jobs.extend(listed.unwrap_or_default());
    }
    Ok(Source { workers, jobs })
}

/// The newest time a record holds: which of two records is newer.
fn freshness(record: &JobRecord) -> i64 {
    [record.last_update, record.last_started, record.last_ended]
        .iter()
        .filter(|time| !time.is_zero())
        .map(GoTime::unix)
        .max()
        .unwrap_or(i64::MIN)
}

/// Applies `source` to `model` (pure): each job older here, or missing, takes the Go
/// manager's record; its worker is added if unknown.
pub fn apply(model: &mut Model, source: &Source, changes: &mut Changes) -> Vec<Line> {
    let mut lines = Vec::new();
    for status in &source.jobs {
        let mut line = Line {
            worker: status.worker.clone(),
            mirror: status.name.clone(),
            status: status.status,
            last_update: status.last_update,
            outcome: Outcome::Imported,
        };
        let key: Result<JobKey, String> = MirrorName::new(&status.name)
            .map_err(|err| err.to_string())
            .and_then(|mirror| {
                let worker = WorkerId::new(&status.worker).map_err(|err| err.to_string())?;
                Ok((mirror, worker))
            });
        let key = match key {
            Ok(key) => key,
            Err(why) => {
                line.outcome = Outcome::Skipped(why);
                lines.push(line);
                continue;
            }
        };
        let imported = JobRecord {
            is_master: status.is_master,
            status: status.status,
            last_update: status.last_update,
            last_started: status.last_started,
            last_ended: status.last_ended,
            next_schedule: status.next_schedule,
            upstream: status.upstream.clone(),
            size: if status.size.is_empty() {
                UNKNOWN_SIZE.to_owned()
            } else {
                status.size.clone()
            },
            error_msg: status.error_msg.clone(),
            hold: Hold::of(status.status),
            url: status.url.clone(),
            ..JobRecord::default()
        };
        if let Some(here) = model.jobs.get(&key)
            && freshness(here) >= freshness(&imported)
        {
            line.outcome = Outcome::Kept;
            lines.push(line);
            continue;
        }
        let worker = &key.1;
        if !model.workers.contains_key(worker) {
            let go = source.workers.iter().find(|go| go.id == worker.as_str());
            let mut record = WorkerRecord::new(go.map_or(GoTime::ZERO, |go| go.last_online));
            if let Some(go) = go {
                record.last_register = go.last_register;
            }
            record.version = "imported from tunasync".to_owned();
            model.workers.insert(worker.clone(), record);
            changes.workers.insert(worker.clone());
        }
        model.jobs.insert(key.clone(), imported);
        changes.jobs.insert(key);
        lines.push(line);
    }
    lines
}

/// Writes `source` into the store at `db_file`; what became of each job.
pub fn seed(db_file: &Path, runs_per_job: u32, source: &Source) -> Result<Vec<Line>, ImportError> {
    let (store, mut model) = Store::open(db_file, runs_per_job)?;
    let mut changes = Changes::default();
    let lines = apply(&mut model, source, &mut changes);
    store.commit(&model, &changes)?;
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: &str) -> MirrorStatus {
        serde_json::from_str(json).unwrap()
    }

    /// Records in the shape tunasync v0.10.0's `GET /workers/{id}/jobs` answers.
    fn source() -> Source {
        Source {
            workers: serde_json::from_str(
                r#"[{"id":"w1","url":"http://10.0.0.1:6000/","token":"REDACTED","last_online":"2026-11-30T08:00:00.5+08:00","last_register":"2026-11-01T08:00:00+08:00"}]"#,
            )
            .unwrap(),
            jobs: vec![
                status(r#"{"name":"debian","worker":"w1","is_master":true,"status":"success","last_update":"2026-11-30T07:00:00.123456789+08:00","last_started":"2026-11-30T06:00:00+08:00","last_ended":"2026-11-30T07:00:00.123456789+08:00","next_schedule":"2026-11-30T09:00:00+08:00","upstream":"rsync://ftp.debian.org/debian/","size":"1.2T","error_msg":""}"#),
                status(r#"{"name":"old","worker":"w1","is_master":true,"status":"disabled","last_update":"0001-01-01T00:00:00Z","last_started":"0001-01-01T00:00:00Z","last_ended":"0001-01-01T00:00:00Z","next_schedule":"0001-01-01T00:00:00Z","upstream":"rsync://x/old/","size":"","error_msg":""}"#),
                status(r#"{"name":"","worker":"w1","is_master":false,"status":"none","last_update":"0001-01-01T00:00:00Z","last_started":"0001-01-01T00:00:00Z","last_ended":"0001-01-01T00:00:00Z","next_schedule":"0001-01-01T00:00:00Z","upstream":"","size":"","error_msg":""}"#),
            ],
        }
    }

    #[test]
    fn imports_once_keeps_what_is_newer_and_skips_bad_names() {
        let mut model = Model::default();
        let mut changes = Changes::default();
        let lines = apply(&mut model, &source(), &mut changes);
        let outcomes: Vec<&Outcome> = lines.iter().map(|line| &line.outcome).collect();
        assert!(matches!(
            outcomes[..],
            [Outcome::Imported, Outcome::Imported, Outcome::Skipped(_)]
        ));
        assert_eq!(summary(&lines), "2 imported, 0 kept, 1 skipped");
        assert_eq!(
            lines[0].to_string(),
            "imported w1/debian: success, last success 2026-11-30 07:00:00 +0800"
        );
        let key = (
            MirrorName::new("debian").unwrap(),
            WorkerId::new("w1").unwrap(),
        );
        let debian = &model.jobs[&key];
        assert_eq!(debian.size, "1.2T");
        assert_eq!(
            debian.last_update.rfc3339_nano(),
            "2026-11-30T07:00:00.123456789+08:00"
        );
        let old = &model.jobs[&(
            MirrorName::new("old").unwrap(),
            WorkerId::new("w1").unwrap(),
        )];
        assert_eq!(
            old.hold,
            Some(Hold::Disabled),
            "the operator's disable is kept"
        );
        assert_eq!(old.size, UNKNOWN_SIZE);
        assert_eq!(
            model.workers[&WorkerId::new("w1").unwrap()].version,
            "imported from tunasync"
        );
        assert_eq!(changes.jobs.len(), 2);

        // Again: nothing is newer.
        let mut again = Changes::default();
        let lines = apply(&mut model, &source(), &mut again);
        assert_eq!(summary(&lines), "0 imported, 2 kept, 1 skipped");
        assert!(again.jobs.is_empty() && again.workers.is_empty());

        // A record that moved on here is kept; an older one here is replaced.
        model.jobs.get_mut(&key).unwrap().last_update = GoTime::now_local();
        let mut changes = Changes::default();
        assert_eq!(
            apply(&mut model, &source(), &mut changes)[0].outcome,
            Outcome::Kept
        );
        model.jobs.get_mut(&key).unwrap().last_update =
            GoTime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        model.jobs.get_mut(&key).unwrap().last_started = GoTime::ZERO;
        model.jobs.get_mut(&key).unwrap().last_ended = GoTime::ZERO;
        assert_eq!(
            apply(&mut model, &source(), &mut changes)[0].outcome,
            Outcome::Imported
        );
    }
}
