//! Event ingestion: ordering, duplicates, redelivery, dead-lettering, liveness, persistence.

mod common;

use std::time::Duration;

use common::{FakeWorker, Setup, TestManager, WAIT, wait_until_async, wait_welcomed};
use tokio_util::sync::CancellationToken;
use tunasync_shared::broker::{AmqpBroker, Outgoing, QueueRole, Role, Route, Transport};
use tunasync_shared::names::WorkerId;
use tunasync_shared::status::SyncStatus;
use tunasync_shared::testkit::within;
use tunasync_shared::wire::{EventEnvelope, SequenceSource};
use uuid::Uuid;

/// Redelivered, duplicated and late events never move a job back; a redelivery the manager
/// sees after a restart (its store already holds the effect) changes nothing either.
#[tokio::test]
async fn duplicates_redeliveries_and_restarts_are_harmless() {
    let manager = TestManager::start(Setup::default()).await;
    let worker = FakeWorker::start("w1", manager.broker_config()).await;
    worker.hello(&["debian"]).await;
    wait_welcomed(&worker).await;
    let run = Uuid::new_v4();
    let pre = worker
        .send(worker.status("debian", SyncStatus::PreSyncing, run, None))
        .await;
    let syncing = worker
        .send(worker.status("debian", SyncStatus::Syncing, run, None))
        .await;
    let success = worker
        .send(worker.status("debian", SyncStatus::Success, run, Some("2G")))
        .await;
    manager.wait_status("w1", "debian", "success").await;
    let before = manager.job("w1", "debian").await.unwrap();

    // The same envelopes again (as a redelivery would bring them), in a scrambled order.
    for envelope in [&syncing, &pre, &success, &syncing] {
        worker
            .broker
            .publish(Outgoing::event(envelope))
            .await
            .unwrap();
    }
    // A marker event after them: once it is applied, so are they.
    worker
        .send(worker.status("other", SyncStatus::Success, Uuid::new_v4(), None))
        .await;
    wait_until_async(WAIT, "the marker", || async {
        manager.job("w1", "other").await.is_some()
    })
    .await;
    assert_eq!(manager.job("w1", "debian").await.unwrap(), before);

    // Restart the manager on the same store; replay again; nothing changes, nothing is lost.
    let stopped = manager.stop().await;
    let manager = TestManager::start(Setup::again(stopped)).await;
    assert_eq!(
        manager.job("w1", "debian").await.unwrap(),
        before,
        "persisted across the restart"
    );
    for envelope in [&pre, &syncing, &success] {
        worker
            .broker
            .publish(Outgoing::event(envelope))
            .await
            .unwrap();
    }
    worker
        .send(worker.status("other", SyncStatus::Failed, Uuid::new_v4(), None))
        .await;
    manager.wait_status("w1", "other", "failed").await;
    assert_eq!(manager.job("w1", "debian").await.unwrap(), before);
    let history = manager.get_json("/jobs/w1/debian/history").await;
    assert_eq!(
        history.as_array().unwrap().len(),
        1,
        "one run, however often its events came"
    );
}

/// A worker flooding the queue with `hello`s does not hold up the others: each batch
/// applies its last `hello` only (the rest are acknowledged as superseded), so another
/// worker's event queued behind 3000 of them is applied as soon as the flood is read.
#[tokio::test]
async fn a_flood_of_hellos_from_one_worker_is_applied_once_per_batch() {
    let manager = TestManager::start(Setup::default()).await;
    let flood = FakeWorker::start("flood", manager.broker_config()).await;
    let quiet = FakeWorker::start("quiet", manager.broker_config()).await;
    quiet.hello(&["debian"]).await;
    wait_welcomed(&quiet).await;
    let stopped = manager.stop().await;
    let mirrors: Vec<String> = (0..50).map(|idx| format!("m{idx}")).collect();
    let mirrors: Vec<&str> = mirrors.iter().map(String::as_str).collect();
    for _ in 0..3000 {
        flood.hello(&mirrors).await;
    }
    quiet
        .send(quiet.status("debian", SyncStatus::Success, Uuid::new_v4(), None))
        .await;

    let manager = TestManager::start(Setup::again(stopped)).await;
    manager.wait_status("quiet", "debian", "success").await;
    let metrics = manager.get("/metrics").await.text().await.unwrap();
    let superseded: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("tunasync_events_superseded_total "))
        .and_then(|value| value.parse().ok())
        .unwrap();
    // One applied per batch: batches are as large as what has arrived while the last one
    // committed (25 batches here, on 2 cores); at least half of the flood must be skipped.
    assert!(
        superseded >= 1500.0,
        "{superseded} of 3000 hellos superseded"
    );
    assert_eq!(
        manager
            .get_json("/workers/flood/jobs")
            .await
            .as_array()
            .unwrap()
            .len(),
        50
    );
}

