//! The STOMP broker over real sockets (TCP and WebSocket `/stomp`): versions, heart-beats,
//! topics, queues with every ack mode, NACK and redelivery, transactions, receipts, auth, and
//! bad input answered with ERROR then close.

use bytes::BytesMut;
use futures::SinkExt;
use std::collections::VecDeque;
use std::time::Duration;
use tidings_core::{RightsConfig, UserConfig};
use tidings_proto::stomp::{encode_frame, Command, Decoder, Frame, Limits, Version};
use tidings_server::{Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

/// The server under test: STOMP over TCP, HTTP (STOMP over WebSocket) and the line protocol.
async fn server_with(f: impl FnOnce(&mut ServerConfig)) -> Server {
    tidings_testkit::server()
        .http()
        .tcp()
        .stomp()
        .with(f)
        .start()
        .await
}

async fn server() -> Server {
    server_with(|_| {}).await
}

/// A STOMP client over TCP built on the codec under test.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
    version: Version,
    /// Frames read while waiting for another one.
    pending: VecDeque<Frame>,
}

fn frame(command: Command, headers: &[(&str, &str)], body: &[u8]) -> Frame {
    let mut f = Frame::new(command).with_body(body.to_vec());
    for (n, v) in headers {
        f = f.with_header(n, v);
    }
    f
}

