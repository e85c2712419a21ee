//! The HTTP API: tunasync's routes, keys, codes and bodies, plus health, history and auth.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tunasync_shared::broker::Transport;
use tunasync_shared::compat::{
    ClientCmd, ErrorBody, InfoBody, MirrorStatus, SizeMsg, WebMirrorStatus, WorkerStatus,
    from_json_ignoring_key_case,
};
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::{CmdVerb, SyncStatus};
use tunasync_shared::wire::command::{Command, JobTarget, Ping, Reload, StartJob};
use tunasync_shared::wire::event::CmdOutcome;

use crate::api_error::{ApiError, JSON, json};
use crate::auth::{self, Auth};
use crate::dispatch::{DispatchError, Dispatcher};
use crate::records::Hold;
use crate::state::{Mutation, StateError, StateHandle};
use crate::view::View;

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// What the handlers share.
pub struct Api<T> {
    pub view: Arc<View>,
    pub state: StateHandle,
    pub dispatcher: Arc<Dispatcher<T>>,
    pub logs: Arc<crate::log_requests::LogRequests<T>>,
    pub transport: T,
    /// What `/metrics` renders.
    pub metrics: crate::metrics::SharedRegistry,
    /// What `GET /alerts` shows.
    pub alerts: crate::alerts::AlertsHandle,
    /// How commands reach Go workers (`[legacy] go_workers`; `None` when off).
    pub relay: Option<crate::legacy::relay::Relay>,
}

type Shared<T> = State<Arc<Api<T>>>;

/// The router: reads are public, changes (and job logs, unless `public_logs`) go through
/// [`auth::require`].
pub fn router<T: Transport>(api: Arc<Api<T>>, auth: Arc<Auth>, public_logs: bool) -> Router {
    let log = get(crate::api_logs::job_log::<T>);
    let mut changes = Router::new()
        .route("/cmd", post(command::<T>))
        .route("/workers/{id}", delete(delete_worker::<T>))
        .route("/jobs/disabled", delete(flush_disabled::<T>))
        .route("/workers/{id}/jobs/{job}/size", post(set_size::<T>))
        .route(
            "/maintenance",
            post(crate::api_maintenance::turn_on::<T>)
                .delete(crate::api_maintenance::turn_off::<T>),
        );
    let mut reads = Router::new();
    if public_logs {
        reads = reads.route("/jobs/{worker}/{mirror}/log", log);
    } else {
        changes = changes.route("/jobs/{worker}/{mirror}/log", log);
    }
    let changes = changes.route_layer(middleware::from_fn_with_state(auth.clone(), auth::require));
    // The status page (`page`) shares the listener.
    reads
        .route("/ping", get(ping))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<T>))
        .route("/metrics", get(metrics::<T>))
        .route("/jobs", get(jobs::<T>))
        .route("/workers", get(workers::<T>))
        .route("/workers/{id}/jobs", get(worker_jobs::<T>))
        .route("/jobs/{worker}/{mirror}/history", get(history::<T>))
        .route("/maintenance", get(crate::api_maintenance::list::<T>))
        .route("/alerts", get(alerts::<T>))
        .route("/openapi.json", get(crate::openapi::document))
        .merge(changes)
        .with_state(api.clone())
        .merge(crate::page::router(api, auth, public_logs))
        .fallback(not_found)
}

/// `GET /alerts`: the open incidents and what is undelivered, per sink.
#[utoipa::path(get, path = "/alerts", tag = "status",
    responses((status = 200, description = "The open incidents, and what each sink has not delivered yet.", body = crate::alerts::AlertsStatus)))]
async fn alerts<T: Transport>(State(api): Shared<T>) -> Response {
    ok(&*api.alerts.status())
}

pub(crate) fn message(text: impl Into<String>) -> Response {
    json(
        StatusCode::OK,
        &InfoBody {
            message: text.into(),
        },
    )
}

pub(crate) fn ok<T: Serialize>(body: &T) -> Response {
    json(StatusCode::OK, body)
}

pub(crate) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain")],
        "404 page not found",
    )
        .into_response()
}

