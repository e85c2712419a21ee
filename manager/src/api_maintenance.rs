//! `GET|POST|DELETE /maintenance`: the operator takes the cluster, a worker or pool, a
//! mirror, or one worker's mirror out of the schedule, and puts it back. Reads are public
//! (as the status page shows maintenance); changes need the same rights as commands.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use tunasync_shared::broker::Transport;
use tunasync_shared::compat::{ErrorBody, InfoBody};
use tunasync_shared::maintenance::{MaintenanceEntry, MaintenanceRequest, Scope};
use tunasync_shared::names::WorkerId;

use crate::api::{Api, RawBody, decode_body, message, mirror_name, ok, state_error};
use crate::api_error::ApiError;
use crate::state::Mutation;

type Shared<T> = State<std::sync::Arc<Api<T>>>;

/// The longest message kept (it is shown on every row the maintenance covers).
pub const MAX_MESSAGE: usize = 1024;

/// `GET /maintenance`: every maintenance in force, widest first.
#[utoipa::path(get, path = "/maintenance", tag = "status",
    responses((status = 200, description = "Every maintenance in force, widest first.", body = [MaintenanceEntry])))]
pub async fn list<T: Transport>(State(api): Shared<T>) -> Response {
    ok(&api.view.maintenance())
}

/// `POST /maintenance`: turns one on (again: its message is replaced).
#[utoipa::path(post, path = "/maintenance", tag = "changes", security(("token" = [])),
    request_body(content = Option<MaintenanceRequest>, description = "No worker and no mirror (or no body): the whole cluster."),
    responses(
        (status = 200, description = "The maintenance now in force.", body = MaintenanceEntry),
        (status = 400, description = "A bad body, name or message.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 404, description = "No such worker or mirror.", body = ErrorBody),
        (status = 413, description = "The body is longer than 64 KiB.", body = ErrorBody),
        (status = 503, description = "The store cannot commit.", body = ErrorBody),
    ))]
pub async fn turn_on<T: Transport>(
    State(api): Shared<T>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request = request(&body)?;
    if request.message.len() > MAX_MESSAGE {
        return Err(ApiError::BadRequest(format!(
            "message is longer than {MAX_MESSAGE} bytes"
        )));
    }
    let scope = scope(&request)?;
    let found = api
        .state
        .mutate(Mutation::MaintenanceOn {
            scope: scope.clone(),
            message: request.message.clone(),
        })
        .await
        .map_err(|err| state_error("failed to record the maintenance", &err))?;
    if !found {
        return Err(ApiError::NotFound(format!("no {scope} is known")));
    }
    let entry = api
        .view
        .maintenance_of(&scope)
        .ok_or_else(|| ApiError::Internal {
            context: "the maintenance was recorded but is not shown".to_owned(),
            detail: scope.to_string(),
        })?;
    Ok(ok(&entry))
}

/// `DELETE /maintenance`: ends one (an empty body: the cluster's).
#[utoipa::path(delete, path = "/maintenance", tag = "changes", security(("token" = [])),
    request_body(content = Option<MaintenanceRequest>, description = "Which maintenance ends; no body: the cluster's."),
    responses(
        (status = 200, description = "The maintenance has ended.", body = InfoBody),
        (status = 400, description = "A bad body or name.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 404, description = "It was not in maintenance.", body = ErrorBody),
        (status = 413, description = "The body is longer than 64 KiB.", body = ErrorBody),
        (status = 503, description = "The store cannot commit.", body = ErrorBody),
    ))]
pub async fn turn_off<T: Transport>(
    State(api): Shared<T>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let scope = scope(&request(&body)?)?;
    let found = api
        .state
        .mutate(Mutation::MaintenanceOff {
            scope: scope.clone(),
        })
        .await
        .map_err(|err| state_error("failed to end the maintenance", &err))?;
    if !found {
        return Err(ApiError::NotFound(format!("{scope} is not in maintenance")));
    }
    Ok(message(format!("maintenance of {scope} ended")))
}

fn request(body: &Bytes) -> Result<MaintenanceRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(MaintenanceRequest::default());
    }
    decode_body(body)
}

fn scope(request: &MaintenanceRequest) -> Result<Scope, ApiError> {
    let worker = (!request.worker.is_empty())
        .then(|| WorkerId::new(&request.worker))
        .transpose()
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    let mirror = (!request.mirror.is_empty())
        .then(|| mirror_name(&request.mirror))
        .transpose()?;
    Ok(Scope::new(worker, mirror))
}
