//! Socket.IO at the packet level over real sockets: the conformance fixture
//! (`examples/socketio_conformance.rs`) against the checks of the Engine.IO and Socket.IO
//! protocol test suites (protocol 4 / 5), and the product server's answers to bad input.

use futures::SinkExt;
use std::time::Duration;
use tidings_server::{Server, ServerConfig};
use tidings_testkit::http::{self, Response};
use tidings_testkit::Process;
use yawc::{Frame, OpCode, WebSocket};

type Ws = yawc::TcpWebSocket;

const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Clients: raw HTTP/1.1 for long-polling, yawc for WebSocket
// ---------------------------------------------------------------------------------------

/// One HTTP/1.1 request (`Connection: close`), read until the server closes.
async fn http(
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

async fn ws(addr: &str, path: &str) -> Ws {
    WebSocket::connect(format!("ws://{addr}{path}").parse().unwrap())
        .await
        .expect("websocket connect")
}

/// The next text or binary frame (pings `2` are answered and skipped unless `keep_pings`).
async fn next(ws: &mut Ws) -> Frame {
    loop {
        let f = tokio::time::timeout(WAIT, ws.next_frame())
            .await
            .expect("a frame in time")
            .expect("connection open");
        match f.opcode() {
            OpCode::Text if f.payload().as_ref() == b"2" => {
                ws.send(Frame::text("3")).await.unwrap();
            }
            OpCode::Text | OpCode::Binary => return f,
            _ => {}
        }
    }
}

async fn next_text(ws: &mut Ws) -> String {
    let f = next(ws).await;
    assert_eq!(f.opcode(), OpCode::Text, "expected a text frame");
    String::from_utf8(f.payload().to_vec()).unwrap()
}

async fn send(ws: &mut Ws, text: &str) {
    ws.send(Frame::text(text.to_owned())).await.unwrap();
}

/// Waits until the server ends the connection (an Engine.IO close packet may come first).
async fn closed(ws: &mut Ws) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next_frame()).await {
            Err(_) => panic!("the server did not close the connection"),
            Ok(Err(e)) => {
                eprintln!("closed: {e:?}");
                return;
            }
            Ok(Ok(f)) if f.opcode() == OpCode::Close => return,
            Ok(Ok(f)) if f.opcode() == OpCode::Text && f.payload().as_ref() == b"2" => {
                let _ = ws.send(Frame::text("3")).await;
            }
            Ok(Ok(f)) => eprintln!("closing: {:?} {:?}", f.opcode(), f.payload()),
        }
    }
}

