//! The bridge for tunasync's Go workers during a rolling migration (`[legacy] go_workers`).
//!
//! A Go worker of tunasync v0.10.0 talks HTTP to its manager: it registers (`POST
//! /workers`), reads its jobs' state at start-up (`GET /workers/{id}/jobs`, served by the
//! API as for tunasynctl), then posts each status change (`POST /workers/{id}/jobs/{job}`)
//! and after each its whole queue (`POST /workers/{id}/schedules`). With the bridge on, these
//! routes are served too; each post is handed to the state actor, which applies it as the
//! event a broker worker would have sent ([`crate::model::legacy`]) and commits it before
//! the answer. Off (the default), the routes do not exist (404).
//!
//! The Go worker sends no credential, so the posts are taken only from `networks` (by
//! default `[auth] trusted_networks`, the trust tunasync's Go tunasynctl gets); any other
//! peer gets 403, logged once per peer.
//!
//! Unlike tunasync's manager, a post that cannot be read is answered 400 and changes
//! nothing (tunasync's handlers go on after their 400), and a post's times are the
//! manager's (the Go worker sends Go's zero time).

pub mod handover;
pub mod relay;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use tracing::{debug, warn};
use tunasync_shared::broker::Transport;
use tunasync_shared::compat::MirrorSchedules;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::event::ScheduledRun;

use crate::api::{Api, Body, mirror_name, ok, state_error};
use crate::api_error::ApiError;
use crate::cidr::Cidr;
use crate::model::legacy::{LegacyPost, LegacyRefusal, LegacyReport};
use crate::once_log::OnceLog;

/// `[legacy]` in manager.conf.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LegacySection {
    /// Serve the routes tunasync's Go workers post to.
    pub go_workers: bool,
    /// Where Go workers may post from; `[auth] trusted_networks` when absent.
    #[serde(deserialize_with = "crate::config::some_cidrs")]
    pub networks: Option<Vec<Cidr>>,
}

/// The bridge as configured: on, with the networks Go workers may post from.
#[derive(Debug, Clone)]
pub struct Bridge {
    pub networks: Vec<Cidr>,
    /// The CA that Go workers' HTTPS certificates chain to (tunasync's `[files] ca_cert`,
    /// else `[broker] ca_cert`); without one, a worker's https:// URL cannot be reached.
    pub ca_cert: Option<PathBuf>,
}

impl LegacySection {
    /// The bridge, if it is on (`trusted` is `[auth] trusted_networks`).
    pub fn bridge(&self, trusted: &[Cidr], ca_cert: Option<PathBuf>) -> Option<Bridge> {
        self.go_workers.then(|| Bridge {
            networks: self.networks.clone().unwrap_or_else(|| trusted.to_vec()),
            ca_cert,
        })
    }
}

/// `POST /cmd` for a Go worker: relayed to its URL, answered as for a broker worker.
pub async fn relay_command<T>(
    api: &Api<T>,
    worker: &WorkerId,
    url: &str,
    cmd: &tunasync_shared::compat::ClientCmd,
) -> Result<Response, ApiError> {
    let Some(relay) = &api.relay else {
        return Err(ApiError::BadGateway(format!(
            "worker {worker} is a Go worker registered over HTTP, and [legacy] go_workers is off"
        )));
    };
    let body = relay::WorkerCmd {
        cmd: cmd.cmd,
        mirror_id: cmd.mirror_id.clone(),
        args: cmd.args.clone(),
        options: cmd.options.clone(),
    };
    match relay.send(worker, url, &body).await {
        Ok(()) => Ok(crate::api::message(format!(
            "successfully send command to worker {worker}"
        ))),
        Err(err @ relay::RelayError::Refused { .. }) => Err(ApiError::BadRequest(err.to_string())),
        Err(err @ relay::RelayError::Timeout { .. }) => {
            Err(ApiError::GatewayTimeout(err.to_string()))
        }
        Err(err) => Err(ApiError::BadGateway(err.to_string())),
    }
}

/// Who may post: a peer in the bridge's networks. Refusals are logged once per peer.
struct Gate {
    networks: Vec<Cidr>,
    refused: OnceLog<std::net::IpAddr>,
}

async fn require_network(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let allowed =
        peer.is_some_and(|peer| gate.networks.iter().any(|network| network.contains(peer)));
    if allowed {
        return next.run(request).await;
    }
    let shown = peer.map_or_else(|| "unknown".to_owned(), |peer| peer.to_string());
    if peer.is_some_and(|peer| gate.refused.first(peer)) {
        warn!(peer = %shown, path = %request.uri().path(), "a Go worker's post from outside [legacy] networks refused (logged once per peer)");
    } else {
        debug!(peer = %shown, "a Go worker's post refused");
    }
    ApiError::Forbidden(format!(
        "{shown} may not post as a worker: it is not in [legacy] networks"
    ))
    .into_response()
}

