//! The manager and a real worker (in-process, real jobs), the worker reaching the broker
//! through a proxy the test opens and closes: outages of one worker's connection, a worker
//! that connects late, a manager that answers late, a worker whose clock went back. The
//! tests that are not about the broker run over both transports (`…::amqp`, `…::memory`).

mod common;

use tunasync_shared::both_transports;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::real_worker::{
    RealWorker, command_mirror, command_worker, worker_conf, worker_conf_with,
};
use common::{FakeWorker, Kind, Link, Setup, TestManager, WAIT, wait_until_async, wait_welcomed};
use tunasync_shared::testkit::{TcpProxy, within};
use tunasync_worker::worker::Options;

/// Worker `w1`'s `mirror` as `GET /workers/w1/jobs` shows it, if the manager knows the
/// worker and the job.
async fn job_of(manager: &TestManager, mirror: &str) -> Option<serde_json::Value> {
    let response = manager.get("/workers/w1/jobs").await;
    if response.status() != 200 {
        return None;
    }
    let jobs: serde_json::Value = response.json().await.ok()?;
    jobs.as_array()?
        .iter()
        .find(|job| job["name"] == mirror)
        .cloned()
}

/// The status of worker `w1`'s `mirror`, if the manager knows the worker and the job.
async fn status_of(manager: &TestManager, mirror: &str) -> Option<String> {
    job_of(manager, mirror)
        .await
        .and_then(|job| job["status"].as_str().map(str::to_owned))
}

/// The operator disabled `mirror` of worker `w1` in an earlier life of the worker (played
/// by a fake worker that then goes away).
async fn disabled_before(manager: &TestManager, mirrors: &[&str], mirror: &str) {
    let earlier = FakeWorker::start("w1", manager.link()).await;
    earlier.hello(mirrors).await;
    wait_welcomed(&earlier).await;
    let (status, answer) = manager
        .cmd(serde_json::json!({"cmd": "disable", "worker_id": "w1", "mirror_id": mirror}))
        .await;
    assert_eq!(status, 200, "{answer}");
    earlier.stop().await;
}

/// Its connection cut for longer than its event queue lasts, the worker finishes a run; the
/// result reaches the manager when it is back. (Before, queued heartbeats pushed the result
/// out of the queue, and the `hello` after the reconnection did not repair it: the job
/// stayed `syncing` with its history entry open.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_ends_during_an_outage_is_reported_after_it() {
    let manager = TestManager::start(Setup::default()).await;
    let proxy = TcpProxy::start(manager.env.amqps_port, true).await;
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("slow.done");
    let mirrors = command_mirror(
        "slow",
        &format!("/bin/sh -c 'sleep 2; touch {}'", done.display()),
    );
    let broker = Link::from(manager.env.tls_config_via(&manager.namespace, proxy.port));
    let config = worker_conf(dir.path(), &broker, &mirrors);
    let worker = RealWorker::start(
        &config,
        &broker,
        Options {
            outbox_capacity: 3,
            ..Options::default()
        },
    );
    manager.wait_status("w1", "slow", "syncing").await;
    proxy.set_open(false);
    wait_until_async(WAIT, "the run to end", || async { done.exists() }).await;
    // The outage lasts six heartbeats: more events than the worker's queue holds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    proxy.set_open(true);
    manager.wait_status("w1", "slow", "success").await;
    let job = manager.job("w1", "slow").await.unwrap();
    assert_ne!(job["last_update"], "0001-01-01T00:00:00Z");
    let history = manager.get_json("/jobs/w1/slow/history").await;
    let entries = history.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{history}");
    assert_eq!(entries[0]["result"], "success");
    assert_ne!(entries[0]["ended"], "0001-01-01T00:00:00Z", "{history}");
    worker.stop().await;
}

