//! The state actor: the one owner of the model and the store.
//!
//! It runs on its own thread, because redb is a blocking API: it takes batches of events and
//! API mutations from a bounded channel, applies each to the model, commits the changes in
//! one redb transaction, and only then shows them in the [`View`] and answers.
//!
//! A commit that fails (a full disk, an I/O error) does not lose the batch and does not
//! stop the store for good: the actor says so once in the log and in the view (so
//! `/readyz` answers 503), reopens the file at its last committed state, and applies the
//! batch again, backing off, until a commit succeeds. Meanwhile the batch's events stay
//! unacknowledged in the broker (ingestion waits for the answer), and API changes are
//! refused at once with [`StateError::Unavailable`] instead of waiting.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{debug, error, info, warn};
use tunasync_shared::error_chain;
use tunasync_shared::gotime::GoTime;
use tunasync_shared::maintenance::Scope;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::wire::command::Welcome;
use tunasync_shared::wire::pool::Grant;

use crate::legacy::handover::Handovers;
use crate::model::legacy::{LegacyPost, LegacyRefusal};
use crate::model::pools::{PoolKey, Publication};
use crate::model::{Changes, JobKey, Model, Verified};
use crate::notices::Notices;
use crate::once_log::OnceLog;
use crate::records::{Hold, RunRecord};
use crate::store::{Store, StoreError};
use crate::view::{Freshness, View};

/// How many requests may wait for the actor; senders wait when it is full.
const QUEUE: usize = 64;
/// Waits between attempts to commit again after a failure: doubling up to the cap.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_CAP: Duration = Duration::from_secs(5);
/// How often a waiting actor looks for requests to answer.
const POLL: Duration = Duration::from_millis(50);
/// The most `hello`s kept for Go workers' ids (one per id).
const MAX_PARKED: usize = 1024;

/// A change asked for through the API.
#[derive(Debug, Clone)]
pub enum Mutation {
    RemoveWorker(WorkerId),
    FlushDisabled,
    SetSize {
        key: JobKey,
        size: String,
    },
    /// `stop` / `disable`: the operator holds the job back.
    Hold {
        key: JobKey,
        hold: Hold,
    },
    /// `start` / `restart`: the hold ends.
    Release {
        key: JobKey,
    },
    /// The broker confirmed the publication of a pool run.
    PoolRunPublished {
        key: PoolKey,
        lease: u64,
        /// The retry deadline the publication was made with.
        retry_at: GoTime,
    },
    /// `start` / `restart` of a pooled mirror: due now.
    PoolStart {
        key: PoolKey,
        force: bool,
    },
    /// `stop` / `disable` / `restart` of a pooled mirror: its current run is over.
    PoolInterrupt {
        key: PoolKey,
    },
    /// `POST /maintenance`: false if the scope names nothing known.
    MaintenanceOn {
        scope: Scope,
        message: String,
    },
    /// `DELETE /maintenance`: false if the scope was not in maintenance.
    MaintenanceOff {
        scope: Scope,
    },
    /// The Go worker of this id is gone: the id is the broker's, and the `hello` kept for
    /// it is applied (false if it was not a Go worker's).
    ReleaseLegacy(WorkerId),
}

