//! Alerts and maintenance through the real binaries: a real worker's failing mirror opens an
//! incident that Debian's real Alertmanager shows and `tunasynctl alerts` lists; tunasynctl
//! puts the worker in maintenance and takes it out again.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tunasync_e2e::site::{self, Files, get_plain};
use tunasync_e2e::{Daemon, ctl_ok, wait_for};
use tunasync_shared::testkit::BrokerEnv;

const WAIT: Duration = Duration::from_secs(90);
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// The active alerts' (alertname, mirror) pairs.
fn active(alertmanager: &str) -> Vec<(String, String)> {
    let Some((200, body)) = get_plain(&format!("{alertmanager}/api/v2/alerts")) else {
        return Vec::new();
    };
    let alerts: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
    alerts
        .iter()
        .map(|alert| {
            let label = |name: &str| alert["labels"][name].as_str().unwrap_or("").to_owned();
            (label("alertname"), label("mirror"))
        })
        .collect()
}

#[test]
fn a_failing_mirror_reaches_alertmanager_and_tunasynctl_drives_maintenance() {
    assert!(
        Path::new(ALERTMANAGER).exists(),
        "{ALERTMANAGER} is missing: install it with `apt-get install prometheus-alertmanager`"
    );
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let am_config = dir.join("alertmanager.yml");
    std::fs::write(
        &am_config,
        "route:\n  receiver: \"null\"\n  group_wait: 1s\nreceivers:\n  - name: \"null\"\n",
    )
    .unwrap();
    let am_port = site::free_port();
    let _alertmanager = Daemon::start_program(
        "alertmanager",
        Path::new(ALERTMANAGER),
        &[
            &format!("--config.file={}", am_config.display()),
            &format!("--storage.path={}", dir.join("am-data").display()),
            &format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=",
        ],
        &dir.join("alertmanager.log"),
    );
    let alertmanager = format!("http://127.0.0.1:{am_port}");
    wait_for(WAIT, "Alertmanager to be ready", || {
        get_plain(&format!("{alertmanager}/-/ready")).is_some_and(|(status, _)| status == 200)
    });

    let files = Files {
        dir,
        env: &env,
        namespace: "alerts",
    };
    let alerts = format!(
        "\n[alerts]\nfailures = 1\ninterval = \"200ms\"\n\
         [[alerts.sinks]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"{alertmanager}/api/v2/alerts\"\n"
    );
    let (_manager, _port, ctl) = files.start_manager(&alerts);
    assert_eq!(
        ctl_ok(&ctl, &["alerts"]),
        "No open incidents\nUndelivered: am 0\n"
    );
    let mirrors = "[[mirrors]]\nname = \"good\"\nprovider = \"command\"\ncommand = \"/bin/true\"\n\
                   [[mirrors]]\nname = \"bad\"\nprovider = \"command\"\ncommand = \"/bin/false\"\nretry = 2\n";
    let conf = files.worker_conf("w1", &files.plain_broker(), mirrors);
    let _worker = Daemon::start(
        "w1",
        &["worker", "-c", conf.to_str().unwrap()],
        &dir.join("w1.log"),
    );
    site::wait_status(&ctl, "w1", "good", "success", WAIT);
    site::wait_status(&ctl, "w1", "bad", "failed", WAIT);
    wait_for(WAIT, "Alertmanager to show bad failing", || {
        active(&alertmanager) == [("TunasyncMirrorFailing".to_owned(), "bad".to_owned())]
    });
    let listed = ctl_ok(&ctl, &["alerts"]);
    let rows: Vec<&str> = listed.lines().collect();
    assert!(rows[0].starts_with("ID  RULE"), "{listed}");
    assert!(
        rows[1].contains("failures  w1      bad")
            && rows[1].contains("bad on w1: the last run failed"),
        "two attempts, one failed run: {listed}"
    );

    // Maintenance through tunasynctl, shown by the API, and ended.
    assert_eq!(
        ctl_ok(
            &ctl,
            &["maintenance", "on", "-w", "w1", "--message", "disk swap"]
        ),
        "Maintenance of worker w1 started: disk swap\n"
    );
    let list: Value = serde_json::from_str(&ctl_ok(&ctl, &["maintenance", "list"])).unwrap();
    assert_eq!(list[0]["worker"], "w1", "{list}");
    assert_eq!(list[0]["message"], "disk swap", "{list}");
    let job = site::status_of(&ctl, "w1", "bad").unwrap();
    assert_eq!(job["maintenance"], "disk swap", "{job}");
    assert_eq!(
        ctl_ok(&ctl, &["maintenance", "off", "-w", "w1"]),
        "Maintenance of worker w1 ended\n"
    );
    let list: Value = serde_json::from_str(&ctl_ok(&ctl, &["maintenance", "list"])).unwrap();
    assert_eq!(list, Value::Array(Vec::new()));
}
