//! What the fuzz targets check, as plain functions: `cargo fuzz` calls them with generated
//! input, and `crates/tidings-proto/tests/corpus.rs` includes this file to run every checked-in
//! seed through the same checks on stable Rust.
//!
//! Beyond "never panics, never hangs", each function checks properties that must hold for any
//! input (a panic here is a finding):
//! - decoding a stream whole or split into arbitrary chunks gives the same results;
//! - a recoverable error always consumes input, so a decoding loop always makes progress;
//! - whatever decodes re-encodes to something that decodes to the same value;
//! - every error reply and every encoded message is valid JSON.

use std::collections::HashMap;

use bytes::BytesMut;
use serde_json::value::RawValue;
use tidings_proto::engineio;
use tidings_proto::json::{self, EncodedFrame, Op};
use tidings_proto::line::{self, Command, Limits, LineError, Reply, ReplyError};
use tidings_proto::socketio;
use tidings_proto::sockjs;
use tidings_proto::stomp;
use tidings_proto::tunnel;
use tidings_proto::udp;

/// The `line_decoder` target: `data` as a byte stream into both line-protocol decoders.
pub fn line_decoder(data: &[u8]) {
    let small = Limits {
        max_line: 32,
        max_payload: 16,
    };
    for limits in [Limits::default(), small] {
        let whole = decode_commands(limits, &[data]);
        let split = decode_commands(limits, &chunks(data));
        assert_eq!(whole, split, "commands differ when the input is split");
        for command in whole.iter().filter_map(|r| r.as_ref().ok()) {
            check_command_round_trip(command);
        }

        let whole = decode_replies(limits, &[data]);
        let split = decode_replies(limits, &chunks(data));
        assert_eq!(whole, split, "replies differ when the input is split");
        for reply in whole.iter().filter_map(|r| r.as_ref().ok()) {
            check_reply_round_trip(reply);
        }
    }
}

/// The `json_decoder` target: `data` as a text frame and as a binary frame.
pub fn json_decoder(data: &[u8]) {
    for binary in [false, true] {
        match json::decode_client(data, binary) {
            Ok(request) => {
                let frame = json::encode_client(&request);
                let again = json::decode_client(&frame.bytes, frame.binary);
                assert_eq!(again.as_ref(), Ok(&request), "encode_client round trip");
                if let Op::Publish {
                    topic,
                    kind,
                    payload,
                    ..
                } = &request.op
                {
                    check_json_frame(&json::encode_message(topic, 7, "e1", *kind, payload));
                }
            }
            Err(error) => {
                let reply = error.to_reply();
                let fields = json_object(reply.as_bytes()).expect("an error reply is JSON");
                assert_eq!(fields["type"].get(), r#""error""#);
                let message: String = serde_json::from_str(fields["message"].get()).unwrap();
                assert_eq!(message, error.to_string());
            }
        }
    }
}

/// The `stomp_decoder` target: `data` as a byte stream into `stomp::Decoder` in every
/// version, with default and with tiny limits; decoded frames are re-encoded and checked as
/// client frames, errors are written as ERROR frames.
pub fn stomp_decoder(data: &[u8]) {
    let small = stomp::Limits {
        max_frame_size: 64,
        max_headers: 3,
        max_header_length: 24,
    };
    for version in stomp::Version::ALL {
        for limits in [stomp::Limits::default(), small] {
            let whole = decode_stomp(limits, version, &[data]);
            let split = decode_stomp(limits, version, &chunks(data));
            assert_eq!(whole, split, "frames differ when the input is split");
            for result in whole {
                match result {
                    Ok(frame) => check_stomp_frame(frame, version),
                    Err(error) => check_stomp_error(&error, version),
                }
            }
        }
    }
}

/// Feeds `chunks` one after the other into a STOMP decoder until the first error, which
/// must repeat and leave the buffer alone.
fn decode_stomp(
    limits: stomp::Limits,
    version: stomp::Version,
    chunks: &[&[u8]],
) -> Vec<Result<stomp::Frame, stomp::DecodeError>> {
    let mut decoder = stomp::Decoder::new(limits, version);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    let size = frame.body.len();
                    assert!(
                        size < limits.max_frame_size,
                        "a body beyond the frame limit"
                    );
                    assert!(frame.headers.len() <= limits.max_headers);
                    out.push(Ok(frame));
                }
                Err(error) => {
                    let len = buf.len();
                    assert_eq!(decoder.decode(&mut buf), Err(error.clone()));
                    assert_eq!(buf.len(), len, "an error leaves the buffer alone");
                    out.push(Err(error));
                    return out;
                }
            }
        }
    }
    out
}