impl Client {
    async fn open(server: &Server) -> Client {
        let stream = TcpStream::connect(server.addrs().stomp.unwrap())
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::new(Limits::default(), Version::V1_2),
            version: Version::V1_2,
            pending: VecDeque::new(),
        }
    }

    /// Opens and connects with `headers` (plus `accept-version:1.2` unless given).
    async fn connect_with(server: &Server, headers: &[(&str, &str)]) -> (Client, Frame) {
        let mut c = Client::open(server).await;
        let mut all = headers.to_vec();
        if !headers.iter().any(|(n, _)| *n == "accept-version") {
            all.push(("accept-version", "1.2"));
        }
        c.send(frame(Command::Connect, &all, b"")).await;
        let reply = c.next().await.expect("a reply to CONNECT");
        if let Some(v) = reply.header("version").and_then(Version::parse) {
            c.version = v;
            c.decoder.set_version(v);
        }
        (c, reply)
    }

    async fn connect(server: &Server) -> Client {
        let (c, reply) = Client::connect_with(server, &[]).await;
        assert_eq!(reply.command, Command::Connected, "{reply:?}");
        c
    }

    async fn send(&mut self, f: Frame) {
        let mut out = BytesMut::new();
        encode_frame(&f, self.version, &mut out);
        self.send_raw(&out).await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame, `None` at EOF.
    async fn next(&mut self) -> Option<Frame> {
        if let Some(f) = self.pending.pop_front() {
            return Some(f);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(f) = self
                .decoder
                .decode(&mut self.buf)
                .expect("server frames decode")
            {
                return Some(f);
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf))
                .await
                .expect("a frame in time");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Waits for the first frame with `command` (others are kept for later).
    async fn expect(&mut self, command: Command) -> Frame {
        let mut skipped = Vec::new();
        loop {
            let f = self
                .next()
                .await
                .unwrap_or_else(|| panic!("EOF waiting for {command}; saw {skipped:?}"));
            if f.command == command {
                for s in skipped.into_iter().rev() {
                    self.pending.push_front(s);
                }
                return f;
            }
            skipped.push(f);
        }
    }

    async fn message(&mut self) -> Frame {
        self.expect(Command::Message).await
    }

    /// Sends `f` with a receipt and waits for it.
    async fn with_receipt(&mut self, f: Frame, id: &str) {
        self.send(f.with_header("receipt", id)).await;
        let r = self.expect(Command::Receipt).await;
        assert_eq!(r.header("receipt-id"), Some(id));
    }

    async fn subscribe(&mut self, id: &str, dest: &str, extra: &[(&str, &str)]) {
        let mut h = vec![("id", id), ("destination", dest)];
        h.extend_from_slice(extra);
        self.with_receipt(frame(Command::Subscribe, &h, b""), &format!("sub-{id}"))
            .await;
    }

    async fn publish(&mut self, dest: &str, body: &[u8]) {
        self.send(frame(Command::Send, &[("destination", dest)], body))
            .await;
    }

    /// Asserts an ERROR frame arrives (returned), then EOF.
    async fn error_then_close(&mut self) -> Frame {
        let e = self.expect(Command::Error).await;
        assert!(
            self.next().await.is_none(),
            "the connection should close after ERROR"
        );
        e
    }

    /// Asserts no MESSAGE arrives for `wait`.
    async fn quiet(&mut self, wait: Duration) {
        let got = tokio::time::timeout(wait, async {
            loop {
                match self.next().await {
                    Some(f) if f.command == Command::Message => return f,
                    Some(_) => {}
                    None => std::future::pending::<()>().await,
                }
            }
        })
        .await;
        assert!(got.is_err(), "unexpected message {got:?}");
    }
}

#[tokio::test]
async fn connect_negotiates_the_version_and_heart_beats() {
    let server = server().await;
    let (_c, r) = Client::connect_with(
        &server,
        &[
            ("accept-version", "1.0,1.1,1.2"),
            ("heart-beat", "20000,0"),
            ("host", "x"),
        ],
    )
    .await;
    assert_eq!(r.command, Command::Connected);
    assert_eq!(r.header("version"), Some("1.2"));
    // We send none (the client wants none) and expect one every max(20000, 10000) ms.
    assert_eq!(r.header("heart-beat"), Some("0,20000"));
    assert!(r.header("session").is_some_and(|s| s.starts_with('c')));
    assert!(r
        .header("server")
        .is_some_and(|s| s.starts_with("tidings/")));

    let (_c, r) = Client::connect_with(&server, &[("accept-version", "1.1,1.0")]).await;
    assert_eq!(r.header("version"), Some("1.1"));
    // A 1.0 client sends no accept-version.
    let mut c = Client::open(&server).await;
    c.send(frame(Command::Connect, &[("login", "x")], b""))
        .await;
    let r = c.expect(Command::Connected).await;
    assert_eq!(r.header("version"), Some("1.0"));
    // STOMP is CONNECT's 1.1+ name.
    let mut c = Client::open(&server).await;
    c.send(frame(Command::Stomp, &[("accept-version", "1.2")], b""))
        .await;
    c.expect(Command::Connected).await;

    // STOMP 1.2, Protocol Negotiation: ERROR with a `version` header listing ours, then close.
    let (mut c, r) = Client::connect_with(&server, &[("accept-version", "2.0,2.1")]).await;
    assert_eq!(r.command, Command::Error);
    assert_eq!(r.header("version"), Some("1.0,1.1,1.2"));
    assert_eq!(r.header("message"), Some("unsupported protocol version"));
    assert!(String::from_utf8_lossy(&r.body).contains("accepts 2.0,2.1"));
    assert!(c.next().await.is_none());
}

/// What a strict client or a conformance suite checks: each refused with an ERROR that says
/// why, then the connection closes (and others are unaffected).
#[tokio::test]
async fn strict_refusals_unsubscribe_unknown_ack_without_id_slashed_destination() {
    let server = server().await;
    let mut bystander = Client::connect(&server).await;
    bystander.subscribe("b", "/topic/calm", &[]).await;

    let mut c = Client::connect(&server).await;
    c.send(frame(
        Command::Unsubscribe,
        &[("id", "nope"), ("receipt", "r1")],
        b"",
    ))
    .await;
    let e = c.error_then_close().await;
    assert_eq!(
        e.header("message"),
        Some("no subscription with id \"nope\" on this connection")
    );
    assert_eq!(e.header("receipt-id"), Some("r1"));

    for command in [Command::Ack, Command::Nack] {
        let mut c = Client::connect(&server).await;
        c.send(frame(
            command,
            &[
                ("message-id", "q1-s"),
                ("subscription", "s"),
                ("receipt", "r2"),
            ],
            b"",
        ))
        .await;
        let e = c.error_then_close().await;
        let message = e.header("message").unwrap();
        assert!(message.contains("STOMP 1.2 needs an \"id\""), "{message}");
        assert_eq!(e.header("receipt-id"), Some("r2"));
    }

    for (command, dest) in [
        (Command::Send, "/topic/a/b"),
        (Command::Subscribe, "/queue/a/b"),
    ] {
        let mut c = Client::connect(&server).await;
        c.send(frame(command, &[("destination", dest), ("id", "s")], b"x"))
            .await;
        let e = c.error_then_close().await;
        let message = e.header("message").unwrap();
        assert!(
            message.contains("names are dot-separated, without slashes"),
            "{message}"
        );
        assert!(message.contains(&dest.replace("a/b", "a.b")), "{message}");
    }

    let mut publisher = Client::connect(&server).await;
    publisher.publish("/topic/calm", b"still here").await;
    assert_eq!(bystander.message().await.body.as_ref(), b"still here");
}

#[tokio::test]
async fn topics_fan_out_with_wildcards_user_headers_and_binary_bodies() {
    let server = server().await;
    let mut exact = Client::connect(&server).await;
    let mut star = Client::connect(&server).await;
    let mut hash = Client::connect(&server).await;
    exact.subscribe("a", "/topic/chat.lobby", &[]).await;
    star.subscribe("b", "/topic/chat.*", &[]).await;
    hash.subscribe("c", "/topic/chat.#", &[]).await;
    let mut publisher = Client::connect(&server).await;
    let body = b"bin\0ary\r\n\0";
    publisher
        .with_receipt(
            frame(
                Command::Send,
                &[
                    ("destination", "/topic/chat.lobby"),
                    ("content-length", &body.len().to_string()),
                    ("content-type", "application/octet-stream"),
                    ("x-trace", "a:b\\c"),
                ],
                body,
            ),
            "p1",
        )
        .await;
    for (c, id) in [(&mut exact, "a"), (&mut star, "b"), (&mut hash, "c")] {
        let m = c.message().await;
        assert_eq!(m.header("subscription"), Some(id));
        assert_eq!(m.header("destination"), Some("/topic/chat.lobby"));
        assert_eq!(m.header("x-trace"), Some("a:b\\c"));
        assert_eq!(m.header("content-type"), Some("application/octet-stream"));
        assert_eq!(m.header("offset"), Some("1"));
        assert!(m.header("message-id").is_some());
        assert_eq!(&m.body[..], body);
    }
    publisher.publish("/topic/chat.lobby.deep", b"deep").await;
    let m = hash.message().await;
    assert_eq!(&m.body[..], b"deep");
    exact.quiet(Duration::from_millis(200)).await;
    star.quiet(Duration::from_millis(1)).await;
    // UNSUBSCRIBE stops delivery.
    hash.with_receipt(frame(Command::Unsubscribe, &[("id", "c")], b""), "u")
        .await;
    publisher.publish("/topic/chat.x", b"after").await;
    assert_eq!(&star.message().await.body[..], b"after");
    hash.quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_topic_subscription_resumes_with_since() {
    let server = server().await;
    let mut p = Client::connect(&server).await;
    for i in 1..=3 {
        p.publish("/topic/news", format!("n{i}").as_bytes()).await;
    }
    p.with_receipt(
        frame(Command::Send, &[("destination", "/topic/news")], b"n4"),
        "r",
    )
    .await;
    let mut s = Client::connect(&server).await;
    s.subscribe("1", "/topic/news", &[("since", "2")]).await;
    let bodies = [s.message().await, s.message().await];
    assert_eq!(&bodies[0].body[..], b"n3");
    assert_eq!(bodies[1].header("offset"), Some("4"));
    let epoch = bodies[1].header("epoch").unwrap().to_owned();
    let mut s = Client::connect(&server).await;
    s.send(frame(
        Command::Subscribe,
        &[
            ("id", "1"),
            ("destination", "/topic/news"),
            ("since", "1"),
            ("epoch", "bogus"),
            ("receipt", "x"),
        ],
        b"",
    ))
    .await;
    let e = s.error_then_close().await;
    assert!(
        e.header("message").unwrap().contains("cannot resume"),
        "{e:?}"
    );
    assert_eq!(e.header("receipt-id"), Some("x"));
    assert!(!epoch.is_empty());
}

#[tokio::test]
async fn queues_round_robin_and_keep_messages_while_nobody_consumes() {
    let server = server().await;
    let mut p = Client::connect(&server).await;
    for i in 1..=4 {
        p.publish("/queue/jobs", format!("j{i}").as_bytes()).await;
    }
    p.with_receipt(
        frame(Command::Send, &[("destination", "/queue/jobs")], b"j5"),
        "r",
    )
    .await;
    let st = server.hub().queue_stats("jobs").unwrap();
    assert_eq!(st.ready, 5);
    let mut a = Client::connect(&server).await;
    a.subscribe("a", "/queue/jobs", &[]).await;
    let got: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(String::from_utf8(a.message().await.body.to_vec()).unwrap());
        }
        v
    };
    assert_eq!(got, ["j1", "j2", "j3", "j4", "j5"]);
    let mut b = Client::connect(&server).await;
    b.subscribe("b", "/queue/jobs", &[]).await;
    for i in 6..=9 {
        p.publish("/queue/jobs", format!("j{i}").as_bytes()).await;
    }
    let (ma, mb) = (a.message().await, b.message().await);
    let (ma2, mb2) = (a.message().await, b.message().await);
    let mut all: Vec<Vec<u8>> = [ma, mb, ma2, mb2].iter().map(|m| m.body.to_vec()).collect();
    all.sort();
    assert_eq!(
        all,
        [
            b"j6".to_vec(),
            b"j7".to_vec(),
            b"j8".to_vec(),
            b"j9".to_vec()
        ]
    );
    a.quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn client_ack_is_cumulative_and_unacked_messages_go_to_another_consumer() {
    let server = server().await;
    let mut a = Client::connect(&server).await;
    a.subscribe(
        "s",
        "/queue/w",
        &[("ack", "client"), ("prefetch-count", "3")],
    )
    .await;
    let mut p = Client::connect(&server).await;
    for i in 1..=5 {
        p.publish("/queue/w", format!("m{i}").as_bytes()).await;
    }
    let ms = [a.message().await, a.message().await, a.message().await];
    // Prefetch 3: the rest wait.
    a.quiet(Duration::from_millis(200)).await;
    assert_eq!(ms[0].header("ack"), ms[0].header("message-id"));
    // ACK of the second covers the first.
    a.with_receipt(
        frame(Command::Ack, &[("id", ms[1].header("ack").unwrap())], b""),
        "k",
    )
    .await;
    let next = [a.message().await, a.message().await];
    assert_eq!(&next[0].body[..], b"m4");
    assert_eq!(&next[1].body[..], b"m5");
    assert_eq!(server.hub().queue_stats("w").unwrap().unacked, 3);
    // A dies; its three unacknowledged messages go to B, marked redelivered.
    let mut b = Client::connect(&server).await;
    b.subscribe("t", "/queue/w", &[("ack", "client-individual")])
        .await;
    drop(a);
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let m = b.message().await;
        assert_eq!(m.header("redelivered"), Some("true"));
        bodies.push(m.body.to_vec());
    }
    assert_eq!(bodies, [b"m3".to_vec(), b"m4".to_vec(), b"m5".to_vec()]);
}

