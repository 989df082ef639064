//! SSE, long-polling and streaming over real sockets: live delivery, resume by cursor (and by
//! `Last-Event-ID`), gaps told plainly, publish by POST, bad requests.

use serde_json::Value;
use std::time::Duration;
use tidings_core::{Identity, PayloadKind};
use tidings_server::{Server, ServerConfig};
use tidings_testkit::http;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The server under test, HTTP only.
async fn server_with(f: impl FnOnce(&mut ServerConfig)) -> Server {
    tidings_testkit::server().http().with(f).start().await
}

/// Milliseconds on the server's clock (the sweeper ages history by it: a message stamped 0
/// would be expired at once).
fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.unwrap().as_millis() as u64
}

fn publish(server: &Server, topic: &str, text: &str) -> u64 {
    server
        .hub()
        .publish(
            &Identity::anonymous(),
            topic,
            PayloadKind::Text,
            text.to_owned().into(),
            vec![],
            now_ms(),
        )
        .unwrap()
        .offset
}

/// An HTTP/1.0 request (so the body is not chunked and ends with the connection).
async fn open(
    server: &Server,
    method: &str,
    target: &str,
    headers: &str,
    body: &str,
) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(server.addrs().http.unwrap())
        .await
        .unwrap();
    let req = format!(
        "{method} {target} HTTP/1.0\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut r = BufReader::new(s);
    loop {
        let line = read_line(&mut r).await;
        if line.is_empty() {
            return r;
        }
    }
}

async fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut line))
        .await
        .expect("a line in time")
        .unwrap();
    line.trim_end_matches(['\r', '\n']).to_owned()
}