/// A worker that reaches the broker only after its wait for the `welcome` would have run out
/// still waits for it once connected: a job the operator disabled does not run. (Before, the
/// wait counted from the start of the process, and such a worker ran every job at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_for_welcome_counts_from_the_first_connection() {
    let manager = TestManager::start(Setup::default()).await;
    disabled_before(&manager, &["held"], "held").await;
    let proxy = TcpProxy::start(manager.env.amqps_port, false).await;
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("held.ran");
    let mirrors = format!(
        "{}{}",
        command_mirror("held", &format!("/bin/touch {}", ran.display())),
        command_mirror("free", "/bin/true"),
    );
    let broker = Link::from(manager.env.tls_config_via(&manager.namespace, proxy.port));
    let config = worker_conf(dir.path(), &broker, &mirrors);
    let worker = RealWorker::start(
        &config,
        &broker,
        Options {
            welcome_wait: Duration::from_secs(1),
            ..Options::default()
        },
    );
    // The broker is out of reach for three times the wait.
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set_open(true);
    manager.wait_status("w1", "free", "success").await;
    assert!(!ran.exists(), "the disabled job ran");
    assert_eq!(
        status_of(&manager, "held").await.as_deref(),
        Some("disabled")
    );
    worker.stop().await;
}

/// The manager answers after the worker stopped waiting and ran every job: the late
/// `welcome` stops the job the operator disabled, whose reports never showed it other than
/// disabled, and the killed run's history entry ends. (Before, a late welcome was ignored
/// and the job's reports overwrote the operator's disable for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_welcome_stops_what_the_operator_disabled() {
    let manager = TestManager::start(Setup::default()).await;
    disabled_before(&manager, &["held", "free"], "held").await;
    let broker = manager.link();
    let stopped = manager.stop().await;
    let work = tempfile::tempdir().unwrap();
    let pid_file = work.path().join("held.pid");
    let mirrors = format!(
        "{}{}",
        command_mirror(
            "held",
            &format!(
                "/bin/sh -c 'echo $$ > {}; exec sleep 60'",
                pid_file.display()
            )
        ),
        command_mirror("free", "/bin/true"),
    );
    let config = worker_conf(work.path(), &broker, &mirrors);
    let worker = RealWorker::start(
        &config,
        &broker,
        Options {
            welcome_wait: Duration::from_secs(1),
            ..Options::default()
        },
    );
    wait_until_async(WAIT, "the worker to run every job", || async {
        std::fs::read_to_string(&pid_file).is_ok_and(|pid| pid.ends_with('\n'))
    })
    .await;
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let process = PathBuf::from(format!("/proc/{}", pid.trim()));
    assert!(process.exists());

    let manager = TestManager::start(Setup::again(stopped)).await;
    manager.wait_status("w1", "free", "success").await;
    assert_eq!(
        status_of(&manager, "held").await.as_deref(),
        Some("disabled")
    );
    wait_until_async(WAIT, "the disabled job's run to be killed", || async {
        !process.exists()
    })
    .await;
    wait_until_async(WAIT, "the killed run's history entry to end", || async {
        let history = manager.get_json("/jobs/w1/held/history").await;
        history[0]["result"] == "failed"
    })
    .await;
    assert_eq!(
        status_of(&manager, "held").await.as_deref(),
        Some("disabled")
    );
    worker.stop().await;
}

both_transports!(
    a_worker_whose_clock_went_back_is_heard,
    a_worker_whose_clock_went_back_is_heard_over
);
/// The manager holds event numbers of worker `w1` far ahead of what the worker numbers now
/// (its clock was an hour fast before, and was set right since): the worker is told and
/// numbers its events after them, so its reports count. (Before, they were ignored without
/// a word while its heartbeats kept it online.)
async fn a_worker_whose_clock_went_back_is_heard_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let earlier = FakeWorker::start("w1", manager.link()).await;
    let hour_ahead = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap() + 3_600_000_000;
    earlier.seq.advance_past(hour_ahead);
    earlier.hello(&["m"]).await;
    wait_welcomed(&earlier).await;
    earlier.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let config = worker_conf(
        dir.path(),
        &manager.link(),
        &command_mirror("m", "/bin/true"),
    );
    let worker = RealWorker::start(&config, &manager.link(), Options::default());
    manager.wait_status("w1", "m", "success").await;
    worker.stop().await;
}

