//! `tunasync standalone`: the manager and one worker in one process, talking through the
//! in-process broker ([`MemoryBroker`]) instead of RabbitMQ. Everything else is the same
//! code as the two daemons: the store, the API, the status page, commands, pools, metrics.
//!
//! Shutdown goes in order: the worker stops first (its last reports reach the manager,
//! which commits them before it acknowledges them), then the manager, then the broker.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use tunasync_manager::config::ManagerConfig;
use tunasync_shared::broker::{MemoryBroker, Role};
use tunasync_worker::config::WorkerConfig;

/// How long the manager waits, after a stop was asked for, for the worker to end its runs
/// and hand over its last reports before it stops anyway.
const WORKER_STOP: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error("the manager")]
    Manager(#[from] tunasync_manager::StartError),
    #[error("the worker")]
    Worker(#[from] tunasync_worker::StartError),
    #[error("the API server failed")]
    Serve(#[source] std::io::Error),
}

/// Runs the manager of `manager` and the worker of `worker` until `shutdown`; `reload`
/// requests go to the worker. `ready` is called once the API is listening and the worker
/// is up, with the API's address.
pub async fn run(
    manager: ManagerConfig,
    worker: WorkerConfig,
    reload: mpsc::Receiver<()>,
    shutdown: CancellationToken,
    ready: impl FnOnce(std::net::SocketAddr) + Send + 'static,
) -> Result<(), StandaloneError> {
    let broker = MemoryBroker::new();
    let manager_stop = CancellationToken::new();
    let watchdog_stop = manager_stop.clone();
    let running = tunasync_manager::start_with(
        manager,
        None,
        || Ok(broker.connect(&Role::Manager)),
        manager_stop.clone(),
    )
    .await?;
    info!(
        addr = %running.local_addr,
        worker = %worker.name,
        "standalone: manager and worker in one process, no broker"
    );
    let addr = running.local_addr;
    let liveness = running.liveness();
    let transport = broker.connect(&Role::Worker(worker.name.clone()));
    let worker_stop = CancellationToken::new();
    let mut worker_task = tokio::spawn(tunasync_worker::run(
        worker,
        move || Ok(transport),
        reload,
        worker_stop.clone(),
        move || {
            ready(addr);
            // Pings only after READY=1, as systemd expects.
            crate::systemd::watchdog(liveness, watchdog_stop);
        },
    ));
    let worker_result = tokio::select! {
        // The worker only returns by itself when it failed.
        result = &mut worker_task => result,
        () = shutdown.cancelled() => {
            worker_stop.cancel();
            match tokio::time::timeout(WORKER_STOP, &mut worker_task).await {
                Ok(result) => result,
                Err(_) => {
                    warn!(after = ?WORKER_STOP, "the worker has not stopped; stopping the manager anyway");
                    worker_task.abort();
                    Ok(Ok(()))
                }
            }
        }
    };
    manager_stop.cancel();
    let served = running.wait().await;
    broker.close();
    match worker_result {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(err.into()),
        Err(join) => {
            error!("the worker task ended abnormally: {join}");
        }
    }
    served.map_err(StandaloneError::Serve)
}
