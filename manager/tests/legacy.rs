//! The `[legacy]` bridge: tunasync's Go worker's recorded traffic replayed against a real
//! manager (real HTTPS, real broker, real redb), beside a worker on the broker.

mod common;

use common::{FakeWorker, Setup, TestManager, WAIT, wait_until_async, wait_welcomed};
use reqwest::Method;
use serde_json::{Value, json};
use tunasync_shared::status::SyncStatus;
use uuid::Uuid;

const LOOPBACK: &str = "[legacy]\ngo_workers = true\nnetworks = [\"127.0.0.0/8\", \"::1/128\"]\n";

/// The recorded requests (markers left out), in order.
fn recorded() -> Vec<Value> {
    include_str!("data/go-worker-cycle.jsonl")
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line.get("marker").is_none())
        .collect()
}

/// Sends one recorded request as the Go worker sent it (no token; its content type).
async fn replay(manager: &TestManager, request: &Value) -> (u16, String) {
    let method = Method::from_bytes(request["method"].as_str().unwrap().as_bytes()).unwrap();
    let path = request["path"].as_str().unwrap();
    let mut builder = manager
        .client
        .request(method, format!("{}{path}", manager.url));
    if let Some(content_type) = request["headers"]["Content-Type"].as_str() {
        builder = builder
            .header("content-type", content_type)
            .body(request["body"].as_str().unwrap().to_owned());
    }
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn post(manager: &TestManager, path: &str, body: &str) -> (u16, Value) {
    let response = manager
        .client
        .post(format!("{}{path}", manager.url))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_workers_recorded_cycle_becomes_status_history_and_schedules() {
    let manager = TestManager::start(Setup {
        extra: LOOPBACK.into(),
        ..Setup::default()
    })
    .await;
    for request in recorded() {
        let (status, body) = replay(&manager, &request).await;
        let path = request["path"].as_str().unwrap();
        assert_eq!(status, 200, "{} {path}: {body}", request["method"]);
        let answer: Value = serde_json::from_str(&body).unwrap();
        if path == "/workers/wproto/jobs" {
            // The start-up fetch: a list of records with RFC 3339 times (Go parses them).
            for job in answer.as_array().unwrap() {
                chrono::DateTime::parse_from_rfc3339(job["last_update"].as_str().unwrap()).unwrap();
            }
        } else if path.starts_with("/workers/wproto/jobs/") {
            // The stored record, stamped by the manager.
            let sent: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
            assert_eq!(answer["name"], sent["name"]);
            assert_eq!(answer["status"], sent["status"]);
            assert_ne!(answer["last_started"], "0001-01-01T00:00:00Z", "{answer}");
        }
    }
    let ok = manager_job(&manager, "cmd-ok").await;
    assert_eq!(
        (ok["status"].as_str(), ok["size"].as_str()),
        (Some("success"), Some("12.5M"))
    );
    assert_ne!(ok["last_update"], "0001-01-01T00:00:00Z");
    assert_eq!(ok["last_update"], ok["last_ended"]);
    assert_eq!(ok["next_schedule"], "2026-11-27T11:44:34.280038846+08:00");
    assert_eq!(ok["upstream"], "https://example.invalid/cmd-ok/");
    let fail = manager_job(&manager, "cmd-fail").await;
    assert_eq!(fail["status"], "failed");
    assert_eq!(fail["error_msg"], "exit status 3");
    assert_eq!(fail["last_update"], "0001-01-01T00:00:00Z");
    assert_eq!(fail["next_schedule"], "2026-11-27T11:44:38.289088635+08:00");
    let rsync = manager_job(&manager, "rsync-real").await;
    assert_eq!(
        (rsync["status"].as_str(), rsync["size"].as_str()),
        (Some("success"), Some("20.07K"))
    );
    let slow = manager_job(&manager, "cmd-slow").await;
    assert_eq!(slow["status"], "failed");
    assert_eq!(slow["error_msg"], "killed by manager");

    // One history entry per run: the two failed attempts of cmd-fail are one run.
    let history = manager.get_json("/jobs/wproto/cmd-fail/history").await;
    let runs = history.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{history}");
    assert_eq!(
        (runs[0]["result"].as_str(), runs[0]["attempts"].as_u64()),
        (Some("failed"), Some(2))
    );
    let history = manager.get_json("/jobs/wproto/cmd-ok/history").await;
    assert_eq!(history[0]["result"], "success");
    assert_eq!(history[0]["size"], "12.5M");

    // Listed as a legacy worker, with the URL it registered, neither online nor offline.
    let workers = manager.get_json("/workers").await;
    let go = &workers.as_array().unwrap()[0];
    assert_eq!(go["id"], "wproto");
    assert_eq!(go["url"], "http://127.0.0.1:26001/");
    assert_eq!(go["legacy"], true);
    assert!(go.get("online").is_none(), "{go}");
    let web = manager.get_json("/jobs").await;
    assert_eq!(web.as_array().unwrap().len(), 4, "{web}");

    // Bad posts are answered 400 and change nothing (tunasync's handlers go on).
    let before = manager.get_json("/workers/wproto/jobs").await;
    let (code, body) = post(&manager, "/workers/wproto/jobs/x", "{not json").await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = post(
        &manager,
        "/workers/wproto/jobs/x",
        r#"{"name":"m-bad","status":"frobnicating"}"#,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = post(
        &manager,
        "/workers/wproto/jobs/x",
        r#"{"name":"","status":"success"}"#,
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("mirror Name should not be empty"))
    );
    let (code, body) = post(
        &manager,
        "/workers/nosuch/jobs/x",
        r#"{"name":"m","status":"success"}"#,
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("invalid workerID nosuch"))
    );
    let (code, _) = post(
        &manager,
        "/workers/nosuch/schedules",
        r#"{"schedules":null}"#,
    )
    .await;
    assert_eq!(code, 400);
    let (code, body) = post(&manager, "/workers", r#"{"id":"w2","url":"ftp://x/"}"#).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(manager.get_json("/workers/wproto/jobs").await, before);
    assert_eq!(
        manager.get_json("/workers").await.as_array().unwrap().len(),
        1
    );

    // Its logs are not the manager's to serve.
    let response = manager
        .authed(Method::GET, "/jobs/wproto/cmd-ok/log")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // tunasynctl's set-size works on a Go worker's job as on any other.
    let response = manager
        .authed(Method::POST, "/workers/wproto/jobs/cmd-ok/size")
        .json(&json!({"name": "cmd-ok", "size": "13M"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(manager_job(&manager, "cmd-ok").await["size"], "13M");

    // A re-registration replaces the URL and keeps the jobs.
    let (code, body) = post(
        &manager,
        "/workers",
        r#"{"id":"wproto","url":"https://wproto.example:6000/","token":""}"#,
    )
    .await;
    assert_eq!(
        (code, body["url"].as_str()),
        (200, Some("https://wproto.example:6000/"))
    );
    assert_eq!(
        manager
            .get_json("/workers/wproto/jobs")
            .await
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // Everything survives a restart of the manager (one store, one way in).
    let again = manager.stop().await;
    let manager = TestManager::start(Setup {
        extra: LOOPBACK.into(),
        ..Setup::again(again)
    })
    .await;
    assert_eq!(manager_job(&manager, "cmd-ok").await["size"], "13M");
    assert_eq!(manager.get_json("/workers").await[0]["legacy"], true);
}

async fn manager_job(manager: &TestManager, mirror: &str) -> Value {
    manager
        .job("wproto", mirror)
        .await
        .unwrap_or_else(|| panic!("no job {mirror}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_and_broker_workers_share_one_manager_and_keep_their_ids() {
    let manager = TestManager::start(Setup {
        extra: LOOPBACK.into(),
        ..Setup::default()
    })
    .await;
    let broker_worker = FakeWorker::start("wbroker", manager.link()).await;
    broker_worker.hello(&["debian"]).await;
    wait_welcomed(&broker_worker).await;
    let run = Uuid::new_v4();
    broker_worker
        .send(broker_worker.status("debian", SyncStatus::Success, run, Some("1.33T")))
        .await;
    manager.wait_status("wbroker", "debian", "success").await;

    let (code, body) = post(
        &manager,
        "/workers",
        r#"{"id":"wgo","url":"http://127.0.0.1:26001/"}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(
        &manager,
        "/workers/wgo/jobs/ubuntu",
        &json!({
            "name": "ubuntu", "worker": "wgo", "is_master": true, "status": "success",
            "last_update": "0001-01-01T00:00:00Z", "last_started": "0001-01-01T00:00:00Z",
            "last_ended": "0001-01-01T00:00:00Z", "next_schedule": "0001-01-01T00:00:00Z",
            "upstream": "rsync://up/ubuntu/", "size": "2.1T", "error_msg": ""
        })
        .to_string(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // One GET /jobs for both.
    let web = manager.get_json("/jobs").await;
    let names: Vec<&str> = web
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["debian", "ubuntu"]);

    // A Go worker cannot take the id of a broker worker that is online.
    let (code, body) = post(
        &manager,
        "/workers",
        r#"{"id":"wbroker","url":"http://127.0.0.1:26002/"}"#,
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("over the broker"),
        "{body}"
    );
    // And the broker's events for the Go worker's id change nothing.
    let impostor = FakeWorker::start("wgo", manager.link()).await;
    impostor
        .send(impostor.status("ubuntu", SyncStatus::Failed, Uuid::new_v4(), None))
        .await;
    // Ordered after the impostor's event on the same queue: once it shows, the other was
    // applied (or ignored) before it.
    broker_worker
        .send(broker_worker.status("debian", SyncStatus::Syncing, Uuid::new_v4(), None))
        .await;
    manager.wait_status("wbroker", "debian", "syncing").await;
    assert_eq!(
        manager.job("wgo", "ubuntu").await.unwrap()["status"],
        "success"
    );
    impostor.stop().await;
    broker_worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_is_off_by_default_and_takes_posts_only_from_its_networks() {
    let manager = TestManager::start(Setup::default()).await;
    for path in ["/workers", "/workers/w/jobs/m", "/workers/w/schedules"] {
        let response = manager
            .client
            .post(format!("{}{path}", manager.url))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.text().await.unwrap(), "404 page not found");
    }
    drop(manager);

    let manager = TestManager::start(Setup {
        extra: "[legacy]\ngo_workers = true\nnetworks = [\"10.0.0.0/8\"]\n".into(),
        ..Setup::default()
    })
    .await;
    for _ in 0..3 {
        let (code, body) = post(
            &manager,
            "/workers",
            r#"{"id":"wgo","url":"http://127.0.0.1:26001/"}"#,
        )
        .await;
        assert_eq!(code, 403, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("[legacy] networks"),
            "{body}"
        );
    }
    wait_until_async(WAIT, "the refusals to leave the workers empty", || async {
        manager.get_json("/workers").await == json!([])
    })
    .await;
}

/// A stand-in for a Go worker's command endpoint (`POST /`), answering as tunasync's worker
/// does; what it received, in order.
async fn go_worker_endpoint() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    use axum::http::StatusCode;
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |body: String| {
            let seen = seen.clone();
            async move {
                let cmd: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                seen.lock().unwrap().push(cmd.clone());
                if cmd["mirror_id"] == "nosuch" {
                    (
                        StatusCode::NOT_FOUND,
                        r#"{"msg":"Mirror ``nosuch'' not found"}"#,
                    )
                } else {
                    (StatusCode::OK, r#"{"msg":"OK"}"#)
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_to_a_go_worker_are_relayed_to_its_url() {
    let manager = TestManager::start(Setup {
        extra: LOOPBACK.into(),
        ..Setup::default()
    })
    .await;
    let (url, received, _server) = go_worker_endpoint().await;
    let (code, body) = post(
        &manager,
        "/workers",
        &json!({"id": "wgo", "url": url}).to_string(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(
        &manager,
        "/workers/wgo/jobs/ubuntu",
        r#"{"name":"ubuntu","status":"success","size":"2.1T"}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");

    let (code, body) = manager
        .cmd(json!({"cmd": "start", "mirror_id": "ubuntu", "worker_id": "wgo", "args": null, "options": {"force": true}}))
        .await;
    assert_eq!(
        (code, body["message"].as_str()),
        (200, Some("successfully send command to worker wgo"))
    );
    // The manager records a stop itself (the Go worker does not report it).
    let (code, _) = manager
        .cmd(json!({"cmd": "stop", "mirror_id": "ubuntu", "worker_id": "wgo"}))
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        manager.job("wgo", "ubuntu").await.unwrap()["status"],
        "paused"
    );
    let (code, body) = manager
        .cmd(json!({"cmd": "start", "mirror_id": "nosuch", "worker_id": "wgo"}))
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        body["error"],
        "worker wgo refused the command: Mirror ``nosuch'' not found"
    );
    assert_eq!(
        *received.lock().unwrap(),
        [
            json!({"cmd": "start", "mirror_id": "ubuntu", "args": null, "options": {"force": true}}),
            json!({"cmd": "stop", "mirror_id": "ubuntu", "args": null, "options": null}),
            json!({"cmd": "start", "mirror_id": "nosuch", "args": null, "options": null}),
        ]
    );

    // A worker that is gone: tunasync's text, as a 502.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let (code, _) = post(
        &manager,
        "/workers",
        &json!({"id": "wgone", "url": gone}).to_string(),
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = manager
        .cmd(json!({"cmd": "ping", "mirror_id": "", "worker_id": "wgone"}))
        .await;
    assert_eq!(code, 502, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("post command to worker wgone({gone}) fail: ")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_moves_to_the_broker_once_its_go_worker_is_gone() {
    let manager = TestManager::start(Setup {
        extra: LOOPBACK.into(),
        ..Setup::default()
    })
    .await;
    let (url, received, server) = go_worker_endpoint().await;
    let (code, _) = post(
        &manager,
        "/workers",
        &json!({"id": "wmove", "url": url}).to_string(),
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = post(
        &manager,
        "/workers/wmove/jobs/debian",
        r#"{"name":"debian","status":"pre-syncing"}"#,
    )
    .await;
    assert_eq!(code, 200);
    let (code, synced) = post(
        &manager,
        "/workers/wmove/jobs/debian",
        r#"{"name":"debian","status":"success","size":"1.33T"}"#,
    )
    .await;
    assert_eq!(code, 200);

    // Our worker starts under the id while the Go worker still answers: it is asked, and
    // the id stays the Go worker's.
    let ours = FakeWorker::start("wmove", manager.link()).await;
    ours.hello(&["debian"]).await;
    tunasync_shared::testkit::wait_until(WAIT, "the Go worker to be asked", || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|cmd| cmd["cmd"] == "ping")
    })
    .await;
    assert_eq!(ours.welcomes(), 0);
    assert_eq!(manager.get_json("/workers").await[0]["legacy"], true);

    // The Go worker stops: at the next hello the id moves, and the jobs keep their times.
    server.abort();
    let _ = server.await;
    wait_until_async(WAIT, "our worker's welcome", || async {
        ours.hello(&["debian"]).await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        ours.welcomes() > 0
    })
    .await;
    let workers = manager.get_json("/workers").await;
    assert!(workers[0].get("legacy").is_none(), "{workers}");
    assert_eq!(workers[0]["online"], true);
    let job = manager.job("wmove", "debian").await.unwrap();
    assert_eq!(job["last_update"], synced["last_update"]);
    assert_eq!(job["size"], "1.33T");
    let history = manager.get_json("/jobs/wmove/debian/history").await;
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    // The id is the broker's now.
    let (code, _) = post(
        &manager,
        "/workers/wmove/jobs/debian",
        r#"{"name":"debian","status":"failed"}"#,
    )
    .await;
    assert_eq!(code, 400);
    ours.heartbeat().await;
    let (code, _) = post(
        &manager,
        "/workers",
        &json!({"id": "wmove", "url": url}).to_string(),
    )
    .await;
    assert_eq!(code, 409);
    ours.stop().await;
}
