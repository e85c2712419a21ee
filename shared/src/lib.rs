//! `tunasync-shared`: what the manager, the workers and tunasynctl have in common.
//!
//! # Layout
//! - [`names`]: validated worker ids and mirror names.
//! - [`status`]: tunasync's job status and command verb enums.
//! - [`gotime`]: times in tunasync's formats (Go's RFC 3339, web text, zero time).
//! - [`compat`]: tunasync's JSON types (`GET /jobs`, `POST /cmd`, …), byte-compatible.
//! - [`wire`]: the broker protocol: a versioned envelope around commands and events.
//! - [`maintenance`]: what a maintenance covers, and its API's JSON.
//! - [`schedule`]: when a job runs next (interval, cron, jitter, retries), for workers and
//!   the manager alike.
//! - [`broker`]: AMQP over TLS: connection, topology, confirmed publishing, consuming,
//!   reconnection.
//! - [`testkit`]: helpers for tests that need the private broker node.
//!
//! **Architecture invariant:** only this crate defines wire types, and only [`broker`] touches
//! lapin.

pub mod broker;
pub mod compat;
pub mod exposition;
pub mod gotime;
pub mod maintenance;
pub mod names;
pub mod openapi;
pub mod schedule;
pub mod size;
pub mod status;
pub mod testkit;
pub mod upstream;
pub mod wire;

/// This build's version, reported by workers in `hello`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Formats an error with its chain of causes, for log lines and error bodies.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
