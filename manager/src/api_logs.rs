//! `GET /jobs/{worker}/{mirror}/log`: a job's latest log, asked of its worker over the
//! broker (`log_requests.rs`). `?tail=N` for its last N lines, `?run=ID` for that run's
//! log (the newest attempt's) while the worker keeps it. Plain text; with
//! `?follow=true` the response goes on with what the running job writes until its run
//! ends: Server-Sent Events (one `data:` line per log line, and a last `event: end`) for a
//! client that accepts `text/event-stream`, chunked plain text otherwise.
//!
//! A pooled mirror's log is asked of the member that ran it
//! (`GET /jobs/MEMBER/MIRROR/log`): the member's file defines the mirror.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tunasync_shared::broker::Transport;
use tunasync_shared::compat::ErrorBody;
use tunasync_shared::wire::command::LogRequest;
use tunasync_shared::wire::event::LogError;

use crate::api::{Api, QueryArgs, known_worker, mirror_name};
use crate::api_error::ApiError;
use crate::log_requests::{Follow, LogFetchError};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The log's last N lines only.
    tail: Option<u32>,
    /// Go on with what the running job writes until its run ends.
    #[serde(default)]
    follow: bool,
    /// A run's id (as in the job's history): that run's log, while its worker keeps it.
    run: Option<uuid::Uuid>,
}

/// Needs a token unless manager.conf's `public_logs` is on.
#[utoipa::path(get, path = "/jobs/{worker}/{mirror}/log", tag = "status", security((), ("token" = [])),
    params(("worker" = String, Path, description = "The worker that ran the job (for a pooled mirror: the member).", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "worker1"),
        ("mirror" = String, Path, description = "A mirror's name.", pattern = "^[A-Za-z0-9._-]{1,128}$", example = "debian"),
        LogQuery),
    responses(
        (status = 200, description = "The log: plain text; with `follow`, it goes on until the run ends, as Server-Sent Events when the request accepts `text/event-stream`.",
            content((String = "text/plain; charset=utf-8"), (String = "text/event-stream"))),
        (status = 400, description = "No such worker, or a bad name or query.", body = ErrorBody),
        (status = 401, description = "No valid token (logs are not public).", body = ErrorBody),
        (status = 404, description = "No such mirror, log or run, or a pool named.", body = ErrorBody),
        (status = 503, description = "The worker is offline or does not answer, or too many reads wait.", body = ErrorBody),
    ))]
pub async fn job_log<T: Transport>(
    State(api): State<Arc<Api<T>>>,
    Path((worker, mirror)): Path<(String, String)>,
    QueryArgs(query): QueryArgs<LogQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let worker = known_worker(&api, &worker)?;
    let mirror = mirror_name(&mirror)?;
    if api.view.legacy_url(&worker).is_some() {
        return Err(ApiError::NotFound(format!(
            "{worker} is a Go worker registered over HTTP: its logs are on its host (log_dir), not served by the manager"
        )));
    }
    match api.view.worker_online(&worker) {
        None => {
            return Err(ApiError::NotFound(format!(
                "{worker} is a pool: ask the member that ran the mirror for its log"
            )));
        }
        Some(false) => {
            return Err(ApiError::Unavailable(format!(
                "worker {worker} is offline: its logs cannot be read now"
            )));
        }
        Some(true) => {}
    }
    let request = LogRequest {
        mirror: mirror.clone(),
        tail: query.tail,
        follow: false,
        run: query.run,
    };
    let to_api = |err: LogFetchError| match err {
        LogFetchError::Worker(LogError::NoSuchJob) => {
            ApiError::NotFound(format!("no mirror '{mirror}' exists in worker '{worker}'"))
        }
        LogFetchError::Worker(LogError::NoLog) => ApiError::NotFound(format!(
            "mirror '{mirror}' has no log on worker '{worker}' yet"
        )),
        LogFetchError::Worker(LogError::NoSuchRun) => ApiError::NotFound(format!(
            "worker '{worker}' keeps no log of run {} of mirror '{mirror}'",
            query.run.map(|run| run.to_string()).unwrap_or_default()
        )),
        other => ApiError::Unavailable(other.to_string()),
    };
    if !query.follow {
        let text = api.logs.fetch(&worker, request).await.map_err(to_api)?;
        return Ok(([(header::CONTENT_TYPE, PLAIN)], text).into_response());
    }
    let (first, follow) = api.logs.follow(&worker, request).await.map_err(to_api)?;
    let sse = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("text/event-stream"));
    let body = Body::from_stream(pieces(first, follow, sse));
    let kind = if sse { "text/event-stream" } else { PLAIN };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response())
}

const PLAIN: &str = "text/plain; charset=utf-8";

/// A follow's body: its text as it comes (as SSE events when `sse`, whole lines only).
fn pieces<T: Transport>(
    first: Option<String>,
    follow: Follow<T>,
    sse: bool,
) -> impl futures_lite::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    struct Reading<T: Transport> {
        first: Option<String>,
        follow: Follow<T>,
        sse: bool,
        /// SSE: the start of a line whose end has not come yet.
        carry: String,
        done: bool,
    }
    let state = Reading {
        first,
        follow,
        sse,
        carry: String::new(),
        done: false,
    };
    futures_lite::stream::unfold(state, |mut state| async move {
        loop {
            if state.done {
                return None;
            }
            let text = match state.first.take() {
                Some(text) => Some(text),
                None => state.follow.next_text().await,
            };
            let Some(text) = text else {
                state.done = true;
                if !state.sse {
                    return None;
                }
                // The end is said, so a browser's EventSource closes instead of asking again.
                let mut last = String::new();
                if !state.carry.is_empty() {
                    let line = std::mem::take(&mut state.carry);
                    last = format!("data: {line}\n\n");
                }
                last.push_str("event: end\ndata: \n\n");
                return Some((Ok(Bytes::from(last)), state));
            };
            if !state.sse {
                if text.is_empty() {
                    continue;
                }
                return Some((Ok(Bytes::from(text)), state));
            }
            state.carry.push_str(&text);
            let Some(end) = state.carry.rfind('\n') else {
                continue;
            };
            let rest = state.carry.split_off(end + 1);
            let lines = std::mem::replace(&mut state.carry, rest);
            let mut event = String::with_capacity(lines.len() + 16);
            for line in lines.lines() {
                event.push_str("data: ");
                event.push_str(line);
                event.push('\n');
            }
            event.push('\n');
            return Some((Ok(Bytes::from(event)), state));
        }
    })
}
