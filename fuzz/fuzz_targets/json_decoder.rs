//! Bytes from the network into `json::decode_client`, as a text and as a binary frame; see
//! `tidings_proto_fuzz::json_decoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tidings_proto_fuzz::json_decoder(data));
