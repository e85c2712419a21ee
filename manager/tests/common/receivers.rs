//! What alerts are sent to in tests: an HTTP receiver that records what it is posted, and
//! Debian's real Alertmanager, each on loopback and stopped by the test (by its handle or
//! the child's PID).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A free loopback port (nothing listens on it until a receiver is started there).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|err| panic!("no free port: {err}"))
}

/// Records each POST as (path, JSON body).
#[derive(Clone, Default)]
pub struct Posted(Arc<Mutex<Vec<(String, Value)>>>);

impl Posted {
    /// The bodies posted to `path`, in order.
    pub fn to(&self, path: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(to, _)| to == path)
            .map(|(_, body)| body.clone())
            .collect()
    }
}

/// Records a POST to `posted`.
async fn record(State(posted): State<Posted>, uri: Uri, Json(body): Json<Value>) -> StatusCode {
    posted.0.lock().unwrap().push((uri.path().to_owned(), body));
    StatusCode::OK
}

/// An HTTP receiver on `127.0.0.1:port`, up until dropped.
pub struct Receiver {
    stop: CancellationToken,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Receiver {
    pub async fn start(port: u16, posted: Posted) -> Receiver {
        let app = axum::Router::new()
            .fallback(axum::routing::post(record))
            .with_state(posted);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|err| panic!("cannot listen on port {port}: {err}"));
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
        });
        Receiver { stop }
    }
}

/// An HTTPS receiver on `127.0.0.1:port` with the certificate `cert` (and its `key`), up
/// until dropped.
pub struct TlsReceiver {
    handle: axum_server::Handle<std::net::SocketAddr>,
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl TlsReceiver {
    pub async fn start(port: u16, posted: Posted, cert: &Path, key: &Path) -> TlsReceiver {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
            .await
            .unwrap_or_else(|err| panic!("cannot load {}: {err}", cert.display()));
        let app = axum::Router::new()
            .fallback(axum::routing::post(record))
            .with_state(posted);
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|err| panic!("cannot listen on port {port}: {err}"));
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, tls)
            .unwrap_or_else(|err| panic!("cannot serve on port {port}: {err}"))
            .handle(handle.clone());
        tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        TlsReceiver { handle }
    }
}

/// Debian's `prometheus-alertmanager`, with its own config and storage, not clustered.
pub struct Alertmanager {
    pub url: String,
    child: Child,
    pub dir: PathBuf,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const BINARY: &str = "/usr/bin/prometheus-alertmanager";

impl Alertmanager {
    pub fn start(dir: &Path) -> Alertmanager {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: install it with `apt-get install prometheus-alertmanager`"
        );
        let dir = dir.join("alertmanager");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: \"null\"\n  group_wait: 1s\nreceivers:\n  - name: \"null\"\n",
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {BINARY}: {err}"));
        let url = format!("http://127.0.0.1:{port}");
        let alertmanager = Alertmanager { url, child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !alertmanager.ready() {
            assert!(
                Instant::now() < deadline,
                "Alertmanager did not get ready; its log:\n{}",
                std::fs::read_to_string(alertmanager.dir.join("alertmanager.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        alertmanager
    }

    fn ready(&self) -> bool {
        let Ok(mut stream) = std::net::TcpStream::connect(self.url.trim_start_matches("http://"))
        else {
            return false;
        };
        use std::io::{Read as _, Write as _};
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream
            .write_all(b"GET /-/ready HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
    }

    /// The active alerts, as `GET /api/v2/alerts` lists them.
    pub async fn alerts(&self) -> Vec<Value> {
        let response = reqwest::get(format!("{}/api/v2/alerts", self.url))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}