#[tokio::test]
async fn nack_redelivers_to_another_consumer_and_auto_ack_needs_no_ack() {
    let server = server().await;
    let mut a = Client::connect(&server).await;
    a.subscribe("a", "/queue/n", &[("ack", "client-individual")])
        .await;
    let mut b = Client::connect(&server).await;
    b.subscribe("b", "/queue/n", &[("ack", "auto"), ("prefetch-count", "1")])
        .await;
    let mut p = Client::connect(&server).await;
    p.publish("/queue/n", b"one").await;
    let m = a.message().await;
    assert!(m.header("redelivered").is_none());
    a.send(frame(
        Command::Nack,
        &[("id", m.header("ack").unwrap())],
        b"",
    ))
    .await;
    let m = b.message().await;
    assert_eq!(&m.body[..], b"one");
    assert_eq!(m.header("redelivered"), Some("true"));
    // Auto: with prefetch 1, B keeps receiving without acknowledging.
    for i in 0..4 {
        p.publish("/queue/n", format!("x{i}").as_bytes()).await;
    }
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while count < 4 && tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = a.message() => count += 1,
            _ = b.message() => count += 1,
        }
    }
    assert_eq!(count, 4);
    let st = server.hub().queue_stats("n").unwrap();
    assert_eq!(st.ready, 0);
}

