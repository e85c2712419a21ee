//! The whole cluster as an operator runs it: the real `tunasync manager`, two
//! `tunasync worker`s (one hardened: its own broker user, client certificate, EXTERNAL
//! login), a private broker over TLS and a real `rsync --daemon`, driven only through
//! tunasynctl, the HTTP API and files on disk.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tunasync_e2e::site::{self, Files, get_json, jobs, status_of};
use tunasync_e2e::{Daemon, ctl_ok, tunasynctl, wait_for};
use tunasync_shared::testkit::{BrokerEnv, RsyncDaemon, make_tree, same_tree};

const WAIT: Duration = Duration::from_secs(60);

fn wait_status(ctl: &Path, worker: &str, mirror: &str, status: &str) -> Value {
    site::wait_status(ctl, worker, mirror, status, WAIT)
}

#[test]
fn a_cluster_of_real_binaries() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let upstream = dir.join("upstream");
    make_tree(&upstream);
    let rsyncd = RsyncDaemon::start(&upstream);
    let files = Files {
        dir,
        env: &env,
        namespace: "cluster",
    };
    let port = site::free_port();
    let manager_conf = files.manager_conf(port, "3s");
    let ctl = files.ctl_conf(port);
    let mut manager = Daemon::start(
        "manager",
        &["manager", "-c", manager_conf.to_str().unwrap()],
        &dir.join("manager.log"),
    );
    wait_for(WAIT, "the manager's API", || {
        tunasynctl(&ctl, &["workers"]).status.success()
    });

    // Worker w1: plain mode (the cluster-wide broker login).
    let trigger = dir.join("slow.trigger");
    let plain_broker = files.plain_broker();
    let w1_mirrors = format!(
        r#"
[[mirrors]]
name = "rsync-real"
upstream = "{upstream}"

[[mirrors]]
name = "cmd-ok"
provider = "command"
upstream = "https://example.org/ok/"
command = "/bin/sh -c 'echo Total size is 12.5M'"
size_pattern = "Total size is ([0-9\\.]+[KMGTP]?)"

[[mirrors]]
name = "cmd-fail"
provider = "command"
command = "/bin/sh -c 'echo broken; exit 3'"
retry = 1

[[mirrors]]
name = "cmd-slow"
provider = "command"
command = "/bin/sh -c 'if test -e {trigger}; then exec sleep 120; fi'"
"#,
        upstream = rsyncd.url(),
        trigger = trigger.display()
    );
    let w1_conf = files.worker_conf("w1", &plain_broker, &w1_mirrors);
    let check = std::process::Command::new(tunasync_e2e::binary("tunasync"))
        .args(["worker", "--check", "-c", w1_conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(check.status.success());
    let resolved: Vec<Value> = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(resolved.len(), 4);
    let mut w1 = Daemon::start(
        "w1",
        &["worker", "-c", w1_conf.to_str().unwrap()],
        &dir.join("w1.log"),
    );

    // Worker hw1: hardened (its own broker user; client certificate; EXTERNAL).
    let hardened_broker = files.hardened_broker("hw1");
    let hw1_conf = files.worker_conf(
        "hw1",
        &hardened_broker,
        "[[mirrors]]\nname = \"hard-cmd\"\nprovider = \"command\"\ncommand = \"/bin/echo hello\"\n",
    );
    let _hw1 = Daemon::start(
        "hw1",
        &["worker", "-c", hw1_conf.to_str().unwrap()],
        &dir.join("hw1.log"),
    );

    // Every job's first run, as the status page shows it.
    let rsync = wait_status(&ctl, "w1", "rsync-real", "success");
    assert!(
        same_tree(&upstream, &dir.join("data/w1/rsync-real")),
        "the tree is mirrored byte for byte"
    );
    assert!(rsync["size"].as_str().unwrap().ends_with('K'), "{rsync}");
    assert_eq!(
        wait_status(&ctl, "w1", "cmd-ok", "success")["size"],
        "12.5M"
    );
    let failed = wait_status(&ctl, "w1", "cmd-fail", "failed");
    assert_eq!(failed["error_msg"], "exit status 3");
    let fail_logs: Vec<String> = std::fs::read_dir(dir.join("log/w1/cmd-fail"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        fail_logs.iter().any(|name| name.ends_with(".log.fail")),
        "{fail_logs:?}"
    );
    wait_status(&ctl, "w1", "cmd-slow", "success");
    wait_status(&ctl, "hw1", "hard-cmd", "success");

    // tunasync.json keeps its keys and formats.
    let web = get_json(&format!("https://localhost:{port}/jobs"), &env.ca_cert);
    let first = web[0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "is_master",
            "last_ended",
            "last_ended_ts",
            "last_started",
            "last_started_ts",
            "last_update",
            "last_update_ts",
            "name",
            "next_schedule",
            "next_schedule_ts",
            "size",
            "status",
            "upstream"
        ]
    );
    let formatted = ctl_ok(&ctl, &["list", "-a", "-f", "{{.Name}} {{.Status}}"]);
    assert!(
        formatted.contains("cmd-fail failed\n") && formatted.contains("rsync-real success\n"),
        "{formatted}"
    );

    // start past the concurrency limit (1): cmd-slow holds the slot, cmd-ok waits; -f runs it.
    std::fs::write(&trigger, "").unwrap();
    assert_eq!(
        ctl_ok(&ctl, &["start", "-w", "w1", "cmd-slow"]),
        "Successfully send the command\n"
    );
    wait_status(&ctl, "w1", "cmd-slow", "syncing");
    let before = status_of(&ctl, "w1", "cmd-ok").unwrap()["last_update"].clone();
    ctl_ok(&ctl, &["start", "-w", "w1", "cmd-ok"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        status_of(&ctl, "w1", "cmd-ok").unwrap()["last_update"],
        before,
        "waits for the slot"
    );
    ctl_ok(&ctl, &["start", "-f", "-w", "w1", "cmd-ok"]);
    wait_for(WAIT, "the forced run", || {
        status_of(&ctl, "w1", "cmd-ok").unwrap()["last_update"] != before
    });
    assert_eq!(
        status_of(&ctl, "w1", "cmd-slow").unwrap()["status"],
        "syncing"
    );

    // stop → paused; disable + flush → gone; restart; set-size.
    ctl_ok(&ctl, &["stop", "-w", "w1", "cmd-slow"]);
    wait_status(&ctl, "w1", "cmd-slow", "paused");
    ctl_ok(&ctl, &["disable", "-w", "w1", "cmd-fail"]);
    wait_status(&ctl, "w1", "cmd-fail", "disabled");
    assert_eq!(
        ctl_ok(&ctl, &["flush"]),
        "Successfully flushed disabled jobs\n"
    );
    assert!(!jobs(&ctl).iter().any(|job| job["name"] == "cmd-fail"));
    ctl_ok(&ctl, &["restart", "-w", "w1", "cmd-ok"]);
    assert_eq!(
        ctl_ok(&ctl, &["set-size", "-w", "w1", "rsync-real", "99G"]),
        "Successfully updated mirror size to 99G\n"
    );
    assert_eq!(status_of(&ctl, "w1", "rsync-real").unwrap()["size"], "99G");
    let history: Vec<Value> =
        serde_json::from_str(&ctl_ok(&ctl, &["history", "-w", "w1", "cmd-ok"])).unwrap();
    assert!(history.len() >= 2, "{history:?}");
    // The job's latest log, read from the worker through the manager.
    assert_eq!(
        ctl_ok(&ctl, &["logs", "-w", "w1", "-n", "1", "cmd-ok"]),
        "Total size is 12.5M\n"
    );
    assert_eq!(ctl_ok(&ctl, &["logs", "-w", "w1", "cmd-fail"]), "broken\n");
    // A past run's log, by the run id the history shows.
    let first_run = history
        .iter()
        .rev()
        .find_map(|run| run["run_id"].as_str())
        .unwrap();
    assert!(
        ctl_ok(&ctl, &["logs", "-w", "w1", "--run", first_run, "cmd-ok"])
            .ends_with("Total size is 12.5M\n")
    );
    let refused = tunasynctl(&ctl, &["logs", "-w", "w1", "--run", "nonsense", "cmd-ok"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a run id"));
    // Following a job that is not running prints its log and ends.
    assert_eq!(
        ctl_ok(&ctl, &["logs", "-f", "-w", "w1", "cmd-ok"]),
        "Total size is 12.5M\n"
    );
    // Without the token, changes are refused.
    std::fs::write(dir.join("no-token.conf"), "").unwrap();
    let unauthorised = tunasynctl(
        &dir.join("no-token.conf"),
        &[
            "-m",
            "localhost",
            "-p",
            &port.to_string(),
            "--ca-cert",
            env.ca_cert.to_str().unwrap(),
            "flush",
        ],
    );
    assert!(!unauthorised.status.success());
    let stderr = String::from_utf8_lossy(&unauthorised.stderr);
    assert!(stderr.contains("authentication required"), "{stderr}");

    // reload after editing the file: a new job appears and runs.
    let edited = format!(
        "{w1_mirrors}\n[[mirrors]]\nname = \"cmd-new\"\nprovider = \"command\"\ncommand = \"/bin/true\"\n"
    );
    files.worker_conf("w1", &plain_broker, &edited);
    assert_eq!(
        ctl_ok(&ctl, &["reload", "-w", "w1"]),
        "Successfully send the command\n"
    );
    wait_status(&ctl, "w1", "cmd-new", "success");
    // And by SIGHUP.
    let edited = format!(
        "{edited}\n[[mirrors]]\nname = \"cmd-hup\"\nprovider = \"command\"\ncommand = \"/bin/true\"\n"
    );
    files.worker_conf("w1", &plain_broker, &edited);
    w1.hangup();
    wait_status(&ctl, "w1", "cmd-hup", "success");

    // A worker killed with SIGKILL: offline, and its running job failed.
    ctl_ok(&ctl, &["start", "-w", "w1", "cmd-slow"]);
    wait_status(&ctl, "w1", "cmd-slow", "syncing");
    w1.kill();
    wait_for(WAIT, "w1 offline", || {
        let workers: Vec<Value> = serde_json::from_str(&ctl_ok(&ctl, &["workers"])).unwrap();
        workers
            .iter()
            .any(|worker| worker["id"] == "w1" && worker["online"] == false)
    });
    let dead = status_of(&ctl, "w1", "cmd-slow").unwrap();
    assert_eq!(
        (dead["status"].as_str(), dead["error_msg"].as_str()),
        (Some("failed"), Some("worker offline"))
    );

    // A manager restart loses nothing.
    let before_restart = jobs(&ctl);
    assert_eq!(manager.stop().map(|status| status.success()), Some(true));
    drop(manager);
    let mut manager = Daemon::start(
        "manager",
        &["manager", "-c", manager_conf.to_str().unwrap()],
        &dir.join("manager2.log"),
    );
    wait_for(WAIT, "the restarted manager", || {
        tunasynctl(&ctl, &["workers"]).status.success()
    });
    let after_restart = jobs(&ctl);
    let names = |list: &[Value]| {
        list.iter()
            .map(|job| (job["name"].clone(), job["last_update_ts"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&after_restart), names(&before_restart));

    // A broker restart: both sides carry on.
    env.restart_broker();
    let before = status_of(&ctl, "hw1", "hard-cmd").unwrap()["last_update"].clone();
    wait_for(WAIT, "a command after the broker restart", || {
        tunasynctl(&ctl, &["start", "-w", "hw1", "hard-cmd"])
            .status
            .success()
    });
    wait_for(WAIT, "a run after the broker restart", || {
        status_of(&ctl, "hw1", "hard-cmd").is_some_and(|job| job["last_update"] != before)
    });

    // rm-worker.
    assert_eq!(
        ctl_ok(&ctl, &["rm-worker", "-w", "w1"]),
        "Successfully removed the worker\n"
    );
    assert!(!jobs(&ctl).iter().any(|job| job["name"] == "rsync-real"));
    manager.stop();
}
