//! STOMP codec: framing, escaping per version, limits, and the checks of client frames.

use bytes::BytesMut;
use tidings_proto::stomp::*;

fn decoder(version: Version) -> Decoder {
    Decoder::new(Limits::default(), version)
}

fn decode_all(version: Version, input: &[u8]) -> Vec<Result<Frame, DecodeError>> {
    let mut d = decoder(version);
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match d.decode(&mut buf) {
            Ok(Some(f)) => out.push(Ok(f)),
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

fn one(version: Version, input: &[u8]) -> Frame {
    let mut got = decode_all(version, input);
    assert_eq!(got.len(), 1, "{got:?}");
    got.remove(0).unwrap()
}

fn err(version: Version, input: &[u8]) -> DecodeError {
    decode_all(version, input)
        .into_iter()
        .find_map(Result::err)
        .expect("an error")
}

#[test]
fn a_send_frame_with_lf_and_with_crlf() {
    for input in [
        &b"SEND\ndestination:/topic/a\nx:1\n\nhello\0"[..],
        &b"SEND\r\ndestination:/topic/a\r\nx:1\r\n\r\nhello\0"[..],
    ] {
        let f = one(Version::V1_2, input);
        assert_eq!(f.command, Command::Send);
        assert_eq!(f.header("destination"), Some("/topic/a"));
        assert_eq!(f.header("x"), Some("1"));
        assert_eq!(&f.body[..], b"hello");
    }
}

#[test]
fn content_length_bodies_may_hold_nul_and_frames_follow_each_other() {
    let input =
        b"SEND\ndestination:/queue/q\ncontent-length:5\n\na\0b\0c\0\n\nSEND\ndestination:d\n\n\0";
    let frames: Vec<Frame> = decode_all(Version::V1_2, input)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(frames.len(), 2);
    assert_eq!(&frames[0].body[..], b"a\0b\0c");
    assert_eq!(frames[1].header("destination"), Some("d"));
}

#[test]
fn heart_beats_are_skipped_and_counted() {
    let mut d = decoder(Version::V1_2);
    let mut buf = BytesMut::from(&b"\n\r\n\nDISCONNECT\n\n\0\n"[..]);
    let f = d.decode(&mut buf).unwrap().unwrap();
    assert_eq!(f.command, Command::Disconnect);
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    assert_eq!(d.heart_beats(), 4);
    assert!(buf.is_empty());
}

#[test]
fn bytes_arriving_one_at_a_time_decode_the_same() {
    let input = b"\nSEND\r\ndestination:/topic/x\r\ncontent-length:3\r\nk:v\\cw\r\n\r\n\0\0\0\0SUBSCRIBE\nid:1\ndestination:/queue/a\n\n\0";
    let whole = decode_all(Version::V1_2, input);
    let mut d = decoder(Version::V1_2);
    let mut buf = BytesMut::new();
    let mut split = Vec::new();
    for b in input {
        buf.extend_from_slice(&[*b]);
        while let Some(f) = d.decode(&mut buf).unwrap() {
            split.push(Ok(f));
        }
    }
    assert_eq!(whole, split);
    assert_eq!(whole.len(), 2);
}

#[test]
fn escaping_depends_on_version_and_command() {
    let input = b"SEND\ndestination:a\\cb\nk\\nx:c\\\\d\n\n\0";
    let f = one(Version::V1_2, input);
    assert_eq!(f.header("destination"), Some("a:b"));
    assert_eq!(f.header("k\nx"), Some("c\\d"));
    let f = one(Version::V1_0, input);
    assert_eq!(f.header("destination"), Some("a\\cb"));
    // CONNECT is never unescaped, so a 1.0 passcode with a backslash survives.
    let f = one(Version::V1_2, b"CONNECT\npasscode:a\\tb\n\n\0");
    assert_eq!(f.header("passcode"), Some("a\\tb"));
    // \r is an escape in 1.2 only.
    assert_eq!(
        one(Version::V1_2, b"SEND\nk:a\\rb\n\n\0").header("k"),
        Some("a\rb")
    );
    let e = err(Version::V1_1, b"SEND\nreceipt:77\nk:a\\rb\n\n\0");
    assert!(
        matches!(e.kind, DecodeErrorKind::InvalidEscape { .. }),
        "{e}"
    );
    assert_eq!(e.receipt.as_deref(), Some("77"));
}

#[test]
fn the_first_of_repeated_headers_counts() {
    let f = one(Version::V1_2, b"SEND\nfoo:World\nfoo:Hello\n\n\0");
    assert_eq!(f.header("foo"), Some("World"));
    assert_eq!(f.headers.len(), 2);
}

#[test]
fn bad_input_is_named_and_carries_the_receipt() {
    let e = err(Version::V1_2, b"FROB\nreceipt:1\n\n\0");
    assert_eq!(e.kind, DecodeErrorKind::UnknownCommand("FROB".into()));
    assert_eq!(e.to_string(), "unknown command \"FROB\"");
    let e = err(Version::V1_2, b"send\n\n\0");
    assert!(matches!(e.kind, DecodeErrorKind::UnknownCommand(_)));
    let e = err(Version::V1_2, b"SEND\nreceipt:r9\nno colon here\n\n\0");
    assert!(matches!(e.kind, DecodeErrorKind::MissingColon { .. }));
    assert_eq!(e.receipt.as_deref(), Some("r9"));
    let e = err(
        Version::V1_2,
        b"SEND\nreceipt:r2\ncontent-length:abc\n\nxyz\0",
    );
    assert!(matches!(e.kind, DecodeErrorKind::BadContentLength { .. }));
    assert_eq!(e.receipt.as_deref(), Some("r2"));
    let e = err(Version::V1_2, b"SEND\ncontent-length:2\n\nabc\0");
    assert_eq!(e.kind, DecodeErrorKind::MissingNul { len: 2 });
    let e = err(Version::V1_2, b"SEND\nk:\xff\n\n\0");
    assert_eq!(e.kind, DecodeErrorKind::NotUtf8);
    let e = err(Version::V1_2, b"\rSEND\n\n\0");
    assert_eq!(e.kind, DecodeErrorKind::BadLineEnd);
}

#[test]
fn limits_are_enforced_without_waiting_for_the_rest() {
    let limits = Limits {
        max_frame_size: 100,
        max_headers: 2,
        max_header_length: 20,
    };
    let run = |input: &[u8]| {
        let mut d = Decoder::new(limits, Version::V1_2);
        let mut buf = BytesMut::from(input);
        let first = d.decode(&mut buf);
        // Errors repeat and leave the buffer alone.
        let len = buf.len();
        assert_eq!(d.decode(&mut buf), first);
        assert_eq!(buf.len(), len);
        first
    };
    let e = run(b"SEND\na:1\nb:2\nreceipt:3\n\n\0").unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::TooManyHeaders { max: 2 });
    let e = run(b"SEND\nabcdefghijklmnopqrstuvwxyz").unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::HeaderTooLong { max: 20 });
    // A content-length beyond the limit fails at once, before any body arrives.
    let e = run(b"SEND\nreceipt:x\ncontent-length:1000\n\n").unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::FrameTooLarge { max: 100 });
    assert_eq!(e.receipt.as_deref(), Some("x"));
    // So does a body without NUL that outgrows the limit.
    let mut input = b"SEND\n\n".to_vec();
    input.extend_from_slice(&[b'x'; 100]);
    let e = run(&input).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::FrameTooLarge { max: 100 });
    // Incomplete but within limits: wait.
    assert_eq!(run(b"SEND\na:1\n\nxx").unwrap(), None);
}

