//! The worker against the private broker and a real `rsync --daemon` on loopback, with the
//! test playing the manager: full job cycles, commands, reload, shutdown.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tunasync_shared::broker::{AmqpBroker, Outgoing, QueueRole, Role, Transport};
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::testkit::{
    BrokerEnv, RsyncDaemon, make_tree, same_tree, unique_namespace, wait_until, within,
};
use tunasync_shared::wire::command::{Command, JobTarget, Ping, Reload, StartJob, Welcome};
use tunasync_shared::wire::event::{CmdOutcome, CmdResult, Event, JobStatus};
use tunasync_shared::wire::{CommandEnvelope, EventEnvelope};
use tunasync_worker::config::WorkerConfig;

const WAIT: Duration = Duration::from_secs(30);

/// The test's stand-in for the manager: records every event, sends commands.
struct FakeManager {
    broker: AmqpBroker,
    worker: WorkerId,
    events: Arc<Mutex<Vec<EventEnvelope>>>,
}

impl FakeManager {
    async fn start(
        env: &BrokerEnv,
        namespace: &str,
        worker: &WorkerId,
        shutdown: &CancellationToken,
    ) -> FakeManager {
        let broker =
            AmqpBroker::start(env.tls_config(namespace), Role::Manager, shutdown.clone()).unwrap();
        broker.wait_connected(WAIT).await.unwrap();
        let mut subscription = broker.subscribe(QueueRole::Manager, 100).await.unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        tokio::spawn(async move {
            while let Some(incoming) = subscription.next().await {
                let envelope = EventEnvelope::decode(&incoming.payload).unwrap();
                sink.lock().unwrap().push(envelope);
                incoming.ack().await.unwrap();
            }
        });
        FakeManager {
            broker,
            worker: worker.clone(),
            events,
        }
    }

    fn statuses(&self, mirror: &str) -> Vec<JobStatus> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|envelope| match &envelope.event {
                Event::Status(status) if status.mirror.as_str() == mirror => Some(status.clone()),
                _ => None,
            })
            .collect()
    }

    fn sequence(&self, mirror: &str) -> Vec<SyncStatus> {
        self.statuses(mirror)
            .iter()
            .map(|status| status.status)
            .collect()
    }

    fn count(&self, predicate: impl Fn(&Event) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|envelope| predicate(&envelope.event))
            .count()
    }

    async fn wait_hello(&self) {
        wait_until(WAIT, "hello", || {
            self.count(|event| matches!(event, Event::Hello(_))) > 0
        })
        .await;
    }

    /// Publishes a command; its envelope id.
    async fn send(&self, command: Command) -> uuid::Uuid {
        let envelope = CommandEnvelope::new(self.worker.clone(), command);
        self.broker
            .publish(Outgoing::command(&envelope, Duration::from_secs(60)))
            .await
            .unwrap();
        envelope.header.id
    }

    /// Publishes a command and waits for the worker's answer.
    async fn command(&self, command: Command) -> CmdOutcome {
        let id = self.send(command).await;
        let find = || {
            self.events
                .lock()
                .unwrap()
                .iter()
                .find_map(|event| match &event.event {
                    Event::CmdResult(CmdResult {
                        cmd_id, outcome, ..
                    }) if *cmd_id == id => Some(outcome.clone()),
                    _ => None,
                })
        };
        wait_until(WAIT, "the command's answer", || find().is_some()).await;
        find().unwrap()
    }
}

type WorkerTask = tokio::task::JoinHandle<Result<(), tunasync_worker::StartError>>;

/// Starts the worker of the config file at `path`: its task, what stops it, and what asks it
/// to reload.
fn spawn_worker(path: &Path) -> (WorkerTask, CancellationToken, tokio::sync::mpsc::Sender<()>) {
    let config = WorkerConfig::load(path).unwrap().config;
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(tunasync_worker::start(config, reload_rx, shutdown.clone()));
    (task, shutdown, reload_tx)
}

