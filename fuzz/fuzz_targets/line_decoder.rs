//! Bytes from the network into `line::Decoder` (server side) and `line::ReplyDecoder`
//! (client side), whole and in chunks; see `tidings_proto_fuzz::line_decoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tidings_proto_fuzz::line_decoder(data));
