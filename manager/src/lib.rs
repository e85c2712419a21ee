//! The tunasync manager: the authoritative status of every mirror job, served over HTTPS.
//!
//! # Layout
//! - [`config`]: `manager.conf` and flag overrides.
//! - [`model`]: the state and the rules that change it (pure); [`records`]: what is stored.
//! - [`store`]: the redb file. [`state`]: the actor that owns model and store.
//! - [`view`]: what the API reads, with the rendered `GET /jobs` bodies.
//! - [`ingest`]: consuming worker events. [`dispatch`]: commands and their answers;
//!   [`notices`]: what the manager tells workers unasked (welcomes, maintenance), off the
//!   paths that decide it.
//! - [`alerts`]: rules, incidents and their delivery to sinks, off the state's paths.
//! - [`api`], [`api_error`], [`auth`], [`server`]: the HTTP side.
//!
//! Data flow: broker → [`ingest`] → [`state`] (model → store commit → view) → [`api`].

pub mod alerts;
pub mod api;
pub mod api_error;
pub mod api_logs;
pub mod api_maintenance;
pub mod auth;
pub mod cidr;
pub mod config;
pub mod deflate_pieces;
pub mod dispatch;
pub mod etag;
pub mod https_client;
pub mod import;
pub mod ingest;
pub mod jobs_body;
pub mod legacy;
pub mod log_requests;
pub mod metrics;
pub mod mirrorz;
pub mod model;
pub mod notices;
pub mod once_log;
pub mod openapi;
pub mod page;
pub mod pool_publisher;
pub mod pool_status;
pub mod records;
pub mod server;
pub mod state;
pub mod store;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tunasync_shared::broker::{AmqpBroker, BrokerError, ConfigError, Role, Transport};

use crate::api::Api;
use crate::auth::{Auth, TokensError};
use crate::config::ManagerConfig;
use crate::dispatch::Dispatcher;
use crate::ingest::Ingest;
use crate::notices::Notices;
use crate::pool_publisher::PoolPublisher;
use crate::server::TlsError;
use crate::state::StateHandle;
use crate::store::{Store, StoreError};

/// How often worker liveness is re-evaluated.
const LIVENESS_TICK: Duration = Duration::from_secs(1);

