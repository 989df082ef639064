//! One message of a node's forwarding channel into `tunnel::decode`; see
//! `tidings_proto_fuzz::tunnel_decoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tidings_proto_fuzz::tunnel_decoder(data));
