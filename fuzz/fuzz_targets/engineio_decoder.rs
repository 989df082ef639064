//! Engine.IO long-polling payloads and WebSocket text packets into their decoder, with the
//! payload round trip; see `tidings_proto_fuzz::engineio_decoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tidings_proto_fuzz::engineio_decoder(data));
