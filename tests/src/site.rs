//! A site for end-to-end tests: its config files (manager, workers, tunasynctl) in one
//! directory, and reading its state through tunasynctl and the API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tunasync_shared::testkit::BrokerEnv;

use crate::{ctl_ok, tunasynctl, wait_for};

/// The API token the site's manager accepts and its tunasynctl sends.
pub const TOKEN: &str = "e2e-token-4f1c";

/// `tunasynctl list -a` as JSON.
pub fn jobs(ctl: &Path) -> Vec<Value> {
    serde_json::from_str(&ctl_ok(ctl, &["list", "-a"])).unwrap_or_default()
}

/// The job `mirror` of `worker` (or pool) as `tunasynctl list WORKER` shows it.
pub fn status_of(ctl: &Path, worker: &str, mirror: &str) -> Option<Value> {
    let output = tunasynctl(ctl, &["list", worker]);
    if !output.status.success() {
        return None;
    }
    let list: Vec<Value> = serde_json::from_slice(&output.stdout).ok()?;
    list.into_iter().find(|job| job["name"] == mirror)
}

/// Waits (up to `limit`) until `worker`'s `mirror` is `status`; the job then.
pub fn wait_status(ctl: &Path, worker: &str, mirror: &str, status: &str, limit: Duration) -> Value {
    let mut last = None;
    wait_for(limit, &format!("{worker}/{mirror} to be {status}"), || {
        last = status_of(ctl, worker, mirror);
        last.as_ref().is_some_and(|job| job["status"] == status)
    });
    last.unwrap_or_default()
}

/// `tunasynctl start -w WORKER MIRROR`, expected to succeed.
pub fn ctl_start(ctl: &Path, worker: &str, mirror: &str) {
    ctl_ok(ctl, &["start", "-w", worker, mirror]);
}

/// `GET url` over plain HTTP (a monitoring daemon's API on loopback): its status and body,
/// or `None` while nothing answers.
pub fn get_plain(url: &str) -> Option<(u16, String)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let response = reqwest::get(url).await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    })
}

/// `GET url` over HTTPS trusting `ca`, as JSON.
pub fn get_json(url: &str, ca: &Path) -> Value {
    try_get_json(url, ca).unwrap_or_else(|err| panic!("GET {url}: {err}"))
}

/// `GET url` over HTTPS trusting `ca`, as JSON, or why not (while a daemon is away).
pub fn try_get_json(url: &str, ca: &Path) -> Result<Value, String> {
    let text = try_get_text(url, ca)?;
    serde_json::from_str(&text).map_err(|err| format!("not JSON: {err}"))
}

/// `GET url` over HTTPS trusting `ca`: the body, or why not.
pub fn try_get_text(url: &str, ca: &Path) -> Result<String, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("a runtime: {err}"))?;
    runtime.block_on(async {
        let pem = std::fs::read(ca).map_err(|err| format!("the CA certificate: {err}"))?;
        let ca = reqwest::Certificate::from_pem(&pem)
            .map_err(|err| format!("the CA certificate: {err}"))?;
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|err| format!("an HTTPS client: {err}"))?;
        let response = client
            .get(url)
            .send()
            .await
            .map_err(|err| err.to_string())?;
        response.text().await.map_err(|err| err.to_string())
    })
}

/// The site's files, under `dir`, on broker namespace `namespace`.
pub struct Files<'a> {
    pub dir: &'a Path,
    pub env: &'a BrokerEnv,
    pub namespace: &'a str,
}

