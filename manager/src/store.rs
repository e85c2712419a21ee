//! The redb file: the only place the manager's state is persisted.
//!
//! **Invariant:** only this module touches redb. Writes come from the state actor alone, one
//! transaction per batch of changes, so the file is never half-written.
//!
//! After a failed write redb refuses every later transaction until the file is opened again;
//! [`Store::reopen`] does that (redb then goes back to the last committed transaction).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tunasync_shared::maintenance::{Scope, ScopeKeyError};
use tunasync_shared::names::{MirrorName, NameError, PoolName, WorkerId};

use crate::model::maintenance::Window;
use crate::model::{Changes, JobKey, Model};
use crate::records::{
    self, CurrentRun, Hold, JobRecord, PoolJobRecord, RecordError, RunRecord, WorkerRecord,
};

/// The layout of the tables below. Version 2 added the operator's holds to job records; a
/// version 1 file is upgraded when opened (a paused or disabled job is held).
const SCHEMA_VERSION: u64 = 2;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// worker id → [`WorkerRecord`]
const WORKERS: TableDefinition<&str, &[u8]> = TableDefinition::new("workers");
/// (worker id, mirror) → [`JobRecord`]
const JOBS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("jobs");
/// (worker id, mirror, run key) → [`RunRecord`]; run keys grow with time. A pooled
/// mirror's runs are under its pool's name, keyed by lease.
const HISTORY: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("history");
/// (pool, mirror) → [`PoolJobRecord`]: the schedule of each pooled mirror.
const POOL_JOBS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("pool_jobs");
/// maintenance scope ([`Scope::key`]) → [`Window`]; its generation is `meta`'s
/// `maintenance_generation`. (Added within schema 2: a file without it has none.)
const MAINTENANCE: TableDefinition<&str, &[u8]> = TableDefinition::new("maintenance");
const MAINTENANCE_GENERATION: &str = "maintenance_generation";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}")]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("the store has schema version {found}; this build reads version {SCHEMA_VERSION}")]
    Schema { found: u64 },
    #[error("store operation failed")]
    Redb(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("bad record {key} in the store")]
    Record {
        key: String,
        #[source]
        source: RecordError,
    },
    #[error("bad key {key:?} in the store")]
    Key {
        key: String,
        #[source]
        source: NameError,
    },
    #[error("bad maintenance key in the store")]
    Scope(#[source] ScopeKeyError),
    #[error("the store {path} is not open (reopening it failed)")]
    Closed { path: String },
}

pub(crate) fn redb_error<E: std::error::Error + Send + Sync + 'static>(err: E) -> StoreError {
    StoreError::Redb(Box::new(err))
}

pub struct Store {
    path: PathBuf,
    /// `None` only while reopening failed.
    db: RwLock<Option<Database>>,
    runs_per_job: u32,
}

/// The open database, for one operation.
pub(crate) struct Open<'a>(RwLockReadGuard<'a, Option<Database>>, &'a Path);

impl Open<'_> {
    pub(crate) fn db(&self) -> Result<&Database, StoreError> {
        self.0.as_ref().ok_or_else(|| StoreError::Closed {
            path: self.1.display().to_string(),
        })
    }
}

/// redb's page cache. Its default is 1 GiB, which a long-running manager fills as its
/// history grows (seen in the soak bench row as RSS climbing); every read the manager makes
/// at run time is of one job's history or the alerts' tables, which the OS page cache
/// serves as well.
pub const CACHE_BYTES: usize = 32 << 20;

fn open_file(path: &Path) -> Result<Database, StoreError> {
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })
}

