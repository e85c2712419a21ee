//! The tunasync worker: runs tunasync's `worker.conf` jobs on their schedules, commanded
//! and reporting through the broker.
//!
//! # Layout
//! - [`config`]: worker.conf, resolved into [`config::JobConfig`]s with exact command lines.
//! - [`worker`]: the main loop, owner of the job table and the [`schedule`].
//! - [`job`]: one controller task per job (tunasync's job state machine).
//! - [`pipeline`]: one run: hooks and attempts around the provider; [`hooks`]: the hooks.
//! - [`runner`]: a command in its own process group, with timeout and kill.
//! - [`analysis`]: sizes, `fail_on_match`, rsync exit codes from the log.
//! - [`report`], [`outbox`]: status events and their way to the broker.
//! - [`check`]: `--check` output.

pub mod analysis;
pub mod check;
pub mod config;
pub mod hooks;
pub mod job;
pub mod outbox;
pub mod pipeline;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod worker;
