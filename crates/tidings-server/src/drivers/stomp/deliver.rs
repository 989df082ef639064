//! Hub deliveries as MESSAGE frames.
//!
//! A topic message is sent to many subscribers, so everything after the per-subscription
//! lines (`subscription`, and `ack` for client-acknowledged 1.2 subscriptions) is encoded once
//! and cached in the message (`EncodingSlot::Stomp`), shared by every subscriber of every
//! version whenever none of its headers needs escaping (nearly always); otherwise it is
//! encoded per version. A queue message goes to one consumer and is encoded for it.
//!
//! ```text
//! MESSAGE
//! subscription:<id>                 per subscription
//! ack:<message-id>                  1.2, ack client / client-individual
//! message-id:t<offset>-<topic>      shared tail ...
//! destination:/topic/<topic>
//! offset:<n>
//! epoch:<e>
//! content-type:...                  the publisher's, else from the payload kind
//! <user headers>
//! content-length:<n>
//!
//! <body>\0
//! ```

use super::destination::{QUEUE, TOPIC};
use bytes::{BufMut, Bytes, BytesMut};
use tidings_core::{EncodingSlot, Message, PayloadKind};
use tidings_proto::stomp::{self, AckMode, Command, FrameWriter, Version};

/// What the encoder needs to know of a subscription.
#[derive(Debug, Clone)]
pub(super) struct SubInfo {
    pub(super) id: String,
    pub(super) ack: AckMode,
    pub(super) queue: bool,
    /// `MESSAGE\nsubscription:<id>\n`, escaped for the session's version.
    pub(super) prefix: Bytes,
}

impl SubInfo {
    pub(super) fn new(id: &str, ack: AckMode, queue: bool, version: Version) -> SubInfo {
        let mut prefix = BytesMut::new();
        prefix.put_slice(b"MESSAGE\n");
        stomp::write_headers(
            [("subscription", id)],
            Command::Message,
            version,
            &mut prefix,
        );
        SubInfo {
            id: id.to_owned(),
            ack,
            queue,
            prefix: prefix.freeze(),
        }
    }

    /// 1.2 frames carry an `ack` header the client echoes in ACK/NACK `id`.
    fn wants_ack_header(&self, version: Version) -> bool {
        version == Version::V1_2 && self.ack != AckMode::Auto
    }
}

/// The `message-id` of a queue message for a subscription: `q<seq>-<subscription id>`, which
/// ACK/NACK parse back ([`parse_queue_ack`]).
pub(super) fn queue_message_id(seq: u64, sub: &str) -> String {
    format!("q{seq}-{sub}")
}

/// `(sequence, subscription id)` of an id made by [`queue_message_id`].
pub(super) fn parse_queue_ack(id: &str) -> Option<(u64, &str)> {
    let rest = id.strip_prefix('q')?;
    let (seq, sub) = rest.split_once('-')?;
    Some((seq.parse().ok()?, sub))
}

fn topic_message_id(msg: &Message) -> String {
    format!("t{}-{}", msg.offset, msg.topic)
}

/// Appends a MESSAGE frame for `msg` delivered to `sub`.
pub(super) fn encode_message(msg: &Message, sub: &SubInfo, version: Version, out: &mut BytesMut) {
    if sub.queue {
        return encode_queue_message(msg, sub, version, out);
    }
    out.put_slice(&sub.prefix);
    if sub.wants_ack_header(version) {
        stomp::write_headers(
            [("ack", topic_message_id(msg).as_str())],
            Command::Message,
            version,
            out,
        );
    }
    let shared = msg.encoded(EncodingSlot::Stomp, |m| {
        if portable(m) {
            let mut b = BytesMut::with_capacity(m.payload.len() + m.topic.len() * 2 + 128);
            topic_tail(m, Version::V1_2, &mut b);
            b.freeze()
        } else {
            // Marks "encode per version" (a real tail is never empty).
            Bytes::new()
        }
    });
    if shared.is_empty() {
        topic_tail(msg, version, out);
    } else {
        out.put_slice(&shared);
    }
}

/// True when no header of the message is written differently by any version.
fn portable(m: &Message) -> bool {
    let clean = |s: &str| !s.contains(['\\', ':', '\n', '\r']);
    clean(&m.topic) && m.headers.iter().all(|(n, v)| clean(n) && clean(v))
}

/// Everything after the per-subscription lines of a topic message.
fn topic_tail(m: &Message, version: Version, out: &mut BytesMut) {
    let message_id = topic_message_id(m);
    let destination = format!("{TOPIC}{}", m.topic);
    let offset = m.offset.to_string();
    let mut headers: Vec<(&str, &str)> = vec![
        ("message-id", &message_id),
        ("destination", &destination),
        ("offset", &offset),
        ("epoch", &m.epoch),
    ];
    common_headers(m, &mut headers);
    stomp::write_headers(headers, Command::Message, version, out);
    write_body(&m.payload, out);
}