/// Engine.IO handshake over WebSocket, then Socket.IO CONNECT to `/`; returns after the
/// CONNECT reply (and the fixture's `auth` event when `fixture`).
async fn sio_connect(addr: &str, fixture: bool) -> Ws {
    let mut w = ws(addr, "/socket.io/?EIO=4&transport=websocket").await;
    assert!(next_text(&mut w).await.starts_with('0'));
    send(&mut w, "40").await;
    assert!(next_text(&mut w).await.starts_with("40{"));
    if fixture {
        assert_eq!(next_text(&mut w).await, r#"42["auth",{}]"#);
    }
    w
}

fn open_packet(text: &str) -> serde_json::Value {
    let body = text.strip_prefix('0').expect("an open packet");
    serde_json::from_str(body).expect("open packet JSON")
}

// ---------------------------------------------------------------------------------------
// The conformance fixture
// ---------------------------------------------------------------------------------------

/// The fixture example, started on a free port; killed on drop. Its address is
/// `addr(FIXTURE)`.
fn fixture() -> Process {
    tidings_testkit::start_example("tidings-server", FIXTURE, &["127.0.0.1:0"])
}

const FIXTURE: &str = "socketio_conformance";

#[tokio::test]
async fn engineio_handshake_heartbeat_close_and_upgrade() {
    let fx = fixture();
    let a = fx.addr(FIXTURE);
    // Long-polling handshake.
    let r = http(a, "GET", "/socket.io/?EIO=4&transport=polling", b"", &[]).await;
    assert_eq!(r.status, 200);
    let open = open_packet(&r.text());
    let mut keys: Vec<&String> = open.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ]
    );
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(
        (
            &open["pingInterval"],
            &open["pingTimeout"],
            &open["maxPayload"]
        ),
        (&300.into(), &200.into(), &1_000_000.into())
    );
    // Invalid EIO, transport, method.
    for path in [
        "/socket.io/?transport=polling",
        "/socket.io/?EIO=abc&transport=polling",
        "/socket.io/?EIO=4",
        "/socket.io/?EIO=4&transport=abc",
    ] {
        assert_eq!(http(a, "GET", path, b"", &[]).await.status, 400, "{path}");
    }
    for method in ["POST", "PUT"] {
        let r = http(a, method, "/socket.io/?EIO=4&transport=polling", b"", &[]).await;
        assert_eq!(r.status, 400, "{method}");
    }
    // WebSocket handshake: no upgrades.
    let mut w = ws(a, "/socket.io/?EIO=4&transport=websocket").await;
    let open = open_packet(&next_text(&mut w).await);
    assert_eq!(open["upgrades"], serde_json::json!([]));
    // Heartbeat over long-polling: the server pings, the client pongs.
    let sid = {
        let r = http(a, "GET", "/socket.io/?EIO=4&transport=polling", b"", &[]).await;
        open_packet(&r.text())["sid"].as_str().unwrap().to_owned()
    };
    let poll = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    for _ in 0..2 {
        let r = http(a, "GET", &poll, b"", &[]).await;
        assert_eq!((r.status, r.text()), (200, "2".into()));
        assert_eq!(http(a, "POST", &poll, b"3", &[]).await.status, 200);
    }
    // No pong: the session is closed after ping interval + timeout.
    let r = http(a, "GET", &poll, b"", &[]).await;
    assert_eq!(r.text(), "2");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(http(a, "GET", &poll, b"", &[]).await.status, 400);
    // Close over long-polling.
    let sid = {
        let r = http(a, "GET", "/socket.io/?EIO=4&transport=polling", b"", &[]).await;
        open_packet(&r.text())["sid"].as_str().unwrap().to_owned()
    };
    let poll = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    assert_eq!(http(a, "POST", &poll, b"1", &[]).await.status, 200);
    assert_eq!(http(a, "GET", &poll, b"", &[]).await.status, 400);
    // Close over WebSocket.
    send(&mut w, "1").await;
    closed(&mut w).await;
    // Upgrade from long-polling, after which polling with that sid is refused.
    let sid = {
        let r = http(a, "GET", "/socket.io/?EIO=4&transport=polling", b"", &[]).await;
        open_packet(&r.text())["sid"].as_str().unwrap().to_owned()
    };
    let mut up = ws(
        a,
        &format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
    )
    .await;
    send(&mut up, "2probe").await;
    assert_eq!(next_text(&mut up).await, "3probe");
    send(&mut up, "5").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let poll = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    assert_eq!(http(a, "GET", &poll, b"", &[]).await.status, 400);
    // A second WebSocket with the same sid is refused.
    let second = WebSocket::connect(
        format!("ws://{a}/socket.io/?EIO=4&transport=websocket&sid={sid}")
            .parse()
            .unwrap(),
    )
    .await;
    if let Ok(mut second) = second {
        closed(&mut second).await;
    }
    // The Engine.IO echo.
    let mut e = ws(a, "/engine.io/?EIO=4&transport=websocket").await;
    assert!(next_text(&mut e).await.starts_with('0'));
    send(&mut e, "4hello").await;
    assert_eq!(next_text(&mut e).await, "4hello");
    e.send(Frame::binary(vec![1u8, 2, 3])).await.unwrap();
    let f = next(&mut e).await;
    assert_eq!(
        (f.opcode(), f.payload().as_ref()),
        (OpCode::Binary, &[1u8, 2, 3][..])
    );
}

