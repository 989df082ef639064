//! The line protocol, by example: what a person typing into `nc` gets, and what a client
//! library reads back.

use bytes::{Bytes, BytesMut};
use tidings_proto::line::{
    encode_command, encode_err, encode_join, encode_leave, encode_message, encode_ok, encode_pong,
    Command, Decoder, EncodeError, Limits, LineError, Reply, ReplyDecoder, ReplyError, GREETING,
    HELP,
};

/// Decodes everything in `input` with default limits, stopping after a fatal error.
fn decode(input: &[u8]) -> Vec<Result<Command, LineError>> {
    decode_with(Limits::default(), input)
}

fn decode_with(limits: Limits, input: &[u8]) -> Vec<Result<Command, LineError>> {
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(None) => return out,
            Ok(Some(c)) => out.push(Ok(c)),
            Err(e) => {
                let fatal = e.is_fatal();
                out.push(Err(e));
                if fatal {
                    return out;
                }
            }
        }
    }
}

fn one(input: &str) -> Result<Command, LineError> {
    let mut all = decode(input.as_bytes());
    assert_eq!(all.len(), 1, "{input:?} gave {all:?}");
    all.remove(0)
}

fn error_text(input: &str) -> String {
    one(input).unwrap_err().to_string()
}

fn publish(topic: &str, payload: &[u8]) -> Command {
    Command::Pub {
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload),
    }
}

#[test]
fn every_command() {
    let sub = |pattern: &str, since, epoch: Option<&str>| Command::Sub {
        pattern: pattern.into(),
        since,
        epoch: epoch.map(Into::into),
    };
    let cases = [
        ("SUB chat.*\n", sub("chat.*", None, None)),
        ("SUB chat.> 12\n", sub("chat.>", Some(12), None)),
        (
            "SUB chat.> 12 1f3a\n",
            sub("chat.>", Some(12), Some("1f3a")),
        ),
        (
            "UNSUB chat.*\n",
            Command::Unsub {
                pattern: "chat.*".into(),
            },
        ),
        (
            "PUB chat.lobby hello world\n",
            publish("chat.lobby", b"hello world"),
        ),
        (
            "HIST chat.lobby\n",
            Command::Hist {
                topic: "chat.lobby".into(),
                since: 0,
            },
        ),
        (
            "HIST chat.lobby 40\n",
            Command::Hist {
                topic: "chat.lobby".into(),
                since: 40,
            },
        ),
        (
            "WHO chat.lobby\n",
            Command::Who {
                topic: "chat.lobby".into(),
            },
        ),
        (
            "AUTH alice s3cret\n",
            Command::Auth {
                user: "alice".into(),
                password: "s3cret".into(),
            },
        ),
        ("PING\n", Command::Ping { token: None }),
        (
            "PING abc\n",
            Command::Ping {
                token: Some("abc".into()),
            },
        ),
        ("HELP\n", Command::Help),
        ("QUIT\n", Command::Quit),
    ];
    for (input, expected) in cases {
        assert_eq!(one(input), Ok(expected.clone()), "{input:?}");
        let crlf = input.replace('\n', "\r\n");
        assert_eq!(one(&crlf), Ok(expected), "{crlf:?}");
    }
}

#[test]
fn verbs_are_case_insensitive_and_spaces_repeat() {
    assert_eq!(one("pub t hi\n"), Ok(publish("t", b"hi")));
    assert_eq!(one("Quit\n"), Ok(Command::Quit));
    assert_eq!(
        one("  sub    a.b   7  \r\n"),
        Ok(Command::Sub {
            pattern: "a.b".into(),
            since: Some(7),
            epoch: None
        })
    );
}

#[test]
fn pub_payload_is_the_rest_of_the_line_after_one_space() {
    assert_eq!(
        one("PUB t  two  spaces \n"),
        Ok(publish("t", b" two  spaces "))
    );
    assert_eq!(one("PUB t\n"), Ok(publish("t", b"")));
    assert_eq!(one("PUB t \n"), Ok(publish("t", b"")));
    assert_eq!(one("PUB   t x\n"), Ok(publish("t", b"x")));
    assert_eq!(
        one("PUB t café ☕\r\n"),
        Ok(publish("t", "café ☕".as_bytes()))
    );
}

