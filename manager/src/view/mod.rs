//! What the API reads: a copy of the committed model, plus the rendered `GET /jobs` bodies.
//!
//! **Invariant:** only the state actor writes the view, and only after the store committed,
//! through [`ViewEdit`], which records which jobs a change touched; API handlers only read.
//! The `GET /jobs` body (and its gzip) is rendered ahead of its readers, re-rendering only
//! the chunks the changes touched ([`crate::jobs_body`]); [`jobs`] says what a reader gets
//! while it renders.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use axum::body::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use tunasync_shared::compat::{MirrorStatus, WorkerStatus};
use tunasync_shared::gotime::GoTime;
use tunasync_shared::maintenance::{MaintenanceEntry, Scope};
use tunasync_shared::names::{MirrorName, WorkerId};

use crate::jobs_body::Dirty;
use crate::model::maintenance::{Maintenance, Window};
use crate::model::pools::PoolKey;
use crate::model::{JobKey, Model};
use crate::records::{JobRecord, PoolJobRecord, WorkerRecord};

mod jobs;

pub use jobs::Freshness;
use jobs::{Ahead, Rendering, ServedJobs};

pub struct View {
    inner: RwLock<ViewState>,
    /// What changed since the `GET /jobs` chunks were rendered: added to only under the
    /// write lock of `inner`, taken only under its read lock, so a render sees the changes
    /// of exactly the generation it renders.
    dirty: Mutex<Dirty>,
    /// The `GET /jobs` chunks. Held while they are brought up to date, so concurrent
    /// readers that missed the current body wait for one render instead of each doing
    /// their own.
    body: Mutex<Rendering>,
    /// Rendering ahead of the readers.
    ahead: Ahead,
    /// Why the store cannot commit, while it cannot (for `/readyz`).
    store_problem: Mutex<Option<String>>,
    /// What the manager counts as it goes (for `/metrics`).
    pub telemetry: crate::metrics::Telemetry,
}

/// Whether a job's worker can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Online,
    Offline,
    /// A pool: how many of its members are online.
    Pool {
        online_members: usize,
    },
}

/// What the status page shows: see [`View::page`].
pub struct PageData {
    pub generation: u64,
    pub jobs: Vec<(MirrorStatus, Presence)>,
    pub workers: Vec<(WorkerId, Presence)>,
    /// Every maintenance in force, widest first.
    pub maintenance: Vec<(Scope, Window)>,
}

#[derive(Default)]
struct ViewState {
    model: Model,
    offline: BTreeSet<WorkerId>,
    /// Counts changes (the status page's tag is made from it).
    generation: u64,
    /// Counts the changes that touched `GET /jobs` (a job's record, a job added or removed,
    /// a worker's presence), so a render can tell whether what it rendered is still
    /// current. A heartbeat that changes none of them keeps the served body.
    jobs_generation: u64,
    /// The last `GET /jobs` body rendered, current or being replaced.
    jobs: Option<ServedJobs>,
    /// Since when the installed body is behind (`None` while it is current).
    stale_since: Option<Instant>,
}

/// A change to the view, recording which `GET /jobs` entries it touches (see
/// [`View::update`]).
pub struct ViewEdit<'a> {
    model: &'a mut Model,
    offline: &'a mut BTreeSet<WorkerId>,
    dirty: &'a mut Dirty,
}

