//! The scale-out path: a 3-node RabbitMQ cluster on loopback, `queue_type = "quorum"` and a
//! `url` list in manager.conf and worker.conf. The node the manager, a real worker and two
//! publishers are connected to is SIGKILLed while they publish: they all move to another
//! node by themselves, every event the broker confirmed reaches the store (run ids checked
//! one by one), and the worker still takes commands. Its own test binary: it starts its
//! own three nodes (about 45 s).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tunasync_e2e::site::{self, Files, free_port};
use tunasync_e2e::{Daemon, tunasynctl, wait_for};
use tunasync_shared::broker::{AmqpBroker, Outgoing, QueueType, Role, Transport};
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::testkit::RabbitCluster;
use tunasync_shared::wire::event::{Event, JobStatus};
use tunasync_shared::wire::{EventEnvelope, SequenceSource};

const NAMESPACE: &str = "qc";
const PUBLISHERS: usize = 2;
const EVENTS_PER_PUBLISHER: usize = 300;
const WAIT: Duration = Duration::from_secs(180);

fn run(
    worker: &WorkerId,
    mirror: &MirrorName,
    seq: &SequenceSource,
    run_id: uuid::Uuid,
) -> EventEnvelope {
    EventEnvelope::new(
        worker.clone(),
        seq.next(),
        Event::Status(JobStatus {
            mirror: mirror.clone(),
            status: SyncStatus::Success,
            run_id,
            attempt: 1,
            at: GoTime::now_local(),
            upstream: "rsync://upstream.example.org/x/".into(),
            is_master: true,
            size: None,
            error_msg: String::new(),
            pooled: None,
            transferred_bytes: Some(1),
            ends_run: true,
        }),
    )
}

