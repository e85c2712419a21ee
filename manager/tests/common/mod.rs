//! A manager under test (in-process, real HTTPS, real broker, real redb file) and a fake
//! worker that speaks the wire protocol through the broker.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

pub mod real_worker;
pub mod receivers;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tunasync_manager::config::{ManagerConfig, Overrides};
use tunasync_shared::broker::{
    AmqpBroker, AnyTransport, BrokerConfig, Deployment, MemoryBroker, Outgoing, QueueRole, Role,
    Transport,
};
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::testkit::{BrokerEnv, unique_namespace, wait_until};
use tunasync_shared::wire::command::Command;
use tunasync_shared::wire::event::{
    CmdOutcome, CmdResult, Event, Heartbeat, Hello, JobSnapshot, JobStatus, ProviderKind,
};
use tunasync_shared::wire::{CommandEnvelope, EventEnvelope, SequenceSource};
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(20);
pub const TOKEN: &str = "test-token-0123456789";

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info,lapin=warn")
        .try_init();
}

pub use tunasync_shared::testkit::Kind;

/// How a worker in a test reaches the test's manager.
#[derive(Clone)]
pub enum Link {
    Amqp(BrokerConfig),
    Memory(MemoryBroker),
}

impl From<BrokerConfig> for Link {
    fn from(config: BrokerConfig) -> Self {
        Link::Amqp(config)
    }
}

impl Link {
    /// A transport for `role`, until `shutdown` (AMQP) or the broker's end (memory).
    pub fn transport(&self, role: &Role, shutdown: CancellationToken) -> AnyTransport {
        match self {
            Link::Amqp(config) => AmqpBroker::start(config.clone(), role.clone(), shutdown)
                .unwrap()
                .into(),
            Link::Memory(broker) => broker.connect(role).into(),
        }
    }

    /// The `[broker]` section of a worker.conf (none in memory).
    pub fn broker_section(&self) -> String {
        match self {
            Link::Amqp(broker) => format!(
                "[broker]\nurl = {url:?}\nca_cert = {ca:?}\nnamespace = {namespace:?}\n",
                url = broker.urls[0],
                ca = broker.ca_cert.as_ref().unwrap(),
                namespace = broker.namespace,
            ),
            Link::Memory(_) => String::new(),
        }
    }

    pub fn deployment(&self) -> Deployment {
        match self {
            Link::Amqp(_) => Deployment::Cluster,
            Link::Memory(_) => Deployment::Standalone,
        }
    }
}

/// A running manager and a client for its API.
pub struct TestManager {
    pub url: String,
    pub client: reqwest::Client,
    pub namespace: String,
    pub dir: Arc<tempfile::TempDir>,
    pub env: BrokerEnv,
    pub link: Link,
    shutdown: CancellationToken,
    running: Option<tunasync_manager::Running>,
}

impl Drop for TestManager {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Extra config text appended to the test manager's file.
#[derive(Default)]
pub struct Setup {
    pub extra: String,
    pub namespace: Option<String>,
    pub dir: Option<Arc<tempfile::TempDir>>,
    pub transport: Kind,
}

impl Setup {
    /// The store and namespace of a manager stopped before (what [`TestManager::stop`]
    /// returns), for a restart.
    pub fn again((dir, namespace): (Arc<tempfile::TempDir>, String)) -> Setup {
        Setup {
            dir: Some(dir),
            namespace: Some(namespace),
            ..Setup::default()
        }
    }
}

impl TestManager {
    /// Starts a manager and waits until it is ready (`/readyz`).
    pub async fn start(setup: Setup) -> TestManager {
        let manager = Self::start_unready(setup).await;
        wait_until_async(WAIT, "the manager to reach the broker", || async {
            manager.get("/readyz").await.status() == 200
        })
        .await;
        manager
    }

