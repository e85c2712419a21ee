//! The model's rules, event by event.

use super::*;
use crate::records::{Hold, RunRecord, UNKNOWN_SIZE};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::event::{
    Hello, JobRemoved, JobSnapshot, JobStatus, ProviderKind, Schedule, ScheduledRun,
};
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
    seq: u64,
}

impl Harness {
    fn new() -> Self {
        Harness {
            model: Model::default(),
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
        self.model
            .apply(&verified, at("2026-11-26T12:00:00+08:00"), &mut changes);
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

fn status(mirror: &str, status: SyncStatus, when: &str, size: Option<&str>, run: Uuid) -> Event {
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
        pooled: None,
        transferred_bytes: None,
        ends_run: false,
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
        jitter_secs: 0,
        status,
        run_id: None,
        last_update: GoTime::ZERO,
        last_started: GoTime::ZERO,
        last_ended: GoTime::ZERO,
        next_schedule: GoTime::ZERO,
        size: None,
        error_msg: String::new(),
        pool: None,
        fingerprint: None,
        url: None,
        desc: None,
        rules: Default::default(),
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
    h.model.hold(&key("b"), Hold::Paused, &mut changes);
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
    assert!(h.model.hold(&key("b"), Hold::Disabled, &mut changes));
    assert_eq!(h.model.flush_disabled(&mut changes), 1);
    assert!(!h.model.jobs.contains_key(&key("b")));
    assert!(h.model.remove_worker(&w1(), &mut changes));
    assert!(h.model.jobs.is_empty());
    assert!(!h.model.remove_worker(&w1(), &mut changes));
}

fn history_of(changes: &Changes, run: Uuid) -> Option<&RunRecord> {
    changes
        .runs
        .iter()
        .rev()
        .find(|(_, entry)| entry.record.run_id == run)
        .map(|(_, entry)| &entry.record)
}

/// A long broker outage: the worker's queue dropped the end of a run. The `hello` it sends
/// after reconnecting (same process, same session) is its account of every job, so the job
/// and its history entry end as the run did.
#[test]
fn a_reconnect_hello_makes_good_the_reports_lost_on_the_way() {
    let mut h = Harness::new();
    let session = Uuid::new_v4();
    h.send(hello(session, vec![snapshot("a", SyncStatus::None)]));
    let run = Uuid::new_v4();
    h.send(status(
        "a",
        SyncStatus::PreSyncing,
        "2026-11-26T10:00:00+08:00",
        None,
        run,
    ));
    h.send(status(
        "a",
        SyncStatus::Syncing,
        "2026-11-26T10:00:01+08:00",
        None,
        run,
    ));
    // The success was lost; a day later the worker is back.
    let mut account = snapshot("a", SyncStatus::Success);
    account.run_id = Some(run);
    account.last_started = at("2026-11-26T10:00:00+08:00");
    account.last_update = at("2026-11-26T10:40:00+08:00");
    account.last_ended = at("2026-11-26T10:40:00+08:00");
    account.size = Some("3G".into());
    let changes = h.send(hello(session, vec![account]));
    let job = h.job("a");
    assert_eq!(job.status, SyncStatus::Success);
    assert_eq!(job.last_update, at("2026-11-26T10:40:00+08:00"));
    assert_eq!(job.size, "3G");
    let entry = history_of(&changes, run).expect("the history entry is updated");
    assert_eq!(entry.result, SyncStatus::Success);
    assert_eq!(entry.ended, at("2026-11-26T10:40:00+08:00"));

    // A job the worker has not run in this session keeps what the store knows.
    let changes = h.send(hello(session, vec![snapshot("a", SyncStatus::None)]));
    assert_eq!(h.job("a").status, SyncStatus::Success);
    assert!(changes.runs.is_empty());
}

#[test]
fn a_restarted_worker_ends_the_run_the_store_showed_going_on() {
    let mut h = Harness::new();
    h.send(hello(Uuid::new_v4(), vec![snapshot("a", SyncStatus::None)]));
    let run = Uuid::new_v4();
    h.send(status(
        "a",
        SyncStatus::Syncing,
        "2026-11-26T10:00:00+08:00",
        None,
        run,
    ));
    let changes = h.send(hello(Uuid::new_v4(), vec![snapshot("a", SyncStatus::None)]));
    assert_eq!(h.job("a").status, SyncStatus::Failed);
    let entry = history_of(&changes, run).expect("the open entry ends");
    assert_eq!(
        (entry.result, entry.error_msg.as_str()),
        (SyncStatus::Failed, RESTARTED_ERROR)
    );
    assert!(!entry.ended.is_zero());
}

/// The worker started a job before it learnt that the operator disabled it: its reports do
/// not undo the disable, and every welcome repeats it, until the operator starts the job.
#[test]
fn an_operators_hold_outlives_the_workers_reports() {
    let mut h = Harness::new();
    h.send(hello(
        Uuid::new_v4(),
        vec![
            snapshot("a", SyncStatus::None),
            snapshot("b", SyncStatus::None),
        ],
    ));
    let mut changes = Changes::default();
    assert!(h.model.hold(&key("a"), Hold::Disabled, &mut changes));
    let run = Uuid::new_v4();
    h.send(status(
        "a",
        SyncStatus::PreSyncing,
        "2026-11-26T10:00:00+08:00",
        None,
        run,
    ));
    h.send(status(
        "a",
        SyncStatus::Success,
        "2026-11-26T10:05:00+08:00",
        None,
        run,
    ));
    assert_eq!(h.job("a").status, SyncStatus::Disabled);
    assert_eq!(
        h.job("a").last_update,
        at("2026-11-26T10:05:00+08:00"),
        "what really happened is still recorded"
    );
    let changes = h.send(hello(Uuid::new_v4(), vec![snapshot("a", SyncStatus::None)]));
    assert_eq!(h.job("a").status, SyncStatus::Disabled);
    let stored = |changes: &Changes, mirror: &str| {
        changes.welcomes[0]
            .1
            .jobs
            .iter()
            .find(|job| job.mirror.as_str() == mirror)
            .unwrap()
            .status
    };
    assert_eq!(stored(&changes, "a"), SyncStatus::Disabled);

    let mut changes = Changes::default();
    assert!(h.model.release(&key("a"), &mut changes));
    let changes = h.send(hello(Uuid::new_v4(), vec![snapshot("a", SyncStatus::None)]));
    assert_eq!(
        stored(&changes, "a"),
        SyncStatus::None,
        "a released job holds nothing back, even before it runs again"
    );
    h.send(status(
        "a",
        SyncStatus::PreSyncing,
        "2026-11-26T11:00:00+08:00",
        None,
        Uuid::new_v4(),
    ));
    assert_eq!(h.job("a").status, SyncStatus::PreSyncing);

    // A job removed by a reload is shown disabled, but holds nothing back.
    h.send(Event::JobRemoved(JobRemoved {
        mirror: MirrorName::new("b").unwrap(),
    }));
    assert_eq!(h.job("b").status, SyncStatus::Disabled);
    assert_eq!(h.job("b").intended_status(), SyncStatus::None);
}

/// A copy of an old report, redelivered after the job was flushed, does not bring it back.
#[test]
fn a_late_copy_does_not_bring_back_a_flushed_job() {
    let mut h = Harness::new();
    let run = Uuid::new_v4();
    h.send_at(
        10,
        status(
            "gone",
            SyncStatus::Success,
            "2026-11-26T10:00:00+08:00",
            None,
            run,
        ),
    );
    let mut changes = Changes::default();
    h.model.hold(&key("gone"), Hold::Disabled, &mut changes);
    assert_eq!(h.model.flush_disabled(&mut changes), 1);
    for seq in [10, 9] {
        let changes = h.send_at(
            seq,
            status(
                "gone",
                SyncStatus::Success,
                "2026-11-26T10:00:00+08:00",
                None,
                run,
            ),
        );
        assert!(changes.jobs.is_empty());
        assert!(!h.model.jobs.contains_key(&key("gone")));
    }
    // A new report from the worker (it still runs the job) registers it again.
    h.send_at(
        11,
        status(
            "gone",
            SyncStatus::PreSyncing,
            "2026-11-26T11:00:00+08:00",
            None,
            Uuid::new_v4(),
        ),
    );
    assert!(h.model.jobs.contains_key(&key("gone")));
}

/// tunasync shows `unknown` for a size never reported, not an empty string.
#[test]
fn a_new_job_shows_its_size_unknown() {
    let mut h = Harness::new();
    h.send(hello(Uuid::new_v4(), vec![snapshot("a", SyncStatus::None)]));
    h.send(status(
        "b",
        SyncStatus::PreSyncing,
        "2026-11-26T10:00:00+08:00",
        None,
        Uuid::new_v4(),
    ));
    for mirror in ["a", "b"] {
        assert_eq!(h.job(mirror).size, UNKNOWN_SIZE);
        let shown = h
            .job(mirror)
            .to_status(&MirrorName::new(mirror).unwrap(), &w1(), true);
        assert_eq!(shown.size, "unknown");
    }
    let legacy = JobRecord {
        size: String::new(),
        ..JobRecord::default()
    };
    assert_eq!(
        legacy
            .to_status(&MirrorName::new("c").unwrap(), &w1(), true)
            .size,
        "unknown",
        "a record stored empty by an older build"
    );
}

#[test]
fn a_new_run_ends_an_entry_whose_end_never_came() {
    let mut h = Harness::new();
    let first = Uuid::new_v4();
    h.send(status(
        "a",
        SyncStatus::Syncing,
        "2026-11-26T10:00:00+08:00",
        None,
        first,
    ));
    let changes = h.send(status(
        "a",
        SyncStatus::PreSyncing,
        "2026-11-26T11:00:00+08:00",
        None,
        Uuid::new_v4(),
    ));
    let entry = history_of(&changes, first).expect("the older entry ends");
    assert_eq!(
        (entry.result, entry.error_msg.as_str()),
        (SyncStatus::Failed, jobs::LOST_END_ERROR)
    );
    assert_eq!(entry.ended, at("2026-11-26T11:00:00+08:00"));
}

/// A worker whose clock was stepped back numbers its events below what the store holds:
/// its hello is too old to apply, and the welcome says where the numbers must continue.
#[test]
fn a_hello_numbered_below_the_store_is_answered_with_its_numbers() {
    let mut h = Harness::new();
    h.send_at(
        5_000,
        hello(Uuid::new_v4(), vec![snapshot("a", SyncStatus::None)]),
    );
    let changes = h.send_at(
        4_000,
        hello(Uuid::new_v4(), vec![snapshot("a", SyncStatus::None)]),
    );
    assert_eq!(changes.welcomes[0].1.last_seq, Some(5_000));
}

fn progress(mirror: &str, run: Uuid, log_lines: u64) -> Event {
    Event::Progress(tunasync_shared::wire::event::JobProgress {
        mirror: MirrorName::new(mirror).unwrap(),
        run_id: run,
        attempt: 1,
        running_secs: 5,
        log_bytes: log_lines * 10,
        log_lines,
        files: Some(log_lines),
        transferred_bytes: None,
        percent: None,
    })
}

#[test]
fn progress_shows_on_the_running_run_only_and_is_never_stored() {
    let mut h = Harness::new();
    let run = Uuid::new_v4();
    h.send(status(
        "debian",
        SyncStatus::Syncing,
        "2026-11-26T12:00:00+08:00",
        None,
        run,
    ));
    let changes = h.send(progress("debian", run, 7));
    assert!(changes.progressed.contains(&key("debian")));
    assert!(
        !changes.jobs.contains(&key("debian")),
        "not written to the store"
    );
    let shown = h.job("debian").to_status(&key("debian").0, &w1(), true);
    assert_eq!(shown.progress.as_ref().map(|p| p.log_lines), Some(7));
    let text = serde_json::to_string(h.job("debian")).unwrap();
    assert!(!text.contains("log_lines"), "{text}");

    // Another run's progress, or any for a job not running, is dropped.
    let changes = h.send(progress("debian", Uuid::new_v4(), 9));
    assert!(changes.progressed.is_empty());
    h.send(status(
        "debian",
        SyncStatus::Success,
        "2026-11-26T12:05:00+08:00",
        None,
        run,
    ));
    assert_eq!(
        h.job("debian")
            .to_status(&key("debian").0, &w1(), true)
            .progress,
        None,
        "a run that ended shows no progress"
    );
    assert!(h.send(progress("debian", run, 11)).progressed.is_empty());
    assert!(h.send(progress("nosuch", run, 1)).progressed.is_empty());
}

/// What successful runs transferred: the latest run's (cleared when the next starts), and
/// the sum, which a redelivered event does not count twice.
#[test]
fn transferred_bytes_are_the_last_runs_and_a_sum() {
    let mut h = Harness::new();
    let with_bytes = |event: Event, bytes: u64| match event {
        Event::Status(status) => Event::Status(JobStatus {
            transferred_bytes: Some(bytes),
            ..status
        }),
        other => other,
    };
    let first = Uuid::new_v4();
    h.send(status(
        "m",
        SyncStatus::PreSyncing,
        "2026-11-26T10:00:00+08:00",
        None,
        first,
    ));
    let done = with_bytes(
        status(
            "m",
            SyncStatus::Success,
            "2026-11-26T10:05:00+08:00",
            None,
            first,
        ),
        100,
    );
    h.send(done.clone());
    assert_eq!(
        (
            h.job("m").last_transferred_bytes,
            h.job("m").total_transferred_bytes
        ),
        (Some(100), 100)
    );
    let seq = h.seq;
    h.send_at(seq, done);
    assert_eq!(h.job("m").total_transferred_bytes, 100, "counted once");

    let second = Uuid::new_v4();
    h.send(status(
        "m",
        SyncStatus::PreSyncing,
        "2026-11-26T11:00:00+08:00",
        None,
        second,
    ));
    assert_eq!(
        h.job("m").last_transferred_bytes,
        None,
        "cleared while the next runs"
    );
    h.send(with_bytes(
        status(
            "m",
            SyncStatus::Success,
            "2026-11-26T11:05:00+08:00",
            None,
            second,
        ),
        50,
    ));
    assert_eq!(
        (
            h.job("m").last_transferred_bytes,
            h.job("m").total_transferred_bytes
        ),
        (Some(50), 150)
    );
}

/// Runs that end failed are counted in a row; a failed attempt that is retried is not; a
/// success starts the count again.
#[test]
fn consecutive_failures_count_runs_that_ended_failed() {
    let mut h = Harness::new();
    let ended = |event: Event| match event {
        Event::Status(status) => Event::Status(JobStatus {
            ends_run: true,
            ..status
        }),
        other => other,
    };
    let failed_run = |h: &mut Harness, retried: bool| {
        let run = Uuid::new_v4();
        h.send(status(
            "m",
            SyncStatus::PreSyncing,
            "2026-11-26T10:00:00+08:00",
            None,
            run,
        ));
        if retried {
            h.send(status(
                "m",
                SyncStatus::Failed,
                "2026-11-26T10:01:00+08:00",
                None,
                run,
            ));
        }
        h.send(ended(status(
            "m",
            SyncStatus::Failed,
            "2026-11-26T10:02:00+08:00",
            None,
            run,
        )));
    };
    failed_run(&mut h, true);
    assert_eq!(h.job("m").consecutive_failures, 1, "one run, two attempts");
    failed_run(&mut h, false);
    assert_eq!(h.job("m").consecutive_failures, 2);
    let run = Uuid::new_v4();
    h.send(status(
        "m",
        SyncStatus::Failed,
        "2026-11-26T11:00:00+08:00",
        None,
        run,
    ));
    assert_eq!(h.job("m").consecutive_failures, 2, "a retried attempt");
    h.send(ended(status(
        "m",
        SyncStatus::Success,
        "2026-11-26T11:01:00+08:00",
        None,
        run,
    )));
    assert_eq!(h.job("m").consecutive_failures, 0);
}

/// A run's history entry names the upstream its reports used (a fallback, when the first
/// did not answer).
#[test]
fn the_history_names_the_upstream_a_run_used() {
    let mut h = Harness::new();
    let run = Uuid::new_v4();
    let fallback = |event: Event| match event {
        Event::Status(status) => Event::Status(JobStatus {
            upstream: "rsync://fallback.example.org/m/".into(),
            ..status
        }),
        other => other,
    };
    let changes = h.send(fallback(status(
        "m",
        SyncStatus::Syncing,
        "2026-11-26T10:00:00+08:00",
        None,
        run,
    )));
    let (_, entry) = changes.runs.last().unwrap();
    assert_eq!(entry.record.upstream, "rsync://fallback.example.org/m/");
    assert_eq!(h.job("m").upstream, "rsync://fallback.example.org/m/");
}