#[utoipa::path(get, path = "/ping", tag = "health",
    responses((status = 200, description = "`pong`: the manager answers.", body = InfoBody)))]
async fn ping() -> Response {
    message("pong")
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "`alive`: the process serves requests.", body = InfoBody)))]
async fn healthz() -> Response {
    message("alive")
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "`ready`: the store commits and the broker is connected.", body = InfoBody),
        (status = 503, description = "Why the manager is not ready.", body = ErrorBody),
    ))]
async fn readyz<T: Transport>(State(api): Shared<T>) -> Response {
    if !api.state.is_running() {
        return ApiError::Unavailable("the store is not available".to_owned()).into_response();
    }
    if let Some(problem) = api.view.store_problem() {
        return ApiError::Unavailable(format!("the store cannot commit: {problem}"))
            .into_response();
    }
    if !api.transport.is_connected() {
        return ApiError::Unavailable("not connected to the broker".to_owned()).into_response();
    }
    if let Some(reason) = api.transport.blocked() {
        return ApiError::Unavailable(format!(
            "the broker blocks publishing ({reason}): commands and welcomes wait"
        ))
        .into_response();
    }
    message("ready")
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus metrics in the OpenMetrics text format.",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)))]
async fn metrics<T: Transport>(State(api): Shared<T>, headers: HeaderMap) -> Response {
    // Thousands of jobs make a long text (14 MB at 20,000 jobs): rendered off the async
    // runtime, and for a scraper that takes gzip (Prometheus does) compressed as it is
    // written, at the fastest level, which shrinks these repetitive lines some twenty-fold.
    let registry = api.metrics.clone();
    let gzip = accepts_gzip(&headers);
    let body = tokio::task::spawn_blocking(move || {
        if gzip {
            Bytes::from(crate::metrics::render_gzip(&registry))
        } else {
            Bytes::from(crate::metrics::render(&registry))
        }
    })
    .await
    .unwrap_or_default();
    encoded(crate::metrics::CONTENT_TYPE, gzip, None, body.into())
}

/// Whether the client accepts a gzip-encoded body.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused =
                parts.any(|param| matches!(param.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// `GET /jobs`: tunasync.json, gzip-compressed for clients that accept it.
#[utoipa::path(get, path = "/jobs", tag = "status",
    params(("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: 304 while the list is unchanged.")),
    responses(
        (status = 200, description = "Every job, as tunasync's `GET /jobs` (tunasync.json); gzip-encoded when the request accepts gzip.",
            body = [WebMirrorStatus], headers(("ETag" = String, description = "Changes whenever the list does."))),
        (status = 304, description = "The list has not changed since the `If-None-Match` tag."),
    ))]
async fn jobs<T: Transport>(State(api): Shared<T>, headers: HeaderMap) -> Response {
    let gzip = accepts_gzip(&headers);
    // A client that has the current body gets 304 without anything being rendered.
    if let Some(tag) = api.view.jobs_etag()
        && tag.matches_request(&headers)
    {
        return not_modified(tag);
    }
    let (body, tag) = match api.view.cached_jobs(gzip) {
        Some(cached) => cached,
        None => {
            // The first read after a change renders (and compresses) every job: not on the
            // async runtime.
            let view = api.view.clone();
            match tokio::task::spawn_blocking(move || view.jobs(gzip)).await {
                Ok(rendered) => rendered,
                Err(err) => {
                    return ApiError::internal("cannot render the job list", &err).into_response();
                }
            }
        }
    };
    if tag.matches_request(&headers) {
        return not_modified(tag);
    }
    let etag = tag.header();
    encoded(JSON, gzip, Some(&etag), body.into_body())
}

/// A 200 of `body`, marked gzip-encoded when it is, with its `ETag` if it has one; it varies
/// with `Accept-Encoding` either way.
fn encoded(
    content_type: &'static str,
    gzip: bool,
    etag: Option<&str>,
    body: axum::body::Body,
) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Some(etag) = etag.and_then(|etag| HeaderValue::from_str(etag).ok()) {
        headers.insert(header::ETAG, etag);
    }
    response
}