/// What to send once a batch is committed.
#[derive(Debug, Default)]
pub struct Replies {
    /// Answers to `hello`s.
    pub welcomes: Vec<(WorkerId, Welcome)>,
    /// Answers to claims of pool runs.
    pub grants: Vec<(WorkerId, Grant)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the store could not commit")]
    Store(#[from] StoreError),
    #[error("the store cannot commit at the moment: {0}")]
    Unavailable(String),
    #[error("the state actor has stopped")]
    Stopped,
}

type RepliesReply = oneshot::Sender<Result<Replies, StateError>>;

/// What a pool tick handed out, and when the next one has something to do.
#[derive(Default)]
pub struct PoolTicked {
    pub publications: Vec<Publication>,
    pub next: Option<GoTime>,
}

enum Request {
    Apply {
        events: Vec<Verified>,
        reply: RepliesReply,
    },
    PoolTick {
        reply: oneshot::Sender<PoolTicked>,
    },
    Mutate {
        mutation: Mutation,
        reply: oneshot::Sender<Result<bool, StateError>>,
    },
    Legacy {
        post: LegacyPost,
        reply: LegacyReply,
    },
    Liveness,
}

type LegacyReply = oneshot::Sender<Result<Result<(), LegacyRefusal>, StateError>>;

/// The answer to a submitted batch: what to send once it is committed.
pub struct Applied(oneshot::Receiver<Result<Replies, StateError>>);

impl Applied {
    /// Waits until the batch is committed (however long the store needs to recover).
    pub async fn committed(self) -> Result<Replies, StateError> {
        self.0.await.map_err(|_| StateError::Stopped)?
    }
}

/// A cheap handle to the actor.
#[derive(Clone)]
pub struct StateHandle {
    sender: mpsc::Sender<Request>,
    store: Arc<Store>,
    /// Go workers' ids a broker worker said `hello` under.
    handovers: Arc<Handovers>,
    /// Signalled when a committed change touched a pooled mirror.
    pool_changed: Arc<Notify>,
}

impl StateHandle {
    /// Starts the actor over an opened store and its model; returns the handle, the view, and
    /// a signal that fires once the actor has ended and closed the store (after every handle
    /// is dropped).
    pub fn start(
        store: Store,
        model: Model,
        offline_after: Duration,
        notices: Arc<Notices>,
    ) -> (StateHandle, Arc<View>, oneshot::Receiver<()>) {
        let store = Arc::new(store);
        let view = View::new(model.for_view());
        let (sender, receiver) = mpsc::channel(QUEUE);
        let (closed_tx, closed) = oneshot::channel();
        let pool_changed = Arc::new(Notify::new());
        let handovers = Arc::new(Handovers::default());
        let actor = Actor {
            handovers: handovers.clone(),
            parked: BTreeMap::new(),
            pool_changed: pool_changed.clone(),
            store: store.clone(),
            model,
            view: view.clone(),
            offline: BTreeSet::new(),
            offline_after,
            receiver,
            held: VecDeque::new(),
            failure: None,
            notices,
            claimed: OnceLog::default(),
        };
        let spawned = std::thread::Builder::new()
            .name("tunasync-state".into())
            .spawn(move || {
                actor.run();
                let _ = closed_tx.send(());
            });
        if let Err(err) = spawned {
            error!(error = %err, "cannot start the state thread");
        }
        (
            StateHandle {
                sender,
                store,
                handovers,
                pool_changed,
            },
            view,
            closed,
        )
    }

    /// Applies a batch of events in one transaction; returns what to send.
    pub async fn apply(&self, events: Vec<Verified>) -> Result<Replies, StateError> {
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

    /// Applies a Go worker's post (the `[legacy]` bridge) and commits it; the refusal, if
    /// the post changed nothing.
    pub async fn legacy(&self, post: LegacyPost) -> Result<Result<(), LegacyRefusal>, StateError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Request::Legacy { post, reply })
            .await
            .map_err(|_| StateError::Stopped)?;
        answer.await.map_err(|_| StateError::Stopped)?
    }

    /// Asks the actor to re-evaluate which workers are offline.
    pub fn check_liveness(&self) {
        let _ = self.sender.try_send(Request::Liveness);
    }

    /// Lets the pool scheduler hand out what is due (committed first); the pool runs to
    /// publish. Empty while the store cannot commit.
    pub async fn pool_tick(&self) -> PoolTicked {
        let (reply, answer) = oneshot::channel();
        if self.sender.send(Request::PoolTick { reply }).await.is_err() {
            return PoolTicked::default();
        }
        answer.await.unwrap_or_default()
    }