/// When the pool scheduler next has something to do (at the latest, it also looks at every
/// liveness tick, which is where members going offline are noticed).
fn pool_wake(next: Option<tunasync_shared::gotime::GoTime>) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    let Some(next) = next else {
        return now + Duration::from_secs(3600);
    };
    let left = (next.as_datetime().to_utc() - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    // Never spin on a time just past.
    now + left.max(Duration::from_millis(2))
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the store")]
    Store(#[from] StoreError),
    #[error("broker settings")]
    Broker(#[from] BrokerError),
    #[error("API authentication settings")]
    Tokens(#[from] TokensError),
    #[error("HTTPS settings")]
    Tls(#[from] TlsError),
    #[error("alerts")]
    Alerts(#[from] alerts::AlertsError),
    #[error("the [legacy] bridge")]
    Legacy(#[from] legacy::relay::RelayError),
}

/// A started manager.
pub struct Running {
    /// Where the API listens (useful with port 0).
    pub local_addr: SocketAddr,
    /// Whether the API speaks HTTPS.
    pub https: bool,
    view: Arc<view::View>,
    liveness: Arc<dyn Fn() -> bool + Send + Sync>,
    server: JoinHandle<std::io::Result<()>>,
    ingest: JoinHandle<()>,
    notices: JoinHandle<()>,
    pools: JoinHandle<()>,
    ticker: JoinHandle<()>,
    /// The `[legacy]` handover of ids from Go workers to broker workers.
    handover: Option<JoinHandle<()>>,
    alerts: Option<JoinHandle<()>>,
    store_closed: tokio::sync::oneshot::Receiver<()>,
}

impl Running {
    /// Worker events applied and committed since start.
    pub fn events_applied(&self) -> u64 {
        self.view.events_applied()
    }

    /// Whether the manager's core (the state actor) is alive, for a watchdog.
    pub fn liveness(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let liveness = self.liveness.clone();
        move || liveness()
    }

    /// Waits until the manager has stopped (after `shutdown` was cancelled) and its store
    /// file is closed.
    pub async fn wait(self) -> std::io::Result<()> {
        let served = self.server.await.unwrap_or(Ok(()));
        let _ = self.ingest.await;
        let _ = self.notices.await;
        let _ = self.pools.await;
        let _ = self.ticker.await;
        if let Some(handover) = self.handover {
            let _ = handover.await;
        }
        if let Some(alerts) = self.alerts {
            let _ = alerts.await;
        }
        let _ = self.store_closed.await;
        served
    }
}

/// Starts the manager of a cluster, connecting to `[broker]`. `listener`: an already-bound
/// socket (tests bind port 0), or `None` to bind `[server] addr:port`. Everything stops when
/// `shutdown` is cancelled.
pub async fn start(
    config: ManagerConfig,
    listener: Option<std::net::TcpListener>,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    let broker_config = config
        .broker
        .clone()
        .ok_or(BrokerError::Config(ConfigError::NoSection))?;
    let broker_shutdown = shutdown.clone();
    start_with(
        config,
        listener,
        move || AmqpBroker::start(broker_config, Role::Manager, broker_shutdown),
        shutdown,
    )
    .await
}

fn bind(
    config: &ManagerConfig,
    listener: Option<std::net::TcpListener>,
) -> Result<std::net::TcpListener, StartError> {
    if let Some(listener) = listener {
        return Ok(listener);
    }
    let addr = format!("{}:{}", config.server.addr, config.server.port);
    let ip: std::net::IpAddr = config.server.addr.parse().map_err(|_| StartError::Listen {
        addr: addr.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an IP address"),
    })?;
    std::net::TcpListener::bind((ip, config.server.port))
        .map_err(|source| StartError::Listen { addr, source })
}

/// Starts the manager over the transport `connect` makes (`tunasync standalone` gives it
/// the in-process broker); otherwise as [`start`]. `connect` is called once the listener
/// and the store are open, so a bad one leaves no connection attempts behind.
pub async fn start_with<T: Transport>(
    config: ManagerConfig,
    listener: Option<std::net::TcpListener>,
    connect: impl FnOnce() -> Result<T, BrokerError>,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    let listener = bind(&config, listener)?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: "the given listener".to_owned(),
        source,
    })?;

    let tls = match (&config.server.ssl_cert, &config.server.ssl_key) {
        (Some(cert), Some(key)) => {
            let client_ca = config
                .auth
                .require_client_cert
                .then(|| config.client_ca())
                .flatten();
            Some(server::tls_config(cert, key, client_ca)?)
        }
        _ => {
            warn!(
                "no [server] ssl_cert / ssl_key: serving plain HTTP; use HTTPS anywhere but loopback"
            );
            None
        }
    };
    let auth = Arc::new(Auth::new(
        config.auth.tokens_file.as_deref(),
        config.auth.trusted_networks.clone(),
        config.auth.require_client_cert,
    )?);
    if auth.n_tokens() == 0
        && config.auth.trusted_networks.is_empty()
        && !config.auth.require_client_cert
    {
        warn!(
            "no API tokens, trusted networks or client certificates: nobody can change state through the API"
        );
    }

    let db_file = config.db_file.clone();
    let runs_per_job = config.history.runs_per_job;
    let (store, model) = tokio::task::spawn_blocking(move || Store::open(&db_file, runs_per_job))
        .await
        .map_err(|err| StoreError::Redb(Box::new(err)))??;
    info!(db_file = %config.db_file.display(), n_workers = model.workers.len(), n_jobs = model.jobs.len(), "store opened");
    if config.legacy.is_none() {
        let go_workers: Vec<&str> = model
            .workers
            .iter()
            .filter(|(_, record)| record.is_legacy())
            .map(|(id, _)| id.as_str())
            .collect();
        if !go_workers.is_empty() {
            warn!(
                ?go_workers,
                "Go workers registered over HTTP, and [legacy] go_workers is off: they cannot post, \
                 and their ids stay theirs (the broker's events for them are ignored) until \
                 `tunasynctl rm-worker -w <id>`"
            );
        }
    }
    let notices = Arc::new(Notices::default());
    let (state, view, store_closed) =
        StateHandle::start(store, model, config.liveness.offline_after, notices.clone());

    let (alerts, alerts_task) = match config.alerts.clone() {
        Some(alerts) => {
            let (handle, task) = alerts::start(
                alerts,
                config.liveness.offline_after,
                state.store(),
                view.clone(),
                shutdown.clone(),
            )
            .await?;
            (handle, Some(task))
        }
        None => (alerts::AlertsHandle::disabled(), None),
    };

    let broker = connect()?;
    let dispatcher = Arc::new(Dispatcher::new(
        broker.clone(),
        config.commands.timeout,
        config.commands.expiry,
        view.telemetry.clone(),
    ));
    let logs = Arc::new(log_requests::LogRequests::new(
        broker.clone(),
        config.commands.expiry,
        view.telemetry.clone(),
    ));
    let pools = PoolPublisher::new(broker.clone(), state.clone(), config.commands.expiry);
    let ingest = Ingest {
        transport: broker.clone(),
        state: state.clone(),
        dispatcher: dispatcher.clone(),
        logs: logs.clone(),
        notices: notices.clone(),
        pools: pools.clone(),
        require_identity: config.auth.require_worker_identity,
        telemetry: view.telemetry.clone(),
        refusals: crate::once_log::OnceLog::default(),
    };
    let ingest = tokio::spawn(ingest.run(shutdown.clone()));
    let notices = tokio::spawn(notices.run(dispatcher.clone(), shutdown.clone()));
    let pool_runs = pools.clone();
    let pools = tokio::spawn(pools.run(shutdown.clone()));

    let ticker_state = state.clone();
    let ticker_shutdown = shutdown.clone();
    let ticker = tokio::spawn(async move {
        let mut liveness = tokio::time::interval(LIVENESS_TICK);
        let mut wake = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = liveness.tick() => ticker_state.check_liveness(),
                () = tokio::time::sleep_until(wake) => {}
                () = ticker_state.pool_changed() => {}
                () = ticker_shutdown.cancelled() => break,
            }
            let ticked = ticker_state.pool_tick().await;
            pool_runs.runs(ticked.publications);
            wake = pool_wake(ticked.next);
        }
    });

    let connected = broker.clone();
    let metrics = Arc::new(view.telemetry.registry(metrics::collector::StateCollector {
        view: view.clone(),
        broker_connected: Box::new(move || connected.is_connected()),
    }));
    let liveness = Arc::new(state.liveness());
    let relay = match &config.legacy {
        Some(bridge) => Some(legacy::relay::Relay::new(
            bridge.ca_cert.as_deref(),
            config.commands.timeout,
        )?),
        None => None,
    };
    let handover = relay.clone().map(|relay| {
        tokio::spawn(legacy::handover::run(
            state.handovers(),
            relay,
            view.clone(),
            state.clone(),
            shutdown.clone(),
        ))
    });
    let api = Arc::new(Api {
        view: view.clone(),
        state,
        dispatcher,
        logs,
        transport: broker,
        metrics,
        alerts,
        relay,
    });
    let mut app = api::router(api.clone(), auth, config.auth.public_logs)
        .merge(mirrorz::router(view.clone(), config.mirrorz.clone()));
    if let Some(bridge) = &config.legacy {
        info!(networks = ?bridge.networks, "serving tunasync's Go workers over HTTP ([legacy] go_workers)");
        app = app.merge(legacy::router(api, bridge));
    }
    // As tunasync (gin): a known path with another method is not found, not 405.
    let app = app.method_not_allowed_fallback(api::not_found);
    let https = tls.is_some();
    info!(addr = %local_addr, https, "API listening");
    let server = tokio::spawn(server::serve(listener, tls, app, shutdown));
    Ok(Running {
        local_addr,
        https,
        view,
        liveness,
        server,
        ingest,
        notices,
        pools,
        ticker,
        handover,
        alerts: alerts_task,
        store_closed,
    })
}
