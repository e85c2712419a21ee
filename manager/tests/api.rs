//! The manager over real HTTPS, fed by a fake worker through the real broker.

mod common;

use tunasync_shared::both_transports;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Answer, FakeWorker, Kind, Setup, TestManager, wait_welcomed};
use reqwest::Method;
use serde_json::json;
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::command::Command;
use uuid::Uuid;

const WEB_KEYS: [&str; 13] = [
    "name",
    "is_master",
    "status",
    "last_update",
    "last_update_ts",
    "last_started",
    "last_started_ts",
    "last_ended",
    "last_ended_ts",
    "next_schedule",
    "next_schedule_ts",
    "upstream",
    "size",
];

both_transports!(
    empty_manager_answers_like_tunasync,
    empty_manager_answers_like_tunasync_over
);
/// The routes and strings tunasync's own tests assert, on an empty manager.
async fn empty_manager_answers_like_tunasync_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let response = manager.get("/ping").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(response.text().await.unwrap(), r#"{"message":"pong"}"#);
    assert_eq!(manager.get("/jobs").await.text().await.unwrap(), "[]");
    assert_eq!(manager.get("/workers").await.text().await.unwrap(), "[]");
    assert_eq!(manager.get("/healthz").await.status(), 200);

    let response = manager.get("/workers/nosuch/jobs").await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"error":"invalid workerID nosuch"}"#
    );
    let response = manager
        .authed(Method::DELETE, "/workers/nosuch")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"error":"invalid workerID nosuch"}"#
    );
    let response = manager
        .authed(Method::DELETE, "/jobs/disabled")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"message":"flushed"}"#);

    let response = manager.get("/no/such/route").await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "404 page not found");
    let response = manager.get("/workers/bad%20id/jobs").await;
    assert_eq!(response.status(), 400);
}