    /// Returns once a committed change touched a pooled mirror (a `start`, a claim, the end
    /// of a run, a new pooled mirror): the pool scheduler looks again at once.
    pub async fn pool_changed(&self) {
        self.pool_changed.notified().await;
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

    /// Go workers' ids a broker worker said `hello` under (the `[legacy]` handover reads
    /// them).
    pub fn handovers(&self) -> Arc<Handovers> {
        self.handovers.clone()
    }

    /// The store (the alert engine keeps its own tables in it).
    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// Whether the actor is still running (for readiness).
    pub fn is_running(&self) -> bool {
        !self.sender.is_closed()
    }

    /// [`StateHandle::is_running`] for a watchdog, without keeping the actor alive (the
    /// actor ends when the last handle is dropped).
    pub fn liveness(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let sender = self.sender.downgrade();
        move || sender.upgrade().is_some_and(|sender| !sender.is_closed())
    }
}

struct Actor {
    store: Arc<Store>,
    model: Model,
    view: Arc<View>,
    offline: BTreeSet<WorkerId>,
    offline_after: Duration,
    receiver: mpsc::Receiver<Request>,
    /// Requests that arrived while a failed commit was retried, in arrival order.
    held: VecDeque<Request>,
    /// Since the last commit failed, until one succeeds.
    failure: Option<Failure>,
    pool_changed: Arc<Notify>,
    /// Where committed maintenance sets go, to be published.
    notices: Arc<Notices>,
    /// Go workers' ids the broker's events were ignored for, already logged.
    claimed: OnceLog<WorkerId>,
    handovers: Arc<Handovers>,
    /// The newest `hello` under each Go worker's id, applied if the id moves to the broker.
    parked: BTreeMap<WorkerId, Verified>,
}

/// Why the actor stopped waiting for the store.
struct Stopping;

impl Actor {
    /// Serves requests until every handle is gone; the store closes when this returns.
    fn run(mut self) {
        self.refresh_liveness();
        loop {
            let request = match self.held.pop_front() {
                Some(request) => request,
                None => match self.receiver.blocking_recv() {
                    Some(request) => request,
                    None => break,
                },
            };
            let outcome = match request {
                Request::Apply { events, reply } => self.apply(events, reply),
                Request::PoolTick { reply } => self.pool_tick(reply),
                Request::Mutate { mutation, reply } => self.mutate(&mutation, reply),
                Request::Legacy { post, reply } => self.legacy(&post, reply),
                Request::Liveness => {
                    self.refresh_liveness();
                    Ok(())
                }
            };
            if outcome.is_err() {
                break;
            }
        }
        for request in self.held.drain(..) {
            refuse(request, || StateError::Stopped);
        }
    }

    /// Applies and commits a batch, trying again (on the reopened store) until it commits.
    fn apply(&mut self, events: Vec<Verified>, reply: RepliesReply) -> Result<(), Stopping> {
        loop {
            let now = GoTime::now_local();
            let mut changes = Changes::default();
            for event in &events {
                self.model.apply(event, now, &mut changes);
            }
            for worker in &changes.claimed_over_http {
                if self.claimed.first(worker.clone()) {
                    warn!(%worker, "events over the broker for the id of a Go worker registered over HTTP are ignored (logged once per worker): with [legacy] go_workers on, the id moves to the broker at a hello once the Go worker no longer answers at its URL (else `tunasynctl rm-worker -w ID`)");
                } else {
                    debug!(%worker, "ignored broker events for a Go worker's id");
                }
            }
            for hello in std::mem::take(&mut changes.parked_hellos) {
                if self.parked.len() < MAX_PARKED || self.parked.contains_key(&hello.worker) {
                    self.handovers.push(hello.worker.clone());
                    self.parked.insert(hello.worker.clone(), hello);
                }
            }
            if self.commit(&changes, Freshness::Eventual).is_ok() {
                self.view.count_applied(events.len());
                for (_, welcome) in &mut changes.welcomes {
                    welcome.offline_after_secs = Some(self.offline_after.as_secs());
                }
                for waited in &changes.pool_waits {
                    self.view.telemetry.record_pool_wait(*waited);
                }
                if !changes.pool_jobs.is_empty() {
                    self.pool_changed.notify_one();
                }
                let _ = reply.send(Ok(Replies {
                    welcomes: changes.welcomes,
                    grants: changes.grants,
                }));
                return Ok(());
            }
            if let Err(stopping) = self.recover() {
                let _ = reply.send(Err(StateError::Stopped));
                return Err(stopping);
            }
        }
    }

    fn pool_tick(&mut self, reply: oneshot::Sender<PoolTicked>) -> Result<(), Stopping> {
        let mut changes = Changes::default();
        let offline = &self.offline;
        let next = self.model.pool_tick(
            GoTime::now_local(),
            &|worker| !offline.contains(worker),
            &mut changes,
        );
        if self.commit(&changes, Freshness::Eventual).is_ok() {
            let _ = reply.send(PoolTicked {
                publications: changes.pool_runs,
                next,
            });
            return Ok(());
        }
        let _ = reply.send(PoolTicked::default());
        self.recover()
    }

