//! The fault suite (issue 14): the real manager binary SIGKILLed in the middle of ingesting
//! 20,000 worker events, then started again on the same store. Each event is a successful
//! run that transferred 1 byte, so each job's `total_transferred_bytes` counts the events
//! of it the store applied: equal to the number sent means none lost and none applied
//! twice.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tunasync_e2e::events::successful_run;
use tunasync_e2e::site::Files;
use tunasync_e2e::{Daemon, wait_for};
use tunasync_shared::broker::{AmqpBroker, Outgoing, Role, Transport};
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::testkit::BrokerEnv;
use tunasync_shared::wire::{EventEnvelope, SequenceSource};

const WORKERS: usize = 10;
const MIRRORS_PER_WORKER: usize = 5;
const EVENTS_PER_MIRROR: usize = 400;
const EVENTS: usize = WORKERS * MIRRORS_PER_WORKER * EVENTS_PER_MIRROR;
const WAIT: Duration = Duration::from_secs(180);

fn success(worker: &WorkerId, mirror: &MirrorName, seq: &SequenceSource) -> EventEnvelope {
    successful_run(worker, mirror, seq, uuid::Uuid::new_v4(), String::new())
}

/// The manager's `/metrics` sample values of `name`, by their `mirror` label.
fn samples(port: u16, ca: &Path, name: &str) -> Vec<(String, u64)> {
    let Some(text) = metrics(port, ca) else {
        return Vec::new();
    };
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter_map(|line| {
            let mirror = line
                .split("mirror=\"")
                .nth(1)?
                .split('"')
                .next()?
                .to_owned();
            let value = line.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
            Some((mirror, value))
        })
        .collect()
}

fn metrics(port: u16, ca: &Path) -> Option<String> {
    tunasync_e2e::site::try_get_text(&format!("https://localhost:{port}/metrics"), ca).ok()
}

fn applied(port: u16, ca: &Path) -> u64 {
    metrics(port, ca)
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("tunasync_events_applied_total "))
                .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        })
        .map_or(0, |value| value as u64)
}

#[test]
fn a_manager_killed_while_ingesting_loses_nothing_and_applies_nothing_twice() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let files = Files {
        dir,
        env: &env,
        namespace: "fault-ingest",
    };
    // The manager first, so that its queue exists; then it is stopped while the workers
    // publish, and the events wait in its queue.
    let (mut manager, port, _ctl) = files.start_manager("");
    // Its API answers before it has declared its queue: wait for the queue itself (the
    // workers' events would be unroutable otherwise).
    wait_for(WAIT, "the manager's queue", || {
        env.rabbitmqctl(&["list_queues", "--no-table-headers", "name"])
            .lines()
            .any(|name| name.trim() == "fault-ingest.manager")
    });
    manager.stop();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let confirmed: usize = runtime.block_on(async {
        let tasks: Vec<_> = (0..WORKERS)
            .map(|idx| {
                let config = env.tls_config("fault-ingest");
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let worker = WorkerId::new(format!("w{idx}")).unwrap();
                    let broker =
                        AmqpBroker::start(config, Role::Worker(worker.clone()), shutdown).unwrap();
                    broker
                        .wait_connected(Duration::from_secs(30))
                        .await
                        .unwrap();
                    let seq = SequenceSource::new();
                    let mirrors: Vec<MirrorName> = (0..MIRRORS_PER_WORKER)
                        .map(|m| MirrorName::new(format!("m{idx}-{m}")).unwrap())
                        .collect();
                    let mut confirmed = 0;
                    for _ in 0..EVENTS_PER_MIRROR {
                        for mirror in &mirrors {
                            let envelope = success(&worker, mirror, &seq);
                            // Each publish returns once the broker confirmed it.
                            broker.publish(Outgoing::event(&envelope)).await.unwrap();
                            confirmed += 1;
                        }
                    }
                    confirmed
                })
            })
            .collect();
        let mut confirmed = 0;
        for task in tasks {
            confirmed += task.await.unwrap();
        }
        confirmed
    });
    shutdown.cancel();
    let published_in = started.elapsed();
    assert_eq!(confirmed, EVENTS, "every event confirmed by the broker");

    // Started again, it ingests the backlog; SIGKILLed part of the way through.
    let conf = dir.join("manager.conf");
    let mut manager = Daemon::start(
        "manager",
        &["manager", "-c", conf.to_str().unwrap()],
        &dir.join("manager-2.log"),
    );
    let killed_after = {
        let deadline = Instant::now() + WAIT;
        loop {
            let applied = applied(port, &env.ca_cert);
            if applied >= 1000 {
                break applied;
            }
            assert!(Instant::now() < deadline, "the manager never ingested");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    manager.kill();
    assert!(
        (killed_after as usize) < EVENTS,
        "killed before the end of the backlog ({killed_after} applied)"
    );

    let _manager = Daemon::start(
        "manager",
        &["manager", "-c", conf.to_str().unwrap()],
        &dir.join("manager-3.log"),
    );
    let stored = |port| -> u64 {
        samples(
            port,
            &env.ca_cert,
            "tunasync_mirror_total_transferred_bytes",
        )
        .iter()
        .map(|(_, bytes)| bytes)
        .sum()
    };
    wait_for(WAIT, "every event in the store", || {
        stored(port) >= EVENTS as u64
    });
    let per_mirror = samples(
        port,
        &env.ca_cert,
        "tunasync_mirror_total_transferred_bytes",
    );
    assert_eq!(per_mirror.len(), WORKERS * MIRRORS_PER_WORKER);
    for (mirror, bytes) in &per_mirror {
        assert_eq!(*bytes, EVENTS_PER_MIRROR as u64, "{mirror}: events applied");
    }
    assert_eq!(stored(port), EVENTS as u64, "0 lost, 0 applied twice");
    // Nothing is left in the manager's queue.
    let queues = env.rabbitmqctl(&["list_queues", "--no-table-headers", "name", "messages"]);
    let left = queues
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .find(|(name, _)| *name == "fault-ingest.manager")
        .map(|(_, count)| count.trim().to_owned());
    assert_eq!(left.as_deref(), Some("0"), "{queues}");
    eprintln!(
        "fault ingest: {EVENTS} sent, {confirmed} confirmed in {published_in:?}, manager killed after {killed_after} applied, {} stored",
        stored(port)
    );
}

/// Whether process `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().next() != Some("Z"))
        })
        .unwrap_or(false)
}

