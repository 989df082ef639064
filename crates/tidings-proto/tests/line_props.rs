//! Properties of the line protocol over generated input.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tidings_proto::line::{
    encode_command, encode_join, encode_leave, encode_message, encode_pong, Command, Decoder,
    Limits, LineError, Reply, ReplyDecoder, ReplyError,
};

/// A token as `encode_command` accepts it: non-empty, no space, no line break.
fn token() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z][a-z0-9.*>_-]{0,15}", "[^ \r\n]{1,12}",]
}

fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        "[ -~]{0,40}".prop_map(Bytes::from),
        "\\PC{0,20}".prop_map(Bytes::from),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from),
        // Line breaks in all positions, including at the end.
        "[a\r\n ]{0,12}".prop_map(Bytes::from),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (
            token(),
            proptest::option::of((any::<u64>(), proptest::option::of(token())))
        )
            .prop_map(|(pattern, resume)| {
                let (since, epoch) = match resume {
                    Some((since, epoch)) => (Some(since), epoch),
                    None => (None, None),
                };
                Command::Sub {
                    pattern,
                    since,
                    epoch,
                }
            }),
        token().prop_map(|pattern| Command::Unsub { pattern }),
        (token(), payload()).prop_map(|(topic, payload)| Command::Pub { topic, payload }),
        (token(), any::<u64>()).prop_map(|(topic, since)| Command::Hist { topic, since }),
        token().prop_map(|topic| Command::Who { topic }),
        (token(), token()).prop_map(|(user, password)| Command::Auth { user, password }),
        proptest::option::of(token()).prop_map(|token| Command::Ping { token }),
        Just(Command::Help),
        Just(Command::Quit),
    ]
}

/// A user name as presence lines carry it: the rest of the line, so spaces are fine.
fn user() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[^\r\n]{1,12}".prop_filter("- means anonymous", |u| u != "-"))
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (token(), any::<u64>(), payload()).prop_map(|(topic, offset, payload)| Reply::Msg {
            topic,
            offset,
            payload
        }),
        proptest::option::of(token()).prop_map(Reply::Pong),
        (token(), token(), user()).prop_map(|(topic, client, user)| Reply::Join {
            topic,
            client,
            user
        }),
        (token(), token(), user()).prop_map(|(topic, client, user)| Reply::Leave {
            topic,
            client,
            user
        }),
    ]
}

fn encode_reply(reply: &Reply, out: &mut BytesMut) {
    match reply {
        Reply::Msg {
            topic,
            offset,
            payload,
        } => encode_message(topic, *offset, payload, out),
        Reply::Pong(token) => encode_pong(token.as_deref(), out),
        Reply::Join {
            topic,
            client,
            user,
        } => encode_join(topic, client, user.as_deref(), out),
        Reply::Leave {
            topic,
            client,
            user,
        } => encode_leave(topic, client, user.as_deref(), out),
        other => unreachable!("not generated: {other:?}"),
    }
}

/// Feeds `data` split at `cuts`, decoding after each piece, until a fatal error.
fn commands(limits: Limits, data: &[u8], cuts: &[usize]) -> Vec<Result<Command, LineError>> {
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces(data, cuts) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(c)) => out.push(Ok(c)),
                Err(e) if e.is_fatal() => {
                    out.push(Err(e));
                    return out;
                }
                Err(e) => out.push(Err(e)),
            }
        }
    }
    out
}

fn replies(limits: Limits, data: &[u8], cuts: &[usize]) -> Vec<Result<Reply, ReplyError>> {
    let mut decoder = ReplyDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces(data, cuts) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(r)) => out.push(Ok(r)),
                Err(e) if e.is_fatal() => {
                    out.push(Err(e));
                    return out;
                }
                Err(e) => out.push(Err(e)),
            }
        }
    }
    out
}

/// `data` cut at the given positions (taken modulo its length, in order).
fn pieces<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts {
        out.push(&data[start..cut]);
        start = cut;
    }
    out.push(&data[start..]);
    out
}

/// Input that looks like the protocol often enough to reach deep paths.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"SUB ".to_vec()),
        Just(b"PUB ".to_vec()),
        Just(b"BPUB t ".to_vec()),
        Just(b"bpub t 3\r\n".to_vec()),
        Just(b"BMSG t 1 ".to_vec()),
        Just(b"MSG t 2 ".to_vec()),
        Just(b"+OK ".to_vec()),
        Just(b"JOIN t c ".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b" ".to_vec()),
        "[0-9]{1,3}".prop_map(String::into_bytes),
        "[a-z.*>]{1,6}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 1..8),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::default()),
        (1usize..40, 0usize..20).prop_map(|(max_line, max_payload)| Limits {
            max_line,
            max_payload
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn encoded_commands_decode_to_themselves(
        list in proptest::collection::vec(command(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = BytesMut::new();
        for c in &list {
            encode_command(c, &mut wire).unwrap();
        }
        let decoded = commands(Limits::default(), &wire, &cuts);
        let expected: Vec<_> = list.into_iter().map(Ok).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn encoded_replies_decode_to_themselves(
        list in proptest::collection::vec(reply(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = BytesMut::new();
        for r in &list {
            encode_reply(r, &mut wire);
        }
        let decoded = replies(Limits::default(), &wire, &cuts);
        let expected: Vec<_> = list.into_iter().map(Ok).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn split_input_decodes_like_whole_input(
        data in stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
        limits in limits(),
    ) {
        prop_assert_eq!(commands(limits, &data, &cuts), commands(limits, &data, &[]));
        prop_assert_eq!(replies(limits, &data, &cuts), replies(limits, &data, &[]));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        limits in limits(),
    ) {
        prop_assert_eq!(commands(limits, &data, &cuts), commands(limits, &data, &[]));
        prop_assert_eq!(replies(limits, &data, &cuts), replies(limits, &data, &[]));
    }
}