    fn mutate(
        &mut self,
        mutation: &Mutation,
        reply: oneshot::Sender<Result<bool, StateError>>,
    ) -> Result<(), Stopping> {
        let mut changes = Changes::default();
        let found = match mutation {
            Mutation::RemoveWorker(worker) => self.model.remove_worker(worker, &mut changes),
            Mutation::FlushDisabled => {
                let n_flushed = self.model.flush_disabled(&mut changes);
                info!(n_flushed, "flushed disabled jobs");
                true
            }
            Mutation::SetSize { key, size } => self.model.set_size(key, size, &mut changes),
            Mutation::Hold { key, hold } => self.model.hold(key, *hold, &mut changes),
            Mutation::Release { key } => self.model.release(key, &mut changes),
            Mutation::PoolRunPublished {
                key,
                lease,
                retry_at,
            } => {
                self.model
                    .pool_run_published(key, *lease, *retry_at, &mut changes);
                true
            }
            Mutation::PoolStart { key, force } => {
                self.model
                    .pool_start(key, *force, GoTime::now_local(), &mut changes)
            }
            Mutation::PoolInterrupt { key } => {
                self.model
                    .pool_interrupt(key, GoTime::now_local(), &mut changes)
            }
            Mutation::MaintenanceOn { scope, message } => {
                self.model
                    .maintenance_on(scope, message, GoTime::now_local(), &mut changes)
            }
            Mutation::MaintenanceOff { scope } => {
                self.model
                    .maintenance_off(scope, GoTime::now_local(), &mut changes)
            }
            Mutation::ReleaseLegacy(worker) => {
                let released = self.model.release_legacy(worker, &mut changes);
                if released && let Some(hello) = self.parked.remove(worker) {
                    self.model.apply(&hello, GoTime::now_local(), &mut changes);
                }
                released
            }
        };
        match self.commit(&changes, Freshness::Immediate) {
            Ok(()) => {
                // A publication's confirm changes nothing the scheduler acts on now; a
                // maintenance change changes what it may hand out.
                let pools_changed = !changes.pool_jobs.is_empty()
                    && !matches!(mutation, Mutation::PoolRunPublished { .. });
                if pools_changed || changes.maintenance {
                    self.pool_changed.notify_one();
                }
                for (worker, set) in changes.maintenance_sets {
                    self.notices.maintenance(worker, set);
                }
                for (worker, mut welcome) in changes.welcomes {
                    welcome.offline_after_secs = Some(self.offline_after.as_secs());
                    self.notices.welcome(worker, welcome);
                }
                let _ = reply.send(Ok(found));
                Ok(())
            }
            Err(reason) => {
                // The change is refused; the store is made usable again before anything else.
                let _ = reply.send(Err(StateError::Unavailable(reason)));
                self.recover()
            }
        }
    }

    fn legacy(&mut self, post: &LegacyPost, reply: LegacyReply) -> Result<(), Stopping> {
        let mut changes = Changes::default();
        let offline = &self.offline;
        let outcome = self.model.apply_legacy(
            post,
            GoTime::now_local(),
            &|worker| !offline.contains(worker),
            &mut changes,
        );
        match self.commit(&changes, Freshness::Immediate) {
            Ok(()) => {
                if outcome.is_ok() && !matches!(post, LegacyPost::Register { .. }) {
                    self.view.count_applied(1);
                }
                let _ = reply.send(Ok(outcome));
                Ok(())
            }
            Err(reason) => {
                let _ = reply.send(Err(StateError::Unavailable(reason)));
                self.recover()
            }
        }
    }

    /// After a failed commit: waits (answering what arrives meanwhile), then reopens the
    /// store and reloads the model from it; repeats until the store is open again.
    fn recover(&mut self) -> Result<(), Stopping> {
        loop {
            let (delay, reason) = match &mut self.failure {
                Some(failure) => (failure.next_delay(), failure.reason.clone()),
                None => (RETRY_FIRST, String::new()),
            };
            self.wait(delay, &reason)?;
            match self.store.reopen() {
                Ok(model) => {
                    self.model = model;
                    return Ok(());
                }
                Err(err) => {
                    debug!(error = %error_chain(&err), "cannot reopen the store yet");
                }
            }
        }
    }

