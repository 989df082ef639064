//! Engine.IO 4 at the packet level over real sockets, against the product server with short
//! heartbeats: when the first PING comes, long-polling payload framing, the upgrade (probe,
//! NOOP, UPGRADE), one receiver per session, the reference server's refusals, `maxPayload`,
//! the ping timeout, and permessage-deflate.

use futures::SinkExt;
use std::time::{Duration, Instant};
use tidings_server::{Server, ServerConfig};
use tidings_testkit::http::{self, Response};
use yawc::{Frame, OpCode, WebSocket};

type Ws = yawc::TcpWebSocket;

const WAIT: Duration = Duration::from_secs(5);
/// The ping interval of the server under test: short, but long enough to tell "at once"
/// from "one interval later" on a busy machine.
const PING_MS: u64 = 600;
const PING_TIMEOUT_MS: u64 = 400;

async fn server_with(f: impl FnOnce(&mut ServerConfig)) -> Server {
    tidings_testkit::server()
        .http()
        .with(|c| {
            c.socketio.ping_interval_ms = PING_MS;
            c.socketio.ping_timeout_ms = PING_TIMEOUT_MS;
            f(c)
        })
        .start()
        .await
}

async fn server() -> (Server, String) {
    let s = server_with(|_| {}).await;
    let a = s.addrs().http.unwrap().to_string();
    (s, a)
}

/// One HTTP/1.1 request (`Connection: close`), read until the server closes.
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Response {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    let r = http::exchange(addr, req, http::ALL, WAIT).await;
    assert!(r.ended, "response in time");
    r
}

async fn get(addr: &str, path: &str) -> Response {
    request(addr, "GET", path, b"", &[]).await
}

async fn post(addr: &str, path: &str, body: &[u8]) -> Response {
    request(addr, "POST", path, body, &[]).await
}

const HANDSHAKE: &str = "/socket.io/?EIO=4&transport=polling";

/// A long-polling handshake: the session id and its poll path.
async fn handshake(a: &str) -> (String, String) {
    let r = get(a, HANDSHAKE).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let open: serde_json::Value = serde_json::from_str(text.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap().to_owned();
    let poll = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    (sid, poll)
}

fn packets(r: &Response) -> Vec<String> {
    r.text().split('\x1e').map(str::to_owned).collect()
}

async fn ws(addr: &str, path: &str) -> Ws {
    WebSocket::connect(format!("ws://{addr}{path}").parse().unwrap())
        .await
        .expect("websocket connect")
}

/// The next text or binary frame, as it comes (pings included).
async fn frame(ws: &mut Ws, within: Duration) -> Option<Frame> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next_frame()).await {
            Err(_) => return None,
            Ok(f) => {
                let f = f.expect("connection open");
                if matches!(f.opcode(), OpCode::Text | OpCode::Binary | OpCode::Close) {
                    return Some(f);
                }
            }
        }
    }
}

async fn text(ws: &mut Ws) -> String {
    let f = frame(ws, WAIT).await.expect("a frame in time");
    assert_eq!(f.opcode(), OpCode::Text);
    String::from_utf8(f.payload().to_vec()).unwrap()
}

async fn send(ws: &mut Ws, text: &str) {
    ws.send(Frame::text(text.to_owned())).await.unwrap();
}

