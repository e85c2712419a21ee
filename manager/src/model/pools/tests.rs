//! Pooled mirrors, event by event: hand-outs, claims, leases, failover.

use super::*;
use crate::model::Verified;
use crate::records::Hold;
use tunasync_shared::wire::event::{Event, JobSnapshot, ProviderKind};

fn w(name: &str) -> WorkerId {
    WorkerId::new(name).unwrap()
}

fn pool_name() -> PoolName {
    PoolName::new("shared").unwrap()
}

fn debian() -> PoolKey {
    (pool_name(), MirrorName::new("debian").unwrap())
}

fn at(text: &str) -> GoTime {
    GoTime::parse_rfc3339(text).unwrap()
}

const NOW: &str = "2026-12-01T10:00:00Z";

struct Pool {
    model: Model,
    seq: u64,
    offline: Vec<WorkerId>,
    /// When events arrive.
    clock: GoTime,
}

impl Pool {
    /// Members that define `debian` in pool `shared` with the given fingerprints.
    fn new(members: &[(&str, &str)]) -> Pool {
        let mut pool = Pool {
            model: Model::default(),
            seq: 0,
            offline: Vec::new(),
            clock: at(NOW),
        };
        for (member, fingerprint) in members {
            pool.hello(member, fingerprint);
        }
        pool
    }

    fn send(&mut self, worker: &str, event: Event) -> Changes {
        self.seq += 1;
        let mut changes = Changes::default();
        let verified = Verified {
            worker: w(worker),
            seq: self.seq,
            event,
        };
        self.model.apply(&verified, self.clock, &mut changes);
        changes
    }

    fn hello(&mut self, worker: &str, fingerprint: &str) -> Changes {
        let snapshot = Self::snapshot(fingerprint);
        self.hello_with(worker, vec![snapshot])
    }

    fn hello_with(&mut self, worker: &str, jobs: Vec<JobSnapshot>) -> Changes {
        self.send(
            worker,
            Event::Hello(Hello {
                version: "test".into(),
                host: worker.into(),
                session: Uuid::new_v4(),
                heartbeat_interval_secs: 10,
                jobs,
            }),
        )
    }

    fn snapshot(fingerprint: &str) -> JobSnapshot {
        JobSnapshot {
            mirror: MirrorName::new("debian").unwrap(),
            provider: ProviderKind::Rsync,
            upstream: "rsync://up/debian/".into(),
            is_master: true,
            interval_minutes: 60,
            cron: None,
            jitter_secs: 0,
            status: SyncStatus::None,
            run_id: None,
            last_update: GoTime::ZERO,
            last_started: GoTime::ZERO,
            last_ended: GoTime::ZERO,
            next_schedule: GoTime::ZERO,
            size: None,
            error_msg: String::new(),
            pool: Some(pool_name()),
            fingerprint: Some(fingerprint.to_owned()),
            url: None,
            desc: None,
            rules: Default::default(),
        }
    }

    fn tick(&mut self, now: &str) -> Vec<PoolRun> {
        self.publications(now)
            .into_iter()
            .map(|publication| publication.run)
            .collect()
    }

    fn publications(&mut self, now: &str) -> Vec<Publication> {
        self.publications_and_wake(now).0
    }

    /// What a tick at `now` publishes, and when it says the next has something to do.
    fn publications_and_wake(&mut self, now: &str) -> (Vec<Publication>, Option<GoTime>) {
        let mut changes = Changes::default();
        let offline = self.offline.clone();
        let next = self
            .model
            .pool_tick(at(now), &|worker| !offline.contains(worker), &mut changes);
        (changes.pool_runs, next)
    }

    /// The broker confirmed `publication`.
    fn confirm(&mut self, publication: &Publication) {
        let mut changes = Changes::default();
        self.model.pool_run_published(
            &debian(),
            publication.run.lease,
            publication.retry_at,
            &mut changes,
        );
    }

