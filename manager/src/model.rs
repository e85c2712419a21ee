//! The manager's state and the rules that change it: tunasync's status semantics without
//! its bugs, made safe against duplicated, redelivered and late events.
//!
//! Everything here is pure: [`Model::apply`] and the mutations change the model and record
//! what changed in [`Changes`], which the store then writes in one transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::command::{StoredJob, Welcome};
use tunasync_shared::wire::event::{Event, Hello, JobStatus, Schedule};

use crate::records::{JobRecord, RunRecord, WorkerRecord};

/// Jobs are keyed by mirror name first, so iteration is tunasync.json's order.
pub type JobKey = (MirrorName, WorkerId);

/// The error shown when a worker came back without the run the store thought was going on.
pub const RESTARTED_ERROR: &str = "the worker restarted during the run";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub workers: BTreeMap<WorkerId, WorkerRecord>,
    pub jobs: BTreeMap<JobKey, JobRecord>,
}

/// A run in progress or just finished, kept to update its history entry.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenRun {
    /// Its key in the history table: the sequence number of the event that opened it.
    pub key: u64,
    pub record: RunRecord,
}

/// What a batch changed, for the store.
#[derive(Debug, Default)]
pub struct Changes {
    pub workers: BTreeSet<WorkerId>,
    pub jobs: BTreeSet<JobKey>,
    pub runs: Vec<(JobKey, OpenRun)>,
    pub removed_workers: BTreeSet<WorkerId>,
    pub removed_jobs: BTreeSet<JobKey>,
    /// Answers to `hello`s, to publish once the batch is committed.
    pub welcomes: Vec<(WorkerId, Welcome)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
            && self.jobs.is_empty()
            && self.runs.is_empty()
            && self.removed_workers.is_empty()
            && self.removed_jobs.is_empty()
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
    size.filter(|size| !size.is_empty() && *size != "unknown")
}

impl Model {
    /// Applies one event (`now` is the manager's clock, for worker liveness).
    pub fn apply(
        &mut self,
        verified: &Verified,
        now: GoTime,
        open_runs: &mut HashMap<JobKey, OpenRun>,
        changes: &mut Changes,
    ) {
        let worker = &verified.worker;
        let record = self
            .workers
            .entry(worker.clone())
            .or_insert_with(|| WorkerRecord::new(now));
        record.last_online = now;
        changes.workers.insert(worker.clone());
        match &verified.event {
            Event::Hello(hello) => self.apply_hello(worker, verified.seq, hello, now, changes),
            Event::Heartbeat(_) => {}
            Event::Status(status) => {
                self.apply_status(worker, verified.seq, status, open_runs, changes)
            }
            Event::Schedule(schedule) => {
                self.apply_schedule(worker, verified.seq, schedule, changes)
            }
            Event::JobRemoved(removed) => {
                let key = (removed.mirror.clone(), worker.clone());
                if let Some(job) = self.jobs.get_mut(&key)
                    && verified.seq > job.last_seq
                {
                    job.last_seq = verified.seq;
                    job.status = SyncStatus::Disabled;
                    changes.jobs.insert(key);
                }
            }
            // Answers to commands are routed to the dispatcher, never stored.
            Event::CmdResult(_) => {}
        }
        if let Some(record) = self.workers.get_mut(worker) {
            record.last_seq = record.last_seq.max(verified.seq);
        }
    }

