//! Resource bounds: what one slow or greedy client can hold.

mod common;

use common::{FakeWorker, Setup, TestManager, client, wait_welcomed};
use tunasync_shared::status::SyncStatus;
use uuid::Uuid;

/// Clients that ask for `GET /jobs` and never read the answer hold only their own
/// connections: the manager goes on applying events, answering other readers and taking
/// changes through the state actor.
#[tokio::test]
async fn clients_that_never_read_hold_nothing() {
    let manager = TestManager::start(Setup::default()).await;
    let worker = FakeWorker::start("w1", manager.broker_config()).await;
    // About 4 MB of tunasync.json: more than the sockets buffer.
    let mirrors: Vec<String> = (0..10_000).map(|idx| format!("mirror-{idx:05}")).collect();
    let mirrors: Vec<&str> = mirrors.iter().map(String::as_str).collect();
    worker.hello(&mirrors).await;
    wait_welcomed(&worker).await;

    let mut stalled = Vec::new();
    for _ in 0..20 {
        // A client of its own each, so each holds a connection whose body it never reads.
        let reader = client(&manager.env, None);
        let response = reader
            .get(format!("{}/jobs", manager.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        stalled.push((reader, response));
    }

    worker
        .send(worker.status(
            "mirror-00042",
            SyncStatus::Success,
            Uuid::new_v4(),
            Some("1G"),
        ))
        .await;
    manager.wait_status("w1", "mirror-00042", "success").await;
    let jobs: Vec<serde_json::Value> = manager.get("/jobs").await.json().await.unwrap();
    assert_eq!(jobs.len(), 10_000, "another reader gets the whole body");
    let (status, body) = manager
        .cmd(serde_json::json!({"cmd": "disable", "worker_id": "w1", "mirror_id": "mirror-00001"}))
        .await;
    assert!(
        status < 500,
        "a change through the state actor: {status} {body}"
    );
    let shown = manager.job("w1", "mirror-00001").await.unwrap();
    assert_eq!(
        shown["status"], "disabled",
        "applied while 20 readers stall"
    );
    drop(stalled);
}
