//! Alerts: rules evaluated over the committed state, incidents opened and resolved once
//! each, and notifications delivered at least once to every configured sink.
//!
//! - [`config`]: `[alerts]`. [`rules`]: what is wrong now (pure). [`incidents`]: the book
//!   of open incidents and what changes in it (pure). [`payload`]: what each kind of sink
//!   is sent. [`courier`]: delivery to one sink. [`store`]: incidents and outbox in redb.
//!
//! The engine (here) is the one owner of the book and the outbox: every `interval` it
//! reads the view, reconciles the book, commits the opened and resolved incidents with
//! their notifications (one outbox item per sink) in one transaction, and only then hands
//! the items to the couriers. A courier reports each delivery back; the engine deletes it
//! from the store. What was undelivered at a restart is loaded and sent then.

pub mod config;
pub mod courier;
pub mod incidents;
pub mod payload;
pub mod rules;
pub mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use self::config::AlertsConfig;
use self::courier::{Courier, OutboxItem};
use self::incidents::{Book, Change, Incident};
use self::store::AlertChanges;
use crate::metrics::AlertTelemetry;
use crate::store::{Store, StoreError};
use crate::view::View;

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("cannot read the token file {} of alert sink {sink:?}", path.display())]
    Token {
        sink: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the alerts from the store")]
    Store(#[from] StoreError),
    #[error("cannot set up the HTTP client of alert sink {sink:?}")]
    Http {
        sink: String,
        #[source]
        source: crate::https_client::ClientError,
    },
}

/// What `GET /alerts` shows.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AlertsStatus {
    /// Whether manager.conf has an `[alerts]` section.
    pub enabled: bool,
    /// The open incidents, oldest first.
    pub incidents: Vec<Incident>,
    /// Notifications not delivered yet, per sink.
    pub undelivered: BTreeMap<String, usize>,
}

/// A cheap handle to what the engine shows.
#[derive(Clone)]
pub struct AlertsHandle {
    status: watch::Receiver<Arc<AlertsStatus>>,
}

impl AlertsHandle {
    /// The handle of a manager without `[alerts]`.
    pub fn disabled() -> AlertsHandle {
        let (_, status) = watch::channel(Arc::new(AlertsStatus::default()));
        AlertsHandle { status }
    }

    pub fn status(&self) -> Arc<AlertsStatus> {
        self.status.borrow().clone()
    }
}