/// 304 for a body the client has (`tag`).
fn not_modified(tag: crate::etag::ETag) -> Response {
    (
        StatusCode::NOT_MODIFIED,
        [
            (header::ETAG, tag.header()),
            (header::VARY, "Accept-Encoding".to_owned()),
        ],
    )
        .into_response()
}

#[utoipa::path(get, path = "/workers", tag = "status",
    responses((status = 200, description = "Every worker, and every pool (`\"pool\": true`).", body = [WorkerStatus])))]
async fn workers<T: Transport>(State(api): Shared<T>) -> Response {
    ok(&api.view.workers())
}

/// A worker id from the path that must name a known worker (tunasync's `invalid workerID`).
pub(crate) fn known_worker<T>(api: &Api<T>, id: &str) -> Result<WorkerId, ApiError> {
    WorkerId::new(id)
        .ok()
        .filter(|worker| api.view.has_worker(worker))
        .ok_or_else(|| ApiError::BadRequest(format!("invalid workerID {id}")))
}

/// A state change that did not happen: 503 while the store cannot commit, else 500.
pub(crate) fn state_error(context: impl Into<String>, err: &StateError) -> ApiError {
    match err {
        StateError::Unavailable(_) => ApiError::Unavailable(format!("{}: {err}", context.into())),
        _ => ApiError::internal(context, err),
    }
}

pub(crate) fn mirror_name(name: &str) -> Result<MirrorName, ApiError> {
    MirrorName::new(name).map_err(|err| ApiError::BadRequest(err.to_string()))
}

#[utoipa::path(get, path = "/workers/{id}/jobs", tag = "status",
    params(("id" = String, Path, description = "A worker's (or pool's) id.", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "worker1")),
    responses(
        (status = 200, description = "The worker's jobs.", body = [MirrorStatus]),
        (status = 400, description = "No such worker.", body = ErrorBody),
    ))]
async fn worker_jobs<T: Transport>(
    State(api): Shared<T>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let worker = known_worker(&api, &id)?;
    let jobs = api
        .view
        .worker_jobs(&worker)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid workerID {id}")))?;
    Ok(ok(&jobs))
}

#[utoipa::path(delete, path = "/workers/{id}", tag = "changes", security(("token" = [])),
    params(("id" = String, Path, description = "A worker's id.", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "worker1")),
    responses(
        (status = 200, description = "`deleted`: the worker and its jobs are gone.", body = InfoBody),
        (status = 400, description = "No such worker.", body = ErrorBody),
        (status = 401, description = "No valid token (or client certificate, or trusted network).", body = ErrorBody),
        (status = 503, description = "The store cannot commit.", body = ErrorBody),
    ))]
async fn delete_worker<T: Transport>(
    State(api): Shared<T>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let worker = known_worker(&api, &id)?;
    let found = api
        .state
        .mutate(Mutation::RemoveWorker(worker))
        .await
        .map_err(|err| state_error("failed to delete worker", &err))?;
    if !found {
        return Err(ApiError::BadRequest(format!("invalid workerID {id}")));
    }
    Ok(message("deleted"))
}

#[utoipa::path(delete, path = "/jobs/disabled", tag = "changes", security(("token" = [])),
    responses(
        (status = 200, description = "`flushed`: jobs in `disabled` are removed.", body = InfoBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 503, description = "The store cannot commit.", body = ErrorBody),
    ))]
async fn flush_disabled<T: Transport>(State(api): Shared<T>) -> Result<Response, ApiError> {
    api.state
        .mutate(Mutation::FlushDisabled)
        .await
        .map_err(|err| state_error("failed to flush disabled jobs", &err))?;
    Ok(message("flushed"))
}

/// A JSON body, decoded the Go way (keys without regard to case), with JSON errors.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        decode_body(&bytes).map(Body)
    }
}

/// A request body of at most [`MAX_BODY`] bytes, with a JSON error past it.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        axum::body::to_bytes(request.into_body(), MAX_BODY)
            .await
            .map(RawBody)
            .map_err(|_| ApiError::TooLarge(MAX_BODY))
    }
}

