//! The state actor: the one owner of the model and the store.
//!
//! It runs on its own thread, because redb is a blocking API: it takes batches of events and
//! API mutations from a bounded channel, applies each to the model, commits the changes in
//! one redb transaction, and only then shows them in the [`View`] and answers. A failed
//! commit rolls the model back to what the store holds, so memory never runs ahead of disk.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::command::Welcome;

use crate::model::{Changes, JobKey, Model, OpenRun, Verified};
use crate::records::RunRecord;
use crate::store::{Store, StoreError};
use crate::view::View;

/// How many requests may wait for the actor; senders wait when it is full.
const QUEUE: usize = 64;

/// A change asked for through the API.
#[derive(Debug, Clone)]
pub enum Mutation {
    RemoveWorker(WorkerId),
    FlushDisabled,
    SetSize { key: JobKey, size: String },
    SetStatus { key: JobKey, status: SyncStatus },
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the store could not commit")]
    Store(#[from] StoreError),
    #[error("the state actor has stopped")]
    Stopped,
}

enum Request {
    Apply {
        events: Vec<Verified>,
        reply: oneshot::Sender<Result<Vec<(WorkerId, Welcome)>, StateError>>,
    },
    Mutate {
        mutation: Mutation,
        reply: oneshot::Sender<Result<bool, StateError>>,
    },
    Liveness,
}

/// The answer to a submitted batch: the `welcome`s to send once it is committed.
pub struct Applied(oneshot::Receiver<Result<Vec<(WorkerId, Welcome)>, StateError>>);

impl Applied {
    pub async fn committed(self) -> Result<Vec<(WorkerId, Welcome)>, StateError> {
        self.0.await.map_err(|_| StateError::Stopped)?
    }
}

/// A cheap handle to the actor.
#[derive(Clone)]
pub struct StateHandle {
    sender: mpsc::Sender<Request>,
    store: Arc<Store>,
}

impl StateHandle {
    /// Starts the actor over an opened store and its model; returns the handle, the view, and
    /// a signal that fires once the actor has ended and closed the store (after every handle
    /// is dropped).
    pub fn start(
        store: Store,
        model: Model,
        offline_after: Duration,
    ) -> (StateHandle, Arc<View>, oneshot::Receiver<()>) {
        let store = Arc::new(store);
        let view = View::new(model.clone());
        let (sender, receiver) = mpsc::channel(QUEUE);
        let (closed_tx, closed) = oneshot::channel();
        let actor = Actor {
            store: store.clone(),
            model,
            open_runs: HashMap::new(),
            view: view.clone(),
            offline: BTreeSet::new(),
            offline_after,
        };
        let spawned = std::thread::Builder::new()
            .name("tunasync-state".into())
            .spawn(move || {
                actor.run(receiver);
                let _ = closed_tx.send(());
            });
        if let Err(err) = spawned {
            error!(error = %err, "cannot start the state thread");
        }
        (StateHandle { sender, store }, view, closed)
    }

    /// Applies a batch of events in one transaction; returns the `welcome`s to send.
    pub async fn apply(
        &self,
        events: Vec<Verified>,
    ) -> Result<Vec<(WorkerId, Welcome)>, StateError> {
        self.submit(events).await.committed().await
    }

    /// Queues a batch of events and returns, once the actor has room for it, with what will
    /// answer when it is committed. Batches are applied and committed in the order they were
    /// submitted.
    pub async fn submit(&self, events: Vec<Verified>) -> Applied {
        let (reply, answer) = oneshot::channel();
        // If the actor has stopped, the request (and with it `reply`) is dropped here, and
        // the answer says `Stopped`.
        let _ = self.sender.send(Request::Apply { events, reply }).await;
        Applied(answer)
    }

    /// Applies an API change; `false` when what it names does not exist.
    pub async fn mutate(&self, mutation: Mutation) -> Result<bool, StateError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Request::Mutate { mutation, reply })
            .await
            .map_err(|_| StateError::Stopped)?;
        answer.await.map_err(|_| StateError::Stopped)?
    }

    /// Asks the actor to re-evaluate which workers are offline.
    pub fn check_liveness(&self) {
        let _ = self.sender.try_send(Request::Liveness);
    }

    /// Recorded runs of a job, newest first (a read transaction, off the async runtime).
    pub async fn history(
        &self,
        worker: WorkerId,
        mirror: MirrorName,
    ) -> Result<Vec<RunRecord>, StateError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.history(&worker, &mirror))
            .await
            .map_err(|_| StateError::Stopped)?
            .map_err(StateError::Store)
    }

    /// Whether the actor is still running (for readiness).
    pub fn is_running(&self) -> bool {
        !self.sender.is_closed()
    }
}