    /// Starts a manager and waits only until its API answers.
    pub async fn start_unready(setup: Setup) -> TestManager {
        init();
        let env = BrokerEnv::get();
        let dir = setup
            .dir
            .unwrap_or_else(|| Arc::new(tempfile::tempdir().unwrap()));
        let namespace = setup.namespace.unwrap_or_else(|| unique_namespace("mgr"));
        std::fs::write(dir.path().join("tokens"), format!("# test\n{TOKEN}\n")).unwrap();
        let link = match setup.transport {
            Kind::Amqp => Link::Amqp(env.tls_config(&namespace)),
            Kind::Memory => Link::Memory(MemoryBroker::new()),
        };
        let broker = match &link {
            Link::Amqp(_) => format!(
                "[broker]\nurl = {url:?}\nca_cert = {ca:?}\nnamespace = {namespace:?}\n",
                url = env.amqps_url,
                ca = env.ca_cert,
            ),
            Link::Memory(_) => String::new(),
        };
        let text = format!(
            "[server]\nssl_cert = {cert:?}\nssl_key = {key:?}\n\
             [files]\ndb_file = {db:?}\n\
             {broker}\
             [auth]\ntokens_file = {tokens:?}\n{extra}",
            cert = env.server_cert,
            key = env.server_key,
            db = dir.path().join("tunasync.redb"),
            tokens = dir.path().join("tokens"),
            extra = setup.extra,
        );
        let config_path = dir.path().join("manager.conf");
        std::fs::write(&config_path, &text).unwrap();
        let loaded =
            ManagerConfig::load_as(Some(&config_path), &Overrides::default(), link.deployment())
                .unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let shutdown = CancellationToken::new();
        let transport = link.transport(&Role::Manager, shutdown.clone());
        let running = tunasync_manager::start_with(
            loaded.config,
            Some(listener),
            || Ok(transport),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let client = if setup.extra.contains("require_client_cert = true") {
            client(&env, Some((&env.client_cert, &env.client_key)))
        } else {
            client(&env, None)
        };
        let manager = TestManager {
            url: format!("https://localhost:{}", running.local_addr.port()),
            client,
            namespace,
            dir,
            env,
            link,
            shutdown,
            running: Some(running),
        };
        wait_until_async(WAIT, "the manager's API", || async {
            manager.get("/ping").await.status() == 200
        })
        .await;
        manager
    }

    /// Stops the manager and waits until it is gone (its redb file is then free).
    pub async fn stop(mut self) -> (Arc<tempfile::TempDir>, String) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            tokio::time::timeout(WAIT, running.wait())
                .await
                .unwrap()
                .unwrap();
        }
        (self.dir.clone(), self.namespace.clone())
    }

    /// The AMQP settings of the manager's broker (tests of the broker path only).
    pub fn broker_config(&self) -> BrokerConfig {
        assert!(
            matches!(self.link, Link::Amqp(_)),
            "this test reads the broker itself: run it over AMQP only"
        );
        self.env.tls_config(&self.namespace)
    }

    /// How a worker reaches this manager, over the test's transport.
    pub fn link(&self) -> Link {
        self.link.clone()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// `GET path` asking for gzip: the body, which must come gzip-encoded, unzipped.
    pub async fn get_gzipped(&self, path: &str) -> String {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        assert_eq!(response.headers()["content-encoding"], "gzip", "GET {path}");
        let gzipped = response.bytes().await.unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut text)
            .unwrap();
        text
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// A request with the test token.
    pub fn authed(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
    }

    pub async fn cmd(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .authed(reqwest::Method::POST, "/cmd")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Waits until `GET /workers/{worker}/jobs` shows `mirror` with `status`.
    pub async fn wait_status(&self, worker: &str, mirror: &str, status: &str) {
        wait_until_async(
            WAIT,
            &format!("{worker}/{mirror} to be {status}"),
            || async {
                let response = self.get(&format!("/workers/{worker}/jobs")).await;
                if response.status() != 200 {
                    return false;
                }
                let jobs: serde_json::Value = response.json().await.unwrap_or_default();
                jobs.as_array().is_some_and(|jobs| {
                    jobs.iter()
                        .any(|job| job["name"] == mirror && job["status"] == status)
                })
            },
        )
        .await;
    }

    /// The job as `GET /workers/{worker}/jobs` shows it.
    pub async fn job(&self, worker: &str, mirror: &str) -> Option<serde_json::Value> {
        let jobs = self.get_json(&format!("/workers/{worker}/jobs")).await;
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|job| job["name"] == mirror)
            .cloned()
    }
}

pub fn client(env: &BrokerEnv, identity: Option<(&PathBuf, &PathBuf)>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&env.ca_cert).unwrap()).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(WAIT);
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(key).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

