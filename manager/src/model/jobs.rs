//! A job's status reports, schedule, removal and run history, and the API's changes to jobs.

use tracing::warn;
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::event::{JobStatus, Schedule};

use super::{Changes, JobKey, Model, meaningful};
use crate::records::{CurrentRun, Hold, JobRecord, RunRecord};

/// The error of a history entry whose run's last reports never arrived (a newer run began).
pub const LOST_END_ERROR: &str = "no final status was received for this run";
/// The error of a history entry whose run the operator stopped or disabled.
pub const STOPPED_ERROR: &str = "stopped by the operator";
/// The error of a history entry whose job a reload removed while it ran.
pub const REMOVED_ERROR: &str = "the job was removed from the worker's config";

impl JobRecord {
    /// The status the worker is told in a `welcome`: the operator's hold if there is one. A
    /// paused or disabled status without a hold (a job removed by a reload, or started
    /// since) holds nothing back.
    pub fn intended_status(&self) -> SyncStatus {
        match self.hold {
            Some(hold) => hold.status(),
            None if matches!(self.status, SyncStatus::Paused | SyncStatus::Disabled) => {
                SyncStatus::None
            }
            None => self.status,
        }
    }

    /// Ends the current run's history entry, if it has not ended, with `result` and `error`.
    pub(super) fn close_run(
        &mut self,
        key: &JobKey,
        result: SyncStatus,
        ended: GoTime,
        error: &str,
        changes: &mut Changes,
    ) {
        if let Some(run) = &mut self.current_run
            && run.record.ended.is_zero()
        {
            run.record.result = result;
            run.record.ended = ended;
            error.clone_into(&mut run.record.error_msg);
            changes.runs.push((key.clone(), run.clone()));
        }
    }

    /// Starts a history entry for run `run_id` (keyed by `seq`, the event that opened it),
    /// ending an older entry that never ended.
    pub(super) fn open_run(
        &mut self,
        key: &JobKey,
        seq: u64,
        run_id: uuid::Uuid,
        started: GoTime,
        changes: &mut Changes,
    ) {
        self.close_run(key, SyncStatus::Failed, started, LOST_END_ERROR, changes);
        self.current_run = Some(CurrentRun {
            key: seq,
            record: RunRecord {
                run_id,
                started,
                ended: GoTime::ZERO,
                result: SyncStatus::None,
                attempts: 0,
                size: String::new(),
                error_msg: String::new(),
                member: None,
                upstream: String::new(),
            },
        });
    }

    /// Applies a status report that passed the checks against duplicates and late copies:
    /// tunasync's timestamp and size rules, the operator's hold, and the run's history entry
    /// (opened under `history_key` if the run is new).
    pub(super) fn record_status(
        &mut self,
        key: &JobKey,
        history_key: u64,
        status: &JobStatus,
        changes: &mut Changes,
    ) {
        match status.status {
            SyncStatus::PreSyncing if self.status != SyncStatus::PreSyncing => {
                self.last_started = status.at;
                self.last_transferred_bytes = None;
            }
            SyncStatus::Success => {
                self.last_update = status.at;
                self.last_ended = status.at;
                if let Some(bytes) = status.transferred_bytes {
                    self.last_transferred_bytes = Some(bytes);
                    self.total_transferred_bytes =
                        self.total_transferred_bytes.saturating_add(bytes);
                }
                self.consecutive_failures = 0;
            }
            SyncStatus::Failed => {
                self.last_ended = status.at;
                // A run the operator stopped is not a failure of the mirror.
                if status.ends_run && self.hold.is_none() {
                    self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                }
            }
            _ => {}
        }
        match self.hold {
            Some(hold) => {
                if status.status == SyncStatus::PreSyncing {
                    warn!(
                        worker = %key.1,
                        mirror = %status.mirror,
                        hold = hold.status().as_str(),
                        "a job the operator held back was started by its worker (it had not \
                         learnt of the hold yet): it stays shown {}, and the welcome stops it",
                        hold.status()
                    );
                }
                self.status = hold.status();
            }
            None => self.status = status.status,
        }
        self.is_master = status.is_master;
        self.upstream.clone_from(&status.upstream);
        self.error_msg.clone_from(&status.error_msg);
        if let Some(size) = meaningful(status.size.as_deref()) {
            self.size = size.to_owned();
        }
        self.run_id = Some(status.run_id);
        changes.jobs.insert(key.clone());

        if matches!(
            status.status,
            SyncStatus::Paused | SyncStatus::Disabled | SyncStatus::None
        ) {
            return;
        }
        let same_run = self
            .current_run
            .as_ref()
            .is_some_and(|run| run.record.run_id == status.run_id);
        if !same_run {
            let started = if self.last_started.is_zero() {
                status.at
            } else {
                self.last_started
            };
            self.open_run(key, history_key, status.run_id, started, changes);
        }
        let size = self.size.clone();
        if let Some(run) = &mut self.current_run {
            run.record.result = status.status;
            run.record.attempts = run.record.attempts.max(status.attempt);
            run.record.error_msg.clone_from(&status.error_msg);
            if matches!(status.status, SyncStatus::Success | SyncStatus::Failed) {
                run.record.ended = status.at;
            }
            run.record.size = size;
            run.record.upstream.clone_from(&status.upstream);
            changes.runs.push((key.clone(), run.clone()));
        }
    }
}

