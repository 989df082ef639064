//! The client against a real server in-process, on 127.0.0.1 with port 0, over both
//! transports.

use std::time::Duration;

use bytes::Bytes;
use tidings_client::{
    BlockingClient, Client, ClientConfig, ClientError, Event, Events, Message, Payload,
};
use tidings_server::{Server, ServerConfig};

/// Longest wait for anything in these tests; a healthy run takes milliseconds.
const PATIENCE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
enum Transport {
    Tcp,
    Ws,
}

/// Both transports of the client (WebSocket on HTTP, and TCP); a short shutdown grace so the
/// shutdown tests are quick.
fn config() -> ServerConfig {
    tidings_testkit::server()
        .http()
        .tcp()
        .with(|c| c.shutdown_grace_ms = 500)
        .config()
}

async fn start(cfg: ServerConfig) -> Server {
    Server::start(cfg).await.expect("server starts")
}

fn url(server: &Server, transport: Transport) -> String {
    match transport {
        Transport::Tcp => format!("tcp://{}", server.addrs().tcp.unwrap()),
        Transport::Ws => format!("ws://{}/ws", server.addrs().http.unwrap()),
    }
}

fn client_config(server: &Server, transport: Transport) -> ClientConfig {
    let mut cfg = ClientConfig::new(url(server, transport));
    cfg.min_backoff = Duration::from_millis(50);
    cfg.max_backoff = Duration::from_millis(200);
    cfg
}

async fn connect(server: &Server, transport: Transport) -> (Client, Events) {
    Client::connect(client_config(server, transport))
        .await
        .expect("client connects")
}

/// A client that reconnects after exactly `backoff`: long enough for a test to publish what
/// it should miss while the connection is down.
async fn connect_with_backoff(
    server: &Server,
    transport: Transport,
    backoff: Duration,
) -> (Client, Events) {
    let mut cfg = client_config(server, transport);
    cfg.min_backoff = backoff;
    cfg.max_backoff = backoff;
    Client::connect(cfg).await.expect("client connects")
}

async fn next_event(events: &mut Events) -> Event {
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event in time")
        .expect("events still open")
}