fn mirror(name: &str) -> MirrorName {
    MirrorName::new(name).unwrap()
}

fn write_config(path: &Path, env: &BrokerEnv, namespace: &str, root: &Path, mirrors: &str) {
    write_config_with(path, env, namespace, root, 3, mirrors);
}

fn write_config_with(
    path: &Path,
    env: &BrokerEnv,
    namespace: &str,
    root: &Path,
    concurrent: usize,
    mirrors: &str,
) {
    let text = format!(
        r#"[broker]
url = "{url}"
ca_cert = "{ca}"
namespace = "{namespace}"
[global]
name = "w1"
log_dir = "{root}/log/{{{{.Name}}}}"
mirror_dir = "{root}/data"
interval = 1440
concurrent = {concurrent}
heartbeat_interval = "1s"
{mirrors}"#,
        url = env.amqps_url,
        ca = env.ca_cert.display(),
        root = root.display(),
    );
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_its_jobs_obeys_commands_and_reloads() {
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
    let manager = FakeManager::start(&env, &namespace, &worker_id, &shutdown).await;

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
    write_config(&config_path, &env, &namespace, dir.path(), &mirrors);
    let (worker, worker_shutdown, reload_tx) = spawn_worker(&config_path);

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
    write_config(&config_path, &env, &namespace, dir.path(), &edited);
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
    let worker = tokio::spawn(tunasync_worker::start(config, reload_rx, shutdown.clone()));

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
        tunasync_worker::start(config, rx, CancellationToken::new()),
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

/// A reload that lowers `concurrent` while more runs than the new limit are going on lets
/// no new run start until fewer than the limit remain, and raising it again does not go
/// past the new limit. (Before, the lower limit was ignored until the running jobs ended,
/// and raising it afterwards went past it: 4 → 2 → 4 allowed 6.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_holds_across_reloads() {
    let env = BrokerEnv::get();
    let namespace = unique_namespace("limit");
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let dir = tempfile::tempdir().unwrap();
    let worker_id = WorkerId::new("w1").unwrap();
    let manager = FakeManager::start(&env, &namespace, &worker_id, &shutdown).await;
    let names: Vec<String> = (0..8).map(|idx| format!("c{idx}")).collect();
    let mirrors: String = names
        .iter()
        .map(|name| {
            format!("[[mirrors]]\nname = \"{name}\"\nprovider = \"command\"\ncommand = \"/bin/sleep 2\"\n")
        })
        .collect();
    let config_path = dir.path().join("worker.conf");
    write_config_with(&config_path, &env, &namespace, dir.path(), 4, &mirrors);
    let (worker, worker_shutdown, _reload_tx) = spawn_worker(&config_path);
    manager.wait_hello().await;
    manager.send(Command::Welcome(Welcome::default())).await;
    wait_until(WAIT, "four runs", || {
        concurrency_after(&manager, 0, 4).0 == 4
    })
    .await;

    // Four run; the limit goes down to two.
    write_config_with(&config_path, &env, &namespace, dir.path(), 2, &mirrors);
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
    write_config_with(&config_path, &env, &namespace, dir.path(), 4, &mirrors);
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

/// A mirror whose runs fail is tried again after `retry_after_failure` (doubling), not a
/// whole interval later; once it succeeds it waits for its interval again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_mirror_is_tried_again_after_retry_after_failure() {
    let env = BrokerEnv::get();
    let namespace = unique_namespace("rerun");
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let dir = tempfile::tempdir().unwrap();
    let worker_id = WorkerId::new("w1").unwrap();
    let manager = FakeManager::start(&env, &namespace, &worker_id, &shutdown).await;
    let ok = dir.path().join("ok");
    let mirrors = format!(
        "[[mirrors]]\nname = \"flaky\"\nprovider = \"command\"\ncommand = \"/bin/sh -c 'test -e {}'\"\nretry = 1\nretry_after_failure = \"1s\"\n",
        ok.display()
    );
    let config_path = dir.path().join("worker.conf");
    write_config(&config_path, &env, &namespace, dir.path(), &mirrors);
    let (worker, worker_shutdown, _reload_tx) = spawn_worker(&config_path);
    manager.wait_hello().await;
    manager.send(Command::Welcome(Welcome::default())).await;

    let ended = |status: SyncStatus| {
        manager
            .statuses("flaky")
            .iter()
            .filter(|report| report.ends_run && report.status == status)
            .count()
    };
    // interval = 1440: without the rule the second run would come a day later.
    wait_until(WAIT, "two failed runs", || ended(SyncStatus::Failed) >= 2).await;
    let failed: Vec<JobStatus> = manager
        .statuses("flaky")
        .into_iter()
        .filter(|report| report.ends_run)
        .collect();
    let gap = failed[1].at.unix() - failed[0].at.unix();
    assert!((1..=3).contains(&gap), "tried again after 1 s: {gap} s");
    std::fs::write(&ok, "").unwrap();
    wait_until(WAIT, "a successful run", || ended(SyncStatus::Success) == 1).await;
    // Scheduled a day after the success again.
    wait_until(WAIT, "the next run a day later", || {
        let success = manager
            .statuses("flaky")
            .into_iter()
            .find(|report| report.status == SyncStatus::Success);
        let next = manager.events.lock().unwrap().iter().rev().find_map(|envelope| match &envelope.event {
            Event::Schedule(schedule) => schedule
                .schedules
                .iter()
                .find(|run| run.mirror.as_str() == "flaky")
                .map(|run| run.next_schedule),
            _ => None,
        });
        matches!((success, next), (Some(success), Some(next)) if next.unix() - success.at.unix() >= 1439 * 60)
    })
    .await;

    worker_shutdown.cancel();
    within(WAIT, "the worker to stop", worker)
        .await
        .unwrap()
        .unwrap();
}

/// `[cgroup]` on this host's cgroup (v1's memory controller or v2): a run over its
/// `memory_limit` is killed and reported failed, and a process a run leaves behind is
/// killed with its group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_memory_limits_and_leftover_processes() {
    assert!(
        std::path::Path::new("/usr/bin/python3").exists(),
        "python3 is missing: install it with `apt-get install python3`"
    );
    let env = BrokerEnv::get();
    let namespace = unique_namespace("cgroup");
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let dir = tempfile::tempdir().unwrap();
    let worker_id = WorkerId::new("w1").unwrap();
    let manager = FakeManager::start(&env, &namespace, &worker_id, &shutdown).await;
    let pid_file = dir.path().join("leaver.pid");
    let mirrors = format!(
        "[[mirrors]]\nname = \"hog\"\nprovider = \"command\"\n\
         command = \"/usr/bin/python3 -c 'x = bytes(range(256)) * (1 << 20); print(len(x))'\"\n\
         memory_limit = \"64M\"\nretry = 1\n\
         [[mirrors]]\nname = \"leaver\"\nprovider = \"command\"\n\
         command = \"/bin/sh -c 'setsid sleep 300 & echo $! > {pid}'\"\n\
         [[mirrors]]\nname = \"small\"\nprovider = \"command\"\n\
         command = \"/usr/bin/python3 -c 'x = bytes(range(256)) * (1 << 12); print(len(x))'\"\n\
         memory_limit = \"64M\"\n\
         [cgroup]\nenable = true\n",
        pid = pid_file.display()
    );
    let config_path = dir.path().join("worker.conf");
    write_config(&config_path, &env, &namespace, dir.path(), &mirrors);
    let (worker, worker_shutdown, _reload_tx) = spawn_worker(&config_path);
    manager.wait_hello().await;
    manager.send(Command::Welcome(Welcome::default())).await;
    let ended = |mirror: &str| {
        manager
            .statuses(mirror)
            .into_iter()
            .find(|report| report.ends_run)
    };
    wait_until(WAIT, "the three runs to end", || {
        ["hog", "leaver", "small"]
            .iter()
            .all(|mirror| ended(mirror).is_some())
    })
    .await;
    let hog = ended("hog").unwrap();
    assert_eq!(hog.status, SyncStatus::Failed, "over 64M: {hog:?}");
    assert_eq!(
        ended("small").unwrap().status,
        SyncStatus::Success,
        "under the limit"
    );
    assert_eq!(ended("leaver").unwrap().status, SyncStatus::Success);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let left = std::path::PathBuf::from(format!("/proc/{}", pid.trim()));
    // Killed with the group before the run ended.
    // Gone, or a zombie nobody reaped yet (its parent, the shell, has exited).
    let state = std::fs::read_to_string(left.join("stat")).unwrap_or_default();
    let state = state
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("");
    assert!(
        !left.exists() || state == "Z",
        "the run's background sleep (pid {}) survived: state {state:?}",
        pid.trim()
    );

    worker_shutdown.cancel();
    within(WAIT, "the worker to stop", worker)
        .await
        .unwrap()
        .unwrap();
}