both_transports!(
    two_members_share_the_runs_of_a_pool,
    two_members_share_the_runs_of_a_pool_over
);
/// A pool of two real workers with one slot each and four pooled mirrors: every mirror runs
/// once (the manager schedules them), on both members, one at a time on each, and each
/// shows once, under the pool.
async fn two_members_share_the_runs_of_a_pool_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let shared = tempfile::tempdir().unwrap();
    let names = ["p0", "p1", "p2", "p3"];
    let mirrors: String = names
        .iter()
        .map(|name| command_mirror(name, "/bin/sleep 2"))
        .collect();
    let mut members = Vec::new();
    let mut dirs = Vec::new();
    for member in ["m1", "m2"] {
        let dir = tempfile::tempdir().unwrap();
        let global = format!(
            "name = \"{member}\"\nmirror_dir = \"{}\"\nconcurrent = 1\npool = \"shared\"\n",
            shared.path().display()
        );
        let config = worker_conf_with(dir.path(), &manager.link(), &global, &mirrors);
        members.push(RealWorker::start(
            &config,
            &manager.link(),
            Options::default(),
        ));
        dirs.push(dir);
    }
    for name in names {
        manager.wait_status("shared", name, "success").await;
    }
    let jobs = manager.get_json("/jobs").await;
    assert_eq!(
        jobs.as_array().unwrap().len(),
        4,
        "each pooled mirror once: {jobs}"
    );
    let mut ran_on = std::collections::BTreeSet::new();
    let mut runs: Vec<(String, String, String)> = Vec::new();
    for name in names {
        let history = manager
            .get_json(&format!("/jobs/shared/{name}/history"))
            .await;
        let entries = history.as_array().unwrap();
        assert_eq!(entries.len(), 1, "{name} ran once: {history}");
        let worker = entries[0]["worker"].as_str().unwrap().to_owned();
        ran_on.insert(worker.clone());
        runs.push((
            worker,
            entries[0]["started"].as_str().unwrap().to_owned(),
            entries[0]["ended"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(ran_on.len(), 2, "both members ran some: {runs:?}");
    // One slot each: a member's runs do not overlap.
    for member in ["m1", "m2"] {
        let mut mine: Vec<&(String, String, String)> = runs
            .iter()
            .filter(|(worker, _, _)| worker == member)
            .collect();
        mine.sort_by(|a, b| a.1.cmp(&b.1));
        for pair in mine.windows(2) {
            assert!(pair[0].2 <= pair[1].1, "{member} ran two at once: {mine:?}");
        }
    }
    for member in members {
        member.stop().await;
    }
}

both_transports!(
    commands_to_a_pool_stop_and_start_its_mirror,
    commands_to_a_pool_stop_and_start_its_mirror_over
);
/// `stop` and `start` addressed to the pool (`-w POOL`): the manager holds the pooled mirror
/// and has the member running it end the run; a start hands it out again.
async fn commands_to_a_pool_stop_and_start_its_mirror_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("long.pid");
    let mirrors = command_mirror(
        "long",
        &format!(
            "/bin/sh -c 'echo $$ > {}; exec sleep 60'",
            pid_file.display()
        ),
    );
    let global = format!(
        "name = \"m1\"\nmirror_dir = \"{}/data\"\nconcurrent = 2\npool = \"shared\"\n",
        dir.path().display()
    );
    let config = worker_conf_with(dir.path(), &manager.link(), &global, &mirrors);
    let member = RealWorker::start(&config, &manager.link(), Options::default());
    manager.wait_status("shared", "long", "syncing").await;
    let first = running_process(&pid_file).await;

    let (status, answer) = manager
        .cmd(serde_json::json!({"cmd": "stop", "worker_id": "shared", "mirror_id": "long"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    manager.wait_status("shared", "long", "paused").await;
    wait_until_async(WAIT, "the member to end the run", || async {
        !first.exists()
    })
    .await;

    std::fs::remove_file(&pid_file).unwrap();
    let (status, answer) = manager
        .cmd(serde_json::json!({"cmd": "start", "worker_id": "shared", "mirror_id": "long"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    manager.wait_status("shared", "long", "syncing").await;
    let second = running_process(&pid_file).await;
    assert_ne!(first, second);

    let (status, answer) = manager
        .cmd(serde_json::json!({"cmd": "start", "worker_id": "m1", "mirror_id": "long"}))
        .await;
    assert_eq!(status, 400, "the member refuses: {answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("pool shared"),
        "{answer}"
    );
    member.stop().await;
}

/// `/proc/PID` of the process whose pid `file` will hold.
async fn running_process(file: &Path) -> PathBuf {
    wait_until_async(WAIT, "the job's process", || async {
        std::fs::read_to_string(file).is_ok_and(|pid| pid.ends_with('\n'))
    })
    .await;
    let pid = std::fs::read_to_string(file).unwrap();
    PathBuf::from(format!("/proc/{}", pid.trim()))
}

both_transports!(
    a_running_jobs_progress_shows_and_grows,
    a_running_jobs_progress_shows_and_grows_over
);
/// A running job's progress (time running, lines and bytes of log so far) shows in
/// `GET /workers/{id}/jobs` and grows while the job writes; it goes when the run ends.
async fn a_running_jobs_progress_shows_and_grows_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let worker = command_worker(
        &manager,
        dir.path(),
        "talky",
        "/bin/sh -c 'i=0; while [ $i -lt 60 ]; do echo line $i; i=$((i+1)); sleep 0.25; done'",
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let first = loop {
        let lines = job_of(&manager, "talky")
            .await
            .and_then(|job| job["progress"]["log_lines"].as_u64())
            .filter(|lines| *lines > 0);
        if let Some(lines) = lines {
            break lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress report in {WAIT:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    wait_until_async(WAIT, "a later progress report with more lines", || async {
        let Some(job) = job_of(&manager, "talky").await else {
            return false;
        };
        let progress = &job["progress"];
        progress["log_lines"]
            .as_u64()
            .is_some_and(|lines| lines > first)
            && progress["log_bytes"]
                .as_u64()
                .is_some_and(|bytes| bytes > first * 6)
            && progress["running_secs"]
                .as_u64()
                .is_some_and(|secs| secs >= 5)
            && job["status"] == "syncing"
    })
    .await;
    let jobs = manager.get("/jobs").await.text().await.unwrap();
    assert!(!jobs.contains("progress"), "tunasync.json keeps its keys");
    manager.wait_status("w1", "talky", "success").await;
    let job = manager.job("w1", "talky").await.unwrap();
    assert!(job.get("progress").is_none(), "{job}");
    worker.stop().await;
}

both_transports!(
    a_jobs_log_is_read_through_the_manager,
    a_jobs_log_is_read_through_the_manager_over
);
/// A job's latest log through the manager: asked of the worker over the broker, with the
/// same authentication as changes; its last lines with `?tail=N`; clear JSON errors for a
/// job that does not exist, a worker that went offline.
async fn a_jobs_log_is_read_through_the_manager_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        extra: "[liveness]\noffline_after = \"2s\"\n".into(),
        ..Setup::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let worker = command_worker(
        &manager,
        dir.path(),
        "chatty",
        "/bin/sh -c 'i=0; while [ $i -lt 5000 ]; do echo line $i of the log; i=$((i+1)); done'",
    );
    manager.wait_status("w1", "chatty", "success").await;

    let anonymous = manager.get("/jobs/w1/chatty/log").await;
    assert_eq!(anonymous.status(), 401, "logs need authentication");
    let (status, kind, text) = read_log(&manager, "/jobs/w1/chatty/log").await;
    assert_eq!((status, kind.as_str()), (200, "text/plain; charset=utf-8"));
    assert_eq!(text.lines().count(), 5000);
    assert!(text.starts_with("line 0 of the log\n"), "{}", &text[..40]);
    assert!(text.len() > 64 * 1024, "more than one chunk");
    let (status, _, tail) = read_log(&manager, "/jobs/w1/chatty/log?tail=2").await;
    assert_eq!(status, 200);
    assert_eq!(tail, "line 4998 of the log\nline 4999 of the log\n");

    let (status, _, body) = read_log(&manager, "/jobs/w1/nosuch/log").await;
    assert_eq!(status, 404);
    assert!(body.contains("\"error\""), "{body}");

    worker.stop().await;
    wait_until_async(WAIT, "the worker to be offline", || async {
        read_log(&manager, "/jobs/w1/chatty/log").await.0 == 503
    })
    .await;
    let (_, _, body) = read_log(&manager, "/jobs/w1/chatty/log").await;
    assert!(body.contains("offline"), "{body}");
}

/// An authenticated GET of a log: status, content type, body.
async fn read_log(manager: &TestManager, path: &str) -> (u16, String, String) {
    let response = manager
        .authed(reqwest::Method::GET, path)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, kind, response.text().await.unwrap())
}

both_transports!(
    a_running_jobs_log_is_followed_until_its_run_ends,
    a_running_jobs_log_is_followed_until_its_run_ends_over
);
/// Following a running job's log: the response goes on with the lines the job writes after
/// it began, and ends when the run ends; as plain text, and as Server-Sent Events.
async fn a_running_jobs_log_is_followed_until_its_run_ends_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let worker = command_worker(
        &manager,
        dir.path(),
        "ticker",
        "/bin/sh -c 'i=0; while [ $i -lt 20 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done'",
    );
    for (round, accept) in [(0, "text/plain"), (1, "text/event-stream")] {
        if round > 0 {
            manager.wait_status("w1", "ticker", "success").await;
            let (code, _) = manager
                .cmd(serde_json::json!({"cmd": "start", "worker_id": "w1", "mirror_id": "ticker"}))
                .await;
            assert_eq!(code, 200);
        }
        manager.wait_status("w1", "ticker", "syncing").await;
        let response = manager
            .authed(reqwest::Method::GET, "/jobs/w1/ticker/log?follow=true")
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let mut response = response;
        let first = within(WAIT, "the first piece", response.chunk())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            status_of(&manager, "ticker").await.as_deref(),
            Some("syncing"),
            "the first piece comes while the job runs"
        );
        let mut body = String::from_utf8_lossy(&first).into_owned();
        while let Some(piece) = within(WAIT, "the follow to end with the run", response.chunk())
            .await
            .unwrap()
        {
            body.push_str(&String::from_utf8_lossy(&piece));
        }
        if accept == "text/event-stream" {
            assert_eq!(kind, "text/event-stream");
            assert!(body.contains("data: tick 19\n"), "{body}");
            assert!(
                body.ends_with("event: end\ndata: \n\n"),
                "the end is said: {body}"
            );
            assert!(
                body.lines().all(|line| line.is_empty()
                    || line.starts_with("data: ")
                    || line == "event: end")
            );
        } else {
            assert_eq!(kind, "text/plain; charset=utf-8");
            assert!(body.ends_with("tick 19\n"), "{body}");
            let ticks: Vec<&str> = body.lines().collect();
            assert!(
                ticks.windows(2).all(|pair| pair[0] != pair[1]),
                "no line twice: {body}"
            );
        }
    }
    worker.stop().await;
}

both_transports!(
    a_50_mb_log_is_answered_with_its_end,
    a_50_mb_log_is_answered_with_its_end_over
);
/// A 50 MB log: the manager answers with its last 8 MiB (from a line's start), carried in
/// 64 KiB chunks over the broker.
async fn a_50_mb_log_is_answered_with_its_end_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let worker = command_worker(
        &manager,
        dir.path(),
        "huge",
        "/bin/sh -c 'yes \"a line of a very long log\" | head -n 2000000'",
    );
    manager.wait_status("w1", "huge", "success").await;
    let (status, _, text) = read_log(&manager, "/jobs/w1/huge/log").await;
    assert_eq!(status, 200);
    let line = "a line of a very long log\n";
    assert!(text.len() <= 8 << 20, "{}", text.len());
    assert!(text.len() > (8 << 20) - line.len(), "{}", text.len());
    assert!(text.starts_with(line) && text.ends_with(line));
    assert!(text.lines().all(|got| got == line.trim_end()));
    worker.stop().await;
}

both_transports!(
    a_past_runs_log_is_read_by_its_run_id,
    a_past_runs_log_is_read_by_its_run_id_over
);
/// `?run=ID`: the log of a run from the job's history, while the worker keeps it; an
/// unknown run is a 404 and a run id that is not one a 400, both JSON.
async fn a_past_runs_log_is_read_by_its_run_id_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("n");
    let command = format!(
        "/bin/sh -c 'echo x >> {file}; echo this is run $(wc -l < {file})'",
        file = marker.display()
    );
    let worker = command_worker(&manager, dir.path(), "runs", &command);
    manager.wait_status("w1", "runs", "success").await;
    let (code, _) = manager
        .cmd(serde_json::json!({"cmd": "start", "worker_id": "w1", "mirror_id": "runs"}))
        .await;
    assert_eq!(code, 200);
    let history = || async {
        let runs = manager.get_json("/jobs/w1/runs/history").await;
        runs.as_array()
            .unwrap()
            .iter()
            .filter(|run| run["result"] == "success")
            .map(|run| run["run_id"].as_str().unwrap().to_owned())
            .collect::<Vec<String>>()
    };
    wait_until_async(WAIT, "two successful runs", || async {
        history().await.len() == 2
    })
    .await;
    let runs = history().await;
    let mut seen = Vec::new();
    for run in &runs {
        let (status, _, text) = read_log(&manager, &format!("/jobs/w1/runs/log?run={run}")).await;
        assert_eq!(status, 200, "{text}");
        seen.push(text);
    }
    seen.sort();
    assert_eq!(seen, ["this is run 1\n", "this is run 2\n"]);
    let (_, _, latest) = read_log(&manager, "/jobs/w1/runs/log").await;
    assert_eq!(latest, "this is run 2\n");

    let unknown = uuid::Uuid::new_v4();
    let (status, _, body) = read_log(&manager, &format!("/jobs/w1/runs/log?run={unknown}")).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("\"error\"") && body.contains(&unknown.to_string()),
        "{body}"
    );
    let (status, kind, body) = read_log(&manager, "/jobs/w1/runs/log?run=yesterday").await;
    assert_eq!(status, 400, "{body}");
    assert!(kind.starts_with("application/json"), "{kind}");
    assert!(body.contains("\"error\""), "{body}");
    worker.stop().await;
}

both_transports!(
    a_follow_whose_reader_goes_away_ends_on_the_worker,
    a_follow_whose_reader_goes_away_ends_on_the_worker_over
);
/// A reader that goes away in the middle of a follow: the manager tells the worker, whose
/// follow ends while the job goes on running (the worker's last chunk comes back to a
/// manager that no longer waits for it, and is counted).
async fn a_follow_whose_reader_goes_away_ends_on_the_worker_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        ..Setup::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let worker = command_worker(
        &manager,
        dir.path(),
        "long",
        "/bin/sh -c 'i=0; while [ $i -lt 600 ]; do echo line $i; i=$((i+1)); sleep 0.1; done'",
    );
    manager.wait_status("w1", "long", "syncing").await;
    let mut response = manager
        .authed(reqwest::Method::GET, "/jobs/w1/long/log?follow=true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    within(WAIT, "the first piece", response.chunk())
        .await
        .unwrap()
        .unwrap();
    let metric = |text: &str, name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.parse::<u64>().ok())
    };
    let metrics = manager.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        metric(&metrics, "tunasync_log_follows"),
        Some(1),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "tunasync_log_follows_stopped_total"),
        Some(0)
    );
    drop(response);

    wait_until_async(WAIT, "the worker to stop the follow", || async {
        let metrics = manager.get("/metrics").await.text().await.unwrap();
        metric(&metrics, "tunasync_log_follows_stopped_total") == Some(1)
            && metric(&metrics, "tunasync_log_follows") == Some(0)
    })
    .await;
    assert_eq!(
        status_of(&manager, "long").await.as_deref(),
        Some("syncing"),
        "the follow ended before the run: the reader's leaving ended it"
    );
    worker.stop().await;
}

