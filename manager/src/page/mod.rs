//! The status page: `GET /` (every mirror, with filters and a search box) and
//! `GET /mirrors/{worker}/{mirror}` (one mirror: its facts, its runs, its log tail, followed
//! live while it runs). HTML rendered on the server from compile-time-checked templates
//! (askama, `manager/templates/`), usable without JavaScript; a small embedded script
//! (`manager/assets/page.js`) filters as one types, refreshes the page by asking again with
//! its `ETag`, and follows a running job's log over Server-Sent Events.
//!
//! A page's tag is made from the view's change counter, the minute (relative times age),
//! the address and whether the reader may read logs, so a 304 is answered before anything
//! is read or rendered. The unfiltered index is rendered once per change and minute, and
//! cached with its gzip.

mod assets;
pub mod rows;
mod tails;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tunasync_shared::broker::Transport;
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, PoolName, WorkerId};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::command::LogRequest;

use crate::api::{Api, QueryArgs, accepts_gzip};
use crate::auth::Auth;
use crate::etag::ETag;
use crate::records::RunRecord;
use crate::view::Presence;
use rows::{Filter, Notice, Row, When};

/// Lines of log a mirror's page shows.
const LOG_LINES: u32 = 200;
/// The longest a mirror's page waits for its worker's log.
const LOG_WAIT: Duration = Duration::from_secs(3);
/// Runs a mirror's page lists.
const RUNS_SHOWN: usize = 50;

pub struct Page<T> {
    api: Arc<Api<T>>,
    auth: Arc<Auth>,
    public_logs: bool,
    /// Tells this process's tags from an earlier one's (the change counter starts again).
    boot: u64,
    index: Mutex<Option<CachedIndex>>,
    /// Held while the unfiltered index is rendered, so readers that missed the cache wait
    /// for one render instead of each doing their own.
    rendering: Mutex<()>,
    /// Log tails shown lately (one worker answer serves every reader for a few seconds).
    tails: tails::LogTails,
}

/// The unfiltered index as rendered for one change and minute.
struct CachedIndex {
    key: (u64, i64),
    html: Bytes,
    gzip: Option<Bytes>,
}

pub fn router<T: Transport>(api: Arc<Api<T>>, auth: Arc<Auth>, public_logs: bool) -> Router {
    let page = Arc::new(Page {
        api,
        auth,
        public_logs,
        boot: rand::random(),
        index: Mutex::new(None),
        rendering: Mutex::new(()),
        tails: tails::LogTails::default(),
    });
    Router::new()
        .route("/", get(index::<T>))
        .route("/mirrors/{worker}/{mirror}", get(mirror::<T>))
        .route("/static/style.css", get(assets::style))
        .route("/static/page.js", get(assets::script))
        .with_state(page)
}

type Shared<T> = State<Arc<Page<T>>>;

impl<T> Page<T> {
    fn tag(&self, generation: u64, minute: i64, uri: &Uri, logs: bool) -> ETag {
        // The path and query only: over HTTP/2 the URI also carries scheme and authority.
        let address = uri.path_and_query().map_or("/", |address| address.as_str());
        let key = format!("{}:{generation}:{minute}:{address}:{logs}", self.boot);
        ETag::of(key.as_bytes())
    }

    fn cached_index(&self, key: (u64, i64), gzip: bool) -> Option<Bytes> {
        let cache = self
            .index
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let cached = cache.as_ref().filter(|cached| cached.key == key)?;
        if gzip {
            cached.gzip.clone()
        } else {
            Some(cached.html.clone())
        }
    }

    fn keep_index(&self, key: (u64, i64), html: &Bytes, gzip: Option<&Bytes>) {
        let mut cache = self
            .index
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match cache.as_mut() {
            Some(cached) if cached.key == key => {
                if cached.gzip.is_none() {
                    cached.gzip = gzip.cloned();
                }
            }
            _ => {
                *cache = Some(CachedIndex {
                    key,
                    html: html.clone(),
                    gzip: gzip.cloned(),
                });
            }
        }
    }
}

/// An error shown as a small HTML page.
struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    etag: &'a str,
    asset: &'a str,
    generated: String,
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let page = ErrorPage {
            etag: "",
            asset: assets::version(),
            generated: generated(GoTime::now_local()),
            title,
            message: &self.message,
        };
        let body = page.render().unwrap_or_else(|_| self.message.clone());
        let mut response = with_headers(Bytes::from(body), html_headers(None));
        *response.status_mut() = self.status;
        response
    }
}

