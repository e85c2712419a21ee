//! `GET /jobs/{worker}/{mirror}/log`: a job's latest log, asked of its worker over the
//! broker (`log_requests.rs`). `?tail=N` for its last N lines. Plain text.
//!
//! A pooled mirror's log is asked of the member that ran it
//! (`GET /jobs/MEMBER/MIRROR/log`): the member's file defines the mirror.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tunasync_shared::broker::Transport;
use tunasync_shared::wire::command::LogRequest;
use tunasync_shared::wire::event::LogError;

use crate::api::{Api, known_worker, mirror_name};
use crate::api_error::ApiError;
use crate::log_requests::LogFetchError;

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    tail: Option<u32>,
}

pub async fn job_log<T: Transport>(
    State(api): State<Arc<Api<T>>>,
    Path((worker, mirror)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let worker = known_worker(&api, &worker)?;
    let mirror = mirror_name(&mirror)?;
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
    };
    let text = api
        .logs
        .fetch(&worker, request)
        .await
        .map_err(|err| match err {
            LogFetchError::Worker(LogError::NoSuchJob) => {
                ApiError::NotFound(format!("no mirror '{mirror}' exists in worker '{worker}'"))
            }
            LogFetchError::Worker(LogError::NoLog) => ApiError::NotFound(format!(
                "mirror '{mirror}' has no log on worker '{worker}' yet"
            )),
            other => ApiError::Unavailable(other.to_string()),
        })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}
