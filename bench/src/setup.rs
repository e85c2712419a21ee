//! What the rows need: managers (in-process and as a binary), simulated workers, wrk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tunasync_manager::config::{ManagerConfig, Overrides};
use tunasync_shared::broker::{AmqpBroker, Outgoing, Role, Transport};
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::testkit::{BrokerEnv, unique_namespace};
use tunasync_shared::wire::event::{
    Event, Heartbeat, Hello, JobProgress, JobSnapshot, JobStatus, ProviderKind,
};
use tunasync_shared::wire::{EventEnvelope, SequenceSource};

/// A manager running in this process.
pub struct InProcess {
    pub running: tunasync_manager::Running,
    pub url: String,
    pub namespace: String,
    pub shutdown: CancellationToken,
    pub _dir: tempfile::TempDir,
}

pub fn manager_config(env: &BrokerEnv, namespace: &str, dir: &Path, tls: bool) -> String {
    let mut text = String::new();
    if tls {
        text.push_str(&format!(
            "[server]\nssl_cert = {:?}\nssl_key = {:?}\n",
            env.server_cert, env.server_key
        ));
    }
    text.push_str(&format!(
        "[files]\ndb_file = {:?}\n[broker]\nurl = {:?}\nca_cert = {:?}\nnamespace = {namespace:?}\n\
         [auth]\ntrusted_networks = [\"127.0.0.0/8\"]\n",
        dir.join("bench.redb"),
        env.amqps_url,
        env.ca_cert
    ));
    text
}

pub async fn start_manager(env: &BrokerEnv, namespace: Option<String>, tls: bool) -> InProcess {
    let dir = tempfile::tempdir().expect("a temp dir");
    let namespace = namespace.unwrap_or_else(|| unique_namespace("bench"));
    let text = manager_config(env, &namespace, dir.path(), tls);
    let config = ManagerConfig::parse(&text, Path::new("bench.conf"), &Overrides::default())
        .expect("a valid manager config")
        .config;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let shutdown = CancellationToken::new();
    let running = tunasync_manager::start(config, Some(listener), shutdown.clone())
        .await
        .expect("the manager starts");
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://localhost:{}", running.local_addr.port());
    // Ready means connected to the broker with the topology declared.
    let client = ca_client(env).expect("an HTTPS client");
    while !client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .is_ok_and(|response| response.status() == 200)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    InProcess {
        running,
        url,
        namespace,
        shutdown,
        _dir: dir,
    }
}

/// An HTTP client that trusts the test CA (the managers' certificates).
pub fn ca_client(env: &BrokerEnv) -> Result<reqwest::Client, String> {
    let ca = std::fs::read(&env.ca_cert).map_err(|err| format!("the CA: {err}"))?;
    let ca = reqwest::Certificate::from_pem(&ca).map_err(|err| format!("the CA: {err}"))?;
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .map_err(|err| format!("a client: {err}"))
}

/// A broker client that publishes events as simulated workers would.
pub async fn publisher(
    env: &BrokerEnv,
    namespace: &str,
    shutdown: &CancellationToken,
) -> AmqpBroker {
    connected(env, namespace, Role::Client, shutdown).await
}

/// A broker client in `role`, once it is connected (the topology is then declared).
pub async fn connected(
    env: &BrokerEnv,
    namespace: &str,
    role: Role,
    shutdown: &CancellationToken,
) -> AmqpBroker {
    let broker = AmqpBroker::start(env.tls_config(namespace), role, shutdown.clone())
        .expect("broker settings");
    broker
        .wait_connected(Duration::from_secs(30))
        .await
        .expect("the broker");
    broker
}

/// A simulated worker's `hello` for a new `session`, with `n_jobs` jobs.
pub fn hello_event(
    worker: &WorkerId,
    session: uuid::Uuid,
    n_jobs: usize,
    seq: &SequenceSource,
) -> EventEnvelope {
    EventEnvelope::new(
        worker.clone(),
        seq.next(),
        Event::Hello(Hello {
            version: "bench".into(),
            host: "sim".into(),
            session,
            heartbeat_interval_secs: 10,
            jobs: (0..n_jobs).map(snapshot).collect(),
        }),
    )
}

/// A simulated worker's heartbeat in `session`.
pub fn heartbeat_event(
    worker: &WorkerId,
    session: uuid::Uuid,
    seq: &SequenceSource,
) -> EventEnvelope {
    EventEnvelope::new(
        worker.clone(),
        seq.next(),
        Event::Heartbeat(Heartbeat {
            session,
            interval_secs: 10,
            running: vec![],
            free_slots: None,
        }),
    )
}

/// Every simulated worker's `hello` in `sessions` (one per worker).
pub fn hellos(
    sessions: &[uuid::Uuid],
    jobs_per_worker: usize,
    seq: &SequenceSource,
) -> Vec<EventEnvelope> {
    sessions
        .iter()
        .enumerate()
        .map(|(idx, session)| hello_event(&sim_worker(idx), *session, jobs_per_worker, seq))
        .collect()
}

pub fn new_sessions(n_workers: usize) -> Arc<Vec<uuid::Uuid>> {
    Arc::new((0..n_workers).map(|_| uuid::Uuid::new_v4()).collect())
}