impl ViewEdit<'_> {
    pub fn set_job(&mut self, key: &JobKey, record: JobRecord) {
        let added = self.model.jobs.insert(key.clone(), record).is_none();
        // Before the first render every chunk renders anyway.
        if !self.dirty.all {
            if added {
                self.dirty.added_or_removed.insert(key.clone());
            } else {
                self.dirty.changed.insert(key.clone());
            }
        }
    }

    pub fn remove_job(&mut self, key: &JobKey) {
        if self.model.jobs.remove(key).is_some() && !self.dirty.all {
            self.dirty.added_or_removed.insert(key.clone());
        }
    }

    /// Workers' records (a worker's record is not part of `GET /jobs`).
    pub fn workers(&mut self) -> &mut BTreeMap<WorkerId, WorkerRecord> {
        &mut self.model.workers
    }

    pub fn pool_jobs(&mut self) -> &mut BTreeMap<PoolKey, PoolJobRecord> {
        &mut self.model.pool_jobs
    }

    pub fn set_maintenance(&mut self, maintenance: &Maintenance) {
        self.model.maintenance.clone_from(maintenance);
    }

    /// `worker` is online.
    pub fn set_online(&mut self, worker: &WorkerId) {
        if self.offline.remove(worker) {
            self.dirty.workers.insert(worker.clone());
        }
    }

    /// These workers are offline, the others online.
    pub fn set_offline(&mut self, offline: BTreeSet<WorkerId>) {
        for flipped in offline.symmetric_difference(self.offline) {
            self.dirty.workers.insert(flipped.clone());
        }
        *self.offline = offline;
    }
}

impl Drop for View {
    fn drop(&mut self) {
        self.ahead.close();
    }
}

impl View {
    pub fn new(model: Model) -> Arc<View> {
        Arc::new(View {
            inner: RwLock::new(ViewState {
                model,
                ..ViewState::default()
            }),
            dirty: Mutex::new(Dirty::everything()),
            body: Mutex::new(Rendering::default()),
            ahead: Ahead::default(),
            store_problem: Mutex::new(None),
            telemetry: crate::metrics::Telemetry::default(),
        })
    }

    pub(crate) fn set_store_problem(&self, problem: Option<String>) {
        *lock(&self.store_problem) = problem;
    }

    /// Why the store cannot commit, if it cannot.
    pub fn store_problem(&self) -> Option<String> {
        lock(&self.store_problem).clone()
    }

    pub(crate) fn count_applied(&self, n_events: usize) {
        self.telemetry.events_applied.inc_by(n_events as u64);
    }

    /// Events applied and committed since the manager started.
    pub fn events_applied(&self) -> u64 {
        self.telemetry.events_applied.get()
    }

