//! One datagram into `udp::decode_request` (server side) and `udp::decode_reply` (client
//! side), with default and tiny limits; see `tidings_proto_fuzz::udp_decoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tidings_proto_fuzz::udp_decoder(data));
