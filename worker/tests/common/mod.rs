//! The worker tests' harness: a stand-in for the manager on the private broker, and a
//! worker started from a config file the test writes.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tunasync_shared::broker::{
    AmqpBroker, AnyTransport, Deployment, MemoryBroker, Outgoing, QueueRole, Role, Transport,
};
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;
pub use tunasync_shared::testkit::Kind;
use tunasync_shared::testkit::{BrokerEnv, unique_namespace, wait_until, within};
use tunasync_shared::wire::command::{Command, Welcome};
use tunasync_shared::wire::event::{CmdOutcome, CmdResult, Event, JobStatus};
use tunasync_shared::wire::{CommandEnvelope, EventEnvelope};
use tunasync_worker::config::WorkerConfig;

pub const WAIT: Duration = Duration::from_secs(30);

/// The test's stand-in for the manager: records every event, sends commands.
pub struct FakeManager {
    pub broker: AnyTransport,
    /// The in-process broker, when the test runs over it.
    pub memory: Option<MemoryBroker>,
    pub worker: WorkerId,
    pub events: Arc<Mutex<Vec<EventEnvelope>>>,
}

impl FakeManager {
    pub async fn start(
        env: &BrokerEnv,
        namespace: &str,
        worker: &WorkerId,
        shutdown: &CancellationToken,
    ) -> FakeManager {
        Self::start_on(Kind::Amqp, env, namespace, worker, shutdown).await
    }

