//! `tunasync standalone`: the manager and a worker in one process, no broker. The real
//! binary syncs from a real rsync daemon, serves the API and the page over plain HTTP on
//! loopback, takes tunasynctl's commands (trusted from loopback with no manager.conf), and
//! runs a pool of one member, keeps what it committed across a SIGKILL.

use std::path::Path;
use std::time::Duration;

use tunasync_e2e::site::{self, free_port, get_plain};
use tunasync_e2e::{Daemon, binary, ctl_ok};
use tunasync_shared::testkit::{RsyncDaemon, make_tree, same_tree};

const WAIT: Duration = Duration::from_secs(60);

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
}

/// worker.conf of worker `solo` without `[broker]`: an rsync mirror of `upstream` and a
/// command mirror.
fn solo_conf(dir: &Path, upstream: &str) -> std::path::PathBuf {
    let path = dir.join("worker.conf");
    write(
        &path,
        &format!(
            "[global]\nname = \"solo\"\nmirror_dir = \"{root}/data\"\nlog_dir = \"{root}/log/{{{{.Name}}}}\"\n\
             concurrent = 2\ninterval = 1440\nheartbeat_interval = \"1s\"\n\
             [manager]\napi_base = \"http://localhost:14242\"\n\
             [[mirrors]]\nname = \"demo-rsync\"\nprovider = \"rsync\"\nupstream = {upstream:?}\n\
             [[mirrors]]\nname = \"demo-command\"\nprovider = \"command\"\ncommand = \"/bin/echo synced\"\nupstream = \"none\"\n\
             [[mirrors]]\nname = \"demo-pooled\"\nprovider = \"command\"\ncommand = \"/bin/echo pooled\"\nupstream = \"none\"\npool = \"solo-pool\"\n",
            root = dir.display(),
        ),
    );
    path
}

fn start(dir: &Path, conf: &Path, port: u16, log: &str) -> Daemon {
    Daemon::start(
        "standalone",
        &[
            "standalone",
            "-c",
            conf.to_str().unwrap(),
            "--addr",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--db-file",
            dir.join("state/tunasync.redb").to_str().unwrap(),
        ],
        &dir.join(log),
    )
}

#[test]
fn one_process_syncs_serves_takes_commands_and_keeps_what_it_committed() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let upstream = dir.join("upstream");
    make_tree(&upstream);
    let rsyncd = RsyncDaemon::start(&upstream);
    let conf = solo_conf(dir, &rsyncd.url());
    let port = free_port();
    // Plain HTTP (no ca_cert) on loopback, no token: trusted as a loopback peer.
    let ctl = dir.join("ctl.conf");
    write(
        &ctl,
        &format!("manager_addr = \"127.0.0.1\"\nmanager_port = {port}\n"),
    );

    let mut solo = start(dir, &conf, port, "standalone.log");
    let synced = site::wait_status(&ctl, "solo", "demo-rsync", "success", WAIT);
    assert!(same_tree(&upstream, &dir.join("data/demo-rsync")));
    site::wait_status(&ctl, "solo", "demo-command", "success", WAIT);
    // A pool of one member: the manager hands the run out through the pool's queue.
    site::wait_status(&ctl, "solo-pool", "demo-pooled", "success", WAIT);

    // Commands go through the in-process broker and are answered.
    ctl_ok(&ctl, &["disable", "-w", "solo", "demo-command"]);
    site::wait_status(&ctl, "solo", "demo-command", "disabled", WAIT);
    ctl_ok(&ctl, &["start", "-w", "solo", "demo-command"]);
    site::wait_status(&ctl, "solo", "demo-command", "success", WAIT);
    let logs = ctl_ok(&ctl, &["logs", "-w", "solo", "-n", "5", "demo-command"]);
    assert!(
        logs.contains("synced"),
        "the run's log through the manager: {logs}"
    );
    let history = ctl_ok(&ctl, &["history", "-w", "solo", "demo-command"]);
    assert!(history.matches("success").count() >= 2, "{history}");

    // The page, tunasync.json and the metrics, over plain HTTP.
    let base = format!("http://127.0.0.1:{port}");
    let (status, page) = get_plain(&format!("{base}/")).expect("the status page");
    assert_eq!(status, 200);
    assert!(page.contains("demo-rsync"));
    let (status, metrics) = get_plain(&format!("{base}/metrics")).expect("the metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("tunasync_workers"), "{metrics}");
    let log = solo.log_text();
    assert!(log.contains("no broker"), "it says how it runs: {log}");
    assert!(
        log.contains("[manager] is ignored: in standalone mode"),
        "{log}"
    );

    // As if the machine died: what was committed is there on the next start, before any
    // new run (the interval is a day, so the next run is a day after the stored one).
    solo.kill();
    let mut solo = start(dir, &conf, port, "standalone-2.log");
    let after = site::wait_status(&ctl, "solo", "demo-rsync", "success", WAIT);
    assert_eq!(after["last_update"], synced["last_update"], "{after}");
    assert_eq!(after["size"], synced["size"]);
    let history = ctl_ok(&ctl, &["history", "-w", "solo", "demo-command"]);
    assert!(history.matches("success").count() >= 2, "{history}");

    // SIGTERM: the worker stops first, then the manager; a clean exit.
    let status = solo.stop().expect("it exits on SIGTERM");
    assert!(status.success(), "{status:?}: {}", solo.log_text());
}

#[test]
fn the_cluster_daemons_still_need_a_broker_and_say_where_to_go() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let conf = solo_conf(dir, "rsync://127.0.0.1:1/pub/");
    let worker = std::process::Command::new(binary("tunasync"))
        .args(["worker", "--check", "-c", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!worker.status.success());
    let said = String::from_utf8_lossy(&worker.stderr);
    assert!(
        said.contains("`broker`") && said.contains("required"),
        "{said}"
    );

    let manager_conf = dir.join("manager.conf");
    write(&manager_conf, "[server]\nport = 1\n");
    let manager = std::process::Command::new(binary("tunasync"))
        .args(["manager", "--check", "-c", manager_conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!manager.status.success());
    let said = String::from_utf8_lossy(&manager.stderr);
    assert!(
        said.contains("broker") && said.contains("standalone"),
        "{said}"
    );

    // A bad worker.conf stops standalone at once, naming the file and the key.
    write(&conf, "[global]\nname = \"bad name!\"\n");
    let solo = std::process::Command::new(binary("tunasync"))
        .args(["standalone", "-c", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!solo.status.success());
    let said = String::from_utf8_lossy(&solo.stderr);
    assert!(
        said.contains("worker.conf") && said.contains("global.name"),
        "{said}"
    );
}