/// A whole HTTP/1.0 exchange: (status, the body as JSON or null).
async fn whole(server: &Server, method: &str, target: &str, body: &str) -> (u16, Value) {
    let req = http::request_1_0(method, target, "", body);
    let addr = server.addrs().http.unwrap();
    let r = http::exchange(addr, req, http::ALL, Duration::from_secs(10)).await;
    assert!(r.ended, "{method} {target}: no whole response in 10 s");
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// Reads SSE events until one named `want`; returns (id of the last event with one, data).
async fn next_event(
    r: &mut BufReader<TcpStream>,
    want: &str,
    last_id: &mut Option<String>,
) -> Value {
    let (mut event, mut data) = (String::new(), String::new());
    loop {
        let line = read_line(r).await;
        if line.is_empty() {
            if event == want {
                return serde_json::from_str(&data).unwrap();
            }
            event.clear();
            data.clear();
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = v.to_owned();
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = v.to_owned();
        } else if let Some(v) = line.strip_prefix("id: ") {
            *last_id = Some(v.to_owned());
        }
    }
}

#[tokio::test]
async fn sse_delivers_live_and_resumes_with_last_event_id() {
    let server = server_with(|_| {}).await;
    let mut id = None;
    let mut sse = open(&server, "GET", "/sse?topic=news", "", "").await;
    let hello = next_event(&mut sse, "subscribed", &mut id).await;
    assert!(hello["cursor"].is_string());
    publish(&server, "news", "one");
    publish(&server, "news", "two");
    let m1 = next_event(&mut sse, "message", &mut id).await;
    let m2 = if m1["offset"] == 1 {
        next_event(&mut sse, "message", &mut id).await
    } else {
        m1.clone()
    };
    assert_eq!(
        (m2["offset"].as_u64(), m2["text"].as_str()),
        (Some(2), Some("two"))
    );
    drop(sse);
    publish(&server, "news", "three (missed)");
    publish(&server, "news", "four (missed)");
    let header = format!("Last-Event-ID: {}\r\n", id.clone().unwrap());
    let mut sse = open(&server, "GET", "/sse?topic=news", &header, "").await;
    next_event(&mut sse, "subscribed", &mut id).await;
    let a = next_event(&mut sse, "message", &mut id).await;
    let b = next_event(&mut sse, "message", &mut id).await;
    assert_eq!(
        (a["offset"].as_u64(), b["offset"].as_u64()),
        (Some(3), Some(4)),
        "exactly the missed ones"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn sse_keeps_quiet_connections_alive() {
    let server = server_with(|c| c.fallback.keepalive_secs = 1).await;
    let mut sse = open(&server, "GET", "/sse?topic=quiet", "", "").await;
    let mut id = None;
    next_event(&mut sse, "subscribed", &mut id).await;
    assert_eq!(read_line(&mut sse).await, ": keep-alive");
    server.shutdown().await;
}

#[tokio::test]
async fn long_poll_answers_at_once_or_holds_until_a_message() {
    let server = server_with(|_| {}).await;
    for t in ["a", "b", "c"] {
        publish(&server, "t", t);
    }
    let (status, first) = whole(&server, "GET", "/poll?topic=t&since=1", "").await;
    assert_eq!(status, 200);
    let offsets: Vec<u64> = first["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [2, 3]);
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    let hub = server.hub().clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        hub.publish(
            &Identity::anonymous(),
            "t",
            PayloadKind::Text,
            "d".into(),
            vec![],
            now_ms(),
        )
        .unwrap();
    });
    let started = std::time::Instant::now();
    let (_, held) = whole(
        &server,
        "GET",
        &format!("/poll?topic=t&cursor={cursor}"),
        "",
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "held until the message came"
    );
    assert_eq!(held["messages"][0]["offset"], 4, "{held}\nfirst: {first}");
    later.await.unwrap();
    let cursor = held["cursor"].as_str().unwrap();
    let (_, empty) = whole(
        &server,
        "GET",
        &format!("/poll?topic=t&cursor={cursor}&timeout=1"),
        "",
    )
    .await;
    assert_eq!(
        empty["messages"].as_array().unwrap().len(),
        0,
        "timeout with nothing new"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn stream_sends_ndjson_with_cursors() {
    let server = server_with(|_| {}).await;
    let mut s = open(&server, "GET", "/stream?topic=feed.*", "", "").await;
    let first: Value = serde_json::from_str(&read_line(&mut s).await).unwrap();
    assert_eq!(first["type"], "subscribed");
    publish(&server, "feed.x", "hello");
    let msg: Value = serde_json::from_str(&read_line(&mut s).await).unwrap();
    assert_eq!(
        (msg["topic"].as_str(), msg["text"].as_str()),
        (Some("feed.x"), Some("hello"))
    );
    let cur: Value = serde_json::from_str(&read_line(&mut s).await).unwrap();
    assert_eq!(cur["type"], "cursor");
    server.shutdown().await;
}

#[tokio::test]
async fn a_resume_beyond_history_is_told_as_a_gap_then_continues() {
    let server = server_with(|c| c.hub.history.max_messages = 3).await;
    for i in 1..=10 {
        publish(&server, "t", &i.to_string());
    }
    let (_, body) = whole(&server, "GET", "/poll?topic=t&since=2", "").await;
    assert_eq!(body["gaps"][0]["since"], 2);
    assert_eq!(body["gaps"][0]["earliest"], 8);
    let offsets: Vec<u64> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [8, 9, 10]);
    server.shutdown().await;
}

#[tokio::test]
async fn post_publishes_and_bad_requests_get_400() {
    let server = server_with(|_| {}).await;
    let (status, body) = whole(&server, "POST", "/sse?topic=posted", "via POST").await;
    assert_eq!((status, body["offset"].as_u64()), (200, Some(1)));
    let (_, polled) = whole(&server, "GET", "/poll?topic=posted&since=0", "").await;
    assert_eq!(polled["messages"][0]["text"], "via POST");
    let (status, err) = whole(&server, "GET", "/poll", "").await;
    assert_eq!((status, err["error"].as_str()), (400, Some("bad_request")));
    let (status, _) = whole(&server, "GET", "/sse?topic=a..b", "").await;
    assert_eq!(status, 400);
    let (status, _) = whole(&server, "GET", "/poll?topic=t&cursor=garbage!", "").await;
    assert_eq!(status, 400);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let server = server_with(|_| {}).await;
    let mut sse = open(&server, "GET", "/sse?topic=t", "", "").await;
    let mut id = None;
    next_event(&mut sse, "subscribed", &mut id).await;
    assert_eq!(
        server.shutdown().await,
        0,
        "the stream finished within the grace period"
    );
    let mut rest = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), sse.read_to_string(&mut rest))
        .await
        .expect("EOF");
}