#[tokio::test]
async fn transactions_apply_on_commit_and_not_on_abort() {
    let server = server().await;
    let mut sub = Client::connect(&server).await;
    sub.subscribe("t", "/topic/tx", &[]).await;
    let mut q = Client::connect(&server).await;
    q.subscribe("q", "/queue/txq", &[("ack", "client-individual")])
        .await;
    let mut p = Client::connect(&server).await;
    p.publish("/queue/txq", b"to-ack").await;
    let m = q.message().await;

    p.with_receipt(frame(Command::Begin, &[("transaction", "t1")], b""), "b")
        .await;
    p.send(frame(
        Command::Send,
        &[("destination", "/topic/tx"), ("transaction", "t1")],
        b"1",
    ))
    .await;
    p.send(frame(
        Command::Send,
        &[("destination", "/topic/tx"), ("transaction", "t1")],
        b"2",
    ))
    .await;
    q.with_receipt(frame(Command::Begin, &[("transaction", "qt")], b""), "qb")
        .await;
    q.with_receipt(
        frame(
            Command::Ack,
            &[("id", m.header("ack").unwrap()), ("transaction", "qt")],
            b"",
        ),
        "qa",
    )
    .await;
    sub.quiet(Duration::from_millis(200)).await;
    assert_eq!(server.hub().queue_stats("txq").unwrap().unacked, 1);
    p.with_receipt(frame(Command::Commit, &[("transaction", "t1")], b""), "c")
        .await;
    assert_eq!(&sub.message().await.body[..], b"1");
    assert_eq!(&sub.message().await.body[..], b"2");
    q.with_receipt(frame(Command::Commit, &[("transaction", "qt")], b""), "qc")
        .await;
    assert!(server
        .hub()
        .queue_stats("txq")
        .is_none_or(|s| s.unacked == 0));

    p.with_receipt(frame(Command::Begin, &[("transaction", "t2")], b""), "b2")
        .await;
    p.send(frame(
        Command::Send,
        &[("destination", "/topic/tx"), ("transaction", "t2")],
        b"never",
    ))
    .await;
    p.with_receipt(frame(Command::Abort, &[("transaction", "t2")], b""), "a2")
        .await;
    p.with_receipt(
        frame(Command::Send, &[("destination", "/topic/tx")], b"3"),
        "s3",
    )
    .await;
    assert_eq!(&sub.message().await.body[..], b"3");
    // Committing an unknown transaction is an error.
    p.send(frame(
        Command::Commit,
        &[("transaction", "t2"), ("receipt", "zz")],
        b"",
    ))
    .await;
    let e = p.error_then_close().await;
    assert!(e.header("message").unwrap().contains("unknown transaction"));
    assert_eq!(e.header("receipt-id"), Some("zz"));
}