    fn read(&self) -> RwLockReadGuard<'_, ViewState> {
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state, for a reader that shows jobs or workers through another route than
    /// `GET /jobs` (which then shows no less).
    fn read_shown(&self) -> RwLockReadGuard<'_, ViewState> {
        let state = self.read();
        self.note_seen(&state);
        state
    }

    fn write(&self) -> RwLockWriteGuard<'_, ViewState> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes what readers see (called by the state actor after a commit), as soon as
    /// `freshness` says.
    pub(crate) fn update(&self, freshness: Freshness, change: impl FnOnce(&mut ViewEdit<'_>)) {
        let mut state = self.write();
        let mut dirty = lock(&self.dirty);
        let before = dirty.size();
        let ViewState { model, offline, .. } = &mut *state;
        change(&mut ViewEdit {
            model,
            offline,
            dirty: &mut dirty,
        });
        let touched_jobs = dirty.size() != before;
        drop(dirty);
        state.generation += 1;
        if touched_jobs {
            state.jobs_generation += 1;
            state.stale_since.get_or_insert_with(Instant::now);
            if freshness == Freshness::Immediate {
                self.ahead.require_current();
            }
        }
        drop(state);
        if touched_jobs {
            self.ahead.changed();
        }
    }

    /// `GET /workers`: the workers, then the pools.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        let state = self.read_shown();
        let mut workers: Vec<WorkerStatus> = state
            .model
            .workers
            .iter()
            .map(|(id, record)| record.to_status(id, !state.offline.contains(id)))
            .collect();
        let pools =
            crate::pool_status::summaries(&state.model, &state.offline, GoTime::now_local());
        workers.extend(pools.iter().map(|pool| pool.to_worker_status()));
        for worker in &mut workers {
            let window = WorkerId::new(&worker.id)
                .ok()
                .and_then(|id| state.model.maintenance.of_worker(&id).cloned());
            worker.maintenance = window.map(|window| window.message);
        }
        workers
    }

    /// Whether `name` is a pool (its pooled mirrors show as its jobs).
    pub fn is_pool(&self, name: &WorkerId) -> bool {
        self.read().model.is_pool(name)
    }

    /// The member running (or granted) a pooled mirror's current run.
    pub fn pool_member(
        &self,
        pool: &tunasync_shared::names::PoolName,
        mirror: &MirrorName,
    ) -> Option<WorkerId> {
        self.read()
            .model
            .pool_member(&(pool.clone(), mirror.clone()))
            .cloned()
    }

    /// Whether `worker` names a known worker or a pool (whose pooled mirrors show as its
    /// jobs).
    pub fn has_worker(&self, worker: &WorkerId) -> bool {
        self.read().knows(worker)
    }

    /// The URL a Go worker registered over HTTP (`None` for a broker worker).
    pub fn legacy_url(&self, worker: &WorkerId) -> Option<String> {
        self.read().model.workers.get(worker)?.legacy_url.clone()
    }

    /// Whether `worker` (a worker, not a pool) is known and online.
    pub fn worker_online(&self, worker: &WorkerId) -> Option<bool> {
        let state = self.read_shown();
        state
            .model
            .workers
            .contains_key(worker)
            .then(|| !state.offline.contains(worker))
    }

    /// `GET /workers/{id}/jobs` (also for a pool): `None` for an unknown worker.
    pub fn worker_jobs(&self, worker: &WorkerId) -> Option<Vec<MirrorStatus>> {
        let state = self.read_shown();
        if !state.knows(worker) {
            return None;
        }
        let online = !state.offline.contains(worker);
        Some(
            state
                .model
                .jobs
                .iter()
                .filter(|((_, owner), _)| owner == worker)
                .map(|(key, job)| shown(&state.model, key, job, online))
                .collect(),
        )
    }

    /// One job as tunasync shows it, if it exists.
    pub fn job(&self, worker: &WorkerId, mirror: &MirrorName) -> Option<MirrorStatus> {
        let state = self.read_shown();
        let online = !state.offline.contains(worker);
        let key = (mirror.clone(), worker.clone());
        state
            .model
            .jobs
            .get(&key)
            .map(|job| shown(&state.model, &key, job, online))
    }

    /// `GET /maintenance`.
    pub fn maintenance(&self) -> Vec<MaintenanceEntry> {
        self.read().model.maintenance.entries()
    }

    /// One maintenance in force.
    pub fn maintenance_of(&self, scope: &Scope) -> Option<MaintenanceEntry> {
        let state = self.read();
        let window = state.model.maintenance.windows.get(scope)?;
        Some(MaintenanceEntry::new(scope, &window.message, window.since))
    }

    /// Counts changes (the status page's tag is made from it).
    pub fn generation(&self) -> u64 {
        self.read().generation
    }

    /// One job with its owner's presence, if it exists.
    pub fn job_with_presence(
        &self,
        worker: &WorkerId,
        mirror: &MirrorName,
    ) -> Option<(MirrorStatus, Presence)> {
        let state = self.read_shown();
        let presence = state.presence(worker);
        let key = (mirror.clone(), worker.clone());
        state.model.jobs.get(&key).map(|job| {
            let online = presence != Presence::Offline;
            (shown(&state.model, &key, job, online), presence)
        })
    }

    /// The status page's data: every job (sorted by name, then worker) with its worker's
    /// presence, and every worker and pool.
    pub fn page(&self) -> PageData {
        let state = self.read_shown();
        // The model's map is ordered by mirror, then worker: the page's order.
        let jobs: Vec<(MirrorStatus, Presence)> = state
            .model
            .jobs
            .iter()
            .map(|(key, job)| {
                let presence = state.presence(&key.1);
                let status = shown(&state.model, key, job, presence != Presence::Offline);
                (status, presence)
            })
            .collect();
        let pools: BTreeSet<WorkerId> = state
            .model
            .pool_jobs
            .keys()
            .map(|(pool, _)| pool.as_worker_id())
            .filter(|id| !state.model.workers.contains_key(id))
            .collect();
        let workers: Vec<(WorkerId, Presence)> = state
            .model
            .workers
            .keys()
            .chain(&pools)
            .map(|id| (id.clone(), state.presence(id)))
            .collect();
        PageData {
            generation: state.generation,
            jobs,
            workers,
            maintenance: state
                .model
                .maintenance
                .windows
                .iter()
                .map(|(scope, window)| (scope.clone(), window.clone()))
                .collect(),
        }
    }

    /// Runs `read` on the model and the offline workers, under the view's lock (for the
    /// metrics' scrape: keep it short).
    pub fn with_state<R>(&self, read: impl FnOnce(&Model, &BTreeSet<WorkerId>) -> R) -> R {
        let state = self.read_shown();
        read(&state.model, &state.offline)
    }
}