impl Store {
    /// Opens (or creates) the file and reads everything into a [`Model`].
    pub fn open(path: &Path, runs_per_job: u32) -> Result<(Store, Model), StoreError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(parent);
        }
        let db = open_file(path)?;
        let store = Store {
            path: path.to_owned(),
            db: RwLock::new(Some(db)),
            runs_per_job,
        };
        store.init_schema()?;
        let model = store.load()?;
        Ok((store, model))
    }

    /// Closes the file and opens it again, at its last committed state; reads it back.
    pub fn reopen(&self) -> Result<Model, StoreError> {
        {
            let mut db = self.write_lock();
            // The old handle must be gone first: redb locks the file while it is open.
            *db = None;
            *db = Some(open_file(&self.path)?);
        }
        self.load()
    }

    pub(crate) fn open_db(&self) -> Open<'_> {
        Open(
            self.db
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            &self.path,
        )
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, Option<Database>> {
        self.db
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn init_schema(&self) -> Result<(), StoreError> {
        let open = self.open_db();
        let tx = open.db()?.begin_write().map_err(redb_error)?;
        {
            let mut meta = tx.open_table(META).map_err(redb_error)?;
            let found = meta
                .get("schema")
                .map_err(redb_error)?
                .map(|value| value.value());
            tx.open_table(WORKERS).map_err(redb_error)?;
            let mut jobs = tx.open_table(JOBS).map_err(redb_error)?;
            tx.open_table(HISTORY).map_err(redb_error)?;
            tx.open_table(POOL_JOBS).map_err(redb_error)?;
            tx.open_table(MAINTENANCE).map_err(redb_error)?;
            match found {
                None => {}
                Some(1) => hold_what_the_operator_stopped(&mut jobs)?,
                Some(SCHEMA_VERSION) => {}
                Some(found) => return Err(StoreError::Schema { found }),
            }
            if found != Some(SCHEMA_VERSION) {
                meta.insert("schema", SCHEMA_VERSION).map_err(redb_error)?;
            }
        }
        tx.commit().map_err(redb_error)
    }

    /// Everything but the run history (of which only each job's newest entry).
    pub fn load(&self) -> Result<Model, StoreError> {
        let open = self.open_db();
        let tx = open.db()?.begin_read().map_err(redb_error)?;
        let mut model = Model::default();
        let workers = tx.open_table(WORKERS).map_err(redb_error)?;
        for entry in workers.iter().map_err(redb_error)? {
            let (key, value) = entry.map_err(redb_error)?;
            let id = worker_id(key.value())?;
            let record: WorkerRecord = decode(key.value(), value.value())?;
            model.workers.insert(id, record);
        }
        let jobs = tx.open_table(JOBS).map_err(redb_error)?;
        let history = tx.open_table(HISTORY).map_err(redb_error)?;
        for entry in jobs.iter().map_err(redb_error)? {
            let (key, value) = entry.map_err(redb_error)?;
            let (worker, mirror) = key.value();
            let shown = format!("{worker}/{mirror}");
            let mut record: JobRecord = decode(&shown, value.value())?;
            let runs = (worker, mirror, 0)..=(worker, mirror, u64::MAX);
            if let Some(newest) = history.range(runs).map_err(redb_error)?.next_back() {
                let (key, value) = newest.map_err(redb_error)?;
                let (_, _, run_key) = key.value();
                record.current_run = Some(CurrentRun {
                    key: run_key,
                    record: decode(&format!("{shown}#{run_key}"), value.value())?,
                });
            }
            model
                .jobs
                .insert((mirror_name(mirror)?, worker_id(worker)?), record);
        }
        let pool_jobs = tx.open_table(POOL_JOBS).map_err(redb_error)?;
        for entry in pool_jobs.iter().map_err(redb_error)? {
            let (key, value) = entry.map_err(redb_error)?;
            let (pool, mirror) = key.value();
            let record: PoolJobRecord = decode(&format!("pool {pool}/{mirror}"), value.value())?;
            model
                .pool_jobs
                .insert((pool_name(pool)?, mirror_name(mirror)?), record);
        }
        let meta = tx.open_table(META).map_err(redb_error)?;
        model.maintenance.generation = meta
            .get(MAINTENANCE_GENERATION)
            .map_err(redb_error)?
            .map_or(0, |value| value.value());
        let maintenance = tx.open_table(MAINTENANCE).map_err(redb_error)?;
        for entry in maintenance.iter().map_err(redb_error)? {
            let (key, value) = entry.map_err(redb_error)?;
            let scope = Scope::from_key(key.value()).map_err(StoreError::Scope)?;
            let window: Window = decode(key.value(), value.value())?;
            model.maintenance.windows.insert(scope, window);
        }
        Ok(model)
    }

    /// Writes `changes` (values taken from `model`) in one transaction.
    pub fn commit(&self, model: &Model, changes: &Changes) -> Result<(), StoreError> {
        let open = self.open_db();
        let tx = open.db()?.begin_write().map_err(redb_error)?;
        {
            let mut workers = tx.open_table(WORKERS).map_err(redb_error)?;
            let mut jobs = tx.open_table(JOBS).map_err(redb_error)?;
            let mut history = tx.open_table(HISTORY).map_err(redb_error)?;
            let mut pool_jobs = tx.open_table(POOL_JOBS).map_err(redb_error)?;
            if changes.maintenance {
                let mut maintenance = tx.open_table(MAINTENANCE).map_err(redb_error)?;
                maintenance.retain(|_, _| false).map_err(redb_error)?;
                for (scope, window) in &model.maintenance.windows {
                    maintenance
                        .insert(scope.key().as_str(), records::encode(window).as_slice())
                        .map_err(redb_error)?;
                }
                let mut meta = tx.open_table(META).map_err(redb_error)?;
                meta.insert(MAINTENANCE_GENERATION, model.maintenance.generation)
                    .map_err(redb_error)?;
            }
            for key in &changes.pool_jobs {
                let (pool, mirror) = key;
                let stored_key = (pool.as_str(), mirror.as_str());
                match model.pool_jobs.get(key) {
                    Some(record) => {
                        pool_jobs
                            .insert(stored_key, records::encode(record).as_slice())
                            .map_err(redb_error)?;
                    }
                    None => {
                        pool_jobs.remove(stored_key).map_err(redb_error)?;
                    }
                }
            }
            for worker in &changes.removed_workers {
                workers.remove(worker.as_str()).map_err(redb_error)?;
            }
            for (mirror, worker) in &changes.removed_jobs {
                jobs.remove((worker.as_str(), mirror.as_str()))
                    .map_err(redb_error)?;
                let range = (worker.as_str(), mirror.as_str(), 0)
                    ..=(worker.as_str(), mirror.as_str(), u64::MAX);
                history.retain_in(range, |_, _| false).map_err(redb_error)?;
            }
            for worker in &changes.workers {
                if let Some(record) = model.workers.get(worker) {
                    workers
                        .insert(worker.as_str(), records::encode(record).as_slice())
                        .map_err(redb_error)?;
                }
            }
            for key in &changes.jobs {
                if let Some(record) = model.jobs.get(key) {
                    let (mirror, worker) = key;
                    jobs.insert(
                        (worker.as_str(), mirror.as_str()),
                        records::encode(record).as_slice(),
                    )
                    .map_err(redb_error)?;
                }
            }
            let mut new_runs: HashSet<&JobKey> = HashSet::new();
            for (key, run) in &changes.runs {
                if !model.jobs.contains_key(key) {
                    continue;
                }
                let (mirror, worker) = key;
                let previous = history
                    .insert(
                        (worker.as_str(), mirror.as_str(), run.key),
                        records::encode(&run.record).as_slice(),
                    )
                    .map_err(redb_error)?;
                if previous.is_none() {
                    new_runs.insert(key);
                }
            }
            for (key, late) in &changes.late_runs {
                if !model.jobs.contains_key(key) {
                    continue;
                }
                if complete_late_run(&mut history, key, late)? {
                    new_runs.insert(key);
                }
            }
            for (mirror, worker) in new_runs {
                let range = (worker.as_str(), mirror.as_str(), 0)
                    ..=(worker.as_str(), mirror.as_str(), u64::MAX);
                let count = history.range(range.clone()).map_err(redb_error)?.count();
                let excess = count.saturating_sub(self.runs_per_job as usize);
                if excess > 0 {
                    let mut dropped = 0;
                    history
                        .retain_in(range, |_, _| {
                            dropped += 1;
                            dropped > excess
                        })
                        .map_err(redb_error)?;
                }
            }
        }
        tx.commit().map_err(redb_error)
    }

    /// The recorded runs of one job, newest first.
    pub fn history(
        &self,
        worker: &WorkerId,
        mirror: &MirrorName,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let open = self.open_db();
        let tx = open.db()?.begin_read().map_err(redb_error)?;
        let history = tx.open_table(HISTORY).map_err(redb_error)?;
        let range =
            (worker.as_str(), mirror.as_str(), 0)..=(worker.as_str(), mirror.as_str(), u64::MAX);
        let mut runs = Vec::new();
        for entry in history.range(range).map_err(redb_error)?.rev() {
            let (key, value) = entry.map_err(redb_error)?;
            let (worker, mirror, run) = key.value();
            runs.push(decode(&format!("{worker}/{mirror}#{run}"), value.value())?);
        }
        Ok(runs)
    }

    /// How many history entries the store holds (for tests and metrics).
    pub fn history_len(&self) -> Result<u64, StoreError> {
        let open = self.open_db();
        let tx = open.db()?.begin_read().map_err(redb_error)?;
        tx.open_table(HISTORY)
            .map_err(redb_error)?
            .len()
            .map_err(redb_error)
    }
}

