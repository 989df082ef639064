//! SockJS `xhr_send` / `jsonp_send` bodies into their decoders, with the quoting round trip;
//! see `tidings_proto_fuzz::sockjs_decoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tidings_proto_fuzz::sockjs_decoder(data));
