//! The manager's disk fills up (a 16 MiB tmpfs the test mounts under the store): the real
//! manager binary keeps serving reads, stops acknowledging events (they stay in the broker),
//! says why in its log and `/readyz`, and catches up by itself when space returns: every
//! confirmed event stored once. Its own test binary: it mounts a filesystem (root, as CI).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tunasync_e2e::events::successful_run;
use tunasync_e2e::site::{self, Files};
use tunasync_e2e::wait_for;
use tunasync_shared::broker::{AmqpBroker, Outgoing, Role, Transport};
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::testkit::BrokerEnv;
use tunasync_shared::wire::{EventEnvelope, SequenceSource};

const WAIT: Duration = Duration::from_secs(120);
const MIRRORS: usize = 20;
const EVENTS_PER_MIRROR: usize = 100;
const EVENTS: usize = MIRRORS * EVENTS_PER_MIRROR;
const NAMESPACE: &str = "fault-disk";

/// A small tmpfs mounted for the test; unmounted when dropped (after the manager stops).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("mount runs");
        assert!(
            output.status.success(),
            "mounting a {size} tmpfs at {} needs root (CAP_SYS_ADMIN), as CI runs the tests: {}",
            at.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` with one file until nothing more fits.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if file
            .write_all(&chunk)
            .and_then(|()| file.sync_all())
            .is_err()
        {
            break;
        }
    }
    // The last bytes too: a write of one byte at a time until that fails.
    while file.write_all(&[0]).and_then(|()| file.sync_all()).is_ok() {}
}

fn success(worker: &WorkerId, mirror: &MirrorName, seq: &SequenceSource) -> EventEnvelope {
    // Some weight per run, so the history grows the file.
    successful_run(worker, mirror, seq, uuid::Uuid::new_v4(), "x".repeat(512))
}

/// The sum of `tunasync_mirror_total_transferred_bytes`: the events of this test stored.
fn stored(port: u16, ca: &Path) -> u64 {
    let Ok(text) = site::try_get_text(&format!("https://localhost:{port}/metrics"), ca) else {
        return 0;
    };
    text.lines()
        .filter(|line| line.starts_with("tunasync_mirror_total_transferred_bytes{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

fn queued(env: &BrokerEnv) -> Option<u64> {
    env.rabbitmqctl(&["list_queues", "--no-table-headers", "name", "messages"])
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .find(|(name, _)| *name == format!("{NAMESPACE}.manager"))
        .and_then(|(_, count)| count.trim().parse().ok())
}

/// `/readyz`: its status and body.
fn readyz(port: u16, ca: &Path) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .unwrap();
        match client
            .get(format!("https://localhost:{port}/readyz"))
            .send()
            .await
        {
            Ok(response) => (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            ),
            Err(err) => (0, err.to_string()),
        }
    })
}

#[test]
fn a_full_disk_holds_the_events_in_the_broker_until_space_returns() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    // Declared first, dropped last: unmounted after the manager has stopped.
    let disk = SmallDisk::mount(&dir.join("state"), "16m");
    let files = Files {
        dir,
        env: &env,
        namespace: NAMESPACE,
    };
    let (manager, port, ctl) = files.start_manager("");
    wait_for(WAIT, "the manager's queue", || queued(&env).is_some());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let shutdown = CancellationToken::new();
    let worker = WorkerId::new("disk-w1").unwrap();
    let broker = runtime.block_on(async {
        let broker = AmqpBroker::start(
            env.tls_config(NAMESPACE),
            Role::Worker(worker.clone()),
            shutdown.clone(),
        )
        .unwrap();
        broker
            .wait_connected(Duration::from_secs(30))
            .await
            .unwrap();
        broker
    });
    let seq = SequenceSource::new();
    let mirrors: Vec<MirrorName> = (0..MIRRORS)
        .map(|m| MirrorName::new(format!("d{m}")).unwrap())
        .collect();
    // Each publish returns once the broker confirmed it.
    let publish = |rounds: usize| -> usize {
        runtime.block_on(async {
            let mut confirmed = 0;
            for _ in 0..rounds {
                for mirror in &mirrors {
                    broker
                        .publish(Outgoing::event(&success(&worker, mirror, &seq)))
                        .await
                        .unwrap();
                    confirmed += 1;
                }
            }
            confirmed
        })
    };
    // One run of each mirror stored while there is room; then the disk fills, and the rest
    // comes.
    let mut confirmed = publish(1);
    wait_for(WAIT, "the first runs stored", || {
        stored(port, &env.ca_cert) == MIRRORS as u64
    });
    let filler = disk.0.join("filler");
    fill(&filler);
    confirmed += publish(EVENTS_PER_MIRROR - 1);
    shutdown.cancel();
    assert_eq!(confirmed, EVENTS);

    // Full: the manager says why, in /readyz and its log, and holds the events.
    wait_for(WAIT, "/readyz to say the store cannot commit", || {
        let (status, body) = readyz(port, &env.ca_cert);
        status == 503 && body.contains("the store cannot commit")
    });
    let (_, why) = readyz(port, &env.ca_cert);
    assert!(
        why.contains("No space left on device") || why.to_lowercase().contains("space"),
        "{why}"
    );
    wait_for(WAIT, "the failure in the log", || {
        manager.log_text().contains("store commit failed")
    });
    let held_at = stored(port, &env.ca_cert);
    assert!(
        (held_at as usize) < EVENTS,
        "the disk was full before the backlog was stored ({held_at})"
    );
    let held = queued(&env).unwrap_or(0);
    assert!(held > 0, "the events wait in the broker");
    // Reads are still served.
    assert_eq!(site::jobs(&ctl).len(), MIRRORS, "GET /jobs answers");
    let (status, _) = readyz(port, &env.ca_cert);
    assert_eq!(status, 503);

    // Space returns: the manager catches up by itself.
    let freed_at = Instant::now();
    std::fs::remove_file(&filler).unwrap();
    wait_for(WAIT, "every event in the store", || {
        stored(port, &env.ca_cert) >= EVENTS as u64
    });
    let caught_up = freed_at.elapsed();
    assert_eq!(
        stored(port, &env.ca_cert),
        EVENTS as u64,
        "0 lost, 0 applied twice"
    );
    wait_for(WAIT, "/readyz ready again", || {
        readyz(port, &env.ca_cert).0 == 200
    });
    wait_for(WAIT, "the manager's queue empty", || {
        queued(&env) == Some(0)
    });
    let failures = manager.log_text().matches("store commit failed").count();
    assert_eq!(failures, 1, "one line for the whole outage");
    assert!(manager.log_text().contains("the store commits again"));
    eprintln!(
        "fault disk-full: {EVENTS} sent, {confirmed} confirmed, {held_at} stored when the disk \
         filled, {held} held in the broker, {EVENTS} stored {caught_up:?} after space returned"
    );
}