/// A query string, decoded with JSON errors (axum's own rejection is plain text).
pub struct QueryArgs<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(query)| QueryArgs(query))
            .map_err(|err| ApiError::BadRequest(format!("invalid query: {}", err.body_text())))
    }
}

pub(crate) fn decode_body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    from_json_ignoring_key_case(bytes)
        .map_err(|err| ApiError::BadRequest(format!("invalid JSON body: {err}")))
}

/// `POST /workers/{id}/jobs/{job}/size`: as tunasync, the body's name wins over the path's.
#[utoipa::path(post, path = "/workers/{id}/jobs/{job}/size", tag = "changes", security(("token" = [])),
    params(("id" = String, Path, description = "A worker's id.", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "worker1"),
        ("job" = String, Path, description = "A mirror's name (the body's `name` is the one used).", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "debian")),
    request_body = SizeMsg,
    responses(
        (status = 200, description = "The job, with its new size.", body = MirrorStatus),
        (status = 400, description = "No such worker, or a bad body.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 404, description = "The worker has no such mirror.", body = ErrorBody),
        (status = 413, description = "The body is longer than 64 KiB.", body = ErrorBody),
        (status = 503, description = "The store cannot commit.", body = ErrorBody),
    ))]
async fn set_size<T: Transport>(
    State(api): Shared<T>,
    Path((id, _job)): Path<(String, String)>,
    Body(body): Body<SizeMsg>,
) -> Result<Response, ApiError> {
    let worker = known_worker(&api, &id)?;
    let mirror = mirror_name(&body.name)?;
    if body.size.trim().is_empty() {
        return Err(ApiError::BadRequest("size should not be empty".to_owned()));
    }
    let key = (mirror.clone(), worker.clone());
    let found = api
        .state
        .mutate(Mutation::SetSize {
            key,
            size: body.size.clone(),
        })
        .await
        .map_err(|err| state_error(format!("failed to update size of {mirror}"), &err))?;
    if !found {
        return Err(ApiError::NotFound(format!(
            "no mirror '{mirror}' exists in worker '{worker}'"
        )));
    }
    let status = api.view.job(&worker, &mirror).ok_or_else(|| {
        ApiError::NotFound(format!("no mirror '{mirror}' exists in worker '{worker}'"))
    })?;
    Ok(ok(&status))
}

/// `POST /cmd`: relay a command to a worker and report whether it took it.
#[utoipa::path(post, path = "/cmd", tag = "changes", security(("token" = [])),
    request_body(content = ClientCmd, description = "tunasynctl's command. For a pool (`worker_id` naming one), the manager applies it to the pooled mirror."),
    responses(
        (status = 200, description = "The worker took the command (`waits`: it runs when what it waits for clears).", body = CommandAnswer),
        (status = 400, description = "No such worker, a bad body, or the worker refused.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 404, description = "The pool has no such mirror.", body = ErrorBody),
        (status = 413, description = "The body is longer than 64 KiB.", body = ErrorBody),
        (status = 502, description = "The command could not be sent.", body = ErrorBody),
        (status = 503, description = "Too many commands wait for answers, or the store cannot commit.", body = ErrorBody),
        (status = 504, description = "The worker did not answer in time.", body = ErrorBody),
    ))]
