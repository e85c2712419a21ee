//! The benchmark rows. Each sets up what it needs, measures, and returns table rows.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio_util::sync::CancellationToken;
use tunasync_shared::broker::{Outgoing, QueueRole, Role, Transport, ack_batch};
use tunasync_shared::names::WorkerId;
use tunasync_shared::status::SyncStatus;
use tunasync_shared::testkit::{BrokerEnv, RsyncDaemon, unique_namespace};
use tunasync_shared::wire::command::Command;
use tunasync_shared::wire::event::{CmdOutcome, CmdResult, Event, Hello};
use tunasync_shared::wire::{CommandEnvelope, EventEnvelope, SequenceSource};

use crate::Row;
use crate::setup::{self, Child};

/// tunasync v0.10.0's `GET /jobs` with 1000 statuses on a machine like ours, and the day it
/// was measured (reference/peers.md, appendix: the latest measurement). Measured on another
/// day or machine, set `BENCH_TUNASYNC_JOBS_RPS` (and `BENCH_TUNASYNC_JOBS_DAY`).
const TUNASYNC_JOBS_RPS: f64 = 256.0;
const TUNASYNC_JOBS_DAY: &str = "2026-12-01";

/// The anchor of the gzip rows: tunasync's figure and its day.
pub(crate) fn tunasync_jobs_anchor() -> (f64, String) {
    let rps = std::env::var("BENCH_TUNASYNC_JOBS_RPS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(TUNASYNC_JOBS_RPS);
    let day = std::env::var("BENCH_TUNASYNC_JOBS_DAY").unwrap_or_else(|_| {
        if rps == TUNASYNC_JOBS_RPS {
            TUNASYNC_JOBS_DAY.to_owned()
        } else {
            "day not given".to_owned()
        }
    });
    (rps, day)
}
const TUNASYNC_RSS_MB: f64 = 23.0;
const WRK_SECONDS: u64 = 5;

pub(crate) fn ratio(figure: f64, baseline: f64) -> String {
    if baseline > 0.0 {
        format!("{:.2}×", figure / baseline)
    } else {
        "–".to_owned()
    }
}

pub(crate) async fn feed_jobs(
    env: &BrokerEnv,
    namespace: &str,
    n_jobs: usize,
    manager: &tunasync_manager::Running,
) {
    let shutdown = CancellationToken::new();
    let publisher = setup::publisher(env, namespace, &shutdown).await;
    let seq = SequenceSource::new();
    let n_workers = 10;
    let envelopes: Vec<EventEnvelope> = (0..n_jobs)
        .map(|idx| {
            let worker =
                WorkerId::new(format!("worker-{:02}", idx % n_workers)).expect("a worker id");
            setup::status_event(&worker, idx, SyncStatus::Success, &seq)
        })
        .collect();
    let before = manager.events_applied();
    setup::publish_all(&publisher, envelopes, 64).await;
    while manager.events_applied() < before + n_jobs as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
}

/// A server that answers every request with `body` from memory: the ceiling for that body.
async fn baseline_server(
    body: Bytes,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
) -> (String, axum_server::Handle<std::net::SocketAddr>) {
    let app = axum::Router::new().route(
        "/jobs",
        axum::routing::get(move || {
            let body = body.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/json; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("an address").port();
    let handle = axum_server::Handle::<std::net::SocketAddr>::new();
    let served = handle.clone();
    let scheme = match tls {
        Some((cert, key)) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .expect("TLS config");
            tokio::spawn(async move {
                let _ = axum_server::from_tcp_rustls(listener, config)
                    .expect("a server")
                    .handle(served)
                    .serve(app.into_make_service())
                    .await;
            });
            "https"
        }
        None => {
            tokio::spawn(async move {
                let _ = axum_server::from_tcp(listener)
                    .expect("a server")
                    .handle(served)
                    .serve(app.into_make_service())
                    .await;
            });
            "http"
        }
    };
    (format!("{scheme}://localhost:{port}/jobs"), handle)
}

/// `GET /jobs` with N jobs: the manager vs a handler returning the same bytes from memory,
/// over HTTP and HTTPS, and with gzip against tunasync's figure.
pub async fn get_jobs(sizes: &[usize]) -> Vec<Row> {
    let env = BrokerEnv::get();
    let (anchor_rps, anchor_day) = tunasync_jobs_anchor();
    let mut rows = Vec::new();
    for &n_jobs in sizes {
        for tls in [false, true] {
            let transport = if tls { "HTTPS" } else { "HTTP" };
            let manager = setup::start_manager(&env, None, tls).await;
            feed_jobs(&env, &manager.namespace, n_jobs, &manager.running).await;
            let client = setup::ca_client(&env).expect("an HTTPS client");
            let response = client
                .get(format!("{}/jobs", manager.url))
                .send()
                .await
                .expect("GET /jobs");
            let etag = response
                .headers()
                .get("etag")
                .and_then(|tag| tag.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = response.bytes().await.expect("a body");
            let tls_files = tls.then(|| (env.server_cert.clone(), env.server_key.clone()));
            let (baseline_url, handle) = baseline_server(body.clone(), tls_files).await;
            let jobs_url = format!("{}/jobs", manager.url);
            let ours =
                tokio::task::spawn_blocking(move || setup::wrk(&jobs_url, 32, WRK_SECONDS, &[]))
                    .await
                    .expect("wrk");
            let ceiling = tokio::task::spawn_blocking(move || {
                setup::wrk(&baseline_url, 32, WRK_SECONDS, &[])
            })
            .await
            .expect("wrk");
            rows.push(Row {
                what: format!(
                    "GET /jobs, {n_jobs} jobs ({} KB), {transport}, 32 conns",
                    body.len() / 1024
                ),
                figure: format!("{ours:.0} req/s"),
                baseline: format!("{ceiling:.0} req/s (same bytes from memory)"),
                ratio: ratio(ours, ceiling),
                target: "≥ 0.9×".into(),
            });
            let jobs_url = format!("{}/jobs", manager.url);
            let gzip = tokio::task::spawn_blocking(move || {
                setup::wrk(&jobs_url, 32, WRK_SECONDS, &["Accept-Encoding: gzip"])
            })
            .await
            .expect("wrk");
            rows.push(Row {
                what: format!("GET /jobs, {n_jobs} jobs, {transport}, gzip"),
                figure: format!("{gzip:.0} req/s"),
                baseline: format!(
                    "tunasync {anchor_rps:.0} req/s (1000 jobs, HTTP, measured {anchor_day})"
                ),
                ratio: ratio(gzip, anchor_rps),
                target: "≥ 100×".into(),
            });
            let jobs_url = format!("{}/jobs", manager.url);
            let header = format!("If-None-Match: {etag}");
            let unchanged = tokio::task::spawn_blocking(move || {
                setup::wrk(&jobs_url, 32, WRK_SECONDS, &[header.as_str()])
            })
            .await
            .expect("wrk");
            rows.push(Row {
                what: format!("GET /jobs, {n_jobs} jobs, {transport}, If-None-Match → 304"),
                figure: format!("{unchanged:.0} req/s"),
                baseline: format!("{ours:.0} req/s (the 200 path above)"),
                ratio: ratio(unchanged, ours),
                target: "> 1×".into(),
            });
            handle.shutdown();
            manager.shutdown.cancel();
            let _ = manager.running.wait().await;
        }
    }
    rows
}

/// Status events from many workers, waiting in the queue: drained and committed by the
/// manager vs drained and acked by a bare consumer.
pub async fn events_persisted(n_events: usize) -> Vec<Row> {
    let env = BrokerEnv::get();
    let shutdown = CancellationToken::new();
    let n_workers = 100;
    // `with_progress`: a `progress` event of the same job after each status event.
    let build_with = |with_progress: bool| {
        let seq = SequenceSource::new();
        (0..n_events)
            .flat_map(|idx| {
                let worker =
                    WorkerId::new(format!("sim-{:03}", idx % n_workers)).expect("a worker id");
                let status = [
                    SyncStatus::PreSyncing,
                    SyncStatus::Syncing,
                    SyncStatus::Success,
                ][idx / n_workers % 3];
                let mirror = idx / n_workers / 3;
                let first = setup::status_event(&worker, mirror, status, &seq);
                // Of the run the status event belongs to: applied while it is running.
                let run_id = match &first.event {
                    Event::Status(status) => status.run_id,
                    _ => uuid::Uuid::nil(),
                };
                let progress = with_progress
                    .then(|| setup::progress_event(&worker, mirror, run_id, seq.next()));
                std::iter::once(first).chain(progress)
            })
            .collect::<Vec<_>>()
    };
    let build = || build_with(false);

    // Bare consumer: the broker's own delivery + ack rate for the same messages.
    let bare_namespace = unique_namespace("bare");
    let declarer = setup::connected(&env, &bare_namespace, Role::Manager, &shutdown).await;
    setup::publish_all(&declarer, build(), 64).await;
    let mut subscription = declarer
        .subscribe(QueueRole::Manager, 2000)
        .await
        .expect("a subscription");
    let started = Instant::now();
    let mut received = 0;
    while received < n_events {
        let Some(first) = subscription.next().await else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < 1000 {
            match subscription.try_next() {
                Some(incoming) => batch.push(incoming),
                None => break,
            }
        }
        received += batch.len();
        ack_batch(&batch).await.expect("acks");
    }
    let bare_rate = n_events as f64 / started.elapsed().as_secs_f64();

    // The manager: decode, apply, commit to redb, ack after the commit.
    let rate = manager_rate(&env, build(), &shutdown).await;
    // The same, with a `progress` event from the same worker after each status event (far
    // more than the one per running job every 5 s that workers send).
    let mixed = build_with(true);
    let n_mixed = mixed.len();
    let mixed_rate = manager_rate(&env, mixed, &shutdown).await;
    shutdown.cancel();
    vec![
        Row {
            what: format!(
                "status events persisted ({n_events} from {n_workers} workers, TLS, ack after commit)"
            ),
            figure: format!("{rate:.0} events/s"),
            baseline: format!("{bare_rate:.0} msg/s (bare consumer, same broker)"),
            ratio: ratio(rate, bare_rate),
            target: "≥ 20,000/s and ≥ 0.8×".into(),
        },
        Row {
            what: format!(
                "the same with a progress event after each status event ({n_mixed} events)"
            ),
            figure: format!("{mixed_rate:.0} events/s"),
            baseline: format!("{rate:.0} events/s (status events only, above)"),
            ratio: ratio(mixed_rate, rate),
            target: "≥ 0.9×".into(),
        },
    ]
}

/// How fast a manager drains `envelopes`, waiting in its queue, into the store (timed from
/// the moment it is ready, like the bare consumer; what it applied while starting up is
/// not counted).
async fn manager_rate(
    env: &BrokerEnv,
    envelopes: Vec<EventEnvelope>,
    shutdown: &CancellationToken,
) -> f64 {
    let n_events = envelopes.len();
    let namespace = unique_namespace("persist");
    let declarer = setup::connected(env, &namespace, Role::Manager, shutdown).await;
    setup::publish_all(&declarer, envelopes, 64).await;
    let manager = setup::start_manager(env, Some(namespace), false).await;
    let started = Instant::now();
    let applied_before = manager.running.events_applied();
    while manager.running.events_applied() < n_events as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = (n_events as u64 - applied_before) as f64 / started.elapsed().as_secs_f64();
    manager.shutdown.cancel();
    let _ = manager.running.wait().await;
    rate
}

/// `POST /cmd` until the worker's `cmd-result`, with a worker that answers at once.
pub async fn command_round_trip(n_commands: usize) -> Vec<Row> {
    let env = BrokerEnv::get();
    let manager = setup::start_manager(&env, None, false).await;
    let shutdown = CancellationToken::new();
    let worker_id = WorkerId::new("bench-worker").expect("a worker id");
    let worker = setup::connected(
        &env,
        &manager.namespace,
        Role::Worker(worker_id.clone()),
        &shutdown,
    )
    .await;
    let seq = std::sync::Arc::new(SequenceSource::new());
    let mut commands = worker
        .subscribe(QueueRole::Worker(worker_id.clone()), 16)
        .await
        .expect("a subscription");
    {
        let worker = worker.clone();
        let worker_id = worker_id.clone();
        let seq = seq.clone();
        tokio::spawn(async move {
            while let Some(incoming) = commands.next().await {
                let _ = incoming.ack().await;
                let Ok(envelope) = CommandEnvelope::decode(&incoming.payload) else {
                    continue;
                };
                if matches!(envelope.command, Command::Welcome(_)) {
                    continue;
                }
                let reply = Event::CmdResult(CmdResult {
                    cmd_id: envelope.header.id,
                    cmd: envelope.command.kind(),
                    mirror: None,
                    outcome: CmdOutcome::Accepted,
                });
                let _ = worker
                    .publish(Outgoing::event(&EventEnvelope::new(
                        worker_id.clone(),
                        seq.next(),
                        reply,
                    )))
                    .await;
            }
        });
    }
    let hello = Event::Hello(Hello {
        version: "bench".into(),
        host: "bench".into(),
        session: uuid::Uuid::new_v4(),
        heartbeat_interval_secs: 10,
        jobs: vec![],
    });
    worker
        .publish(Outgoing::event(&EventEnvelope::new(
            worker_id.clone(),
            seq.next(),
            hello,
        )))
        .await
        .expect("hello");
    let client = reqwest::Client::new();
    let body = serde_json::json!({"cmd": "ping", "mirror_id": "", "worker_id": "bench-worker"});
    let url = format!("{}/cmd", manager.url);
    // Until the worker is registered.
    while client
        .post(&url)
        .json(&body)
        .send()
        .await
        .map(|response| response.status() != 200)
        .unwrap_or(true)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut latencies = Vec::with_capacity(n_commands);
    for _ in 0..n_commands {
        let started = Instant::now();
        let response = client
            .post(&url)
            .json(&body)
            .send()
            .await
            .expect("POST /cmd");
        assert_eq!(response.status(), 200);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    shutdown.cancel();
    manager.shutdown.cancel();
    let _ = manager.running.wait().await;
    vec![Row {
        what: format!("POST /cmd → worker's cmd-result, {n_commands} sequential, loopback"),
        figure: format!(
            "p50 {:.1} ms, p99 {:.1} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        ),
        baseline: "–".into(),
        ratio: "–".into(),
        target: "p99 < 50 ms".into(),
    }]
}

fn rsync_tree(root: &std::path::Path, n_files: usize) {
    for idx in 0..n_files {
        let dir = root.join(format!("d{:03}", idx / 200));
        if idx % 200 == 0 {
            std::fs::create_dir_all(&dir).expect("a directory");
        }
        std::fs::write(
            dir.join(format!("f{idx:05}")),
            format!("{idx}\n").repeat(idx % 64 + 1),
        )
        .expect("a file");
    }
}

/// A worker-run rsync job vs the same command by hand, from a local rsync daemon.
pub async fn rsync_job(n_files: usize) -> Vec<Row> {
    let env = BrokerEnv::get();
    let dir = tempfile::tempdir().expect("a temp dir");
    let upstream = dir.path().join("upstream");
    rsync_tree(&upstream, n_files);
    let daemon = RsyncDaemon::start(&upstream);
    let manager = setup::start_manager(&env, None, false).await;
    let conf = dir.path().join("worker.conf");
    std::fs::write(
        &conf,
        format!(
            "[broker]\nurl = {:?}\nca_cert = {:?}\nnamespace = {:?}\n[global]\nname = \"rsync-bench\"\nlog_dir = \"{root}/log/{{{{.Name}}}}\"\n\
             mirror_dir = \"{root}/data\"\ninterval = 1440\n[[mirrors]]\nname = \"tree\"\nupstream = \"{url}\"\n",
            env.amqps_url,
            env.ca_cert,
            manager.namespace,
            root = dir.path().display(),
            url = daemon.url()
        ),
    )
    .expect("a config");
    let check = std::process::Command::new(setup::binary("tunasync"))
        .args(["worker", "--check", "-c", conf.to_str().expect("a path")])
        .output()
        .expect("tunasync worker --check");
    let jobs: Vec<serde_json::Value> = serde_json::from_slice(&check.stdout).expect("--check JSON");
    let argv: Vec<String> = jobs[0]["argv"]
        .as_array()
        .expect("argv")
        .iter()
        .map(|arg| arg.as_str().unwrap_or_default().to_owned())
        .collect();
    // By hand: warm the page cache once, then time the same argv into a fresh directory.
    let by_hand = |target: &std::path::Path| {
        let mut args = argv.clone();
        let last = args.len() - 1;
        args[last] = target.display().to_string();
        let started = Instant::now();
        let status = std::process::Command::new(&args[0])
            .args(&args[1..])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("rsync");
        assert!(status.success());
        started.elapsed()
    };
    by_hand(&dir.path().join("warm"));
    let hand = by_hand(&dir.path().join("by-hand"));
    let started = Instant::now();
    let child = setup::tunasync(&["worker", "-c", conf.to_str().expect("a path")]);
    let client = reqwest::Client::new();
    let history_url = format!("{}/jobs/rsync-bench/tree/history", manager.url);
    let run = loop {
        if let Ok(response) = client.get(&history_url).send().await
            && let Ok(runs) = response.json::<Vec<serde_json::Value>>().await
            && let Some(run) = runs.first()
            && run["result"] == "success"
        {
            break run.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the rsync job did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let parse = |field: &str| chrono_seconds(run[field].as_str().unwrap_or_default());
    let job = Duration::from_secs_f64((parse("ended") - parse("started")).max(0.0));
    drop(child);
    manager.shutdown.cancel();
    let _ = manager.running.wait().await;
    vec![Row {
        what: format!("rsync job, {n_files}-file tree from a local daemon (pre-syncing → success)"),
        figure: format!("{:.2} s", job.as_secs_f64()),
        baseline: format!("{:.2} s (same argv by hand)", hand.as_secs_f64()),
        ratio: ratio(job.as_secs_f64(), hand.as_secs_f64()),
        target: "≤ 1.05×".into(),
    }]
}

pub(crate) fn chrono_seconds(text: &str) -> f64 {
    tunasync_shared::gotime::GoTime::parse_rfc3339(text)
        .map(|time| {
            let at = time.as_datetime();
            at.timestamp() as f64 + f64::from(at.timestamp_subsec_nanos()) / 1e9
        })
        .unwrap_or(0.0)
}

pub(crate) struct ManagerProcess {
    pub child: Child,
    pub url: String,
    conf: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl ManagerProcess {
    /// Stops the manager with SIGTERM, waits for it to exit, and starts it again on the
    /// same store.
    pub fn restart(&mut self) {
        let pid = self.child.0.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let _ = self.child.0.wait();
        self.child = setup::tunasync(&["manager", "-c", self.conf.to_str().expect("a path")]);
    }
}

pub(crate) fn manager_process(env: &BrokerEnv, namespace: &str) -> ManagerProcess {
    let dir = tempfile::tempdir().expect("a temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("addr")
        .port();
    let text = format!(
        "[server]\nport = {port}\n{}",
        setup::manager_config(env, namespace, dir.path(), false)
    );
    let conf = dir.path().join("manager.conf");
    std::fs::write(&conf, text).expect("a config");
    let child = setup::tunasync(&["manager", "-c", conf.to_str().expect("a path")]);
    ManagerProcess {
        child,
        url: format!("http://127.0.0.1:{port}"),
        conf,
        _dir: dir,
    }
}

async fn wait_jobs(url: &str, n_jobs: usize) {
    let client = reqwest::Client::new();
    loop {
        if let Ok(response) = client.get(format!("{url}/jobs")).send().await
            && let Ok(jobs) = response.json::<Vec<serde_json::Value>>().await
            && jobs.len() >= n_jobs
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Idle resident memory of the release binaries: a manager with N jobs stored, a worker
/// with M jobs.
pub async fn idle_rss(n_manager_jobs: usize, n_worker_jobs: usize) -> Vec<Row> {
    let env = BrokerEnv::get();
    let namespace = unique_namespace("rss");
    let manager = manager_process(&env, &namespace);
    let shutdown = CancellationToken::new();
    let publisher = setup::publisher(&env, &namespace, &shutdown).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seq = SequenceSource::new();
    let envelopes = (0..n_manager_jobs)
        .map(|idx| {
            setup::status_event(
                &WorkerId::new(format!("w{}", idx % 10)).expect("id"),
                idx,
                SyncStatus::Success,
                &seq,
            )
        })
        .collect();
    setup::publish_all(&publisher, envelopes, 32).await;
    wait_jobs(&manager.url, n_manager_jobs).await;

    let dir = tempfile::tempdir().expect("a temp dir");
    let mut conf = format!(
        "[broker]\nurl = {:?}\nca_cert = {:?}\nnamespace = {namespace:?}\n[global]\nname = \"rss-worker\"\nlog_dir = \"{root}/log/{{{{.Name}}}}\"\nmirror_dir = \"{root}/data\"\ninterval = 1440\n",
        env.amqps_url,
        env.ca_cert,
        root = dir.path().display()
    );
    for idx in 0..n_worker_jobs {
        conf.push_str(&format!(
            "[[mirrors]]\nname = \"job-{idx}\"\nprovider = \"command\"\ncommand = \"/bin/true\"\n"
        ));
    }
    let path = dir.path().join("worker.conf");
    std::fs::write(&path, conf).expect("a config");
    let worker = setup::tunasync(&["worker", "-c", path.to_str().expect("a path")]);
    wait_jobs(&manager.url, n_manager_jobs + n_worker_jobs).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (manager_mb, manager_text) = setup::rss_text(manager.child.0.id());
    let (worker_mb, worker_text) = setup::rss_text(worker.0.id());
    shutdown.cancel();
    vec![
        Row {
            what: format!("idle RSS, manager, {n_manager_jobs} jobs stored"),
            figure: manager_text,
            baseline: format!("tunasync {TUNASYNC_RSS_MB:.0} MB"),
            ratio: ratio(manager_mb, TUNASYNC_RSS_MB),
            target: "≤ 10 MB".into(),
        },
        Row {
            what: format!("idle RSS, worker, {n_worker_jobs} jobs"),
            figure: worker_text,
            baseline: format!("tunasync {TUNASYNC_RSS_MB:.0} MB"),
            ratio: ratio(worker_mb, TUNASYNC_RSS_MB),
            target: "≤ 6 MB".into(),
        },
    ]
}

/// Manager CPU while N simulated workers with M jobs each send heartbeats every 10 s.
pub async fn heartbeat_cpu(n_workers: usize, n_jobs: usize, window: Duration) -> Vec<Row> {
    let env = BrokerEnv::get();
    let namespace = unique_namespace("beats");
    let manager = manager_process(&env, &namespace);
    let shutdown = CancellationToken::new();
    let publisher = setup::publisher(&env, &namespace, &shutdown).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seq = std::sync::Arc::new(SequenceSource::new());
    let sessions = setup::new_sessions(n_workers);
    setup::publish_all(&publisher, setup::hellos(&sessions, n_jobs, &seq), 32).await;
    wait_jobs(&manager.url, n_workers * n_jobs).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = manager.child.0.id();
    let cpu_before = setup::cpu_seconds(pid);
    let started = Instant::now();
    let stop = CancellationToken::new();
    let beats = tokio::spawn(setup::heartbeats(
        publisher.clone(),
        sessions,
        seq,
        stop.clone(),
    ));
    tokio::time::sleep(window).await;
    stop.cancel();
    let _ = beats.await;
    let cpu = setup::cpu_seconds(pid) - cpu_before;
    let elapsed = started.elapsed().as_secs_f64();
    shutdown.cancel();
    vec![Row {
        what: format!("{n_workers} simulated workers × {n_jobs} jobs, heartbeats every 10 s"),
        figure: format!("{:.1}% of one core", cpu / elapsed * 100.0),
        baseline: "–".into(),
        ratio: "–".into(),
        target: "< 10%".into(),
    }]
}