fn encode_queue_message(msg: &Message, sub: &SubInfo, version: Version, out: &mut BytesMut) {
    let message_id = queue_message_id(msg.offset, &sub.id);
    let destination = format!("{QUEUE}{}", msg.topic);
    let mut w = FrameWriter::new(out, Command::Message, version)
        .header("subscription", &sub.id)
        .header("message-id", &message_id);
    if sub.wants_ack_header(version) {
        w = w.header("ack", &message_id);
    }
    w = w.header("destination", &destination);
    if msg.redelivered {
        w = w.header("redelivered", "true");
    }
    let mut headers = Vec::new();
    common_headers(msg, &mut headers);
    for (name, value) in headers {
        w = w.header(name, value);
    }
    w.finish_with_length(&msg.payload);
}

/// The publisher's headers, with a `content-type` from the payload kind when it gave none.
fn common_headers<'m>(m: &'m Message, headers: &mut Vec<(&'m str, &'m str)>) {
    if !m.headers.iter().any(|(n, _)| &**n == "content-type") {
        headers.push((
            "content-type",
            match m.kind {
                PayloadKind::Text => "text/plain;charset=utf-8",
                PayloadKind::Json => "application/json",
                PayloadKind::Binary => "application/octet-stream",
            },
        ));
    }
    for (name, value) in &m.headers {
        headers.push((name, value));
    }
}

fn write_body(body: &[u8], out: &mut BytesMut) {
    out.put_slice(b"content-length:");
    out.put_slice(body.len().to_string().as_bytes());
    out.put_slice(b"\n\n");
    out.put_slice(body);
    out.put_u8(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tidings_proto::stomp::{Decoder, Limits};

    fn decode(bytes: &[u8], version: Version) -> stomp::Frame {
        let mut buf = BytesMut::from(bytes);
        Decoder::new(Limits::default(), version)
            .decode(&mut buf)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn topic_messages_share_their_tail_and_escape_when_needed() {
        let mut m = Message::new(
            "a.b".into(),
            7,
            "e1".into(),
            PayloadKind::Binary,
            Bytes::from_static(b"x\0y"),
            0,
        );
        m.headers.push((Arc::from("k"), Arc::from("v")));
        for version in Version::ALL {
            let sub = SubInfo::new("s:1", AckMode::Client, false, version);
            let mut out = BytesMut::new();
            encode_message(&m, &sub, version, &mut out);
            let f = decode(&out, version);
            assert_eq!(f.header("destination"), Some("/topic/a.b"));
            assert_eq!(f.header("offset"), Some("7"));
            assert_eq!(f.header("k"), Some("v"));
            assert_eq!(f.header("content-type"), Some("application/octet-stream"));
            assert_eq!(&f.body[..], b"x\0y");
            assert_eq!(f.header("ack").is_some(), version == Version::V1_2);
        }
        let mut odd = Message::new(
            "a:b".into(),
            1,
            "e".into(),
            PayloadKind::Text,
            Bytes::from_static(b"t"),
            0,
        );
        odd.headers.push((Arc::from("x"), Arc::from("1\n2")));
        let sub = SubInfo::new("s", AckMode::Auto, false, Version::V1_1);
        let mut out = BytesMut::new();
        encode_message(&odd, &sub, Version::V1_1, &mut out);
        let f = decode(&out, Version::V1_1);
        assert_eq!(f.header("destination"), Some("/topic/a:b"));
        assert_eq!(f.header("x"), Some("1\n2"));
    }

    #[test]
    fn queue_message_ids_parse_back() {
        let id = queue_message_id(42, "sub-1");
        assert_eq!(parse_queue_ack(&id), Some((42, "sub-1")));
        assert_eq!(parse_queue_ack("t1-x"), None);
        let mut m = Message::new(
            "jobs".into(),
            3,
            "e".into(),
            PayloadKind::Text,
            Bytes::from_static(b"j"),
            0,
        );
        m.redelivered = true;
        let sub = SubInfo::new("s", AckMode::ClientIndividual, true, Version::V1_2);
        let mut out = BytesMut::new();
        encode_message(&m, &sub, Version::V1_2, &mut out);
        let f = decode(&out, Version::V1_2);
        assert_eq!(f.header("ack"), Some("q3-s"));
        assert_eq!(f.header("destination"), Some("/queue/jobs"));
        assert_eq!(f.header("redelivered"), Some("true"));
    }
}