/// Loads the alerts' state and starts the engine and one courier per sink.
pub async fn start(
    config: AlertsConfig,
    offline_after: Duration,
    store: Arc<Store>,
    view: Arc<View>,
    shutdown: CancellationToken,
) -> Result<(AlertsHandle, JoinHandle<()>), AlertsError> {
    let loading = store.clone();
    let stored = tokio::task::spawn_blocking(move || loading.load_alerts())
        .await
        .map_err(|err| StoreError::Redb(Box::new(err)))??;
    let telemetry = view.telemetry.alerts.clone();

    let book = Book::new(stored.incidents, stored.next_incident);
    let (open_tx, open_rx) = watch::channel(Arc::new(book.open()));
    let (status_tx, status_rx) = watch::channel(Arc::new(AlertsStatus {
        enabled: true,
        ..AlertsStatus::default()
    }));
    let (delivered_tx, delivered) = mpsc::unbounded_channel();
    let mut couriers = BTreeMap::new();
    let mut tasks = Vec::new();
    for sink in &config.sinks {
        let token = match &sink.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| AlertsError::Token {
                        sink: sink.name.clone(),
                        path: path.clone(),
                        source,
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        // Each sink its own client: its `ca_cert`, or the system's roots.
        let http = crate::https_client::build(reqwest::Client::builder(), sink.ca_cert.as_deref())
            .map_err(|source| AlertsError::Http {
                sink: sink.name.clone(),
                source,
            })?;
        let (items_tx, items) = mpsc::unbounded_channel();
        couriers.insert(sink.name.clone(), items_tx);
        let courier = Courier {
            sink: sink.clone(),
            token,
            http,
            items,
            delivered: delivered_tx.clone(),
            open: open_rx.clone(),
            retry_max: config.retry_max,
            telemetry: telemetry.clone(),
        };
        tasks.push(tokio::spawn(courier.run(shutdown.clone())));
    }
    info!(
        n_sinks = config.sinks.len(),
        n_open = book.open().len(),
        n_undelivered = stored.outbox.len(),
        "alerts: evaluating every {}",
        humantime::format_duration(config.interval)
    );

    let mut engine = Engine {
        config,
        store,
        view,
        book,
        next_seq: stored.next_seq.max(1),
        undelivered: BTreeMap::new(),
        couriers,
        open: open_tx,
        status: status_tx,
        started: Instant::now(),
        offline_after,
        telemetry,
        full_sinks: crate::once_log::OnceLog::default(),
    };
    let mut forget = AlertChanges::default();
    for item in stored.outbox {
        engine.next_seq = engine.next_seq.max(item.seq + 1);
        if engine.couriers.contains_key(&item.sink) {
            engine.dispatch(item);
        } else {
            warn!(sink = %item.sink, incident = item.notification.incident.id, "an undelivered alert for a sink that is no longer configured is dropped");
            forget.delivered.push(item.seq);
        }
    }
    engine.commit(forget).await;
    engine.publish();
    let handle = AlertsHandle { status: status_rx };
    let task = tokio::spawn(async move {
        engine.run(delivered, shutdown).await;
        for task in tasks {
            let _ = task.await;
        }
    });
    Ok((handle, task))
}

struct Engine {
    config: AlertsConfig,
    store: Arc<Store>,
    view: Arc<View>,
    book: Book,
    next_seq: u64,
    /// Undelivered items: their sink, by sequence number.
    undelivered: BTreeMap<u64, String>,
    couriers: BTreeMap<String, mpsc::UnboundedSender<OutboxItem>>,
    open: watch::Sender<Arc<Vec<Incident>>>,
    status: watch::Sender<Arc<AlertsStatus>>,
    started: Instant,
    offline_after: Duration,
    telemetry: AlertTelemetry,
    /// Sinks whose outbox filled up, logged once each.
    full_sinks: crate::once_log::OnceLog<String>,
}

/// The most notifications kept for one sink that does not take them; later ones are
/// dropped (and counted) until it does. `GET /alerts` still shows every open incident.
pub const MAX_UNDELIVERED: usize = 1000;

impl Engine {
    async fn run(
        &mut self,
        mut delivered: mpsc::UnboundedReceiver<u64>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.evaluate().await,
                Some(seq) = delivered.recv() => {
                    let mut changes = self.changes();
                    changes.delivered.push(seq);
                    while let Ok(seq) = delivered.try_recv() {
                        changes.delivered.push(seq);
                    }
                    for seq in &changes.delivered {
                        self.undelivered.remove(seq);
                    }
                    self.commit(changes).await;
                    self.publish();
                }
                () = shutdown.cancelled() => break,
            }
        }
    }

    /// Reconciles the book with what the rules find now.
    async fn evaluate(&mut self) {
        let now = chrono::Utc::now();
        // Heartbeats that workers sent while the manager was down are read in its first
        // moments: until then they would all look offline.
        let check_offline = self.started.elapsed() >= self.offline_after;
        let (config, book) = (&self.config, &mut self.book);
        let reconciled = self.view.with_state(|model, offline| {
            let holding = rules::evaluate(config, model, offline, check_offline, now);
            book.reconcile(&holding, |key| rules::muted(model, key), now)
        });
        if reconciled.notifications.is_empty() {
            return;
        }
        let mut changes = self.changes();
        changes.resolved = reconciled
            .resolved
            .iter()
            .map(|incident| incident.id)
            .collect();
        changes.opened = reconciled.opened;
        for notification in &reconciled.notifications {
            match notification.change {
                Change::Firing => info!(
                    incident = notification.incident.id,
                    "alert: {}", notification.incident.summary
                ),
                Change::Resolved => info!(
                    incident = notification.incident.id,
                    "alert resolved: {}", notification.incident.summary
                ),
            }
            for sink in self.couriers.keys() {
                let waiting = self.undelivered.values().filter(|s| *s == sink).count()
                    + changes
                        .queued
                        .iter()
                        .filter(|item| &item.sink == sink)
                        .count();
                if waiting >= MAX_UNDELIVERED {
                    if self.full_sinks.first(sink.clone()) {
                        warn!(sink = %sink, "{MAX_UNDELIVERED} notifications wait for this sink: later ones are dropped (counted in tunasync_alerts_dropped_total) until it takes them");
                    }
                    self.telemetry.dropped(sink);
                    continue;
                }
                changes.queued.push(OutboxItem {
                    seq: self.next_seq,
                    sink: sink.clone(),
                    notification: notification.clone(),
                });
                self.next_seq += 1;
            }
        }
        changes.next_seq = self.next_seq;
        changes.next_incident = self.book.next_id();
        let queued = changes.queued.clone();
        self.commit(changes).await;
        for item in queued {
            self.dispatch(item);
        }
        self.open.send_replace(Arc::new(self.book.open()));
        self.publish();
    }

    fn changes(&self) -> AlertChanges {
        AlertChanges {
            next_incident: self.book.next_id(),
            next_seq: self.next_seq,
            ..AlertChanges::default()
        }
    }

    fn dispatch(&mut self, item: OutboxItem) {
        if let Some(courier) = self.couriers.get(&item.sink) {
            self.undelivered.insert(item.seq, item.sink.clone());
            let _ = courier.send(item);
        }
    }

    /// Writes `changes`. A store that cannot write loses nothing now (the notifications
    /// are still delivered from memory); only a restart before it writes again would.
    async fn commit(&self, changes: AlertChanges) {
        if changes.is_empty() {
            return;
        }
        let store = self.store.clone();
        let written = tokio::task::spawn_blocking(move || store.commit_alerts(&changes)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                error!(error = %tunasync_shared::error_chain(&err), "cannot store the alerts' changes; delivering from memory");
            }
            Err(err) => error!(error = %err, "the alerts' store write did not finish"),
        }
    }

    fn publish(&self) {
        let mut undelivered: BTreeMap<String, usize> =
            self.couriers.keys().map(|sink| (sink.clone(), 0)).collect();
        for sink in self.undelivered.values() {
            *undelivered.entry(sink.clone()).or_default() += 1;
        }
        let incidents = self.book.open();
        self.telemetry.set_open(incidents.len());
        self.status.send_replace(Arc::new(AlertsStatus {
            enabled: true,
            incidents,
            undelivered,
        }));
    }
}
