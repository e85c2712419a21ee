//! The worker against the private broker and a real `rsync --daemon` on loopback, with the
//! test playing the manager: full job cycles, commands, reload, shutdown.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tunasync_shared::names::WorkerId;
use tunasync_shared::status::SyncStatus;
use tunasync_shared::testkit::{
    BrokerEnv, RsyncDaemon, make_tree, same_tree, unique_namespace, wait_until, within,
};
use tunasync_shared::wire::command::{Command, JobTarget, Ping, Reload, StartJob, Welcome};
use tunasync_shared::wire::event::{CmdOutcome, Event};
use tunasync_worker::config::WorkerConfig;

mod common;

use tunasync_shared::both_transports;

use common::*;

both_transports!(
    the_worker_runs_its_jobs_obeys_commands_and_reloads,
    the_worker_runs_its_jobs_obeys_commands_and_reloads_over
);
async fn the_worker_runs_its_jobs_obeys_commands_and_reloads_over(kind: Kind) {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info,lapin=warn")
        .try_init();
    let env = BrokerEnv::get();
    let namespace = unique_namespace("worker");
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let dir = tempfile::tempdir().unwrap();
    let upstream = dir.path().join("upstream");
    make_tree(&upstream);
    let daemon = RsyncDaemon::start(&upstream);
    let worker_id = WorkerId::new("w1").unwrap();
    let manager = FakeManager::start_on(kind, &env, &namespace, &worker_id, &shutdown).await;

    let mirrors = format!(
        r#"
[[mirrors]]
name = "rsync-real"
upstream = "{upstream}"

[[mirrors]]
name = "cmd-ok"
provider = "command"
upstream = "https://example.org/"
command = "/bin/sh -c 'echo \"Total size is 12.5M\"'"
size_pattern = "Total size is ([0-9\\.]+[KMGTP]?)"

[[mirrors]]
name = "cmd-fail"
provider = "command"
command = "/bin/sh -c 'exit 3'"
retry = 2

[[mirrors]]
name = "cmd-slow"
provider = "command"
command = "/bin/sleep 60"
"#,
        upstream = daemon.url()
    );
    let config_path = dir.path().join("worker.conf");
    write_config_over(
        kind,
        &config_path,
        &env,
        &namespace,
        dir.path(),
        3,
        &mirrors,
    );
    let (worker, worker_shutdown, reload_tx) =
        spawn_worker_on(&config_path, manager.memory.as_ref());

    // hello, then (our) welcome: the manager knows nothing, so everything runs now.
    manager.wait_hello().await;
    {
        let events = manager.events.lock().unwrap();
        let Event::Hello(hello) = &events
            .iter()
            .find(|e| matches!(e.event, Event::Hello(_)))
            .unwrap()
            .event
        else {
            unreachable!()
        };
        assert_eq!(hello.jobs.len(), 4);
    }
    manager.send(Command::Welcome(Welcome::default())).await;

    wait_until(WAIT, "rsync-real to succeed", || {
        manager
            .sequence("rsync-real")
            .contains(&SyncStatus::Success)
    })
    .await;
    assert_eq!(
        manager.sequence("rsync-real"),
        [
            SyncStatus::PreSyncing,
            SyncStatus::Syncing,
            SyncStatus::Success
        ]
    );
    assert!(
        same_tree(&upstream, &dir.path().join("data/rsync-real")),
        "the tree is mirrored byte for byte"
    );
    let size = manager
        .statuses("rsync-real")
        .last()
        .unwrap()
        .size
        .clone()
        .unwrap();
    assert!(size.ends_with('K'), "rsync's Total file size: {size}");

    wait_until(WAIT, "cmd-ok", || {
        manager.sequence("cmd-ok").contains(&SyncStatus::Success)
    })
    .await;
    assert_eq!(
        manager.statuses("cmd-ok").last().unwrap().size.as_deref(),
        Some("12.5M")
    );
    wait_until(WAIT, "cmd-fail's two attempts", || {
        manager.sequence("cmd-fail").len() == 5
    })
    .await;
    assert_eq!(
        manager.sequence("cmd-fail"),
        [
            SyncStatus::PreSyncing,
            SyncStatus::Syncing,
            SyncStatus::Failed,
            SyncStatus::Syncing,
            SyncStatus::Failed
        ]
    );
    assert_eq!(manager.statuses("cmd-fail")[2].error_msg, "exit status 3");
    assert!(dir.path().join("log/cmd-fail/latest").exists());
    wait_until(WAIT, "cmd-slow to sync", || {
        manager.sequence("cmd-slow").contains(&SyncStatus::Syncing)
    })
    .await;
    wait_until(WAIT, "a heartbeat naming cmd-slow", || {
        manager.count(|event| matches!(event, Event::Heartbeat(beat) if beat.running.contains(&mirror("cmd-slow")))) > 0
    })
    .await;
    wait_until(WAIT, "a schedule", || {
        manager.count(|event| matches!(event, Event::Schedule(s) if s.schedules.iter().any(|run| run.mirror.as_str() == "cmd-ok"))) > 0
    })
    .await;

    // Commands.
    assert_eq!(
        manager
            .command(Command::Ping(Ping {
                mirror: Some(mirror("nosuch"))
            }))
            .await,
        CmdOutcome::Refused {
            reason: "mirror nosuch not found".into()
        }
    );
    let n_ok = manager.sequence("cmd-ok").len();
    let start = Command::Start(StartJob {
        mirror: mirror("cmd-ok"),
        args: vec![],
        force: true,
    });
    assert_eq!(manager.command(start).await, CmdOutcome::Accepted);
    wait_until(WAIT, "cmd-ok to run again", || {
        manager.sequence("cmd-ok").len() == n_ok + 3
    })
    .await;
    let stop = Command::Stop(JobTarget {
        mirror: mirror("cmd-slow"),
        args: vec![],
    });
    assert_eq!(manager.command(stop).await, CmdOutcome::Accepted);
    let after_stop = manager.sequence("cmd-slow");
    assert_eq!(
        after_stop,
        [SyncStatus::PreSyncing, SyncStatus::Syncing],
        "a stop is not reported (tunasync)"
    );

    // Reload after editing the file: one job removed, one added.
    let edited = mirrors
        .replace("name = \"cmd-fail\"", "name = \"cmd-new\"")
        .replace("exit 3", "exit 0");
    write_config_over(kind, &config_path, &env, &namespace, dir.path(), 3, &edited);
    assert_eq!(
        manager.command(Command::Reload(Reload {})).await,
        CmdOutcome::Accepted
    );
    wait_until(WAIT, "cmd-fail reported removed", || {
        manager.count(|event| matches!(event, Event::JobRemoved(removed) if removed.mirror.as_str() == "cmd-fail")) == 1
    })
    .await;
    wait_until(WAIT, "cmd-new to run", || {
        manager.sequence("cmd-new").contains(&SyncStatus::Success)
    })
    .await;
    // SIGHUP's path: a bad file is refused and the old config keeps running.
    std::fs::write(&config_path, "[global]\nname = \"w1\"\nconcurrent = -1\n").unwrap();
    let CmdOutcome::Refused { reason } = manager.command(Command::Reload(Reload {})).await else {
        panic!("a bad config must be refused");
    };
    assert!(reason.contains("global.concurrent"), "{reason}");
    reload_tx.send(()).await.unwrap();
    assert_eq!(
        manager
            .command(Command::Ping(Ping {
                mirror: Some(mirror("cmd-new"))
            }))
            .await,
        CmdOutcome::Accepted
    );

    // Shutdown while a job runs: it is stopped and reported, then the worker exits.
    let start = Command::Start(StartJob {
        mirror: mirror("cmd-slow"),
        args: vec![],
        force: false,
    });
    assert_eq!(manager.command(start).await, CmdOutcome::Accepted);
    wait_until(WAIT, "cmd-slow to run again", || {
        manager.sequence("cmd-slow").len() == 4
    })
    .await;
    worker_shutdown.cancel();
    within(WAIT, "the worker to stop", worker)
        .await
        .unwrap()
        .unwrap();
    wait_until(WAIT, "the killed run's report", || {
        manager.sequence("cmd-slow").len() >= 5
    })
    .await;
    let last = manager.statuses("cmd-slow")[4].clone();
    assert_eq!(
        (last.status, last.error_msg.as_str()),
        (SyncStatus::Failed, "killed by manager")
    );
}