both_transports!(
    worker_events_become_the_status_page,
    worker_events_become_the_status_page_over
);
/// A worker's events become tunasync.json, per-worker lists and history.
async fn worker_events_become_the_status_page_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let worker = FakeWorker::start("w1", manager.link()).await;
    worker.hello(&["debian", "alpine"]).await;
    wait_welcomed(&worker).await;
    let workers = manager.get_json("/workers").await;
    assert_eq!(workers[0]["id"], "w1");
    assert_eq!(workers[0]["token"], "REDACTED");
    assert_eq!(workers[0]["online"], true);

    let run = Uuid::new_v4();
    worker
        .send(worker.status("debian", SyncStatus::PreSyncing, run, None))
        .await;
    worker
        .send(worker.status("debian", SyncStatus::Syncing, run, None))
        .await;
    worker
        .send(worker.status("debian", SyncStatus::Success, run, Some("1.33T")))
        .await;
    manager.wait_status("w1", "debian", "success").await;

    let jobs = manager.get_json("/jobs").await;
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["name"], "alpine", "sorted by name");
    let debian = &jobs[1];
    let keys: Vec<&str> = debian
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys.iter().copied().collect::<BTreeSet<_>>(),
        WEB_KEYS.iter().copied().collect::<BTreeSet<_>>()
    );
    assert_eq!(debian["size"], "1.33T");
    assert_eq!(debian["upstream"], "rsync://example.invalid/debian/");
    let text = debian["last_update"].as_str().unwrap();
    let parsed = chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z").unwrap();
    assert_eq!(
        parsed.timestamp(),
        debian["last_update_ts"].as_i64().unwrap()
    );
    assert_eq!(jobs[0]["last_update"], "0001-01-01 00:00:00 +0000");
    assert_eq!(jobs[0]["last_update_ts"], -62135596800i64);

    // The raw body keeps tunasync's key order.
    let body = manager.get("/jobs").await.text().await.unwrap();
    let expected_order = WEB_KEYS.map(|key| format!("\"{key}\":"));
    let mut at = 0;
    for key in &expected_order {
        let found = body[at..]
            .find(key.as_str())
            .unwrap_or_else(|| panic!("{key} after byte {at}"));
        at += found;
    }

    // gzip for clients that ask.
    let response = manager
        .client
        .get(format!("{}/jobs", manager.url))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");

    // Conditional GETs: every 200 carries a tag (one for both encodings); a client that
    // sends it back gets 304 with no body.
    let tag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(tag.starts_with("W/\""), "{tag}");
    assert_eq!(manager.get("/jobs").await.headers()["etag"], tag.as_str());
    let conditional = |tag: String| {
        manager
            .client
            .get(format!("{}/jobs", manager.url))
            .header("if-none-match", tag)
            .send()
    };
    let response = conditional(tag.clone()).await.unwrap();
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()["etag"], tag.as_str());
    assert!(response.bytes().await.unwrap().is_empty());
    let response = conditional(format!("W/\"stale\", {tag}")).await.unwrap();
    assert_eq!(response.status(), 304, "a tag in a list matches");

    let metrics = manager.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tunasync_mirror_status{mirror=\"debian\",worker=\"w1\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tunasync_worker_online{worker=\"w1\"} 1"),
        "{metrics}"
    );
    // A scraper that takes gzip (Prometheus does) gets the same text gzipped.
    let unzipped = manager.get_gzipped("/metrics").await;
    assert!(
        unzipped.contains("tunasync_mirror_status{mirror=\"debian\",worker=\"w1\"} 3"),
        "{unzipped}"
    );

    let history = manager.get_json("/jobs/w1/debian/history").await;
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert_eq!(history[0]["result"], "success");
    assert_eq!(history[0]["size"], "1.33T");
    assert_eq!(history[0]["run_id"], run.to_string());

    // set-size: the body's name wins; the answer is the updated record.
    let response = manager
        .authed(Method::POST, "/workers/w1/jobs/ignored/size")
        .json(&json!({"Name": "alpine", "Size": "5GB"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let updated: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (updated["name"].clone(), updated["size"].clone()),
        (json!("alpine"), json!("5GB"))
    );
    // The change shows in the list: the old tag no longer matches.
    let response = conditional(tag.clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_ne!(response.headers()["etag"], tag.as_str());
    let response = manager
        .authed(Method::POST, "/workers/w1/jobs/x/size")
        .json(&json!({"name": "nosuch", "size": "5GB"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"error":"no mirror 'nosuch' exists in worker 'w1'"}"#
    );

    // disable (recorded by the manager) + flush removes the job; rm-worker removes the rest.
    let (status, body) = manager
        .cmd(json!({"cmd": "disable", "mirror_id": "alpine", "worker_id": "w1"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        manager.job("w1", "alpine").await.unwrap()["status"],
        "disabled"
    );
    manager
        .authed(Method::DELETE, "/jobs/disabled")
        .send()
        .await
        .unwrap();
    assert!(manager.job("w1", "alpine").await.is_none());
    let response = manager
        .authed(Method::DELETE, "/workers/w1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), r#"{"message":"deleted"}"#);
    assert_eq!(manager.get("/jobs").await.text().await.unwrap(), "[]");
    assert_eq!(manager.get("/workers").await.text().await.unwrap(), "[]");
}

both_transports!(
    commands_reach_the_worker_and_report_its_answer,
    commands_reach_the_worker_and_report_its_answer_over
);
/// `POST /cmd` reaches the worker and reports its answer.
async fn commands_reach_the_worker_and_report_its_answer_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        extra: "[commands]\ntimeout = \"1500ms\"\n".into(),
        ..Setup::default()
    })
    .await;
    let worker = FakeWorker::start("w1", manager.link()).await;
    worker.hello(&["debian"]).await;
    wait_welcomed(&worker).await;

    let (status, body) = manager
        .cmd(json!({"cmd": "start", "mirror_id": "debian", "worker_id": "w1", "args": ["a"], "options": {"force": true}}))
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"message": "successfully send command to worker w1"})
        )
    );
    match worker.commands().last().unwrap() {
        Command::Start(start) => {
            assert!(start.force);
            assert_eq!(start.mirror.as_str(), "debian");
            assert_eq!(start.args, ["a"]);
        }
        other => panic!("expected start, got {other:?}"),
    }

    let (status, _) = manager
        .cmd(json!({"cmd": "stop", "mirror_id": "debian", "worker_id": "w1"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        manager.job("w1", "debian").await.unwrap()["status"],
        "paused"
    );
    for verb in ["restart", "ping", "disable"] {
        let (status, body) = manager
            .cmd(json!({"cmd": verb, "mirror_id": "debian", "worker_id": "w1"}))
            .await;
        assert_eq!(status, 200, "{verb}: {body}");
    }
    let (status, _) = manager
        .cmd(json!({"cmd": "reload", "mirror_id": "", "worker_id": "w1"}))
        .await;
    assert_eq!(status, 200);
    assert!(matches!(
        worker.commands().last().unwrap(),
        Command::Reload(_)
    ));
    // Go clients may send keys in any case.
    let (status, _) = manager
        .cmd(json!({"Cmd": "ping", "Mirror_ID": "", "Worker_ID": "w1"}))
        .await;
    assert_eq!(status, 200);

    let cases = [
        (
            json!({"cmd": "start", "mirror_id": "nosuch", "worker_id": "w1"}),
            400,
            "worker w1 refused the command: mirror nosuch not found",
        ),
        (
            json!({"cmd": "start", "mirror_id": "debian", "worker_id": "nosuch"}),
            400,
            "worker nosuch is not registered yet",
        ),
        (
            json!({"cmd": "start", "mirror_id": "debian", "worker_id": ""}),
            400,
            "worker_id should not be empty",
        ),
        (
            json!({"cmd": "frobnicate", "mirror_id": "debian", "worker_id": "w1"}),
            400,
            "invalid JSON body",
        ),
        (
            json!({"cmd": 3, "mirror_id": "debian", "worker_id": "w1"}),
            400,
            "invalid JSON body",
        ),
        (
            json!({"cmd": "start", "mirror_id": "", "worker_id": "w1"}),
            400,
            "mirror_id should not be empty",
        ),
        (
            json!({"cmd": "start", "mirror_id": "../x", "worker_id": "w1"}),
            400,
            "may only hold",
        ),
    ];
    for (body, expected_status, expected) in cases {
        let (status, answer) = manager.cmd(body.clone()).await;
        assert_eq!(status, expected_status, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{body}: {answer}");
    }
    let n_commands = worker.commands().len();

    // A worker that does not answer: a JSON error naming it, after the configured timeout.
    *worker.answer.lock().unwrap() = Answer::Silent;
    let started = tokio::time::Instant::now();
    let (status, answer) = manager
        .cmd(json!({"cmd": "ping", "mirror_id": "", "worker_id": "w1"}))
        .await;
    assert_eq!(status, 504, "{answer}");
    assert_eq!(answer["error"], "worker w1 did not answer within 1.5s");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(
        worker.commands().len(),
        n_commands + 1,
        "refused inputs never reached the worker"
    );
}

both_transports!(bad_input_gets_json_errors, bad_input_gets_json_errors_over);
/// Malformed and oversized bodies get 4xx JSON errors and change nothing.
async fn bad_input_gets_json_errors_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let worker = FakeWorker::start("w1", manager.link()).await;
    worker.hello(&["debian"]).await;
    wait_welcomed(&worker).await;
    let cases: Vec<(Method, &str, Vec<u8>, u16, &str)> = vec![
        (
            Method::POST,
            "/cmd",
            b"{not json".to_vec(),
            400,
            "invalid JSON body",
        ),
        (Method::POST, "/cmd", b"".to_vec(), 400, "invalid JSON body"),
        (
            Method::POST,
            "/cmd",
            b"[1,2]".to_vec(),
            400,
            "invalid JSON body",
        ),
        (
            Method::POST,
            "/workers/w1/jobs/debian/size",
            br#"{"name":"debian","size":5}"#.to_vec(),
            400,
            "invalid JSON body",
        ),
        (
            Method::POST,
            "/workers/w1/jobs/debian/size",
            br#"{"name":"debian","size":""}"#.to_vec(),
            400,
            "size should not be empty",
        ),
        (
            Method::POST,
            "/workers/w1/jobs/debian/size",
            vec![b' '; 100 * 1024],
            413,
            "larger than",
        ),
    ];
    for (method, path, body, expected_status, expected) in cases {
        let response = manager
            .authed(method.clone(), path)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            expected_status,
            "{method} {path}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(
            answer["error"].as_str().unwrap().contains(expected),
            "{path}: {answer}"
        );
    }
    assert_eq!(
        manager.job("w1", "debian").await.unwrap()["size"],
        "unknown",
        "tunasync shows a size never reported as unknown"
    );
}