fn check_stomp_frame(frame: stomp::Frame, version: stomp::Version) {
    // What a client frame means (CONNECT's Bearer token, ACK's id rule, ...) is read without
    // panicking, whatever the headers say.
    let _ = stomp::ClientFrame::from_frame(frame.clone(), version);
    // Whatever decodes re-encodes to the same frame, except that without `\r` escapes (1.0,
    // 1.1, CONNECT/CONNECTED) a value ending in `\r` loses it to the line end.
    let escapes_cr = version == stomp::Version::V1_2 && frame.command.escapes_headers();
    let comparable = escapes_cr
        || frame
            .headers
            .iter()
            .all(|(n, v)| !n.contains('\r') && !v.contains('\r'));
    let mut buf = BytesMut::new();
    stomp::encode_frame(&frame, version, &mut buf);
    let big = stomp::Limits {
        max_frame_size: 1 << 24,
        max_headers: 1 << 16,
        max_header_length: 1 << 20,
    };
    let again = stomp::Decoder::new(big, version).decode(&mut buf);
    match again {
        Ok(Some(back)) if comparable => assert_eq!(back, frame, "encode_frame round trip"),
        Ok(Some(back)) => assert_eq!(back.command, frame.command),
        other => panic!("a re-encoded frame does not decode: {other:?}"),
    }
    if let Ok(client) = stomp::ClientFrame::from_frame(frame.clone(), version) {
        assert!(frame.command.is_client());
        assert_eq!(client.receipt.as_deref(), frame.header("receipt"));
        if let stomp::ClientOp::Send { headers, body, .. } = client.op {
            assert_eq!(body, frame.body);
            for (name, _) in &headers {
                assert!(!stomp::SEND_CONTROL_HEADERS.contains(&name.as_str()));
            }
        }
    }
}

/// The ERROR frame a server sends for `error` decodes, with the same receipt.
fn check_stomp_error(error: &stomp::DecodeError, version: stomp::Version) {
    let mut buf = BytesMut::new();
    let message = error.to_string();
    stomp::encode_error(
        &message,
        error.receipt.as_deref(),
        &message,
        version,
        &mut buf,
    );
    let frame = stomp::Decoder::new(stomp::Limits::default(), version)
        .decode(&mut buf)
        .expect("an ERROR frame decodes")
        .expect("a whole ERROR frame");
    assert_eq!(frame.command, stomp::Command::Error);
    assert_eq!(&frame.body[..], message.as_bytes());
    let clean = |s: &str| !s.contains(['\r', '\n']);
    if version != stomp::Version::V1_0 && (version == stomp::Version::V1_2 || clean(&message)) {
        assert_eq!(frame.header("message"), Some(message.as_str()));
    }
    if let Some(receipt) = &error.receipt {
        if version == stomp::Version::V1_2 || clean(receipt) {
            assert_eq!(frame.header("receipt-id"), Some(receipt.as_str()));
        }
    }
}

