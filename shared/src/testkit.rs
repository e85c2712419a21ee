//! Helpers for tests that run against the private RabbitMQ node.
//!
//! The test command (`scripts/with-rabbitmq.sh cargo test --workspace`) starts a private node
//! with a TLS listener and exports where it is; [`BrokerEnv::get`] reads that. A test that
//! needs the broker and finds none fails, naming what to run and install: it never skips.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::broker::{BrokerConfig, QueueType};

/// Where the private broker node is, from the environment the wrapper script exports.
#[derive(Debug, Clone)]
pub struct BrokerEnv {
    pub amqp_url: String,
    pub amqps_url: String,
    pub amqps_port: u16,
    pub ca_cert: PathBuf,
    pub other_ca_cert: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub client_user: String,
    /// A server certificate for `localhost` / `127.0.0.1` signed by `ca_cert`, and its key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    node_dir: PathBuf,
    ctl: PathBuf,
}

impl BrokerEnv {
    /// Reads the broker's environment, or panics saying how to provide it.
    pub fn get() -> BrokerEnv {
        let var = |name: &str| -> String {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: this test needs the private RabbitMQ node. Run the tests with \
                     `scripts/with-rabbitmq.sh cargo test --workspace` (it needs rabbitmq-server, openssl \
                     and python3: `apt-get install rabbitmq-server openssl python3`)"
                )
            })
        };
        BrokerEnv::from_vars(var)
    }

    /// The node a test started itself in `dir` (`scripts/rmq-node.sh start DIR`, e.g. a
    /// member of a cluster), read from the `DIR/env` that script writes.
    pub fn from_node(dir: &std::path::Path) -> BrokerEnv {
        let file = dir.join("env");
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", file.display()));
        let var = |name: &str| -> String {
            text.lines()
                .find_map(|line| line.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{} has no {name}", file.display()))
                .to_owned()
        };
        BrokerEnv::from_vars(var)
    }

    fn from_vars(var: impl Fn(&str) -> String) -> BrokerEnv {
        BrokerEnv {
            amqp_url: var("AMQP_URL"),
            amqps_url: var("AMQPS_URL"),
            amqps_port: var("AMQPS_PORT")
                .parse()
                .unwrap_or_else(|_| panic!("AMQPS_PORT is not a port")),
            ca_cert: var("AMQP_CA").into(),
            other_ca_cert: var("AMQP_OTHER_CA").into(),
            client_cert: var("AMQP_CLIENT_CERT").into(),
            client_key: var("AMQP_CLIENT_KEY").into(),
            client_user: var("AMQP_CLIENT_USER"),
            server_cert: PathBuf::from(var("RMQ_NODE_DIR")).join("certs/server.crt"),
            server_key: PathBuf::from(var("RMQ_NODE_DIR")).join("certs/server.key"),
            node_dir: var("RMQ_NODE_DIR").into(),
            ctl: var("RMQ_CTL").into(),
        }
    }

    /// amqps with the administrator login (plain mode), under `namespace`.
    pub fn tls_config(&self, namespace: &str) -> BrokerConfig {
        BrokerConfig {
            urls: vec![self.amqps_url.clone()],
            ca_cert: Some(self.ca_cert.clone()),
            client_cert: None,
            client_key: None,
            namespace: namespace.to_owned(),
            queue_type: QueueType::Classic,
        }
    }

    /// As [`BrokerEnv::tls_config`], but connecting through a [`TcpProxy`] on `port`.
    pub fn tls_config_via(&self, namespace: &str, port: u16) -> BrokerConfig {
        let url = self
            .amqps_url
            .replace(&format!(":{}/", self.amqps_port), &format!(":{port}/"));
        BrokerConfig {
            urls: vec![url],
            ..self.tls_config(namespace)
        }
    }

    /// Runs `rabbitmqctl` against the node (e.g. `set_vm_memory_high_watermark 0.0001` for a
    /// memory alarm); its output. Blocking.
    pub fn rabbitmqctl(&self, args: &[&str]) -> String {
        let output = std::process::Command::new(&self.ctl)
            .arg("ctl")
            .arg(&self.node_dir)
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", self.ctl.display()));
        assert!(
            output.status.success(),
            "`rabbitmqctl {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// amqps with the certificate-only user and the EXTERNAL mechanism.
    pub fn external_config(&self, namespace: &str) -> BrokerConfig {
        BrokerConfig {
            urls: vec![format!(
                "amqps://localhost:{}/%2f?auth_mechanism=external",
                self.amqps_port
            )],
            ca_cert: Some(self.ca_cert.clone()),
            client_cert: Some(self.client_cert.clone()),
            client_key: Some(self.client_key.clone()),
            namespace: namespace.to_owned(),
            queue_type: QueueType::Classic,
        }
    }

    /// A client certificate made for the node (`tls-worker`, `hw1`) and its key.
    pub fn client_identity(&self, user: &str) -> (PathBuf, PathBuf) {
        let dir = self.node_dir.join("certs");
        (
            dir.join(format!("{user}.crt")),
            dir.join(format!("{user}.key")),
        )
    }

    /// A client certificate and key signed by [`BrokerEnv::other_ca_cert`], which neither the
    /// node nor the managers under test trust.
    pub fn stranger_identity(&self) -> (PathBuf, PathBuf) {
        let dir = self
            .other_ca_cert
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        (dir.join("stranger.crt"), dir.join("stranger.key"))
    }

    /// The node's own log (`rabbit.log`) so far: where it says whom it refused and why.
    pub fn broker_log(&self) -> String {
        std::fs::read_to_string(self.node_dir.join("log/rabbit.log")).unwrap_or_default()
    }

    /// A server certificate for `hosts` signed by the node's CA, valid for `days` from now
    /// (`-1`: it expired a day ago), and its key, made in `dir` by `certs/mkcerts.sh`.
    pub fn server_identity(
        &self,
        dir: &std::path::Path,
        hosts: &[&str],
        days: i32,
    ) -> (PathBuf, PathBuf) {
        let certs = self.node_dir.join("certs");
        for file in ["ca.crt", "ca.key"] {
            std::fs::copy(certs.join(file), dir.join(file))
                .unwrap_or_else(|err| panic!("cannot copy the node's {file}: {err}"));
        }
        let mkcerts = self
            .ctl
            .parent()
            .and_then(std::path::Path::parent)
            .map(|root| root.join("certs/mkcerts.sh"))
            .unwrap_or_default();
        let status = std::process::Command::new(&mkcerts)
            .env("CERT_DAYS", days.to_string())
            .arg("host")
            .arg(dir)
            .arg("server")
            .args(hosts)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", mkcerts.display()));
        assert!(status.success(), "{} host failed", mkcerts.display());
        (dir.join("server.crt"), dir.join("server.key"))
    }

    /// Stops the node and starts it again on the same ports and data (blocking, ~10 s).
    pub fn restart_broker(&self) {
        let status = std::process::Command::new(&self.ctl)
            .arg("restart")
            .arg(&self.node_dir)
            .status()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", self.ctl.display()));
        assert!(status.success(), "restarting the broker failed: {status}");
    }

    /// Stops the node (blocking); [`BrokerEnv::restart_broker`] or `start_broker` bring it back.
    pub fn stop_broker(&self) {
        self.ctl_command("stop");
    }

    /// SIGKILLs the node, as a power loss would (blocking); `start_broker` brings it back.
    pub fn kill_broker(&self) {
        self.ctl_command("kill");
    }

    /// Starts a node stopped with [`BrokerEnv::stop_broker`] (blocking).
    pub fn start_broker(&self) {
        self.ctl_command("start");
    }

    fn ctl_command(&self, verb: &str) {
        let output = std::process::Command::new(&self.ctl)
            .arg(verb)
            .arg(&self.node_dir)
            .output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", self.ctl.display()));
        assert!(
            output.status.success(),
            "`rmq-node.sh {verb}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// How many cases each fuzz target runs: `FUZZ_CASES`, 10,000 by default.
pub fn fuzz_cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(10_000)
}

/// A namespace no other test (or earlier run) uses, so tests can share the node.
pub fn unique_namespace(label: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("t-{}-{}-{}", std::process::id(), n, label)
}

/// Panics, saying which Debian package to install, unless `program` is on `PATH`: a test
/// that runs a real program fails with that message rather than with an assertion about
/// what the missing program did not do.
pub fn require_program(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    assert!(
        found,
        "`{program}` is not installed: install it with `apt-get install {package}`"
    );
}

/// Waits until `condition` holds, checking every 20 ms, or panics after `timeout` naming `what`.
pub async fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `future` with a deadline, panicking with `what` if it does not finish in time.
pub async fn within<F: std::future::Future>(timeout: Duration, what: &str, future: F) -> F::Output {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {timeout:?}: {what}"))
}

/// A TCP forwarder on loopback to the broker that a test opens and closes: closed, it drops
/// new connections at once and cuts the ones going on, as a network outage between one
/// client and the broker would, while everyone else stays connected. Its task ends with the
/// runtime of the test.
pub struct TcpProxy {
    pub port: u16,
    open: tokio::sync::watch::Sender<bool>,
}

impl TcpProxy {
    /// Forwards a free loopback port to `127.0.0.1:target`; open or closed from the start.
    pub async fn start(target: u16, open: bool) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|err| panic!("no free port for the proxy: {err}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("proxy address: {err}"))
            .port();
        let (open, state) = tokio::sync::watch::channel(open);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut state = state.clone();
                if !*state.borrow_and_update() {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = state.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        TcpProxy { port, open }
    }

    /// Opens or closes the way through.
    pub fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }
}

/// A RabbitMQ cluster of private nodes on loopback (`scripts/rmq-node.sh`, the first node
/// seeding it and the others joining with `RMQ_JOIN`), each node with its own ports and
/// the first one's certificates. Every node is stopped (by the PIDs the script recorded)
/// when dropped, the joined ones first.
pub struct RabbitCluster {
    pub nodes: Vec<BrokerEnv>,
}

impl RabbitCluster {
    /// Starts `size` nodes under `root` (blocking: about 15 s a node).
    pub fn start(root: &std::path::Path, size: usize) -> RabbitCluster {
        let script = BrokerEnv::get().ctl;
        let mut cluster = RabbitCluster { nodes: Vec::new() };
        for index in 0..size {
            let dir = root.join(format!("node{index}"));
            let mut command = std::process::Command::new(&script);
            command.arg("start").arg(&dir);
            if index > 0 {
                command.env("RMQ_JOIN", root.join("node0"));
            }
            let output = command
                .output()
                .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
            assert!(
                output.status.success(),
                "node {index} of the cluster did not start: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            cluster.nodes.push(BrokerEnv::from_node(&dir));
        }
        cluster
    }

    /// Every node's amqps URL (the administrator's login), in order: a `url` list.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| node.amqps_url.clone())
            .collect()
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        for node in self.nodes.iter().rev() {
            let _ = std::process::Command::new(&node.ctl)
                .arg("stop")
                .arg(&node.node_dir)
                .output();
        }
    }
}

/// `openssl s_server` on a free loopback port, presenting a certificate: a TLS peer that
/// is not the broker, for the misuse tests (an expired or misnamed server certificate).
/// Stopped by its own PID when dropped.
pub struct TlsServer {
    pub port: u16,
    child: std::process::Child,
}

impl TlsServer {
    /// Serves `cert` and `key`; returns once the port takes connections (10 s at most).
    pub fn start(cert: &std::path::Path, key: &std::path::Path) -> TlsServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .unwrap_or_else(|err| panic!("no free port: {err}"));
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            // Its stdin stays open (it would end at EOF) and its chatter is dropped.
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run openssl s_server (apt-get install openssl): {err}")
            });
        let server = TlsServer { port, child };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "openssl s_server did not listen on {port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real `rsync --daemon` on a free loopback port, serving one module `pub`; stopped (by its
/// own PID) when dropped.
pub struct RsyncDaemon {
    pub port: u16,
    pub root: PathBuf,
    child: std::process::Child,
    _dir: TempDirGuard,
}

/// Removes a directory when dropped.
struct TempDirGuard(PathBuf);

impl Drop for TempDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl RsyncDaemon {
    /// Serves `root` as module `pub`. Panics (saying what to install) without rsync.
    pub fn start(root: &std::path::Path) -> RsyncDaemon {
        let dir = std::env::temp_dir().join(format!(
            "rsyncd-{}-{}",
            std::process::id(),
            unique_namespace("d")
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        let config = dir.join("rsyncd.conf");
        std::fs::write(
            &config,
            format!(
                "use chroot = no\nmax connections = 20\npid file = {}/rsyncd.pid\nlog file = {}/rsyncd.log\n[pub]\npath = {}\nread only = yes\n",
                dir.display(),
                dir.display(),
                root.display()
            ),
        )
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", config.display()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .unwrap_or_else(|err| panic!("no free port: {err}"));
        let child = std::process::Command::new("rsync")
            .arg("--daemon")
            .arg("--no-detach")
            .arg(format!("--config={}", config.display()))
            .arg(format!("--port={port}"))
            .arg("--address=127.0.0.1")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start `rsync --daemon` ({err}): install it with `apt-get install rsync`"
                )
            });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "rsync daemon did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RsyncDaemon {
            port,
            root: root.to_owned(),
            child,
            _dir: TempDirGuard(dir),
        }
    }

    /// `rsync://127.0.0.1:<port>/pub/`
    pub fn url(&self) -> String {
        format!("rsync://127.0.0.1:{}/pub/", self.port)
    }
}

impl Drop for RsyncDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a small mirror tree under `root` (nested directories, a symlink, 200 files of
/// varied sizes) for rsync tests; returns how many regular files it holds.
pub fn make_tree(root: &std::path::Path) -> usize {
    let write = |path: PathBuf, body: &[u8]| {
        std::fs::write(&path, body)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
    };
    for dir in ["dists/stable/main", "pool/main/p"] {
        std::fs::create_dir_all(root.join(dir))
            .unwrap_or_else(|err| panic!("cannot create {dir}: {err}"));
    }
    write(root.join("README"), b"a mirror for tests\n");
    write(root.join("dists/stable/Release"), b"Suite: stable\n");
    for idx in 0..200usize {
        let body: Vec<u8> = (0..(idx * 97 % 5000))
            .map(|byte| (byte * 31 + idx) as u8)
            .collect();
        write(root.join(format!("pool/main/p/pkg{idx}.deb")), &body);
    }
    let _ = std::os::unix::fs::symlink("README", root.join("README.link"));
    202
}

/// Whether every file and symlink under `left` is the same under `right`.
pub fn same_tree(left: &std::path::Path, right: &std::path::Path) -> bool {
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(left.join(&relative)) else {
            return false;
        };
        for entry in entries.flatten() {
            let path = relative.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                return false;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_symlink() {
                if std::fs::read_link(left.join(&path)).ok()
                    != std::fs::read_link(right.join(&path)).ok()
                {
                    return false;
                }
            } else if std::fs::read(left.join(&path)).ok() != std::fs::read(right.join(&path)).ok()
            {
                return false;
            }
        }
    }
    true
}

/// Which transport a test's manager and workers talk through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// The private RabbitMQ node, over TLS.
    #[default]
    Amqp,
    /// The in-process broker of `tunasync standalone`.
    Memory,
}

/// Runs the test body `$body` (an `async fn(Kind)`) once over each transport: the tests
/// `$name::amqp` and `$name::memory`. One set of test bodies holds the in-process broker to
/// the behaviour of the real one.
#[macro_export]
macro_rules! both_transports {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn amqp() {
                super::$body($crate::testkit::Kind::Amqp).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$body($crate::testkit::Kind::Memory).await;
            }
        }
    };
}
