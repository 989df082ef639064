//! Properties of the UDP datagram protocol over generated input.

use proptest::prelude::*;
use tidings_proto::udp::{
    decode_reply, decode_request, encode_error, encode_reply, encode_request, message_len,
    peek_request_id, DatagramError, ErrorCode, Limits, Reply, Request, COOKIE_LEN,
};
use tidings_proto::PayloadKind;

fn roomy() -> Limits {
    Limits {
        max_datagram: 65507,
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z][a-z0-9.*>_-]{0,30}", "\\PC{1,20}"]
}

proptest! {
    #[test]
    fn publishes_round_trip(
        id in any::<u32>(),
        topic in text(),
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        words in "\\PC{0,40}",
        pad in 0usize..400,
        which in 0u8..3,
    ) {
        let (kind, payload): (PayloadKind, Vec<u8>) = match which {
            0 => (PayloadKind::Text, words.into_bytes()),
            1 => (PayloadKind::Json, serde_json::to_vec(&words).unwrap()),
            _ => (PayloadKind::Binary, bytes),
        };
        let request = Request::Publish { id, kind, topic: &topic, payload: &payload };
        let mut out = Vec::new();
        encode_request(&request, pad, &mut out);
        prop_assert!(out.len() >= pad);
        prop_assert_eq!(decode_request(&out, roomy()), Ok(request));
        prop_assert_eq!(peek_request_id(&out), Some(id));
        // The message datagram a server makes of it carries the same fields.
        let message = Reply::Message { kind, offset: id.into(), epoch: "e", topic: &topic, payload: &payload };
        let mut msg = Vec::new();
        encode_reply(&message, &mut msg);
        prop_assert_eq!(msg.len(), message_len(&topic, "e", &payload));
        prop_assert_eq!(decode_reply(&msg, roomy()), Ok(message));
    }

    #[test]
    fn subscriptions_round_trip(
        id in any::<u32>(),
        pattern in text(),
        cookie in proptest::option::of(proptest::array::uniform24(any::<u8>())),
        pad in 0usize..100,
    ) {
        let request = Request::Subscribe { id, cookie: cookie.as_ref(), pattern: &pattern };
        let mut out = Vec::new();
        encode_request(&request, pad, &mut out);
        prop_assert_eq!(decode_request(&out, roomy()), Ok(request));
        if let Some(cookie) = &cookie {
            for request in [
                Request::Renew { id, cookie },
                Request::Unsubscribe { id, cookie, pattern: &pattern },
            ] {
                let mut out = Vec::new();
                encode_request(&request, pad, &mut out);
                prop_assert_eq!(decode_request(&out, roomy()), Ok(request));
            }
        }
    }

    /// Any bytes: decoding never panics, a decoded datagram re-encodes to itself, and an error
    /// reply to anything that looks like a request fits within the request's size.
    #[test]
    fn arbitrary_datagrams(data in proptest::collection::vec(any::<u8>(), 0..200), header in any::<bool>(), t in any::<u8>()) {
        let mut data = data;
        if header {
            let mut d = vec![b'T', b'D', 1, t];
            d.extend_from_slice(&data);
            data = d;
        }
        match decode_request(&data, Limits::default()) {
            Ok(request) => {
                let mut again = Vec::new();
                encode_request(&request, data.len(), &mut again);
                prop_assert_eq!(again, data.clone());
            }
            Err(e) => {
                if let Some(id) = peek_request_id(&data) {
                    let mut reply = Vec::new();
                    if encode_error(id, ErrorCode::BadRequest, &e.to_string(), data.len(), &mut reply) {
                        prop_assert!(reply.len() <= data.len());
                    }
                }
            }
        }
        if let Ok(reply) = decode_reply(&data, Limits::default()) {
            let mut again = Vec::new();
            encode_reply(&reply, &mut again);
            prop_assert_eq!(again, data);
        }
    }
}

#[test]
fn limits_apply_to_the_whole_datagram() {
    let payload = vec![b'x'; 1200];
    let mut out = Vec::new();
    encode_request(
        &Request::Publish {
            id: 1,
            kind: PayloadKind::Text,
            topic: "t",
            payload: &payload,
        },
        0,
        &mut out,
    );
    assert_eq!(
        decode_request(&out, Limits::default()),
        Err(DatagramError::TooLarge {
            len: out.len(),
            max: 1200
        })
    );
    assert!(decode_request(&out, roomy()).is_ok());
    assert_eq!(COOKIE_LEN, 24);
}
