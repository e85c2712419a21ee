//! Commands to Go workers: `POST /cmd` for a worker registered over HTTP is relayed as
//! tunasync's manager relays it, a `WorkerCmd` POSTed to the URL the worker registered
//! (over HTTPS when the URL says so, trusting the configured CA only), bounded by
//! `[commands] timeout`.
//!
//! Unlike tunasync's manager, the worker's answer counts: a Go worker that refuses (404 for
//! an unknown mirror, 406 for a command it cannot take) is reported as a refusal with its
//! own text.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tunasync_shared::names::WorkerId;
use tunasync_shared::status::CmdVerb;

/// tunasync's `WorkerCmd`, the body a Go worker reads at `POST /`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerCmd {
    pub cmd: CmdVerb,
    pub mirror_id: String,
    pub args: Option<Vec<String>>,
    pub options: Option<BTreeMap<String, bool>>,
}

/// A Go worker's answer body: `{"msg": …}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WorkerAnswer {
    msg: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot make the HTTP client for Go workers")]
    Client(#[source] crate::https_client::ClientError),
    /// tunasync's text when the worker cannot be reached.
    #[error("post command to worker {worker}({url}) fail: {reason}")]
    Unreachable {
        worker: WorkerId,
        url: String,
        reason: String,
        /// No connection could be made (nothing listens there).
        connect: bool,
    },
    #[error("worker {worker}({url}) did not answer within {timeout:?}")]
    Timeout {
        worker: WorkerId,
        url: String,
        timeout: Duration,
    },
    #[error("worker {worker} refused the command: {reason}")]
    Refused { worker: WorkerId, reason: String },
}

/// The HTTP client that reaches Go workers.
#[derive(Debug, Clone)]
pub struct Relay {
    client: reqwest::Client,
    timeout: Duration,
}

impl Relay {
    /// A client bounded by `timeout`, trusting only `ca_cert` for HTTPS when given.
    pub fn new(ca_cert: Option<&Path>, timeout: Duration) -> Result<Relay, RelayError> {
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("tunasync-manager/", env!("CARGO_PKG_VERSION")));
        Ok(Relay {
            client: crate::https_client::build(builder, ca_cert).map_err(RelayError::Client)?,
            timeout,
        })
    }

    /// POSTs `cmd` to the worker at `url`; Ok once the worker took it (a 2xx answer).
    pub async fn send(
        &self,
        worker: &WorkerId,
        url: &str,
        cmd: &WorkerCmd,
    ) -> Result<(), RelayError> {
        let failed = |err: reqwest::Error| {
            if err.is_timeout() && !err.is_connect() {
                RelayError::Timeout {
                    worker: worker.clone(),
                    url: url.to_owned(),
                    timeout: self.timeout,
                }
            } else {
                RelayError::Unreachable {
                    worker: worker.clone(),
                    url: url.to_owned(),
                    reason: tunasync_shared::error_chain(&err),
                    connect: err.is_connect(),
                }
            }
        };
        let response = self
            .client
            .post(url)
            .json(cmd)
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.map_err(failed)?;
        let answer: WorkerAnswer = serde_json::from_str(&text).unwrap_or_default();
        let reason = if answer.msg.is_empty() {
            format!("HTTP {status}")
        } else {
            answer.msg
        };
        Err(RelayError::Refused {
            worker: worker.clone(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_tunasyncs_worker_cmd() {
        let cmd = WorkerCmd {
            cmd: CmdVerb::Start,
            mirror_id: "debian".into(),
            args: None,
            options: Some([("force".to_owned(), true)].into()),
        };
        assert_eq!(
            serde_json::to_string(&cmd).unwrap(),
            r#"{"cmd":"start","mirror_id":"debian","args":null,"options":{"force":true}}"#
        );
    }
}
