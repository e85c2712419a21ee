//! Any text as manager.conf: no panic, and a refusal names the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tunasync_manager::config::{ManagerConfig, Overrides};

fuzz_target!(|text: &str| {
    if let Err(err) = ManagerConfig::parse(text, Path::new("manager.conf"), &Overrides::default()) {
        assert!(err.to_string().contains("manager.conf"), "{err}");
    }
});
