//! A worker's `hello` and the `welcome` that answers it.
//!
//! A `hello` of a new session (the worker process started again) cannot know what ran
//! before: the store keeps its statuses and times, and a run it showed going on is over
//! ([`RESTARTED_ERROR`]). A `hello` of the session the manager already knows (sent after a
//! reconnection) is the worker's own account of every job, and wins over what the manager
//! has: events lost on the way (a long broker outage) are made good by it.

use tracing::warn;
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::command::{StoredJob, Welcome};
use tunasync_shared::wire::event::{Hello, JobSnapshot};

use super::{Changes, JobKey, Model, RESTARTED_ERROR, meaningful};
use crate::records::{Hold, JobRecord, UNKNOWN_SIZE};

impl JobRecord {
    fn from_snapshot(snapshot: &JobSnapshot) -> JobRecord {
        JobRecord {
            status: snapshot.status,
            last_update: snapshot.last_update,
            last_started: snapshot.last_started,
            last_ended: snapshot.last_ended,
            next_schedule: snapshot.next_schedule,
            size: meaningful(snapshot.size.as_deref())
                .unwrap_or(UNKNOWN_SIZE)
                .to_owned(),
            error_msg: snapshot.error_msg.clone(),
            run_id: snapshot.run_id,
            ..JobRecord::default()
        }
    }

    /// The worker restarted: what it reports cannot know the run that was going on.
    fn apply_restarted(
        &mut self,
        key: &JobKey,
        snapshot: &JobSnapshot,
        now: GoTime,
        changes: &mut Changes,
    ) {
        if snapshot.status.is_running() {
            self.status = self.hold.map_or(snapshot.status, Hold::status);
            self.run_id = snapshot.run_id;
            self.error_msg.clear();
        } else if self.status.is_running() {
            self.status = SyncStatus::Failed;
            RESTARTED_ERROR.clone_into(&mut self.error_msg);
        }
        if !snapshot.status.is_running() {
            self.close_run(key, SyncStatus::Failed, now, RESTARTED_ERROR, changes);
        }
        // A manager that lost its store learns the times back from its workers.
        for (stored, reported) in [
            (&mut self.last_update, snapshot.last_update),
            (&mut self.last_started, snapshot.last_started),
            (&mut self.last_ended, snapshot.last_ended),
        ] {
            if stored.is_zero() {
                *stored = reported;
            }
        }
        if let Some(size) = meaningful(snapshot.size.as_deref())
            && meaningful(Some(&self.size)).is_none()
        {
            self.size = size.to_owned();
        }
    }

    /// The same worker process after a reconnection: its account of the job wins. A job it
    /// has not run since it started (`none`) keeps what the store knows.
    fn apply_authoritative(
        &mut self,
        key: &JobKey,
        seq: u64,
        snapshot: &JobSnapshot,
        changes: &mut Changes,
    ) {
        if snapshot.status == SyncStatus::None {
            return;
        }
        self.status = self.hold.map_or(snapshot.status, Hold::status);
        self.error_msg.clone_from(&snapshot.error_msg);
        for (stored, reported) in [
            (&mut self.last_update, snapshot.last_update),
            (&mut self.last_started, snapshot.last_started),
            (&mut self.last_ended, snapshot.last_ended),
        ] {
            if !reported.is_zero() {
                *stored = reported;
            }
        }
        if let Some(size) = meaningful(snapshot.size.as_deref()) {
            self.size = size.to_owned();
        }
        let Some(run_id) = snapshot.run_id else {
            return;
        };
        self.run_id = Some(run_id);
        let ran = matches!(
            snapshot.status,
            SyncStatus::PreSyncing | SyncStatus::Syncing | SyncStatus::Success | SyncStatus::Failed
        );
        if !ran {
            return;
        }
        let known = self
            .current_run
            .as_ref()
            .is_some_and(|run| run.record.run_id == run_id);
        if !known {
            let started = if snapshot.last_started.is_zero() {
                snapshot.last_ended
            } else {
                snapshot.last_started
            };
            self.open_run(key, seq, run_id, started, changes);
        }
        let size = self.size.clone();
        if let Some(run) = &mut self.current_run {
            let ended = !snapshot.status.is_running();
            let recorded_ended = !run.record.ended.is_zero();
            let already_known = run.record.result == snapshot.status && ended == recorded_ended;
            if already_known {
                return;
            }
            run.record.result = snapshot.status;
            run.record.attempts = run.record.attempts.max(1);
            run.record.error_msg.clone_from(&snapshot.error_msg);
            if ended {
                run.record.ended = snapshot.last_ended;
            }
            run.record.size = size;
            changes.runs.push((key.clone(), run.clone()));
        }
    }
}