/// `disk_min_free` against the real free space of the test's filesystem: a mirror asking
/// for more than there is is skipped and reported failed with the reason; one asking for
/// little runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_without_enough_free_disk_space_is_skipped_and_reported_failed() {
    let env = BrokerEnv::get();
    let namespace = unique_namespace("disk");
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let dir = tempfile::tempdir().unwrap();
    let worker_id = WorkerId::new("w1").unwrap();
    let manager = FakeManager::start(&env, &namespace, &worker_id, &shutdown).await;
    let ran = dir.path().join("ran");
    let free = tunasync_worker::disk::free_space(dir.path()).unwrap();
    // More than the filesystem has free, in bytes; and a percentage it cannot reach.
    let too_much = format!("{}K", free.available / 1024 + 1024 * 1024);
    let mirrors = format!(
        "[[mirrors]]\nname = \"full\"\nprovider = \"command\"\ncommand = \"/bin/touch {ran}\"\ndisk_min_free = \"{too_much}\"\n\
         [[mirrors]]\nname = \"percent\"\nprovider = \"command\"\ncommand = \"/bin/touch {ran}\"\ndisk_min_free = \"100%\"\n\
         [[mirrors]]\nname = \"roomy\"\nprovider = \"command\"\ncommand = \"/bin/true\"\ndisk_min_free = \"1K\"\n",
        ran = ran.display()
    );
    let config_path = dir.path().join("worker.conf");
    write_config(&config_path, &env, &namespace, dir.path(), &mirrors);
    let (worker, worker_shutdown, _reload_tx) = spawn_worker(&config_path);
    manager.wait_hello().await;
    manager.send(Command::Welcome(Welcome::default())).await;
    let ended = |mirror: &str| {
        manager
            .statuses(mirror)
            .into_iter()
            .find(|report| report.ends_run)
    };
    wait_until(WAIT, "the three runs to end", || {
        ["full", "percent", "roomy"]
            .iter()
            .all(|mirror| ended(mirror).is_some())
    })
    .await;
    for mirror in ["full", "percent"] {
        let report = ended(mirror).unwrap();
        assert_eq!(report.status, SyncStatus::Failed, "{report:?}");
        assert!(
            report.error_msg.starts_with("not enough free disk space: ")
                && report.error_msg.contains("below disk_min_free"),
            "{}",
            report.error_msg
        );
    }
    assert!(!ran.exists(), "the skipped runs ran nothing");
    assert_eq!(ended("roomy").unwrap().status, SyncStatus::Success);

    worker_shutdown.cancel();
    within(WAIT, "the worker to stop", worker)
        .await
        .unwrap()
        .unwrap();
}