async fn command<T: Transport>(
    State(api): Shared<T>,
    Body(cmd): Body<ClientCmd>,
) -> Result<Response, ApiError> {
    if cmd.worker_id.is_empty() {
        return Err(ApiError::BadRequest(
            "worker_id should not be empty".to_owned(),
        ));
    }
    let worker = WorkerId::new(&cmd.worker_id)
        .ok()
        .filter(|worker| api.view.has_worker(worker))
        .ok_or_else(|| {
            ApiError::BadRequest(format!("worker {} is not registered yet", cmd.worker_id))
        })?;
    let mirror = if cmd.mirror_id.is_empty() {
        None
    } else {
        Some(mirror_name(&cmd.mirror_id)?)
    };
    if api.view.is_pool(&worker) {
        return pool_command(&api, &worker, cmd.cmd, mirror, cmd.force()).await;
    }
    let args = cmd.args.clone().unwrap_or_default();
    let target = |verb: CmdVerb| {
        mirror
            .clone()
            .map(|mirror| JobTarget {
                mirror,
                args: args.clone(),
            })
            .ok_or_else(|| {
                ApiError::BadRequest(format!("mirror_id should not be empty for {verb}"))
            })
    };
    let command = match cmd.cmd {
        CmdVerb::Start => {
            let target = target(CmdVerb::Start)?;
            Command::Start(StartJob {
                mirror: target.mirror,
                args: target.args,
                force: cmd.force(),
            })
        }
        CmdVerb::Stop => Command::Stop(target(CmdVerb::Stop)?),
        CmdVerb::Disable => Command::Disable(target(CmdVerb::Disable)?),
        CmdVerb::Restart => Command::Restart(target(CmdVerb::Restart)?),
        CmdVerb::Ping => Command::Ping(Ping {
            mirror: mirror.clone(),
        }),
        CmdVerb::Reload => {
            if mirror.is_some() {
                return Err(ApiError::BadRequest(
                    "reload applies to a whole worker: leave mirror_id empty".to_owned(),
                ));
            }
            Command::Reload(Reload {})
        }
    };
    // As tunasync's manager: stop and disable are recorded before the worker is told; the
    // hold lasts until a start or restart.
    if let Some(mirror) = &mirror {
        let key = (mirror.clone(), worker.clone());
        let recorded = match cmd.cmd {
            CmdVerb::Stop => Some(Mutation::Hold {
                key,
                hold: Hold::Paused,
            }),
            CmdVerb::Disable => Some(Mutation::Hold {
                key,
                hold: Hold::Disabled,
            }),
            CmdVerb::Start | CmdVerb::Restart => Some(Mutation::Release { key }),
            CmdVerb::Ping | CmdVerb::Reload => None,
        };
        if let Some(mutation) = recorded {
            api.state
                .mutate(mutation)
                .await
                .map_err(|err| state_error("failed to record the job status", &err))?;
        }
    }
    if let Some(url) = api.view.legacy_url(&worker) {
        return crate::legacy::relay_command(&api, &worker, &url, &cmd).await;
    }
    match api.dispatcher.send(&worker, command).await {
        Ok(CmdOutcome::Accepted) => Ok(message(format!(
            "successfully send command to worker {worker}"
        ))),
        Ok(CmdOutcome::Refused { reason }) => Err(ApiError::BadRequest(format!(
            "worker {worker} refused the command: {reason}"
        ))),
        Ok(CmdOutcome::Deferred { reason }) => Ok(ok(&CommandAnswer {
            message: format!("successfully send command to worker {worker}"),
            waits: Some(reason),
        })),
        Err(err @ DispatchError::Timeout { .. }) => Err(ApiError::GatewayTimeout(err.to_string())),
        Err(err @ DispatchError::Busy) => Err(ApiError::Unavailable(err.to_string())),
        Err(err) => Err(ApiError::BadGateway(tunasync_shared::error_chain(&err))),
    }
}