/// Schema 1 → 2: before holds were stored, a paused or disabled job was the operator's doing
/// (or a reload's removal, which a flush clears), so it is held.
fn hold_what_the_operator_stopped(
    jobs: &mut redb::Table<'_, (&'static str, &'static str), &'static [u8]>,
) -> Result<(), StoreError> {
    let mut upgraded = Vec::new();
    for entry in jobs.iter().map_err(redb_error)? {
        let (key, value) = entry.map_err(redb_error)?;
        let (worker, mirror) = key.value();
        let mut record: JobRecord = decode(&format!("{worker}/{mirror}"), value.value())?;
        if record.hold.is_none()
            && let Some(hold) = Hold::of(record.status)
        {
            record.hold = Some(hold);
            upgraded.push((worker.to_owned(), mirror.to_owned(), record));
        }
    }
    for (worker, mirror, record) in upgraded {
        jobs.insert(
            (worker.as_str(), mirror.as_str()),
            records::encode(&record).as_slice(),
        )
        .map_err(redb_error)?;
    }
    Ok(())
}

/// Writes the end of an older run reported late ([`Changes::late_runs`]): into the run's
/// entry if it has one that never got its end (or was ended as lost), else as a new entry
/// under the late report's number. An entry that has its end is left alone. Returns whether
/// an entry was added.
fn complete_late_run(
    history: &mut redb::Table<(&str, &str, u64), &[u8]>,
    (mirror, worker): &JobKey,
    late: &CurrentRun,
) -> Result<bool, StoreError> {
    let range =
        (worker.as_str(), mirror.as_str(), 0)..=(worker.as_str(), mirror.as_str(), u64::MAX);
    let mut found: Option<(u64, RunRecord)> = None;
    for entry in history.range(range).map_err(redb_error)?.rev() {
        let (key, value) = entry.map_err(redb_error)?;
        let (_, _, number) = key.value();
        let Ok(record) = records::decode::<RunRecord>(value.value()) else {
            continue;
        };
        if record.run_id == late.record.run_id {
            found = Some((number, record));
            break;
        }
    }
    let (number, record) = match found {
        Some((number, mut record)) => {
            let ended = !record.ended.is_zero() && record.error_msg != crate::model::LOST_END_ERROR;
            if ended {
                return Ok(false);
            }
            record.result = late.record.result;
            record.ended = late.record.ended;
            record.attempts = record.attempts.max(late.record.attempts);
            record.error_msg.clone_from(&late.record.error_msg);
            if !late.record.size.is_empty() {
                record.size.clone_from(&late.record.size);
            }
            (number, record)
        }
        None => (late.key, late.record.clone()),
    };
    let previous = history
        .insert(
            (worker.as_str(), mirror.as_str(), number),
            records::encode(&record).as_slice(),
        )
        .map_err(redb_error)?;
    Ok(previous.is_none())
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    records::decode(bytes).map_err(|source| StoreError::Record {
        key: key.to_owned(),
        source,
    })
}

