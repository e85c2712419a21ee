//! A real worker in this process (real jobs, its own broker connection) and the files it
//! is configured with.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tunasync_shared::broker::Role;
use tunasync_shared::testkit::within;
use tunasync_worker::config::WorkerConfig;
use tunasync_worker::hooks::HookSettings;
use tunasync_worker::worker::{Options, Worker};

use super::{Link, TestManager, WAIT};

/// A worker running in this process until stopped.
pub struct RealWorker {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// Kept so that the worker's reload channel stays open.
    _reload: mpsc::Sender<()>,
}

impl RealWorker {
    /// Starts the worker of `config`, reaching the manager through `link`.
    pub fn start(config: &Path, link: &Link, options: Options) -> RealWorker {
        let config = WorkerConfig::load_as(config, link.deployment())
            .unwrap()
            .config;
        let broker_stop = CancellationToken::new();
        let broker = link.transport(&Role::Worker(config.name.clone()), broker_stop.clone());
        let settings = HookSettings::from_config(&config, None);
        let worker = Worker::new(config, broker, settings, options);
        let (reload_tx, reload) = mpsc::channel(1);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            worker.run(reload, stop).await.unwrap();
            broker_stop.cancel();
        });
        RealWorker {
            shutdown,
            task,
            _reload: reload_tx,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        within(WAIT, "the worker to stop", self.task).await.unwrap();
    }
}

/// Writes worker `w1`'s config with `mirrors`, for `link`; its path.
pub fn worker_conf(dir: &Path, link: &Link, mirrors: &str) -> PathBuf {
    let global = format!(
        "name = \"w1\"\nmirror_dir = \"{}/data\"\nconcurrent = 4\n",
        dir.display()
    );
    worker_conf_with(dir, link, &global, mirrors)
}

/// Writes a worker's config with `global` keys (name, mirror_dir, concurrent, pool, ...).
pub fn worker_conf_with(dir: &Path, link: &Link, global: &str, mirrors: &str) -> PathBuf {
    let path = dir.join("worker.conf");
    let text = format!(
        "{broker}[global]\nlog_dir = \"{root}/log/{{{{.Name}}}}\"\n\
         interval = 1440\nheartbeat_interval = \"1s\"\n{global}{mirrors}",
        broker = link.broker_section(),
        root = dir.display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A real worker `w1` with the one command mirror `name`, its files under `dir`.
pub fn command_worker(manager: &TestManager, dir: &Path, name: &str, command: &str) -> RealWorker {
    let link = manager.link();
    let config = worker_conf(dir, &link, &command_mirror(name, command));
    RealWorker::start(&config, &link, Options::default())
}

pub fn command_mirror(name: &str, command: &str) -> String {
    format!("[[mirrors]]\nname = \"{name}\"\nprovider = \"command\"\ncommand = {command:?}\n")
}