#[test]
fn encoding_escapes_for_the_version_and_round_trips() {
    let frame = Frame::new(Command::Message)
        .with_header("destination", "/topic/a:b")
        .with_header("weird\\name", "line1\nline2")
        .with_header("content-length", "3")
        .with_body(&b"a\0b"[..]);
    for version in [Version::V1_1, Version::V1_2] {
        let mut out = BytesMut::new();
        encode_frame(&frame, version, &mut out);
        assert_eq!(one(version, &out), frame);
    }
    let mut out = BytesMut::new();
    encode_frame(&frame, Version::V1_0, &mut out);
    let back = one(Version::V1_0, &out);
    assert_eq!(back.header("destination"), Some("/topic/a:b"));
    assert_eq!(back.header("weird\\name"), Some("line1 line2"));
}

#[test]
fn server_replies() {
    let mut out = BytesMut::new();
    encode_connected(
        Version::V1_2,
        HeartBeat {
            send: 10,
            receive: 20,
        },
        "c1",
        "tidings/0.1",
        &mut out,
    );
    let f = one(Version::V1_2, &out);
    assert_eq!(f.command, Command::Connected);
    assert_eq!(f.header("heart-beat"), Some("10,20"));
    out.clear();
    encode_error(
        "bad thing",
        Some("r:1"),
        "more\0detail",
        Version::V1_2,
        &mut out,
    );
    let f = one(Version::V1_2, &out);
    assert_eq!(f.header("message"), Some("bad thing"));
    assert_eq!(f.header("receipt-id"), Some("r:1"));
    assert_eq!(&f.body[..], b"more\0detail");
}

