//! Property-based fuzzing of manager.conf and of the JSON bodies the API takes: parsing
//! never panics, and a refused config names the file. `FUZZ_CASES` sets the cases (10,000
//! by default).

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tunasync_manager::config::{ManagerConfig, Overrides};

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: tunasync_shared::testkit::fuzz_cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

const SECTIONS: &[&str] = &[
    "[server]",
    "[files]",
    "[broker]",
    "[auth]",
    "[commands]",
    "[liveness]",
    "[history]",
    "[mirrorz]",
    "[alerts]",
    "[[alerts.sinks]]",
    "[alerts.mirror_stale_after]",
];

const KEYS: &[&str] = &[
    "addr",
    "port",
    "ssl_cert",
    "ssl_key",
    "db_file",
    "db_type",
    "url",
    "ca_cert",
    "namespace",
    "queue_type",
    "tokens_file",
    "trusted_networks",
    "require_client_cert",
    "client_ca",
    "timeout",
    "expiry",
    "offline_after",
    "runs_per_job",
    "abbr",
    "name",
    "failures",
    "stale_after",
    "worker_offline",
    "interval",
    "retry_max",
    "kind",
    "max_per_minute",
    "token_file",
    "debian",
    "debug",
];

const VALUES: &[&str] = &[
    "\"\"",
    "0",
    "-1",
    "65536",
    "1e300",
    "true",
    "\"127.0.0.1\"",
    "\"localhost\"",
    "\"::1\"",
    "\"amqp://localhost\"",
    "\"amqps://x\"",
    "[\"10.0.0.0/8\"]",
    "[\"10.0.0.0/33\"]",
    "[]",
    "\"5s\"",
    "\"0s\"",
    "\"soon\"",
    "\"bolt\"",
    "\"redb\"",
    "\"webhook\"",
    "\"chat\"",
    "\"alertmanager\"",
    "\"pager\"",
    "\"http://127.0.0.1:9/x\"",
    "\"ftp://x\"",
    "\"quorum\"",
    "{ a = 1 }",
    "\"\\u0000\"",
];

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (prop::sample::select(KEYS), prop::sample::select(VALUES))
            .prop_map(|(key, value)| format!("{key} = {value}")),
        1 => prop::sample::select(SECTIONS).prop_map(str::to_owned),
        1 => "[ -~]{0,30}",
    ]
}

#[test]
fn manager_conf_never_panics_and_refusals_are_clear() {
    let files = prop::collection::vec(line(), 0..24).prop_map(|lines| lines.join("\n"));
    runner()
        .run(&files, |text| {
            if let Err(err) =
                ManagerConfig::parse(&text, Path::new("manager.conf"), &Overrides::default())
            {
                let message = err.to_string();
                prop_assert!(message.contains("manager.conf"), "{message}");
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn api_bodies_never_panic() {
    let bodies = prop_oneof![
        "[ -~]{0,60}",
        any::<String>(),
        (
            prop::sample::select(
                &[
                    "worker", "mirror", "message", "cmd", "args", "force", "options"
                ][..]
            ),
            prop::sample::select(
                &["\"\"", "null", "1", "[]", "{}", "\"w1\"", "\"a/b\"", "true"][..]
            ),
        )
            .prop_map(|(key, value)| format!("{{\"{key}\": {value}}}")),
    ];
    runner()
        .run(&bodies, |body| {
            let _ = serde_json::from_str::<tunasync_shared::maintenance::MaintenanceRequest>(&body);
            let _ = serde_json::from_str::<tunasync_shared::compat::ClientCmd>(&body);
            Ok(())
        })
        .unwrap();
}