both_transports!(
    mirrorz_json_lists_the_sites_mirrors,
    mirrorz_json_lists_the_sites_mirrors_over
);
/// MirrorZ: `[mirrorz]` gives the site block, worker.conf's `url` and `desc` reach the
/// document (and `url` tunasync.json); without `url` a mirror is `/NAME`, and tunasync.json
/// keeps tunasync's keys.
async fn mirrorz_json_lists_the_sites_mirrors_over(kind: Kind) {
    let manager = TestManager::start(Setup {
        transport: kind,
        extra: "[mirrorz]\nurl = \"https://mirrors.example.edu\"\nabbr = \"EXAMPLE\"\nname = \"Example Mirrors\"\n".into(),
        ..Setup::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mirrors = format!(
        "{}url = \"https://mirrors.example.edu/debian/\"\ndesc = \"Debian GNU/Linux\"\n{}",
        command_mirror("debian", "/bin/true"),
        command_mirror("plain", "/bin/false"),
    );
    let config = worker_conf(dir.path(), &manager.link(), &mirrors);
    let worker = RealWorker::start(&config, &manager.link(), Options::default());
    manager.wait_status("w1", "debian", "success").await;
    manager.wait_status("w1", "plain", "failed").await;
    // The next run's time comes in the schedule event after the status.
    wait_until_async(WAIT, "debian's next run in the document", || async {
        let document = manager.get_json("/mirrorz.json").await;
        document["mirrors"][0]["status"]
            .as_str()
            .is_some_and(|status| status.contains('X'))
    })
    .await;

    let document = manager.get_json("/mirrorz.json").await;
    assert_eq!(document["version"], 1.7);
    assert_eq!(document["site"]["abbr"], "EXAMPLE");
    assert_eq!(document["site"]["name"], "Example Mirrors");
    let mirrors = document["mirrors"].as_array().unwrap();
    assert_eq!(mirrors.len(), 2);
    let debian = &mirrors[0];
    assert_eq!(debian["cname"], "debian");
    assert_eq!(debian["url"], "https://mirrors.example.edu/debian/");
    assert_eq!(debian["desc"], "Debian GNU/Linux");
    let status = debian["status"].as_str().unwrap();
    assert!(status.starts_with('S') && status.contains('X'), "{status}");
    let plain = &mirrors[1];
    assert_eq!(plain["url"], "/plain");
    assert!(
        plain["status"].as_str().unwrap().contains("O0000000001"),
        "{plain}"
    );

    let jobs = manager.get_json("/jobs").await;
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs[0]["url"], "https://mirrors.example.edu/debian/");
    assert!(
        jobs[1].get("url").is_none(),
        "tunasync's keys when no url is set"
    );
    worker.stop().await;
}
