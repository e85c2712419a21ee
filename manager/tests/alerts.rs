//! Alerts with the real broker, store and HTTPS, a worker speaking the protocol, an HTTP
//! receiver for the webhooks that is down at first, and Debian's real Alertmanager.

mod common;

use tunasync_shared::both_transports;

use common::receivers::{Alertmanager, Posted, Receiver, TlsReceiver, free_port};
use common::{FakeWorker, Kind, Setup, TestManager, WAIT, wait_until_async, wait_welcomed};
use serde_json::Value;
use tunasync_shared::gotime::GoTime;
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::event::{Event, JobStatus};
use uuid::Uuid;

/// A run of `mirror` that ends with `status` (at `at`).
async fn run(worker: &FakeWorker, mirror: &str, status: SyncStatus, at: GoTime) {
    let id = Uuid::new_v4();
    worker
        .send(worker.status(mirror, SyncStatus::PreSyncing, id, None))
        .await;
    let Event::Status(end) = worker.status(mirror, status, id, None) else {
        unreachable!()
    };
    worker
        .send(Event::Status(JobStatus {
            at,
            ends_run: true,
            ..end
        }))
        .await;
}

async fn alerts(manager: &TestManager) -> Value {
    manager.get_json("/alerts").await
}

fn rules(status: &Value) -> Vec<(String, String)> {
    status["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|incident| {
            (
                incident["rule"].as_str().unwrap().to_owned(),
                incident["mirror"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn webhook_section(port: u16) -> String {
    format!(
        "[alerts]\nfailures = 2\nworker_offline = false\ninterval = \"100ms\"\nretry_max = \"300ms\"\n\
         [[alerts.sinks]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\
         [[alerts.sinks]]\nname = \"chat\"\nkind = \"chat\"\nurl = \"http://127.0.0.1:{port}/chat\"\n"
    )
}

/// A mirror fails twice: one incident, kept with its undelivered notifications across a
/// manager restart while the receiver is down; delivered once it is up, not again for a
/// third failure, and resolved once by a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_alert_once_through_a_receiver_that_was_down_and_a_restart() {
    let port = free_port();
    let extra = webhook_section(port);
    let manager = TestManager::start(Setup {
        extra: extra.clone(),
        ..Setup::default()
    })
    .await;
    let worker = FakeWorker::start("w1", manager.broker_config()).await;
    worker.hello(&["debian", "pypi"]).await;
    wait_welcomed(&worker).await;

    run(&worker, "debian", SyncStatus::Failed, GoTime::now_local()).await;
    run(&worker, "pypi", SyncStatus::Failed, GoTime::now_local()).await;
    run(&worker, "debian", SyncStatus::Failed, GoTime::now_local()).await;
    wait_until_async(
        WAIT,
        "an incident and its undelivered notifications",
        || async {
            let status = alerts(&manager).await;
            rules(&status) == [("failures".to_owned(), "debian".to_owned())]
                && status["undelivered"]["hook"] == 1
                && status["undelivered"]["chat"] == 1
        },
    )
    .await;
    let id = alerts(&manager).await["incidents"][0]["id"].clone();
    wait_until_async(WAIT, "failed deliveries counted", || async {
        let text = manager.get("/metrics").await.text().await.unwrap();
        text.contains("tunasync_alerts_failed_total{sink=\"hook\"}")
            && text.contains("tunasync_alerts_open 1\n")
    })
    .await;

    // The manager stops with the notifications undelivered, and starts again.
    let stopped = manager.stop().await;
    let manager = TestManager::start(Setup {
        extra,
        ..Setup::again(stopped)
    })
    .await;
    let status = alerts(&manager).await;
    assert_eq!(status["incidents"][0]["id"], id, "{status}");
    assert_eq!(status["undelivered"]["hook"], 1, "{status}");

    let posted = Posted::default();
    let _receiver = Receiver::start(port, posted.clone()).await;
    wait_until_async(WAIT, "both sinks to take the notification", || async {
        alerts(&manager).await["undelivered"] == serde_json::json!({"hook": 0, "chat": 0})
    })
    .await;
    let hook = posted.to("/hook");
    assert_eq!(hook.len(), 1, "{hook:?}");
    assert_eq!(hook[0]["status"], "firing");
    assert_eq!(hook[0]["incident"], id);
    assert_eq!(hook[0]["mirror"], "debian");
    assert_eq!(hook[0]["worker"], "w1");
    let chat = posted.to("/chat");
    assert_eq!(chat.len(), 1, "{chat:?}");
    let text = chat[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("[FIRING] tunasync: debian on w1: the last 2 runs failed"),
        "{text}"
    );

    // A third failure is the same incident; the success resolves it.
    run(&worker, "debian", SyncStatus::Failed, GoTime::now_local()).await;
    run(&worker, "debian", SyncStatus::Success, GoTime::now_local()).await;
    wait_until_async(WAIT, "the resolution at both sinks", || async {
        posted.to("/hook").len() == 2 && posted.to("/chat").len() == 2
    })
    .await;
    let hook = posted.to("/hook");
    assert_eq!(
        (&hook[1]["status"], &hook[1]["incident"]),
        (&Value::from("resolved"), &id),
        "one firing, then one resolution: {hook:?}"
    );
    assert!(
        posted.to("/chat")[1]["text"]
            .as_str()
            .unwrap()
            .starts_with("[RESOLVED] tunasync: debian on w1"),
    );
    assert!(rules(&alerts(&manager).await).is_empty());
    let text = manager.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("tunasync_alerts_sent_total{sink=\"hook\"} 2\n"),
        "{text}"
    );
    worker.stop().await;
    manager.stop().await;
}

/// A sink over HTTPS trusts its `ca_cert` only: the sink whose CA signed the receiver's
/// certificate delivers; the one given another CA is refused in the handshake, and its
/// notification waits, undelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_sinks_trust_their_ca_cert_only() {
    let env = tunasync_shared::testkit::BrokerEnv::get();
    let port = free_port();
    let posted = Posted::default();
    let _receiver =
        TlsReceiver::start(port, posted.clone(), &env.server_cert, &env.server_key).await;
    let sink = |name: &str, ca: &std::path::Path| {
        format!(
            "[[alerts.sinks]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"https://127.0.0.1:{port}/{name}\"\nca_cert = \"{}\"\n",
            ca.display()
        )
    };
    let extra = format!(
        "[alerts]\nfailures = 1\nworker_offline = false\ninterval = \"100ms\"\nretry_max = \"300ms\"\n{}{}",
        sink("trusted", &env.ca_cert),
        sink("stranger", &env.other_ca_cert)
    );
    let manager = TestManager::start(Setup {
        extra,
        ..Setup::default()
    })
    .await;
    let worker = FakeWorker::start("w1", manager.broker_config()).await;
    worker.hello(&["debian"]).await;
    wait_welcomed(&worker).await;

    run(&worker, "debian", SyncStatus::Failed, GoTime::now_local()).await;
    wait_until_async(
        WAIT,
        "the trusted sink to deliver and the other to fail",
        || async {
            let status = alerts(&manager).await;
            let text = manager.get("/metrics").await.text().await.unwrap();
            status["undelivered"]["trusted"] == 0
                && status["undelivered"]["stranger"] == 1
                && text.contains("tunasync_alerts_failed_total{sink=\"stranger\"}")
        },
    )
    .await;
    let trusted = posted.to("/trusted");
    assert_eq!(trusted.len(), 1, "{trusted:?}");
    assert_eq!(trusted[0]["mirror"], "debian");
    assert!(posted.to("/stranger").is_empty());
    worker.stop().await;
    manager.stop().await;
}

both_transports!(
    alertmanager_gets_stale_mirrors_and_offline_workers_muted_by_maintenance,
    alertmanager_gets_stale_mirrors_and_offline_workers_muted_by_maintenance_over
);
/// Debian's Alertmanager receives a stale mirror and an offline worker, and their ends; a
/// mirror in maintenance raises nothing until the maintenance ends.
async fn alertmanager_gets_stale_mirrors_and_offline_workers_muted_by_maintenance_over(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let alertmanager = Alertmanager::start(dir.path());
    let manager = TestManager::start(Setup {
        transport: kind,
        extra: format!(
            "[liveness]\noffline_after = \"2s\"\n\
             [alerts]\nstale_after = \"1h\"\ninterval = \"100ms\"\n\
             [[alerts.sinks]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"{}/api/v2/alerts\"\n",
            alertmanager.url
        ),
        ..Setup::default()
    })
    .await;
    let worker = std::sync::Arc::new(FakeWorker::start("w1", manager.link()).await);
    worker.hello(&["debian", "pypi"]).await;
    wait_welcomed(&worker).await;
    // Heartbeats until the test stops them.
    let beating = tokio_util::sync::CancellationToken::new();
    let heartbeats = {
        let (worker, beating) = (worker.clone(), beating.clone());
        tokio::spawn(async move {
            while !beating.is_cancelled() {
                worker.heartbeat().await;
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_millis(300)) => {}
                    () = beating.cancelled() => {}
                }
            }
        })
    };
    let (status, body) = {
        let response = manager
            .authed(reqwest::Method::POST, "/maintenance")
            .json(&serde_json::json!({"mirror": "pypi", "message": "upstream moves"}))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    };
    assert_eq!(status, 200, "{body}");

    let two_hours_ago = GoTime::from(chrono::Utc::now() - chrono::Duration::hours(2));
    run(&worker, "pypi", SyncStatus::Success, two_hours_ago).await;
    run(&worker, "debian", SyncStatus::Success, two_hours_ago).await;
    let active = |alerts: &[Value]| -> Vec<(String, String)> {
        let mut active: Vec<(String, String)> = alerts
            .iter()
            .map(|alert| {
                (
                    alert["labels"]["alertname"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    alert["labels"]["mirror"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        active.sort();
        active
    };
    wait_until_async(WAIT, "Alertmanager to show debian stale", || async {
        !alertmanager.alerts().await.is_empty()
    })
    .await;
    // Both mirrors went stale in the same moment: pypi's would be there by now.
    let shown = alertmanager.alerts().await;
    assert_eq!(
        active(&shown),
        [("TunasyncMirrorStale".to_owned(), "debian".to_owned())],
        "{shown:?}"
    );
    let debian = &shown[0];
    assert_eq!(debian["labels"]["worker"], "w1");
    assert_eq!(debian["labels"]["service"], "tunasync");
    assert!(
        debian["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("no successful sync for 2h"),
        "{debian}"
    );

    // Maintenance ends: pypi is stale and not muted any more.
    let response = manager
        .authed(reqwest::Method::DELETE, "/maintenance")
        .json(&serde_json::json!({"mirror": "pypi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_until_async(WAIT, "pypi stale too", || async {
        active(&alertmanager.alerts().await).len() == 2
    })
    .await;

    // The worker stops sending heartbeats: offline; a fresh success ends debian's.
    beating.cancel();
    heartbeats.await.unwrap();
    run(&worker, "debian", SyncStatus::Success, GoTime::now_local()).await;
    wait_until_async(WAIT, "the offline worker and pypi left", || async {
        active(&alertmanager.alerts().await)
            == [
                ("TunasyncMirrorStale".to_owned(), "pypi".to_owned()),
                ("TunasyncWorkerOffline".to_owned(), String::new()),
            ]
    })
    .await;
    // Heartbeats again: back online, resolved.
    wait_until_async(WAIT, "the worker back", || async {
        worker.heartbeat().await;
        active(&alertmanager.alerts().await)
            == [("TunasyncMirrorStale".to_owned(), "pypi".to_owned())]
    })
    .await;
    let status = alerts(&manager).await;
    assert_eq!(
        rules(&status),
        [("stale".to_owned(), "pypi".to_owned())],
        "{status}"
    );
    drop(worker);
    manager.stop().await;
}