#[tokio::test]
async fn socketio_connect_namespaces_and_disconnect() {
    let fx = fixture();
    let a = fx.addr(FIXTURE);
    let eio = "/socket.io/?EIO=4&transport=websocket";
    // Main namespace, without and with a payload.
    for (connect, auth) in [
        ("40", r#"42["auth",{}]"#),
        (r#"40{"token":"123"}"#, r#"42["auth",{"token":"123"}]"#),
    ] {
        let mut w = ws(a, eio).await;
        next_text(&mut w).await;
        send(&mut w, connect).await;
        let reply = next_text(&mut w).await;
        let handshake: serde_json::Value = serde_json::from_str(&reply[2..]).unwrap();
        assert!(reply.starts_with("40"));
        assert_eq!(handshake.as_object().unwrap().len(), 1);
        assert!(handshake["sid"].is_string());
        assert_eq!(next_text(&mut w).await, auth);
    }
    // A custom namespace.
    for (connect, auth) in [
        ("40/custom,", r#"42/custom,["auth",{}]"#),
        (
            r#"40/custom,{"token":"abc"}"#,
            r#"42/custom,["auth",{"token":"abc"}]"#,
        ),
    ] {
        let mut w = ws(a, eio).await;
        next_text(&mut w).await;
        send(&mut w, connect).await;
        let reply = next_text(&mut w).await;
        assert!(reply.starts_with("40/custom,{\"sid\":"), "{reply}");
        assert_eq!(next_text(&mut w).await, auth);
    }
    // An unknown namespace: CONNECT_ERROR, the connection stays usable.
    let mut w = ws(a, eio).await;
    next_text(&mut w).await;
    send(&mut w, "40/random").await;
    assert_eq!(
        next_text(&mut w).await,
        r#"44/random,{"message":"Invalid namespace"}"#
    );
    send(&mut w, "40").await;
    assert!(next_text(&mut w).await.starts_with("40{"));
    // An invalid handshake closes.
    let mut w = ws(a, eio).await;
    next_text(&mut w).await;
    send(&mut w, "4abc").await;
    closed(&mut w).await;
    // Leaving the main namespace (the last one) closes.
    let mut w = sio_connect(a, true).await;
    send(&mut w, "41").await;
    closed(&mut w).await;
    // Leaving a custom namespace keeps the main one.
    let mut w = sio_connect(a, true).await;
    send(&mut w, "40/custom").await;
    next_text(&mut w).await;
    next_text(&mut w).await;
    send(&mut w, "41/custom").await;
    send(&mut w, r#"42["message","message to main namespace"]"#).await;
    assert_eq!(
        next_text(&mut w).await,
        r#"42["message-back","message to main namespace"]"#
    );
    // No CONNECT within the connect timeout (1 s): closed.
    let mut w = ws(a, eio).await;
    next_text(&mut w).await;
    let t0 = std::time::Instant::now();
    closed(&mut w).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn socketio_events_acks_binary_and_bad_formats() {
    let fx = fixture();
    let a = fx.addr(FIXTURE);
    let mut w = sio_connect(a, true).await;
    send(&mut w, r#"42["message",1,"2",{"3":[true]}]"#).await;
    assert_eq!(
        next_text(&mut w).await,
        r#"42["message-back",1,"2",{"3":[true]}]"#
    );
    send(&mut w, r#"42456["message-with-ack",1,"2",{"3":[false]}]"#).await;
    assert_eq!(next_text(&mut w).await, r#"43456[1,"2",{"3":[false]}]"#);
    let placeholders = r#"{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}"#;
    for (packet, expect) in [
        (
            format!(r#"452-["message",{placeholders}]"#),
            format!(r#"452-["message-back",{placeholders}]"#),
        ),
        (
            format!(r#"452-789["message-with-ack",{placeholders}]"#),
            format!("462-789[{placeholders}]"),
        ),
    ] {
        send(&mut w, &packet).await;
        w.send(Frame::binary(vec![1u8, 2, 3])).await.unwrap();
        w.send(Frame::binary(vec![4u8, 5, 6])).await.unwrap();
        assert_eq!(next_text(&mut w).await, expect);
        assert_eq!(next(&mut w).await.payload().as_ref(), &[1, 2, 3]);
        assert_eq!(next(&mut w).await.payload().as_ref(), &[4, 5, 6]);
    }
    // Over long-polling too: binary comes base64-encoded (`b...`) in the payload.
    let r = http(a, "GET", "/socket.io/?EIO=4&transport=polling", b"", &[]).await;
    let sid = open_packet(&r.text())["sid"].as_str().unwrap().to_owned();
    let poll = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    assert_eq!(http(a, "POST", &poll, b"40", &[]).await.status, 200);
    // Packets of a payload are separated by \x1e; pings (`2`) may come along.
    let packets = |r: Response| -> Vec<String> {
        r.text()
            .split('\x1e')
            .filter(|p| *p != "2")
            .map(str::to_owned)
            .collect()
    };
    let got = packets(http(a, "GET", &poll, b"", &[]).await);
    assert!(
        got[0].starts_with("40{") && got[1] == r#"42["auth",{}]"#,
        "{got:?}"
    );
    let body = "451-[\"message\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID";
    assert_eq!(
        http(a, "POST", &poll, body.as_bytes(), &[]).await.status,
        200
    );
    let got = packets(http(a, "GET", &poll, b"", &[]).await);
    assert_eq!(
        got,
        [
            "451-[\"message-back\",{\"_placeholder\":true,\"num\":0}]",
            "bAQID"
        ]
    );
    // Each malformed packet closes that connection only.
    let mut bystander = sio_connect(a, true).await;
    for bad in [
        "4abc",
        "42{}",
        r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#,
        "9",
        "42[1]",
    ] {
        let mut w = sio_connect(a, true).await;
        send(&mut w, bad).await;
        closed(&mut w).await;
    }
    send(&mut bystander, r#"42["message","still here"]"#).await;
    assert_eq!(
        next_text(&mut bystander).await,
        r#"42["message-back","still here"]"#
    );
}

// ---------------------------------------------------------------------------------------
// The product server (hub bridge)
// ---------------------------------------------------------------------------------------

/// The server under test, HTTP only.
async fn server_with(f: impl FnOnce(&mut ServerConfig)) -> Server {
    tidings_testkit::server().http().with(f).start().await
}

#[tokio::test]
async fn bad_input_gets_the_protocols_own_errors() {
    let server = server_with(|c| c.socketio.max_payload = 1000).await;
    let a = server.addrs().http.unwrap().to_string();
    let a = a.as_str();
    // A healthy subscriber that must not notice anything.
    let mut good = sio_connect(a, false).await;
    send(&mut good, r#"421["subscribe","t.bad"]"#).await;
    assert!(next_text(&mut good).await.starts_with(r#"431[{"ok":true"#));
    // Unknown namespaces.
    let mut w = ws(a, "/socket.io/?EIO=4&transport=websocket").await;
    next_text(&mut w).await;
    for ns in ["/a.b", "/a/b", "/x y"] {
        send(&mut w, &format!("40{ns},")).await;
        assert_eq!(
            next_text(&mut w).await,
            format!(r#"44{ns},{{"message":"Invalid namespace"}}"#)
        );
    }
    // Unknown session id.
    let r = http(
        a,
        "GET",
        "/socket.io/?EIO=4&transport=polling&sid=nope",
        b"",
        &[],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Session ID unknown"), "{}", r.text());
    // Oversize long-polling body: 413.
    let r = http(a, "GET", "/socket.io/?EIO=4&transport=polling", b"", &[]).await;
    let sid = open_packet(&r.text())["sid"].as_str().unwrap().to_owned();
    let poll = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let big = format!("42[\"publish\",\"t.bad\",\"{}\"]", "x".repeat(2000));
    assert_eq!(
        http(a, "POST", &poll, big.as_bytes(), &[]).await.status,
        413
    );
    // Oversize WebSocket message: closed.
    let mut w = sio_connect(a, false).await;
    send(&mut w, &big).await;
    closed(&mut w).await;
    // Malformed packets: closed.
    for bad in [
        "42{}",
        "7",
        r#"42["publish","t.bad",{"_placeholder":true,"num":0}"#,
    ] {
        let mut w = sio_connect(a, false).await;
        send(&mut w, bad).await;
        closed(&mut w).await;
    }
    // Bad requests answer in the ack or an `error` event; the connection lives on.
    let mut w = sio_connect(a, false).await;
    send(&mut w, r#"427["publish","bad..topic","x"]"#).await;
    let reply = next_text(&mut w).await;
    assert!(
        reply.starts_with(r#"437[{"ok":false,"error":"bad_request""#),
        "{reply}"
    );
    send(&mut w, r#"42["nonsense"]"#).await;
    let reply = next_text(&mut w).await;
    assert!(
        reply.starts_with(r#"42["error",{"event":"nonsense","error":"bad_request""#),
        "{reply}"
    );
    send(&mut w, r#"428["publish","t.bad","still fine"]"#).await;
    assert!(next_text(&mut w).await.starts_with(r#"438[{"ok":true"#));
    // ... which the healthy subscriber got, and nothing else.
    let msg = next_text(&mut good).await;
    assert!(
        msg.starts_with(r#"42["message",{"topic":"t.bad","offset":1"#),
        "{msg}"
    );
    assert!(msg.contains(r#""data":"still fine""#), "{msg}");
    server.shutdown().await;
}

#[tokio::test]
async fn auth_namespaces_cors_and_shutdown_goodbye() {
    let server = server_with(|c| {
        let file = toml_auth();
        c.socketio = file.socketio;
        c.hub = file.hub;
    })
    .await;
    let a = server.addrs().http.unwrap().to_string();
    let a = a.as_str();
    let mut w = ws(a, "/socket.io/?EIO=4&transport=websocket").await;
    next_text(&mut w).await;
    send(&mut w, r#"40{"user":"alice","password":"wrong"}"#).await;
    assert_eq!(
        next_text(&mut w).await,
        r#"44{"message":"unknown user or wrong password","data":{"code":"unauthorized"}}"#
    );
    send(&mut w, r#"40/chat,{"user":"alice","password":"secret"}"#).await;
    assert!(next_text(&mut w).await.starts_with(r#"40/chat,{"sid":"#));
    // In /chat, `lobby` is the topic chat.lobby.
    send(&mut w, r#"42/chat,1["subscribe","lobby"]"#).await;
    assert!(next_text(&mut w)
        .await
        .starts_with(r#"43/chat,1[{"ok":true,"topic":"lobby""#));
    send(&mut w, r#"42/chat,2["publish","lobby",{"n":1}]"#).await;
    let mut got = vec![next_text(&mut w).await, next_text(&mut w).await];
    got.sort();
    assert!(
        got[0].starts_with(r#"42/chat,["message",{"topic":"lobby","offset":1,"#),
        "{got:?}"
    );
    assert!(
        got[0].contains(r#""data":{"n":1}},"1:chat.lobby"]"#),
        "{got:?}"
    );
    assert!(
        got[1].starts_with(r#"43/chat,2[{"ok":true,"topic":"lobby","offset":1"#),
        "{got:?}"
    );
    // Anonymous may not publish there.
    send(&mut w, "40").await;
    assert!(next_text(&mut w).await.starts_with("40{"));
    send(&mut w, r#"423["publish","chat.lobby","x"]"#).await;
    assert!(next_text(&mut w)
        .await
        .starts_with(r#"433[{"ok":false,"error":"forbidden""#));
    // CORS: preflight and a handshake from an allowed origin; nothing for others.
    let r = http(
        a,
        "OPTIONS",
        "/socket.io/?EIO=4&transport=polling",
        b"",
        &[
            ("Origin", "http://app.example"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://app.example")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type")
    );
    let r = http(
        a,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        b"",
        &[("Origin", "http://app.example")],
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://app.example")
    );
    let r = http(
        a,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        b"",
        &[("Origin", "http://evil.example")],
    )
    .await;
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (200, None)
    );
    // Shutdown: every connection is closed, connected or not.
    let mut idle = ws(a, "/socket.io/?EIO=4&transport=websocket").await;
    next_text(&mut idle).await;
    let stuck = server.shutdown().await;
    assert_eq!(stuck, 0);
    closed(&mut w).await;
    closed(&mut idle).await;
}

fn toml_auth() -> ServerConfig {
    let text = r#"
        [socketio]
        cors_origins = ["http://app.example"]
        [[hub.auth.users]]
        name = "alice"
        password = "secret"
        publish = ["chat.>"]
        subscribe = [">"]
        [hub.auth.anonymous]
        subscribe = [">"]
    "#;
    toml::from_str(text).unwrap()
}
