//! `UdpClient` against an in-process server, through a lossy relay where a test needs one:
//! subscribe and publish, gaps and duplicates, lease renewal and restoring a lost lease.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidings_client::{Client, ClientConfig, Event, Events, Payload, UdpClient};
use tidings_server::{Listen, Server, ServerConfig};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(5);

async fn server_with(f: impl FnOnce(&mut ServerConfig)) -> Server {
    let any = || Listen(Some("127.0.0.1:0".parse().unwrap()));
    let mut cfg = ServerConfig {
        http: Listen(None),
        tcp: any(),
        udp: any(),
        stomp: Listen(None),
        ..Default::default()
    };
    f(&mut cfg);
    Server::start(cfg).await.unwrap()
}

async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event in time")
        .expect("open")
}

async fn message(events: &mut Events) -> (String, u64, Payload) {
    match next(events).await {
        Event::Message(m) => (m.topic, m.offset, m.payload),
        other => panic!("expected a message, got {other:?}"),
    }
}

fn text(s: &str) -> Payload {
    Payload::Text(s.into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    ToServer,
    ToClient,
}

enum Action {
    Pass,
    Drop,
    Twice,
}

type Filter = Box<dyn FnMut(Way, &[u8]) -> Action + Send>;

/// A UDP relay for one client: what the client sends to the relay goes to the server and
/// back, through `filter`. Returns the relay's address.
async fn relay(server: SocketAddr, filter: Filter) -> SocketAddr {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    back.connect(server).await.unwrap();
    let addr = front.local_addr().unwrap();
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let filter = Arc::new(Mutex::new(filter));
    let (f, b, c, flt) = (front.clone(), back.clone(), client.clone(), filter.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = f.recv_from(&mut buf).await {
            *c.lock().unwrap() = Some(from);
            let action = (flt.lock().unwrap())(Way::ToServer, &buf[..n]);
            for _ in 0..copies(action) {
                let _ = b.send(&buf[..n]).await;
            }
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = back.recv(&mut buf).await {
            let Some(to) = *client.lock().unwrap() else {
                continue;
            };
            let action = (filter.lock().unwrap())(Way::ToClient, &buf[..n]);
            for _ in 0..copies(action) {
                let _ = front.send_to(&buf[..n], to).await;
            }
        }
    });
    addr
}

fn copies(action: Action) -> usize {
    match action {
        Action::Pass => 1,
        Action::Drop => 0,
        Action::Twice => 2,
    }
}

/// The datagram type byte (after `TD` and the version).
fn kind(d: &[u8]) -> u8 {
    d.get(3).copied().unwrap_or(0)
}

#[tokio::test]
async fn subscribe_publish_acked_and_fire_and_forget() {
    let server = server_with(|_| {}).await;
    let url = format!("udp://{}", server.addrs().udp.unwrap());
    let (udp, mut events) = UdpClient::connect(ClientConfig::new(&url)).await.unwrap();
    let sub = udp.subscribe("game.pos").await.unwrap();
    assert_eq!(sub.last_offset, 0);
    assert!(sub.epoch.is_some(), "an exact topic has an epoch at once");
    assert!(udp.subscribe("game.*").await.is_ok());

    let published = udp.publish_acked("game.pos", "x=1").await.unwrap();
    assert_eq!(published.offset, 1);
    assert_eq!(published.epoch, sub.epoch);
    // Two subscriptions match: the server sends the message once.
    assert_eq!(
        message(&mut events).await,
        ("game.pos".into(), 1, text("x=1"))
    );
    udp.publish("game.pos", Payload::Json(r#"{"x":2}"#.into()))
        .await
        .unwrap();
    assert_eq!(
        message(&mut events).await,
        ("game.pos".into(), 2, Payload::Json(r#"{"x":2}"#.into()))
    );

    // Cross-protocol: a TCP client's message arrives as a datagram.
    let tcp = format!("tcp://{}", server.addrs().tcp.unwrap());
    let (line, _line_events) = Client::connect(ClientConfig::new(tcp)).await.unwrap();
    line.publish("game.score", vec![0u8, 255]).await.unwrap();
    assert_eq!(
        message(&mut events).await,
        (
            "game.score".into(),
            1,
            Payload::Binary(vec![0u8, 255].into())
        )
    );

    // Local misuse is refused before anything is sent.
    assert!(udp.publish("game.*", "x").await.is_err());
    assert!(
        udp.publish("t", "x".repeat(1300)).await.is_ok(),
        "fire and forget: not checked"
    );
    assert!(udp.publish_acked("t", "x".repeat(1300)).await.is_err());
    udp.unsubscribe("game.*").await.unwrap();
    assert!(udp.unsubscribe("game.*").await.is_err());
    udp.close().await;
    line.close().await;
    // Closing sent one UNSUBSCRIBE for everything, so the lease need not run out.
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.hub().stats().subscriptions > 0 {
        assert!(tokio::time::Instant::now() < deadline, "close unsubscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn lost_datagrams_show_as_gaps_and_duplicates_are_dropped() {
    let server = server_with(|_| {}).await;
    let mut messages = 0;
    let filter: Filter = Box::new(move |way, d| {
        if way != Way::ToClient || kind(d) != 0x86 {
            return Action::Pass;
        }
        messages += 1;
        match messages {
            2 => Action::Drop,
            3 => Action::Twice,
            _ => Action::Pass,
        }
    });
    let via = relay(server.addrs().udp.unwrap(), filter).await;
    let (udp, mut events) = UdpClient::connect(ClientConfig::new(format!("udp://{via}")))
        .await
        .unwrap();
    udp.subscribe("t").await.unwrap();
    for i in 1..=4 {
        udp.publish_acked("t", format!("m{i}")).await.unwrap();
    }
    assert_eq!(message(&mut events).await.1, 1);
    match next(&mut events).await {
        Event::Gap {
            topic,
            since,
            earliest,
            ..
        } => assert_eq!((topic.as_str(), since, earliest), ("t", 1, 3)),
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(message(&mut events).await.1, 3);
    assert_eq!(
        message(&mut events).await.1,
        4,
        "the duplicate of 3 was dropped"
    );
    udp.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_lease_is_renewed_and_restored_when_the_server_forgot_it() {
    let server = server_with(|c| {
        c.datagram.lease_secs = 1;
        c.datagram.cookie_secs = 10;
    })
    .await;
    let block_renewals = Arc::new(Mutex::new(false));
    let block = block_renewals.clone();
    let filter: Filter = Box::new(move |way, d| {
        if way == Way::ToServer && kind(d) == 0x03 && *block.lock().unwrap() {
            Action::Drop
        } else {
            Action::Pass
        }
    });
    let via = relay(server.addrs().udp.unwrap(), filter).await;
    let (udp, mut events) = UdpClient::connect(ClientConfig::new(format!("udp://{via}")))
        .await
        .unwrap();
    udp.subscribe("t").await.unwrap();
    let (publisher, _) = UdpClient::connect(ClientConfig::new(format!(
        "udp://{}",
        server.addrs().udp.unwrap()
    )))
    .await
    .unwrap();

    // Renewals keep it alive well past the lease.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    publisher.publish_acked("t", "alive").await.unwrap();
    assert_eq!(message(&mut events).await, ("t".into(), 1, text("alive")));

    // Lost renewals: the server lets the lease run out; the next renewal that gets through
    // learns it, and the client subscribes again by itself.
    *block_renewals.lock().unwrap() = true;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    *block_renewals.lock().unwrap() = false;
    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected { .. }
    ));
    assert!(matches!(next(&mut events).await, Event::Reconnected));
    publisher.publish_acked("t", "back").await.unwrap();
    assert_eq!(message(&mut events).await, ("t".into(), 2, text("back")));
    udp.close().await;
    publisher.close().await;
    server.shutdown().await;
}