struct Actor {
    store: Arc<Store>,
    model: Model,
    open_runs: HashMap<JobKey, OpenRun>,
    view: Arc<View>,
    offline: BTreeSet<WorkerId>,
    offline_after: Duration,
}

impl Actor {
    /// Serves requests until every handle is gone; the store closes when this returns.
    fn run(mut self, mut receiver: mpsc::Receiver<Request>) {
        self.refresh_liveness();
        while let Some(request) = receiver.blocking_recv() {
            match request {
                Request::Apply { events, reply } => {
                    let now = GoTime::now_local();
                    let mut changes = Changes::default();
                    for event in &events {
                        self.model
                            .apply(event, now, &mut self.open_runs, &mut changes);
                    }
                    let result = self.commit(&changes).map(|()| changes.welcomes);
                    if result.is_ok() {
                        self.view.count_applied(events.len());
                    }
                    let _ = reply.send(result);
                }
                Request::Mutate { mutation, reply } => {
                    let mut changes = Changes::default();
                    let found = match &mutation {
                        Mutation::RemoveWorker(worker) => {
                            self.model.remove_worker(worker, &mut changes)
                        }
                        Mutation::FlushDisabled => {
                            let n_flushed = self.model.flush_disabled(&mut changes);
                            info!(n_flushed, "flushed disabled jobs");
                            true
                        }
                        Mutation::SetSize { key, size } => {
                            self.model.set_size(key, size, &mut changes)
                        }
                        Mutation::SetStatus { key, status } => {
                            self.model.set_status(key, *status, &mut changes)
                        }
                    };
                    let result = self.commit(&changes).map(|()| found);
                    let _ = reply.send(result);
                }
                Request::Liveness => self.refresh_liveness(),
            }
        }
    }

    /// Writes `changes`, then shows them; on failure, goes back to what the store holds.
    fn commit(&mut self, changes: &Changes) -> Result<(), StateError> {
        if changes.is_empty() {
            return Ok(());
        }
        if let Err(err) = self.store.commit(&self.model, changes) {
            error!(error = %tunasync_shared::error_chain(&err), "store commit failed; reloading the committed state");
            match self.store.load() {
                Ok(model) => self.model = model,
                Err(load_error) => {
                    error!(error = %tunasync_shared::error_chain(&load_error), "cannot reload the store");
                }
            }
            self.open_runs.clear();
            let model = self.model.clone();
            self.view.update(|shown, _| *shown = model);
            return Err(err.into());
        }
        for worker in &changes.workers {
            self.offline.remove(worker);
        }
        let model = &self.model;
        self.view.update(|shown, shown_offline| {
            for worker in &changes.removed_workers {
                shown.workers.remove(worker);
            }
            for key in &changes.removed_jobs {
                shown.jobs.remove(key);
            }
            for worker in &changes.workers {
                if let Some(record) = model.workers.get(worker) {
                    shown.workers.insert(worker.clone(), record.clone());
                }
            }
            for key in &changes.jobs {
                if let Some(record) = model.jobs.get(key) {
                    shown.jobs.insert(key.clone(), record.clone());
                }
            }
            for worker in &changes.workers {
                shown_offline.remove(worker);
            }
        });
        Ok(())
    }

    fn refresh_liveness(&mut self) {
        let now = chrono::Utc::now();
        let limit =
            chrono::Duration::from_std(self.offline_after).unwrap_or(chrono::TimeDelta::MAX);
        let offline: BTreeSet<WorkerId> = self
            .model
            .workers
            .iter()
            .filter(|(_, record)| {
                now.signed_duration_since(record.last_online.as_datetime()) > limit
            })
            .map(|(id, _)| id.clone())
            .collect();
        if offline != self.offline {
            for worker in offline.difference(&self.offline) {
                info!(%worker, "worker is offline: no heartbeat");
            }
            for worker in self.offline.difference(&offline) {
                info!(%worker, "worker is back online");
            }
            self.offline = offline;
            let offline = self.offline.clone();
            self.view.update(|_, shown| *shown = offline);
        }
    }
}
