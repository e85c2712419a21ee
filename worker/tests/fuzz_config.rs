//! Property-based fuzzing of worker.conf: files put together from tunasync's and our keys,
//! sections and odd values. Loading never panics, and a refused file names itself and
//! says what is wrong. `FUZZ_CASES` sets the cases (10,000 by default).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tunasync_worker::config::WorkerConfig;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: tunasync_shared::testkit::fuzz_cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

const SECTIONS: &[&str] = &[
    "[global]",
    "[[mirrors]]",
    "[[mirrors.mirrors]]",
    "[broker]",
    "[cgroup]",
    "[docker]",
    "[zfs]",
    "[btrfs_snapshot]",
    "[health]",
    "[include]",
    "[global.per_upstream_concurrent]",
];

const KEYS: &[&str] = &[
    "name",
    "log_dir",
    "mirror_dir",
    "concurrent",
    "interval",
    "retry",
    "timeout",
    "provider",
    "upstream",
    "command",
    "url",
    "role",
    "cron",
    "jitter",
    "pool",
    "timezone",
    "blackout",
    "interval_mode",
    "fixed_rate_anchor",
    "priority",
    "retry_after_failure",
    "disk_min_free",
    "atomic_publish",
    "staging_dir",
    "upstream_fallback",
    "check_upstream",
    "memory_limit",
    "size_pattern",
    "fail_on_match",
    "rsync_options",
    "rsync_override",
    "stage1_profile",
    "success_exit_codes",
    "exec_on_success",
    "env",
    "enable",
    "addr",
    "include_mirrors",
    "heartbeat_interval",
    "\"up.example.org\"",
];

const VALUES: &[&str] = &[
    "\"\"",
    "\"w1\"",
    "0",
    "-1",
    "1",
    "9223372036854775807",
    "1e300",
    "true",
    "\"x\"",
    "\"rsync://up/x/\"",
    "\"/data\"",
    "\"{{.Name}}\"",
    "\"{{.Nope}}\"",
    "\"*/5 * * * *\"",
    "\"61 * * * *\"",
    "\"Mars/Olympus\"",
    "\"Asia/Shanghai\"",
    "[\"08:00-18:00 Mon-Fri\"]",
    "[\"25:00-01:00\"]",
    "[]",
    "\"fixed-rate\"",
    "\"sometimes\"",
    "\"30m\"",
    "\"soon\"",
    "\"100%\"",
    "\"-5%\"",
    "\"500G\"",
    "\"([0-9\"",
    "[1, \"a\"]",
    "{ a = 1 }",
    "\"amqp://localhost\"",
    "\"127.0.0.1:0\"",
    "\"/nonexistent/*.conf\"",
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
fn worker_conf_never_panics_and_refusals_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.conf");
    let files = prop::collection::vec(line(), 0..24).prop_map(|lines| lines.join("\n"));
    runner()
        .run(&files, |text| {
            std::fs::write(&path, &text).unwrap();
            if let Err(err) = WorkerConfig::load(&path) {
                let message = err.to_string();
                prop_assert!(message.contains("worker.conf"), "{message}");
            }
            Ok(())
        })
        .unwrap();
}