    fn claim(&mut self, worker: &str, run: &PoolRun, fingerprint: &str) -> Grant {
        let changes = self.claim_changes(worker, run, fingerprint);
        assert_eq!(changes.grants.len(), 1);
        assert_eq!(changes.grants[0].0, w(worker), "answered to the claimer");
        changes.grants[0].1.clone()
    }

    /// What applying `worker`'s claim of `run` changed.
    fn claim_changes(&mut self, worker: &str, run: &PoolRun, fingerprint: &str) -> Changes {
        self.send(
            worker,
            Event::Claim(Claim {
                pool: run.pool.clone(),
                mirror: run.mirror.clone(),
                run_id: run.run_id,
                lease: run.lease,
                fingerprint: Some(fingerprint.to_owned()),
            }),
        )
    }

    fn report(
        &mut self,
        worker: &str,
        run: &PoolRun,
        status: SyncStatus,
        when: &str,
        last: bool,
    ) -> Changes {
        self.send(
            worker,
            Event::Status(JobStatus {
                mirror: run.mirror.clone(),
                status,
                run_id: run.run_id,
                attempt: 1,
                at: at(when),
                upstream: "rsync://up/debian/".into(),
                is_master: true,
                size: None,
                error_msg: String::new(),
                pooled: Some(PooledRun {
                    pool: run.pool.clone(),
                    lease: run.lease,
                    last,
                }),
                transferred_bytes: None,
                ends_run: last,
            }),
        )
    }

    fn shown(&self) -> &JobRecord {
        &self.model.jobs[&display_key(&debian())]
    }

    fn state(&self) -> &PoolRunState {
        &self.model.pool_jobs[&debian()].run
    }
}

#[test]
fn a_pooled_mirror_no_member_defines_any_more_is_removed() {
    let mut pool = Pool::new(&[("m1", "v1:a"), ("m2", "v1:a")]);
    let changes = pool.hello_with("m1", Vec::new());
    assert!(changes.removed_jobs.is_empty(), "m2 still defines it");
    assert!(pool.model.pool_jobs.contains_key(&debian()));
    let changes = pool.hello_with("m2", Vec::new());
    assert_eq!(
        changes.removed_jobs.into_iter().collect::<Vec<_>>(),
        [display_key(&debian())]
    );
    assert!(
        changes.pool_jobs.contains(&debian()),
        "deleted from the store"
    );
    assert!(!pool.model.pool_jobs.contains_key(&debian()));
    assert!(!pool.model.jobs.contains_key(&display_key(&debian())));
    assert!(!pool.model.is_pool(&pool_name().as_worker_id()));
}

#[test]
fn a_pooled_mirror_that_runs_stays_until_its_run_is_over() {
    let mut pool = Pool::new(&[("m1", "v1:a")]);
    let run = pool.tick(NOW).remove(0);
    assert!(pool.claim("m1", &run, "v1:a").granted);
    let changes = pool.hello_with("m1", Vec::new());
    assert!(changes.removed_jobs.is_empty());
    assert!(pool.model.pool_jobs.contains_key(&debian()));
}

#[test]
fn a_pooled_mirror_is_one_job_of_its_pool() {
    let pool = Pool::new(&[("m1", "v1:a"), ("m2", "v1:a")]);
    let keys: Vec<&JobKey> = pool.model.jobs.keys().collect();
    assert_eq!(
        keys,
        [&display_key(&debian())],
        "one row, not one per member"
    );
    assert_eq!(pool.model.pool_members(&pool_name()), [w("m1"), w("m2")]);
}

#[test]
fn a_due_run_is_handed_out_once_and_granted_once() {
    let mut pool = Pool::new(&[("m1", "v1:a"), ("m2", "v1:a")]);
    let runs = pool.tick(NOW);
    assert_eq!(runs.len(), 1);
    let run = runs[0].clone();
    assert_eq!((run.lease, run.fingerprint.as_str()), (1, "v1:a"));
    assert!(
        pool.tick(NOW).is_empty(),
        "not published again before its retry time"
    );
    assert!(pool.claim("m1", &run, "v1:a").granted);
    let second = pool.claim("m2", &run, "v1:a");
    assert!(!second.granted, "{second:?}");
    assert!(matches!(pool.state(), PoolRunState::Granted { member, .. } if *member == w("m1")));
}