/// The mirrors a `hello` lists as the worker's own (not pooled).
fn own_mirrors(hello: &Hello) -> impl Iterator<Item = &MirrorName> {
    hello
        .jobs
        .iter()
        .filter(|snapshot| snapshot.pool.is_none())
        .map(|snapshot| &snapshot.mirror)
}

impl Model {
    pub(super) fn apply_hello(
        &mut self,
        worker: &WorkerId,
        seq: u64,
        hello: &Hello,
        now: GoTime,
        changes: &mut Changes,
    ) {
        let Some(record) = self.workers.get_mut(worker) else {
            return;
        };
        if seq <= record.last_seq {
            if record.session != Some(hello.session) {
                warn!(
                    %worker,
                    seq,
                    manager_holds = record.last_seq,
                    "a new session of the worker numbers its events below those already \
                     stored (was its clock stepped back?): the welcome tells it to continue \
                     after them"
                );
            }
            // A hello older than what we know adds nothing; still answer it.
            changes
                .welcomes
                .push((worker.clone(), self.welcome(worker, own_mirrors(hello))));
            return;
        }
        record.last_register = now;
        record.host.clone_from(&hello.host);
        record.version.clone_from(&hello.version);
        record.heartbeat_interval_secs = hello.heartbeat_interval_secs;
        let same_session = record.session == Some(hello.session);
        record.session = Some(hello.session);
        self.apply_pool_membership(worker, hello, changes);
        // A pooled mirror is one job of its pool, not one per member.
        for snapshot in hello.jobs.iter().filter(|snapshot| snapshot.pool.is_none()) {
            let key = (snapshot.mirror.clone(), worker.clone());
            let job = self
                .jobs
                .entry(key.clone())
                .or_insert_with(|| JobRecord::from_snapshot(snapshot));
            job.upstream.clone_from(&snapshot.upstream);
            job.is_master = snapshot.is_master;
            job.url = snapshot.url.clone().unwrap_or_default();
            job.desc = snapshot.desc.clone().unwrap_or_default();
            if seq > job.last_seq {
                if same_session {
                    job.apply_authoritative(&key, seq, snapshot, changes);
                } else {
                    job.apply_restarted(&key, snapshot, now, changes);
                }
            }
            if !snapshot.next_schedule.is_zero() {
                job.next_schedule = snapshot.next_schedule;
            }
            job.last_seq = job.last_seq.max(seq);
            changes.jobs.insert(key);
        }
        changes
            .welcomes
            .push((worker.clone(), self.welcome(worker, own_mirrors(hello))));
    }

    /// The stored state of a worker's jobs, the answer to its `hello`: those of `mirrors`
    /// (the ones the `hello` lists as the worker's own) that are stored. Looked up one by
    /// one, so a `hello` costs the same however many jobs other workers have.
    pub fn welcome<'a>(
        &self,
        worker: &WorkerId,
        mirrors: impl IntoIterator<Item = &'a MirrorName>,
    ) -> Welcome {
        let mut mirrors: Vec<&MirrorName> = mirrors.into_iter().collect();
        mirrors.sort();
        mirrors.dedup();
        Welcome {
            jobs: mirrors
                .into_iter()
                .filter_map(|mirror| {
                    let key = (mirror.clone(), worker.clone());
                    self.jobs.get(&key).map(|job| (mirror, job))
                })
                .map(|(mirror, job)| StoredJob {
                    mirror: mirror.clone(),
                    status: job.intended_status(),
                    last_update: job.last_update,
                    last_started: job.last_started,
                    last_ended: job.last_ended,
                    size: meaningful(Some(&job.size)).map(str::to_owned),
                })
                .collect(),
            last_seq: self.workers.get(worker).map(|record| record.last_seq),
            offline_after_secs: None,
            maintenance: Some(self.maintenance.set_for(worker)),
        }
    }
}
