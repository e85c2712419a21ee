//! Any text where a Go time, a size, a name, a maintenance key, an upstream URL or a
//! schedule expression is expected: no panic, and a refusal says why.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, WorkerId};
use tunasync_shared::schedule::{Blackout, CronExpr, Zone};

fuzz_target!(|text: &str| {
    if let Err(err) = GoTime::parse_rfc3339(text) {
        assert!(!err.to_string().is_empty());
    }
    let _ = tunasync_shared::size::size_bytes(text);
    let _ = MirrorName::new(text.to_owned());
    let _ = WorkerId::new(text.to_owned());
    let _ = tunasync_shared::maintenance::Scope::from_key(text);
    let _ = tunasync_shared::upstream::host_of(text);
    if let Err(err) = Blackout::parse(text) {
        assert!(!err.to_string().is_empty());
    }
    if let Err(err) = Zone::parse(text) {
        assert!(!err.to_string().is_empty());
    }
    if let Err(err) = CronExpr::parse(text) {
        assert!(!err.to_string().is_empty());
    }
    if let Ok(json) = serde_json::to_string(text) {
        let _ = serde_json::from_str::<GoTime>(&json);
    }
});