/// Changes need a token, a trusted network or a client certificate; reads are public.
#[tokio::test]
async fn state_changes_need_authentication() {
    let manager = TestManager::start(Setup::default()).await;
    for (method, path) in [
        (Method::DELETE, "/jobs/disabled"),
        (Method::POST, "/cmd"),
        (Method::DELETE, "/workers/w1"),
    ] {
        let response = manager
            .client
            .request(method.clone(), format!("{}{path}", manager.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer"),
            "{answer}"
        );
        let response = manager
            .client
            .request(method.clone(), format!("{}{path}", manager.url))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.text().await.unwrap(),
            r#"{"error":"invalid token"}"#
        );
    }
    assert_eq!(
        manager.get("/jobs").await.status(),
        200,
        "reads stay public"
    );

    let trusted = TestManager::start(Setup {
        extra: "trusted_networks = [\"127.0.0.0/8\"]\n".into(),
        ..Setup::default()
    })
    .await;
    let response = trusted
        .client
        .delete(format!("{}/jobs/disabled", trusted.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "loopback is trusted here");

    let mtls = TestManager::start(Setup {
        extra: "require_client_cert = true\n".into(),
        ..Setup::default()
    })
    .await;
    let anonymous = common::client(&mtls.env, None);
    let refused = anonymous.get(format!("{}/ping", mtls.url)).send().await;
    assert!(
        refused.is_err(),
        "a client without a certificate is refused"
    );
    let response = mtls
        .client
        .delete(format!("{}/jobs/disabled", mtls.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "a client certificate from the CA authorises changes"
    );
}

both_transports!(
    the_status_page_is_served_with_tags_filters_and_escaping,
    the_status_page_is_served_with_tags_filters_and_escaping_over
);
/// The status page: HTML with a tag (304 for a reader that has it, until something
/// changes), filters by status and worker and a search, gzip, escaped text, a mirror's page
/// with its runs, HTML errors, the embedded assets.
async fn the_status_page_is_served_with_tags_filters_and_escaping_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let worker = FakeWorker::start("w1", manager.link()).await;
    worker.hello(&["debian", "alpine"]).await;
    wait_welcomed(&worker).await;
    let run = Uuid::new_v4();
    let mut failed = worker.status("debian", SyncStatus::Failed, run, None);
    if let tunasync_shared::wire::event::Event::Status(status) = &mut failed {
        status.error_msg = "<script>alert('x')</script> & more".to_owned();
    }
    worker
        .send(worker.status("debian", SyncStatus::Syncing, run, None))
        .await;
    worker.send(failed).await;
    manager.wait_status("w1", "debian", "failed").await;

    let response = manager.get("/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let tag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body = response.text().await.unwrap();
    assert!(body.contains("data-name=\"debian\"") && body.contains("data-name=\"alpine\""));
    assert!(!body.contains("<script>alert"), "text is escaped");
    assert!(body.contains("&#60;script&#62;alert"), "{body}");
    let digest = tag.trim_start_matches("W/").trim_matches('"');
    assert!(body.contains(digest), "the page knows its tag");

    let conditional = |path: &'static str, tag: String| {
        manager
            .client
            .get(format!("{}{path}", manager.url))
            .header("if-none-match", tag)
            .send()
    };
    let response = conditional("/", tag.clone()).await.unwrap();
    assert_eq!(response.status(), 304);
    assert!(response.bytes().await.unwrap().is_empty());
    let other = conditional("/?status=failed", tag.clone()).await.unwrap();
    assert_eq!(other.status(), 200, "another address has another tag");

    let filtered = other.text().await.unwrap();
    assert!(
        filtered.contains("data-name=\"debian\"") && !filtered.contains("data-name=\"alpine\"")
    );
    let searched = manager.get("/?q=ALP").await.text().await.unwrap();
    assert!(
        searched.contains("data-name=\"alpine\"") && !searched.contains("data-name=\"debian\"")
    );
    let by_worker = manager.get("/?worker=w2").await.text().await.unwrap();
    assert!(!by_worker.contains("data-name="), "no mirror on w2");
    let bad = manager.get("/?status=bogus").await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("bogus"));

    let html = manager.get_gzipped("/").await;
    assert!(html.contains("data-name=\"debian\""));

    // A change: the old tag no longer matches.
    worker
        .send(worker.status("alpine", SyncStatus::Success, Uuid::new_v4(), Some("2G")))
        .await;
    manager.wait_status("w1", "alpine", "success").await;
    let response = conditional("/", tag.clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_ne!(response.headers()["etag"], tag.as_str());

    // A mirror's page: its runs; without authentication, no log.
    let page = manager.get("/mirrors/w1/debian").await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("data-run=\"{run}\"")), "{page}");
    assert!(page.contains("The log needs authentication"), "{page}");
    assert!(!page.contains("<script>alert"));
    let missing = manager.get("/mirrors/w1/nosuch").await;
    assert_eq!(missing.status(), 404);
    let missing = missing.text().await.unwrap();
    assert!(
        missing.contains("Not Found") && missing.contains("nosuch"),
        "{missing}"
    );

    for (path, kind) in [
        ("/static/style.css", "text/css; charset=utf-8"),
        ("/static/page.js", "text/javascript; charset=utf-8"),
    ] {
        let asset = manager.get(path).await;
        assert_eq!(asset.status(), 200);
        assert_eq!(asset.headers()["content-type"], kind);
        assert!(
            asset.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age")
        );
    }
    worker.stop().await;
}