    fn apply_hello(
        &mut self,
        worker: &WorkerId,
        seq: u64,
        hello: &Hello,
        now: GoTime,
        changes: &mut Changes,
    ) {
        if let Some(record) = self.workers.get_mut(worker) {
            if seq <= record.last_seq {
                // A hello older than what we know adds nothing; still answer it.
                changes
                    .welcomes
                    .push((worker.clone(), self.welcome(worker)));
                return;
            }
            record.last_register = now;
            record.host.clone_from(&hello.host);
            record.version.clone_from(&hello.version);
            record.heartbeat_interval_secs = hello.heartbeat_interval_secs;
            let restarted = record.session != Some(hello.session);
            record.session = Some(hello.session);
            for snapshot in &hello.jobs {
                let key = (snapshot.mirror.clone(), worker.clone());
                let job = self.jobs.entry(key.clone()).or_insert_with(|| JobRecord {
                    status: snapshot.status,
                    last_update: snapshot.last_update,
                    last_started: snapshot.last_started,
                    last_ended: snapshot.last_ended,
                    next_schedule: snapshot.next_schedule,
                    size: snapshot.size.clone().unwrap_or_default(),
                    error_msg: snapshot.error_msg.clone(),
                    run_id: snapshot.run_id,
                    ..JobRecord::default()
                });
                job.upstream.clone_from(&snapshot.upstream);
                job.is_master = snapshot.is_master;
                if snapshot.status.is_running() {
                    job.status = snapshot.status;
                    job.run_id = snapshot.run_id;
                    job.error_msg.clear();
                } else if job.status.is_running() && restarted {
                    job.status = SyncStatus::Failed;
                    job.error_msg = RESTARTED_ERROR.to_owned();
                }
                // A manager that lost its store learns the times back from its workers.
                for (stored, reported) in [
                    (&mut job.last_update, snapshot.last_update),
                    (&mut job.last_started, snapshot.last_started),
                    (&mut job.last_ended, snapshot.last_ended),
                ] {
                    if stored.is_zero() {
                        *stored = reported;
                    }
                }
                if !snapshot.next_schedule.is_zero() {
                    job.next_schedule = snapshot.next_schedule;
                }
                if let Some(size) = meaningful(snapshot.size.as_deref())
                    && meaningful(Some(&job.size)).is_none()
                {
                    job.size = size.to_owned();
                }
                job.last_seq = job.last_seq.max(seq);
                changes.jobs.insert(key);
            }
        }
        changes
            .welcomes
            .push((worker.clone(), self.welcome(worker)));
    }

    /// The stored state of a worker's jobs, the answer to its `hello`.
    pub fn welcome(&self, worker: &WorkerId) -> Welcome {
        Welcome {
            jobs: self
                .jobs
                .iter()
                .filter(|((_, owner), _)| owner == worker)
                .map(|((mirror, _), job)| StoredJob {
                    mirror: mirror.clone(),
                    status: job.status,
                    last_update: job.last_update,
                    last_started: job.last_started,
                    last_ended: job.last_ended,
                    size: meaningful(Some(&job.size)).map(str::to_owned),
                })
                .collect(),
        }
    }

    fn apply_status(
        &mut self,
        worker: &WorkerId,
        seq: u64,
        status: &JobStatus,
        open_runs: &mut HashMap<JobKey, OpenRun>,
        changes: &mut Changes,
    ) {
        let key = (status.mirror.clone(), worker.clone());
        let job = self.jobs.entry(key.clone()).or_default();
        if seq <= job.last_seq {
            return;
        }
        job.last_seq = seq;
        match status.status {
            SyncStatus::PreSyncing if job.status != SyncStatus::PreSyncing => {
                job.last_started = status.at
            }
            SyncStatus::Success => {
                job.last_update = status.at;
                job.last_ended = status.at;
            }
            SyncStatus::Failed => job.last_ended = status.at,
            _ => {}
        }
        job.status = status.status;
        job.is_master = status.is_master;
        job.upstream.clone_from(&status.upstream);
        job.error_msg.clone_from(&status.error_msg);
        if let Some(size) = meaningful(status.size.as_deref()) {
            job.size = size.to_owned();
        }
        job.run_id = Some(status.run_id);
        changes.jobs.insert(key.clone());

        if matches!(
            status.status,
            SyncStatus::Paused | SyncStatus::Disabled | SyncStatus::None
        ) {
            return;
        }
        let run = match open_runs.get_mut(&key) {
            Some(run) if run.record.run_id == status.run_id => run,
            _ => {
                let started = if job.last_started.is_zero() {
                    status.at
                } else {
                    job.last_started
                };
                open_runs.insert(
                    key.clone(),
                    OpenRun {
                        key: seq,
                        record: RunRecord {
                            run_id: status.run_id,
                            started,
                            ended: GoTime::ZERO,
                            result: status.status,
                            attempts: 0,
                            size: String::new(),
                            error_msg: String::new(),
                        },
                    },
                );
                open_runs.get_mut(&key).expect("inserted just above")
            }
        };
        run.record.result = status.status;
        run.record.attempts = run.record.attempts.max(status.attempt);
        run.record.error_msg.clone_from(&status.error_msg);
        if matches!(status.status, SyncStatus::Success | SyncStatus::Failed) {
            run.record.ended = status.at;
        }
        run.record.size.clone_from(&job.size);
        changes.runs.push((key, run.clone()));
    }

