//! The UDP endpoint over real sockets: cross-protocol delivery both ways, address validation
//! and the anti-amplification rule, leases, oversize messages, bad datagrams, rate limits.

use futures::SinkExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tidings_proto::udp::{self, Cookie, Reply, Request, REPLY_ROOM};
use tidings_proto::PayloadKind;
use tidings_server::{Server, ServerConfig};
use tidings_testkit::http;
use tidings_testkit::line::Line;
use tokio::net::UdpSocket;
use yawc::{Frame, OpCode, WebSocket};

const WAIT: Duration = Duration::from_secs(5);

/// The server under test: UDP, and HTTP and TCP for the other side of each exchange.
async fn server_with(f: impl FnOnce(&mut ServerConfig)) -> Server {
    tidings_testkit::server()
        .http()
        .tcp()
        .udp()
        .with(f)
        .start()
        .await
}

/// A UDP peer speaking the datagram protocol by hand, counting bytes both ways.
struct Peer {
    socket: UdpSocket,
    server: SocketAddr,
    sent: usize,
    received: usize,
    next_id: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Challenge(Cookie),
    Subscribed {
        lease_ms: u32,
        cookie: Cookie,
    },
    Renewed(u16, Cookie),
    Unsubscribed(u16),
    Published(u64),
    Message {
        topic: String,
        offset: u64,
        epoch: String,
        payload: Vec<u8>,
    },
    Error(String),
}

impl Peer {
    async fn new(server: &Server) -> Peer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Peer {
            socket,
            server: server.addrs().udp.unwrap(),
            sent: 0,
            received: 0,
            next_id: 1,
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.sent += self.socket.send_to(bytes, self.server).await.unwrap();
    }