/// `[global.per_upstream_concurrent]`: with slots for all, runs against one host still go
/// one at a time (each would leave an `overlap` mark if another held the host's lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_against_one_upstream_host_stay_within_its_limit() {
    let env = BrokerEnv::get();
    let namespace = unique_namespace("upstream");
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let dir = tempfile::tempdir().unwrap();
    let worker_id = WorkerId::new("w1").unwrap();
    let manager = FakeManager::start(&env, &namespace, &worker_id, &shutdown).await;
    let lock = dir.path().join("host.lock");
    let overlap = dir.path().join("overlap");
    let names = ["u0", "u1", "u2"];
    let mut mirrors: String = names
        .iter()
        .map(|name| {
            format!(
                "[[mirrors]]\nname = \"{name}\"\nprovider = \"command\"\nupstream = \"rsync://Up.Example.org/{name}/\"\n\
                 command = \"/bin/sh -c 'mkdir {lock} || touch {overlap}; sleep 0.5; rmdir {lock}'\"\n",
                lock = lock.display(),
                overlap = overlap.display()
            )
        })
        .collect();
    mirrors.push_str(
        "[[mirrors]]\nname = \"elsewhere\"\nprovider = \"command\"\nupstream = \"rsync://other.example.org/x/\"\ncommand = \"/bin/true\"\n",
    );
    let config_path = dir.path().join("worker.conf");
    write_config_with(&config_path, &env, &namespace, dir.path(), 4, &mirrors);
    let text = std::fs::read_to_string(&config_path).unwrap();
    let text = text.replacen(
        "heartbeat_interval = \"1s\"\n",
        "heartbeat_interval = \"1s\"\n[global.per_upstream_concurrent]\n\"up.example.org\" = 1\n",
        1,
    );
    // The table must come before the mirrors: it is written right after [global]'s keys.
    std::fs::write(&config_path, text).unwrap();
    let (worker, worker_shutdown, _reload_tx) = spawn_worker(&config_path);
    manager.wait_hello().await;
    manager.send(Command::Welcome(Welcome::default())).await;
    wait_until(WAIT, "every run to succeed", || {
        names.iter().chain(&["elsewhere"]).all(|name| {
            manager
                .statuses(name)
                .iter()
                .any(|report| report.status == SyncStatus::Success)
        })
    })
    .await;
    assert!(!overlap.exists(), "two runs against up.example.org at once");

    worker_shutdown.cancel();
    within(WAIT, "the worker to stop", worker)
        .await
        .unwrap()
        .unwrap();
}

