//! The manager's state and the rules that change it: tunasync's status semantics without
//! its bugs, made safe against duplicated, redelivered, late and lost events.
//!
//! Everything here is pure: [`Model::apply`] and the mutations change the model and record
//! what changed in [`Changes`], which the store then writes in one transaction.
//!
//! - [`jobs`]: status reports, schedules, removed jobs, the run history, and the API's
//!   changes (sizes, the operator's holds, flush).
//! - [`hello`]: a worker's `hello` (registration and its snapshot of every job) and the
//!   `welcome` that answers it.
//! - [`maintenance`]: what the operator took out of the schedule, and what each worker is
//!   told of it.
//! - [`pools`]: pooled mirrors: membership, the definition members agree on, hand-outs,
//!   claims, leases, failover.

mod hello;
mod jobs;
pub use jobs::LOST_END_ERROR;
pub mod legacy;
pub mod maintenance;
pub mod pools;
mod progress;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::wire::command::{MaintenanceSet, Welcome};
use tunasync_shared::wire::event::Event;
use tunasync_shared::wire::pool::Grant;

use crate::records::{CurrentRun, JobRecord, PoolJobRecord, WorkerRecord};
use pools::PoolKey;

/// Jobs are keyed by mirror name first, so iteration is tunasync.json's order.
pub type JobKey = (MirrorName, WorkerId);

/// The error shown when a worker came back without the run the store thought was going on.
pub const RESTARTED_ERROR: &str = "the worker restarted during the run";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub workers: BTreeMap<WorkerId, WorkerRecord>,
    /// Jobs of workers, and pooled mirrors (keyed by the pool's name as the worker).
    pub jobs: BTreeMap<JobKey, JobRecord>,
    /// The schedule of each pooled mirror.
    pub pool_jobs: BTreeMap<PoolKey, PoolJobRecord>,
    pub maintenance: maintenance::Maintenance,
}

/// What a batch changed, for the store.
#[derive(Debug, Default)]
pub struct Changes {
    pub workers: BTreeSet<WorkerId>,
    pub jobs: BTreeSet<JobKey>,
    /// History entries written (the last one of a key wins).
    pub runs: Vec<(JobKey, CurrentRun)>,
    /// Ends of older runs reported after newer ones, keyed by the late report's number:
    /// the store completes the run's entry, or adds it if there is none.
    pub late_runs: Vec<(JobKey, CurrentRun)>,
    pub removed_workers: BTreeSet<WorkerId>,
    pub removed_jobs: BTreeSet<JobKey>,
    pub pool_jobs: BTreeSet<PoolKey>,
    /// Jobs whose progress changed: shown, not stored.
    pub progressed: BTreeSet<JobKey>,
    /// Answers to `hello`s, to publish once the batch is committed.
    pub welcomes: Vec<(WorkerId, Welcome)>,
    /// Pool runs to publish once the batch is committed.
    pub pool_runs: Vec<pools::Publication>,
    /// Answers to claims, to publish once the batch is committed.
    pub grants: Vec<(WorkerId, Grant)>,
    /// How long each run granted waited, from coming due to being taken.
    pub pool_waits: Vec<std::time::Duration>,
    /// The maintenance changed (the store rewrites it).
    pub maintenance: bool,
    /// Workers' new maintenance sets, to publish once the change is committed.
    pub maintenance_sets: Vec<(WorkerId, MaintenanceSet)>,
    /// Broker events ignored because their worker's id is a Go worker's (to log).
    pub claimed_over_http: BTreeSet<WorkerId>,
    /// Of those, the `hello`s: kept by the state actor in case the Go worker is gone and
    /// the id moves to the broker (see [`legacy`]).
    pub parked_hellos: Vec<Verified>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
            && self.jobs.is_empty()
            && self.runs.is_empty()
            && self.late_runs.is_empty()
            && self.removed_workers.is_empty()
            && self.removed_jobs.is_empty()
            && self.pool_jobs.is_empty()
            && self.progressed.is_empty()
            && !self.maintenance
    }
}