#[test]
fn an_unconfirmed_publication_is_retried_and_a_confirmed_one_is_not() {
    let mut pool = Pool::new(&[("m1", "v1:a")]);
    let run = pool.tick(NOW).remove(0);
    let retried = pool.publications("2026-12-01T10:00:11Z");
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].run, run, "the same run, the same lease");
    pool.confirm(&retried[0]);
    assert!(pool.tick("2026-12-01T10:00:30Z").is_empty());
}

#[test]
fn a_member_whose_definition_differs_is_refused_and_the_run_goes_out_again() {
    let mut pool = Pool::new(&[("m1", "v1:a"), ("m2", "v1:a"), ("m3", "v1:b")]);
    let consensus = pool.model.pool_consensus(&debian(), &|_| true).unwrap();
    assert_eq!(consensus.definition.fingerprint, "v1:a");
    assert_eq!(consensus.agreeing, [w("m1"), w("m2")]);
    assert_eq!(consensus.differing, [(w("m3"), "v1:b".to_owned())]);
    let publication = pool.publications(NOW).remove(0);
    let run = publication.run.clone();
    pool.confirm(&publication);
    let refused = pool.claim("m3", &run, "v1:b");
    assert!(!refused.granted);
    assert!(refused.reason.contains("differs"), "{}", refused.reason);
    assert!(pool.tick("2026-12-01T10:00:01Z").is_empty(), "not at once");
    assert_eq!(
        pool.tick("2026-12-01T10:00:03Z"),
        std::slice::from_ref(&run),
        "again, for another member"
    );
    assert!(pool.claim("m1", &run, "v1:a").granted);
}

#[test]
fn a_confirm_that_comes_after_a_refused_claim_does_not_cancel_the_republication() {
    let mut pool = Pool::new(&[("m1", "v1:a"), ("m3", "v1:b")]);
    let publication = pool.publications(NOW).remove(0);
    let run = publication.run.clone();
    // The odd member's claim is answered before the publisher records the confirm.
    assert!(!pool.claim("m3", &run, "v1:b").granted);
    pool.confirm(&publication);
    assert_eq!(
        pool.tick("2026-12-01T10:00:03Z"),
        std::slice::from_ref(&run),
        "published again for another member"
    );
}

#[test]
fn the_tick_says_when_it_next_has_work_and_a_grant_records_how_long_the_run_waited() {
    let mut pool = Pool::new(&[("m1", "v1:a")]);
    let (published, next) = pool.publications_and_wake(NOW);
    assert_eq!(next, Some(published[0].retry_at), "the publication's retry");
    pool.confirm(&published[0]);
    let run = published[0].run.clone();
    let (_, next) = pool.publications_and_wake(NOW);
    assert_eq!(
        next, None,
        "queued and confirmed: nothing to do until a claim"
    );
    pool.clock = at("2026-12-01T10:00:00.040Z");
    let changes = pool.claim_changes("m1", &run, "v1:a");
    assert_eq!(changes.pool_waits, [std::time::Duration::from_millis(40)]);
    let (_, next) = pool.publications_and_wake("2026-12-01T10:00:01Z");
    assert_eq!(
        next,
        Some(at_plus(at("2026-12-01T10:00:00.040Z"), GRANT_TIMEOUT)),
        "the grant's time-out"
    );
    pool.clock = at("2026-12-01T10:00:01Z");
    pool.report(
        "m1",
        &run,
        SyncStatus::Success,
        "2026-12-01T10:00:01Z",
        true,
    );
    let (_, next) = pool.publications_and_wake("2026-12-01T10:00:02Z");
    assert_eq!(
        next,
        Some(at("2026-12-01T11:00:01Z")),
        "the next run's due time"
    );
    // A `start` makes it due now, and the wait counts from then.
    let mut changes = Changes::default();
    assert!(
        pool.model
            .pool_start(&debian(), false, at("2026-12-01T10:30:00Z"), &mut changes)
    );
    let run = pool.tick("2026-12-01T10:30:00.500Z").remove(0);
    pool.clock = at("2026-12-01T10:30:00.600Z");
    let changes = pool.claim_changes("m1", &run, "v1:a");
    assert_eq!(changes.pool_waits, [std::time::Duration::from_millis(600)]);
}

