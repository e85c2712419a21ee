//! The metrics' text, for the manager's `/metrics` and a worker's health endpoint alike:
//! a `prometheus-client` registry in the OpenMetrics text format.

use prometheus_client::registry::Registry;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition of `registry` (what the encoder wrote, if it stopped half-way: logged).
pub fn render(registry: &Registry) -> String {
    let mut out = String::with_capacity(4096);
    if let Err(err) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::warn!(error = %err, "cannot render the metrics");
    }
    out
}
