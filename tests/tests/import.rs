//! `tunasync manager import` against a stand-in for a running tunasync (Go) manager that
//! answers its public API with records in tunasync v0.10.0's shape: the store is seeded,
//! a second import changes nothing, and the started manager shows the imported mirrors.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tunasync_e2e::site::{self, Files};
use tunasync_e2e::{Daemon, binary, wait_for};
use tunasync_shared::testkit::BrokerEnv;

const WORKERS: &str = r#"[{"id":"w1","url":"http://10.0.0.1:6000/","token":"REDACTED","last_online":"2026-11-30T08:00:00.5+08:00","last_register":"2026-11-01T08:00:00+08:00"}]"#;
const W1_JOBS: &str = r#"[{"name":"debian","worker":"w1","is_master":true,"status":"success","last_update":"2026-11-30T07:00:00.123456789+08:00","last_started":"2026-11-30T06:00:00+08:00","last_ended":"2026-11-30T07:00:00.123456789+08:00","next_schedule":"2026-11-30T09:00:00+08:00","upstream":"rsync://ftp.debian.org/debian/","size":"1.2T","error_msg":""},{"name":"pypi","worker":"w1","is_master":true,"status":"failed","last_update":"2026-11-29T01:00:00+08:00","last_started":"2026-11-30T05:00:00+08:00","last_ended":"2026-11-30T05:10:00+08:00","next_schedule":"2026-11-30T06:10:00+08:00","upstream":"https://pypi.org/","size":"20T","error_msg":"exit status 1"}]"#;

/// Answers `GET /workers` and `GET /workers/w1/jobs` as tunasync does, until the test ends.
fn fake_go_manager() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let request = String::from_utf8_lossy(&request[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = match path {
                "/workers" => ("200 OK", WORKERS),
                "/workers/w1/jobs" => ("200 OK", W1_JOBS),
                _ => ("404 Not Found", r#"{"error":"not found"}"#),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn import(conf: &Path, from: &str) -> (bool, String, String) {
    let output = Command::new(binary("tunasync"))
        .args(["manager", "import", "--from", from, "-c"])
        .arg(conf)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_go_managers_jobs_are_imported_once_and_shown() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let files = Files {
        dir,
        env: &env,
        namespace: "import",
    };
    let go = format!("http://127.0.0.1:{}", fake_go_manager());
    let port = site::free_port();
    let conf = files.manager_conf(port, "3s");

    let (ok, out, err) = import(&conf, &go);
    assert!(ok, "{out}{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>()[..3],
        [
            "imported w1/debian: success, last success 2026-11-30 07:00:00 +0800",
            "imported w1/pypi: failed, last success 2026-11-29 01:00:00 +0800",
            &format!(
                "2 imported, 0 kept, 0 skipped into {}",
                dir.join("state/tunasync.redb").display()
            ),
        ]
    );
    let (ok, out, _) = import(&conf, &go);
    assert!(ok);
    assert!(out.contains("0 imported, 2 kept, 0 skipped"), "{out}");
    let (ok, _, err) = import(&conf, "http://127.0.0.1:1");
    assert!(
        !ok && err.contains("cannot read http://127.0.0.1:1/workers"),
        "{err}"
    );

    // The manager shows them.
    let ctl = files.ctl_conf(port);
    let _manager = Daemon::start(
        "manager",
        &["manager", "-c", conf.to_str().unwrap()],
        &dir.join("manager.log"),
    );
    wait_for(Duration::from_secs(60), "the manager's API", || {
        site::status_of(&ctl, "w1", "debian").is_some()
    });
    let debian = site::status_of(&ctl, "w1", "debian").unwrap();
    assert_eq!(debian["size"], "1.2T");
    assert_eq!(debian["status"], "success");
    assert_eq!(debian["last_update"], "2026-11-30T07:00:00.123456789+08:00");
    let pypi = site::status_of(&ctl, "w1", "pypi").unwrap();
    assert_eq!(pypi["error_msg"], "exit status 1");
    // While the manager runs, its store is locked: the import says so.
    let (ok, _, err) = import(&conf, &go);
    assert!(
        !ok && err.contains("is the manager running? stop it first"),
        "{err}"
    );
}