    fn apply_schedule(
        &mut self,
        worker: &WorkerId,
        seq: u64,
        schedule: &Schedule,
        changes: &mut Changes,
    ) {
        let newest = self.workers.get(worker).map_or(0, |record| record.last_seq);
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

    /// `DELETE /workers/{id}`: the worker and all its jobs. False if it was unknown.
    pub fn remove_worker(&mut self, worker: &WorkerId, changes: &mut Changes) -> bool {
        if self.workers.remove(worker).is_none() {
            return false;
        }
        changes.removed_workers.insert(worker.clone());
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

    /// `stop` / `disable` through `POST /cmd`: the manager records paused / disabled itself.
    pub fn set_status(&mut self, key: &JobKey, status: SyncStatus, changes: &mut Changes) -> bool {
        match self.jobs.get_mut(key) {
            Some(job) => {
                job.status = status;
                changes.jobs.insert(key.clone());
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tunasync_shared::wire::event::{JobSnapshot, ProviderKind, ScheduledRun};
    use uuid::Uuid;

    fn w1() -> WorkerId {
        WorkerId::new("w1").unwrap()
    }

    fn key(mirror: &str) -> JobKey {
        (MirrorName::new(mirror).unwrap(), w1())
    }

    fn at(text: &str) -> GoTime {
        GoTime::parse_rfc3339(text).unwrap()
    }

    struct Harness {
        model: Model,
        runs: HashMap<JobKey, OpenRun>,
        seq: u64,
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                model: Model::default(),
                runs: HashMap::new(),
                seq: 0,
            }
        }

        fn send_at(&mut self, seq: u64, event: Event) -> Changes {
            let mut changes = Changes::default();
            let verified = Verified {
                worker: w1(),
                seq,
                event,
            };
            self.model.apply(
                &verified,
                at("2026-11-26T12:00:00+08:00"),
                &mut self.runs,
                &mut changes,
            );
            changes
        }

        fn send(&mut self, event: Event) -> Changes {
            self.seq += 1;
            self.send_at(self.seq, event)
        }

        fn job(&self, mirror: &str) -> &JobRecord {
            &self.model.jobs[&key(mirror)]
        }
    }

    fn status(
        mirror: &str,
        status: SyncStatus,
        when: &str,
        size: Option<&str>,
        run: Uuid,
    ) -> Event {
        Event::Status(JobStatus {
            mirror: MirrorName::new(mirror).unwrap(),
            status,
            run_id: run,
            attempt: 1,
            at: at(when),
            upstream: "rsync://up/m/".into(),
            is_master: true,
            size: size.map(str::to_owned),
            error_msg: if status == SyncStatus::Failed {
                "exit status 3".into()
            } else {
                String::new()
            },
        })
    }

    /// tunasync's manager test: success, then pre-syncing, then failed, each moving only its
    /// own timestamps.
    #[test]
    fn timestamps_follow_tunasyncs_rules() {
        let mut h = Harness::new();
        let run = Uuid::new_v4();
        h.send(status(
            "m",
            SyncStatus::Success,
            "2026-11-26T10:00:00+08:00",
            Some("5G"),
            run,
        ));
        let job = h.job("m").clone();
        assert_eq!(job.last_update, at("2026-11-26T10:00:00+08:00"));
        assert_eq!(job.last_ended, job.last_update);
        assert!(job.last_started.is_zero());

        let run2 = Uuid::new_v4();
        h.send(status(
            "m",
            SyncStatus::PreSyncing,
            "2026-11-26T11:00:00+08:00",
            None,
            run2,
        ));
        let job = h.job("m").clone();
        assert_eq!(job.last_started, at("2026-11-26T11:00:00+08:00"));
        assert_eq!(job.last_update, at("2026-11-26T10:00:00+08:00"));
        assert_eq!(job.status, SyncStatus::PreSyncing);
        assert_eq!(job.size, "5G", "an absent size keeps the known one");

        h.send(status(
            "m",
            SyncStatus::Syncing,
            "2026-11-26T11:00:01+08:00",
            Some("unknown"),
            run2,
        ));
        assert_eq!(h.job("m").size, "5G", "`unknown` keeps the known size");
        assert_eq!(h.job("m").last_started, at("2026-11-26T11:00:00+08:00"));
        h.send(status(
            "m",
            SyncStatus::Failed,
            "2026-11-26T11:30:00+08:00",
            None,
            run2,
        ));
        let job = h.job("m").clone();
        assert_eq!(job.last_ended, at("2026-11-26T11:30:00+08:00"));
        assert_eq!(job.last_update, at("2026-11-26T10:00:00+08:00"));
        assert_eq!(job.error_msg, "exit status 3");
    }

    #[test]
    fn a_status_update_keeps_next_schedule() {
        let mut h = Harness::new();
        let run = Uuid::new_v4();
        h.send(status(
            "m",
            SyncStatus::Success,
            "2026-11-26T10:00:00+08:00",
            None,
            run,
        ));
        h.send(Event::Schedule(Schedule {
            schedules: vec![ScheduledRun {
                mirror: MirrorName::new("m").unwrap(),
                next_schedule: at("2026-11-26T12:00:00+08:00"),
            }],
        }));
        h.send(status(
            "m",
            SyncStatus::PreSyncing,
            "2026-11-26T12:00:00+08:00",
            None,
            Uuid::new_v4(),
        ));
        assert_eq!(h.job("m").next_schedule, at("2026-11-26T12:00:00+08:00"));
    }

    #[test]
    fn duplicated_and_late_events_never_move_a_job_back() {
        let mut h = Harness::new();
        let run = Uuid::new_v4();
        h.send_at(
            10,
            status(
                "m",
                SyncStatus::PreSyncing,
                "2026-11-26T10:00:00+08:00",
                None,
                run,
            ),
        );
        h.send_at(
            11,
            status(
                "m",
                SyncStatus::Syncing,
                "2026-11-26T10:00:01+08:00",
                None,
                run,
            ),
        );
        h.send_at(
            12,
            status(
                "m",
                SyncStatus::Success,
                "2026-11-26T10:05:00+08:00",
                Some("1G"),
                run,
            ),
        );
        let done = h.job("m").clone();
        // Redelivered (same seq) and late (older seq) events change nothing.
        let changes = h.send_at(
            11,
            status(
                "m",
                SyncStatus::Syncing,
                "2026-11-26T10:00:01+08:00",
                None,
                run,
            ),
        );
        assert!(changes.jobs.is_empty());
        h.send_at(
            12,
            status(
                "m",
                SyncStatus::Success,
                "2026-11-26T10:05:00+08:00",
                Some("1G"),
                run,
            ),
        );
        h.send_at(
            9,
            status(
                "m",
                SyncStatus::Failed,
                "2026-11-26T09:00:00+08:00",
                None,
                run,
            ),
        );
        assert_eq!(h.job("m"), &done);
        assert_eq!(done.status, SyncStatus::Success);
    }

    #[test]
    fn runs_are_recorded_for_history() {
        let mut h = Harness::new();
        let run = Uuid::new_v4();
        h.send(status(
            "m",
            SyncStatus::PreSyncing,
            "2026-11-26T10:00:00+08:00",
            None,
            run,
        ));
        h.send(status(
            "m",
            SyncStatus::Syncing,
            "2026-11-26T10:00:01+08:00",
            None,
            run,
        ));
        let changes = h.send(status(
            "m",
            SyncStatus::Success,
            "2026-11-26T10:05:00+08:00",
            Some("2G"),
            run,
        ));
        let (_, last) = changes.runs.last().unwrap();
        assert_eq!(last.key, 1, "keyed by the event that opened the run");
        assert_eq!(last.record.result, SyncStatus::Success);
        assert_eq!(last.record.started, at("2026-11-26T10:00:00+08:00"));
        assert_eq!(last.record.ended, at("2026-11-26T10:05:00+08:00"));
        assert_eq!(last.record.size, "2G");
    }

    fn hello(session: Uuid, jobs: Vec<JobSnapshot>) -> Event {
        Event::Hello(Hello {
            version: "0.1.0".into(),
            host: "host-1".into(),
            session,
            heartbeat_interval_secs: 10,
            jobs,
        })
    }

    fn snapshot(mirror: &str, status: SyncStatus) -> JobSnapshot {
        JobSnapshot {
            mirror: MirrorName::new(mirror).unwrap(),
            provider: ProviderKind::Rsync,
            upstream: format!("rsync://up/{mirror}/"),
            is_master: true,
            interval_minutes: 60,
            cron: None,
            status,
            run_id: None,
            last_update: GoTime::ZERO,
            last_started: GoTime::ZERO,
            last_ended: GoTime::ZERO,
            next_schedule: GoTime::ZERO,
            size: None,
            error_msg: String::new(),
        }
    }

    #[test]
    fn hello_registers_jobs_and_is_answered_with_the_stored_state() {
        let mut h = Harness::new();
        let session = Uuid::new_v4();
        let changes = h.send(hello(
            session,
            vec![
                snapshot("a", SyncStatus::None),
                snapshot("b", SyncStatus::None),
            ],
        ));
        assert_eq!(h.model.jobs.len(), 2);
        assert_eq!(h.model.workers[&w1()].host, "host-1");
        let (worker, welcome) = &changes.welcomes[0];
        assert_eq!(worker, &w1());
        assert_eq!(welcome.jobs.len(), 2);

        // The operator pauses b; the worker restarts mid-run of a: a is shown failed, b stays paused.
        let mut changes = Changes::default();
        h.model
            .set_status(&key("b"), SyncStatus::Paused, &mut changes);
        h.send(status(
            "a",
            SyncStatus::Syncing,
            "2026-11-26T10:00:00+08:00",
            None,
            Uuid::new_v4(),
        ));
        let changes = h.send(hello(
            Uuid::new_v4(),
            vec![
                snapshot("a", SyncStatus::None),
                snapshot("b", SyncStatus::None),
            ],
        ));
        assert_eq!(h.job("a").status, SyncStatus::Failed);
        assert_eq!(h.job("a").error_msg, RESTARTED_ERROR);
        let welcome = &changes.welcomes[0].1;
        let b = welcome
            .jobs
            .iter()
            .find(|job| job.mirror.as_str() == "b")
            .unwrap();
        assert_eq!(b.status, SyncStatus::Paused);
    }

    #[test]
    fn a_manager_without_its_store_rebuilds_from_hello() {
        let mut h = Harness::new();
        let mut snap = snapshot("a", SyncStatus::Success);
        snap.last_update = at("2026-11-20T10:00:00Z");
        snap.last_ended = at("2026-11-20T10:00:00Z");
        snap.size = Some("3T".into());
        h.send(hello(Uuid::new_v4(), vec![snap]));
        let job = h.job("a");
        assert_eq!(job.status, SyncStatus::Success);
        assert_eq!(job.last_update, at("2026-11-20T10:00:00Z"));
        assert_eq!(job.size, "3T");
    }

    #[test]
    fn mutations_of_the_api() {
        let mut h = Harness::new();
        h.send(hello(
            Uuid::new_v4(),
            vec![
                snapshot("a", SyncStatus::None),
                snapshot("b", SyncStatus::None),
            ],
        ));
        let mut changes = Changes::default();
        assert!(h.model.set_size(&key("a"), "9G", &mut changes));
        assert!(!h.model.set_size(&key("zz"), "9G", &mut changes));
        assert_eq!(h.job("a").size, "9G");
        assert!(
            h.model
                .set_status(&key("b"), SyncStatus::Disabled, &mut changes)
        );
        assert_eq!(h.model.flush_disabled(&mut changes), 1);
        assert!(!h.model.jobs.contains_key(&key("b")));
        assert!(h.model.remove_worker(&w1(), &mut changes));
        assert!(h.model.jobs.is_empty());
        assert!(!h.model.remove_worker(&w1(), &mut changes));
    }
}