    /// Sleeps for `delay`, answering API changes at once (the store cannot take them) and
    /// keeping batches of events for later, in order.
    fn wait(&mut self, delay: Duration, reason: &str) -> Result<(), Stopping> {
        let until = Instant::now() + delay;
        loop {
            loop {
                match self.receiver.try_recv() {
                    Ok(Request::Liveness) => self.refresh_liveness(),
                    Ok(Request::PoolTick { reply }) => {
                        let _ = reply.send(PoolTicked::default());
                    }
                    Ok(request @ (Request::Mutate { .. } | Request::Legacy { .. })) => {
                        refuse(request, || StateError::Unavailable(reason.to_owned()));
                    }
                    Ok(request @ Request::Apply { .. }) => self.held.push_back(request),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return Err(Stopping),
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(POLL));
        }
    }

    /// Writes `changes`, then shows them (as soon as `freshness` says). A failure is noted (and logged) once, until a
    /// commit succeeds again; the error says why.
    fn commit(&mut self, changes: &Changes, freshness: Freshness) -> Result<(), String> {
        if changes.is_empty() {
            return Ok(());
        }
        if let Err(err) = self.store.commit(&self.model, changes) {
            let failure = self
                .failure
                .get_or_insert_with(|| Failure::new(&err, &self.view));
            return Err(failure.reason.clone());
        }
        if let Some(failure) = self.failure.take() {
            failure.recovered(&self.view);
        }
        for worker in &changes.workers {
            self.offline.remove(worker);
        }
        let model = &self.model;
        self.view.update(freshness, |shown| {
            for worker in &changes.removed_workers {
                shown.workers().remove(worker);
            }
            for key in &changes.removed_jobs {
                shown.remove_job(key);
            }
            for worker in &changes.workers {
                if let Some(record) = model.workers.get(worker) {
                    shown.workers().insert(worker.clone(), record.clone());
                }
            }
            for key in changes.jobs.iter().chain(&changes.progressed) {
                if let Some(record) = model.jobs.get(key) {
                    shown.set_job(key, record.for_view());
                }
            }
            for key in &changes.pool_jobs {
                match model.pool_jobs.get(key) {
                    Some(record) => {
                        shown.pool_jobs().insert(key.clone(), record.clone());
                    }
                    None => {
                        shown.pool_jobs().remove(key);
                    }
                }
            }
            for worker in &changes.workers {
                shown.set_online(worker);
            }
            if changes.maintenance {
                shown.set_maintenance(&model.maintenance);
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
            // A Go worker has no heartbeat: tunasync never marks it offline.
            .filter(|(_, record)| {
                !record.is_legacy()
                    && now.signed_duration_since(record.last_online.as_datetime()) > limit
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
            self.view
                .update(Freshness::Eventual, |shown| shown.set_offline(offline));
        }
    }
}

/// Answers a request that will not be served.
fn refuse(request: Request, error: impl Fn() -> StateError) {
    match request {
        Request::Apply { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
        Request::Mutate { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
        Request::Legacy { reply, .. } => {
            let _ = reply.send(Err(error()));
        }
        Request::PoolTick { reply } => {
            let _ = reply.send(PoolTicked::default());
        }
        Request::Liveness => {}
    }
}

/// A commit failure being recovered from: logged once when it starts and once when it ends.
struct Failure {
    reason: String,
    since: Instant,
    attempts: u32,
}

impl Failure {
    fn new(err: &StoreError, view: &View) -> Failure {
        let reason = error_chain(err);
        error!(
            error = %reason,
            "store commit failed: the events stay in the broker unacknowledged and API \
             changes are refused until a commit succeeds; reopening the store and retrying"
        );
        view.set_store_problem(Some(reason.clone()));
        Failure {
            reason,
            since: Instant::now(),
            attempts: 0,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = RETRY_FIRST
            .saturating_mul(2u32.saturating_pow(self.attempts.min(8)))
            .min(RETRY_CAP);
        self.attempts += 1;
        delay
    }

    fn recovered(self, view: &View) {
        info!(
            attempts = self.attempts,
            after = ?self.since.elapsed(),
            "the store commits again"
        );
        view.set_store_problem(None);
    }
}