/// `atomic_publish`: a reader holding the served directory open reads it again and again
/// while runs write their trees file by file into the staging copy; every read sees one
/// run's whole tree (40 files with one token), never a mix, and it sees successive runs'
/// trees. A failed run leaves its staging copy, and the next run resumes from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_half_synced_tree_with_atomic_publish() {
    let env = BrokerEnv::get();
    let namespace = unique_namespace("publish");
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let dir = tempfile::tempdir().unwrap();
    let worker_id = WorkerId::new("w1").unwrap();
    let manager = FakeManager::start(&env, &namespace, &worker_id, &shutdown).await;
    let mirrors = format!(
        "staging_dir = \"{root}/staging\"\n\
         [[mirrors]]\nname = \"tree\"\nprovider = \"command\"\natomic_publish = true\n\
         command = \"/bin/sh -c 't=$(date +%s%N); for i in $(seq 1 40); do echo $t > f$i; sleep 0.01; done'\"\n\
         [[mirrors]]\nname = \"resume\"\nprovider = \"command\"\natomic_publish = true\nretry = 1\n\
         command = \"/bin/sh -c 'if [ -e partial ]; then echo resumed > result; else touch partial; exit 1; fi'\"\n",
        root = dir.path().display()
    );
    let config_path = dir.path().join("worker.conf");
    write_config(&config_path, &env, &namespace, dir.path(), &mirrors);
    let (worker, worker_shutdown, _reload_tx) = spawn_worker(&config_path);
    manager.wait_hello().await;
    manager.send(Command::Welcome(Welcome::default())).await;

    // The reader: opens the served directory, reads all 40 files through that handle.
    let served = dir.path().join("data/tree");
    let reading = CancellationToken::new();
    let reader = {
        let (served, reading) = (served.clone(), reading.clone());
        std::thread::spawn(move || {
            let mut trees = std::collections::BTreeSet::new();
            let mut reads = 0u32;
            while !reading.is_cancelled() {
                let Ok(handle) = std::fs::File::open(&served) else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                use std::os::fd::AsRawFd as _;
                let base = format!("/proc/self/fd/{}", handle.as_raw_fd());
                let tokens: std::collections::BTreeSet<String> = (1..=40)
                    .map(|i| std::fs::read_to_string(format!("{base}/f{i}")).unwrap_or_default())
                    .collect();
                assert_eq!(tokens.len(), 1, "a mixed or partial tree: {tokens:?}");
                trees.extend(tokens);
                reads += 1;
            }
            (trees, reads)
        })
    };
    let successes = |mirror: &str| {
        manager
            .statuses(mirror)
            .iter()
            .filter(|report| report.status == SyncStatus::Success)
            .count()
    };
    wait_until(WAIT, "the first publish", || successes("tree") == 1).await;
    for round in 2..=4 {
        let start = Command::Start(StartJob {
            mirror: mirror("tree"),
            args: vec![],
            force: false,
        });
        assert_eq!(manager.command(start).await, CmdOutcome::Accepted);
        wait_until(WAIT, &format!("publish {round}"), || {
            successes("tree") == round
        })
        .await;
    }
    reading.cancel();
    let (trees, reads) = reader.join().expect("the reader saw only whole trees");
    assert!(trees.len() >= 3, "{reads} reads saw {} trees", trees.len());

    // The failed run left its staging copy; the next one resumed from it.
    wait_until(WAIT, "resume's first run to fail", || {
        manager
            .statuses("resume")
            .iter()
            .any(|report| report.ends_run && report.status == SyncStatus::Failed)
    })
    .await;
    assert!(
        !dir.path().join("data/resume").exists(),
        "nothing published"
    );
    assert!(dir.path().join("staging/resume/partial").exists());
    let start = Command::Start(StartJob {
        mirror: mirror("resume"),
        args: vec![],
        force: false,
    });
    assert_eq!(manager.command(start).await, CmdOutcome::Accepted);
    wait_until(WAIT, "resume's second run", || successes("resume") == 1).await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/resume/result")).unwrap(),
        "resumed\n"
    );

    worker_shutdown.cancel();
    within(WAIT, "the worker to stop", worker)
        .await
        .unwrap()
        .unwrap();
}