/// The port of each URL, as the daemons' logs show it (`amqps://guest:***@localhost:PORT/…`).
fn port_of(url: &str) -> String {
    url.rsplit(':')
        .next()
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Whether `log` says it connected to a node other than the first.
fn moved(log: &str, others: &[String]) -> bool {
    log.lines()
        .filter(|line| line.contains("connected to the broker"))
        .any(|line| {
            others
                .iter()
                .any(|port| line.contains(&format!("localhost:{port}/")))
        })
}

#[test]
fn a_killed_cluster_node_loses_no_confirmed_event_and_everyone_moves() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let cluster = RabbitCluster::start(&dir.join("rmq"), 3);
    let first = cluster.nodes[0].clone();
    let survivor = cluster.nodes[1].clone();
    let urls = cluster.urls();
    let others: Vec<String> = urls[1..].iter().map(|url| port_of(url)).collect();
    let files = Files {
        dir,
        env: &first,
        namespace: NAMESPACE,
    };
    let broker_section = format!(
        "[broker]\nurl = {urls:?}\nca_cert = {:?}\nnamespace = {NAMESPACE:?}\nqueue_type = \"quorum\"",
        first.ca_cert
    );

    let port = free_port();
    let conf = files.manager_conf_with(port, "30s", "\n[history]\nruns_per_job = 1000\n");
    let text = std::fs::read_to_string(&conf).unwrap().replace(
        &format!(
            "[broker]\nurl = {:?}\nca_cert = {:?}\nnamespace = {NAMESPACE:?}",
            first.amqps_url, first.ca_cert
        ),
        &broker_section,
    );
    assert!(text.contains("quorum"), "{text}");
    std::fs::write(&conf, text).unwrap();
    let manager = Daemon::start(
        "manager",
        &["manager", "-c", conf.to_str().unwrap()],
        &dir.join("manager.log"),
    );
    let ctl = files.ctl_conf(port);
    wait_for(WAIT, "the manager's quorum queue", || {
        first
            .rabbitmqctl(&["list_queues", "--no-table-headers", "name", "type"])
            .lines()
            .any(|line| {
                line.split_whitespace().collect::<Vec<_>>()
                    == [&format!("{NAMESPACE}.manager"), "quorum"]
            })
    });
    let worker_conf = files.worker_conf(
        "w1",
        &broker_section,
        "[[mirrors]]\nname = \"m\"\nprovider = \"command\"\ncommand = \"/bin/echo synced\"\n",
    );
    let worker = Daemon::start(
        "w1",
        &["worker", "-c", worker_conf.to_str().unwrap()],
        &dir.join("w1.log"),
    );
    site::wait_status(&ctl, "w1", "m", "success", WAIT);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let shutdown = CancellationToken::new();
    let confirmed: Arc<Mutex<BTreeSet<(String, String)>>> = Arc::default();
    let sent: Arc<Mutex<usize>> = Arc::default();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|idx| {
            let mut config = first.tls_config(NAMESPACE);
            config.urls = urls.clone();
            config.queue_type = QueueType::Quorum;
            let (shutdown, confirmed, sent) = (shutdown.clone(), confirmed.clone(), sent.clone());
            runtime.spawn(async move {
                let worker = WorkerId::new(format!("p{idx}")).unwrap();
                let mirror = MirrorName::new(format!("m{idx}")).unwrap();
                let broker =
                    AmqpBroker::start(config, Role::Worker(worker.clone()), shutdown).unwrap();
                broker
                    .wait_connected(Duration::from_secs(30))
                    .await
                    .unwrap();
                let seq = SequenceSource::new();
                for _ in 0..EVENTS_PER_PUBLISHER {
                    let run_id = uuid::Uuid::new_v4();
                    let envelope = run(&worker, &mirror, &seq, run_id);
                    *sent.lock().unwrap() += 1;
                    // As a worker's outbox does: the same event again until it is confirmed.
                    let deadline = Instant::now() + WAIT;
                    while let Err(err) = broker.publish(Outgoing::event(&envelope)).await {
                        eprintln!("p{idx}: publish failed: {err}");
                        assert!(Instant::now() < deadline, "never confirmed again");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    confirmed
                        .lock()
                        .unwrap()
                        .insert((worker.to_string(), run_id.to_string()));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    wait_for(WAIT, "some events confirmed", || {
        confirmed.lock().unwrap().len() >= 100
    });
    first.kill_broker();
    let confirmed_before = confirmed.lock().unwrap().len();
    runtime.block_on(async {
        for publisher in publishers {
            publisher.await.unwrap();
        }
    });
    shutdown.cancel();

    let ca = first.ca_cert.clone();
    let history = |worker: &str, mirror: &str| -> Vec<String> {
        let url = format!("https://localhost:{port}/jobs/{worker}/{mirror}/history");
        site::try_get_json(&url, &ca)
            .unwrap_or_default()
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|run| run["run_id"].as_str().map(str::to_owned))
            .collect()
    };
    let stored = || -> BTreeSet<(String, String)> {
        (0..PUBLISHERS)
            .flat_map(|idx| {
                history(&format!("p{idx}"), &format!("m{idx}"))
                    .into_iter()
                    .map(move |run| (format!("p{idx}"), run))
            })
            .collect()
    };
    let confirmed = confirmed.lock().unwrap().clone();
    assert_eq!(confirmed.len(), PUBLISHERS * EVENTS_PER_PUBLISHER);
    let deadline = Instant::now() + WAIT;
    loop {
        let missing: Vec<_> = confirmed.difference(&stored()).cloned().collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let queues = survivor.rabbitmqctl(&[
                "list_queues",
                "name",
                "type",
                "leader",
                "messages",
                "messages_unacknowledged",
                "consumers",
            ]);
            let log = manager.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            panic!(
                "{} confirmed events are not in the store, e.g. {:?}\nqueues:\n{queues}\nmanager log (newest first):\n{}",
                missing.len(),
                &missing[..missing.len().min(5)],
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // The manager and the worker moved to a surviving node by themselves, and a command
    // still reaches the worker (its quorum queue lives on): a second run.
    wait_for(WAIT, "the manager on another node", || {
        moved(&manager.log_text(), &others)
    });
    wait_for(WAIT, "the worker on another node", || {
        moved(&worker.log_text(), &others)
    });
    wait_for(WAIT, "tunasynctl to reach the worker again", || {
        tunasynctl(&ctl, &["start", "-w", "w1", "m"])
            .status
            .success()
    });
    wait_for(WAIT, "the worker's second run", || {
        history("w1", "m").len() >= 2
    });
    wait_for(WAIT, "the manager's queue drained", || {
        survivor
            .rabbitmqctl(&["list_queues", "--no-table-headers", "name", "messages"])
            .lines()
            .any(|line| {
                line.split_whitespace().collect::<Vec<_>>()
                    == [&format!("{NAMESPACE}.manager"), "0"]
            })
    });
    eprintln!(
        "fault cluster: {} sent, {} confirmed ({confirmed_before} before node 0 was killed), {} stored",
        *sent.lock().unwrap(),
        confirmed.len(),
        stored().len()
    );
}
