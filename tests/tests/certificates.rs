//! A manager serving a certificate that has expired, or that names another host: the real
//! tunasynctl refuses it in the handshake, before its token is sent, and says why.

use std::time::Duration;

use tunasync_e2e::site::{Files, free_port};
use tunasync_e2e::{Daemon, tunasynctl, wait_for};
use tunasync_shared::testkit::BrokerEnv;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn tunasynctl_refuses_an_expired_or_misnamed_manager_certificate() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], i32, &str); 2] = [
        ("expired", &["localhost", "127.0.0.1"], -1, "expired"),
        ("misnamed", &["elsewhere.example"], 30, "notvalidforname"),
    ];
    for (label, hosts, days, refusal) in cases {
        let dir = temp.path().join(label);
        std::fs::create_dir(&dir).unwrap();
        let certs = dir.join("certs");
        std::fs::create_dir(&certs).unwrap();
        let (cert, key) = env.server_identity(&certs, hosts, days);
        let files = Files {
            dir: &dir,
            env: &env,
            namespace: label,
        };
        let port = free_port();
        let conf = files.manager_conf(port, "3s");
        let text = std::fs::read_to_string(&conf).unwrap();
        let text = text
            .replace(&format!("{:?}", env.server_cert), &format!("{cert:?}"))
            .replace(&format!("{:?}", env.server_key), &format!("{key:?}"));
        std::fs::write(&conf, text).unwrap();
        let manager = Daemon::start(
            "manager",
            &["manager", "-c", conf.to_str().unwrap()],
            &dir.join("manager.log"),
        );
        wait_for(WAIT, "the manager's API", || {
            manager.log_text().contains("API listening")
        });
        let ctl = files.ctl_conf(port);
        let output = tunasynctl(&ctl, &["list", "--all"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{label}: tunasynctl went on");
        assert!(
            stderr.to_lowercase().replace(' ', "").contains(refusal),
            "{label}: {stderr}"
        );
    }
}