/// Events published while the manager is down wait in its queue and are applied when it
/// comes back: an event is acked only after its effect was committed.
#[tokio::test]
async fn events_wait_for_a_stopped_manager() {
    let manager = TestManager::start(Setup::default()).await;
    let worker = FakeWorker::start("w1", manager.broker_config()).await;
    worker.hello(&["debian"]).await;
    wait_welcomed(&worker).await;
    let stopped = manager.stop().await;
    let run = Uuid::new_v4();
    for status in [
        SyncStatus::PreSyncing,
        SyncStatus::Syncing,
        SyncStatus::Failed,
    ] {
        worker
            .send(worker.status("debian", status, run, None))
            .await;
    }
    let manager = TestManager::start(Setup::again(stopped)).await;
    wait_until_async(
        WAIT,
        "the events queued while the manager was down",
        || async {
            manager
                .job("w1", "debian")
                .await
                .is_some_and(|job| job["status"] == "failed")
        },
    )
    .await;
    assert_eq!(
        manager.job("w1", "debian").await.unwrap()["error_msg"],
        "exit status 3"
    );
}

/// Garbage and (in hardened mode) events whose broker user is not the worker they name are
/// dead-lettered; the consumer carries on with the good ones.
#[tokio::test]
async fn malformed_and_forged_events_are_dead_lettered() {
    let manager = TestManager::start(Setup {
        extra: "require_worker_identity = true\n".into(),
        ..Setup::default()
    })
    .await;
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let observer =
        AmqpBroker::start(manager.broker_config(), Role::Client, shutdown.clone()).unwrap();
    let mut dead = observer.subscribe(QueueRole::Dead, 10).await.unwrap();

    // The test broker user is "guest": a worker "w1" logging in as guest is not who it claims.
    let forger = FakeWorker::start("w1", manager.broker_config()).await;
    forger.hello(&["debian"]).await;
    let garbage = Outgoing {
        route: Route::Event {
            routing_key: "w1.status".into(),
        },
        kind: "status",
        message_id: Uuid::new_v4(),
        payload: b"\xff\xfe not json".to_vec(),
        expiration: None,
    };
    forger.broker.publish(garbage).await.unwrap();
    let mut dead_kinds = Vec::new();
    for _ in 0..2 {
        let incoming = within(WAIT, "dead-lettered events", dead.next())
            .await
            .unwrap();
        dead_kinds.push(incoming.kind.clone().unwrap_or_default());
        incoming.ack().await.unwrap();
    }
    dead_kinds.sort();
    assert_eq!(dead_kinds, ["hello", "status"]);
    assert_eq!(
        manager.get("/workers").await.text().await.unwrap(),
        "[]",
        "the forged hello was not applied"
    );

    // The guest user may speak for a worker named "guest".
    let honest = FakeWorker::start("guest", manager.broker_config()).await;
    honest.hello(&["debian"]).await;
    wait_welcomed(&honest).await;
    assert!(manager.job("guest", "debian").await.is_some());
}

/// A worker that stops sending heartbeats goes offline and its running job shows failed
/// with the reason; it comes back when the worker reports again.
#[tokio::test]
async fn silent_workers_go_offline() {
    let manager = TestManager::start(Setup {
        extra: "[liveness]\noffline_after = \"1s\"\n".into(),
        ..Setup::default()
    })
    .await;
    let worker = FakeWorker::start("w1", manager.broker_config()).await;
    worker.hello(&["debian"]).await;
    wait_welcomed(&worker).await;
    let run = Uuid::new_v4();
    worker
        .send(worker.status("debian", SyncStatus::Syncing, run, None))
        .await;
    manager.wait_status("w1", "debian", "syncing").await;
    wait_until_async(WAIT, "the worker to go offline", || async {
        manager.get_json("/workers").await[0]["online"] == false
    })
    .await;
    let job = manager.job("w1", "debian").await.unwrap();
    assert_eq!(
        (job["status"].as_str(), job["error_msg"].as_str()),
        (Some("failed"), Some("worker offline"))
    );
    let jobs = manager.get_json("/jobs").await;
    assert_eq!(jobs[0]["status"], "failed");

    worker.heartbeat().await;
    manager.wait_status("w1", "debian", "syncing").await;
    assert_eq!(manager.get_json("/workers").await[0]["online"], true);
}