fn worker_id(text: &str) -> Result<WorkerId, StoreError> {
    WorkerId::new(text).map_err(|source| StoreError::Key {
        key: text.to_owned(),
        source,
    })
}

fn pool_name(text: &str) -> Result<PoolName, StoreError> {
    PoolName::new(text).map_err(|source| StoreError::Key {
        key: text.to_owned(),
        source,
    })
}

fn mirror_name(text: &str) -> Result<MirrorName, StoreError> {
    MirrorName::new(text).map_err(|source| StoreError::Key {
        key: text.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tunasync_shared::gotime::GoTime;
    use tunasync_shared::status::SyncStatus;
    use tunasync_shared::wire::event::{Event, JobStatus};
    use uuid::Uuid;

    use crate::model::Verified;

    fn status_event(mirror: &str, status: SyncStatus, run: Uuid) -> Event {
        Event::Status(JobStatus {
            mirror: MirrorName::new(mirror).unwrap(),
            status,
            run_id: run,
            attempt: 1,
            at: GoTime::now_local(),
            upstream: "rsync://up/".into(),
            is_master: true,
            size: Some("1G".into()),
            error_msg: String::new(),
            pooled: None,
            transferred_bytes: None,
            ends_run: false,
        })
    }

    #[test]
    fn maintenance_survives_reopening_and_ending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tunasync.redb");
        let worker = WorkerId::new("w1").unwrap();
        let (store, mut model) = Store::open(&path, 3).unwrap();
        let mut changes = Changes::default();
        model.apply(
            &Verified {
                worker: worker.clone(),
                seq: 1,
                event: status_event("debian", SyncStatus::Success, Uuid::new_v4()),
            },
            GoTime::now_local(),
            &mut changes,
        );
        let job = Scope::Job(worker.clone(), MirrorName::new("debian").unwrap());
        for (scope, message) in [(Scope::Cluster, "upgrade"), (job.clone(), "disk")] {
            assert!(model.maintenance_on(&scope, message, GoTime::now_local(), &mut changes));
        }
        store.commit(&model, &changes).unwrap();
        let reopened = store.reopen().unwrap();
        assert_eq!(reopened.maintenance, model.maintenance);
        assert_eq!(reopened.maintenance.windows.len(), 2);

        let mut changes = Changes::default();
        assert!(model.maintenance_off(&Scope::Cluster, GoTime::now_local(), &mut changes));
        store.commit(&model, &changes).unwrap();
        drop(store);
        let (_, reopened) = Store::open(&path, 3).unwrap();
        assert_eq!(reopened.maintenance, model.maintenance);
        let left: Vec<&Scope> = reopened.maintenance.windows.keys().collect();
        assert_eq!(left, [&job]);
    }

    /// Events a queue redelivered out of order (a quorum queue whose node died): the end of
    /// an older run that arrives after a newer run's report is still recorded, once.
    #[test]
    fn late_ends_of_older_runs_reach_the_history_once() {
        let dir = tempfile::tempdir().unwrap();
        let worker = WorkerId::new("w1").unwrap();
        let (store, mut model) = Store::open(&dir.path().join("tunasync.redb"), 10).unwrap();
        let ended = |status, run| match status_event("debian", status, run) {
            Event::Status(mut status) => {
                status.ends_run = true;
                Event::Status(status)
            }
            _ => unreachable!(),
        };
        let (first, second, third) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        // Applied in this order; the numbers are the order they were published in. Run one
        // is a one-event run (no entry before its end); run two began (pre-syncing, 2) and
        // its end (4) comes after run three's end (5); then copies of both late ends.
        let arrivals = [
            (2, status_event("debian", SyncStatus::PreSyncing, second)),
            (5, ended(SyncStatus::Success, third)),
            (1, ended(SyncStatus::Success, first)),
            (4, ended(SyncStatus::Failed, second)),
            (1, ended(SyncStatus::Success, first)),
            (4, ended(SyncStatus::Failed, second)),
        ];
        for (seq, event) in arrivals {
            let mut changes = Changes::default();
            let verified = Verified {
                worker: worker.clone(),
                seq,
                event,
            };
            model.apply(&verified, GoTime::now_local(), &mut changes);
            store.commit(&model, &changes).unwrap();
        }
        let runs = store
            .history(&worker, &MirrorName::new("debian").unwrap())
            .unwrap();
        let seen: Vec<(Uuid, SyncStatus)> =
            runs.iter().map(|run| (run.run_id, run.result)).collect();
        assert_eq!(
            seen,
            [
                (third, SyncStatus::Success),
                (second, SyncStatus::Failed),
                (first, SyncStatus::Success),
            ]
        );
        assert!(runs.iter().all(|run| !run.ended.is_zero()));
        let job = &model.jobs[&(MirrorName::new("debian").unwrap(), worker)];
        assert_eq!(
            job.status,
            SyncStatus::Success,
            "late reports change nothing shown"
        );
        assert_eq!(job.run_id, Some(third));
    }

    #[test]
    fn state_survives_reopening_and_history_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/tunasync.redb");
        let worker = WorkerId::new("w1").unwrap();
        let (store, mut model) = Store::open(&path, 3).unwrap();
        assert!(model.jobs.is_empty());
        let mut seq = 0;
        for _ in 0..5 {
            let run = Uuid::new_v4();
            for status in [
                SyncStatus::PreSyncing,
                SyncStatus::Syncing,
                SyncStatus::Success,
            ] {
                seq += 1;
                let mut changes = Changes::default();
                let verified = Verified {
                    worker: worker.clone(),
                    seq,
                    event: status_event("debian", status, run),
                };
                model.apply(&verified, GoTime::now_local(), &mut changes);
                store.commit(&model, &changes).unwrap();
            }
        }
        let mirror = MirrorName::new("debian").unwrap();
        let history = store.history(&worker, &mirror).unwrap();
        assert_eq!(history.len(), 3, "bounded to runs_per_job");
        assert!(history.iter().all(|run| run.result == SyncStatus::Success));
        assert!(
            history[0].started.as_datetime() >= history[2].started.as_datetime(),
            "newest first"
        );
        drop(store);

        let (store, reopened) = Store::open(&path, 3).unwrap();
        assert_eq!(reopened, model);
        assert_eq!(store.history_len().unwrap(), 3);

        let mut changes = Changes::default();
        let mut model = reopened;
        assert!(model.remove_worker(&worker, &mut changes));
        store.commit(&model, &changes).unwrap();
        assert_eq!(
            store.history_len().unwrap(),
            0,
            "removing a worker drops its history"
        );
        drop(store);
        let (_, reopened) = Store::open(&path, 3).unwrap();
        assert!(reopened.jobs.is_empty() && reopened.workers.is_empty());
    }

    /// A run whose first events were stored before the manager restarted continues in the
    /// same history entry (it used to open a second one and leave the first open forever).
    #[test]
    fn a_run_keeps_its_history_entry_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let worker = WorkerId::new("w1").unwrap();
        let run = Uuid::new_v4();
        let apply = |store: &Store, model: &mut Model, seq: u64, status: SyncStatus| {
            let mut changes = Changes::default();
            let verified = Verified {
                worker: worker.clone(),
                seq,
                event: status_event("debian", status, run),
            };
            model.apply(&verified, GoTime::now_local(), &mut changes);
            store.commit(model, &changes).unwrap();
        };
        let (store, mut model) = Store::open(&path, 10).unwrap();
        apply(&store, &mut model, 1, SyncStatus::PreSyncing);
        drop(store);
        let (store, mut model) = Store::open(&path, 10).unwrap();
        apply(&store, &mut model, 2, SyncStatus::Syncing);
        let mut model = store.reopen().unwrap();
        apply(&store, &mut model, 3, SyncStatus::Success);
        let history = store
            .history(&worker, &MirrorName::new("debian").unwrap())
            .unwrap();
        assert_eq!(history.len(), 1, "{history:?}");
        assert_eq!(history[0].result, SyncStatus::Success);
        assert!(!history[0].ended.is_zero());
    }

    /// Schema 1 had no holds: a job the operator paused or disabled then stays held.
    #[test]
    fn a_schema_1_store_is_upgraded_with_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert("schema", 1).unwrap();
            {
                let mut jobs = tx.open_table(JOBS).unwrap();
                for (mirror, status) in [
                    ("a", SyncStatus::Disabled),
                    ("b", SyncStatus::Paused),
                    ("c", SyncStatus::Success),
                ] {
                    let record = JobRecord {
                        status,
                        ..JobRecord::default()
                    };
                    let mut bytes = records::encode(&record);
                    // As a schema 1 build wrote it: no hold, no current run.
                    let mut value: serde_json::Value = serde_json::from_slice(&bytes[1..]).unwrap();
                    value.as_object_mut().unwrap().remove("hold");
                    bytes.truncate(1);
                    bytes.extend(serde_json::to_vec(&value).unwrap());
                    jobs.insert(("w1", mirror), bytes.as_slice()).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let (_, model) = Store::open(&path, 3).unwrap();
        let hold = |mirror: &str| {
            model.jobs[&(
                MirrorName::new(mirror).unwrap(),
                WorkerId::new("w1").unwrap(),
            )]
                .hold
        };
        assert_eq!(hold("a"), Some(Hold::Disabled));
        assert_eq!(hold("b"), Some(Hold::Paused));
        assert_eq!(hold("c"), None);
    }

    #[test]
    fn a_store_of_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert("schema", 99).unwrap();
            tx.commit().unwrap();
        }
        let err = Store::open(&path, 3).err().unwrap();
        assert!(matches!(err, StoreError::Schema { found: 99 }), "{err}");
    }
}