/// `GET path` over a fresh connection; the status code and the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_endpoint_answers_when_configured_and_a_taken_port_is_an_error() {
    let env = BrokerEnv::get();
    let namespace = unique_namespace("health");
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let config_path = dir.path().join("worker.conf");
    let health = format!("[health]\naddr = \"{addr}\"\n");
    write_config(&config_path, &env, &namespace, dir.path(), &health);
    let config = WorkerConfig::load(&config_path).unwrap().config;
    assert_eq!(config.health_addr, Some(addr));
    let (_reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(tunasync_worker::start(
        config,
        reload_rx,
        shutdown.clone(),
        || {},
    ));

    let mut ready = None;
    for _ in 0..300 {
        if let Ok(answer @ (200, _)) = http_get(addr, "/readyz").await {
            ready = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, body) = ready.expect("/readyz to answer 200 within 30 s");
    assert_eq!(body, r#"{"message":"ready"}"#);
    assert_eq!(
        http_get(addr, "/healthz").await.unwrap(),
        (200, r#"{"message":"alive"}"#.to_owned())
    );
    assert_eq!(http_get(addr, "/nope").await.unwrap().0, 404);

    // A second worker configured for the same address does not start, and says why.
    let taken_path = dir.path().join("taken.conf");
    let taken = format!("[health]\naddr = \"{addr}\"\n");
    write_config(
        &taken_path,
        &env,
        &unique_namespace("health"),
        dir.path(),
        &taken,
    );
    let config = WorkerConfig::load(&taken_path).unwrap().config;
    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    let err = within(
        WAIT,
        "the second worker to refuse",
        tunasync_worker::start(config, rx, CancellationToken::new(), || {}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot serve health checks on {addr}")
    );

    shutdown.cancel();
    within(WAIT, "the worker to stop", worker)
        .await
        .unwrap()
        .unwrap();
    assert!(
        http_get(addr, "/healthz").await.is_err(),
        "the endpoint closes with the worker"
    );
}

/// The most runs going on at once among the statuses after the event numbered `after`, and
/// whether a run started while `limit` others were going on.
fn concurrency_after(manager: &FakeManager, after: u64, limit: usize) -> (usize, bool) {
    let mut events = manager.events.lock().unwrap().clone();
    events.sort_by_key(|envelope| envelope.seq);
    let mut running = std::collections::BTreeSet::new();
    let mut most = 0;
    let mut over = false;
    for envelope in events {
        let Event::Status(status) = &envelope.event else {
            continue;
        };
        match status.status {
            SyncStatus::PreSyncing => {
                if envelope.seq > after && running.len() >= limit {
                    over = true;
                }
                running.insert(status.mirror.clone());
            }
            SyncStatus::Success | SyncStatus::Failed => {
                running.remove(&status.mirror);
            }
            _ => {}
        }
        if envelope.seq > after {
            most = most.max(running.len());
        }
    }
    (most, over)
}

both_transports!(
    the_concurrency_limit_holds_across_reloads,
    the_concurrency_limit_holds_across_reloads_over
);
/// A reload that lowers `concurrent` while more runs than the new limit are going on lets
/// no new run start until fewer than the limit remain, and raising it again does not go
/// past the new limit. (Before, the lower limit was ignored until the running jobs ended,
/// and raising it afterwards went past it: 4 → 2 → 4 allowed 6.)
async fn the_concurrency_limit_holds_across_reloads_over(kind: Kind) {
    let env = BrokerEnv::get();
    let namespace = unique_namespace("limit");
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let dir = tempfile::tempdir().unwrap();
    let worker_id = WorkerId::new("w1").unwrap();
    let manager = FakeManager::start_on(kind, &env, &namespace, &worker_id, &shutdown).await;
    let names: Vec<String> = (0..8).map(|idx| format!("c{idx}")).collect();
    let mirrors: String = names
        .iter()
        .map(|name| {
            format!("[[mirrors]]\nname = \"{name}\"\nprovider = \"command\"\ncommand = \"/bin/sleep 2\"\n")
        })
        .collect();
    let config_path = dir.path().join("worker.conf");
    write_config_over(
        kind,
        &config_path,
        &env,
        &namespace,
        dir.path(),
        4,
        &mirrors,
    );
    let (worker, worker_shutdown, _reload_tx) =
        spawn_worker_on(&config_path, manager.memory.as_ref());
    manager.wait_hello().await;
    manager.send(Command::Welcome(Welcome::default())).await;
    wait_until(WAIT, "four runs", || {
        concurrency_after(&manager, 0, 4).0 == 4
    })
    .await;

    // Four run; the limit goes down to two.
    write_config_over(
        kind,
        &config_path,
        &env,
        &namespace,
        dir.path(),
        2,
        &mirrors,
    );
    assert_eq!(
        manager.command(Command::Reload(Reload {})).await,
        CmdOutcome::Accepted
    );
    let reloaded = last_seq(&manager);
    let all_done = |runs: usize| {
        names.iter().all(|name| {
            manager
                .sequence(name)
                .iter()
                .filter(|s| **s == SyncStatus::Success)
                .count()
                == runs
        })
    };
    wait_until(Duration::from_secs(60), "every job to run once", || {
        all_done(1)
    })
    .await;
    let (_, over) = concurrency_after(&manager, reloaded, 2);
    assert!(
        !over,
        "a run started while two or more others ran after the limit went to 2"
    );

    // Back to four, and every job asked to run again.
    write_config_over(
        kind,
        &config_path,
        &env,
        &namespace,
        dir.path(),
        4,
        &mirrors,
    );
    assert_eq!(
        manager.command(Command::Reload(Reload {})).await,
        CmdOutcome::Accepted
    );
    let reloaded = last_seq(&manager);
    for name in &names {
        let start = Command::Start(StartJob {
            mirror: mirror(name),
            args: vec![],
            force: false,
        });
        assert_eq!(manager.command(start).await, CmdOutcome::Accepted);
    }
    wait_until(Duration::from_secs(60), "every job to run twice", || {
        all_done(2)
    })
    .await;
    let (most, over) = concurrency_after(&manager, reloaded, 4);
    assert!(
        !over && most == 4,
        "after raising the limit to 4: at most {most} at once"
    );

    worker_shutdown.cancel();
    within(WAIT, "the worker to stop", worker)
        .await
        .unwrap()
        .unwrap();
}

fn last_seq(manager: &FakeManager) -> u64 {
    manager
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|envelope| envelope.seq)
        .max()
        .unwrap_or(0)
}