/// `upstream_fallback`: the first upstream does not answer (nothing listens on its port),
/// so the run syncs from the fallback, a real rsync daemon, and its reports say so; with
/// every upstream dead, the run is skipped with each one's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_falls_back_to_the_upstream_that_answers() {
    let env = BrokerEnv::get();
    let namespace = unique_namespace("fallback");
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let dir = tempfile::tempdir().unwrap();
    let upstream = dir.path().join("upstream");
    make_tree(&upstream);
    let daemon = RsyncDaemon::start(&upstream);
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap();
    let dead = format!("rsync://127.0.0.1:{dead_port}/pub/");
    let worker_id = WorkerId::new("w1").unwrap();
    let manager = FakeManager::start(&env, &namespace, &worker_id, &shutdown).await;
    let mirrors = format!(
        "[[mirrors]]\nname = \"falls-back\"\nupstream = \"{dead}\"\nupstream_fallback = [\"{live}\"]\n\
         [[mirrors]]\nname = \"all-dead\"\nupstream = \"{dead}\"\ncheck_upstream = true\nretry = 1\n",
        live = daemon.url()
    );
    let config_path = dir.path().join("worker.conf");
    write_config(&config_path, &env, &namespace, dir.path(), &mirrors);
    let (worker, worker_shutdown, _reload_tx) = spawn_worker(&config_path);
    manager.wait_hello().await;
    manager.send(Command::Welcome(Welcome::default())).await;
    let ended = |mirror: &str| {
        manager
            .statuses(mirror)
            .into_iter()
            .find(|report| report.ends_run)
    };
    wait_until(WAIT, "both runs to end", || {
        ended("falls-back").is_some() && ended("all-dead").is_some()
    })
    .await;
    let synced = ended("falls-back").unwrap();
    assert_eq!(synced.status, SyncStatus::Success, "{synced:?}");
    assert_eq!(
        synced.upstream,
        daemon.url(),
        "the report names the fallback"
    );
    assert!(same_tree(&upstream, &dir.path().join("data/falls-back")));
    let skipped = ended("all-dead").unwrap();
    assert_eq!(skipped.status, SyncStatus::Failed);
    assert!(
        skipped
            .error_msg
            .starts_with(&format!("no upstream answered: {dead} (")),
        "{}",
        skipped.error_msg
    );

    worker_shutdown.cancel();
    within(WAIT, "the worker to stop", worker)
        .await
        .unwrap()
        .unwrap();
}