    async fn send(&mut self, request: Request<'_>, pad_to: usize) {
        let mut out = Vec::new();
        udp::encode_request(&request, pad_to, &mut out);
        self.send_raw(&out).await;
    }

    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// The next datagram, or `None` after `wait`.
    async fn recv_within(&mut self, wait: Duration) -> Option<Got> {
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(wait, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        self.received += n;
        let limits = udp::Limits {
            max_datagram: 65507,
        };
        Some(
            match udp::decode_reply(&buf[..n], limits).expect("a valid reply") {
                Reply::Challenge { cookie, .. } => Got::Challenge(*cookie),
                Reply::Subscribed {
                    lease_ms, cookie, ..
                } => Got::Subscribed {
                    lease_ms,
                    cookie: *cookie,
                },
                Reply::Renewed {
                    subscriptions,
                    cookie,
                    ..
                } => Got::Renewed(subscriptions, *cookie),
                Reply::Unsubscribed { removed, .. } => Got::Unsubscribed(removed),
                Reply::Published { offset, .. } => Got::Published(offset),
                Reply::Message {
                    topic,
                    offset,
                    epoch,
                    payload,
                    ..
                } => Got::Message {
                    topic: topic.into(),
                    offset,
                    epoch: epoch.into(),
                    payload: payload.into(),
                },
                Reply::Error { message, .. } => Got::Error(message.into()),
            },
        )
    }

    async fn recv(&mut self) -> Got {
        self.recv_within(WAIT).await.expect("a datagram in time")
    }

    /// SUBSCRIBE, echo the challenge's cookie, wait for SUBSCRIBED; returns the fresh cookie.
    async fn subscribe(&mut self, pattern: &str) -> Cookie {
        let id = self.id();
        self.send(
            Request::Subscribe {
                id,
                cookie: None,
                pattern,
            },
            REPLY_ROOM,
        )
        .await;
        let Got::Challenge(cookie) = self.recv().await else {
            panic!("expected a challenge")
        };
        self.subscribe_with(pattern, &cookie).await
    }

    async fn subscribe_with(&mut self, pattern: &str, cookie: &Cookie) -> Cookie {
        let id = self.id();
        self.send(
            Request::Subscribe {
                id,
                cookie: Some(cookie),
                pattern,
            },
            0,
        )
        .await;
        match self.recv().await {
            Got::Subscribed { cookie, .. } => cookie,
            other => panic!("expected SUBSCRIBED, got {other:?}"),
        }
    }

    async fn publish(&mut self, topic: &str, text: &str) -> u64 {
        let id = self.id();
        self.send(
            Request::Publish {
                id,
                kind: PayloadKind::Text,
                topic,
                payload: text.as_bytes(),
            },
            REPLY_ROOM,
        )
        .await;
        match self.recv().await {
            Got::Published(offset) => offset,
            other => panic!("expected PUBLISHED, got {other:?}"),
        }
    }

    async fn message(&mut self) -> (String, u64, String) {
        match self.recv().await {
            Got::Message {
                topic,
                offset,
                payload,
                ..
            } => (topic, offset, String::from_utf8(payload).unwrap()),
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

type Ws = yawc::TcpWebSocket;

async fn ws(server: &Server) -> Ws {
    let url = format!("ws://{}/ws", server.addrs().http.unwrap());
    WebSocket::connect(url.parse().unwrap()).await.unwrap()
}

async fn ws_json(ws: &mut Ws) -> Value {
    loop {
        let f = tokio::time::timeout(WAIT, ws.next_frame())
            .await
            .expect("a frame in time")
            .expect("open");
        if f.opcode() == OpCode::Text {
            return serde_json::from_slice(f.payload()).unwrap();
        }
    }
}

async fn ws_send(ws: &mut Ws, v: Value) {
    ws.send(Frame::text(v.to_string())).await.unwrap();
}

/// `GET /metrics`, as `name -> value`.
async fn metrics(server: &Server) -> std::collections::HashMap<String, u64> {
    let req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let r = http::exchange(server.addrs().http.unwrap(), req, http::ALL, WAIT).await;
    assert!(r.ended, "GET /metrics: no whole response in {WAIT:?}");
    r.text()
        .lines()
        .filter(|l| l.starts_with("tidings_"))
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn udp_publish_reaches_tcp_and_websocket_subscribers_and_the_reverse() {
    let server = server_with(|_| {}).await;
    let mut line = Line::open(server.addrs().tcp.unwrap()).await;
    // An exact topic: a pattern would also share its presence room with the UDP subscriber.
    assert!(line
        .ask("SUB game.pos")
        .await
        .starts_with("+OK SUB game.pos"));
    let mut w = ws(&server).await;
    ws_json(&mut w).await; // hello
    ws_send(&mut w, json!({"op":"subscribe","id":1,"topic":"game.>"})).await;
    assert_eq!(ws_json(&mut w).await["type"], "ok");
    let mut sub = Peer::new(&server).await;
    sub.subscribe("game.*").await;

    // UDP -> TCP, WebSocket and UDP.
    let mut publisher = Peer::new(&server).await;
    assert_eq!(publisher.publish("game.pos", "x=1").await, 1);
    assert_eq!(line.read().await, "MSG game.pos 1 x=1");
    let m = ws_json(&mut w).await;
    assert_eq!(
        (
            m["topic"].as_str(),
            m["offset"].as_u64(),
            m["text"].as_str()
        ),
        (Some("game.pos"), Some(1), Some("x=1"))
    );
    assert_eq!(sub.message().await, ("game.pos".into(), 1, "x=1".into()));

    // TCP -> UDP, WebSocket -> UDP (JSON stays JSON text; epoch travels along).
    line.send("PUB game.pos x=2").await;
    assert_eq!(line.read().await, "MSG game.pos 2 x=2");
    assert_eq!(line.read().await, "+OK PUB game.pos 2");
    assert_eq!(sub.message().await, ("game.pos".into(), 2, "x=2".into()));
    ws_send(
        &mut w,
        json!({"op":"publish","topic":"game.pos","data":{"x":3}}),
    )
    .await;
    match sub.recv().await {
        Got::Message {
            offset,
            epoch,
            payload,
            ..
        } => {
            assert_eq!(offset, 3);
            assert!(!epoch.is_empty());
            assert_eq!(payload, br#"{"x":3}"#);
        }
        other => panic!("{other:?}"),
    }
    // A fire-and-forget publish (id 0) gets no reply but is delivered.
    publisher
        .send(
            Request::Publish {
                id: 0,
                kind: PayloadKind::Binary,
                topic: "game.pos",
                payload: b"\x00\xff",
            },
            0,
        )
        .await;
    match sub.recv().await {
        Got::Message {
            offset, payload, ..
        } => assert_eq!((offset, payload), (4, b"\x00\xff".to_vec())),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        publisher.recv_within(Duration::from_millis(200)).await,
        None
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_unvalidated_address_never_gets_more_bytes_than_it_sent() {
    let server = server_with(|_| {}).await;
    let mut victim = Peer::new(&server).await;
    let mut other = Peer::new(&server).await;
    let borrowed = other.subscribe("spam.>").await; // a real cookie, for another address

    // What a spoofer could make the server answer to the victim's address: subscribes without
    // padding, with a forged cookie, with another address's cookie, renewals, unsubscribes,
    // acked publishes without padding, malformed requests of ours, garbage.
    let forged = [0x5a; 24];
    let requests: Vec<Vec<u8>> = {
        let mut v = Vec::new();
        let mut enc = |r: Request<'_>| {
            let mut out = Vec::new();
            udp::encode_request(&r, 0, &mut out);
            v.push(out);
        };
        enc(Request::Subscribe {
            id: 1,
            cookie: None,
            pattern: "spam.>",
        });
        enc(Request::Subscribe {
            id: 2,
            cookie: Some(&forged),
            pattern: "spam.>",
        });
        enc(Request::Subscribe {
            id: 3,
            cookie: Some(&borrowed),
            pattern: "spam.>",
        });
        enc(Request::Renew {
            id: 4,
            cookie: &borrowed,
        });
        enc(Request::Unsubscribe {
            id: 5,
            cookie: &forged,
            pattern: "",
        });
        enc(Request::Publish {
            id: 6,
            kind: PayloadKind::Text,
            topic: "spam.x",
            payload: b"",
        });
        enc(Request::Publish {
            id: 7,
            kind: PayloadKind::Json,
            topic: "spam.x",
            payload: b"{",
        });
        enc(Request::Publish {
            id: 8,
            kind: PayloadKind::Text,
            topic: "bad..topic",
            payload: b"x",
        });
        v.push(b"TD\x01\x02\x00\x00\x00\x09\x05".to_vec());
        v.push(b"TD\x01\x7f\x00\x00\x00\x0a".to_vec());
        v.push(b"GET / HTTP/1.0\r\n\r\n".to_vec());
        v
    };
    for request in &requests {
        let before = victim.received;
        victim.send_raw(request).await;
        while victim
            .recv_within(Duration::from_millis(150))
            .await
            .is_some()
        {}
        assert!(
            victim.received - before <= request.len(),
            "answered {} bytes to a {}-byte request {request:?}",
            victim.received - before,
            request.len()
        );
    }
    // None of that subscribed the victim: messages do not reach it.
    let mut publisher = Peer::new(&server).await;
    publisher.publish("spam.x", "flood").await;
    assert!(matches!(other.recv().await, Got::Message { .. }));
    assert_eq!(victim.recv_within(Duration::from_millis(300)).await, None);
    assert!(victim.received <= victim.sent);
    let m = metrics(&server).await;
    assert!(m["tidings_udp_replies_withheld_total"] >= 3, "{m:?}");
    assert!(m["tidings_udp_challenges_total"] >= 4, "{m:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn leases_expire_unless_renewed() {
    let server = server_with(|c| {
        c.datagram.lease_secs = 1;
        c.datagram.cookie_secs = 5;
    })
    .await;
    let mut lapsing = Peer::new(&server).await;
    lapsing.subscribe("t").await;
    let mut renewing = Peer::new(&server).await;
    let mut cookie = renewing.subscribe("t").await;
    let mut publisher = Peer::new(&server).await;
    publisher.publish("t", "one").await;
    assert_eq!(lapsing.message().await.1, 1);
    assert_eq!(renewing.message().await.1, 1);

    // Renew every 400 ms for 2.5 s; the other address stays silent.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let id = renewing.id();
        renewing
            .send(
                Request::Renew {
                    id,
                    cookie: &cookie,
                },
                0,
            )
            .await;
        // Every answer carries a fresh cookie for the next renewal.
        match renewing.recv().await {
            Got::Renewed(1, fresh) => cookie = fresh,
            other => panic!("{other:?}"),
        }
    }
    publisher.publish("t", "two").await;
    assert_eq!(renewing.message().await, ("t".into(), 2, "two".into()));
    assert_eq!(lapsing.recv_within(Duration::from_millis(300)).await, None);
    // The lapsed address learns it on renewal: no subscriptions left.
    let stale = lapsing.subscribe("other").await;
    let id = lapsing.id();
    lapsing
        .send(
            Request::Unsubscribe {
                id,
                cookie: &stale,
                pattern: "other",
            },
            0,
        )
        .await;
    assert_eq!(lapsing.recv().await, Got::Unsubscribed(1));
    lapsing.send(Request::Renew { id, cookie: &stale }, 0).await;
    assert!(matches!(lapsing.recv().await, Got::Renewed(0, _)));
    let m = metrics(&server).await;
    assert!(m["tidings_udp_leases_expired_total"] >= 1, "{m:?}");
    assert_eq!(m["tidings_udp_subscribers"], 1, "{m:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn oversize_messages_are_counted_not_sent() {
    let server = server_with(|c| c.datagram.max_payload = 200).await;
    let mut sub = Peer::new(&server).await;
    sub.subscribe("big").await;
    let mut line = Line::open(server.addrs().tcp.unwrap()).await;
    assert!(line.ask("SUB big").await.starts_with("+OK"));
    let big = "x".repeat(300);
    line.send(&format!("PUB big {big}")).await;
    assert_eq!(line.read().await, format!("MSG big 1 {big}"));
    assert_eq!(line.read().await, "+OK PUB big 1");
    line.send("PUB big small").await;
    assert_eq!(line.read().await, "MSG big 2 small");
    // The UDP subscriber gets the small one only: offset 2 shows it missed 1.
    assert_eq!(sub.message().await, ("big".into(), 2, "small".into()));
    assert_eq!(metrics(&server).await["tidings_udp_oversize_total"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_datagrams_are_dropped_and_counted_without_affecting_anyone() {
    let server = server_with(|_| {}).await;
    let mut sub = Peer::new(&server).await;
    sub.subscribe("ok").await;
    let mut bad = Peer::new(&server).await;
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        b"TD".to_vec(),
        b"TD\x09\x01".to_vec(),
        b"TD\x01\x86\x00".to_vec(),
        b"TD\x01\x01\x00\x00\x00\x00\x00\x00\x02ok\x00\x09hi".to_vec(),
        b"TD\x01\x01\x00\x00\x00\x00\x00\x00\x02ok\x00\x02hi\x01".to_vec(),
        vec![0xff; 1300],
    ];
    for j in &junk {
        bad.send_raw(j).await;
    }
    let mut publisher = Peer::new(&server).await;
    assert_eq!(publisher.publish("ok", "still fine").await, 1);
    assert_eq!(sub.message().await, ("ok".into(), 1, "still fine".into()));
    assert_eq!(bad.recv_within(Duration::from_millis(200)).await, None);
    let m = metrics(&server).await;
    assert_eq!(
        m["tidings_udp_bad_datagrams_total"],
        junk.len() as u64,
        "{m:?}"
    );
    assert_eq!(m["tidings_published_total"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn each_source_address_is_rate_limited() {
    let server = server_with(|c| {
        c.datagram.rate_per_sec = 10;
        c.datagram.rate_burst = 5;
    })
    .await;
    let mut flood = Peer::new(&server).await;
    for i in 0..50u32 {
        flood
            .send(
                Request::Publish {
                    id: i + 1,
                    kind: PayloadKind::Text,
                    topic: "r",
                    payload: b"x",
                },
                REPLY_ROOM,
            )
            .await;
    }
    let mut acks = 0;
    while let Some(got) = flood.recv_within(Duration::from_millis(300)).await {
        assert!(matches!(got, Got::Published(_)));
        acks += 1;
    }
    // The burst, plus what refills at 10/s while a loaded machine sends the 50.
    assert!((5..=15).contains(&acks), "{acks} acks");
    // Another address is not affected.
    let mut calm = Peer::new(&server).await;
    calm.publish("r", "y").await;
    let m = metrics(&server).await;
    assert!(m["tidings_udp_rate_limited_total"] >= 35, "{m:?}");
    server.shutdown().await;
}

#[test]
fn datagram_config_errors_name_the_field() {
    let mut cfg = ServerConfig::default();
    cfg.datagram.max_payload = 70_000;
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("datagram.max_payload"), "{err}");
    let mut cfg = ServerConfig::default();
    cfg.datagram.cookie_secs = 5;
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("datagram.cookie_secs"), "{err}");
}

/// Publishes `n` messages of varied lengths to `topic` in one TCP write (so they queue up for
/// the UDP subscriber together and the sender batches them), and checks the subscriber gets
/// every one as its own datagram, in order, with its own payload.
async fn burst_arrives_datagram_by_datagram(server: &Server, topic: &str, n: usize) {
    use tokio::io::AsyncWriteExt;
    let mut sub = Peer::new(server).await;
    sub.subscribe(topic).await;
    // Runs of equal sizes, broken by shorter and longer ones: GSO's boundaries.
    let payload = |i: usize| {
        let len = match i % 10 {
            4 => 3,
            7 => 40,
            _ => 12 + (i / 25) % 3,
        };
        format!("{i:03}{}", "x".repeat(len))
    };
    let lines: String = (0..n)
        .map(|i| format!("PUB {topic} {}\n", payload(i)))
        .collect();
    let mut tcp = tokio::net::TcpStream::connect(server.addrs().tcp.unwrap())
        .await
        .unwrap();
    tcp.write_all(lines.as_bytes()).await.unwrap();
    for i in 0..n {
        match sub.recv().await {
            Got::Message {
                topic: t,
                offset,
                payload: p,
                ..
            } => {
                assert_eq!((t.as_str(), offset), (topic, i as u64 + 1));
                assert_eq!(String::from_utf8(p).unwrap(), payload(i));
            }
            other => panic!("expected message {i}, got {other:?}"),
        }
    }
    assert_eq!(sub.recv_within(Duration::from_millis(200)).await, None);
}

#[tokio::test]
async fn a_burst_goes_in_gso_sends_and_arrives_as_one_datagram_per_message_in_order() {
    let server = server_with(|_| {}).await;
    burst_arrives_datagram_by_datagram(&server, "burst", 100).await;
    let m = metrics(&server).await;
    assert_eq!(m["tidings_udp_messages_sent_total"], 100);
    assert_eq!(m["tidings_udp_send_errors_total"], 0);
    // Linux >= 4.18 has UDP GSO on loopback; the sender found the burst queued together.
    if cfg!(target_os = "linux") {
        assert!(m["tidings_udp_gso_sends_total"] > 0, "{m:?}");
    }
    assert_eq!(m["tidings_udp_gso_fallbacks_total"], 0);
    server.shutdown().await;
}

#[tokio::test]
async fn with_gso_off_every_datagram_goes_alone_and_arrives_all_the_same() {
    let server = server_with(|c| c.datagram.gso = false).await;
    burst_arrives_datagram_by_datagram(&server, "burst", 100).await;
    let m = metrics(&server).await;
    assert_eq!(m["tidings_udp_messages_sent_total"], 100);
    assert_eq!(m["tidings_udp_gso_sends_total"], 0);
    server.shutdown().await;
}

/// A client that sends its publishes as one GSO send (as a game server batching its ticks
/// might): with GRO the endpoint gets them in one buffer and must cut it back into the
/// datagrams they were; each is answered as if it had come alone.
#[tokio::test]
async fn publishes_sent_as_one_gso_send_are_each_received_and_answered() {
    let server = server_with(|_| {}).await;
    let mut sub = Peer::new(&server).await;
    sub.subscribe("ticks").await;
    let mut publisher = Peer::new(&server).await;
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let Ok(gso) = quinn_udp::UdpSocketState::new((&probe).into()) else {
        eprintln!("SKIPPED: quinn-udp cannot set up here");
        return;
    };
    let segments = gso.max_gso_segments().min(8);
    // Equal lengths (GSO's rule), the last may be shorter: a shorter payload.
    let mut contents = Vec::new();
    let mut segment_size = 0;
    for i in 0..segments {
        let mut out = Vec::new();
        let text = if i + 1 == segments { "t" } else { "tick" };
        let request = Request::Publish {
            id: publisher.id(),
            kind: PayloadKind::Text,
            topic: "ticks",
            payload: text.as_bytes(),
        };
        udp::encode_request(&request, REPLY_ROOM, &mut out);
        segment_size = segment_size.max(out.len());
        contents.extend_from_slice(&out);
    }
    let transmit = quinn_udp::Transmit {
        destination: publisher.server,
        ecn: None,
        contents: &contents,
        segment_size: (segments > 1).then_some(segment_size),
        src_ip: None,
    };
    let socket = &publisher.socket;
    socket.writable().await.unwrap();
    socket
        .try_io(tokio::io::Interest::WRITABLE, || {
            gso.try_send(socket.into(), &transmit)
        })
        .unwrap();
    let mut offsets = Vec::new();
    for _ in 0..segments {
        match publisher.recv().await {
            Got::Published(offset) => offsets.push(offset),
            other => panic!("expected PUBLISHED, got {other:?}"),
        }
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (1..=segments as u64).collect::<Vec<_>>());
    for i in 0..segments {
        let (topic, offset, text) = sub.message().await;
        assert_eq!((topic.as_str(), offset), ("ticks", i as u64 + 1));
        assert_eq!(text, if i + 1 == segments { "t" } else { "tick" });
    }
    let m = metrics(&server).await;
    assert_eq!(m["tidings_udp_bad_datagrams_total"], 0, "{m:?}");
    assert_eq!(m["tidings_published_total"], segments as u64);
    // The subscribe's two datagrams and the publishes: fewer calls than datagrams.
    if cfg!(target_os = "linux") && segments > 1 {
        assert!(
            m["tidings_udp_receive_calls_total"] < m["tidings_udp_datagrams_received_total"],
            "{m:?}"
        );
    }
    server.shutdown().await;
}