/// The misuse matrix's API rows: a token removed from the tokens file is refused without a
/// restart; a trusted network that does not match lets nobody in; plain HTTP against the
/// HTTPS port gets no answer, and the manager goes on serving.
#[tokio::test]
async fn removed_tokens_unmatched_networks_and_plain_http_are_refused() {
    let manager = TestManager::start(Setup {
        extra: "trusted_networks = [\"10.0.0.0/8\"]\n".into(),
        ..Setup::default()
    })
    .await;
    let flush = |token: Option<&'static str>| {
        let mut request = manager
            .client
            .delete(format!("{}/jobs/disabled", manager.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(flush(None).await, 401, "loopback is not in 10.0.0.0/8");
    assert_eq!(flush(Some(common::TOKEN)).await, 200);

    let tokens = manager.dir.path().join("tokens");
    std::fs::write(&tokens, "# rotated\nnext-token-0123456789\n").unwrap();
    // A modification time of its own, whatever the filesystem's clock resolution.
    std::fs::File::options()
        .write(true)
        .open(&tokens)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        flush(Some(common::TOKEN)).await,
        401,
        "removed from the file"
    );
    assert_eq!(flush(Some("next-token-0123456789")).await, 200);

    let port = manager.url.rsplit(':').next().unwrap().to_owned();
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/ping"))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.as_ref().is_ok_and(|answer| answer.status() == 400),
        "plain HTTP on the HTTPS port: {plain:?}"
    );
    assert_eq!(manager.get("/ping").await.status(), 200, "still serving");
}