impl ViewState {
    /// A job owner's presence: a worker's liveness, or a pool's members online.
    fn presence(&self, owner: &WorkerId) -> Presence {
        if self.model.workers.contains_key(owner) {
            return if self.offline.contains(owner) {
                Presence::Offline
            } else {
                Presence::Online
            };
        }
        let pool = tunasync_shared::names::PoolName::new(owner.as_str());
        let online_members = pool.map_or(0, |pool| {
            self.model
                .pool_members(&pool)
                .iter()
                .filter(|member| !self.offline.contains(*member))
                .count()
        });
        Presence::Pool { online_members }
    }

    fn knows(&self, worker: &WorkerId) -> bool {
        self.model.workers.contains_key(worker) || self.model.is_pool(worker)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `data` in gzip at the level bodies are served with.
pub(crate) fn compress(data: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 8), Compression::new(6));
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// A job as our endpoints show it: tunasync's record, with its maintenance.
fn shown(model: &Model, key: &JobKey, job: &JobRecord, online: bool) -> MirrorStatus {
    let (mirror, worker) = key;
    let mut status = job.to_status(mirror, worker, online);
    status.maintenance = model
        .maintenance
        .of_job(key)
        .map(|(_, window)| window.message.clone());
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{JobRecord, WorkerRecord};
    use tunasync_shared::gotime::GoTime;
    use tunasync_shared::status::SyncStatus;

    #[test]
    fn jobs_are_sorted_by_name_then_worker_and_cached_until_a_change() {
        let mut model = Model::default();
        for worker in ["w2", "w1"] {
            let id = WorkerId::new(worker).unwrap();
            model
                .workers
                .insert(id.clone(), WorkerRecord::new(GoTime::ZERO));
            for mirror in ["zeta", "alpha"] {
                model.jobs.insert(
                    (MirrorName::new(mirror).unwrap(), id.clone()),
                    JobRecord::default(),
                );
            }
        }
        let view = View::new(model);
        assert_eq!(view.jobs_etag(), None, "nothing rendered yet");
        let (pieces, tag) = view.jobs(false);
        let body = pieces.to_vec();
        assert_eq!(view.jobs_etag(), Some(tag));
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
        let names: Vec<&str> = entries
            .iter()
            .map(|entry| entry["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["alpha", "alpha", "zeta", "zeta"]);
        assert!(view.jobs(false).0.is_same(&pieces), "served from the cache");

        let (gzip, gzip_tag) = view.jobs(true);
        assert_eq!(gzip_tag, tag, "one tag for both encodings");
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&gzip.to_vec()[..]),
            &mut decoded,
        )
        .unwrap();
        assert_eq!(decoded, body);

        // A change that touches no job (a heartbeat) keeps the served body.
        let w1 = WorkerId::new("w1").unwrap();
        let generation = view.generation();
        let (served, _) = view.cached_jobs(false).expect("rendered");
        view.update(Freshness::Immediate, |shown| {
            shown
                .workers()
                .insert(w1.clone(), WorkerRecord::new(GoTime::now_local()));
        });
        assert!(view.generation() > generation, "the page sees every change");
        let (kept, kept_tag) = view.cached_jobs(false).expect("still served");
        assert!(kept.is_same(&served) && kept_tag == tag);
        // A job written again as it was renders again, to the same tag.
        view.update(Freshness::Immediate, |shown| {
            shown.set_job(
                &(MirrorName::new("alpha").unwrap(), w1.clone()),
                JobRecord::default(),
            );
        });
        // Made through the API: no reader gets the body from before it (here the same
        // bytes, rendered again by the reader or the renderer).
        assert!(view.jobs_etag().is_none_or(|now| now == tag));
        assert_eq!(view.jobs(false).1, tag);
        let syncing = JobRecord {
            status: SyncStatus::Syncing,
            ..JobRecord::default()
        };
        view.update(Freshness::Immediate, |shown| {
            for mirror in ["zeta", "alpha"] {
                shown.set_job(
                    &(MirrorName::new(mirror).unwrap(), w1.clone()),
                    syncing.clone(),
                );
            }
            shown.set_offline(BTreeSet::from([w1.clone()]));
        });
        let (after, after_tag) = view.jobs(false);
        let after = after.to_vec();
        assert_ne!(after_tag, tag);
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&after).unwrap();
        let failed = entries
            .iter()
            .filter(|entry| entry["status"] == "failed")
            .count();
        assert_eq!(failed, 2, "the offline worker's running jobs show failed");
    }