/// An event that passed the checks of ingestion, ready to apply.
#[derive(Debug, Clone)]
pub struct Verified {
    pub worker: WorkerId,
    pub seq: u64,
    pub event: Event,
}

/// Is this size worth keeping? tunasync's rule: empty and `unknown` never replace a size.
fn meaningful(size: Option<&str>) -> Option<&str> {
    size.filter(|size| !size.is_empty() && *size != crate::records::UNKNOWN_SIZE)
}

impl Model {
    /// A copy for the view (see [`JobRecord::for_view`]).
    pub fn for_view(&self) -> Model {
        Model {
            workers: self.workers.clone(),
            jobs: self
                .jobs
                .iter()
                .map(|(key, job)| (key.clone(), job.for_view()))
                .collect(),
            pool_jobs: self.pool_jobs.clone(),
            maintenance: self.maintenance.clone(),
        }
    }

    /// Applies one event from the broker (`now` is the manager's clock, for worker
    /// liveness). The id of a Go worker registered over HTTP is not the broker's to use:
    /// such events change nothing.
    pub fn apply(&mut self, verified: &Verified, now: GoTime, changes: &mut Changes) {
        if self
            .workers
            .get(&verified.worker)
            .is_some_and(WorkerRecord::is_legacy)
        {
            changes.claimed_over_http.insert(verified.worker.clone());
            if matches!(verified.event, Event::Hello(_)) {
                changes.parked_hellos.push(verified.clone());
            }
            return;
        }
        self.apply_event(
            &verified.worker,
            verified.seq,
            &verified.event,
            now,
            changes,
        );
    }

    /// Applies one event of `worker`, numbered `seq`, whichever way it came.
    fn apply_event(
        &mut self,
        worker: &WorkerId,
        seq: u64,
        event: &Event,
        now: GoTime,
        changes: &mut Changes,
    ) {
        let record = self
            .workers
            .entry(worker.clone())
            .or_insert_with(|| WorkerRecord::new(now));
        record.last_online = now;
        // The newest event applied before this one.
        let newest = record.last_seq;
        let flushed_at = record.flushed_at;
        changes.workers.insert(worker.clone());
        match event {
            Event::Hello(hello) => self.apply_hello(worker, seq, hello, now, changes),
            Event::Heartbeat(heartbeat) => {
                if let Some(record) = self.workers.get_mut(worker) {
                    record.free_slots = heartbeat.free_slots;
                }
            }
            Event::Status(status) => match &status.pooled {
                Some(pooled) => self.apply_pool_status(worker, seq, status, pooled, changes),
                None => self.apply_status(worker, seq, flushed_at, status, changes),
            },
            Event::Schedule(schedule) => {
                self.apply_schedule(worker, seq, newest, schedule, changes)
            }
            Event::JobRemoved(removed) => {
                self.apply_job_removed(worker, seq, &removed.mirror, now, changes)
            }
            // Answers to commands are routed to the dispatcher, never stored.
            Event::CmdResult(_) | Event::LogChunk(_) => {}
            Event::Claim(claim) => self.apply_claim(worker, claim, now, changes),
            Event::Progress(progress) => self.apply_progress(worker, progress, changes),
        }
        if let Some(record) = self.workers.get_mut(worker) {
            record.last_seq = record.last_seq.max(seq);
        }
    }

    /// `DELETE /workers/{id}`: the worker and all its jobs. False if it was unknown.
    pub fn remove_worker(&mut self, worker: &WorkerId, changes: &mut Changes) -> bool {
        if self.workers.remove(worker).is_none() {
            return false;
        }
        changes.removed_workers.insert(worker.clone());
        self.forget_maintenance_of(worker, changes);
        let keys: Vec<JobKey> = self
            .jobs
            .keys()
            .filter(|(_, owner)| owner == worker)
            .cloned()
            .collect();
        for key in keys {
            self.jobs.remove(&key);
            changes.removed_jobs.insert(key);
        }
        true
    }
}
