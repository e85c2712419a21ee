//! What a Go tunasync worker posts over HTTP (the `[legacy]` bridge), as model changes.
//!
//! A Go worker registers, then reports status and schedules; it sends no times (every time
//! field is Go's zero time), no run ids and no sequence numbers. Here each post becomes the
//! event a broker worker would have sent — a `status` stamped with the manager's clock
//! (tunasync's manager stamps the times the same way), a `schedule` — numbered after the
//! worker's last applied event, and goes through the same [`Model::apply_event`] as the
//! broker's events: history, holds, sizes and the page work alike.
//!
//! A worker id belongs to one side: one registered over HTTP ignores the broker's events
//! (see [`Model::apply`]), and a Go worker cannot register under the id of a broker worker
//! that is online. It moves to the broker when a broker worker says `hello` under it and
//! the Go worker no longer answers at its URL ([`Model::release_legacy`], decided by
//! `crate::legacy::handover`): the jobs, their times and history stay.

use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::event::{Event, JobStatus, Schedule, ScheduledRun};
use uuid::Uuid;

use super::{Changes, Model};
use crate::records::WorkerRecord;

/// What a Go worker's record says it runs (it does not tell its version).
pub const GO_WORKER_VERSION: &str = "tunasync (Go), over HTTP";

/// One post of a Go worker.
#[derive(Debug, Clone, PartialEq)]
pub enum LegacyPost {
    /// `POST /workers`: who it is and where its commands go.
    Register { worker: WorkerId, url: String },
    /// `POST /workers/{id}/jobs/{job}`.
    Status {
        worker: WorkerId,
        report: LegacyReport,
    },
    /// `POST /workers/{id}/schedules`: the jobs it has queued (running ones are missing).
    Schedules {
        worker: WorkerId,
        schedules: Vec<ScheduledRun>,
    },
}

/// A Go worker's status report, without the times it does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyReport {
    pub mirror: MirrorName,
    pub status: SyncStatus,
    pub is_master: bool,
    pub upstream: String,
    pub size: String,
    pub error_msg: String,
}

/// Why a post changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyRefusal {
    /// tunasync's answer to a post from a worker that has not registered.
    #[error("invalid workerID {0}")]
    Unregistered(WorkerId),
    #[error("worker {0} is connected over the broker: a Go worker cannot register under its id")]
    ClaimedOverBroker(WorkerId),
}

impl Model {
    /// Applies a Go worker's post (`now` stamps it; `online` says whether a broker worker
    /// is online).
    pub fn apply_legacy(
        &mut self,
        post: &LegacyPost,
        now: GoTime,
        online: &dyn Fn(&WorkerId) -> bool,
        changes: &mut Changes,
    ) -> Result<(), LegacyRefusal> {
        match post {
            LegacyPost::Register { worker, url } => {
                if let Some(record) = self.workers.get(worker)
                    && !record.is_legacy()
                    && online(worker)
                {
                    return Err(LegacyRefusal::ClaimedOverBroker(worker.clone()));
                }
                let record = self
                    .workers
                    .entry(worker.clone())
                    .or_insert_with(|| WorkerRecord::new(now));
                record.legacy_url = Some(url.clone());
                record.last_online = now;
                record.last_register = now;
                record.host = host_of(url).to_owned();
                GO_WORKER_VERSION.clone_into(&mut record.version);
                record.session = None;
                record.heartbeat_interval_secs = 0;
                record.free_slots = None;
                changes.workers.insert(worker.clone());
                Ok(())
            }
            LegacyPost::Status { worker, report } => {
                let seq = self.legacy_seq(worker)?;
                let status = self.legacy_status(worker, report, now);
                self.apply_event(worker, seq, &Event::Status(status), now, changes);
                Ok(())
            }
            LegacyPost::Schedules { worker, schedules } => {
                let seq = self.legacy_seq(worker)?;
                let schedule = Schedule {
                    schedules: schedules.clone(),
                };
                self.apply_event(worker, seq, &Event::Schedule(schedule), now, changes);
                Ok(())
            }
        }
    }

