//! Properties of the native JSON protocol over generated input.

use std::collections::HashMap;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::Value;
use tidings_proto::json::{
    decode_client, encode_client, encode_message, encode_presence, ClientOp, ErrorCode, Member,
    MessageRef, Op, Position, PresenceEvent, ReplyBuilder, RequestId,
};
use tidings_proto::PayloadKind;

/// Any JSON value, nested a few levels.
///
/// serde_json without `float_roundtrip` may parse the last digit of a float differently from
/// how it printed it, so tests compare with `reparse(value)`, not with `value`.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `value` printed and parsed again, as a receiver of the spliced JSON text sees it.
fn reparse(value: &Value) -> Value {
    serde_json::from_str(&value.to_string()).expect("printed JSON parses")
}

/// The fields of a JSON object, values kept raw: an echoed `id` may be a number such as
/// `1e999` that JSON's grammar allows but `serde_json::Value` cannot hold.
fn raw_fields(json: &str) -> HashMap<String, &RawValue> {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn parse_frame(bytes: &[u8], binary: bool) -> (Value, &[u8]) {
    if binary {
        let newline = bytes.iter().position(|&b| b == b'\n').expect("header line");
        let header = serde_json::from_slice(&bytes[..newline]).expect("header is JSON");
        (header, &bytes[newline + 1..])
    } else {
        (serde_json::from_slice(bytes).expect("frame is JSON"), &[])
    }
}

fn request_id() -> impl Strategy<Value = Option<RequestId>> {
    proptest::option::of(prop_oneof![
        any::<u64>().prop_map(RequestId::from),
        any::<String>().prop_map(|s| RequestId::from(s.as_str())),
    ])
}

fn position() -> impl Strategy<Value = Position> {
    (
        any::<String>(),
        any::<u64>(),
        proptest::option::of(any::<String>()),
    )
        .prop_map(|(topic, since, epoch)| Position {
            topic,
            since,
            epoch,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let topic = any::<String>;
    prop_oneof![
        (
            topic(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<String>()),
            proptest::collection::vec(position(), 0..4),
            any::<bool>()
        )
            .prop_map(|(topic, since, epoch, positions, presence)| Op::Subscribe {
                topic,
                since,
                epoch,
                positions,
                presence
            }),
        topic().prop_map(|topic| Op::Unsubscribe { topic }),
        (topic(), any::<String>(), any::<bool>()).prop_map(|(topic, text, ack)| Op::Publish {
            topic,
            kind: PayloadKind::Text,
            payload: Bytes::from(text),
            ack
        }),
        (topic(), json_value(), any::<bool>()).prop_map(|(topic, data, ack)| Op::Publish {
            topic,
            kind: PayloadKind::Json,
            payload: Bytes::from(data.to_string()),
            ack
        }),
        (
            topic(),
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<bool>()
        )
            .prop_map(|(topic, bytes, ack)| Op::Publish {
                topic,
                kind: PayloadKind::Binary,
                payload: Bytes::from(bytes),
                ack
            }),
        (topic(), any::<u64>(), proptest::option::of(any::<u32>())).prop_map(
            |(topic, since, limit)| Op::History {
                topic,
                since,
                limit: limit.map(|l| l as usize)
            }
        ),
        topic().prop_map(|topic| Op::Presence { topic }),
        Just(Op::Ping),
        (any::<String>(), any::<String>()).prop_map(|(user, password)| Op::Auth { user, password }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn text_messages_round_trip_through_serde_json(
        topic in any::<String>(),
        epoch in any::<String>(),
        offset in any::<u64>(),
        text in any::<String>(),
    ) {
        let frame = encode_message(&topic, offset, &epoch, PayloadKind::Text, text.as_bytes());
        prop_assert!(!frame.binary);
        let (value, _) = parse_frame(&frame.bytes, false);
        prop_assert_eq!(&value["type"], "message");
        prop_assert_eq!(&value["topic"], &Value::String(topic));
        prop_assert_eq!(&value["offset"], &Value::from(offset));
        prop_assert_eq!(&value["epoch"], &Value::String(epoch));
        prop_assert_eq!(&value["text"], &Value::String(text));
    }

    #[test]
    fn json_messages_splice_data(topic in any::<String>(), data in json_value()) {
        let raw = data.to_string();
        let frame = encode_message(&topic, 1, "e", PayloadKind::Json, raw.as_bytes());
        let (value, _) = parse_frame(&frame.bytes, false);
        prop_assert_eq!(&value["topic"], &Value::String(topic));
        prop_assert_eq!(&value["data"], &reparse(&data));
    }

    #[test]
    fn binary_messages_carry_raw_bytes(
        topic in any::<String>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let frame = encode_message(&topic, 9, "e", PayloadKind::Binary, &bytes);
        prop_assert!(frame.binary);
        let (value, payload) = parse_frame(&frame.bytes, true);
        prop_assert_eq!(&value["topic"], &Value::String(topic));
        prop_assert_eq!(&value["offset"], &Value::from(9));
        prop_assert!(value.get("data").is_none() && value.get("text").is_none());
        prop_assert_eq!(payload, &bytes[..]);
    }

    #[test]
    fn client_ops_round_trip(id in request_id(), op in op()) {
        let request = ClientOp { id, op };
        let frame = encode_client(&request);
        prop_assert_eq!(decode_client(&frame.bytes, frame.binary), Ok(request));
    }

    #[test]
    fn replies_are_json(
        strings in proptest::collection::vec(any::<String>(), 4),
        id in request_id(),
        n in any::<u64>(),
        flag in any::<bool>(),
        data in json_value(),
        payload in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let reply = ReplyBuilder::error(id.as_ref(), ErrorCode::ResumeUnavailable, &strings[0])
            .string(&strings[1], &strings[2])
            .number("earliest", n)
            .boolean("flag", flag)
            .raw("data", &data.to_string())
            .members("members", [Member { client: &strings[3], user: None, info: None }])
            .messages("messages", [
                MessageRef { topic: &strings[0], offset: n, epoch: &strings[1], kind: PayloadKind::Binary, payload: &payload },
                MessageRef { topic: &strings[0], offset: n, epoch: &strings[1], kind: PayloadKind::Text, payload: strings[2].as_bytes() },
            ])
            .finish();
        let value: Value = serde_json::from_str(&reply).unwrap();
        prop_assert_eq!(&value["message"], &Value::String(strings[0].clone()));
        prop_assert_eq!(&value["data"], &reparse(&data));
        let presence = encode_presence(&strings[0], PresenceEvent::Join, &strings[1], Some(&strings[2]));
        let value: Value = serde_json::from_str(&presence).unwrap();
        prop_assert_eq!(&value["user"], &Value::String(strings[2].clone()));
    }

    #[test]
    fn decode_client_never_panics(
        data in proptest::collection::vec(any::<u8>(), 0..256),
        binary in any::<bool>(),
    ) {
        if let Err(e) = decode_client(&data, binary) {
            let reply = e.to_reply();
            let fields = raw_fields(&reply);
            prop_assert_eq!(fields["code"].get(), r#""bad_request""#);
        }
    }

    #[test]
    fn decode_client_never_panics_on_near_misses(
        op in op(),
        at in any::<usize>(),
        byte in any::<u8>(),
        truncate in any::<bool>(),
    ) {
        let frame = encode_client(&ClientOp { id: Some(RequestId::from(1)), op });
        let mut bytes = frame.bytes.to_vec();
        let at = at % bytes.len();
        if truncate {
            bytes.truncate(at);
        } else {
            bytes[at] = byte;
        }
        if let Err(e) = decode_client(&bytes, frame.binary) {
            let reply = e.to_reply();
            let fields = raw_fields(&reply);
            prop_assert_eq!(fields["type"].get(), r#""error""#);
        }
    }
}
