//! The HTTP API against its own description: schemathesis (PyPI) reads the manager's
//! `/openapi.json` and sends generated requests, valid and invalid, to every operation of a
//! live manager with a worker and a job: no answer may be a 5xx, and every status code,
//! content type, header and body must be one the description allows.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tunasync_e2e::Daemon;
use tunasync_e2e::site::{self, Files, TOKEN};
use tunasync_shared::testkit::BrokerEnv;

const WAIT: Duration = Duration::from_secs(60);

/// Where `.ci/run` installs schemathesis, unless `SCHEMATHESIS` names its `st`.
const DEFAULT_ST: &str = "/opt/schemathesis/bin/st";

fn schemathesis() -> PathBuf {
    let st = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ST));
    assert!(
        st.is_file(),
        "schemathesis is not installed at {}: install it with \
         `python3 -m venv /opt/schemathesis && /opt/schemathesis/bin/pip install schemathesis` \
         (.ci/run does), or set SCHEMATHESIS to its `st`",
        st.display()
    );
    st
}

#[test]
fn every_operation_answers_as_described_to_generated_requests() {
    let st = schemathesis();
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let files = Files {
        dir,
        env: &env,
        namespace: "openapi",
    };
    let (manager, port, ctl) = files.start_manager("");
    // The names the description's examples use, so the examples reach a real job.
    let conf = files.worker_conf(
        "worker1",
        &files.plain_broker(),
        "[[mirrors]]\nname = \"debian\"\nprovider = \"command\"\ncommand = \"/bin/echo synced\"\n",
    );
    let _worker = Daemon::start(
        "worker1",
        &["worker", "-c", conf.to_str().unwrap()],
        &dir.join("worker1.log"),
    );
    site::wait_status(&ctl, "worker1", "debian", "success", WAIT);

    let report = dir.join("junit.xml");
    let output = Command::new(&st)
        .args([
            "run",
            &format!("https://localhost:{port}/openapi.json"),
            "--tls-verify",
            env.ca_cert.to_str().unwrap(),
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "150",
            "--seed",
            "14",
            "--request-timeout",
            "20",
            "--workers",
            "2",
            "--report",
            "junit",
            "--report-junit-path",
            report.to_str().unwrap(),
        ])
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(dir)
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found answers that break the description:\n{stdout}\n{stderr}\n\
         manager log:\n{}",
        manager.log_text()
    );
    // The manager is still whole afterwards, and nothing it was sent made it panic.
    let ready = site::get_json(&format!("https://localhost:{port}/readyz"), &env.ca_cert);
    assert_eq!(ready["message"], "ready");
    assert!(
        !manager.log_text().contains("panicked"),
        "{}",
        manager.log_text()
    );
}