#[test]
fn blank_lines_are_skipped() {
    assert_eq!(
        decode(b"\n\r\n   \r\nPING\n\n"),
        vec![Ok(Command::Ping { token: None })]
    );
}

#[test]
fn payloads_are_not_copied() {
    let mut buf = BytesMut::from(&b"PUB t hello\r\nBPUB t 3\r\nabc\r\n"[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let mut decoder = Decoder::default();
    for _ in 0..2 {
        let Ok(Some(Command::Pub { payload, .. })) = decoder.decode(&mut buf) else {
            panic!("expected a publish");
        };
        assert!(range.contains(&(payload.as_ptr() as usize)));
    }
}

#[test]
fn bpub_frames_binary_and_multiline_payloads() {
    assert_eq!(
        decode(b"BPUB cam.1 4\r\n\x00\r\n\xff\r\nPING\r\n"),
        vec![
            Ok(publish("cam.1", b"\x00\r\n\xff")),
            Ok(Command::Ping { token: None })
        ]
    );
    // `\n` alone after the payload, lower-case verb, empty payload.
    assert_eq!(
        decode(b"bpub t 0\n\nBPUB t 2\nab\n"),
        vec![Ok(publish("t", b"")), Ok(publish("t", b"ab"))]
    );
}

#[test]
fn incomplete_input_waits_without_consuming() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let input = b"BPUB t 5\r\nab\ncd\r\n";
    for (i, &byte) in input.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        let result = decoder.decode(&mut buf);
        if i + 1 < input.len() {
            assert_eq!(result, Ok(None), "after {} bytes", i + 1);
            assert_eq!(buf.len(), i + 1);
        } else {
            assert_eq!(result, Ok(Some(publish("t", b"ab\ncd"))));
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn recoverable_errors_consume_the_line_and_say_what_is_wrong() {
    let cases = [
        ("FOO bar\n", r#"unknown command "FOO"; try HELP"#),
        (
            "SUB\n",
            "SUB needs a pattern; usage: SUB <pattern> [<since> [<epoch>]]",
        ),
        ("SUB a x\n", r#"SUB since must be a whole number, got "x""#),
        (
            "SUB a 1 e extra\n",
            "too many arguments for SUB; usage: SUB <pattern> [<since> [<epoch>]]",
        ),
        ("PUB\n", "PUB needs a topic; usage: PUB <topic> <text>"),
        (
            "AUTH alice\n",
            "AUTH needs a password; usage: AUTH <user> <password> | AUTH TOKEN <jwt>",
        ),
        (
            "HIST t -1\n",
            r#"HIST since must be a whole number, got "-1""#,
        ),
        ("QUIT now\n", "too many arguments for QUIT; usage: QUIT"),
        (
            "PING a b\n",
            "too many arguments for PING; usage: PING [<token>]",
        ),
        (
            "BPUB t\n",
            "BPUB needs a length; usage: BPUB <topic> <len>, then <len> bytes and a line end",
        ),
        (
            "BPUB t ten\n",
            r#"BPUB length must be a whole number, got "ten""#,
        ),
    ];
    for (input, message) in cases {
        let error = one(input).unwrap_err();
        assert!(!error.is_fatal(), "{input:?}");
        assert_eq!(error.to_string(), message, "{input:?}");
    }
    // The connection goes on after each of them.
    let results = decode(b"FOO\r\nSUB\r\nPING\r\n");
    assert_eq!(results.len(), 3);
    assert_eq!(results[2], Ok(Command::Ping { token: None }));
}

#[test]
fn invalid_utf8_is_a_recoverable_error() {
    let results = decode(b"PUB t \xff\r\nSUB \xc3\r\nBPUB \xff 1\r\nx\r\nPING\r\n");
    assert_eq!(
        results,
        vec![
            Err(LineError::PayloadNotUtf8),
            Err(LineError::NotUtf8 {
                command: "SUB",
                what: "a pattern"
            }),
            Err(LineError::NotUtf8 {
                command: "BPUB",
                what: "topic"
            }),
            Ok(Command::Ping { token: None }),
        ]
    );
    assert_eq!(
        results[0].as_ref().unwrap_err().to_string(),
        "PUB payload is not valid UTF-8; use BPUB for binary data"
    );
}

#[test]
fn quoted_input_is_escaped_and_truncated() {
    let text = error_text("F\u{7}O\r\n");
    assert_eq!(text, r#"unknown command "F\u{7}O"; try HELP"#);
    let long = format!("{}\n", "X".repeat(500));
    assert!(error_text(&long).len() < 100);
}

#[test]
fn long_lines_are_fatal() {
    let limits = Limits {
        max_line: 16,
        max_payload: 8,
    };
    // Exactly at the limit is fine, with either line end.
    let ok = format!("PUB t {}\r\n", "x".repeat(10));
    assert!(decode_with(limits, ok.as_bytes())[0].is_ok());
    // One more byte, with or without a line end yet, is not.
    for input in [format!("PUB t {}\r\n", "x".repeat(11)), "P".repeat(18)] {
        let results = decode_with(limits, input.as_bytes());
        assert_eq!(results, vec![Err(LineError::LineTooLong { max: 16 })]);
    }
    assert_eq!(
        LineError::LineTooLong { max: 4096 }.to_string(),
        "line longer than 4096 bytes"
    );
}

#[test]
fn bpub_limits_and_framing_errors_are_fatal_and_repeat() {
    let limits = Limits {
        max_line: 64,
        max_payload: 8,
    };
    let cases: [(&[u8], LineError); 3] = [
        (
            b"BPUB t 9\r\n",
            LineError::PayloadTooLarge { len: 9, max: 8 },
        ),
        (
            b"BPUB t 99999999999999999999999\r\n",
            LineError::PayloadTooLarge {
                len: u64::MAX,
                max: 8,
            },
        ),
        (
            b"BPUB t 2\r\nabcd\r\n",
            LineError::MissingLineEnd { len: 2 },
        ),
    ];
    for (input, expected) in cases {
        let mut decoder = Decoder::new(limits);
        let mut buf = BytesMut::from(input);
        for _ in 0..2 {
            let error = decoder.decode(&mut buf).unwrap_err();
            assert_eq!(error, expected);
            assert!(error.is_fatal());
            assert_eq!(&buf[..], input, "the buffer is left alone");
        }
    }
    assert_eq!(
        LineError::PayloadTooLarge { len: 9, max: 8 }.to_string(),
        "BPUB payload of 9 bytes is larger than the limit of 8 bytes"
    );
}

#[test]
fn encode_command_writes_pub_or_bpub() {
    let mut out = BytesMut::new();
    encode_command(&publish("chat", b"hi there"), &mut out).unwrap();
    assert_eq!(&out[..], b"PUB chat hi there\r\n");
    out.clear();
    encode_command(&publish("chat", b"two\nlines"), &mut out).unwrap();
    assert_eq!(&out[..], b"BPUB chat 9\r\ntwo\nlines\r\n");
    out.clear();
    encode_command(&publish("chat", b"\xff"), &mut out).unwrap();
    assert_eq!(&out[..], b"BPUB chat 1\r\n\xff\r\n");
    out.clear();
    let sub = Command::Sub {
        pattern: "a.*".into(),
        since: Some(3),
        epoch: Some("e1".into()),
    };
    encode_command(&sub, &mut out).unwrap();
    assert_eq!(&out[..], b"SUB a.* 3 e1\r\n");
}

#[test]
fn encode_command_refuses_what_would_not_come_back() {
    let mut out = Vec::new();
    let bad_topic = publish("a b", b"x");
    assert_eq!(
        encode_command(&bad_topic, &mut out),
        Err(EncodeError::InvalidToken {
            what: "topic",
            value: "a b".into()
        })
    );
    let no_since = Command::Sub {
        pattern: "a".into(),
        since: None,
        epoch: Some("e".into()),
    };
    assert_eq!(
        encode_command(&no_since, &mut out),
        Err(EncodeError::EpochWithoutSince)
    );
    let empty_token = Command::Ping {
        token: Some(String::new()),
    };
    assert!(encode_command(&empty_token, &mut out).is_err());
    assert!(out.is_empty(), "nothing is written on error");
}

fn replies(input: &[u8]) -> Vec<Result<Reply, ReplyError>> {
    let mut decoder = ReplyDecoder::new(Limits::default());
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(None) => return out,
            Ok(Some(r)) => out.push(Ok(r)),
            Err(e) => {
                let fatal = e.is_fatal();
                out.push(Err(e));
                if fatal {
                    return out;
                }
            }
        }
    }
}

#[test]
fn server_lines_read_back() {
    let mut out = BytesMut::new();
    out.extend_from_slice(GREETING.as_bytes());
    encode_ok(format_args!("PUB chat.lobby {}", 13), &mut out);
    encode_err(LineError::PayloadNotUtf8, &mut out);
    encode_message("chat.lobby", 5, b"hello there", &mut out);
    encode_message("chat.lobby", 6, b"a\r\nb", &mut out);
    encode_message("chat.lobby", 7, b"", &mut out);
    encode_pong(Some("tok"), &mut out);
    encode_pong(None, &mut out);
    encode_join("chat.lobby", "c2", Some("bob"), &mut out);
    encode_leave("chat.lobby", "c3", None, &mut out);
    let msg = |offset, payload: &[u8]| Reply::Msg {
        topic: "chat.lobby".into(),
        offset,
        payload: Bytes::copy_from_slice(payload),
    };
    assert_eq!(
        replies(&out),
        vec![
            Ok(Reply::Ok(
                "tidings line protocol 1; HELP for commands".into()
            )),
            Ok(Reply::Ok("PUB chat.lobby 13".into())),
            Ok(Reply::Err(
                "PUB payload is not valid UTF-8; use BPUB for binary data".into()
            )),
            Ok(msg(5, b"hello there")),
            Ok(msg(6, b"a\r\nb")),
            Ok(msg(7, b"")),
            Ok(Reply::Pong(Some("tok".into()))),
            Ok(Reply::Pong(None)),
            Ok(Reply::Join {
                topic: "chat.lobby".into(),
                client: "c2".into(),
                user: Some("bob".into())
            }),
            Ok(Reply::Leave {
                topic: "chat.lobby".into(),
                client: "c3".into(),
                user: None
            }),
        ]
    );
}

#[test]
fn help_reads_back_as_info_lines_then_ok() {
    let all = replies(HELP.as_bytes());
    let (last, info) = all.split_last().unwrap();
    assert_eq!(last, &Ok(Reply::Ok("HELP".into())));
    assert!(info.len() > 10);
    assert!(info.iter().all(|r| matches!(r, Ok(Reply::Info(_)))));
    assert!(matches!(&info[1], Ok(Reply::Info(line)) if line.starts_with("SUB <pattern>")));
}

#[test]
fn unexpected_server_lines() {
    assert_eq!(
        replies(b"WHAT\r\n+OKAY\r\nPONG\r\n"),
        vec![
            Err(ReplyError::Unexpected {
                line: "WHAT".into()
            }),
            Err(ReplyError::Unexpected {
                line: "+OKAY".into()
            }),
            Ok(Reply::Pong(None)),
        ]
    );
    let fatal = replies(b"BMSG t x 3\r\nabc\r\n");
    assert!(matches!(&fatal[..], [Err(e @ ReplyError::BadBmsgHeader { .. })] if e.is_fatal()));
    let fatal = replies(b"BMSG t 1 3\r\nabcd\r\n");
    assert_eq!(fatal, vec![Err(ReplyError::MissingLineEnd { len: 3 })]);
    let mut decoder = ReplyDecoder::new(Limits {
        max_line: 64,
        max_payload: 2,
    });
    let mut buf = BytesMut::from(&b"BMSG t 1 3\r\n"[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(ReplyError::PayloadTooLarge { len: 3, max: 2 })
    );
}

#[test]
fn auth_token_reads_as_a_token_login_and_writes_back() {
    assert_eq!(
        one("AUTH TOKEN abc.def.ghi\n"),
        Ok(Command::AuthToken {
            token: "abc.def.ghi".into()
        })
    );
    let mut out = BytesMut::new();
    encode_command(
        &Command::AuthToken {
            token: "abc.def.ghi".into(),
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(&out[..], b"AUTH TOKEN abc.def.ghi\r\n");
}