/// The Go worker's routes (`GET /workers/{id}/jobs` is the API's).
pub fn router<T: Transport>(api: Arc<Api<T>>, bridge: &Bridge) -> Router {
    let gate = Arc::new(Gate {
        networks: bridge.networks.clone(),
        refused: OnceLog::default(),
    });
    Router::new()
        .route("/workers", post(register::<T>))
        .route("/workers/{id}/jobs/{job}", post(status::<T>))
        .route("/workers/{id}/schedules", post(schedules::<T>))
        .route_layer(middleware::from_fn_with_state(gate, require_network))
        .with_state(api)
}

/// `POST /workers`: tunasync's `WorkerStatus` (only `id` and `url` are read).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Registration {
    id: String,
    url: String,
}

/// `POST /workers/{id}/jobs/{job}`: tunasync's `MirrorStatus`; its times are not read.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatusPost {
    name: String,
    is_master: bool,
    status: SyncStatus,
    upstream: String,
    size: String,
    error_msg: String,
}

fn worker_id(id: &str) -> Result<WorkerId, ApiError> {
    WorkerId::new(id).map_err(|err| ApiError::BadRequest(format!("invalid workerID {id}: {err}")))
}

/// Hands a post to the state actor; the refusal as tunasync answers it.
async fn apply<T>(api: &Api<T>, post: LegacyPost, context: &str) -> Result<(), ApiError> {
    match api.state.legacy(post).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(refusal @ LegacyRefusal::Unregistered(_))) => {
            Err(ApiError::BadRequest(refusal.to_string()))
        }
        Ok(Err(refusal @ LegacyRefusal::ClaimedOverBroker(_))) => {
            Err(ApiError::Conflict(refusal.to_string()))
        }
        Err(err) => Err(state_error(context, &err)),
    }
}

async fn register<T: Transport>(
    State(api): State<Arc<Api<T>>>,
    Body(body): Body<Registration>,
) -> Result<Response, ApiError> {
    if body.id.is_empty() {
        return Err(ApiError::BadRequest(
            "failed to register worker: key required".to_owned(),
        ));
    }
    let worker = worker_id(&body.id)?;
    let scheme_ok = ["http://", "https://"]
        .iter()
        .any(|scheme| body.url.starts_with(scheme) && body.url.len() > scheme.len());
    if !scheme_ok {
        return Err(ApiError::BadRequest(format!(
            "failed to register worker: url {:?} is not an http:// or https:// URL",
            body.url
        )));
    }
    let post = LegacyPost::Register {
        worker: worker.clone(),
        url: body.url,
    };
    apply(&api, post, "failed to register worker").await?;
    let status = api
        .view
        .workers()
        .into_iter()
        .find(|status| status.id == worker.as_str())
        .ok_or_else(|| ApiError::BadRequest(format!("invalid workerID {worker}")))?;
    Ok(ok(&status))
}

async fn status<T: Transport>(
    State(api): State<Arc<Api<T>>>,
    Path((id, _job)): Path<(String, String)>,
    Body(body): Body<StatusPost>,
) -> Result<Response, ApiError> {
    let worker = worker_id(&id)?;
    if body.name.is_empty() {
        return Err(ApiError::BadRequest(
            "mirror Name should not be empty".to_owned(),
        ));
    }
    // As tunasync, the body's name wins over the path's.
    let mirror = mirror_name(&body.name)?;
    let report = LegacyReport {
        mirror: mirror.clone(),
        status: body.status,
        is_master: body.is_master,
        upstream: body.upstream,
        size: body.size,
        error_msg: body.error_msg,
    };
    let context = format!("failed to update job {mirror} of worker {worker}");
    let post = LegacyPost::Status {
        worker: worker.clone(),
        report,
    };
    apply(&api, post, &context).await?;
    let stored = api
        .view
        .job(&worker, &mirror)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid workerID {worker}")))?;
    Ok(ok(&stored))
}

async fn schedules<T: Transport>(
    State(api): State<Arc<Api<T>>>,
    Path(id): Path<String>,
    Body(body): Body<MirrorSchedules>,
) -> Result<Response, ApiError> {
    let worker = worker_id(&id)?;
    let entries = body.schedules.unwrap_or_default();
    if entries.iter().any(|entry| entry.name.is_empty()) {
        return Err(ApiError::BadRequest(
            "mirror Name should not be empty".to_owned(),
        ));
    }
    let schedules: Vec<ScheduledRun> = entries
        .into_iter()
        .filter_map(|entry| match MirrorName::new(&entry.name) {
            Ok(mirror) => Some(ScheduledRun {
                mirror,
                next_schedule: entry.next_schedule,
            }),
            Err(err) => {
                debug!(%worker, name = %entry.name, error = %err, "schedule of a mirror name we cannot store skipped");
                None
            }
        })
        .collect();
    let context = format!("failed to update schedules of worker {worker}");
    apply(&api, LegacyPost::Schedules { worker, schedules }, &context).await?;
    Ok(ok(&serde_json::json!({})))
}
