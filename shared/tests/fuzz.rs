//! Property-based fuzzing of what arrives from outside: wire envelopes (valid ones mutated,
//! and raw bytes), Go times, sizes, names, maintenance keys, schedule expressions, upstream
//! URLs. Nothing may panic; every refusal must say something. `FUZZ_CASES` sets the cases
//! per target (10,000 by default; CI runs the default).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::command::{Command, CommandEnvelope, StartJob};
use tunasync_shared::wire::event::{Event, EventEnvelope, JobStatus};

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: tunasync_shared::testkit::fuzz_cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

fn sample_event() -> Vec<u8> {
    EventEnvelope::new(
        WorkerId::new("w1").unwrap(),
        42,
        Event::Status(JobStatus {
            mirror: MirrorName::new("debian").unwrap(),
            status: SyncStatus::Success,
            run_id: uuid::Uuid::nil(),
            attempt: 1,
            at: GoTime::parse_rfc3339("2026-12-02T10:00:00+08:00").unwrap(),
            upstream: "rsync://up/debian/".into(),
            is_master: true,
            size: Some("1.2T".into()),
            error_msg: String::new(),
            pooled: None,
            transferred_bytes: Some(4096),
            ends_run: true,
        }),
    )
    .encode()
}

fn sample_command() -> Vec<u8> {
    CommandEnvelope::new(
        WorkerId::new("w1").unwrap(),
        Command::Start(StartJob {
            mirror: MirrorName::new("debian").unwrap(),
            args: vec![],
            force: true,
        }),
    )
    .encode()
}

/// A valid message with some bytes replaced, some removed, and maybe cut short.
fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    (
        prop::collection::vec((0..len, any::<u8>()), 0..8),
        prop::collection::vec(0..len, 0..4),
        prop::option::of(0..len),
    )
        .prop_map(move |(replace, remove, cut)| {
            let mut bytes = valid.clone();
            for (at, byte) in replace {
                if at < bytes.len() {
                    bytes[at] = byte;
                }
            }
            for at in remove {
                if at < bytes.len() {
                    bytes.remove(at);
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut);
            }
            bytes
        })
}

#[test]
fn envelopes_mutated_or_random_never_panic() {
    let mut runner = runner();
    let messages = prop_oneof![
        mutated(sample_event()),
        mutated(sample_command()),
        prop::collection::vec(any::<u8>(), 0..256),
    ];
    runner
        .run(&messages, |bytes| {
            if let Err(err) = EventEnvelope::decode(&bytes) {
                prop_assert!(!err.to_string().is_empty());
            }
            if let Err(err) = CommandEnvelope::decode(&bytes) {
                prop_assert!(!err.to_string().is_empty());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn texts_from_outside_never_panic() {
    let mut runner = runner();
    // Mostly the characters these parsers care about, sometimes anything.
    let text = prop_oneof![
        "[0-9:TZ+.\\- ]{0,40}",
        "[a-zA-Z0-9:/@\\[\\]%.*,_ -]{0,40}",
        any::<String>(),
    ];
    runner
        .run(&text, |text| {
            let _ = GoTime::parse_rfc3339(&text);
            let _ = tunasync_shared::size::size_bytes(&text);
            let _ = MirrorName::new(text.clone());
            let _ = WorkerId::new(text.clone());
            let _ = tunasync_shared::maintenance::Scope::from_key(&text);
            let _ = tunasync_shared::upstream::host_of(&text);
            if let Err(err) = tunasync_shared::schedule::Blackout::parse(&text) {
                prop_assert!(!err.to_string().is_empty());
            }
            if let Err(err) = tunasync_shared::schedule::Zone::parse(&text) {
                prop_assert!(!err.to_string().is_empty());
            }
            if let Err(err) = tunasync_shared::schedule::CronExpr::parse(&text) {
                prop_assert!(!err.to_string().is_empty());
            }
            let json = serde_json::to_string(&text).unwrap();
            let _ = serde_json::from_str::<GoTime>(&json);
            Ok(())
        })
        .unwrap();
}