#[tokio::test]
async fn disconnect_with_receipt_then_close() {
    let server = server().await;
    let mut c = Client::connect(&server).await;
    c.send(frame(Command::Disconnect, &[("receipt", "bye")], b""))
        .await;
    let r = c.expect(Command::Receipt).await;
    assert_eq!(r.header("receipt-id"), Some("bye"));
    assert!(c.next().await.is_none());
}

#[tokio::test]
async fn bad_input_gets_an_error_frame_then_close_and_spares_others() {
    let server = server_with(|c| c.stomp_broker.max_frame_size = 4096).await;
    let mut bystander = Client::connect(&server).await;
    bystander.subscribe("s", "/topic/ok", &[]).await;
    let cases: Vec<(&[u8], &str, Option<&str>)> = vec![
        (b"FROB\nreceipt:r1\n\n\0", "unknown command", Some("r1")),
        (
            b"SEND\nreceipt:r2\n\nx\0",
            "needs a \"destination\" header",
            Some("r2"),
        ),
        (
            b"SUBSCRIBE\ndestination:/topic/a\n\n\0",
            "needs a \"id\" header",
            None,
        ),
        (
            b"SEND\ndestination:/topic/a\nk:a\\tb\nreceipt:r3\n\n\0",
            "invalid escape",
            Some("r3"),
        ),
        (
            b"SEND\ndestination:/topic/a\nreceipt:r4\ncontent-length:100000\n\n",
            "frame larger than 4096",
            Some("r4"),
        ),
        (
            b"SEND\ndestination:/nowhere/a\n\nx\0",
            "unknown destination",
            None,
        ),
        (
            b"SEND\ndestination:/topic/a.*\n\nx\0",
            "publish needs a topic without wildcards",
            None,
        ),
        (b"MESSAGE\n\n\0", "server frame", None),
    ];
    for (input, want, receipt) in cases {
        let mut c = Client::connect(&server).await;
        c.send_raw(input).await;
        let e = c.error_then_close().await;
        let message = e.header("message").unwrap_or_default();
        assert!(
            message.contains(want),
            "{input:?}: {message:?} should say {want:?}"
        );
        assert_eq!(e.header("receipt-id"), receipt, "{input:?}");
    }
    // Too many headers.
    let mut c = Client::connect(&server).await;
    let mut big = b"SEND\ndestination:/topic/a\n".to_vec();
    for i in 0..70 {
        big.extend_from_slice(format!("h{i}:v\n").as_bytes());
    }
    big.extend_from_slice(b"\n\0");
    c.send_raw(&big).await;
    assert!(c
        .error_then_close()
        .await
        .header("message")
        .unwrap()
        .contains("more than 64 headers"));
    // A frame before CONNECT.
    let mut c = Client::open(&server).await;
    c.send_raw(b"SEND\ndestination:/topic/ok\n\nx\0").await;
    assert!(c
        .error_then_close()
        .await
        .header("message")
        .unwrap()
        .contains("CONNECT"));
    // The bystander is fine.
    let mut p = Client::connect(&server).await;
    p.publish("/topic/ok", b"still here").await;
    assert_eq!(&bystander.message().await.body[..], b"still here");
}