/// A blackout window: the run due at start-up waits for its end; `start` without `-f` is
/// taken but waits too, and says until when; `start -f` runs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackout_holds_scheduled_runs_and_plain_starts_but_not_forced_ones() {
    let env = BrokerEnv::get();
    let namespace = unique_namespace("blackout");
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let dir = tempfile::tempdir().unwrap();
    let worker_id = WorkerId::new("w1").unwrap();
    let manager = FakeManager::start(&env, &namespace, &worker_id, &shutdown).await;
    // A window from an hour ago to two hours ahead, in UTC (across midnight if need be).
    let now = chrono::Utc::now();
    let window_end = now + chrono::Duration::hours(2);
    let window = format!(
        "{}-{}",
        (now - chrono::Duration::hours(1)).format("%H:%M"),
        window_end.format("%H:%M")
    );
    let mirrors = format!(
        "[[mirrors]]\nname = \"quiet\"\nprovider = \"command\"\ncommand = \"/bin/true\"\n\
         timezone = \"UTC\"\nblackout = [\"{window}\"]\n\
         [[mirrors]]\nname = \"free\"\nprovider = \"command\"\ncommand = \"/bin/true\"\n"
    );
    let config_path = dir.path().join("worker.conf");
    write_config(&config_path, &env, &namespace, dir.path(), &mirrors);
    let (worker, worker_shutdown, _reload_tx) = spawn_worker(&config_path);
    manager.wait_hello().await;
    manager.send(Command::Welcome(Welcome::default())).await;
    // Reports come in order: once the other mirror has run, quiet would have started too.
    wait_until(WAIT, "the free mirror's run", || {
        manager.sequence("free").contains(&SyncStatus::Success)
    })
    .await;
    let next = |manager: &FakeManager| {
        manager
            .events
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|envelope| match &envelope.event {
                Event::Schedule(schedule) => schedule
                    .schedules
                    .iter()
                    .find(|run| run.mirror.as_str() == "quiet")
                    .map(|run| run.next_schedule),
                _ => None,
            })
    };
    let window_end = window_end.timestamp() / 60 * 60;
    wait_until(WAIT, "quiet scheduled at the window's end", || {
        next(&manager).is_some_and(|at| at.unix() == window_end)
    })
    .await;
    let start = |force| {
        Command::Start(StartJob {
            mirror: mirror("quiet"),
            args: vec![],
            force,
        })
    };
    match manager.command(start(false)).await {
        CmdOutcome::Deferred { reason } => assert!(
            reason.starts_with(&format!(
                "quiet is in its blackout window \"{window}\": it starts at "
            )) && reason.ends_with("(start -f runs it now)"),
            "{reason}"
        ),
        other => panic!("a plain start in a blackout: {other:?}"),
    }
    assert!(manager.statuses("quiet").is_empty(), "nothing ran");
    assert_eq!(manager.command(start(true)).await, CmdOutcome::Accepted);
    wait_until(WAIT, "the forced run", || {
        manager.sequence("quiet").contains(&SyncStatus::Success)
    })
    .await;

    worker_shutdown.cancel();
    within(WAIT, "the worker to stop", worker)
        .await
        .unwrap()
        .unwrap();
}