    /// The stand-in manager over `kind`'s transport.
    pub async fn start_on(
        kind: Kind,
        env: &BrokerEnv,
        namespace: &str,
        worker: &WorkerId,
        shutdown: &CancellationToken,
    ) -> FakeManager {
        let (broker, memory): (AnyTransport, _) = match kind {
            Kind::Amqp => {
                let broker =
                    AmqpBroker::start(env.tls_config(namespace), Role::Manager, shutdown.clone())
                        .unwrap();
                broker.wait_connected(WAIT).await.unwrap();
                (broker.into(), None)
            }
            Kind::Memory => {
                let memory = MemoryBroker::new();
                (memory.connect(&Role::Manager).into(), Some(memory))
            }
        };
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
            memory,
            worker: worker.clone(),
            events,
        }
    }

    pub fn statuses(&self, mirror: &str) -> Vec<JobStatus> {
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

    pub fn sequence(&self, mirror: &str) -> Vec<SyncStatus> {
        self.statuses(mirror)
            .iter()
            .map(|status| status.status)
            .collect()
    }

    pub fn count(&self, predicate: impl Fn(&Event) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|envelope| predicate(&envelope.event))
            .count()
    }

    pub async fn wait_hello(&self) {
        wait_until(WAIT, "hello", || {
            self.count(|event| matches!(event, Event::Hello(_))) > 0
        })
        .await;
    }

    /// Publishes a command; its envelope id.
    pub async fn send(&self, command: Command) -> uuid::Uuid {
        let envelope = CommandEnvelope::new(self.worker.clone(), command);
        self.broker
            .publish(Outgoing::command(&envelope, Duration::from_secs(60)))
            .await
            .unwrap();
        envelope.header.id
    }

    /// Publishes a command and waits for the worker's answer.
    pub async fn command(&self, command: Command) -> CmdOutcome {
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

pub type WorkerTask = tokio::task::JoinHandle<Result<(), tunasync_worker::StartError>>;

/// Starts the worker of the config file at `path`: its task, what stops it, and what asks it
/// to reload.
pub fn spawn_worker(path: &Path) -> (WorkerTask, CancellationToken, tokio::sync::mpsc::Sender<()>) {
    spawn_worker_on(path, None)
}

/// [`spawn_worker`] over the in-process broker `memory` when there is one.
pub fn spawn_worker_on(
    path: &Path,
    memory: Option<&MemoryBroker>,
) -> (WorkerTask, CancellationToken, tokio::sync::mpsc::Sender<()>) {
    let deployment = match memory {
        Some(_) => Deployment::Standalone,
        None => Deployment::Cluster,
    };
    let config = WorkerConfig::load_as(path, deployment).unwrap().config;
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let task = match memory {
        Some(memory) => {
            let transport = memory.connect(&Role::Worker(config.name.clone()));
            tokio::spawn(tunasync_worker::run(
                config,
                move || Ok(transport),
                reload_rx,
                shutdown.clone(),
                || {},
            ))
        }
        None => tokio::spawn(tunasync_worker::start(
            config,
            reload_rx,
            shutdown.clone(),
            || {},
        )),
    };
    (task, shutdown, reload_tx)
}

pub fn mirror(name: &str) -> MirrorName {
    MirrorName::new(name).unwrap()
}

pub fn write_config(path: &Path, env: &BrokerEnv, namespace: &str, root: &Path, mirrors: &str) {
    write_config_with(path, env, namespace, root, 3, mirrors);
}

pub fn write_config_with(
    path: &Path,
    env: &BrokerEnv,
    namespace: &str,
    root: &Path,
    concurrent: usize,
    mirrors: &str,
) {
    write_config_over(Kind::Amqp, path, env, namespace, root, concurrent, mirrors);
}

/// [`write_config_with`] for `kind`'s transport (no `[broker]` in memory).
pub fn write_config_over(
    kind: Kind,
    path: &Path,
    env: &BrokerEnv,
    namespace: &str,
    root: &Path,
    concurrent: usize,
    mirrors: &str,
) {
    let broker = match kind {
        Kind::Amqp => format!(
            "[broker]\nurl = \"{url}\"\nca_cert = \"{ca}\"\nnamespace = \"{namespace}\"\n",
            url = env.amqps_url,
            ca = env.ca_cert.display(),
        ),
        Kind::Memory => String::new(),
    };
    let text = format!(
        r#"{broker}[global]
name = "w1"
log_dir = "{root}/log/{{{{.Name}}}}"
mirror_dir = "{root}/data"
interval = 1440
concurrent = {concurrent}
heartbeat_interval = "1s"
{mirrors}"#,
        root = root.display(),
    );
    std::fs::write(path, text).unwrap();
}

/// A worker started from a config the test wrote (as worker `w1`), with the stand-in
/// manager, welcomed; stopped by [`Started::stop`] (or, failing, when dropped).
pub struct Started {
    pub manager: FakeManager,
    pub dir: tempfile::TempDir,
    worker: Option<WorkerTask>,
    worker_shutdown: CancellationToken,
    _reload: tokio::sync::mpsc::Sender<()>,
    shutdown: CancellationToken,
}

impl Drop for Started {
    fn drop(&mut self) {
        self.worker_shutdown.cancel();
        self.shutdown.cancel();
    }
}

impl Started {
    /// `text`: what follows `[global]`'s keys (more global keys, tables, mirrors).
    pub async fn start(
        label: &str,
        dir: tempfile::TempDir,
        concurrent: usize,
        text: &str,
    ) -> Started {
        Self::start_over(Kind::Amqp, label, dir, concurrent, text).await
    }

    /// [`Started::start`] over `kind`'s transport.
    pub async fn start_over(
        kind: Kind,
        label: &str,
        dir: tempfile::TempDir,
        concurrent: usize,
        text: &str,
    ) -> Started {
        let env = BrokerEnv::get();
        let namespace = unique_namespace(label);
        let shutdown = CancellationToken::new();
        let worker_id = WorkerId::new("w1").unwrap();
        let manager = FakeManager::start_on(kind, &env, &namespace, &worker_id, &shutdown).await;
        let path = dir.path().join("worker.conf");
        write_config_over(kind, &path, &env, &namespace, dir.path(), concurrent, text);
        let (worker, worker_shutdown, reload) = spawn_worker_on(&path, manager.memory.as_ref());
        manager.wait_hello().await;
        manager.send(Command::Welcome(Welcome::default())).await;
        Started {
            manager,
            dir,
            worker: Some(worker),
            worker_shutdown,
            _reload: reload,
            shutdown,
        }
    }

    pub fn path(&self, relative: &str) -> std::path::PathBuf {
        self.dir.path().join(relative)
    }

    /// The reports that ended `mirror`'s runs, in order.
    pub fn ends(&self, mirror: &str) -> Vec<JobStatus> {
        self.manager
            .statuses(mirror)
            .into_iter()
            .filter(|report| report.ends_run)
            .collect()
    }

    /// The report that ended `mirror`'s first run, once there is one.
    pub fn ended(&self, mirror: &str) -> Option<JobStatus> {
        self.ends(mirror).into_iter().next()
    }

    /// Waits until each of `mirrors` has ended a run.
    pub async fn wait_ended(&self, mirrors: &[&str]) {
        wait_until(WAIT, &format!("{mirrors:?} to end a run"), || {
            mirrors.iter().all(|mirror| self.ended(mirror).is_some())
        })
        .await;
    }

    /// How many of `mirror`'s reports say success.
    pub fn successes(&self, mirror: &str) -> usize {
        self.manager
            .sequence(mirror)
            .iter()
            .filter(|status| **status == SyncStatus::Success)
            .count()
    }

    /// `start` (`-f` with `force`) of `mirror`, and the worker's answer.
    pub async fn start_job(&self, mirror_name: &str, force: bool) -> CmdOutcome {
        self.manager
            .command(Command::Start(tunasync_shared::wire::command::StartJob {
                mirror: mirror(mirror_name),
                args: vec![],
                force,
            }))
            .await
    }

    /// When the worker last said `mirror` runs next.
    pub fn next_schedule(&self, mirror: &str) -> Option<tunasync_shared::gotime::GoTime> {
        self.manager
            .events
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|envelope| match &envelope.event {
                Event::Schedule(schedule) => schedule
                    .schedules
                    .iter()
                    .find(|run| run.mirror.as_str() == mirror)
                    .map(|run| run.next_schedule),
                _ => None,
            })
    }

    pub async fn stop(mut self) {
        self.worker_shutdown.cancel();
        if let Some(worker) = self.worker.take() {
            within(WAIT, "the worker to stop", worker)
                .await
                .unwrap()
                .unwrap();
        }
    }
}