#[test]
fn versions_and_heart_beats_negotiate() {
    assert_eq!(Version::negotiate(None), Some(Version::V1_0));
    assert_eq!(Version::negotiate(Some("1.0,1.1,1.2")), Some(Version::V1_2));
    assert_eq!(Version::negotiate(Some("1.1, 1.0")), Some(Version::V1_1));
    assert_eq!(Version::negotiate(Some("2.0")), None);
    let hb = |send, receive| HeartBeat { send, receive };
    assert_eq!(HeartBeat::parse("0, 5000"), Some(hb(0, 5000)));
    assert_eq!(HeartBeat::parse("x,1"), None);
    assert_eq!(
        HeartBeat::negotiate(hb(1000, 2000), hb(5000, 500)),
        (5000, 1000)
    );
    assert_eq!(HeartBeat::negotiate(hb(0, 2000), hb(5000, 500)), (5000, 0));
    assert_eq!(HeartBeat::negotiate(hb(100, 0), hb(0, 0)), (0, 0));
}

fn client(version: Version, input: &[u8]) -> Result<ClientFrame, FrameError> {
    ClientFrame::from_frame(one(version, input), version)
}

#[test]
fn client_frames_are_checked_per_version() {
    let f = client(
        Version::V1_2,
        b"SEND\ndestination:/topic/t\nreceipt:9\ntransaction:tx\ncontent-type:text/plain\nx-a:1\nx-a:2\n\nhi\0",
    )
    .unwrap();
    assert_eq!(f.receipt.as_deref(), Some("9"));
    match f.op {
        ClientOp::Send {
            destination,
            transaction,
            headers,
            body,
        } => {
            assert_eq!(destination, "/topic/t");
            assert_eq!(transaction.as_deref(), Some("tx"));
            assert_eq!(
                headers,
                vec![
                    ("content-type".into(), "text/plain".into()),
                    ("x-a".into(), "1".into())
                ]
            );
            assert_eq!(&body[..], b"hi");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        client(Version::V1_2, b"SEND\n\n\0"),
        Err(FrameError::MissingHeader {
            command: Command::Send,
            header: "destination"
        })
    );
    // SUBSCRIBE needs an id from 1.1 on; 1.0 uses the destination.
    assert!(client(Version::V1_1, b"SUBSCRIBE\ndestination:/queue/a\n\n\0").is_err());
    match client(
        Version::V1_0,
        b"SUBSCRIBE\ndestination:/queue/a\nack:client\n\n\0",
    )
    .unwrap()
    .op
    {
        ClientOp::Subscribe { id, ack, .. } => {
            assert_eq!(id, "/queue/a");
            assert_eq!(ack, AckMode::Client);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client(
            Version::V1_2,
            b"SUBSCRIBE\nid:1\ndestination:d\nack:sometimes\n\n\0"
        ),
        Err(FrameError::InvalidHeader { header: "ack", .. })
    ));
    // ACK: `id` in 1.2, `message-id` before.
    match client(Version::V1_2, b"ACK\nid:m7\n\n\0").unwrap().op {
        ClientOp::Ack { id, .. } => assert_eq!(id, "m7"),
        other => panic!("{other:?}"),
    }
    // A 1.1-style `message-id` alone is not enough in 1.2 (STOMP 1.2, ACK).
    for command in ["ACK", "NACK"] {
        let frame = format!("{command}\nmessage-id:m7\nsubscription:s\n\n\0");
        let err = client(Version::V1_2, frame.as_bytes()).unwrap_err();
        assert!(matches!(err, FrameError::AckWithoutId { .. }), "{err:?}");
        assert!(err
            .to_string()
            .starts_with(&format!("{command} in STOMP 1.2 needs an \"id\"")));
    }
    match client(Version::V1_1, b"NACK\nmessage-id:m8\nsubscription:s\n\n\0")
        .unwrap()
        .op
    {
        ClientOp::Nack {
            id, subscription, ..
        } => assert_eq!((id.as_str(), subscription.as_deref()), ("m8", Some("s"))),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client(Version::V1_2, b"BEGIN\n\n\0"),
        Err(FrameError::MissingHeader {
            header: "transaction",
            ..
        })
    ));
    assert_eq!(
        client(Version::V1_2, b"MESSAGE\n\n\0"),
        Err(FrameError::ServerCommand(Command::Message))
    );
    assert!(matches!(
        client(Version::V1_2, b"CONNECT\nheart-beat:soon\n\n\0"),
        Err(FrameError::InvalidHeader { .. })
    ));
}
