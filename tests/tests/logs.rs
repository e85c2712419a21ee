//! The daemons' logs stay readable: a command the broker returns (its worker's queue is
//! gone) is one short line in the manager's log, not lapin's dump of the whole message,
//! and a log file gets no colour codes.

use std::time::Duration;

use tunasync_e2e::site::{self, Files};
use tunasync_e2e::{Daemon, tunasynctl, wait_for};
use tunasync_shared::testkit::BrokerEnv;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_returned_command_is_one_short_line() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let files = Files {
        dir,
        env: &env,
        namespace: "returned",
    };
    let (manager, _port, ctl) = files.start_manager("");
    let conf = files.worker_conf(
        "w1",
        &files.plain_broker(),
        "[[mirrors]]\nname = \"m\"\nprovider = \"command\"\ncommand = \"/bin/true\"\n",
    );
    let mut worker = Daemon::start(
        "w1",
        &["worker", "-c", conf.to_str().unwrap()],
        &dir.join("w1.log"),
    );
    site::wait_status(&ctl, "w1", "m", "success", WAIT);
    worker.stop();
    env.rabbitmqctl(&["delete_queue", "returned.worker.w1"]);

    let output = tunasynctl(&ctl, &["start", "-w", "w1", "m"]);
    assert!(!output.status.success(), "nobody can take it");
    wait_for(WAIT, "the manager's line about it", || {
        manager
            .log_text()
            .contains("the broker returned a message no queue takes")
    });
    let log = manager.log_text();
    assert!(
        !log.contains("Server returned us a message"),
        "lapin's dump is filtered out"
    );
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 1000, "a log line of {longest} characters");
    assert!(!log.contains('\u{1b}'), "no colour codes in a log file");
    let line = log
        .lines()
        .find(|line| line.contains("no queue takes"))
        .unwrap();
    assert!(line.contains("kind=\"command\""), "{line}");
    assert!(line.contains("routing_key=w1"), "{line}");
    assert!(line.contains("reply=NO_ROUTE"), "{line}");
}

/// A stranger retrying with a wrong token is refused every time and logged once.
#[test]
fn refused_changes_are_logged_once_per_peer_and_reason() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let files = Files {
        dir,
        env: &env,
        namespace: "refused",
    };
    let (manager, port, _ctl) = files.start_manager("");
    let wrong = dir.join("wrong-token");
    std::fs::write(&wrong, "not-a-token-of-this-site\n").unwrap();
    let ctl = dir.join("stranger.conf");
    std::fs::write(
        &ctl,
        format!(
            "manager_addr = \"localhost\"\nmanager_port = {port}\nca_cert = {:?}\ntoken_file = {wrong:?}\n",
            env.ca_cert
        ),
    )
    .unwrap();
    for _ in 0..20 {
        let output = tunasynctl(&ctl, &["flush"]);
        assert!(!output.status.success());
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("invalid token"),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    wait_for(WAIT, "the refusal in the log", || {
        manager.log_text().contains("API change refused")
    });
    let lines = manager
        .log_text()
        .lines()
        .filter(|line| line.contains("API change refused"))
        .count();
    assert_eq!(lines, 1, "20 refusals, one line");
}
