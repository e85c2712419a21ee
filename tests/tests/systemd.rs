//! systemd's `Type=notify` protocol, as the daemons speak it: the test listens on a
//! `NOTIFY_SOCKET` of its own (and sets `WATCHDOG_USEC`), starts the real binaries, and
//! sees `READY=1` only once the API answers (the worker: once it is connected), then
//! watchdog pings, then `STOPPING=1` on SIGTERM. A job does not inherit the socket.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tunasync_e2e::site::{self, Files, free_port, get_plain, try_get_text};
use tunasync_e2e::{Daemon, ctl_ok};
use tunasync_shared::testkit::BrokerEnv;

const WAIT: Duration = Duration::from_secs(60);
/// 0.3 s: the daemons ping every 0.15 s.
const WATCHDOG_USEC: &str = "300000";

struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        NotifySocket { socket, path }
    }

    fn env(&self) -> [(&str, &str); 2] {
        [
            ("NOTIFY_SOCKET", self.path.to_str().unwrap()),
            ("WATCHDOG_USEC", WATCHDOG_USEC),
        ]
    }

    /// The datagrams received until one has the line `line` (that one included), calling
    /// `at_line` as soon as it comes.
    fn until(&self, line: &str, mut at_line: impl FnMut(&str)) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let found = message.lines().any(|got| got == line);
            if found {
                at_line(&message);
            }
            seen.push(message);
            if found {
                return seen;
            }
        }
        panic!("no {line} within {WAIT:?}; got {seen:?}");
    }
}

#[test]
fn standalone_is_ready_once_its_api_answers_then_pings_the_watchdog_and_says_it_stops() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let notify = NotifySocket::bind(dir);
    let conf = dir.join("worker.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nname = \"solo\"\nmirror_dir = \"{0}/data\"\nlog_dir = \"{0}/log/{{{{.Name}}}}\"\n\
             interval = 1440\n\
             [[mirrors]]\nname = \"envcheck\"\nprovider = \"command\"\nupstream = \"none\"\n\
             command = \"/bin/sh -c 'echo notify=${{NOTIFY_SOCKET:-none}} watchdog=${{WATCHDOG_USEC:-none}}'\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let db = dir.join("state.redb");
    let mut solo = Daemon::start_with_env(
        "standalone",
        &[
            "standalone",
            "-c",
            conf.to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--db-file",
            db.to_str().unwrap(),
        ],
        &dir.join("standalone.log"),
        &notify.env(),
    );
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let before = notify.until("READY=1", |message| {
        let answer = get_plain(&healthz);
        assert_eq!(
            answer.map(|(status, _)| status),
            Some(200),
            "READY=1 ({message:?}) came before the API answered"
        );
        assert!(
            message.contains("STATUS=standalone: serving on"),
            "{message}"
        );
    });
    assert_eq!(before.len(), 1, "nothing before READY=1: {before:?}");
    let pings = notify.until("WATCHDOG=1", |_| {});
    assert_eq!(pings.len(), 1, "{pings:?}");
    notify.until("WATCHDOG=1", |_| {});

    let ctl = dir.join("ctl.conf");
    std::fs::write(
        &ctl,
        format!("manager_addr = \"127.0.0.1\"\nmanager_port = {port}\n"),
    )
    .unwrap();
    site::wait_status(&ctl, "solo", "envcheck", "success", WAIT);
    let log = ctl_ok(&ctl, &["logs", "-w", "solo", "envcheck"]);
    assert!(
        log.contains("notify=none watchdog=none"),
        "a job must not inherit the daemon's systemd variables: {log}"
    );

    let pid = libc::pid_t::try_from(solo.pid()).unwrap();
    // SAFETY: kill(2) on our own child's PID; no memory is involved.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    notify.until("STOPPING=1", |_| {});
    // (A second SIGTERM changes nothing: the stop is under way.)
    let status = solo.stop();
    assert!(status.is_some_and(|status| status.success()), "{status:?}");
}

#[test]
fn the_manager_is_ready_once_its_api_answers_and_a_worker_once_it_is_connected() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let files = Files {
        dir,
        env: &env,
        namespace: "sd-notify",
    };
    let port = free_port();
    let conf = files.manager_conf(port, "3s");
    let notify = NotifySocket::bind(dir);
    let _manager = Daemon::start_with_env(
        "manager",
        &["manager", "-c", conf.to_str().unwrap()],
        &dir.join("manager.log"),
        &notify.env(),
    );
    let healthz = format!("https://localhost:{port}/healthz");
    notify.until("READY=1", |message| {
        let answer = try_get_text(&healthz, &env.ca_cert);
        assert!(
            answer.is_ok(),
            "READY=1 ({message:?}) came before the API answered: {answer:?}"
        );
    });
    notify.until("WATCHDOG=1", |_| {});

    let worker_dir = dir.join("w");
    std::fs::create_dir_all(&worker_dir).unwrap();
    let worker_notify = NotifySocket::bind(&worker_dir);
    let worker_conf = files.worker_conf(
        "w1",
        &files.plain_broker(),
        "[[mirrors]]\nname = \"m\"\nprovider = \"command\"\ncommand = \"/bin/true\"\n",
    );
    let _worker = Daemon::start_with_env(
        "w1",
        &["worker", "-c", worker_conf.to_str().unwrap()],
        &dir.join("w1.log"),
        &worker_notify.env(),
    );
    worker_notify.until("READY=1", |message| {
        assert!(
            message.contains("STATUS=worker w1: connected to the broker"),
            "{message}"
        );
    });
    worker_notify.until("WATCHDOG=1", |_| {});
}
