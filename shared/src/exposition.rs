//! The metrics' text, for the manager's `/metrics` and a worker's health endpoint alike:
//! a `prometheus-client` registry in the OpenMetrics text format.

use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::registry::Registry;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The smallest buffer a rendering starts with.
const MIN_CAPACITY: usize = 4096;

/// The length of the last text rendered in this process. With thousands of jobs the
/// per-job families make a text of megabytes; starting the next buffer at this size (and
/// an eighth more) takes one allocation instead of doubling up to it, which copied the
/// text over and over and, at its peak, held up to three times its size.
static LAST_LEN: AtomicUsize = AtomicUsize::new(MIN_CAPACITY);

/// The exposition of `registry` (what the encoder wrote, if it stopped half-way: logged).
pub fn render(registry: &Registry) -> String {
    let hint = LAST_LEN.load(Ordering::Relaxed);
    let mut out = String::with_capacity(hint.saturating_add(hint / 8));
    if let Err(err) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::warn!(error = %err, "cannot render the metrics");
    }
    LAST_LEN.store(out.len().max(MIN_CAPACITY), Ordering::Relaxed);
    out
}
