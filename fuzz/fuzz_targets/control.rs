//! Decodes arbitrary bytes as a control-socket request line, as the supervisor does with
//! what a client sends. Any panic is a bug (the supervisor answers undecodable requests
//! with an error and goes on).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<hoist::supervisor::protocol::Request>(data);
});
