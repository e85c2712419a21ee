//! Any bytes as the JSON body of an API request: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = serde_json::from_slice::<tunasync_shared::maintenance::MaintenanceRequest>(body);
    let _ = serde_json::from_slice::<tunasync_shared::compat::ClientCmd>(body);
    let _ = serde_json::from_slice::<tunasync_shared::compat::WorkerStatus>(body);
    let _ = serde_json::from_slice::<tunasync_shared::compat::MirrorStatus>(body);
});
