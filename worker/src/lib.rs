//! The tunasync worker: runs tunasync's `worker.conf` jobs on their schedules, commanded
//! and reporting through the broker.
//!
//! # Layout
//! - [`config`]: worker.conf, resolved into [`config::JobConfig`]s with exact command lines.
//! - [`worker`]: the main loop, owner of the job table and the [`schedule`].
//! - [`job`]: one controller task per job (tunasync's job state machine); [`slots`]: the
//!   concurrency limit.
//! - [`pipeline`]: one run: hooks and attempts around the provider; [`hooks`]: the hooks.
//! - [`runner`]: a command in its own process group, with timeout and kill.
//! - [`analysis`]: sizes, `fail_on_match`, rsync exit codes from the log.
//! - [`report`], [`outbox`]: status events and their way to the broker.
//! - [`pool`]: a member's side of a pool (reading the pool's queue, claims).
//! - [`maintenance`]: what the manager says is in maintenance, and the runs parked meanwhile.
//! - [`check`]: `--check` output.

pub mod analysis;
pub mod check;
pub mod config;
pub mod disk;
pub mod health;
pub mod hooks;
pub mod job;
pub mod leftovers;
pub mod logs;
pub mod maintenance;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod pool;
pub mod probe;
pub mod progress;
pub mod publish;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod slots;
pub mod upstreams;
pub mod worker;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tunasync_shared::broker::{AmqpBroker, BrokerError, Role, Transport};

/// Why the worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("broker settings")]
    Broker(#[from] BrokerError),
    #[error("cgroup: {0}")]
    Cgroup(String),
    #[error("cannot serve health checks on {addr}")]
    Health {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("worker")]
    Worker(#[from] worker::WorkerError),
}

/// Runs the worker of `config` until `shutdown`: connects to the broker, runs the jobs,
/// applies `reload` requests.
pub async fn start(
    config: config::WorkerConfig,
    reload: mpsc::Receiver<()>,
    shutdown: CancellationToken,
    ready: impl FnOnce() + Send + 'static,
) -> Result<(), StartError> {
    let Some(broker_config) = config.broker.clone() else {
        return Err(StartError::Broker(BrokerError::Config(
            tunasync_shared::broker::ConfigError::NoSection,
        )));
    };
    let broker_stop = CancellationToken::new();
    let role = Role::Worker(config.name.clone());
    let stop = broker_stop.clone();
    let connect = move || AmqpBroker::start(broker_config, role, stop);
    let result = run(config, connect, reload, shutdown, ready).await;
    broker_stop.cancel();
    result
}

/// Runs the worker of `config` over the transport `connect` makes, until `shutdown`
/// (`tunasync standalone` gives it the in-process broker). `connect` is called once the
/// health port and the cgroup are set up, so a bad one leaves no connection attempts
/// behind. `ready` is called once, when leftovers of a previous life are ended and the
/// transport is connected (systemd's readiness).
pub async fn run<T: Transport>(
    config: config::WorkerConfig,
    connect: impl FnOnce() -> Result<T, BrokerError>,
    reload: mpsc::Receiver<()>,
    shutdown: CancellationToken,
    ready: impl FnOnce() + Send + 'static,
) -> Result<(), StartError> {
    let health = match config.health_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Health { addr, source })?,
        ),
        None => None,
    };
    let cgroup = match &config.cgroup {
        Some(settings) => {
            Some(hooks::cgroup::CgroupBase::prepare(settings).map_err(StartError::Cgroup)?)
        }
        None => None,
    };
    let transport = connect()?;
    let options = worker::Options::default();
    let health_stop = CancellationToken::new();
    let health = health.map(|listener| {
        let registry = std::sync::Arc::new(options.metrics.registry());
        tokio::spawn(health::serve(
            listener,
            transport.clone(),
            registry,
            health_stop.clone(),
        ))
    });
    // Before any run: what a previous life of this worker left running.
    leftovers::end_leftovers(&config.jobs, cgroup.as_ref().map(|base| base.dir())).await;
    tokio::spawn(when_connected(transport.clone(), shutdown.clone(), ready));
    let settings = hooks::HookSettings::from_config(&config, cgroup);
    let worker = worker::Worker::new(config, transport, settings, options);
    let result = worker.run(reload, shutdown).await;
    health_stop.cancel();
    // The health endpoint's port is free again when the worker has stopped (bounded: a
    // probe still connected does not hold the exit).
    if let Some(health) = health {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), health).await;
    }
    Ok(result?)
}

/// Calls `ready` once `transport` is connected (unless `shutdown` comes first).
async fn when_connected<T: Transport>(
    transport: T,
    shutdown: CancellationToken,
    ready: impl FnOnce() + Send + 'static,
) {
    const POLL: std::time::Duration = std::time::Duration::from_millis(50);
    while !transport.is_connected() {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = shutdown.cancelled() => return,
        }
    }
    ready();
}