impl JobRecord {
    /// A report numbered below the newest one applied: a copy seen before, or one the
    /// broker redelivered after newer ones (a queue that moved to another node). It changes
    /// nothing shown, but a run it ends must not go missing from the history: the store
    /// completes that run's entry if the entry never got its end, or adds the entry if it
    /// has none (a late copy of an end already recorded changes nothing).
    fn late_report(&self, key: &JobKey, seq: u64, status: &JobStatus, changes: &mut Changes) {
        let current = self
            .current_run
            .as_ref()
            .is_some_and(|run| run.record.run_id == status.run_id);
        if current
            || !status.ends_run
            || !matches!(status.status, SyncStatus::Success | SyncStatus::Failed)
        {
            return;
        }
        let record = RunRecord {
            run_id: status.run_id,
            started: status.at,
            ended: status.at,
            result: status.status,
            attempts: status.attempt,
            size: meaningful(status.size.as_deref())
                .unwrap_or_default()
                .to_owned(),
            error_msg: status.error_msg.clone(),
            member: None,
            upstream: status.upstream.clone(),
        };
        changes
            .late_runs
            .push((key.clone(), CurrentRun { key: seq, record }));
    }
}

impl Model {
    pub(super) fn apply_status(
        &mut self,
        worker: &WorkerId,
        seq: u64,
        flushed_at: u64,
        status: &JobStatus,
        changes: &mut Changes,
    ) {
        let key = (status.mirror.clone(), worker.clone());
        if seq <= flushed_at && !self.jobs.contains_key(&key) {
            // A late copy of a report about a job that was flushed or removed since: it
            // must not bring the job back.
            return;
        }
        let job = self.jobs.entry(key.clone()).or_default();
        if seq <= job.last_seq {
            job.late_report(&key, seq, status, changes);
            return;
        }
        job.last_seq = seq;
        job.record_status(&key, seq, status, changes);
    }

    pub(super) fn apply_schedule(
        &mut self,
        worker: &WorkerId,
        seq: u64,
        newest: u64,
        schedule: &Schedule,
        changes: &mut Changes,
    ) {
        if seq <= newest {
            return;
        }
        for entry in &schedule.schedules {
            let key = (entry.mirror.clone(), worker.clone());
            if let Some(job) = self.jobs.get_mut(&key)
                && job.next_schedule != entry.next_schedule
            {
                job.next_schedule = entry.next_schedule;
                changes.jobs.insert(key);
            }
        }
    }

    /// A reload removed the job from the worker's config: shown disabled until flushed.
    pub(super) fn apply_job_removed(
        &mut self,
        worker: &WorkerId,
        seq: u64,
        mirror: &MirrorName,
        now: GoTime,
        changes: &mut Changes,
    ) {
        let key = (mirror.clone(), worker.clone());
        if let Some(job) = self.jobs.get_mut(&key)
            && seq > job.last_seq
        {
            job.last_seq = seq;
            job.status = SyncStatus::Disabled;
            job.close_run(&key, SyncStatus::Failed, now, REMOVED_ERROR, changes);
            changes.jobs.insert(key);
        }
    }

    /// `DELETE /jobs/disabled`: every disabled job, of every worker (as tunasync).
    pub fn flush_disabled(&mut self, changes: &mut Changes) -> usize {
        let keys: Vec<JobKey> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.status == SyncStatus::Disabled)
            .map(|(key, _)| key.clone())
            .collect();
        for key in &keys {
            self.jobs.remove(key);
            changes.removed_jobs.insert(key.clone());
            let (_, worker) = key;
            if let Some(record) = self.workers.get_mut(worker) {
                record.flushed_at = record.last_seq;
                changes.workers.insert(worker.clone());
            }
        }
        keys.len()
    }

    /// `POST /workers/{id}/jobs/{job}/size`.
    pub fn set_size(&mut self, key: &JobKey, size: &str, changes: &mut Changes) -> bool {
        match self.jobs.get_mut(key) {
            Some(job) => {
                job.size = size.to_owned();
                changes.jobs.insert(key.clone());
                true
            }
            None => false,
        }
    }

    /// `stop` / `disable` through `POST /cmd`: the manager records paused / disabled itself
    /// (as tunasync's does) and keeps the hold until a `start` or `restart`. A run going on
    /// is killed by the command: its history entry ends here.
    pub fn hold(&mut self, key: &JobKey, hold: Hold, changes: &mut Changes) -> bool {
        let Some(job) = self.jobs.get_mut(key) else {
            return false;
        };
        job.status = hold.status();
        job.hold = Some(hold);
        job.close_run(
            key,
            SyncStatus::Failed,
            GoTime::now_local(),
            STOPPED_ERROR,
            changes,
        );
        changes.jobs.insert(key.clone());
        true
    }

    /// `start` / `restart` through `POST /cmd`: the operator's hold ends (the status changes
    /// when the worker reports the run).
    pub fn release(&mut self, key: &JobKey, changes: &mut Changes) -> bool {
        let Some(job) = self.jobs.get_mut(key) else {
            return false;
        };
        if job.hold.take().is_some() {
            changes.jobs.insert(key.clone());
        }
        true
    }
}