/// A worker SIGKILLed while its job runs leaves the job's process group running (it is in
/// a group of its own); started again, the worker ends it before any new run.
#[test]
fn a_killed_workers_job_processes_are_ended_when_it_starts_again() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let files = Files {
        dir,
        env: &env,
        namespace: "fault-worker",
    };
    let (_manager, _port, ctl) = files.start_manager("");
    let conf = files.worker_conf(
        "w1",
        &files.plain_broker(),
        "[[mirrors]]\nname = \"slow\"\nprovider = \"command\"\ncommand = \"/bin/sleep 300\"\n",
    );
    let start_worker = |log: &str| {
        Daemon::start(
            "w1",
            &["worker", "-c", conf.to_str().unwrap()],
            &dir.join(log),
        )
    };
    let mut worker = start_worker("w1.log");
    tunasync_e2e::site::wait_status(&ctl, "w1", "slow", "syncing", WAIT);
    let pid_file = dir.join("log/w1/slow/.tunasync-job.pid");
    wait_for(WAIT, "the job's process group written down", || {
        pid_file.exists()
    });
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    worker.kill();
    assert!(alive(pid), "the job outlived its worker (the fault)");

    let worker = start_worker("w1-2.log");
    wait_for(WAIT, "the leftover ended", || !alive(pid));
    wait_for(WAIT, "a new run", || {
        worker.log_text().contains("start mirror=slow")
    });
    let log = worker.log_text();
    let ended = log
        .find("left by this worker's previous life still runs")
        .expect("the worker says what it ended");
    let started = log.find("start mirror=slow").unwrap();
    assert!(ended < started, "ended before any new run:\n{log}");
}

/// Runs `tunasync manager -c conf` expecting it to stop by itself: its exit status and
/// output.
fn manager_exits(conf: &Path) -> (std::process::ExitStatus, String) {
    let mut child = std::process::Command::new(tunasync_e2e::binary("tunasync"))
        .args(["manager", "-c"])
        .arg(conf)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the manager did not stop by itself");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (status, text)
}

/// A store file that is not a redb file, a truncated one, and one another manager holds:
/// a clear error at start-up naming the file, never a panic.
#[test]
fn a_corrupt_or_locked_store_is_a_clear_error() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let files = Files {
        dir,
        env: &env,
        namespace: "fault-store",
    };
    let (mut manager, port, _ctl) = files.start_manager("");
    let store = dir.join("state/tunasync.redb");

    // Held by the running manager.
    let conf = dir.join("manager.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let other = dir.join("other.conf");
    let second = text.replace(
        &format!("port = {port}"),
        &format!("port = {}", tunasync_e2e::site::free_port()),
    );
    std::fs::write(&other, second).unwrap();
    let (status, output) = manager_exits(&other);
    assert!(!status.success(), "{output}");
    assert!(
        output.contains(&store.display().to_string()) && !output.contains("panicked"),
        "{output}"
    );
    manager.stop();

    // Truncated to half: refused or repaired, never a panic.
    let bytes = std::fs::read(&store).unwrap();
    std::fs::write(&store, &bytes[..bytes.len() / 2]).unwrap();
    let mut truncated = std::process::Command::new(tunasync_e2e::binary("tunasync"))
        .args(["manager", "-c"])
        .arg(&conf)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let _ = truncated.kill();
    let output = truncated.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("panicked"), "{text}");

    // Not a redb file at all.
    std::fs::write(&store, b"this is not a database\n".repeat(100)).unwrap();
    let (status, output) = manager_exits(&conf);
    assert!(!status.success());
    assert!(
        output.contains("cannot open the store")
            && output.contains(&store.display().to_string())
            && output.contains("Not a redb database")
            && !output.contains("panicked"),
        "{output}"
    );
}
