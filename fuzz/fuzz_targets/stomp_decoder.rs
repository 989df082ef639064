//! Bytes from the network into `stomp::Decoder` (every version, default and tiny limits),
//! whole and in chunks; see `tidings_proto_fuzz::stomp_decoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tidings_proto_fuzz::stomp_decoder(data));
