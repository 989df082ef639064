//! The native JSON protocol, by example.

use bytes::Bytes;
use serde_json::{json, Value};
use tidings_proto::json::{
    decode_client, encode_client, encode_hello, encode_message, encode_pong, encode_presence,
    ClientOp, ErrorCode, JsonErrorKind, Member, MessageRef, Op, Position, PresenceEvent,
    ReplyBuilder, RequestId, MAX_POSITIONS, SERVER,
};
use tidings_proto::PayloadKind;

fn text(frame: &str) -> ClientOp {
    decode_client(frame.as_bytes(), false).unwrap_or_else(|e| panic!("{frame}: {e}"))
}

fn error(frame: &[u8], binary: bool) -> (Option<String>, JsonErrorKind, String) {
    let e = decode_client(frame, binary).expect_err("an error");
    let id = e.id.as_ref().map(|id| id.as_json().to_owned());
    (id, e.kind.clone(), e.to_string())
}

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn every_op() {
    let op = |frame: &str| text(frame).op;
    assert_eq!(
        op(
            r#"{"op":"subscribe","id":1,"topic":"chat.*","since":12,"epoch":"1f3a","presence":true}"#
        ),
        Op::Subscribe {
            topic: "chat.*".into(),
            since: Some(12),
            epoch: Some("1f3a".into()),
            positions: Vec::new(),
            presence: true
        }
    );
    assert_eq!(
        op(r#"{"op":"subscribe","topic":"a"}"#),
        Op::Subscribe {
            topic: "a".into(),
            since: None,
            epoch: None,
            positions: Vec::new(),
            presence: false
        }
    );
    assert_eq!(
        op(r#"{"op":"unsubscribe","id":2,"topic":"chat.*"}"#),
        Op::Unsubscribe {
            topic: "chat.*".into()
        }
    );
    assert_eq!(
        op(r#"{"op":"history","id":4,"topic":"chat.lobby","since":3,"limit":100}"#),
        Op::History {
            topic: "chat.lobby".into(),
            since: 3,
            limit: Some(100)
        }
    );
    assert_eq!(
        op(r#"{"op":"history","topic":"t"}"#),
        Op::History {
            topic: "t".into(),
            since: 0,
            limit: None
        }
    );
    assert_eq!(
        op(r#"{"op":"presence","id":5,"topic":"chat.lobby"}"#),
        Op::Presence {
            topic: "chat.lobby".into()
        }
    );
    assert_eq!(op(r#"{"op":"ping","id":6}"#), Op::Ping);
    assert_eq!(
        op(r#"{"op":"auth","id":7,"user":"alice","password":"secret"}"#),
        Op::Auth {
            user: "alice".into(),
            password: "secret".into()
        }
    );
}

#[test]
fn publish_kinds() {
    let publish = |frame: &[u8], binary| match decode_client(frame, binary).unwrap().op {
        Op::Publish {
            kind, payload, ack, ..
        } => (kind, payload, ack),
        other => panic!("{other:?}"),
    };
    // `data` is kept as the publisher's JSON text, whitespace and all.
    let (kind, payload, ack) = publish(
        br#"{"op":"publish","topic":"t","data": {"n": [1, 2.50]} ,"ack":true}"#,
        false,
    );
    assert_eq!(
        (kind, &payload[..], ack),
        (PayloadKind::Json, &br#"{"n": [1, 2.50]}"#[..], true)
    );
    // `null` is a JSON value like any other.
    let (kind, payload, _) = publish(br#"{"op":"publish","topic":"t","data":null}"#, false);
    assert_eq!((kind, &payload[..]), (PayloadKind::Json, &b"null"[..]));
    // `text` is unescaped.
    let (kind, payload, ack) = publish(
        br#"{"op":"publish","topic":"t","text":"a\nb \"c\" \u00e9"}"#,
        false,
    );
    assert_eq!(
        (kind, &payload[..], ack),
        (PayloadKind::Text, "a\nb \"c\" é".as_bytes(), false)
    );
    // A binary frame: header, newline, raw bytes; the header may be pretty-printed.
    let (kind, payload, _) = publish(b"{\"op\":\"publish\",\"topic\":\"t\"}\n\x00\xff\n", true);
    assert_eq!(
        (kind, &payload[..]),
        (PayloadKind::Binary, &b"\x00\xff\n"[..])
    );
    let (kind, payload, _) = publish(
        b"{\n \"op\": \"publish\",\n \"topic\": \"t\"\n}\r\nxy",
        true,
    );
    assert_eq!((kind, &payload[..]), (PayloadKind::Binary, &b"xy"[..]));
    let (_, payload, _) = publish(b"{\"op\":\"publish\",\"topic\":\"t\"}\n", true);
    assert!(payload.is_empty());
}

#[test]
fn ids_are_echoed_verbatim() {
    for id in ["1", "1.50", "-3", "1e3", r#""req-9""#, r#""\u00e9""#] {
        let frame = format!(r#"{{"op":"ping","id":{id}}}"#);
        let request = text(&frame);
        assert_eq!(request.id.as_ref().map(RequestId::as_json), Some(id));
        assert_eq!(
            encode_pong(request.id.as_ref()),
            format!(r#"{{"type":"pong","id":{id}}}"#)
        );
    }
    assert_eq!(text(r#"{"op":"ping","id":null}"#).id, None);
    assert_eq!(text(r#"{"op":"ping"}"#).id, None);
    assert_eq!(RequestId::from(7).as_json(), "7");
    assert_eq!(RequestId::from("a\"b").as_json(), r#""a\"b""#);
}

#[test]
fn a_pattern_subscribe_carries_positions_per_topic() {
    let request = text(
        r#"{"op":"subscribe","id":9,"topic":"chat.*","positions":[{"topic":"chat.a","since":12,"epoch":"1f3a"},{"topic":"chat.b","since":0,"epoch":null,"extra":1},{"since":3,"topic":"chat.c"}]}"#,
    );
    let positions = vec![
        Position {
            topic: "chat.a".into(),
            since: 12,
            epoch: Some("1f3a".into()),
        },
        Position {
            topic: "chat.b".into(),
            since: 0,
            epoch: None,
        },
        Position {
            topic: "chat.c".into(),
            since: 3,
            epoch: None,
        },
    ];
    let expected = Op::Subscribe {
        topic: "chat.*".into(),
        since: None,
        epoch: None,
        positions,
        presence: false,
    };
    assert_eq!(request.op, expected);
    let frame = encode_client(&request);
    assert_eq!(
        std::str::from_utf8(&frame.bytes).unwrap(),
        r#"{"op":"subscribe","id":9,"topic":"chat.*","positions":[{"topic":"chat.a","since":12,"epoch":"1f3a"},{"topic":"chat.b","since":0},{"topic":"chat.c","since":3}]}"#
    );
    assert_eq!(decode_client(&frame.bytes, false).unwrap(), request);
    for empty in [r#""positions":[]"#, r#""positions":null"#] {
        let op = text(&format!(r#"{{"op":"subscribe","topic":"chat.*",{empty}}}"#)).op;
        assert!(matches!(op, Op::Subscribe { positions, .. } if positions.is_empty()));
    }
    // At the bound: accepted; one more: refused without reading the entries.
    let entry = r#"{"topic":"chat.a","since":1}"#;
    let list = |n: usize| vec![entry; n].join(",");
    let at_bound = format!(
        r#"{{"op":"subscribe","topic":"chat.*","positions":[{}]}}"#,
        list(MAX_POSITIONS)
    );
    assert!(
        matches!(text(&at_bound).op, Op::Subscribe { positions, .. } if positions.len() == MAX_POSITIONS)
    );
    let over = format!(
        r#"{{"op":"subscribe","id":2,"topic":"chat.*","positions":[{}]}}"#,
        list(MAX_POSITIONS + 1)
    );
    let (id, kind, message) = error(over.as_bytes(), false);
    assert_eq!(id.as_deref(), Some("2"));
    assert_eq!(kind, JsonErrorKind::TooManyPositions { max: 1024 });
    assert_eq!(message, r#""positions" holds more than 1024 entries"#);
}

#[test]
fn malformed_positions_are_bad_requests_that_say_which_entry() {
    let shape = r#"must be an object with "topic" (a string), "since" (a whole number) and optionally "epoch" (a string)"#;
    let not_array = r#""positions" must be an array of {"topic","since","epoch"} objects"#;
    let cases: [(&str, String); 9] = [
        (r#""positions":{"topic":"a"}"#, not_array.into()),
        (r#""positions":"a""#, not_array.into()),
        (r#""positions":[1]"#, format!("positions[0]: {shape}")),
        (
            r#""positions":[{"topic":"a","since":1},[]]"#,
            format!("positions[1]: {shape}"),
        ),
        (
            r#""positions":[{"since":1}]"#,
            r#"positions[0]: needs "topic" (a string)"#.into(),
        ),
        (
            r#""positions":[{"topic":7,"since":1}]"#,
            r#"positions[0]: "topic" must be a string"#.into(),
        ),
        (
            r#""positions":[{"topic":"a"}]"#,
            r#"positions[0]: needs "since" (a whole number, 0 or more)"#.into(),
        ),
        (
            r#""positions":[{"topic":"a","since":-1}]"#,
            r#"positions[0]: "since" must be a whole number, 0 or more"#.into(),
        ),
        (
            r#""positions":[{"topic":"a","since":1,"epoch":5}]"#,
            r#"positions[0]: "epoch" must be a string"#.into(),
        ),
    ];
    for (field, message) in cases {
        let frame = format!(r#"{{"op":"subscribe","id":3,"topic":"a.*",{field}}}"#);
        let e = decode_client(frame.as_bytes(), false).expect_err(&frame);
        assert_eq!(e.id.as_ref().map(RequestId::as_json), Some("3"), "{frame}");
        assert_eq!(e.code(), ErrorCode::BadRequest, "{frame}");
        assert_eq!(e.to_string(), message, "{frame}");
    }
    let (_, kind, _) = error(
        br#"{"op":"subscribe","topic":"a.*","positions":[{"topic":"a.\ud800","since":1}]}"#,
        false,
    );
    assert!(
        matches!(kind, JsonErrorKind::BadPosition { index: 0, .. }),
        "{kind:?}"
    );
}

#[test]
fn unknown_fields_are_ignored_and_null_is_absent() {
    let request =
        text(r#"{"extra":{"deep":[1,{"x":null}]},"op":"subscribe","topic":"a","since":null}"#);
    assert_eq!(
        request.op,
        Op::Subscribe {
            topic: "a".into(),
            since: None,
            epoch: None,
            positions: Vec::new(),
            presence: false
        }
    );
}

#[test]
fn errors_carry_the_id_a_kind_and_a_clear_message() {
    let cases: [(&str, Option<&str>, &str); 11] = [
        (
            r#"{"op":"frobnicate","id":3}"#,
            Some("3"),
            r#"unknown op "frobnicate"; expected one of subscribe, unsubscribe, publish, history, presence, ping, auth"#,
        ),
        (
            r#"{"id":"x"}"#,
            Some(r#""x""#),
            "missing \"op\"; expected one of subscribe, unsubscribe, publish, history, presence, ping, auth",
        ),
        (r#"{"op":"subscribe","id":1}"#, Some("1"), r#"subscribe needs "topic""#),
        (r#"{"op":"auth","id":1,"user":"a"}"#, Some("1"), r#"auth needs "password""#),
        (
            r#"{"op":"publish","id":2,"topic":"t","data":1,"text":"x"}"#,
            Some("2"),
            r#"publish takes "data" or "text", not both"#,
        ),
        (
            r#"{"op":"publish","id":2,"topic":"t"}"#,
            Some("2"),
            r#"publish needs "data" (any JSON value) or "text" (a string), or a binary frame"#,
        ),
        (
            r#"{"op":"history","id":4,"topic":"t","since":"ten"}"#,
            Some("4"),
            r#""since" must be a whole number, 0 or more"#,
        ),
        (
            r#"{"op":"history","id":4,"topic":"t","since":-1}"#,
            Some("4"),
            r#""since" must be a whole number, 0 or more"#,
        ),
        (r#"{"op":7,"id":4}"#, Some("4"), r#""op" must be a string"#),
        (
            r#"{"op":"ping","id":[1]}"#,
            None,
            r#""id" must be a number or a string"#,
        ),
        ("[1,2]", None, "a request must be a JSON object"),
    ];
    for (frame, id, message) in cases {
        let (got_id, _, got_message) = error(frame.as_bytes(), false);
        assert_eq!(got_id.as_deref(), id, "{frame}");
        assert_eq!(got_message, message, "{frame}");
    }
}

#[test]
fn syntax_errors_say_where() {
    let (id, kind, message) = error(b"{\"op\":\"ping\",\n \"id\": }", false);
    assert_eq!(id, None);
    assert!(
        matches!(
            kind,
            JsonErrorKind::Syntax {
                line: 2,
                column: 8,
                ..
            }
        ),
        "{kind:?}"
    );
    assert_eq!(message, "invalid JSON at line 2 column 8: expected value");
    let (_, kind, _) = error(b"", false);
    assert!(matches!(kind, JsonErrorKind::Syntax { .. }));
    let (_, kind, _) = error(b"{\"op\":\"ping\"} x", false);
    assert!(
        matches!(kind, JsonErrorKind::Syntax { .. }),
        "trailing characters"
    );
    let (_, kind, _) = error(b"\xff", false);
    assert!(matches!(kind, JsonErrorKind::Syntax { .. }));
    let (_, _, message) = error(b"{\"op\":\"ping\",\"op\":\"auth\"}", false);
    assert!(message.contains("duplicate field `op`"), "{message}");
}

#[test]
fn binary_frame_errors() {
    let (id, kind, _) = error(b"{\"op\":\"publish\",\"id\":1,\"topic\":\"t\"}xy", true);
    assert_eq!(
        (id.as_deref(), kind),
        (Some("1"), JsonErrorKind::NoHeaderEnd)
    );
    let (_, kind, _) = error(
        b"{\"op\":\"publish\",\"topic\":\"t\",\"text\":\"a\"}\nxy",
        true,
    );
    assert_eq!(kind, JsonErrorKind::PayloadInBinaryFrame);
    let (_, kind, message) = error(b"{\"op\":\"ping\"}\nxy", true);
    assert_eq!(
        kind,
        JsonErrorKind::UnexpectedPayload { op: "ping", len: 2 }
    );
    assert_eq!(
        message,
        "only publish carries a payload; ping got 2 bytes after its header"
    );
    assert_eq!(error(b"xy\n{}", true).1, JsonErrorKind::NotAnObject);
    // A ping in a binary frame without payload is fine.
    assert_eq!(
        decode_client(b"{\"op\":\"ping\"}\n", true).unwrap().op,
        Op::Ping
    );
}

#[test]
fn error_replies() {
    let e = decode_client(br#"{"op":"nope","id":"a"}"#, false).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    let reply = parse(&e.to_reply());
    assert_eq!(
        reply,
        json!({"type":"error","id":"a","code":"bad_request","message":e.to_string()})
    );
    let codes = [
        (ErrorCode::BadRequest, "bad_request"),
        (ErrorCode::Forbidden, "forbidden"),
        (ErrorCode::Unauthorized, "unauthorized"),
        (ErrorCode::NotFound, "not_found"),
        (ErrorCode::ResumeUnavailable, "resume_unavailable"),
        (ErrorCode::TooLarge, "too_large"),
        (ErrorCode::SlowConsumer, "slow_consumer"),
        (ErrorCode::ShuttingDown, "shutting_down"),
    ];
    for (code, name) in codes {
        assert_eq!(code.to_string(), name);
        let reply = ReplyBuilder::error(None, code, "why").finish();
        assert_eq!(parse(&reply)["code"], name);
    }
}

#[test]
fn message_frames() {
    let frame = encode_message("chat.lobby", 5, "1f3a", PayloadKind::Json, br#"{"a": 1}"#);
    assert!(!frame.binary);
    assert_eq!(
        &frame.bytes[..],
        br#"{"type":"message","topic":"chat.lobby","offset":5,"epoch":"1f3a","data":{"a": 1}}"#
    );
    let frame = encode_message("chat.lobby", 6, "1f3a", PayloadKind::Text, b"say \"hi\"\n");
    assert!(!frame.binary);
    assert_eq!(
        &frame.bytes[..],
        br#"{"type":"message","topic":"chat.lobby","offset":6,"epoch":"1f3a","text":"say \"hi\"\n"}"#
    );
    let frame = encode_message("cam.1", 7, "1f3a", PayloadKind::Binary, b"\x00\xff");
    assert!(frame.binary);
    assert_eq!(
        &frame.bytes[..],
        b"{\"type\":\"message\",\"topic\":\"cam.1\",\"offset\":7,\"epoch\":\"1f3a\"}\n\x00\xff"
    );
    // Text that is not UTF-8 is sent as binary rather than as a broken text frame.
    assert!(encode_message("t", 1, "e", PayloadKind::Text, b"\xff").binary);
}

#[test]
fn message_frames_share_bytes() {
    let frame = encode_message("t", 1, "e", PayloadKind::Text, b"x");
    let copy = frame.clone();
    assert_eq!(frame.bytes.as_ptr(), copy.bytes.as_ptr());
}

#[test]
fn ok_replies_with_members_and_messages() {
    let id = RequestId::from(5);
    let reply = ReplyBuilder::ok(Some(&id))
        .members(
            "members",
            [
                Member {
                    client: "c1",
                    user: Some("alice"),
                    info: Some(r#"{"name":"Alice"}"#),
                },
                Member {
                    client: "c2",
                    user: None,
                    info: None,
                },
            ],
        )
        .finish();
    assert_eq!(
        parse(&reply),
        json!({"type":"ok","id":5,"members":[{"client":"c1","user":"alice","info":{"name":"Alice"}},{"client":"c2","user":null}]})
    );
    let message = |offset, kind, payload: &'static [u8]| MessageRef {
        topic: "t",
        offset,
        epoch: "e",
        kind,
        payload,
    };
    let reply = ReplyBuilder::ok(None)
        .messages(
            "messages",
            [
                message(1, PayloadKind::Json, b"[1,2]"),
                message(2, PayloadKind::Text, b"hi"),
                message(3, PayloadKind::Binary, b"\x00\xff"),
            ],
        )
        .boolean("complete", true)
        .raw("extra", r#"{"k":"v"}"#)
        .finish();
    assert_eq!(
        parse(&reply),
        json!({"type":"ok","messages":[
            {"type":"message","topic":"t","offset":1,"epoch":"e","data":[1,2]},
            {"type":"message","topic":"t","offset":2,"epoch":"e","text":"hi"},
            {"type":"message","topic":"t","offset":3,"epoch":"e","base64":"AP8="},
        ],"complete":true,"extra":{"k":"v"}})
    );
    assert_eq!(
        ReplyBuilder::ok(None).messages("messages", []).finish(),
        r#"{"type":"ok","messages":[]}"#
    );
}

#[test]
fn hello_presence_pong() {
    assert_eq!(
        encode_hello("c17", SERVER),
        format!(
            r#"{{"type":"hello","client":"c17","server":"tidings/{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(
        encode_presence("chat.lobby", PresenceEvent::Join, "c2", Some("bob")),
        r#"{"type":"presence","topic":"chat.lobby","event":"join","client":"c2","user":"bob"}"#
    );
    assert_eq!(
        encode_presence("chat.lobby", PresenceEvent::Leave, "c2", None),
        r#"{"type":"presence","topic":"chat.lobby","event":"leave","client":"c2","user":null}"#
    );
    assert_eq!(encode_pong(None), r#"{"type":"pong"}"#);
}

#[test]
fn encode_client_writes_what_decode_client_reads() {
    let request = ClientOp {
        id: Some(RequestId::from("r1")),
        op: Op::Publish {
            topic: "cam.1".into(),
            kind: PayloadKind::Binary,
            payload: Bytes::from_static(b"\x00\n"),
            ack: true,
        },
    };
    let frame = encode_client(&request);
    assert!(frame.binary);
    assert_eq!(
        &frame.bytes[..],
        b"{\"op\":\"publish\",\"id\":\"r1\",\"topic\":\"cam.1\",\"ack\":true}\n\x00\n"
    );
    assert_eq!(decode_client(&frame.bytes, true), Ok(request));
}

#[test]
fn auth_with_a_token_and_refresh_read_as_token_ops() {
    assert_eq!(
        text(r#"{"op":"auth","token":"a.b.c"}"#).op,
        Op::AuthToken {
            token: "a.b.c".into()
        }
    );
    assert_eq!(
        text(r#"{"op":"refresh","token":"a.b.c"}"#).op,
        Op::Refresh {
            token: "a.b.c".into()
        }
    );
    let (_, kind, _) = error(br#"{"op":"refresh"}"#, false);
    assert!(
        matches!(kind, JsonErrorKind::MissingField { field: "token", .. }),
        "{kind:?}"
    );
}