/// The `udp_decoder` target: `data` as one datagram into both UDP decoders.
///
/// Datagram encodings are canonical (length-prefixed fields, zero padding), so whatever
/// decodes must re-encode to exactly the input; an error reply always fits in the request.
pub fn udp_decoder(data: &[u8]) {
    let tiny = udp::Limits { max_datagram: 16 };
    for limits in [udp::Limits::default(), tiny] {
        match udp::decode_request(data, limits) {
            Ok(request) => {
                assert!(data.len() <= limits.max_datagram);
                let mut again = Vec::new();
                udp::encode_request(&request, data.len(), &mut again);
                assert_eq!(again, data, "a request re-encodes to its datagram");
                assert_eq!(udp::peek_request_id(data), Some(request.id()));
                if let udp::Request::Publish {
                    kind,
                    topic,
                    payload,
                    ..
                } = request
                {
                    let message = udp::Reply::Message {
                        kind,
                        offset: 7,
                        epoch: "e1",
                        topic,
                        payload,
                    };
                    let mut bytes = Vec::new();
                    udp::encode_reply(&message, &mut bytes);
                    assert_eq!(bytes.len(), udp::message_len(topic, "e1", payload));
                    let big = udp::Limits {
                        max_datagram: usize::MAX,
                    };
                    assert_eq!(udp::decode_reply(&bytes, big), Ok(message));
                }
            }
            Err(error) => {
                if let Some(id) = udp::peek_request_id(data) {
                    let mut reply = Vec::new();
                    if udp::encode_error(
                        id,
                        udp::ErrorCode::BadRequest,
                        &error.to_string(),
                        data.len(),
                        &mut reply,
                    ) {
                        assert!(reply.len() <= data.len(), "an error fits its request");
                        let decoded = udp::decode_reply(
                            &reply,
                            udp::Limits {
                                max_datagram: usize::MAX,
                            },
                        );
                        assert!(matches!(decoded, Ok(udp::Reply::Error { .. })));
                    }
                }
            }
        }
        if let Ok(reply) = udp::decode_reply(data, limits) {
            let mut again = Vec::new();
            udp::encode_reply(&reply, &mut again);
            assert_eq!(again, data, "a reply re-encodes to its datagram");
        }
    }
}

/// Feeds `chunks` one after the other, decoding after each, until a fatal error.
fn decode_commands(limits: Limits, chunks: &[&[u8]]) -> Vec<Result<Command, LineError>> {
    let mut decoder = line::Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(command)) => out.push(Ok(command)),
                Err(error) if error.is_fatal() => {
                    // The buffer stays at the offending frame: the same error again.
                    let len = buf.len();
                    assert_eq!(decoder.decode(&mut buf), Err(error.clone()));
                    assert_eq!(buf.len(), len, "a fatal error leaves the buffer alone");
                    out.push(Err(error));
                    return out;
                }
                Err(error) => {
                    assert!(buf.len() < before, "a recoverable error consumes its line");
                    out.push(Err(error));
                }
            }
        }
    }
    out
}

fn decode_replies(limits: Limits, chunks: &[&[u8]]) -> Vec<Result<Reply, ReplyError>> {
    let mut decoder = line::ReplyDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(reply)) => out.push(Ok(reply)),
                Err(error) if error.is_fatal() => {
                    // The buffer stays at the offending frame: the same error again.
                    let len = buf.len();
                    assert_eq!(decoder.decode(&mut buf), Err(error.clone()));
                    assert_eq!(buf.len(), len, "a fatal error leaves the buffer alone");
                    out.push(Err(error));
                    return out;
                }
                Err(error) => {
                    assert!(buf.len() < before, "a recoverable error consumes its line");
                    out.push(Err(error));
                }
            }
        }
    }
    out
}

/// Limits large enough for anything the small-limit decoders let through.
fn roomy() -> Limits {
    Limits {
        max_line: 1 << 20,
        max_payload: 1 << 20,
    }
}

fn check_command_round_trip(command: &Command) {
    let mut buf = BytesMut::new();
    // Tokens may hold a `\r` in mid-line, which `encode_command` refuses to write.
    if line::encode_command(command, &mut buf).is_err() {
        return;
    }
    let mut decoder = line::Decoder::new(roomy());
    assert_eq!(
        decoder.decode(&mut buf).as_ref(),
        Ok(&Some(command.clone()))
    );
    assert!(buf.is_empty());
}