fn html_headers(tag: Option<ETag>) -> Vec<(header::HeaderName, String)> {
    let mut headers = vec![
        (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
        (header::CACHE_CONTROL, "no-cache".to_owned()),
        (header::VARY, "Accept-Encoding".to_owned()),
    ];
    if let Some(tag) = tag {
        headers.push((header::ETAG, tag.header()));
    }
    headers
}

fn not_modified(tag: ETag) -> Response {
    (
        StatusCode::NOT_MODIFIED,
        [
            (header::ETAG, tag.header()),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
    )
        .into_response()
}

fn html(tag: ETag, body: Bytes, gzip: bool) -> Response {
    let mut headers = html_headers(Some(tag));
    if gzip {
        headers.push((header::CONTENT_ENCODING, "gzip".to_owned()));
    }
    with_headers(body, headers)
}

fn with_headers(body: Bytes, headers: Vec<(header::HeaderName, String)>) -> Response {
    let mut response = body.into_response();
    for (name, value) in headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn generated(now: GoTime) -> String {
    now.as_datetime()
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

struct Chip {
    name: &'static str,
    count: usize,
    href: String,
    on: bool,
}

struct Choice {
    value: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    etag: &'a str,
    asset: &'a str,
    generated: String,
    chips: Vec<Chip>,
    q: String,
    statuses: Vec<Choice>,
    workers: Vec<Choice>,
    rows: Vec<Row>,
    notices: Vec<Notice>,
}

/// `GET /[?status=S][&worker=W][&q=TEXT]`
#[utoipa::path(get, path = "/", tag = "page", params(Filter),
    responses(
        (status = 200, description = "The status page.", content_type = "text/html; charset=utf-8", body = String),
        (status = 304, description = "Unchanged since the `If-None-Match` tag."),
        (status = 400, description = "A status that does not exist.", content_type = "text/html; charset=utf-8", body = String),
    ))]
async fn index<T: Transport>(
    State(page): Shared<T>,
    uri: Uri,
    QueryArgs(filter): QueryArgs<Filter>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let checked = filter
        .check()
        .map_err(|err| PageError::new(StatusCode::BAD_REQUEST, err))?;
    let now = GoTime::now_local();
    let minute = now.unix().div_euclid(60);
    let tag = page.tag(page.api.view.generation(), minute, &uri, false);
    if tag.matches_request(&headers) {
        return Ok(not_modified(tag));
    }
    let gzip = accepts_gzip(&headers);
    let rendering = page.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let cached = || {
            let generation = rendering.api.view.generation();
            rendering
                .cached_index((generation, minute), gzip)
                .map(|body| (rendering.tag(generation, minute, &uri, false), body))
        };
        let _one_render = if checked.is_empty() {
            if let Some(found) = cached() {
                return Ok(found);
            }
            let lock = rendering
                .rendering
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            if let Some(found) = cached() {
                return Ok(found);
            }
            Some(lock)
        } else {
            None
        };
        let data = rendering.api.view.page();
        let tag = rendering.tag(data.generation, minute, &uri, false);
        let key = (data.generation, minute);
        let rows: Vec<Row> = data
            .jobs
            .iter()
            .filter(|(job, _)| checked.keeps(job))
            .map(|(job, presence)| Row::new(job, *presence, now))
            .collect();
        let chips = chips(&data.jobs, &checked);
        let status_name = checked.status.map(SyncStatus::as_str);
        let statuses = SyncStatus::ALL
            .into_iter()
            .map(|status| Choice {
                value: status.as_str().to_owned(),
                selected: Some(status.as_str()) == status_name,
            })
            .collect();
        let workers = data
            .workers
            .iter()
            .map(|(worker, _)| Choice {
                value: worker.to_string(),
                selected: checked.worker.as_deref() == Some(worker.as_str()),
            })
            .collect();
        let etag = tag.header();
        let page_html = IndexPage {
            etag: &etag,
            asset: assets::version(),
            generated: generated(now),
            chips,
            q: filter.q.clone().unwrap_or_default(),
            statuses,
            workers,
            rows,
            notices: data
                .maintenance
                .iter()
                .map(|(scope, window)| Notice::new(scope, window, now))
                .collect(),
        }
        .render()
        .map_err(|err| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
        let body = Bytes::from(page_html);
        let compressed = gzip.then(|| crate::view::compress(&body));
        if checked.is_empty() {
            rendering.keep_index(key, &body, compressed.as_ref());
        }
        Ok((tag, compressed.unwrap_or(body)))
    })
    .await
    .map_err(|_| {
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the page could not be rendered",
        )
    })?;
    let (tag, body) = rendered?;
    Ok(html(tag, body, gzip))
}