/// Heartbeats of every simulated worker in `sessions`, each every 10 s (a tenth of them
/// each second), until cancelled.
pub async fn heartbeats(
    publisher: AmqpBroker,
    sessions: Arc<Vec<uuid::Uuid>>,
    seq: Arc<SequenceSource>,
    stop: CancellationToken,
) {
    let started = Instant::now();
    let mut round = 0u64;
    while !stop.is_cancelled() {
        let beats: Vec<EventEnvelope> = sessions
            .iter()
            .enumerate()
            .filter(|(idx, _)| (*idx as u64 + round).is_multiple_of(10))
            .map(|(idx, session)| heartbeat_event(&sim_worker(idx), *session, &seq))
            .collect();
        publish_all(&publisher, beats, 16).await;
        round += 1;
        let next = Duration::from_secs(round);
        if let Some(wait) = next.checked_sub(started.elapsed()) {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// A simulated worker's name.
pub fn sim_worker(idx: usize) -> WorkerId {
    WorkerId::new(format!("sim-{idx:04}")).expect("a worker id")
}

/// A job as a simulated worker's `hello` describes it.
pub fn snapshot(idx: usize) -> JobSnapshot {
    JobSnapshot {
        mirror: MirrorName::new(format!("mirror-{idx:05}")).expect("a name"),
        provider: ProviderKind::Rsync,
        upstream: format!("rsync://upstream.example.org/m{idx}/"),
        is_master: true,
        interval_minutes: 60,
        cron: None,
        jitter_secs: 0,
        status: SyncStatus::Success,
        run_id: None,
        last_update: GoTime::now_local(),
        last_started: GoTime::now_local(),
        last_ended: GoTime::now_local(),
        next_schedule: GoTime::ZERO,
        size: Some("1.5G".into()),
        error_msg: String::new(),
        pool: None,
        fingerprint: None,
        url: None,
        desc: None,
        rules: Default::default(),
    }
}

pub fn status_event(
    worker: &WorkerId,
    mirror: usize,
    status: SyncStatus,
    seq: &SequenceSource,
) -> EventEnvelope {
    EventEnvelope::new(
        worker.clone(),
        seq.next(),
        Event::Status(JobStatus {
            mirror: MirrorName::new(format!("mirror-{mirror:05}")).expect("a mirror name"),
            status,
            run_id: uuid::Uuid::new_v4(),
            attempt: 1,
            at: GoTime::now_local(),
            upstream: format!("rsync://upstream.example.org/mirror-{mirror:05}/"),
            is_master: true,
            size: (status == SyncStatus::Success)
                .then(|| format!("{}.{}G", mirror % 900, mirror % 10)),
            error_msg: String::new(),
            pooled: None,
            transferred_bytes: None,
            ends_run: false,
        }),
    )
}

/// A `progress` event of run `run_id` of `worker`'s `mirror`, numbered `seq`.
pub fn progress_event(
    worker: &WorkerId,
    mirror: usize,
    run_id: uuid::Uuid,
    seq: u64,
) -> EventEnvelope {
    EventEnvelope::new(
        worker.clone(),
        seq,
        Event::Progress(JobProgress {
            mirror: MirrorName::new(format!("mirror-{mirror:05}")).expect("a mirror name"),
            run_id,
            attempt: 1,
            running_secs: 60,
            log_bytes: 4096,
            log_lines: 100,
            files: Some(50),
            transferred_bytes: None,
            percent: None,
        }),
    )
}

/// Publishes `envelopes` with `parallel` publishers in flight (each waits for its confirm).
pub async fn publish_all(broker: &AmqpBroker, envelopes: Vec<EventEnvelope>, parallel: usize) {
    let chunks: Vec<Vec<EventEnvelope>> = envelopes
        .chunks(envelopes.len().div_ceil(parallel).max(1))
        .map(<[EventEnvelope]>::to_vec)
        .collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let broker = broker.clone();
            tokio::spawn(async move {
                for envelope in chunk {
                    broker
                        .publish(Outgoing::event(&envelope))
                        .await
                        .expect("a confirmed publish");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a publisher task");
    }
}

/// `wrk -t2 -c<connections> -d<seconds>s`: requests per second.
pub fn wrk(url: &str, connections: usize, seconds: u64, headers: &[&str]) -> f64 {
    let mut command = std::process::Command::new("wrk");
    command
        .arg("-t2")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"));
    for header in headers {
        command.arg("-H").arg(header);
    }
    let output = command.arg(url).output().unwrap_or_else(|err| {
        panic!("cannot run wrk ({err}): install it with `apt-get install wrk`")
    });
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected wrk output:\n{text}"))
}

/// A release binary of the workspace next to this one.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("this binary's path");
    exe.parent().expect("a directory").join(name)
}

/// A field of /proc/PID/status in KiB (`VmRSS`, `RssAnon`, `RssFile`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)
                .and_then(|rest| rest.strip_prefix(':'))
        })
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident memory as "total MB (anonymous + file-backed)".
pub fn rss_text(pid: u32) -> (f64, String) {
    let mb = |kib: u64| kib as f64 / 1024.0;
    let total = mb(status_kib(pid, "VmRSS"));
    (
        total,
        format!(
            "{total:.1} MB ({:.1} anon + {:.1} file)",
            mb(status_kib(pid, "RssAnon")),
            mb(status_kib(pid, "RssFile"))
        ),
    )
}

/// CPU time (user + system) of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime 14, stime 15 (1-based over the whole line).
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / CLOCK_TICKS_PER_SECOND
}

/// The kernel's USER_HZ for /proc times: 100 on every Linux configuration in use.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// Starts the release `tunasync` binary with `args` (quiet logs), stopped when dropped.
pub fn tunasync(args: &[&str]) -> Child {
    Child(
        std::process::Command::new(binary("tunasync"))
            .args(args)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start tunasync {args:?}: {err}")),
    )
}

/// A child process stopped (SIGKILL by PID) when dropped.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