/// `POST /cmd` addressed to a pool (`-w POOL`): the manager schedules pooled mirrors, so it
/// applies the command itself, and tells the member running the mirror to stop it.
async fn pool_command<T: Transport>(
    api: &Api<T>,
    pool_id: &WorkerId,
    verb: CmdVerb,
    mirror: Option<MirrorName>,
    force: bool,
) -> Result<Response, ApiError> {
    let sent = || message(format!("successfully send command to worker {pool_id}"));
    let mirror = match (verb, mirror) {
        (CmdVerb::Ping, _) => return Ok(sent()),
        (CmdVerb::Reload, _) => {
            return Err(ApiError::BadRequest(format!(
                "{pool_id} is a pool: reload its members one by one"
            )));
        }
        (_, None) => {
            return Err(ApiError::BadRequest(format!(
                "mirror_id should not be empty for {verb}"
            )));
        }
        (_, Some(mirror)) => mirror,
    };
    let pool = tunasync_shared::names::PoolName::new(pool_id.as_str())
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    let key = (pool.clone(), mirror.clone());
    let shown = (mirror.clone(), pool_id.clone());
    let member = api.view.pool_member(&pool, &mirror);
    let mutate = |mutation| async move {
        api.state
            .mutate(mutation)
            .await
            .map_err(|err| state_error("failed to record the command", &err))
    };
    let found = match verb {
        CmdVerb::Start => {
            mutate(Mutation::Release { key: shown }).await?;
            mutate(Mutation::PoolStart { key, force }).await?
        }
        CmdVerb::Stop | CmdVerb::Disable => {
            let hold = if verb == CmdVerb::Stop {
                Hold::Paused
            } else {
                Hold::Disabled
            };
            mutate(Mutation::Hold { key: shown, hold }).await?;
            mutate(Mutation::PoolInterrupt { key }).await?
        }
        CmdVerb::Restart => {
            mutate(Mutation::Release { key: shown }).await?;
            mutate(Mutation::PoolInterrupt { key: key.clone() }).await?;
            mutate(Mutation::PoolStart { key, force: false }).await?
        }
        CmdVerb::Ping | CmdVerb::Reload => true,
    };
    if !found {
        return Err(ApiError::NotFound(format!(
            "no mirror '{mirror}' exists in pool '{pool}'"
        )));
    }
    if let Some(member) = member
        && matches!(verb, CmdVerb::Stop | CmdVerb::Disable | CmdVerb::Restart)
    {
        let stop = Command::Stop(JobTarget {
            mirror: mirror.clone(),
            args: Vec::new(),
        });
        if let Err(err) = api.dispatcher.send(&member, stop).await {
            tracing::warn!(%member, %mirror, error = %tunasync_shared::error_chain(&err), "the member running a pooled mirror did not take the stop; it stops the run by itself once cut off");
        }
    }
    Ok(sent())
}

/// `POST /cmd`'s answer: tunasync's message, and what a deferred command waits for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommandAnswer {
    pub message: String,
    /// The command is taken but waits (e.g. for a free slot or a blackout's end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waits: Option<String>,
}

/// One recorded run, newest first in `GET /jobs/{worker}/{mirror}/history`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    #[schema(format = Uuid)]
    run_id: String,
    started: GoTime,
    ended: GoTime,
    result: SyncStatus,
    attempts: u32,
    size: String,
    error_msg: String,
    /// For a pooled mirror: the member that ran the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    worker: Option<String>,
    /// The upstream the run used.
    #[serde(skip_serializing_if = "String::is_empty")]
    upstream: String,
}

#[utoipa::path(get, path = "/jobs/{worker}/{mirror}/history", tag = "status",
    params(("worker" = String, Path, description = "A worker's (or pool's) id.", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "worker1"),
        ("mirror" = String, Path, description = "A mirror's name.", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "debian")),
    responses(
        (status = 200, description = "The job's recorded runs, newest first.", body = [HistoryEntry]),
        (status = 400, description = "No such worker, or a bad mirror name.", body = ErrorBody),
        (status = 404, description = "The worker has no such mirror.", body = ErrorBody),
    ))]
async fn history<T: Transport>(
    State(api): Shared<T>,
    Path((worker, mirror)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let worker = known_worker(&api, &worker)?;
    let mirror = mirror_name(&mirror)?;
    if api.view.job(&worker, &mirror).is_none() {
        return Err(ApiError::NotFound(format!(
            "no mirror '{mirror}' exists in worker '{worker}'"
        )));
    }
    let runs = api
        .state
        .history(worker, mirror)
        .await
        .map_err(|err| ApiError::internal("failed to read the history", &err))?;
    let entries: Vec<HistoryEntry> = runs
        .into_iter()
        .map(|run| HistoryEntry {
            run_id: run.run_id.to_string(),
            started: run.started,
            ended: run.ended,
            result: run.result,
            attempts: run.attempts,
            size: run.size,
            error_msg: run.error_msg,
            worker: run.member.map(|member| member.to_string()),
            upstream: run.upstream,
        })
        .collect();
    Ok(ok(&entries))
}
