//! Pooled mirrors through the manager, with fake members speaking the pool protocol over the
//! real broker: the run reaches the pool's queue, one member claims it and is granted it,
//! its reports show under the pool, and a member that goes offline loses the run to another.

mod common;

use tunasync_shared::both_transports;

use std::time::Duration;

use common::{FakeWorker, Kind, Setup, TestManager, WAIT, wait_until_async};
use tunasync_shared::broker::{QueueRole, Subscription, Transport};
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, PoolName};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::testkit::{wait_until, within};
use tunasync_shared::wire::CommandEnvelope;
use tunasync_shared::wire::command::Command;
use tunasync_shared::wire::event::{Event, JobStatus};
use tunasync_shared::wire::pool::{Claim, Grant, PoolRun, PooledRun};

const FINGERPRINT: &str = "v1:0123456789abcdef";

fn pool() -> PoolName {
    PoolName::new("shared").unwrap()
}

/// The next run on the pool's queue, acked.
async fn take_run(queue: &mut Subscription) -> PoolRun {
    let incoming = within(WAIT, "a run on the pool's queue", queue.next())
        .await
        .unwrap();
    incoming.ack().await.unwrap();
    match CommandEnvelope::decode(&incoming.payload).unwrap().command {
        Command::PoolRun(run) => run,
        other => panic!("not a pool run: {other:?}"),
    }
}

/// Claims `run` and waits for the manager's answer.
async fn claim(member: &FakeWorker, run: &PoolRun) -> Grant {
    member
        .send(Event::Claim(Claim {
            pool: run.pool.clone(),
            mirror: run.mirror.clone(),
            run_id: run.run_id,
            lease: run.lease,
            fingerprint: Some(FINGERPRINT.to_owned()),
        }))
        .await;
    let find = || {
        member
            .received
            .lock()
            .unwrap()
            .iter()
            .find_map(|command| match command {
                Command::Grant(grant) if grant.lease == run.lease => Some(grant.clone()),
                _ => None,
            })
    };
    wait_until(WAIT, "the grant", || find().is_some()).await;
    find().unwrap()
}

async fn report(member: &FakeWorker, run: &PoolRun, status: SyncStatus, last: bool) {
    member
        .send(Event::Status(JobStatus {
            mirror: run.mirror.clone(),
            status,
            run_id: run.run_id,
            attempt: 1,
            at: GoTime::now_local(),
            upstream: "rsync://example.invalid/debian/".into(),
            is_master: true,
            size: None,
            error_msg: String::new(),
            pooled: Some(PooledRun {
                pool: run.pool.clone(),
                lease: run.lease,
                last,
            }),
            transferred_bytes: None,
            ends_run: false,
        }))
        .await;
}

both_transports!(
    a_pooled_run_goes_to_one_member_and_to_another_when_it_goes_offline,
    a_pooled_run_goes_to_one_member_and_to_another_when_it_goes_offline_over
);
async fn a_pooled_run_goes_to_one_member_and_to_another_when_it_goes_offline_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        extra: "[liveness]\noffline_after = \"2s\"\n".into(),
        ..Setup::default()
    })
    .await;
    let m1 = FakeWorker::start("m1", manager.link()).await;
    let m2 = FakeWorker::start("m2", manager.link()).await;
    m1.hello_pooled("shared", &["debian"], FINGERPRINT).await;
    m2.hello_pooled("shared", &["debian"], FINGERPRINT).await;
    let mut queue = m1
        .broker
        .subscribe(QueueRole::Pool(pool()), 1)
        .await
        .unwrap();

    let run = take_run(&mut queue).await;
    assert_eq!(run.mirror, MirrorName::new("debian").unwrap());
    assert_eq!(run.fingerprint, FINGERPRINT);
    let grant = claim(&m1, &run).await;
    assert!(grant.granted, "{grant:?}");
    let again = claim(&m2, &run).await;
    assert!(!again.granted, "a run is granted once");
    report(&m1, &run, SyncStatus::PreSyncing, false).await;
    report(&m1, &run, SyncStatus::Syncing, false).await;
    manager.wait_status("shared", "debian", "syncing").await;
    let jobs = manager.get_json("/jobs").await;
    assert_eq!(
        jobs.as_array().unwrap().len(),
        1,
        "one row for the pooled mirror: {jobs}"
    );

    // m1 goes silent (m2 keeps its heartbeats): the run is failed and handed out again.
    let deadline = tokio::time::Instant::now() + WAIT;
    let second = loop {
        m2.heartbeat().await;
        let next = tokio::time::timeout(Duration::from_millis(500), queue.next()).await;
        if let Ok(Some(incoming)) = next {
            incoming.ack().await.unwrap();
            match CommandEnvelope::decode(&incoming.payload).unwrap().command {
                Command::PoolRun(run) => break run,
                other => panic!("not a pool run: {other:?}"),
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run was not handed out again"
        );
    };
    assert_eq!(second.lease, run.lease + 1);
    let grant = claim(&m2, &second).await;
    assert!(grant.granted, "{grant:?}");
    // m1's late report on its old lease does not count.
    report(&m1, &run, SyncStatus::Success, true).await;
    report(&m2, &second, SyncStatus::PreSyncing, false).await;
    report(&m2, &second, SyncStatus::Success, true).await;
    wait_until_async(WAIT, "the second run's success", || async {
        let history = manager.get_json("/jobs/shared/debian/history").await;
        history[0]["result"] == "success"
    })
    .await;
    let history = manager.get_json("/jobs/shared/debian/history").await;
    let entries = history.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{history}");
    assert_eq!(entries[1]["result"], "failed");
    assert_eq!(entries[1]["error_msg"], "worker offline");
}

both_transports!(
    differing_definitions_are_shown,
    differing_definitions_are_shown_over
);
/// Members that define a pooled mirror differently are shown: in `GET /workers` (the pool's
/// entry) and in `/metrics`; the pool runs what most members have.
async fn differing_definitions_are_shown_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let members = [
        ("m1", FINGERPRINT),
        ("m2", "v1:ffffffffffffffff"),
        ("m3", FINGERPRINT),
    ];
    let mut fakes = Vec::new();
    for (id, fingerprint) in members {
        let fake = FakeWorker::start(id, manager.link()).await;
        fake.hello_pooled("shared", &["debian"], fingerprint).await;
        fakes.push(fake);
    }
    wait_until_async(
        WAIT,
        "the pool in GET /workers with its three members",
        || async {
            let workers = manager.get_json("/workers").await;
            workers.as_array().unwrap().iter().any(|entry| {
                entry["id"] == "shared" && entry["members"].as_array().is_some_and(|m| m.len() == 3)
            })
        },
    )
    .await;
    let workers = manager.get_json("/workers").await;
    let entry = workers
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["id"] == "shared")
        .unwrap()
        .clone();
    assert_eq!(entry["pool"], true);
    assert_eq!(entry["online"], true);
    let differing = entry["differing"].as_array().unwrap();
    assert_eq!(differing.len(), 1, "{entry}");
    assert_eq!(differing[0]["worker"], "m2");
    assert_eq!(differing[0]["pool_fingerprint"], FINGERPRINT);
    let metrics = manager.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            "tunasync_pool_definition_differs{pool=\"shared\",mirror=\"debian\",worker=\"m2\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("tunasync_pool_members_online{pool=\"shared\"} 3"),
        "{metrics}"
    );
}