/// Many events from many workers, all applied (batched transactions), none lost.
#[tokio::test]
async fn bursts_from_many_workers_are_all_applied() {
    let manager = TestManager::start(Setup::default()).await;
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let publisher =
        AmqpBroker::start(manager.broker_config(), Role::Client, shutdown.clone()).unwrap();
    publisher.wait_connected(WAIT).await.unwrap();
    let seq = SequenceSource::new();
    let mut tasks = Vec::new();
    for worker_idx in 0..20 {
        let worker = WorkerId::new(format!("w{worker_idx}")).unwrap();
        for mirror_idx in 0..25 {
            let status = tunasync_shared::wire::event::Event::Status(
                tunasync_shared::wire::event::JobStatus {
                    mirror: tunasync_shared::names::MirrorName::new(format!("m{mirror_idx}"))
                        .unwrap(),
                    status: SyncStatus::Success,
                    run_id: Uuid::new_v4(),
                    attempt: 1,
                    at: tunasync_shared::gotime::GoTime::now_local(),
                    upstream: String::new(),
                    is_master: true,
                    size: Some(format!("{mirror_idx}G")),
                    error_msg: String::new(),
                    pooled: None,
                    transferred_bytes: None,
                    ends_run: false,
                },
            );
            let envelope = EventEnvelope::new(worker.clone(), seq.next(), status);
            let publisher = publisher.clone();
            tasks.push(tokio::spawn(async move {
                publisher.publish(Outgoing::event(&envelope)).await
            }));
        }
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    wait_until_async(Duration::from_secs(30), "all 500 jobs", || async {
        manager.get_json("/jobs").await.as_array().unwrap().len() == 500
    })
    .await;
    assert_eq!(
        manager.get_json("/workers").await.as_array().unwrap().len(),
        20
    );
}

/// A run whose first events were stored before the manager restarted continues in the same
/// history entry after it (it used to open a second one and leave the first open forever).
#[tokio::test]
async fn a_run_keeps_one_history_entry_across_a_manager_restart() {
    let manager = TestManager::start(Setup::default()).await;
    let worker = FakeWorker::start("w1", manager.broker_config()).await;
    worker.hello(&["debian"]).await;
    wait_welcomed(&worker).await;
    let run = Uuid::new_v4();
    worker
        .send(worker.status("debian", SyncStatus::PreSyncing, run, None))
        .await;
    manager.wait_status("w1", "debian", "pre-syncing").await;
    let stopped = manager.stop().await;
    let manager = TestManager::start(Setup::again(stopped)).await;
    for status in [SyncStatus::Syncing, SyncStatus::Success] {
        worker
            .send(worker.status("debian", status, run, Some("4G")))
            .await;
    }
    manager.wait_status("w1", "debian", "success").await;
    let history = manager.get_json("/jobs/w1/debian/history").await;
    let entries = history.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{history}");
    assert_eq!(entries[0]["result"], "success");
    assert_eq!(entries[0]["run_id"], run.to_string());
}

/// A copy of an old report that reaches the manager after the job was flushed (a
/// redelivery) does not bring the job back.
#[tokio::test]
async fn a_late_copy_does_not_bring_back_a_flushed_job() {
    let manager = TestManager::start(Setup::default()).await;
    let worker = FakeWorker::start("w1", manager.broker_config()).await;
    worker.hello(&["gone", "kept"]).await;
    wait_welcomed(&worker).await;
    let old = worker
        .send(worker.status("gone", SyncStatus::Success, Uuid::new_v4(), None))
        .await;
    manager.wait_status("w1", "gone", "success").await;
    let (status, answer) = manager
        .cmd(serde_json::json!({"cmd": "disable", "worker_id": "w1", "mirror_id": "gone"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let response = manager
        .authed(reqwest::Method::DELETE, "/jobs/disabled")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(manager.job("w1", "gone").await.is_none());

    worker.broker.publish(Outgoing::event(&old)).await.unwrap();
    worker
        .send(worker.status("kept", SyncStatus::Success, Uuid::new_v4(), None))
        .await;
    manager.wait_status("w1", "kept", "success").await;
    assert!(
        manager.job("w1", "gone").await.is_none(),
        "the flushed job came back"
    );
}