    /// The Go worker registered as `worker` is gone: its id is the broker's from now on
    /// (its jobs stay, so a broker worker's `hello` keeps their times). False if `worker`
    /// is not a Go worker.
    pub fn release_legacy(&mut self, worker: &WorkerId, changes: &mut Changes) -> bool {
        let Some(record) = self
            .workers
            .get_mut(worker)
            .filter(|record| record.is_legacy())
        else {
            return false;
        };
        record.legacy_url = None;
        record.version.clear();
        changes.workers.insert(worker.clone());
        true
    }

    /// The number of a registered Go worker's next post.
    fn legacy_seq(&self, worker: &WorkerId) -> Result<u64, LegacyRefusal> {
        self.workers
            .get(worker)
            .filter(|record| record.is_legacy())
            .map(|record| record.last_seq.saturating_add(1))
            .ok_or_else(|| LegacyRefusal::Unregistered(worker.clone()))
    }

    /// The `status` event a broker worker would have sent: a run begins at `pre-syncing`
    /// (a new run id), a `syncing` after a `failed` is the run's next attempt. A Go worker
    /// does not say whether a `failed` ends the run or a retry follows: each counts as an
    /// end, so each failed attempt counts as a failure.
    fn legacy_status(&self, worker: &WorkerId, report: &LegacyReport, now: GoTime) -> JobStatus {
        let stored = self.jobs.get(&(report.mirror.clone(), worker.clone()));
        let run = stored.and_then(|job| job.current_run.as_ref());
        let same_run = stored.and_then(|job| job.run_id).filter(|_| {
            report.status != SyncStatus::PreSyncing
                || stored.is_some_and(|job| job.status == SyncStatus::PreSyncing)
        });
        let attempts = run
            .filter(|run| Some(run.record.run_id) == same_run)
            .map_or(0, |run| run.record.attempts);
        let retried = report.status == SyncStatus::Syncing
            && stored.is_some_and(|job| job.status == SyncStatus::Failed);
        let attempt = match same_run {
            Some(_) if retried => attempts.saturating_add(1),
            Some(_) => attempts.max(1),
            None => 1,
        };
        JobStatus {
            mirror: report.mirror.clone(),
            status: report.status,
            run_id: same_run.unwrap_or_else(Uuid::new_v4),
            attempt,
            at: now,
            upstream: report.upstream.clone(),
            is_master: report.is_master,
            size: Some(report.size.clone()),
            error_msg: report.error_msg.clone(),
            pooled: None,
            transferred_bytes: None,
            ends_run: matches!(report.status, SyncStatus::Success | SyncStatus::Failed),
        }
    }
}