#[test]
fn a_queued_run_follows_the_definition_when_the_majority_changes() {
    // m1 and m3 tie; the smaller fingerprint (m3's) is scheduled.
    let mut pool = Pool::new(&[("m1", "v1:b"), ("m3", "v1:a")]);
    let first = pool.tick(NOW).remove(0);
    assert_eq!(first.fingerprint, "v1:a");
    // m2 joins with m1's definition: the waiting run goes out again with it.
    pool.hello("m2", "v1:b");
    let again = pool.tick("2026-12-01T10:00:01Z").remove(0);
    assert_eq!(again.fingerprint, "v1:b");
    assert!(again.lease > first.lease);
    assert!(
        !pool.claim("m3", &first, "v1:a").granted,
        "the old hand-out is over"
    );
    assert!(pool.claim("m1", &again, "v1:b").granted);
}

#[test]
fn the_granted_members_reports_count_and_the_last_frees_the_mirror() {
    let mut pool = Pool::new(&[("m1", "v1:a"), ("m2", "v1:a")]);
    let run = pool.tick(NOW).remove(0);
    assert!(pool.claim("m1", &run, "v1:a").granted);
    pool.report(
        "m1",
        &run,
        SyncStatus::PreSyncing,
        "2026-12-01T10:00:01Z",
        false,
    );
    assert!(matches!(pool.state(), PoolRunState::Running { .. }));
    assert_eq!(pool.shown().status, SyncStatus::PreSyncing);
    // Another member's report with the same lease does not count.
    let stray = pool.report("m2", &run, SyncStatus::Failed, "2026-12-01T10:00:02Z", true);
    assert!(stray.jobs.is_empty());
    let changes = pool.report(
        "m1",
        &run,
        SyncStatus::Success,
        "2026-12-01T10:05:00Z",
        true,
    );
    assert_eq!(*pool.state(), PoolRunState::Idle);
    assert_eq!(pool.shown().status, SyncStatus::Success);
    assert_eq!(pool.shown().last_update, at("2026-12-01T10:05:00Z"));
    assert_eq!(
        pool.model.pool_jobs[&debian()].next_due,
        at("2026-12-01T11:05:00Z"),
        "the interval counts from the end of the run"
    );
    let (_, entry) = changes.runs.last().unwrap();
    assert_eq!(entry.key, run.lease, "history keyed by lease");
    assert_eq!(entry.record.member, Some(w("m1")));
    assert_eq!(entry.record.result, SyncStatus::Success);
    assert!(pool.tick("2026-12-01T11:00:00Z").is_empty(), "not due yet");
    let next = pool.tick("2026-12-01T11:05:00Z");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].lease, 2);
}

#[test]
fn a_member_gone_offline_loses_its_run_to_another() {
    let mut pool = Pool::new(&[("m1", "v1:a"), ("m2", "v1:a")]);
    let run = pool.tick(NOW).remove(0);
    assert!(pool.claim("m1", &run, "v1:a").granted);
    pool.report(
        "m1",
        &run,
        SyncStatus::Syncing,
        "2026-12-01T10:00:01Z",
        false,
    );
    pool.offline.push(w("m1"));
    let again = pool.tick("2026-12-01T10:01:00Z");
    assert_eq!(again.len(), 1, "handed out again at once");
    assert_eq!(again[0].lease, 2);
    assert_ne!(again[0].run_id, run.run_id);
    assert_eq!(pool.shown().status, SyncStatus::Failed);
    assert_eq!(pool.shown().error_msg, OFFLINE_ERROR);
    // The old member comes back and reports on its old lease: fenced off.
    let late = pool.report(
        "m1",
        &run,
        SyncStatus::Success,
        "2026-12-01T10:02:00Z",
        true,
    );
    assert!(late.jobs.is_empty());
    assert!(!pool.claim("m1", &run, "v1:a").granted);
    assert!(pool.claim("m2", &again[0], "v1:a").granted);
}