impl Files<'_> {
    /// manager.conf (API on `port`, workers offline after `offline_after`) and its tokens.
    pub fn manager_conf(&self, port: u16, offline_after: &str) -> PathBuf {
        self.manager_conf_with(port, offline_after, "")
    }

    /// [`Files::manager_conf`] with more `[auth]` keys (`auth`: TOML lines).
    pub fn manager_conf_with(&self, port: u16, offline_after: &str, auth: &str) -> PathBuf {
        let path = self.dir.join("manager.conf");
        write(&self.dir.join("tokens"), &format!("{TOKEN}\n"));
        write(
            &path,
            &format!(
                "[server]\naddr = \"127.0.0.1\"\nport = {port}\nssl_cert = {cert:?}\nssl_key = {key:?}\n\
                 [files]\ndb_file = {db:?}\n\
                 [broker]\nurl = {url:?}\nca_cert = {ca:?}\nnamespace = {namespace:?}\n\
                 [auth]\ntokens_file = {tokens:?}\n{auth}\n\
                 [liveness]\noffline_after = {offline_after:?}\n",
                cert = self.env.server_cert,
                key = self.env.server_key,
                db = self.dir.join("state/tunasync.redb"),
                url = self.env.amqps_url,
                ca = self.env.ca_cert,
                namespace = self.namespace,
                tokens = self.dir.join("tokens"),
            ),
        );
        path
    }

    /// Starts the site's manager on a free port (workers offline after 3 s; `auth`: more
    /// `[auth]` lines) and waits for its API: the daemon, its port, and a ctl.conf for it.
    pub fn start_manager(&self, auth: &str) -> (crate::Daemon, u16, PathBuf) {
        let port = free_port();
        let conf = self.manager_conf_with(port, "3s", auth);
        let ctl = self.ctl_conf(port);
        let manager = crate::Daemon::start(
            "manager",
            &["manager", "-c", &conf.display().to_string()],
            &self.dir.join("manager.log"),
        );
        wait_for(Duration::from_secs(60), "the manager's API", || {
            tunasynctl(&ctl, &["workers"]).status.success()
        });
        (manager, port, ctl)
    }

    /// ctl.conf for the manager on `port`, with the token.
    pub fn ctl_conf(&self, port: u16) -> PathBuf {
        let path = self.dir.join("ctl.conf");
        write(
            &path,
            &format!(
                "manager_addr = \"localhost\"\nmanager_port = {port}\nca_cert = {:?}\ntoken_file = {:?}\n",
                self.env.ca_cert,
                self.dir.join("tokens")
            ),
        );
        path
    }

    /// The `[broker]` section of a worker that logs in with the cluster-wide user.
    pub fn plain_broker(&self) -> String {
        format!(
            "[broker]\nurl = {:?}\nca_cert = {:?}\nnamespace = {:?}",
            self.env.amqps_url, self.env.ca_cert, self.namespace
        )
    }

    /// The `[broker]` section of a hardened worker: broker user `user` (set up by the test
    /// node's definitions), its client certificate, EXTERNAL login.
    pub fn hardened_broker(&self, user: &str) -> String {
        let (cert, key) = self.env.client_identity(user);
        format!(
            "[broker]\nurl = \"amqps://localhost:{}/%2f?auth_mechanism=external\"\nca_cert = {:?}\nclient_cert = {:?}\nclient_key = {:?}\nnamespace = {:?}",
            self.env.amqps_port, self.env.ca_cert, cert, key, self.namespace
        )
    }

    /// Worker `name`'s config: one slot, its own mirror directory.
    pub fn worker_conf(&self, name: &str, broker: &str, mirrors: &str) -> PathBuf {
        let global = format!(
            "mirror_dir = \"{}/data/{name}\"\nconcurrent = 1\n",
            self.dir.display()
        );
        self.worker_conf_with(name, broker, &global, mirrors)
    }

    /// Worker `name`'s config with `global` keys of the caller's (`mirror_dir`,
    /// `concurrent`, `pool`, ...) and its own log directory.
    pub fn worker_conf_with(
        &self,
        name: &str,
        broker: &str,
        global: &str,
        mirrors: &str,
    ) -> PathBuf {
        let path = self.dir.join(format!("{name}.conf"));
        write(
            &path,
            &format!(
                "{broker}\n[global]\nname = \"{name}\"\nlog_dir = \"{root}/log/{name}/{{{{.Name}}}}\"\n\
                 interval = 1440\nheartbeat_interval = \"1s\"\n{global}{mirrors}",
                root = self.dir.display(),
            ),
        );
        path
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text)
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|err| panic!("no free port: {err}"))
}
