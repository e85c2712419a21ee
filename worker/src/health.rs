//! The optional local health endpoint (`[health] addr`): `GET /healthz` answers while the
//! process runs, `GET /readyz` while it is connected to the broker; for systemd, compose and
//! Kubernetes probes; `GET /metrics`, the worker's own jobs (`metrics.rs`). Workers open
//! no port unless it is configured.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tunasync_shared::broker::Transport;

/// Serves the two routes on `listener` (bound by the caller before anything else starts, so
/// a taken address stops the start-up with a clear error) until `shutdown`.
pub async fn serve<T: Transport>(
    listener: TcpListener,
    transport: T,
    metrics: Arc<Registry>,
    shutdown: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "health endpoint listening");
    }
    let result = axum::serve(listener, router(transport, metrics))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(err) = result {
        warn!(error = %err, "health endpoint stopped");
    }
}

fn router<T: Transport>(transport: T, metrics: Arc<Registry>) -> Router {
    let scrape = get(move || {
        let metrics = metrics.clone();
        async move {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    tunasync_shared::exposition::CONTENT_TYPE,
                )],
                tunasync_shared::exposition::render(&metrics),
            )
        }
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<T>))
        .route("/metrics", scrape)
        .with_state(transport)
}

fn message(status: StatusCode, key: &str, text: &str) -> Response {
    let mut body = serde_json::Map::new();
    body.insert(key.to_owned(), text.into());
    (status, axum::Json(body)).into_response()
}

async fn healthz() -> Response {
    message(StatusCode::OK, "message", "alive")
}

async fn readyz<T: Transport>(State(transport): State<T>) -> Response {
    if !transport.is_connected() {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            "not connected to the broker",
        );
    }
    if let Some(reason) = transport.blocked() {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            &format!("the broker blocks publishing ({reason})"),
        );
    }
    message(StatusCode::OK, "message", "ready")
}