#[test]
fn a_granted_run_that_never_starts_is_handed_out_again() {
    let mut pool = Pool::new(&[("m1", "v1:a"), ("m2", "v1:a")]);
    let run = pool.tick(NOW).remove(0);
    assert!(pool.claim("m1", &run, "v1:a").granted);
    assert!(pool.tick("2026-12-01T10:00:20Z").is_empty());
    let again = pool.tick("2026-12-01T10:00:31Z");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].lease, 2);
}

#[test]
fn a_granted_run_lost_before_it_reported_shows_in_the_history() {
    let mut pool = Pool::new(&[("m1", "v1:a"), ("m2", "v1:a")]);
    let run = pool.tick(NOW).remove(0);
    assert!(pool.claim("m1", &run, "v1:a").granted);
    pool.offline.push(w("m1"));
    let mut changes = Changes::default();
    let offline = pool.offline.clone();
    pool.model.pool_tick(
        at("2026-12-01T10:00:05Z"),
        &|worker| !offline.contains(worker),
        &mut changes,
    );
    let (_, entry) = changes.runs.last().expect("a history entry");
    assert_eq!(entry.key, run.lease);
    assert_eq!(entry.record.member, Some(w("m1")));
    assert_eq!(entry.record.result, SyncStatus::Failed);
    assert_eq!(entry.record.error_msg, OFFLINE_ERROR);
    assert_eq!(changes.pool_runs.len(), 1, "handed out again at once");
}

#[test]
fn a_held_pooled_mirror_is_not_handed_out() {
    let mut pool = Pool::new(&[("m1", "v1:a")]);
    let mut changes = Changes::default();
    assert!(
        pool.model
            .hold(&display_key(&debian()), Hold::Disabled, &mut changes)
    );
    assert!(pool.tick(NOW).is_empty());
    pool.model.release(&display_key(&debian()), &mut changes);
    assert_eq!(pool.tick(NOW).len(), 1);
}

#[test]
fn without_an_online_member_nothing_is_handed_out() {
    let mut pool = Pool::new(&[("m1", "v1:a")]);
    pool.offline.push(w("m1"));
    assert!(pool.tick(NOW).is_empty());
}

#[test]
fn a_pooled_mirror_in_maintenance_runs_only_when_the_operator_starts_it() {
    use tunasync_shared::maintenance::Scope;
    for scope in [
        Scope::Cluster,
        Scope::Worker(pool_name().as_worker_id()),
        Scope::Mirror(debian().1),
        Scope::Job(pool_name().as_worker_id(), debian().1),
    ] {
        let mut pool = Pool::new(&[("m1", "v1:a")]);
        let mut changes = Changes::default();
        assert!(pool.model.maintenance_on(&scope, "", at(NOW), &mut changes));
        let (runs, wake) = pool.publications_and_wake(NOW);
        assert!(runs.is_empty(), "{scope}: not handed out");
        assert_eq!(
            wake, None,
            "{scope}: no tick asked for while in maintenance"
        );
        // The operator's start still runs, once.
        assert!(
            pool.model
                .pool_start(&debian(), false, at(NOW), &mut changes)
        );
        let runs = pool.tick(NOW);
        assert_eq!(runs.len(), 1, "{scope}: the operator's start");
        pool.claim("m1", &runs[0], "v1:a");
        pool.report("m1", &runs[0], SyncStatus::Success, NOW, true);
        let later = "2026-12-01T12:00:00Z";
        let (runs, wake) = pool.publications_and_wake(later);
        assert!(runs.is_empty(), "{scope}: due again, in maintenance");
        assert_eq!(wake, None, "{scope}: and no tick at a time already past");
        assert!(pool.model.maintenance_off(&scope, at(later), &mut changes));
        assert_eq!(
            pool.tick(later).len(),
            1,
            "{scope}: handed out when it ends"
        );
    }
}