/// Waits until the server ends the connection; returns when (and the close code if any).
async fn closed(ws: &mut Ws, within: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next_frame()).await {
            Err(_) => panic!("the server did not close the connection"),
            Ok(Err(_)) => return None,
            Ok(Ok(f)) if f.opcode() == OpCode::Close => {
                let p = f.payload();
                return (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
            }
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn first_ping_comes_one_interval_after_the_handshake_on_both_transports() {
    let (server, a) = server().await;
    let a = a.as_str();
    // Long-polling: the first poll is not answered with a PING at once; a namespace CONNECT
    // is answered without a PING prepended.
    let t0 = Instant::now();
    let (_, poll) = handshake(a).await;
    assert_eq!(post(a, &poll, b"40").await.status, 200);
    let r = get(a, &poll).await;
    let got = packets(&r);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("40{\"sid\":"), "{got:?}");
    assert!(
        t0.elapsed() < Duration::from_millis(PING_MS - 100),
        "{:?}",
        t0.elapsed()
    );
    // The next poll waits for the PING, which comes about one interval after the handshake.
    let r = get(a, &poll).await;
    let at = t0.elapsed();
    assert_eq!(r.text(), "2");
    assert!(
        at >= Duration::from_millis(PING_MS - 50),
        "PING after {at:?}"
    );
    assert!(
        at < Duration::from_millis(PING_MS + 1500),
        "PING after {at:?}"
    );
    // PONG; the next PING comes one interval after it.
    assert_eq!(post(a, &poll, b"3").await.status, 200);
    let t1 = Instant::now();
    assert_eq!(get(a, &poll).await.text(), "2");
    assert!(
        t1.elapsed() >= Duration::from_millis(PING_MS - 100),
        "{:?}",
        t1.elapsed()
    );

    // WebSocket: OPEN, then nothing until the interval has passed, then PING.
    let t0 = Instant::now();
    let mut w = ws(a, "/socket.io/?EIO=4&transport=websocket").await;
    assert!(text(&mut w).await.starts_with("0{"));
    send(&mut w, "40").await;
    assert!(text(&mut w).await.starts_with("40{"));
    let early = frame(&mut w, Duration::from_millis(PING_MS - 150)).await;
    let early = early.map(|f| String::from_utf8_lossy(f.payload()).into_owned());
    assert!(
        early.is_none(),
        "nothing before the first interval: {early:?}"
    );
    assert_eq!(text(&mut w).await, "2");
    assert!(
        t0.elapsed() >= Duration::from_millis(PING_MS - 50),
        "{:?}",
        t0.elapsed()
    );
    send(&mut w, "3").await;
    server.shutdown().await;
}

#[tokio::test]
async fn polling_payloads_are_separated_and_carry_binary_as_base64() {
    let (server, a) = server().await;
    let a = a.as_str();
    let (_, poll) = handshake(a).await;
    // Several packets in one POST: CONNECT, then two requests with acks.
    let body = "40\x1e421[\"subscribe\",\"eio.t\"]\x1e422[\"publish\",\"eio.t\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID";
    let body = body.replace("422[", "451-2[");
    assert_eq!(post(a, &poll, body.as_bytes()).await.status, 200);
    // Everything queued comes in one response, \x1e-separated; the binary message is
    // `b` + base64 right after the packet that refers to it.
    let mut got = Vec::new();
    while got.len() < 5 {
        let r = get(a, &poll).await;
        assert_eq!(r.header("content-type"), Some("text/plain; charset=UTF-8"));
        got.extend(packets(&r).into_iter().filter(|p| p != "2"));
    }
    assert!(got[0].starts_with("40{"), "{got:?}");
    assert!(
        got[1].starts_with(r#"431[{"ok":true,"topic":"eio.t""#),
        "{got:?}"
    );
    let message = got
        .iter()
        .position(|p| p.starts_with("451-[\"message\""))
        .expect("the message");
    assert!(
        got[message].contains(r#""data":{"_placeholder":true,"num":0}"#),
        "{got:?}"
    );
    assert_eq!(got[message + 1], "bAQID");
    assert!(
        got.iter()
            .any(|p| p.starts_with(r#"432[{"ok":true,"topic":"eio.t","offset":1"#)),
        "{got:?}"
    );
    // A POST is answered `ok` (text/html, as the reference).
    let r = post(a, &poll, b"3").await;
    assert_eq!((r.status, r.text()), (200, "ok".into()));
    // A bad packet in a payload closes the session.
    assert_eq!(post(a, &poll, b"42[\"x\"]\x1e\x1e").await.status, 200);
    assert_eq!(get(a, &poll).await.status, 400);
    server.shutdown().await;
}

#[tokio::test]
async fn upgrade_probes_answers_the_pending_poll_with_noop_then_moves_to_websocket() {
    let (server, a) = server().await;
    let a = a.to_owned();
    let (sid, poll) = handshake(&a).await;
    assert_eq!(post(&a, &poll, b"40").await.status, 200);
    assert!(get(&a, &poll).await.text().starts_with("40{"));
    // A long-poll waits...
    let pending = {
        let (a, poll) = (a.clone(), poll.clone());
        tokio::spawn(async move { get(&a, &poll).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ... while a WebSocket probes the session: 2probe -> 3probe, and the poll gets NOOP.
    let t0 = Instant::now();
    let mut up = ws(
        &a,
        &format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
    )
    .await;
    send(&mut up, "2probe").await;
    assert_eq!(text(&mut up).await, "3probe");
    let r = pending.await.unwrap();
    assert_eq!((r.status, r.text()), (200, "6".into()));
    assert!(
        t0.elapsed() < Duration::from_millis(PING_MS),
        "NOOP before any PING"
    );
    // A second WebSocket cannot take the session while this one upgrades.
    let second = WebSocket::connect(
        format!("ws://{a}/socket.io/?EIO=4&transport=websocket&sid={sid}")
            .parse()
            .unwrap(),
    )
    .await;
    assert!(second.is_err(), "a second upgrade is refused");
    // UPGRADE: the session is on the WebSocket now.
    send(&mut up, "5").await;
    send(&mut up, r#"421["subscribe","up.t"]"#).await;
    // (The first PING may come first, on a slow machine: it goes over the WebSocket too.)
    let mut pinged = false;
    let reply = loop {
        let t = text(&mut up).await;
        if t != "2" {
            break t;
        }
        pinged = true;
        send(&mut up, "3").await;
    };
    assert!(reply.starts_with(r#"431[{"ok":true"#), "{reply}");
    // Polling with that sid is refused (transport mismatch: "Bad request").
    let r = get(&a, &poll).await;
    assert_eq!(
        (r.status, r.text()),
        (400, r#"{"code":3,"message":"Bad request"}"#.into())
    );
    // The heartbeat goes on over the WebSocket.
    if !pinged {
        assert_eq!(text(&mut up).await, "2");
        send(&mut up, "3").await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_second_long_poll_at_once_closes_the_session() {
    let (server, a) = server().await;
    let a = a.to_owned();
    let (_, poll) = handshake(&a).await;
    let first = {
        let (a, poll) = (a.clone(), poll.clone());
        tokio::spawn(async move { get(&a, &poll).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = get(&a, &poll).await;
    assert_eq!(second.status, 400);
    // The first poll is told the session closed; the session is gone.
    let first = first.await.unwrap();
    assert_eq!((first.status, first.text()), (200, "1".into()));
    let r = get(&a, &poll).await;
    assert_eq!(
        (r.status, r.text()),
        (400, r#"{"code":1,"message":"Session ID unknown"}"#.into())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn refusals_have_the_reference_servers_codes_and_messages() {
    let (server, a) = server().await;
    let a = a.as_str();
    let (_, poll) = handshake(a).await;
    let cases = [
        (
            "GET",
            "/socket.io/?EIO=4&transport=polling&sid=nope",
            1,
            "Session ID unknown",
        ),
        (
            "GET",
            "/socket.io/?EIO=4&transport=abc",
            0,
            "Transport unknown",
        ),
        ("GET", "/socket.io/?EIO=4", 0, "Transport unknown"),
        ("POST", HANDSHAKE, 2, "Bad handshake method"),
        (
            "GET",
            "/socket.io/?EIO=4&transport=websocket",
            3,
            "Bad request",
        ),
        (
            "GET",
            "/socket.io/?EIO=3&transport=polling",
            5,
            "Unsupported protocol version",
        ),
        (
            "GET",
            "/socket.io/?transport=polling",
            5,
            "Unsupported protocol version",
        ),
    ];
    for (method, path, code, message) in cases {
        let r = request(a, method, path, b"", &[]).await;
        assert_eq!(r.status, 400, "{method} {path}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        assert_eq!(
            r.text(),
            format!(r#"{{"code":{code},"message":"{message}"}}"#),
            "{path}"
        );
    }
    // The session those did not touch is fine.
    assert_eq!(post(a, &poll, b"40").await.status, 200);
    assert!(get(a, &poll).await.text().starts_with("40{"));
    server.shutdown().await;
}

#[tokio::test]
async fn max_payload_refuses_big_posts_and_closes_big_websocket_messages() {
    let server = server_with(|c| c.socketio.max_payload = 1000).await;
    let a = server.addrs().http.unwrap().to_string();
    let a = a.as_str();
    let (_, poll) = handshake(a).await;
    // The handshake announces the limit.
    let open = get(a, HANDSHAKE).await.text();
    assert!(open.contains(r#""maxPayload":1000"#), "{open}");
    // At the limit: accepted. One byte more: 413.
    let head = "40\x1e42[\"nonsense\",\"";
    let fits = format!("{head}{}\"]", "x".repeat(1000 - head.len() - 2));
    assert_eq!(fits.len(), 1000);
    assert_eq!(post(a, &poll, fits.as_bytes()).await.status, 200);
    let over = "x".repeat(1001);
    assert_eq!(post(a, &poll, over.as_bytes()).await.status, 413);
    // Over WebSocket: closed with 1009 (message too big).
    let mut w = ws(a, "/socket.io/?EIO=4&transport=websocket").await;
    text(&mut w).await;
    send(&mut w, &format!("4{}", "x".repeat(1001))).await;
    assert_eq!(closed(&mut w, WAIT).await, Some(1009));
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_pong_is_closed_after_the_ping_timeout() {
    let (server, a) = server().await;
    let a = a.as_str();
    // WebSocket: PING, no PONG: closed about pingTimeout later.
    let mut w = ws(a, "/socket.io/?EIO=4&transport=websocket").await;
    text(&mut w).await;
    send(&mut w, "40").await;
    text(&mut w).await;
    assert_eq!(text(&mut w).await, "2");
    let t0 = Instant::now();
    closed(&mut w, WAIT).await;
    let after = t0.elapsed();
    assert!(
        after >= Duration::from_millis(PING_TIMEOUT_MS - 100),
        "closed after {after:?}"
    );
    // Long-polling: the PING is fetched, no PONG: the session is gone after the timeout.
    let (_, poll) = handshake(a).await;
    assert_eq!(get(a, &poll).await.text(), "2");
    tokio::time::sleep(Duration::from_millis(PING_TIMEOUT_MS + 300)).await;
    let r = get(a, &poll).await;
    assert_eq!(
        (r.status, r.text()),
        (400, r#"{"code":1,"message":"Session ID unknown"}"#.into())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn permessage_deflate_is_negotiated_when_offered_and_allowed() {
    for (compression, expect) in [(true, true), (false, false)] {
        let server = server_with(|c| c.socketio.compression = compression).await;
        let a = server.addrs().http.unwrap().to_string();
        let req = format!(
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {a}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        );
        let r = http::exchange(&a, req.into_bytes(), 1, Duration::from_secs(2)).await;
        assert_eq!(r.status, 101);
        let ext = r.header("sec-websocket-extensions");
        assert_eq!(
            ext.is_some_and(|e| e.starts_with("permessage-deflate")),
            expect,
            "{ext:?}"
        );
        server.shutdown().await;
    }
}

/// Issue 15, findings 7 and 11: 20k `40/nsN,` CONNECTs on one socket opened 3,804 hub
/// sessions; a handshake `auth` with a number for `user` silently became anonymous. Now a
/// connection joins at most `socketio.max_namespaces`, and such an `auth` is refused.
#[tokio::test]
async fn namespaces_per_connection_are_bounded_and_a_malformed_auth_is_refused() {
    let s = server_with(|c| c.socketio.max_namespaces = 3).await;
    let a = s.addrs().http.unwrap().to_string();
    let (_sid, poll) = handshake(&a).await;
    let connects: Vec<String> = (0..5).map(|i| format!("40/ns{i},")).collect();
    assert_eq!(
        post(&a, &poll, connects.join("\x1e").as_bytes())
            .await
            .status,
        200
    );
    let mut got = Vec::new();
    while got.len() < 5 {
        got.extend(packets(&get(&a, &poll).await));
        got.retain(|p| p != "2");
    }
    let accepted = got.iter().filter(|p| p.starts_with("40/ns")).count();
    let refused: Vec<&String> = got.iter().filter(|p| p.starts_with("44/ns")).collect();
    assert_eq!(accepted, 3, "{got:?}");
    assert_eq!(refused.len(), 2, "{got:?}");
    assert!(refused[0].contains("too many namespaces on this connection (at most 3)"));
    assert_eq!(s.hub().stats().sessions, 3);

    let (_sid, poll) = handshake(&a).await;
    post(&a, &poll, br#"40{"user":1,"password":"x"}"#).await;
    let reply = get(&a, &poll).await.text();
    assert!(
        reply.starts_with("44{") && reply.contains("invalid auth"),
        "{reply}"
    );
}

/// Issue 15, findings 6 and 10: 20,000 polling handshakes from one client held +360 MiB, and
/// with `allowed_origins` set the Socket.IO WebSocket still accepted any origin. Now one
/// address holds at most `socketio.max_sessions_per_ip` sessions, and the one origin policy
/// applies to Socket.IO's WebSocket as to every other.
#[tokio::test]
async fn one_address_has_a_share_of_sessions_and_foreign_origins_are_refused() {
    let s = server_with(|c| {
        c.socketio.max_sessions_per_ip = 3;
        c.websocket.allowed_origins = vec!["https://app.example".into()];
    })
    .await;
    let a = s.addrs().http.unwrap().to_string();
    let ws_path = "/socket.io/?EIO=4&transport=websocket";
    let evil = request(
        &a,
        "GET",
        ws_path,
        b"",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
            ("Origin", "http://evil.example"),
        ],
    )
    .await;
    assert_eq!(evil.status, 403);
    for _ in 0..3 {
        handshake(&a).await;
    }
    let refused = get(&a, HANDSHAKE).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
}