fn check_reply_round_trip(reply: &Reply) {
    let mut buf = BytesMut::new();
    match reply {
        Reply::Msg {
            topic,
            offset,
            payload,
        } => line::encode_message(topic, *offset, payload, &mut buf),
        Reply::Pong(token) => line::encode_pong(token.as_deref(), &mut buf),
        Reply::Join {
            topic,
            client,
            user,
        } => line::encode_join(topic, client, user.as_deref(), &mut buf),
        Reply::Leave {
            topic,
            client,
            user,
        } => line::encode_leave(topic, client, user.as_deref(), &mut buf),
        // Free text: a `\r` inside it is written as a space, so no exact round trip.
        _ => return,
    }
    let mut decoder = line::ReplyDecoder::new(roomy());
    let decoded = decoder.decode(&mut buf);
    // Tokens holding a mid-line `\r` are written with `_`, so compare only clean ones.
    let clean = |s: &str| !s.contains('\r');
    let comparable = match reply {
        Reply::Msg { topic, .. } => clean(topic),
        Reply::Pong(token) => token.as_deref().is_none_or(clean),
        Reply::Join {
            topic,
            client,
            user,
        }
        | Reply::Leave {
            topic,
            client,
            user,
        } => clean(topic) && clean(client) && user.as_deref().is_none_or(clean),
        _ => false,
    };
    if comparable {
        assert_eq!(decoded.as_ref(), Ok(&Some(reply.clone())));
    } else {
        assert!(matches!(decoded, Ok(Some(_))));
    }
}