/// The status chips: all, then each status that has jobs; each a link that keeps the
/// other filters.
fn chips(
    jobs: &[(tunasync_shared::compat::MirrorStatus, Presence)],
    checked: &rows::Checked,
) -> Vec<Chip> {
    let others = |status: Option<&str>| {
        let mut parts = Vec::new();
        if let Some(status) = status {
            parts.push(format!("status={status}"));
        }
        if let Some(worker) = &checked.worker {
            parts.push(format!("worker={worker}"));
        }
        if parts.is_empty() {
            "/".to_owned()
        } else {
            format!("/?{}", parts.join("&"))
        }
    };
    let mut chips = vec![Chip {
        name: "all",
        count: jobs.len(),
        href: others(None),
        on: checked.status.is_none(),
    }];
    for status in SyncStatus::ALL {
        let count = jobs.iter().filter(|(job, _)| job.status == status).count();
        if count > 0 {
            chips.push(Chip {
                name: status.as_str(),
                count,
                href: others(Some(status.as_str())),
                on: checked.status == Some(status),
            });
        }
    }
    chips
}

struct RunRow {
    run_id: String,
    started: When,
    duration: String,
    result: &'static str,
    attempts: u32,
    size: String,
    error: String,
    log_link: String,
}

#[derive(Template)]
#[template(path = "mirror.html")]
struct MirrorPage<'a> {
    etag: &'a str,
    asset: &'a str,
    generated: String,
    row: Row,
    history: Vec<RunRow>,
    logs_readable: bool,
    log: Option<String>,
    log_note: String,
    follow: Option<String>,
}

/// `GET /mirrors/{worker}/{mirror}`
#[utoipa::path(get, path = "/mirrors/{worker}/{mirror}", tag = "page",
    params(("worker" = String, Path, description = "A worker's (or pool's) id.", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "worker1"),
        ("mirror" = String, Path, description = "A mirror's name.", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "debian")),
    responses(
        (status = 200, description = "The job's page: status, history and log.", content_type = "text/html; charset=utf-8", body = String),
        (status = 304, description = "Unchanged since the `If-None-Match` tag."),
        (status = 404, description = "No such job.", content_type = "text/html; charset=utf-8", body = String),
    ))]
