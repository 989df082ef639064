//! What the demo pages need from the server, over real sockets: the embedded pages and
//! scripts with their content types, `GET /api/history/<topic>` and `/api/presence/<topic>`,
//! a named identity on `/sse` and `/poll` (`user=`), and `prices.>` conflated by default.

use serde_json::Value;
use std::time::Duration;
use tidings_core::{PayloadKind, SlowConsumerPolicy};
use tidings_server::{Server, ServerConfig};
use tidings_testkit::http;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn server() -> Server {
    tidings_testkit::server().http().start().await
}

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.unwrap().as_millis() as u64
}

fn publish(server: &Server, topic: &str, kind: PayloadKind, payload: &str) -> u64 {
    let hub = server.hub();
    let who = hub.access().anonymous();
    let p = hub.publish(
        &who,
        topic,
        kind,
        payload.to_owned().into(),
        vec![],
        now_ms(),
    );
    p.unwrap().offset
}

/// An HTTP/1.0 GET: (status, content type, body).
async fn get(server: &Server, target: &str) -> (u16, String, String) {
    let req = format!("GET {target} HTTP/1.0\r\n\r\n");
    let addr = server.addrs().http.unwrap();
    let r = http::exchange(addr, req, http::ALL, Duration::from_secs(10)).await;
    assert!(r.ended, "GET {target}: no whole response in 10 s");
    let content_type = r
        .head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or("")
        .to_owned();
    (r.status, content_type, r.text())
}

async fn get_json(server: &Server, target: &str) -> (u16, Value) {
    let (status, _, body) = get(server, target).await;
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn pages_scripts_and_vendored_clients_are_served() {
    let s = server().await;
    for (path, kind, needle) in [
        ("/", "text/html", "/chat"),
        ("/chat", "text/html", "/demo/chat.js"),
        ("/ticker", "text/html", "/demo/ticker.js"),
        ("/demo/chat.js", "text/javascript", "TRANSPORTS"),
        ("/demo/transports.js", "text/javascript", "/stomp"),
        ("/demo/ticker.js", "text/javascript", "prices.>"),
        ("/demo/demo.css", "text/css", "#messages"),
        ("/vendor/sockjs.min.js", "text/javascript", "SockJS"),
        ("/vendor/socket.io.min.js", "text/javascript", "io"),
        ("/vendor/stomp.umd.min.js", "text/javascript", "StompJs"),
    ] {
        let (status, content_type, body) = get(&s, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        assert!(body.contains(needle), "{path} lacks {needle:?}");
    }
    assert_eq!(get(&s, "/demo/nope.js").await.0, 404);
    s.shutdown().await;
}

#[tokio::test]
async fn history_gives_the_newest_messages_after_since() {
    let s = server().await;
    let (status, empty) = get_json(&s, "/api/history/chat.empty").await;
    assert_eq!(status, 200);
    assert_eq!(empty["offset"], 0);
    assert_eq!(empty["epoch"], Value::Null);
    assert_eq!(empty["messages"], serde_json::json!([]));
    for i in 1..=5 {
        publish(
            &s,
            "chat.lobby",
            PayloadKind::Json,
            &format!(r#"{{"nick":"ann","text":"m{i}"}}"#),
        );
    }
    publish(&s, "chat.lobby", PayloadKind::Text, "from nc");
    let (_, all) = get_json(&s, "/api/history/chat.lobby").await;
    assert_eq!(all["offset"], 6);
    assert_eq!(all["earliest"], 1);
    assert_eq!(all["messages"].as_array().unwrap().len(), 6);
    assert_eq!(all["messages"][0]["data"]["text"], "m1");
    assert_eq!(all["messages"][5]["text"], "from nc");
    let (_, newest) = get_json(&s, "/api/history/chat.lobby?limit=2").await;
    let offsets: Vec<u64> = newest["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [5, 6], "limit keeps the newest");
    let (_, after) = get_json(&s, "/api/history/chat.lobby?since=4").await;
    assert_eq!(after["messages"].as_array().unwrap().len(), 2);
    let (status, bad) = get_json(&s, "/api/history/chat.lobby?since=x").await;
    assert_eq!((status, bad["error"].as_str()), (400, Some("bad_request")));
    let (status, bad) = get_json(&s, "/api/history/chat..x").await;
    assert_eq!((status, bad["error"].as_str()), (400, Some("bad_request")));
    s.shutdown().await;
}

#[tokio::test]
async fn presence_lists_an_sse_reader_by_its_user_name() {
    let s = server().await;
    let (_, nobody) = get_json(&s, "/api/presence/chat.room").await;
    assert_eq!(nobody["members"], serde_json::json!([]));
    let mut sse = TcpStream::connect(s.addrs().http.unwrap()).await.unwrap();
    sse.write_all(b"GET /sse?topic=chat.room&user=ann HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut sse = BufReader::new(sse);
    let mut line = String::new();
    while !line.contains("subscribed") {
        line.clear();
        tokio::time::timeout(Duration::from_secs(5), sse.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
    }
    let (_, here) = get_json(&s, "/api/presence/chat.room").await;
    let members = here["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{here}");
    assert_eq!(members[0]["user"], "ann");
    assert!(members[0]["client"].as_str().unwrap().starts_with('c'));
    drop(sse);
    // The reader hung up: it leaves.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, left) = get_json(&s, "/api/presence/chat.room").await;
        if left["members"] == serde_json::json!([]) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still present: {left}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _, body) = get(&s, "/poll?topic=chat.room&password=x").await;
    assert_eq!(status, 400, "{body}");
    s.shutdown().await;
}

#[test]
fn prices_are_conflated_by_default() {
    let rule = &ServerConfig::default().hub.topics[0];
    assert_eq!(rule.pattern, "prices.>");
    assert_eq!(rule.slow_consumer, Some(SlowConsumerPolicy::Conflate));
}
