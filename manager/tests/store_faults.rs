//! The store when writes fail: a file-size limit of 0 (`RLIMIT_FSIZE`, what `ulimit -f` and
//! systemd's `LimitFSIZE` set) makes every write to the redb file fail, as a full disk
//! would. Its own test binary: the limit is the whole process's.
//!
//! Before, redb refused every later transaction after the failed one (`PreviousIo`) and the
//! manager never reopened the file: every commit failed forever, ingestion requeued every
//! batch once a second and `/readyz` said ready.

mod common;

use std::sync::{Arc, Mutex};

use common::{FakeWorker, Setup, TestManager, WAIT, wait_until_async, wait_welcomed};
use tunasync_shared::status::SyncStatus;
use uuid::Uuid;

/// Everything the manager logs, for counting.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Limits the size of files this process writes (raising it again works: the hard limit
/// stays unlimited).
fn limit_file_size(bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain system calls on values of this frame.
    let result = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) };
    assert_eq!(result, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_holds_the_events_and_the_store_recovers_by_itself() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let logs = Captured::default();
    tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_env_filter("info,lapin=warn")
        .init();
    // As the manager binary does: a write past the limit is an error, not SIGXFSZ's death.
    // SAFETY: setting a signal's disposition to SIG_IGN.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let manager = TestManager::start(Setup::default()).await;
    let worker = FakeWorker::start("w1", manager.broker_config()).await;
    worker.hello(&["m0"]).await;
    wait_welcomed(&worker).await;

    limit_file_size(0);
    let sent = 20;
    for idx in 0..sent {
        let report = worker.status(&format!("m{idx}"), SyncStatus::Failed, Uuid::new_v4(), None);
        worker.send(report).await;
    }
    wait_until_async(WAIT, "/readyz to say the store cannot commit", || async {
        manager.get("/readyz").await.status() == 503
    })
    .await;
    let ready = manager.get("/readyz").await;
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("the store cannot commit"),
        "{body}"
    );

    // API changes are refused at once, with a JSON error.
    let response = manager
        .authed(reqwest::Method::POST, "/workers/w1/jobs/m0/size")
        .json(&serde_json::json!({"name": "m0", "size": "1G"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("size"), "{body}");

    // More reports while the store cannot take them: they wait in the broker.
    for idx in 0..50 {
        let report = worker.status(
            &format!("later{idx}"),
            SyncStatus::Failed,
            Uuid::new_v4(),
            None,
        );
        worker.send(report).await;
    }
    limit_file_size(libc::RLIM_INFINITY);
    wait_until_async(WAIT, "the store to commit again", || async {
        manager.get("/readyz").await.status() == 200
    })
    .await;
    wait_until_async(WAIT, "every report", || async {
        manager.get_json("/jobs").await.as_array().unwrap().len() == sent + 50
    })
    .await;
    let jobs = manager.get_json("/jobs").await;
    for idx in [0, sent - 1] {
        let job = jobs
            .as_array()
            .unwrap()
            .iter()
            .find(|job| job["name"] == format!("m{idx}"))
            .unwrap();
        assert_eq!(job["status"], "failed");
    }
    assert_eq!(
        logs.count("store commit failed"),
        1,
        "the failure is logged once, not once per retry"
    );
    assert_eq!(logs.count("the store commits again"), 1);
    assert_eq!(logs.count("requeue"), 0, "nothing went back to the queue");
}