pub async fn wait_until_async<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// How the fake worker answers commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Silent,
}

/// A worker that speaks the protocol, driven by the test.
pub struct FakeWorker {
    pub id: WorkerId,
    pub broker: AnyTransport,
    pub seq: SequenceSource,
    pub session: Uuid,
    /// Commands received, in order.
    pub received: Arc<Mutex<Vec<Command>>>,
    pub answer: Arc<Mutex<Answer>>,
    shutdown: CancellationToken,
    commands: tokio::task::JoinHandle<()>,
}

impl Drop for FakeWorker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl FakeWorker {
    pub async fn start(id: &str, link: impl Into<Link>) -> FakeWorker {
        let id = WorkerId::new(id).unwrap();
        let shutdown = CancellationToken::new();
        let broker = link
            .into()
            .transport(&Role::Worker(id.clone()), shutdown.clone());
        if let AnyTransport::Amqp(amqp) = &broker {
            amqp.wait_connected(WAIT).await.unwrap();
        }
        let received = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(Answer::Accept));
        let mut commands = broker
            .subscribe(QueueRole::Worker(id.clone()), 16)
            .await
            .unwrap();
        let commands = {
            let broker = broker.clone();
            let received = received.clone();
            let answer = answer.clone();
            let id = id.clone();
            let seq = SequenceSource::new();
            tokio::spawn(async move {
                while let Some(incoming) = commands.next().await {
                    let envelope = CommandEnvelope::decode(&incoming.payload).unwrap();
                    incoming.ack().await.unwrap();
                    let kind = envelope.command.kind();
                    let mirror = envelope.command.mirror().cloned();
                    let is_welcome = matches!(envelope.command, Command::Welcome(_));
                    received.lock().unwrap().push(envelope.command);
                    if is_welcome || *answer.lock().unwrap() == Answer::Silent {
                        continue;
                    }
                    let outcome = match &mirror {
                        Some(mirror) if mirror.as_str() == "nosuch" => CmdOutcome::Refused {
                            reason: "mirror nosuch not found".into(),
                        },
                        _ => CmdOutcome::Accepted,
                    };
                    let result = Event::CmdResult(CmdResult {
                        cmd_id: envelope.header.id,
                        cmd: kind,
                        mirror,
                        outcome,
                    });
                    let reply = EventEnvelope::new(id.clone(), seq.next(), result);
                    broker.publish(Outgoing::event(&reply)).await.unwrap();
                }
            })
        };
        FakeWorker {
            id,
            broker,
            seq: SequenceSource::new(),
            session: Uuid::new_v4(),
            received,
            answer,
            shutdown,
            commands,
        }
    }

    /// Disconnects, and returns once the broker closed its connections (nothing of its
    /// queue is delivered to it any more).
    pub async fn stop(self) {
        self.shutdown.cancel();
        match &self.broker {
            AnyTransport::Amqp(amqp) => {
                tunasync_shared::testkit::within(
                    WAIT,
                    "the fake worker to disconnect",
                    amqp.closed(),
                )
                .await;
            }
            // Its subscription ends with its task: what it held goes back to its queue.
            AnyTransport::Memory(_) => {
                self.commands.abort();
                while !self.commands.is_finished() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }

    pub async fn send(&self, event: Event) -> EventEnvelope {
        let envelope = EventEnvelope::new(self.id.clone(), self.seq.next(), event);
        self.broker
            .publish(Outgoing::event(&envelope))
            .await
            .unwrap();
        envelope
    }

    pub async fn hello(&self, mirrors: &[&str]) {
        let jobs = mirrors
            .iter()
            .map(|mirror| JobSnapshot {
                mirror: MirrorName::new(*mirror).unwrap(),
                provider: ProviderKind::Rsync,
                upstream: format!("rsync://example.invalid/{mirror}/"),
                is_master: true,
                interval_minutes: 60,
                cron: None,
                jitter_secs: 0,
                status: SyncStatus::None,
                run_id: None,
                last_update: GoTime::ZERO,
                last_started: GoTime::ZERO,
                last_ended: GoTime::ZERO,
                next_schedule: GoTime::ZERO,
                size: None,
                error_msg: String::new(),
                pool: None,
                fingerprint: None,
                url: None,
                desc: None,
                rules: Default::default(),
            })
            .collect();
        self.send(Event::Hello(Hello {
            version: "test".into(),
            host: "fake-host".into(),
            session: self.session,
            heartbeat_interval_secs: 1,
            jobs,
        }))
        .await;
    }

    /// A `hello` listing `mirrors` as pooled mirrors of `pool`, defined as `fingerprint`.
    pub async fn hello_pooled(&self, pool: &str, mirrors: &[&str], fingerprint: &str) {
        let jobs = mirrors
            .iter()
            .map(|mirror| JobSnapshot {
                mirror: MirrorName::new(*mirror).unwrap(),
                provider: ProviderKind::Rsync,
                upstream: format!("rsync://example.invalid/{mirror}/"),
                is_master: true,
                interval_minutes: 60,
                cron: None,
                jitter_secs: 0,
                status: SyncStatus::None,
                run_id: None,
                last_update: GoTime::ZERO,
                last_started: GoTime::ZERO,
                last_ended: GoTime::ZERO,
                next_schedule: GoTime::ZERO,
                size: None,
                error_msg: String::new(),
                pool: Some(tunasync_shared::names::PoolName::new(pool).unwrap()),
                fingerprint: Some(fingerprint.to_owned()),
                url: None,
                desc: None,
                rules: Default::default(),
            })
            .collect();
        self.send(Event::Hello(Hello {
            version: "test".into(),
            host: "fake-host".into(),
            session: self.session,
            heartbeat_interval_secs: 1,
            jobs,
        }))
        .await;
    }

    pub async fn heartbeat(&self) {
        self.send(Event::Heartbeat(Heartbeat {
            session: self.session,
            interval_secs: 1,
            running: vec![],
            free_slots: None,
        }))
        .await;
    }

    pub fn status(&self, mirror: &str, status: SyncStatus, run: Uuid, size: Option<&str>) -> Event {
        Event::Status(JobStatus {
            mirror: MirrorName::new(mirror).unwrap(),
            status,
            run_id: run,
            attempt: 1,
            at: GoTime::now_local(),
            upstream: format!("rsync://example.invalid/{mirror}/"),
            is_master: true,
            size: size.map(str::to_owned),
            error_msg: if status == SyncStatus::Failed {
                "exit status 3".into()
            } else {
                String::new()
            },
            pooled: None,
            transferred_bytes: None,
            ends_run: false,
        })
    }

    pub fn welcomes(&self) -> usize {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|command| matches!(command, Command::Welcome(_)))
            .count()
    }

    pub fn commands(&self) -> Vec<Command> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|command| !matches!(command, Command::Welcome(_)))
            .cloned()
            .collect()
    }
}

pub async fn wait_welcomed(worker: &FakeWorker) {
    wait_until(WAIT, "the welcome", || worker.welcomes() > 0).await;
}