/// The misuse matrix's TLS rows on the API: with client certificates required, one from
/// another CA is refused at the handshake; the site's passes; and a client that reaches the
/// manager under a name its certificate does not carry refuses it.
#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let manager = TestManager::start(Setup {
        extra: "require_client_cert = true\n".into(),
        ..Setup::default()
    })
    .await;
    let (cert, key) = manager.env.stranger_identity();
    assert!(
        cert.exists(),
        "{} is missing: the test node's certificates are made by scripts/rmq-node.sh",
        cert.display()
    );
    let stranger = common::client(&manager.env, Some((&cert, &key)));
    let refused = stranger.get(format!("{}/ping", manager.url)).send().await;
    assert!(
        refused.is_err(),
        "a certificate from another CA: {refused:?}"
    );
    assert_eq!(
        manager.get("/ping").await.status(),
        200,
        "the site's certificate"
    );

    // The manager's certificate names localhost and 127.0.0.1: under another name (the
    // same address) a client refuses it.
    let port: u16 = manager.url.rsplit(':').next().unwrap().parse().unwrap();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&manager.env.ca_cert).unwrap()).unwrap();
    let mut pem = std::fs::read(&manager.env.client_cert).unwrap();
    pem.extend(std::fs::read(&manager.env.client_key).unwrap());
    let misnamed = reqwest::Client::builder()
        .tls_certs_only([ca])
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .resolve("wrong.example.org", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap()
        .get(format!("https://wrong.example.org:{port}/ping"))
        .send()
        .await;
    let refused = format!("{:?}", misnamed.as_ref().err());
    assert!(
        misnamed.is_err(),
        "a certificate for another name: {misnamed:?}"
    );
    assert!(
        refused.contains("NotValidForName") || refused.contains("certificate"),
        "{refused}"
    );
}