/// The members' schedule extras are the pooled mirror's: a failed run is tried again after
/// `retry_after_failure` (doubling) instead of its interval, and a blackout defers it.
#[test]
fn a_pooled_mirror_follows_its_members_schedule_extras() {
    let mut pool = Pool::new(&[]);
    let mut snapshot = Pool::snapshot("v1:a");
    snapshot.rules = tunasync_shared::schedule::ScheduleExtras {
        timezone: Some("UTC".into()),
        blackout: vec!["12:00-13:00".into()],
        retry_after_failure_secs: Some(600),
        ..Default::default()
    };
    pool.hello_with("m1", vec![snapshot]);
    let run_and_end = |pool: &mut Pool, tick: &str, status: SyncStatus, ended: &str| {
        let run = pool.tick(tick).remove(0);
        assert!(pool.claim("m1", &run, "v1:a").granted);
        pool.report("m1", &run, status, ended, true);
        pool.model.pool_jobs[&debian()].next_due
    };
    assert_eq!(
        run_and_end(&mut pool, NOW, SyncStatus::Failed, "2026-12-01T10:05:00Z"),
        at("2026-12-01T10:15:00Z"),
        "10 minutes after the first failed run, not the hour"
    );
    assert_eq!(
        run_and_end(
            &mut pool,
            "2026-12-01T10:15:00Z",
            SyncStatus::Failed,
            "2026-12-01T10:20:00Z"
        ),
        at("2026-12-01T10:40:00Z"),
        "20 after the second"
    );
    assert_eq!(
        run_and_end(
            &mut pool,
            "2026-12-01T10:40:00Z",
            SyncStatus::Success,
            "2026-12-01T11:30:00Z"
        ),
        at("2026-12-01T13:00:00Z"),
        "12:30 falls in the blackout: its end"
    );
}

/// Two pooled mirrors on one upstream host whose limit is 1: one run at a time across the
/// pool; the other waits (without asking for a tick at a time already past) until the
/// first run is over.
#[test]
fn the_pools_runs_against_one_upstream_host_stay_within_its_limit() {
    let mut pool = Pool::new(&[]);
    let snapshot = |mirror: &str| {
        let mut snapshot = Pool::snapshot("v1:a");
        snapshot.mirror = MirrorName::new(mirror).unwrap();
        snapshot.upstream = format!("rsync://up.example.org/{mirror}/");
        snapshot.rules.upstream_limit = Some(1);
        snapshot
    };
    pool.hello_with("m1", vec![snapshot("debian"), snapshot("ubuntu")]);
    pool.hello_with("m2", vec![snapshot("debian"), snapshot("ubuntu")]);
    let (first, wake) = pool.publications_and_wake(NOW);
    assert_eq!(first.len(), 1, "one run against up.example.org");
    assert!(
        wake.is_none_or(|wake| wake.as_datetime() > at(NOW).as_datetime()),
        "the waiting one asks for no tick now: {wake:?}"
    );
    assert!(
        pool.tick("2026-12-01T10:00:01Z").is_empty(),
        "still one at a time"
    );
    let run = first[0].run.clone();
    assert!(pool.claim("m1", &run, "v1:a").granted);
    assert!(
        pool.tick("2026-12-01T10:00:02Z").is_empty(),
        "granted counts"
    );
    pool.report(
        "m1",
        &run,
        SyncStatus::Success,
        "2026-12-01T10:05:00Z",
        true,
    );
    let second = pool.tick("2026-12-01T10:05:01Z");
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].mirror, run.mirror, "now the other one");
}

