//! Any bytes as a broker message: decoding never panics, and a refusal says why.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunasync_shared::wire::command::CommandEnvelope;
use tunasync_shared::wire::event::EventEnvelope;

fuzz_target!(|bytes: &[u8]| {
    if let Err(err) = EventEnvelope::decode(bytes) {
        assert!(!err.to_string().is_empty());
    }
    if let Err(err) = CommandEnvelope::decode(bytes) {
        assert!(!err.to_string().is_empty());
    }
});
