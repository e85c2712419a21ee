//! `GET /openapi.json`: the HTTP API described in OpenAPI 3.1, generated from the handlers'
//! `#[utoipa::path]` attributes and the body types' derived schemas, so REST clients can
//! generate bindings and CI can check the manager against it (schemathesis).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api_error::JSON;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tunasync manager",
        description = "The manager's HTTP API: tunasync's routes, keys and bodies (`GET /jobs` is tunasync.json), \
            plus health, history, logs, maintenance and alerts. Reads are public; changes need a token \
            (`Authorization: Bearer …`, from manager.conf's `tokens_file`), a client certificate or a trusted network. \
            Errors are `{\"error\": \"…\"}`.",
        license(name = "GPL-3.0-or-later", identifier = "GPL-3.0-or-later"),
    ),
    paths(
        crate::api::ping,
        crate::api::healthz,
        crate::api::readyz,
        crate::api::metrics,
        crate::api::jobs,
        crate::api::workers,
        crate::api::worker_jobs,
        crate::api::history,
        crate::api_logs::job_log,
        crate::api::alerts,
        crate::api_maintenance::list,
        crate::api_maintenance::turn_on,
        crate::api_maintenance::turn_off,
        crate::api::command,
        crate::api::delete_worker,
        crate::api::flush_disabled,
        crate::api::set_size,
        crate::mirrorz::document,
        crate::page::index,
        crate::page::mirror,
        document,
    ),
    components(schemas(tunasync_shared::compat::PoolStatus)),
    modifiers(&TokenScheme),
    tags(
        (name = "status", description = "What the mirrors, workers and pools are doing."),
        (name = "changes", description = "Commands and changes: they need a token."),
        (name = "health", description = "Liveness, readiness and metrics."),
        (name = "page", description = "The status page (HTML)."),
    )
)]
struct ApiDoc;

/// The bearer token of `Authorization: Bearer …`.
struct TokenScheme;

impl Modify for TokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from manager.conf's `tokens_file`."))
                    .build(),
            ),
        );
    }
}

/// The description, built once.
pub fn description() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|err| format!("{{\"error\": \"cannot describe the API: {err}\"}}"))
    });
    &TEXT
}

#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "This description.", body = Object)))]
pub(crate) async fn document() -> Response {
    ([(header::CONTENT_TYPE, JSON)], description()).into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(target)) => found.push(target),
                        _ => refs(value, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
            _ => {}
        }
    }

    #[test]
    fn every_route_is_described_and_every_reference_resolves() {
        let doc: Value =
            serde_json::from_str(super::description()).expect("the description is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        let described: Vec<(&str, &str)> = paths
            .iter()
            .flat_map(|(path, item)| {
                let methods = item.as_object().expect("a path item");
                methods
                    .keys()
                    .map(move |method| (path.as_str(), method.as_str()))
            })
            .collect();
        // Every route of api::router, mirrorz::router and page::router but the static assets.
        let routes = [
            ("/ping", "get"),
            ("/healthz", "get"),
            ("/readyz", "get"),
            ("/metrics", "get"),
            ("/openapi.json", "get"),
            ("/jobs", "get"),
            ("/workers", "get"),
            ("/workers/{id}/jobs", "get"),
            ("/jobs/{worker}/{mirror}/history", "get"),
            ("/jobs/{worker}/{mirror}/log", "get"),
            ("/alerts", "get"),
            ("/maintenance", "get"),
            ("/maintenance", "post"),
            ("/maintenance", "delete"),
            ("/cmd", "post"),
            ("/workers/{id}", "delete"),
            ("/jobs/disabled", "delete"),
            ("/workers/{id}/jobs/{job}/size", "post"),
            ("/mirrorz.json", "get"),
            ("/", "get"),
            ("/mirrors/{worker}/{mirror}", "get"),
        ];
        let mut expected = routes.to_vec();
        let mut got = described.clone();
        expected.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, expected);
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{target} is not a schema reference"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{target} does not resolve"
            );
        }
    }
}