/// Priority across a pool: the due runs go out highest priority first; while the members'
/// reported free slots are taken by queued runs, the rest wait (a forced start does not),
/// and asking for no tick at a time already past.
#[test]
fn the_higher_priority_pooled_run_goes_first_when_slots_are_scarce() {
    use tunasync_shared::wire::event::Heartbeat;
    let snapshot = |mirror: &str, priority: u8| {
        let mut snapshot = Pool::snapshot("v1:a");
        snapshot.mirror = MirrorName::new(mirror).unwrap();
        snapshot.rules.priority = Some(priority);
        snapshot
    };
    let jobs = || {
        vec![
            snapshot("low", 10),
            snapshot("high", 90),
            snapshot("mid", 50),
        ]
    };

    // Members that do not report their free slots: all go out, in priority order.
    let mut pool = Pool::new(&[]);
    pool.hello_with("m1", jobs());
    let order: Vec<String> = pool
        .tick(NOW)
        .iter()
        .map(|run| run.mirror.to_string())
        .collect();
    assert_eq!(order, ["high", "mid", "low"]);

    // One free slot reported: one run at a time, the highest first.
    let mut pool = Pool::new(&[]);
    pool.hello_with("m1", jobs());
    let free = |pool: &mut Pool, slots: u32| {
        pool.send(
            "m1",
            Event::Heartbeat(Heartbeat {
                session: Uuid::new_v4(),
                interval_secs: 10,
                running: vec![],
                free_slots: Some(slots),
            }),
        );
    };
    free(&mut pool, 1);
    let (runs, wake) = pool.publications_and_wake(NOW);
    let runs: Vec<PoolRun> = runs
        .into_iter()
        .map(|publication| publication.run)
        .collect();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].mirror.as_str(), "high");
    assert!(
        wake.is_none_or(|wake| wake.as_datetime() > at(NOW).as_datetime()),
        "the waiting ones ask for no tick now: {wake:?}"
    );
    assert!(
        pool.tick("2026-12-01T10:00:01Z").is_empty(),
        "the slot is spoken for"
    );
    assert!(pool.claim("m1", &runs[0], "v1:a").granted);
    free(&mut pool, 0);
    assert!(
        pool.tick("2026-12-01T10:00:02Z").is_empty(),
        "the member is busy"
    );
    pool.report(
        "m1",
        &runs[0],
        SyncStatus::Success,
        "2026-12-01T10:05:00Z",
        true,
    );
    free(&mut pool, 1);
    let next = pool.tick("2026-12-01T10:05:01Z");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].mirror.as_str(), "mid", "then the next highest");
    // A forced start does not wait for room.
    let mut changes = Changes::default();
    let low = (pool_name(), MirrorName::new("low").unwrap());
    assert!(
        pool.model
            .pool_start(&low, true, at("2026-12-01T10:05:02Z"), &mut changes)
    );
    let forced = pool.tick("2026-12-01T10:05:02Z");
    assert_eq!(forced.len(), 1);
    assert_eq!(forced[0].mirror.as_str(), "low");
    assert!(forced[0].force);
}

#[test]
fn a_run_reported_by_a_member_whose_hello_is_not_in_yet_is_not_due_again_at_once() {
    let mut pool = Pool::new(&[("m1", "v1:a")]);
    let run = pool.tick(NOW).remove(0);
    // m2 read the pool's queue and claimed before the manager took its `hello`.
    assert!(pool.claim("m2", &run, "v1:a").granted);
    pool.report(
        "m2",
        &run,
        SyncStatus::Success,
        "2026-12-01T10:05:00Z",
        true,
    );
    assert_eq!(*pool.state(), PoolRunState::Idle);
    assert_eq!(
        pool.model.pool_jobs[&debian()].next_due,
        at("2026-12-01T11:05:00Z"),
        "the pool's definition (m1's) gives the interval"
    );
    assert!(pool.tick("2026-12-01T10:05:01Z").is_empty());
}
