//! Signed tokens (JWT) on every protocol that carries them, over real sockets: a valid token
//! works with exactly its rights, bad tokens are refused by kind, an expired identity closes
//! the connection with the protocol's own error, and a refresh keeps it open (docs/security.md).

use futures::SinkExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tidings_server::{Server, ServerConfig};
use tidings_testkit::http::{self, ALL};
use tidings_testkit::line::Line;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use yawc::{Frame, OpCode, WebSocket};

const SECRET: &str = "integration-test-secret-of-32-bytes!";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token for `sub` that may publish to `chat.*` and subscribe within `chat.>`, valid for
/// `ttl` seconds.
fn token(sub: &str, ttl: i64) -> String {
    sign(
        SECRET,
        json!({"sub": sub, "exp": now() as i64 + ttl,
            "tidings": {"publish": ["chat.*"], "subscribe": ["chat.>"]}}),
    )
}

/// A token for `sub` with the given rights, valid for `ttl` seconds.
fn token_with(sub: &str, ttl: i64, publish: &[&str], subscribe: &[&str]) -> String {
    sign(
        SECRET,
        json!({"sub": sub, "exp": now() as i64 + ttl,
            "tidings": {"publish": publish, "subscribe": subscribe}}),
    )
}

fn sign(secret: &str, claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Users configured (so anonymous may do nothing), tokens under `SECRET`, no leeway.
async fn server() -> Server {
    tidings_testkit::server()
        .http()
        .tcp()
        .stomp()
        .with(|c: &mut ServerConfig| {
            c.auth.jwt.hmac_secret = Some(SECRET.into());
            c.auth.jwt.leeway_secs = 0;
            c.hub.auth.users.push(tidings_core::UserConfig {
                name: "alice".into(),
                password: Some("pw".into()),
                password_hash: None,
                rights: Default::default(),
            });
        })
        .start()
        .await
}

type Ws = yawc::TcpWebSocket;

async fn ws(server: &Server, path: &str) -> Ws {
    let url = format!("ws://{}{path}", server.addrs().http.unwrap());
    let mut w = WebSocket::connect(url.parse().unwrap()).await.unwrap();
    assert_eq!(next_json(&mut w).await["type"], "hello");
    w
}

async fn next_frame(w: &mut Ws) -> Frame {
    tokio::time::timeout(Duration::from_secs(6), w.next_frame())
        .await
        .expect("a frame in time")
        .expect("open")
}

async fn next_json(w: &mut Ws) -> Value {
    loop {
        let f = next_frame(w).await;
        if f.opcode() == OpCode::Text {
            return serde_json::from_slice(f.payload()).unwrap();
        }
    }
}

async fn ask(w: &mut Ws, v: Value) -> Value {
    w.send(Frame::text(v.to_string())).await.unwrap();
    next_json(w).await
}

#[tokio::test]
async fn ws_token_on_the_url_or_in_auth_gives_exactly_its_rights() {
    let server = server().await;
    let mut w = ws(&server, &format!("/ws?token={}", token("ann", 60))).await;
    let ok = ask(
        &mut w,
        json!({"op":"subscribe","id":1,"topic":"chat.lobby"}),
    )
    .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let no = ask(&mut w, json!({"op":"subscribe","id":2,"topic":"news.x"})).await;
    assert_eq!(no["code"], "forbidden", "{no}");
    let no = ask(
        &mut w,
        json!({"op":"publish","id":3,"topic":"chat.a.b","text":"x","ack":true}),
    )
    .await;
    assert_eq!(no["code"], "forbidden", "{no}");

    let mut w = ws(&server, "/ws").await;
    let ok = ask(
        &mut w,
        json!({"op":"auth","id":1,"token": token("ann", 60)}),
    )
    .await;
    assert_eq!(ok["user"], "ann", "{ok}");
    assert!(ok["expires"].as_u64().unwrap() > now());
    let ok = ask(
        &mut w,
        json!({"op":"publish","id":2,"topic":"chat.a","text":"x","ack":true}),
    )
    .await;
    assert_eq!(ok["type"], "ok", "{ok}");

    // A refused token on the URL is a 401 before any upgrade.
    let bad = token("ann", -10);
    let r = http::exchange(
        server.addrs().http.unwrap(),
        http::request_1_0(
            "GET",
            &format!("/ws?token={bad}"),
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            "",
        ),
        ALL,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("expired"), "{}", r.text());
}

#[tokio::test]
async fn each_bad_token_is_refused_by_kind_and_counted() {
    let server = server().await;
    let other = sign(
        "another-secret-also-at-least-32-bytes",
        json!({"sub":"ann","exp": now() + 60}),
    );
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none"}"#),
        b64(&json!({"sub":"ann","exp": now() + 60}).to_string())
    );
    for (t, says) in [
        ("garbage".to_owned(), "malformed"),
        (other, "bad signature"),
        (token("ann", -5), "expired"),
        (none, "algorithm not allowed"),
    ] {
        // A connection each: the third failure on one closes it.
        let mut w = ws(&server, "/ws").await;
        let r = ask(&mut w, json!({"op":"auth","token": t})).await;
        assert_eq!(r["code"], "unauthorized", "{r}");
        assert!(
            r["message"].as_str().unwrap().contains(says),
            "{r} should say {says}"
        );
    }
    let mut w = ws(&server, "/ws").await;
    let r = ask(&mut w, json!({"op":"auth","token": sign(SECRET, json!({"sub":"ann","exp": now() + 60, "nbf": now() + 100}))})).await;
    assert!(
        r["message"].as_str().unwrap().contains("not yet valid"),
        "{r}"
    );
    let metrics = http::exchange(
        server.addrs().http.unwrap(),
        http::request_1_0(
            "GET",
            "/metrics",
            "Authorization: Basic YWxpY2U6cHc=\r\n",
            "",
        ),
        ALL,
        Duration::from_secs(5),
    )
    .await
    .text();
    let failed = metrics
        .lines()
        .find(|l| l.starts_with("tidings_login_failures_total "))
        .unwrap_or_else(|| panic!("no failure count in {metrics}"));
    assert!(failed.ends_with(" 5"), "{failed}");
    for reason in [
        "malformed",
        "bad_signature",
        "expired",
        "algorithm_not_allowed",
        "not_yet_valid",
    ] {
        let row = format!("tidings_token_refusals_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&row), "{row} in {metrics}");
    }
    // Tokens are credentials: never in what the server shows.
    assert!(!metrics.contains("eyJ"), "{metrics}");
}

#[tokio::test]
async fn ws_expiry_closes_with_4401_unless_refreshed() {
    let server = server().await;
    let mut w = ws(&server, "/ws").await;
    let r = ask(&mut w, json!({"op":"auth","token": token("ann", 2)})).await;
    assert_eq!(r["type"], "ok");
    let r = ask(&mut w, json!({"op":"refresh","token": token("ann", 60)})).await;
    assert_eq!(r["type"], "ok", "{r}");
    // A refresh for someone else is refused.
    let r = ask(&mut w, json!({"op":"refresh","token": token("bob", 60)})).await;
    assert!(r["message"].as_str().unwrap().contains("same user"), "{r}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = ask(&mut w, json!({"op":"ping","id":9})).await;
    assert_eq!(r["type"], "pong", "refreshed: still open");

    let mut w = ws(&server, "/ws").await;
    let r = ask(&mut w, json!({"op":"auth","token": token("ann", 1)})).await;
    assert_eq!(r["type"], "ok");
    let err = next_json(&mut w).await;
    assert!(
        err["message"].as_str().unwrap().contains("expired"),
        "{err}"
    );
    let f = next_frame(&mut w).await;
    assert_eq!(f.opcode(), OpCode::Close);
    assert_eq!(u16::from(f.close_code().unwrap()), 4401);
}

#[tokio::test]
async fn http_api_and_fallbacks_take_bearer_and_query_tokens() {
    let server = server().await;
    let addr = server.addrs().http.unwrap();
    let t = token("ann", 60);
    let get = |target: String, headers: String| async move {
        http::exchange(
            addr,
            http::request_1_0("GET", &target, &headers, ""),
            4096,
            Duration::from_secs(2),
        )
        .await
    };
    let bearer = format!("Authorization: Bearer {t}\r\n");
    let post = http::exchange(
        addr,
        http::request_1_0("POST", "/api/publish/chat.a", &bearer, "hi"),
        ALL,
        Duration::from_secs(5),
    )
    .await;
    assert!(post.status < 300, "{}", post.text());
    let post = http::exchange(
        addr,
        http::request_1_0("POST", "/api/publish/news.a", &bearer, "hi"),
        ALL,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(post.status, 403, "{}", post.text());
    let bad = "Authorization: Bearer nonsense\r\n".to_owned();
    let post = http::exchange(
        addr,
        http::request_1_0("POST", "/api/publish/chat.a", &bad, "hi"),
        ALL,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(post.status, 401, "{}", post.text());

    for path in ["/sse", "/poll", "/stream"] {
        let r = get(
            format!("{path}?topic=chat.a&timeout=0&token={t}"),
            String::new(),
        )
        .await;
        assert_eq!(r.status, 200, "{path} ?token= {}", r.text());
        let r = get(format!("{path}?topic=chat.a&timeout=0"), bearer.clone()).await;
        assert_eq!(r.status, 200, "{path} Bearer {}", r.text());
        let r = get(
            format!("{path}?topic=news.a&timeout=0&token={t}"),
            String::new(),
        )
        .await;
        assert_eq!(r.status, 403, "{path} outside its rights {}", r.text());
        let r = get(format!("{path}?topic=chat.a&token=nonsense"), String::new()).await;
        assert_eq!(r.status, 401, "{path} bad token {}", r.text());
    }
}

#[tokio::test]
async fn line_auth_token_then_expiry_closes_with_err_unless_renewed() {
    let server = server().await;
    let tcp = server.addrs().tcp.unwrap();
    let mut l = Line::open(tcp).await;
    let r = l.ask(&format!("AUTH TOKEN {}", token("ann", 2))).await;
    assert!(r.starts_with("+OK AUTH ann "), "{r}");
    let r = l.ask("PUB news.x hi").await;
    assert!(r.starts_with("-ERR"), "{r}");
    let r = l.ask(&format!("AUTH TOKEN {}", token("ann", 60))).await;
    assert!(r.starts_with("+OK AUTH ann"), "{r}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = l.ask("PING 1").await;
    assert!(
        r.starts_with("PONG") || r.starts_with("+PONG"),
        "renewed: {r}"
    );
    let r = l.ask("AUTH TOKEN nonsense").await;
    assert!(r.starts_with("-ERR AUTH: token refused: malformed"), "{r}");

    let mut l = Line::open(tcp).await;
    let r = l.ask(&format!("AUTH TOKEN {}", token("ann", 1))).await;
    assert!(r.starts_with("+OK"), "{r}");
    let r = tokio::time::timeout(Duration::from_secs(5), l.read())
        .await
        .unwrap();
    assert!(r.starts_with("-ERR token expired"), "{r}");
}

/// One STOMP CONNECT over TCP; the reply frame's text.
async fn stomp_connect(server: &Server, headers: &str) -> String {
    let mut s = TcpStream::connect(server.addrs().stomp.unwrap())
        .await
        .unwrap();
    s.write_all(format!("CONNECT\naccept-version:1.2\nhost:x\n{headers}\n\0").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn stomp_takes_a_bearer_header_or_a_passcode_without_login() {
    let server = server().await;
    let t = token("ann", 60);
    let r = stomp_connect(&server, &format!("Authorization:Bearer {t}\n")).await;
    assert!(r.starts_with("CONNECTED"), "{r}");
    let r = stomp_connect(&server, &format!("passcode:{t}\n")).await;
    assert!(r.starts_with("CONNECTED"), "{r}");
    let r = stomp_connect(&server, "passcode:nonsense\n").await;
    assert!(r.starts_with("ERROR"), "{r}");
    assert!(r.contains("token refused: malformed"), "{r}");
    // login + passcode is still a password.
    let r = stomp_connect(&server, "login:alice\npasscode:pw\n").await;
    assert!(r.starts_with("CONNECTED"), "{r}");
}

#[tokio::test]
async fn socketio_handshake_auth_takes_a_token() {
    let server = server().await;
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket",
        server.addrs().http.unwrap()
    );
    let mut w: Ws = WebSocket::connect(url.parse().unwrap()).await.unwrap();
    let text = |f: Frame| String::from_utf8_lossy(f.payload()).into_owned();
    assert!(text(next_frame(&mut w).await).starts_with('0'));
    w.send(Frame::text("40{\"token\":\"nonsense\"}"))
        .await
        .unwrap();
    let r = text(next_frame(&mut w).await);
    assert!(
        r.starts_with("44") && r.contains("token refused: malformed"),
        "{r}"
    );
    w.send(Frame::text(format!(
        "40{{\"token\":\"{}\"}}",
        token("ann", 60)
    )))
    .await
    .unwrap();
    let r = text(next_frame(&mut w).await);
    assert!(r.starts_with("40{\"sid\""), "{r}");
    w.send(Frame::text("421[\"subscribe\",\"news.x\"]"))
        .await
        .unwrap();
    let r = text(next_frame(&mut w).await);
    assert!(r.contains("forbidden"), "{r}");
}

#[tokio::test]
async fn ws_refresh_narrows_rights_and_ends_what_they_no_longer_allow() {
    let server = server().await;
    let wide = token_with("ann", 60, &["chat.*"], &["chat.>", "news.>"]);
    let mut w = ws(&server, &format!("/ws?token={wide}")).await;
    for (id, topic) in [(1, "chat.lobby"), (2, "news.world")] {
        let r = ask(&mut w, json!({"op":"subscribe","id":id,"topic":topic})).await;
        assert_eq!(r["type"], "ok", "{r}");
    }
    let narrow = token_with("ann", 60, &[], &["chat.>"]);
    w.send(Frame::text(
        json!({"op":"refresh","id":3,"token": narrow}).to_string(),
    ))
    .await
    .unwrap();
    let ended = next_json(&mut w).await;
    assert_eq!(ended["type"], "error", "{ended}");
    assert_eq!(ended["code"], "forbidden", "{ended}");
    assert_eq!(ended["topic"], "news.world", "{ended}");
    let ok = next_json(&mut w).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    // The narrower rights hold: no more publishing, news is gone, chat stays.
    let no = ask(
        &mut w,
        json!({"op":"publish","id":4,"topic":"chat.a","text":"x","ack":true}),
    )
    .await;
    assert_eq!(no["code"], "forbidden", "{no}");
    let mut l = Line::open(server.addrs().tcp.unwrap()).await;
    let all = token_with("bob", 60, &[">"], &[]);
    assert!(l.ask(&format!("AUTH TOKEN {all}")).await.starts_with("+OK"));
    assert!(l.ask("PUB news.world gone").await.starts_with("+OK"));
    assert!(l.ask("PUB chat.lobby kept").await.starts_with("+OK"));
    let m = next_json(&mut w).await;
    assert_eq!(m["topic"], "chat.lobby", "only chat is delivered: {m}");
}

#[tokio::test]
async fn line_auth_token_again_ends_subscriptions_outside_the_new_rights() {
    let server = server().await;
    let mut l = Line::open(server.addrs().tcp.unwrap()).await;
    let wide = token_with("ann", 60, &[], &["chat.>", "news.>"]);
    assert!(l
        .ask(&format!("AUTH TOKEN {wide}"))
        .await
        .starts_with("+OK"));
    assert!(l.ask("SUB news.world").await.starts_with("+OK"));
    let narrow = token_with("ann", 60, &[], &["chat.>"]);
    let r = l.ask(&format!("AUTH TOKEN {narrow}")).await;
    assert!(
        r.starts_with("-ERR SUB news.world: subscription ended"),
        "{r}"
    );
    let r = l.read().await;
    assert!(r.starts_with("+OK AUTH ann"), "{r}");
}

#[tokio::test]
async fn stomp_connection_ends_with_an_error_frame_when_its_token_expires() {
    let server = server().await;
    let mut s = TcpStream::connect(server.addrs().stomp.unwrap())
        .await
        .unwrap();
    let t = token("ann", 1);
    s.write_all(
        format!("CONNECT\naccept-version:1.2\nhost:x\nAuthorization:Bearer {t}\n\n\0").as_bytes(),
    )
    .await
    .unwrap();
    let mut all = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("closed in time")
            .unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("CONNECTED"), "{text}");
    assert!(
        text.contains("ERROR\n") && text.contains("message:token expired"),
        "{text}"
    );
}

#[tokio::test]
async fn sse_and_stream_end_with_an_error_event_when_the_token_expires() {
    let server = server().await;
    let addr = server.addrs().http.unwrap();
    for (path, says) in [
        (
            "/sse",
            "event: error\ndata: {\"type\":\"error\",\"code\":\"token_expired\"",
        ),
        ("/stream", "{\"type\":\"error\",\"code\":\"token_expired\""),
    ] {
        let t = token("ann", 1);
        let r = http::exchange(
            addr,
            http::request_1_0("GET", &format!("{path}?topic=chat.a&token={t}"), "", ""),
            ALL,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.text().contains(says), "{path}: {}", r.text());
    }
}

#[tokio::test]
async fn socketio_refresh_event_and_expiry_disconnect() {
    let server = server().await;
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket",
        server.addrs().http.unwrap()
    );
    let text = |f: Frame| String::from_utf8_lossy(f.payload()).into_owned();
    // Skips Engine.IO pings.
    async fn next_packet(w: &mut Ws) -> String {
        loop {
            let f = next_frame(w).await;
            let t = String::from_utf8_lossy(f.payload()).into_owned();
            if t == "2" {
                w.send(Frame::text("3")).await.unwrap();
                continue;
            }
            return t;
        }
    }
    let mut w: Ws = WebSocket::connect(url.parse().unwrap()).await.unwrap();
    assert!(text(next_frame(&mut w).await).starts_with('0'));
    let wide = token_with("ann", 2, &[], &["chat.>", "news.>"]);
    w.send(Frame::text(format!("40{{\"token\":\"{wide}\"}}")))
        .await
        .unwrap();
    assert!(next_packet(&mut w).await.starts_with("40{\"sid\""));
    w.send(Frame::text("421[\"subscribe\",\"news.x\"]"))
        .await
        .unwrap();
    let r = next_packet(&mut w).await;
    assert!(r.starts_with("431[{\"ok\":true"), "{r}");
    let narrow = token_with("ann", 2, &[], &["chat.>"]);
    w.send(Frame::text(format!("422[\"refresh\",\"{narrow}\"]")))
        .await
        .unwrap();
    let ended = next_packet(&mut w).await;
    assert!(
        ended.starts_with("42[\"error\"") && ended.contains("news.x"),
        "{ended}"
    );
    let r = next_packet(&mut w).await;
    assert!(r.starts_with("432[{\"ok\":true,\"user\":\"ann\""), "{r}");
    // Then nothing refreshes it: an error event and the server's DISCONNECT.
    let r = next_packet(&mut w).await;
    assert!(r.contains("token_expired"), "{r}");
    let r = next_packet(&mut w).await;
    assert_eq!(r, "41", "a server-side disconnect");
}

#[tokio::test]
async fn a_token_s_info_claim_travels_with_presence() {
    let server = server().await;
    let watcher = token_with("bob", 60, &[], &["chat.>"]);
    let mut w = ws(&server, &format!("/ws?token={watcher}")).await;
    let r = ask(
        &mut w,
        json!({"op":"subscribe","id":1,"topic":"chat.room","presence":true}),
    )
    .await;
    assert_eq!(r["type"], "ok", "{r}");
    let ann = sign(
        SECRET,
        json!({"sub":"ann","exp": now() + 60, "info": {"name": "Ann", "color": "teal"},
            "tidings": {"subscribe": ["chat.>"]}}),
    );
    let mut a = ws(&server, &format!("/ws?token={ann}")).await;
    let r = ask(&mut a, json!({"op":"subscribe","id":1,"topic":"chat.room"})).await;
    assert_eq!(r["type"], "ok", "{r}");
    let joined = next_json(&mut w).await;
    assert_eq!(joined["type"], "presence", "{joined}");
    assert_eq!(joined["user"], "ann");
    assert_eq!(joined["info"], json!({"name": "Ann", "color": "teal"}));
    let list = ask(&mut w, json!({"op":"presence","id":2,"topic":"chat.room"})).await;
    let members = list["members"].as_array().unwrap();
    let ann = members.iter().find(|m| m["user"] == "ann").unwrap();
    assert_eq!(ann["info"]["name"], "Ann", "{list}");
    let bob = members.iter().find(|m| m["user"] == "bob").unwrap();
    assert!(bob.get("info").is_none(), "{list}");
}

#[tokio::test]
async fn socketio_logins_meet_the_per_address_limit() {
    let server = server().await;
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket",
        server.addrs().http.unwrap()
    );
    let mut w: Ws = WebSocket::connect(url.parse().unwrap()).await.unwrap();
    let text = |f: Frame| String::from_utf8_lossy(f.payload()).into_owned();
    assert!(text(next_frame(&mut w).await).starts_with('0'));
    // limits.login_failures_per_ip: 10 a minute, then refused unchecked.
    for _ in 0..10 {
        w.send(Frame::text("40{\"token\":\"nonsense\"}"))
            .await
            .unwrap();
        let r = text(next_frame(&mut w).await);
        assert!(r.contains("malformed"), "{r}");
    }
    w.send(Frame::text(format!(
        "40{{\"token\":\"{}\"}}",
        token("ann", 60)
    )))
    .await
    .unwrap();
    let r = text(next_frame(&mut w).await);
    assert!(
        r.starts_with("44") && r.contains("too many failed logins"),
        "{r}"
    );
}

#[tokio::test]
async fn sockjs_native_session_closes_with_4401_when_its_token_expires() {
    let server = server().await;
    let url = format!(
        "ws://{}/sockjs/000/jwt{}/websocket",
        server.addrs().http.unwrap(),
        std::process::id()
    );
    let mut w: Ws = WebSocket::connect(url.parse().unwrap()).await.unwrap();
    let mut frames = Vec::new();
    let auth = json!({"op":"auth","id":1,"token": token("ann", 1)}).to_string();
    w.send(Frame::text(serde_json::to_string(&[auth]).unwrap()))
        .await
        .unwrap();
    // `o`, then `a[...]` frames (hello, the auth reply, the expiry error), then `c[4401,...]`.
    loop {
        let f = next_frame(&mut w).await;
        if f.opcode() == OpCode::Close {
            break;
        }
        let t = String::from_utf8_lossy(f.payload()).into_owned();
        let end = t.starts_with('c');
        frames.push(t);
        if end {
            break;
        }
    }
    let all = frames.join("\n");
    assert!(all.contains(r#"\"user\":\"ann\""#), "{all}");
    assert!(all.contains("token expired"), "{all}");
    assert!(
        frames
            .last()
            .unwrap()
            .starts_with(r#"c[4401,"Token expired"]"#),
        "{all}"
    );
}