    fn syncing_body(view: &View) -> bool {
        let (body, _) = view.cached_jobs(false).expect("a body to serve");
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&body.to_vec()).unwrap();
        entries.iter().all(|entry| entry["status"] == "syncing")
    }

    #[test]
    fn events_are_rendered_ahead_of_the_readers_who_never_see_less_than_elsewhere() {
        let w1 = WorkerId::new("w1").unwrap();
        let key = (MirrorName::new("alpha").unwrap(), w1.clone());
        let mut model = Model::default();
        model
            .workers
            .insert(w1.clone(), WorkerRecord::new(GoTime::ZERO));
        model.jobs.insert(key.clone(), JobRecord::default());
        let view = View::new(model);
        let syncing = JobRecord {
            status: SyncStatus::Syncing,
            ..JobRecord::default()
        };

        // Before anyone read GET /jobs nothing renders ahead: the reader renders.
        view.update(Freshness::Eventual, |shown| {
            shown.set_job(&key, JobRecord::default());
        });
        assert!(view.cached_jobs(false).is_none());
        let (_, first_tag) = view.jobs(true);
        let (first, _) = view.cached_jobs(false).expect("rendered");

        // Once read, an event's change is rendered by the renderer; until then readers get
        // the body it replaces, not a wait.
        view.update(Freshness::Eventual, |shown| {
            shown.set_job(&key, syncing.clone())
        });
        let (served, _) = view
            .cached_jobs(false)
            .expect("served while the renderer works");
        assert!(served.is_same(&first) || syncing_body(&view));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !syncing_body(&view) {
            assert!(
                std::time::Instant::now() < deadline,
                "the renderer rendered it"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (_, tag) = view.cached_jobs(true).expect("gzip rendered ahead too");
        assert_ne!(tag, first_tag);

        // A reader who saw the change elsewhere gets it from GET /jobs too.
        view.update(Freshness::Eventual, |shown| {
            shown.set_job(&key, JobRecord::default());
        });
        let seen = view.worker_jobs(&w1).unwrap();
        assert_eq!(seen[0].status, SyncStatus::None);
        let (body, _) = view.jobs(false);
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&body.to_vec()).unwrap();
        assert_eq!(entries[0]["status"], "none");
    }
}