async fn mirror<T: Transport>(
    State(page): Shared<T>,
    Path((worker, mirror)): Path<(String, String)>,
    parts: Parts,
) -> Result<Response, PageError> {
    let missing = || {
        PageError::new(
            StatusCode::NOT_FOUND,
            format!("no mirror '{mirror}' exists in worker '{worker}'"),
        )
    };
    let (Ok(owner), Ok(name)) = (
        WorkerId::new(worker.as_str()),
        MirrorName::new(mirror.as_str()),
    ) else {
        return Err(missing());
    };
    let readable = page.public_logs || page.auth.permits(&parts.extensions, &parts.headers).is_ok();
    let now = GoTime::now_local();
    let minute = now.unix().div_euclid(60);
    let generation = page.api.view.generation();
    let tag = page.tag(generation, minute, &parts.uri, readable);
    if tag.matches_request(&parts.headers) {
        return Ok(not_modified(tag));
    }
    let Some((job, presence)) = page.api.view.job_with_presence(&owner, &name) else {
        return Err(missing());
    };
    let runs = page
        .api
        .state
        .history(owner.clone(), name.clone())
        .await
        .map_err(|err| PageError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string()))?;
    let pool = matches!(presence, Presence::Pool { .. });
    // Whose log: the worker's own; for a pooled mirror, the member of the running (or
    // else the latest) run.
    let running_member = if pool {
        PoolName::new(owner.as_str())
            .ok()
            .and_then(|pool| page.api.view.pool_member(&pool, &name))
    } else {
        None
    };
    let (log_worker, log_run) = match (pool, job.status.is_running(), &running_member) {
        (false, _, _) => (Some(owner.clone()), None),
        (true, true, Some(member)) => (Some(member.clone()), None),
        (true, _, _) => match runs.first() {
            Some(run) => (run.member.clone(), Some(run.run_id)),
            None => (None, None),
        },
    };
    let history: Vec<RunRow> = runs
        .iter()
        .take(RUNS_SHOWN)
        .map(|run| run_row(run, &owner, &name, now))
        .collect();
    let (log, log_note) = if !readable {
        (
            None,
            "The log needs authentication: it is shown to trusted networks and clients with \
             a certificate, or to everyone when the manager's [auth] public_logs = true."
                .to_owned(),
        )
    } else if let Some(log_worker) = &log_worker {
        read_log(&page, log_worker, &name, log_run).await
    } else {
        (None, "No run has written a log yet.".to_owned())
    };
    let follow = match (&log, &log_worker) {
        (Some(_), Some(log_worker)) if job.status.is_running() && log_run.is_none() => Some(
            format!("/jobs/{log_worker}/{name}/log?follow=true&tail={LOG_LINES}"),
        ),
        _ => None,
    };
    // The data was read after `generation`: its tag is the counter's value now.
    let tag = page.tag(page.api.view.generation(), minute, &parts.uri, readable);
    let etag = tag.header();
    let body = MirrorPage {
        etag: &etag,
        asset: assets::version(),
        generated: generated(now),
        row: Row::new(&job, presence, now),
        history,
        logs_readable: readable && !pool,
        log,
        log_note,
        follow,
    }
    .render()
    .map_err(|err| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
    let gzip = accepts_gzip(&parts.headers);
    let body = Bytes::from(body);
    let body = if gzip {
        crate::view::compress(&body)
    } else {
        body
    };
    Ok(html(tag, body, gzip))
}

fn run_row(run: &RunRecord, owner: &WorkerId, name: &MirrorName, now: GoTime) -> RunRow {
    let seconds = if run.ended.is_zero() || run.result.is_running() {
        now.unix() - run.started.unix()
    } else {
        run.ended.unix() - run.started.unix()
    };
    let mut duration = rows::duration(u64::try_from(seconds).unwrap_or(0));
    if run.result.is_running() {
        duration.push_str(" so far");
    }
    RunRow {
        run_id: run.run_id.to_string(),
        started: When::of(run.started, now),
        duration,
        result: run.result.as_str(),
        attempts: run.attempts,
        size: match run.size.as_str() {
            "" | "unknown" => "—".to_owned(),
            size => size.to_owned(),
        },
        error: run.error_msg.clone(),
        log_link: format!("/jobs/{owner}/{name}/log?run={}", run.run_id),
    }
}

/// The last lines of a job's log for its page, or why there are none.
async fn read_log<T: Transport>(
    page: &Page<T>,
    worker: &WorkerId,
    mirror: &MirrorName,
    run: Option<uuid::Uuid>,
) -> (Option<String>, String) {
    if page.api.view.worker_online(worker) != Some(true) {
        return (
            None,
            format!("Worker {worker} is offline: its log cannot be read now."),
        );
    }
    let key = (worker.clone(), mirror.clone(), run);
    if let Some(text) = page.tails.fresh(&key, std::time::Instant::now()) {
        return (Some(text), String::new());
    }
    let request = LogRequest {
        mirror: mirror.clone(),
        tail: Some(LOG_LINES),
        follow: false,
        run,
    };
    match tokio::time::timeout(LOG_WAIT, page.api.logs.fetch(worker, request)).await {
        Ok(Ok(text)) => {
            page.tails
                .keep(key, text.clone(), std::time::Instant::now());
            (Some(text), String::new())
        }
        Ok(Err(crate::log_requests::LogFetchError::Worker(_))) => {
            (None, "No run has written a log yet.".to_owned())
        }
        Ok(Err(err)) => (None, format!("The log cannot be read now: {err}.")),
        Err(_) => (
            None,
            format!("Worker {worker} did not send the log within {LOG_WAIT:?}."),
        ),
    }
}
