//! A Socket.IO client's event and CONNECT payloads into tidings' checks, with the event
//! round trip; see `tidings_proto_fuzz::socketio_decoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tidings_proto_fuzz::socketio_decoder(data));
