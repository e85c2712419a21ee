//! Maintenance with the real broker, store and HTTPS: the API, what workers are told, and a
//! real worker that starts during a maintenance (after a manager restart) and runs nothing
//! it covers until it ends.

mod common;

use tunasync_shared::both_transports;

use common::real_worker::{RealWorker, command_mirror, worker_conf};
use common::{FakeWorker, Kind, Setup, TestManager, WAIT, wait_until_async, wait_welcomed};
use serde_json::{Value, json};
use tunasync_shared::wire::command::Command;
use tunasync_worker::worker::Options;

async fn maintenance(
    manager: &TestManager,
    method: reqwest::Method,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = manager.authed(method, "/maintenance");
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The maintenance sets the fake worker was sent, as (all, mirrors).
fn sets(worker: &FakeWorker) -> Vec<(bool, Vec<String>)> {
    worker
        .commands()
        .into_iter()
        .filter_map(|command| match command {
            Command::Maintenance(set) => Some((
                set.all,
                set.mirrors.iter().map(ToString::to_string).collect(),
            )),
            _ => None,
        })
        .collect()
}

both_transports!(
    maintenance_is_set_listed_and_ended_and_bad_input_gets_json_errors,
    maintenance_is_set_listed_and_ended_and_bad_input_gets_json_errors_over
);
async fn maintenance_is_set_listed_and_ended_and_bad_input_gets_json_errors_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let worker = FakeWorker::start("w1", manager.link()).await;
    worker.hello(&["debian", "pypi"]).await;
    wait_welcomed(&worker).await;

    let (status, entry) = maintenance(
        &manager,
        reqwest::Method::POST,
        Some(json!({"worker": "w1", "message": "disk swap"})),
    )
    .await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(
        (&entry["scope"], &entry["worker"], &entry["message"]),
        (&json!("worker"), &json!("w1"), &json!("disk swap"))
    );
    wait_until_async(WAIT, "the worker to be told", || async {
        sets(&worker) == [(true, vec![])]
    })
    .await;
    let (status, entry) = maintenance(
        &manager,
        reqwest::Method::POST,
        Some(json!({"mirror": "pypi"})),
    )
    .await;
    assert_eq!(status, 200, "{entry}");
    // Public reads: the list, the jobs and the worker show it.
    let listed = manager.get_json("/maintenance").await;
    let scopes: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["scope"])
        .collect();
    assert_eq!(scopes, [&json!("worker"), &json!("mirror")], "{listed}");
    let job = manager.job("w1", "debian").await.unwrap();
    assert_eq!(job["maintenance"], "disk swap");
    let workers = manager.get_json("/workers").await;
    assert_eq!(workers[0]["maintenance"], "disk swap", "{workers}");
    let tunasync_json = manager.get_json("/jobs").await;
    assert!(
        tunasync_json[0].get("maintenance").is_none(),
        "tunasync.json keeps tunasync's keys"
    );

    let (status, answer) = maintenance(
        &manager,
        reqwest::Method::DELETE,
        Some(json!({"worker": "w1"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["message"], "maintenance of worker w1 ended");
    wait_until_async(WAIT, "the worker to be told it ended", || async {
        sets(&worker).last() == Some(&(false, vec!["pypi".to_owned()]))
    })
    .await;
    assert!(manager.job("w1", "debian").await.unwrap()["maintenance"].is_null());
    assert_eq!(
        manager.job("w1", "pypi").await.unwrap()["maintenance"],
        "",
        "in maintenance without a message"
    );

    let refused = [
        (
            reqwest::Method::POST,
            json!({"worker": "w9"}),
            404,
            "no worker w9 is known",
        ),
        (
            reqwest::Method::POST,
            json!({"mirror": "arch"}),
            404,
            "no mirror arch",
        ),
        (
            reqwest::Method::POST,
            json!({"worker": "bad name"}),
            400,
            "may only hold",
        ),
        (
            reqwest::Method::POST,
            json!({"message": "x".repeat(2000)}),
            400,
            "longer than",
        ),
        (
            reqwest::Method::DELETE,
            json!({"worker": "w1"}),
            404,
            "not in maintenance",
        ),
        (
            reqwest::Method::POST,
            json!({"worker": 5}),
            400,
            "invalid JSON body",
        ),
    ];
    for (method, body, code, says) in refused {
        let (status, answer) = maintenance(&manager, method.clone(), Some(body.clone())).await;
        assert_eq!(status, code, "{method} {body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{method} {body}: {answer}");
    }
    let anonymous = manager
        .client
        .post(format!("{}/maintenance", manager.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // An empty body ends the cluster's maintenance.
    let (status, _) = maintenance(&manager, reqwest::Method::POST, None).await;
    assert_eq!(status, 200);
    let (status, answer) = maintenance(&manager, reqwest::Method::DELETE, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["message"], "maintenance of the whole cluster ended");
    worker.stop().await;
}

/// A maintenance of one mirror, set before a manager restart, reaches a worker that starts
/// after it: the mirror does not run when due (the other one does), is shown in
/// maintenance on the page, and runs once the maintenance ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_starting_during_maintenance_runs_nothing_it_covers_until_it_ends() {
    let manager = TestManager::start(Setup::default()).await;
    let earlier = FakeWorker::start("w1", manager.broker_config()).await;
    earlier.hello(&["held", "free"]).await;
    wait_welcomed(&earlier).await;
    let (status, entry) = maintenance(
        &manager,
        reqwest::Method::POST,
        Some(json!({"worker": "w1", "mirror": "held", "message": "moving disks"})),
    )
    .await;
    assert_eq!(status, 200, "{entry}");
    earlier.stop().await;
    let broker = manager.link();
    let stopped = manager.stop().await;
    let manager = TestManager::start(Setup::again(stopped)).await;
    let listed = manager.get_json("/maintenance").await;
    assert_eq!(listed[0]["message"], "moving disks", "kept by the store");

    let work = tempfile::tempdir().unwrap();
    let held_ran = work.path().join("held.ran");
    let free_ran = work.path().join("free.ran");
    let touch = |file: &std::path::Path| format!("/bin/sh -c 'touch {}'", file.display());
    let mirrors = format!(
        "{}{}",
        command_mirror("held", &touch(&held_ran)),
        command_mirror("free", &touch(&free_ran)),
    );
    let config = worker_conf(work.path(), &broker, &mirrors);
    let worker = RealWorker::start(&config, &manager.link(), Options::default());
    // Both came due together at the welcome: one ran, the other was held back.
    manager.wait_status("w1", "free", "success").await;
    assert!(free_ran.exists());
    assert!(!held_ran.exists(), "the mirror in maintenance did not run");
    let held = manager.job("w1", "held").await.unwrap();
    assert_eq!(
        (&held["status"], &held["maintenance"]),
        (&json!("none"), &json!("moving disks"))
    );
    let page = manager.get("/").await.text().await.unwrap();
    assert!(
        page.contains("<b>Maintenance</b> of mirror held of worker w1"),
        "{page}"
    );
    assert!(page.contains(r#"class="tag maint" title="moving disks""#));

    let (status, answer) = maintenance(
        &manager,
        reqwest::Method::DELETE,
        Some(json!({"worker": "w1", "mirror": "held"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    manager.wait_status("w1", "held", "success").await;
    assert!(held_ran.exists(), "run once the maintenance ended");
    assert_eq!(manager.get_json("/maintenance").await, json!([]));
    worker.stop().await;
}

both_transports!(
    an_operators_start_runs_a_mirror_in_maintenance,
    an_operators_start_runs_a_mirror_in_maintenance_over
);
/// The operator's `start` runs a mirror in maintenance; its schedule then holds it again.
async fn an_operators_start_runs_a_mirror_in_maintenance_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let work = tempfile::tempdir().unwrap();
    let ran = work.path().join("runs");
    let command = format!("/bin/sh -c 'echo run >> {}'", ran.display());
    let config = worker_conf(
        work.path(),
        &manager.link(),
        &command_mirror("held", &command),
    );
    let worker = RealWorker::start(&config, &manager.link(), Options::default());
    manager.wait_status("w1", "held", "success").await;
    let (status, entry) = maintenance(&manager, reqwest::Method::POST, Some(json!({}))).await;
    assert_eq!(status, 200, "{entry}");
    let (status, answer) = manager
        .cmd(json!({"cmd": "start", "worker_id": "w1", "mirror_id": "held"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    wait_until_async(WAIT, "the second run", || async {
        std::fs::read_to_string(&ran).is_ok_and(|text| text.lines().count() == 2)
    })
    .await;
    worker.stop().await;
}