/// The host of a worker's URL (`http://host:port/` → `host`), or the URL itself.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => {
            host.trim_start_matches('[').trim_end_matches(']')
        }
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Verified;
    use tunasync_shared::wire::event::Heartbeat;

    fn worker() -> WorkerId {
        WorkerId::new("wgo").unwrap()
    }

    fn register(model: &mut Model, now: GoTime) -> Result<(), LegacyRefusal> {
        let post = LegacyPost::Register {
            worker: worker(),
            url: "http://wgo.example:6000/".into(),
        };
        model.apply_legacy(&post, now, &|_| true, &mut Changes::default())
    }

    fn report(model: &mut Model, status: SyncStatus, size: &str, now: GoTime) {
        let post = LegacyPost::Status {
            worker: worker(),
            report: LegacyReport {
                mirror: MirrorName::new("debian").unwrap(),
                status,
                is_master: true,
                upstream: "rsync://up/debian/".into(),
                size: size.into(),
                error_msg: if status == SyncStatus::Failed {
                    "exit status 3".into()
                } else {
                    String::new()
                },
            },
        };
        model
            .apply_legacy(&post, now, &|_| true, &mut Changes::default())
            .unwrap();
    }

    fn at(secs: i64) -> GoTime {
        GoTime::from_unix(1_780_000_000 + secs).unwrap()
    }

    #[test]
    fn a_go_workers_run_is_stamped_by_the_manager_and_kept_in_history() {
        let mut model = Model::default();
        let key = (MirrorName::new("debian").unwrap(), worker());
        // Posts before registering are tunasync's `invalid workerID`.
        let early = LegacyPost::Schedules {
            worker: worker(),
            schedules: vec![],
        };
        assert_eq!(
            model.apply_legacy(&early, at(0), &|_| true, &mut Changes::default()),
            Err(LegacyRefusal::Unregistered(worker()))
        );
        register(&mut model, at(0)).unwrap();
        let record = &model.workers[&worker()];
        assert_eq!(record.host, "wgo.example");
        assert_eq!(record.to_status(&worker(), false).online, None);
        report(&mut model, SyncStatus::PreSyncing, "unknown", at(10));
        report(&mut model, SyncStatus::Syncing, "unknown", at(11));
        report(&mut model, SyncStatus::Failed, "unknown", at(20));
        report(&mut model, SyncStatus::Syncing, "unknown", at(21));
        report(&mut model, SyncStatus::Success, "12.5M", at(30));
        let job = &model.jobs[&key];
        assert_eq!(job.status, SyncStatus::Success);
        assert_eq!(job.last_started, at(10));
        assert_eq!((job.last_update, job.last_ended), (at(30), at(30)));
        assert_eq!(job.size, "12.5M");
        let run = &job.current_run.as_ref().unwrap().record;
        assert_eq!((run.attempts, run.started, run.ended), (2, at(10), at(30)));
        // The next run: a new entry; "unknown" keeps the size.
        let first_run = run.run_id;
        report(&mut model, SyncStatus::PreSyncing, "unknown", at(40));
        let job = &model.jobs[&key];
        assert_ne!(job.run_id, Some(first_run));
        assert_eq!(job.size, "12.5M");
        assert_eq!(job.last_update, at(30));
        let schedules = LegacyPost::Schedules {
            worker: worker(),
            schedules: vec![
                ScheduledRun {
                    mirror: MirrorName::new("debian").unwrap(),
                    next_schedule: at(3600),
                },
                ScheduledRun {
                    mirror: MirrorName::new("not-yet-known").unwrap(),
                    next_schedule: at(3600),
                },
            ],
        };
        model
            .apply_legacy(&schedules, at(41), &|_| true, &mut Changes::default())
            .unwrap();
        assert_eq!(model.jobs[&key].next_schedule, at(3600));
        assert_eq!(model.jobs.len(), 1);
        assert_eq!(model.workers[&worker()].last_online, at(41));
    }

    #[test]
    fn an_id_belongs_to_one_side() {
        let mut model = Model::default();
        // A broker worker that is online keeps its id; once offline, a Go worker may take it.
        let heartbeat = Verified {
            worker: worker(),
            seq: 1,
            event: Event::Heartbeat(Heartbeat {
                session: Uuid::new_v4(),
                interval_secs: 10,
                running: vec![],
                free_slots: None,
            }),
        };
        model.apply(&heartbeat, at(0), &mut Changes::default());
        assert_eq!(
            register(&mut model, at(1)),
            Err(LegacyRefusal::ClaimedOverBroker(worker()))
        );
        let post = LegacyPost::Register {
            worker: worker(),
            url: "http://[::1]:6000/".into(),
        };
        model
            .apply_legacy(&post, at(2), &|_| false, &mut Changes::default())
            .unwrap();
        assert_eq!(model.workers[&worker()].host, "::1");
        // The broker's events for a Go worker's id change nothing.
        let mut changes = Changes::default();
        let later = Verified {
            seq: 50,
            ..heartbeat
        };
        model.apply(&later, at(3), &mut changes);
        assert!(changes.workers.is_empty());
        assert_eq!(changes.claimed_over_http, [worker()].into());
        assert_eq!(model.workers[&worker()].last_online, at(2));
    }
}