/// The next message, skipping presence events.
async fn next_message(events: &mut Events) -> Message {
    loop {
        match next_event(events).await {
            Event::Message(m) => return m,
            Event::Presence { .. } => {}
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Asserts that no message arrives for a short while.
async fn no_more_messages(events: &mut Events) {
    let quiet = tokio::time::timeout(Duration::from_millis(200), async {
        loop {
            match events.next().await {
                Some(Event::Presence { .. }) => {}
                other => return other,
            }
        }
    })
    .await;
    if let Ok(event) = quiet {
        panic!("expected nothing more, got {event:?}");
    }
}

async fn pubsub(transport: Transport) {
    let server = start(config()).await;
    let (a, mut a_events) = connect(&server, transport).await;
    let (b, _b_events) = connect(&server, transport).await;

    let sub = a.subscribe("chat.lobby").await.unwrap();
    assert_eq!((sub.last_offset, sub.replayed), (0, 0));
    for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
        let published = b.publish("chat.lobby", text).await.unwrap();
        assert_eq!(published.offset, i as u64 + 1);
        if let Transport::Ws = transport {
            assert!(published.epoch.is_some());
        }
    }
    for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
        let m = next_message(&mut a_events).await;
        assert_eq!(m.topic, "chat.lobby");
        assert_eq!(m.offset, i as u64 + 1);
        assert_eq!(m.payload, Payload::Text(text.into()));
        if let Transport::Ws = transport {
            assert!(m.epoch.is_some());
        }
    }

    // JSON keeps its type over WebSocket; the line protocol has only text and bytes.
    b.publish("chat.lobby", Payload::Json(r#"{"n": 1}"#.into()))
        .await
        .unwrap();
    let m = next_message(&mut a_events).await;
    assert_eq!(m.offset, 4);
    match transport {
        Transport::Ws => assert_eq!(m.payload, Payload::Json(r#"{"n": 1}"#.into())),
        Transport::Tcp => assert_eq!(m.payload, Payload::Text(r#"{"n": 1}"#.into())),
    }

    // Replay from history, with the epoch both sides now know.
    let (c, mut c_events) = connect(&server, transport).await;
    let resumed = c.subscribe_since("chat.lobby", 2, None).await.unwrap();
    assert_eq!((resumed.last_offset, resumed.replayed), (4, 2));
    let epoch = resumed
        .epoch
        .clone()
        .expect("an existing topic has an epoch");
    assert_eq!(next_message(&mut c_events).await.offset, 3);
    let m = next_message(&mut c_events).await;
    assert_eq!((m.offset, m.epoch.as_deref()), (4, Some(epoch.as_str())));

    // Unsubscribed: nothing more arrives.
    a.unsubscribe("chat.lobby").await.unwrap();
    b.publish("chat.lobby", "after").await.unwrap();
    assert_eq!(next_message(&mut c_events).await.offset, 5);
    no_more_messages(&mut a_events).await;

    // Local misuse is refused before anything is sent; server refusals say why.
    assert!(matches!(
        a.publish("chat.*", "x").await,
        Err(ClientError::InvalidInput(_))
    ));
    assert!(matches!(
        a.subscribe("bad topic").await,
        Err(ClientError::InvalidInput(_))
    ));
    match a.publish("chat..lobby", "x").await {
        Err(ClientError::Server { code, message }) => {
            assert_eq!(code, "bad_request");
            assert!(message.contains("empty token"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    for client in [a, b, c] {
        client.close().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_pubsub() {
    pubsub(Transport::Tcp).await;
}

#[tokio::test]
async fn ws_pubsub() {
    pubsub(Transport::Ws).await;
}

async fn binary(transport: Transport) {
    let server = start(config()).await;
    let (a, mut events) = connect(&server, transport).await;
    a.subscribe("cam.1").await.unwrap();
    let bytes: Vec<u8> = (0..=255u8).chain(*b"\r\n\0end").collect();
    let published = a.publish("cam.1", bytes.clone()).await.unwrap();
    let m = next_message(&mut events).await;
    assert_eq!(m.offset, published.offset);
    assert_eq!(m.payload, Payload::Binary(Bytes::from(bytes)));

    // Multi-line and long text stay text (BPUB/BMSG on the line protocol).
    let long = "x".repeat(100_000);
    for text in ["line 1\nline 2\r\n", long.as_str()] {
        a.publish("cam.1", text).await.unwrap();
        assert_eq!(
            next_message(&mut events).await.payload,
            Payload::Text(text.into())
        );
    }
    a.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_binary() {
    binary(Transport::Tcp).await;
}

#[tokio::test]
async fn ws_binary() {
    binary(Transport::Ws).await;
}

async fn wildcard(transport: Transport) {
    let server = start(config()).await;
    let (a, mut events) = connect(&server, transport).await;
    let (b, _b_events) = connect(&server, transport).await;
    a.subscribe("prices.*").await.unwrap();
    a.subscribe("news.>").await.unwrap();
    b.publish("prices.AAPL", "187.5").await.unwrap();
    b.publish("other.AAPL", "no").await.unwrap();
    b.publish("prices.AAPL.extra", "no").await.unwrap();
    b.publish("news.tech.ai", "yes").await.unwrap();
    b.publish("prices.MSFT", "410").await.unwrap();
    let got: Vec<(String, u64)> = [
        next_message(&mut events).await,
        next_message(&mut events).await,
        next_message(&mut events).await,
    ]
    .into_iter()
    .map(|m| (m.topic, m.offset))
    .collect();
    assert_eq!(
        got,
        [
            ("prices.AAPL".to_owned(), 1),
            ("news.tech.ai".to_owned(), 1),
            ("prices.MSFT".to_owned(), 1)
        ]
    );
    no_more_messages(&mut events).await;
    a.close().await;
    b.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_wildcard() {
    wildcard(Transport::Tcp).await;
}

#[tokio::test]
async fn ws_wildcard() {
    wildcard(Transport::Ws).await;
}

/// Reads events until `Reconnected` and the message at offset `last`; returns the message
/// offsets and every `Gap`, checking that `Disconnected` came first.
async fn after_reconnect(events: &mut Events, last: u64) -> (Vec<u64>, Vec<Event>) {
    match next_event(events).await {
        Event::Disconnected { .. } => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    let (mut offsets, mut gaps, mut reconnected) = (Vec::new(), Vec::new(), false);
    while !(reconnected && offsets.last() == Some(&last)) {
        match next_event(events).await {
            Event::Message(m) => offsets.push(m.offset),
            Event::Reconnected => reconnected = true,
            gap @ Event::Gap { .. } => gaps.push(gap),
            Event::Presence { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    (offsets, gaps)
}

/// A connection drop loses nothing: the client resumes after the last offset it saw.
async fn resume(transport: Transport) {
    let server = start(config()).await;
    let (a, mut a_events) = connect(&server, transport).await;
    let (b, _b_events) = connect(&server, transport).await;
    a.subscribe("orders").await.unwrap();
    a.subscribe("orders.*").await.unwrap(); // a pattern is restored too
    for i in 1..=3 {
        b.publish("orders", format!("order {i}")).await.unwrap();
    }
    for i in 1..=3 {
        assert_eq!(next_message(&mut a_events).await.offset, i);
    }

    a.kill_connection_for_test().await;
    for i in 4..=8 {
        b.publish("orders", format!("order {i}")).await.unwrap();
    }
    let (offsets, gaps) = after_reconnect(&mut a_events, 8).await;
    assert_eq!(offsets, [4, 5, 6, 7, 8]);
    assert!(gaps.is_empty(), "{gaps:?}");

    // Both subscriptions live on, and nothing is delivered twice.
    b.publish("orders", "order 9").await.unwrap();
    b.publish("orders.eu", "eu 1").await.unwrap();
    let m = next_message(&mut a_events).await;
    assert_eq!((m.topic.as_str(), m.offset), ("orders", 9));
    assert_eq!(m.payload, Payload::Text("order 9".into()));
    assert!(m.epoch.is_some());
    let m = next_message(&mut a_events).await;
    assert_eq!((m.topic.as_str(), m.offset), ("orders.eu", 1));
    no_more_messages(&mut a_events).await;

    a.close().await;
    b.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_resume_after_connection_loss() {
    resume(Transport::Tcp).await;
}

#[tokio::test]
async fn ws_resume_after_connection_loss() {
    resume(Transport::Ws).await;
}

/// When history no longer holds what was missed: a `Gap`, then what history still has.
async fn gap(transport: Transport) {
    let mut cfg = config();
    cfg.hub.history.max_messages = 3;
    let server = start(cfg).await;
    // Long enough for the publisher below to finish before the client is back.
    let (a, mut a_events) =
        connect_with_backoff(&server, transport, Duration::from_millis(1000)).await;
    let (b, _b_events) = connect(&server, transport).await;
    a.subscribe("ticks").await.unwrap();
    for i in 1..=3 {
        b.publish("ticks", format!("tick {i}")).await.unwrap();
        assert_eq!(next_message(&mut a_events).await.offset, i);
    }

    a.kill_connection_for_test().await;
    match next_event(&mut a_events).await {
        Event::Disconnected { .. } => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(matches!(
        a.publish("ticks", "x").await,
        Err(ClientError::NotConnected)
    ));
    for i in 4..=8 {
        b.publish("ticks", format!("tick {i}")).await.unwrap();
    }
    let (mut offsets, mut gaps, mut reconnected) = (Vec::new(), Vec::new(), false);
    while !(reconnected && offsets.last() == Some(&8)) {
        match next_event(&mut a_events).await {
            Event::Message(m) => offsets.push(m.offset),
            Event::Reconnected => reconnected = true,
            gap @ Event::Gap { .. } => gaps.push(gap),
            Event::Presence { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    match gaps.as_slice() {
        [Event::Gap {
            topic,
            since,
            earliest,
            reason,
        }] => {
            assert_eq!((topic.as_str(), *since, *earliest), ("ticks", 3, 6));
            assert!(reason.contains("no longer in history"), "{reason}");
        }
        other => panic!("expected one gap, got {other:?}"),
    }
    assert_eq!(offsets, [6, 7, 8]);

    // Asking for it directly is refused with the same facts.
    match a.subscribe_since("ticks", 2, None).await {
        Err(ClientError::ResumeUnavailable {
            topic,
            earliest,
            last,
            epoch,
            ..
        }) => {
            assert_eq!((topic.as_str(), earliest, last), ("ticks", 6, 8));
            assert!(epoch.is_some());
        }
        other => panic!("{other:?}"),
    }
    a.close().await;
    b.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_gap_when_history_is_too_short() {
    gap(Transport::Tcp).await;
}

#[tokio::test]
async fn ws_gap_when_history_is_too_short() {
    gap(Transport::Ws).await;
}

/// Reads events after a drop until `Reconnected` and until every `(topic, offset)` of `last`
/// came; returns the messages as `(topic, offset)` and every `Gap`.
async fn after_pattern_reconnect(
    events: &mut Events,
    last: &[(&str, u64)],
) -> (Vec<(String, u64)>, Vec<Event>) {
    match next_event(events).await {
        Event::Disconnected { .. } => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    let (mut got, mut gaps, mut reconnected) = (Vec::new(), Vec::new(), false);
    let done = |got: &Vec<(String, u64)>| {
        last.iter()
            .all(|(t, o)| got.iter().any(|(gt, go)| gt == t && go == o))
    };
    while !(reconnected && done(&got)) {
        match next_event(events).await {
            Event::Message(m) => got.push((m.topic, m.offset)),
            Event::Reconnected => reconnected = true,
            gap @ Event::Gap { .. } => gaps.push(gap),
            Event::Presence { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    (got, gaps)
}

fn offsets_of(got: &[(String, u64)], topic: &str) -> Vec<u64> {
    got.iter()
        .filter(|(t, _)| t == topic)
        .map(|(_, o)| *o)
        .collect()
}

/// A pattern subscription resumes every topic it delivered: after a drop the client gets,
/// per topic, exactly what it missed, or a `Gap` and then what history still holds.
#[tokio::test]
async fn ws_pattern_resumes_every_topic_after_connection_loss() {
    let mut cfg = config();
    cfg.hub.history.max_messages = 3;
    let server = start(cfg).await;
    // Long enough for the publisher below to finish before the client is back.
    let (a, mut a_events) =
        connect_with_backoff(&server, Transport::Ws, Duration::from_millis(1000)).await;
    let (b, _b_events) = connect(&server, Transport::Ws).await;
    a.subscribe("w.*").await.unwrap();
    b.publish("w.a", "a1").await.unwrap();
    b.publish("w.b", "b1").await.unwrap();
    for topic in ["w.a", "w.b"] {
        let m = next_message(&mut a_events).await;
        assert_eq!((m.topic.as_str(), m.offset), (topic, 1));
    }

    a.kill_connection_for_test().await;
    // Away: w.a gets two more (history holds them), w.b five more (it holds the last three).
    for i in 2..=3 {
        b.publish("w.a", format!("a{i}")).await.unwrap();
    }
    for i in 2..=6 {
        b.publish("w.b", format!("b{i}")).await.unwrap();
    }
    let (got, gaps) = after_pattern_reconnect(&mut a_events, &[("w.a", 3), ("w.b", 6)]).await;
    assert_eq!(offsets_of(&got, "w.a"), [2, 3], "{got:?}");
    assert_eq!(offsets_of(&got, "w.b"), [4, 5, 6], "{got:?}");
    match gaps.as_slice() {
        [Event::Gap {
            topic,
            since,
            earliest,
            reason,
        }] => {
            assert_eq!((topic.as_str(), *since, *earliest), ("w.b", 1, 4));
            assert!(reason.contains("no longer in history"), "{reason}");
        }
        other => panic!("expected one gap, for w.b: {other:?}"),
    }

    // A second drop: it resumes from where the first resume left each topic.
    a.kill_connection_for_test().await;
    b.publish("w.b", "b7").await.unwrap();
    b.publish("w.c", "c1").await.unwrap(); // a topic it never saw: live only
    let (got, gaps) = after_pattern_reconnect(&mut a_events, &[("w.b", 7)]).await;
    assert_eq!(got, [("w.b".to_owned(), 7)]);
    assert!(gaps.is_empty(), "{gaps:?}");

    // Live on, nothing twice.
    b.publish("w.a", "a4").await.unwrap();
    b.publish("w.c", "c2").await.unwrap();
    let m = next_message(&mut a_events).await;
    assert_eq!((m.topic.as_str(), m.offset), ("w.a", 4));
    let m = next_message(&mut a_events).await;
    assert_eq!((m.topic.as_str(), m.offset), ("w.c", 2));
    no_more_messages(&mut a_events).await;
    a.close().await;
    b.close().await;
    server.shutdown().await;
}

/// Overlapping subscriptions (a pattern and an exact topic, two patterns) each get the
/// server's copy of a message; the client hands it on once, before and after a resume.
#[tokio::test]
async fn ws_overlapping_subscriptions_deliver_once_and_resume_once() {
    let server = start(config()).await;
    let (a, mut a_events) =
        connect_with_backoff(&server, Transport::Ws, Duration::from_millis(500)).await;
    let (b, _b_events) = connect(&server, Transport::Ws).await;
    a.subscribe("w.*").await.unwrap();
    a.subscribe("w.>").await.unwrap();
    a.subscribe("w.a").await.unwrap();
    b.publish("w.a", "a1").await.unwrap();
    b.publish("w.b", "b1").await.unwrap();
    assert_eq!(next_message(&mut a_events).await.offset, 1);
    assert_eq!(next_message(&mut a_events).await.offset, 1);
    no_more_messages(&mut a_events).await;
    a.kill_connection_for_test().await;
    b.publish("w.a", "a2").await.unwrap();
    b.publish("w.b", "b2").await.unwrap();
    let (got, gaps) = after_pattern_reconnect(&mut a_events, &[("w.a", 2), ("w.b", 2)]).await;
    assert_eq!(offsets_of(&got, "w.a"), [2], "{got:?}");
    assert_eq!(offsets_of(&got, "w.b"), [2], "{got:?}");
    assert!(gaps.is_empty(), "{gaps:?}");
    no_more_messages(&mut a_events).await;
    a.close().await;
    b.close().await;
    server.shutdown().await;
}

/// The line protocol has no per-topic positions: a pattern comes back live only.
#[tokio::test]
async fn tcp_pattern_restarts_live_after_connection_loss() {
    let server = start(config()).await;
    let (a, mut a_events) =
        connect_with_backoff(&server, Transport::Tcp, Duration::from_millis(500)).await;
    let (b, _b_events) = connect(&server, Transport::Tcp).await;
    a.subscribe("w.*").await.unwrap();
    b.publish("w.a", "a1").await.unwrap();
    assert_eq!(next_message(&mut a_events).await.offset, 1);
    a.kill_connection_for_test().await;
    b.publish("w.a", "a2").await.unwrap();
    match next_event(&mut a_events).await {
        Event::Disconnected { .. } => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    loop {
        match next_event(&mut a_events).await {
            Event::Reconnected => break,
            Event::Presence { .. } => {}
            other => panic!("nothing is replayed for a pattern over TCP: {other:?}"),
        }
    }
    b.publish("w.a", "a3").await.unwrap();
    assert_eq!(next_message(&mut a_events).await.offset, 3);
    a.close().await;
    b.close().await;
    server.shutdown().await;
}

/// Credentials are checked on connect and sent again on every reconnect.
async fn login(transport: Transport) {
    let mut cfg: ServerConfig = serde_json::from_value(serde_json::json!({
        "hub": {"auth": {
            "users": [{"name": "alice", "password": "secret", "publish": [">"], "subscribe": [">"]}],
        }},
    }))
    .unwrap();
    let base = config();
    (cfg.http, cfg.tcp, cfg.udp, cfg.stomp) = (base.http, base.tcp, base.udp, base.stomp);
    let server = start(cfg).await;

    let mut wrong = client_config(&server, transport);
    wrong.credentials = Some(("alice".into(), "nope".into()));
    match Client::connect(wrong).await {
        Err(ClientError::Server { code, .. }) => assert_eq!(code, "unauthorized"),
        other => panic!("{other:?}"),
    }
    let (anonymous, _events) = connect(&server, transport).await;
    match anonymous.publish("room", "hi").await {
        Err(ClientError::Server { code, .. }) => assert_eq!(code, "forbidden"),
        other => panic!("{other:?}"),
    }

    let mut cfg = client_config(&server, transport);
    cfg.credentials = Some(("alice".into(), "secret".into()));
    let (alice, mut events) = Client::connect(cfg).await.unwrap();
    alice.subscribe("room").await.unwrap();
    alice.publish("room", "1").await.unwrap();
    assert_eq!(next_message(&mut events).await.offset, 1);
    alice.kill_connection_for_test().await;
    let (offsets, _) = {
        // Publish from a second session of alice while the first reconnects.
        let mut cfg = client_config(&server, transport);
        cfg.credentials = Some(("alice".into(), "secret".into()));
        let (other, _other_events) = Client::connect(cfg).await.unwrap();
        other.publish("room", "2").await.unwrap();
        let result = after_reconnect(&mut events, 2).await;
        other.close().await;
        result
    };
    assert_eq!(offsets, [2]);
    assert_eq!(alice.publish("room", "3").await.unwrap().offset, 3);
    anonymous.close().await;
    alice.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_login_and_relogin() {
    login(Transport::Tcp).await;
}

#[tokio::test]
async fn ws_login_and_relogin() {
    login(Transport::Ws).await;
}

/// The server's goodbye is the reason; without reconnect that is the last event.
async fn server_shutdown(transport: Transport) {
    let server = start(config()).await;
    let mut cfg = client_config(&server, transport);
    cfg.reconnect = false;
    let (a, mut events) = Client::connect(cfg).await.unwrap();
    a.subscribe("t").await.unwrap();
    server.shutdown().await;
    loop {
        match next_event(&mut events).await {
            Event::Disconnected { reason } => {
                assert!(reason.contains("shutting down"), "{reason}");
                break;
            }
            Event::Presence { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(tokio::time::timeout(PATIENCE, events.next())
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        a.publish("t", "x").await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test]
async fn tcp_server_shutdown() {
    server_shutdown(Transport::Tcp).await;
}

#[tokio::test]
async fn ws_server_shutdown() {
    server_shutdown(Transport::Ws).await;
}

#[tokio::test]
async fn close_ends_events_and_requests() {
    let server = start(config()).await;
    let (a, mut events) = connect(&server, Transport::Tcp).await;
    a.subscribe("t").await.unwrap();
    for _ in 0..20 {
        a.publish("t", "x").await.unwrap();
    }
    // Closing does not wait for unread events to be read.
    a.close().await;
    assert!(a.is_closed());
    assert!(matches!(
        a.publish("t", "x").await,
        Err(ClientError::Closed)
    ));
    let mut seen = 0;
    while let Some(event) = tokio::time::timeout(PATIENCE, events.next()).await.unwrap() {
        if let Event::Message(_) = event {
            seen += 1;
        }
    }
    assert!(seen <= 20);
    server.shutdown().await;
}

#[tokio::test]
async fn connect_errors() {
    assert!(matches!(
        Client::connect(ClientConfig::new("http://127.0.0.1:1")).await,
        Err(ClientError::BadUrl(_))
    ));
    // Nothing listens there (a port just released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(matches!(
        Client::connect(ClientConfig::new(format!("tcp://127.0.0.1:{port}"))).await,
        Err(ClientError::Io(_))
    ));
}

/// A small event buffer and a slow reader: the connection waits (TCP backpressure)
/// and nothing is dropped.
#[tokio::test]
async fn slow_reader_gets_everything_in_order() {
    let server = start(config()).await;
    let mut cfg = client_config(&server, Transport::Tcp);
    cfg.event_buffer = 2;
    let (a, mut events) = Client::connect(cfg).await.unwrap();
    let (b, _b_events) = connect(&server, Transport::Ws).await;
    a.subscribe("flood").await.unwrap();
    let publisher = tokio::spawn(async move {
        for i in 0..500 {
            b.publish("flood", format!("m{i}")).await.unwrap();
        }
        b
    });
    for expected in 1..=500 {
        let m = next_message(&mut events).await;
        assert_eq!(m.offset, expected);
        if expected % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    publisher.await.unwrap().close().await;
    a.close().await;
    server.shutdown().await;
}

/// The blocking client: a reader thread receives while this thread publishes.
#[test]
fn blocking_client_with_reader_thread() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(start(config()));
    for transport in [Transport::Tcp, Transport::Ws] {
        let client = std::sync::Arc::new(
            BlockingClient::connect(client_config(&server, transport)).unwrap(),
        );
        let sub = client.subscribe("jobs").unwrap();
        let first = sub.last_offset + 1;
        let reader = {
            let client = client.clone();
            std::thread::spawn(move || {
                let mut offsets = Vec::new();
                while offsets.len() < 10 {
                    match client.recv_timeout(PATIENCE) {
                        Ok(Some(Event::Message(m))) => offsets.push(m.offset),
                        Ok(Some(_)) => {}
                        other => panic!("{other:?}"),
                    }
                }
                offsets
            })
        };
        for i in 0..10 {
            let published = client.publish("jobs", format!("job {i}")).unwrap();
            assert_eq!(published.offset, first + i);
        }
        let offsets = reader.join().unwrap();
        assert_eq!(offsets, (first..first + 10).collect::<Vec<_>>());
        assert!(matches!(
            client.recv_timeout(Duration::from_millis(50)),
            Err(tidings_client::RecvTimeoutError) | Ok(Some(Event::Presence { .. }))
        ));
        let client = std::sync::Arc::into_inner(client).unwrap();
        client.close();
    }
    runtime.block_on(server.shutdown());
}

#[test]
fn blocking_connect_error() {
    assert!(matches!(
        BlockingClient::connect(ClientConfig::new("ws://127.0.0.1:1/ws")),
        Err(ClientError::Io(_))
    ));
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Client>();
    check::<BlockingClient>();
    fn send<T: Send>() {}
    send::<Events>();
}

/// A reader too slow for the server's outbox is disconnected (`slow consumer`); the client
/// reconnects and resumes, so the reader still gets every message exactly once, in order.
#[tokio::test]
async fn slow_consumer_is_disconnected_and_resumes() {
    let mut cfg = config();
    cfg.hub.outbox.max_messages = 8;
    cfg.hub.outbox.max_bytes = 64 * 1024;
    cfg.hub.history.max_messages = 10_000;
    cfg.hub.history.max_bytes = 256 << 20;
    let server = start(cfg).await;
    let mut a_cfg = client_config(&server, Transport::Tcp);
    a_cfg.event_buffer = 4;
    let (a, mut events) = Client::connect(a_cfg).await.unwrap();
    let (b, _b_events) = connect(&server, Transport::Tcp).await;
    a.subscribe("firehose").await.unwrap();
    // Far more than the kernel's socket buffers hold while `a` does not read.
    const COUNT: u64 = 1500;
    let payload = Bytes::from(vec![0xffu8; 16 * 1024]);
    for _ in 0..COUNT {
        b.publish("firehose", payload.clone()).await.unwrap();
    }
    let (mut next, mut disconnects) = (1, Vec::new());
    while next <= COUNT {
        match next_event(&mut events).await {
            Event::Message(m) => {
                assert_eq!(m.offset, next);
                assert_eq!(m.payload.as_bytes().len(), payload.len());
                next += 1;
            }
            Event::Disconnected { reason } => disconnects.push(reason),
            Event::Reconnected | Event::Presence { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        disconnects.iter().any(|r| r.contains("slow consumer")),
        "{disconnects:?}"
    );
    no_more_messages(&mut events).await;
    a.close().await;
    b.close().await;
    server.shutdown().await;
}