#[tokio::test]
async fn heart_beats_keep_a_connection_alive_and_a_silent_peer_is_dropped() {
    let server = server_with(|c| {
        c.stomp_broker.heart_beat_send_ms = 100;
        c.stomp_broker.heart_beat_receive_ms = 100;
    })
    .await;
    // The server sends EOLs every 100 ms (we count them below the frame layer).
    let (mut c, r) = Client::connect_with(&server, &[("heart-beat", "100,100")]).await;
    assert_eq!(r.header("heart-beat"), Some("100,100"));
    let start = tokio::time::Instant::now();
    let mut alive = 0;
    while start.elapsed() < Duration::from_millis(800) {
        c.send_raw(b"\n").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        alive += 1;
    }
    // Still connected after 8 intervals thanks to our beats.
    c.publish("/topic/hb", b"x").await;
    c.with_receipt(
        frame(Command::Send, &[("destination", "/topic/hb")], b"y"),
        "r",
    )
    .await;
    assert!(
        c.decoder.heart_beats() >= 4,
        "server beats seen: {}",
        c.decoder.heart_beats()
    );
    assert!(alive > 10);
    // Now silence: dropped after about 2 intervals, with an ERROR.
    let t = tokio::time::Instant::now();
    let e = c.error_then_close().await;
    assert!(e.header("message").unwrap().contains("heart-beat"));
    assert!(t.elapsed() < Duration::from_secs(2));
    // A client that sends nothing after connecting within the CONNECT timeout is closed too.
    let server = server_with(|c| c.stomp_broker.connect_timeout_ms = 200).await;
    let mut c = Client::open(&server).await;
    assert!(c
        .error_then_close()
        .await
        .header("message")
        .unwrap()
        .contains("CONNECT"));
}

fn auth_config(c: &mut ServerConfig) {
    c.hub.auth.users.push(UserConfig {
        name: "alice".into(),
        password: Some("pw".into()),
        password_hash: None,
        rights: RightsConfig {
            publish: vec!["chat.>".into()],
            subscribe: vec!["chat.>".into()],
        },
    });
    c.hub.auth.anonymous = RightsConfig {
        publish: vec![],
        subscribe: vec!["public.*".into()],
    };
}

#[tokio::test]
async fn login_and_permissions_apply_to_destinations() {
    let server = server_with(auth_config).await;
    let (mut c, r) =
        Client::connect_with(&server, &[("login", "alice"), ("passcode", "nope")]).await;
    assert_eq!(r.command, Command::Error);
    assert!(r.header("message").unwrap().contains("access refused"));
    assert!(c.next().await.is_none());

    let (mut alice, r) =
        Client::connect_with(&server, &[("login", "alice"), ("passcode", "pw")]).await;
    assert_eq!(r.command, Command::Connected);
    alice.subscribe("1", "/topic/chat.*", &[]).await;
    alice.subscribe("2", "/queue/chat.jobs", &[]).await;
    alice.publish("/topic/chat.x", b"hi").await;
    assert_eq!(&alice.message().await.body[..], b"hi");
    alice
        .send(frame(
            Command::Send,
            &[("destination", "/queue/admin"), ("receipt", "d")],
            b"x",
        ))
        .await;
    let e = alice.error_then_close().await;
    assert!(
        e.header("message").unwrap().contains("may not publish"),
        "{e:?}"
    );
    assert_eq!(e.header("receipt-id"), Some("d"));

    let mut anon = Client::connect(&server).await;
    anon.subscribe("p", "/topic/public.news", &[]).await;
    anon.send(frame(
        Command::Subscribe,
        &[("id", "x"), ("destination", "/topic/chat.x")],
        b"",
    ))
    .await;
    assert!(anon
        .error_then_close()
        .await
        .header("message")
        .unwrap()
        .contains("may not subscribe"));
}