/// A text frame must be JSON; a binary frame a JSON header, `\n`, the payload.
fn check_json_frame(frame: &EncodedFrame) {
    let header = if frame.binary {
        let newline = frame
            .bytes
            .iter()
            .position(|&b| b == b'\n')
            .expect("a binary frame has a header line");
        &frame.bytes[..newline]
    } else {
        &frame.bytes[..]
    };
    let fields = json_object(header).expect("a message is JSON");
    assert_eq!(fields["type"].get(), r#""message""#);
}

/// Parses a JSON object, checking the grammar of every value but keeping values raw.
///
/// Not `serde_json::Value`: JSON's grammar allows numbers like `1e999` that do not fit an
/// `f64`, and a request's `id` and `data` are passed on verbatim, so frames may hold them.
fn json_object(bytes: &[u8]) -> serde_json::Result<HashMap<String, &RawValue>> {
    serde_json::from_slice(bytes)
}

/// Splits `data` into chunks of pseudo-random sizes derived from `data` itself, so a run is
/// reproducible from its input alone.
fn chunks(data: &[u8]) -> Vec<&[u8]> {
    let mut state = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = match state % 8 {
            0 => 1,
            1..=5 => 1 + (state >> 8) as usize % 16,
            _ => 1 + (state >> 8) as usize % 512,
        };
        let (head, tail) = rest.split_at(size.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// The `sockjs_decoder` target: `data` as an `xhr_send` body and as a `jsonp_send` body (form
/// and raw). Whatever decodes must quote back into SockJS messages that are valid JSON and
/// give back exactly the strings decoded; an error is one of the two SockJS texts.
pub fn sockjs_decoder(data: &[u8]) {
    for result in [
        sockjs::xhr_body(data),
        sockjs::jsonp_body(data, true),
        sockjs::jsonp_body(data, false),
    ] {
        match result {
            Ok(messages) => {
                let quoted: Vec<bytes::Bytes> = messages
                    .iter()
                    .map(|m| sockjs::quoted(m.as_bytes()))
                    .collect();
                let frame = sockjs::messages(&quoted);
                assert_eq!(frame[0], b'a');
                let back: Vec<String> = serde_json::from_slice(&frame[1..])
                    .expect("an `a` frame is a JSON array of strings");
                assert_eq!(back, messages, "quoting round-trips");
            }
            Err(e) => assert!(["Payload expected.", "Broken JSON encoding."].contains(&e.text())),
        }
    }
}

/// The `engineio_decoder` target: `data` as a long-polling payload and as a WebSocket text
/// frame. The packets before the first bad one re-encode into a payload that decodes to the
/// same packets (binary through base64 included).
pub fn engineio_decoder(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = engineio::decode_packet(text);
    }
    let Ok(packets) = engineio::decode_payload(data) else {
        assert!(
            std::str::from_utf8(data).is_err(),
            "only non-UTF-8 is refused whole"
        );
        return;
    };
    let good: Vec<engineio::Packet<'_>> = packets.map_while(Result::ok).collect();
    if good.is_empty() {
        return;
    }
    let mut w = engineio::PayloadWriter::new();
    for p in &good {
        w.packet(p);
    }
    let bytes = w.finish();
    let again: Vec<_> = engineio::decode_payload(&bytes)
        .expect("a written payload is UTF-8")
        .collect::<Result<_, _>>()
        .expect("a written payload decodes");
    assert_eq!(again, good, "payload round trip");
}

/// The `socketio_decoder` target: `data` as the JSON of a client's event and of a CONNECT
/// payload, the checks tidings owns on top of the Socket.IO frame parser. A decoded event
/// re-encodes (as the server writes events) to the same name and arguments; an accepted
/// CONNECT payload is a JSON object; a placeholder's index survives its own encoding.
pub fn socketio_decoder(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(event) = socketio::decode_event(text, Vec::new(), Some(1)) {
        let mut args = vec![socketio::json_string(&event.name)];
        args.extend(event.args.iter().map(|a| a.get().to_owned()));
        let array = format!("[{}]", args.join(","));
        let out = socketio::event("/", &array, Vec::new());
        let body = out.text.strip_prefix('2').expect("an EVENT packet");
        let again = socketio::decode_event(body, Vec::new(), None).expect("re-decodes");
        assert_eq!(again.name, event.name);
        let raw = |e: &socketio::Event| {
            e.args
                .iter()
                .map(|a| a.get().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(raw(&again), raw(&event));
        for arg in &event.args {
            if let Some(n) = socketio::placeholder(arg) {
                let json = socketio::placeholder_json(n);
                let back: Box<RawValue> = serde_json::from_str(&json).expect("placeholder JSON");
                assert_eq!(socketio::placeholder(&back), Some(n));
            }
        }
    }
    if let Ok(Some(auth)) = socketio::decode_auth(Some(text)) {
        let fields: serde_json::Result<HashMap<String, &RawValue>> =
            serde_json::from_str(auth.get());
        assert!(fields.is_ok(), "an accepted CONNECT payload is an object");
    }
    // Whatever the text, the encoders write packets whose JSON part parses.
    let reply = socketio::connect_error("/x", text, None);
    let json = reply
        .text
        .strip_prefix("4/x,")
        .expect("a CONNECT_ERROR packet");
    assert!(serde_json::from_str::<HashMap<String, &RawValue>>(json).is_ok());
}

/// The `tunnel_decoder` target: `data` as one message a node receives on its forwarding
/// channel (`tunnel::decode`). Whatever decodes re-encodes to a message that decodes to the
/// same fields (tunnel numbers may have been written with leading zeros), with the payload
/// passed through untouched: the bytes after the head.
pub fn tunnel_decoder(data: &[u8]) {
    let Some(m) = tunnel::decode(data) else {
        return;
    };
    assert!(
        data.len() - m.payload.len() <= tunnel::MAX_HEAD + 1,
        "head within its limit"
    );
    assert!(data.ends_with(m.payload), "the payload is the input's tail");
    assert!(m.payload.len() <= tunnel::MAX_PAYLOAD);
    assert_eq!(m.node.len(), tunnel::NODE_LEN);
    let again = tunnel::encode(m.kind, m.node, m.tunnel, m.payload);
    assert_eq!(tunnel::decode(&again), Some(m));
}