#[tokio::test]
async fn shutdown_says_goodbye_with_an_error_frame() {
    let server = server().await;
    let mut c = Client::connect(&server).await;
    c.subscribe("s", "/topic/x", &[]).await;
    let stop = tokio::spawn(server.shutdown());
    let e = c.error_then_close().await;
    assert!(e.header("message").unwrap().contains("shutting down"));
    assert_eq!(stop.await.unwrap(), 0);
}

#[tokio::test]
async fn stomp_over_websocket_negotiates_the_subprotocol() {
    use yawc::{Frame as WsFrame, OpCode, WebSocket};
    let server = server().await;
    let url = format!("ws://{}/stomp", server.addrs().http.unwrap());
    let req = yawc::HttpRequestBuilder::new()
        .header("Sec-WebSocket-Protocol", "v10.stomp, v11.stomp, v12.stomp");
    let mut ws = WebSocket::connect(url.parse().unwrap())
        .with_request(req)
        .await
        .unwrap();
    // The handshake answer names the chosen subprotocol (checked on a raw socket: the client
    // library does not show response headers).
    for (offer, want) in [
        ("v10.stomp, v11.stomp, v12.stomp", Some("v12.stomp")),
        ("v10.stomp", Some("v10.stomp")),
        ("mqtt", None),
    ] {
        let mut raw = TcpStream::connect(server.addrs().http.unwrap())
            .await
            .unwrap();
        let req = format!(
            "GET /stomp HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: {offer}\r\n\r\n"
        );
        raw.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            tokio::time::timeout(WAIT, raw.read_exact(&mut b))
                .await
                .unwrap()
                .unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        let got = head
            .lines()
            .find_map(|l| l.strip_prefix("sec-websocket-protocol: "))
            .map(str::trim);
        assert_eq!(got, want, "{offer}: {head}");
    }
    let mut tcp = Client::connect(&server).await;
    tcp.subscribe("t", "/topic/ws.x", &[]).await;
    ws.send(WsFrame::text("CONNECT\naccept-version:1.2\n\n\0"))
        .await
        .unwrap();
    ws.send(WsFrame::text(
        "SUBSCRIBE\nid:0\ndestination:/topic/ws.*\nreceipt:s\n\n\0",
    ))
    .await
    .unwrap();
    let mut got = BytesMut::new();
    let mut dec = Decoder::new(Limits::default(), Version::V1_2);
    let mut next = async |ws: &mut yawc::TcpWebSocket| loop {
        if let Some(f) = dec.decode(&mut got).unwrap() {
            return f;
        }
        let f = tokio::time::timeout(WAIT, ws.next_frame())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(f.opcode(), OpCode::Text | OpCode::Binary));
        got.extend_from_slice(f.payload());
    };
    assert_eq!(next(&mut ws).await.command, Command::Connected);
    assert_eq!(next(&mut ws).await.command, Command::Receipt);
    // A binary body travels from WebSocket to TCP and back.
    ws.send(WsFrame::binary(
        &b"SEND\ndestination:/topic/ws.x\ncontent-length:3\n\n\xff\0\x01\0"[..],
    ))
    .await
    .unwrap();
    assert_eq!(&tcp.message().await.body[..], b"\xff\0\x01");
    tcp.publish("/topic/ws.y", b"from tcp").await;
    let mut bodies = vec![];
    while bodies.len() < 2 {
        let f = next(&mut ws).await;
        assert_eq!(f.command, Command::Message);
        bodies.push(f.body.to_vec());
    }
    assert_eq!(bodies, [b"\xff\0\x01".to_vec(), b"from tcp".to_vec()]);
}
