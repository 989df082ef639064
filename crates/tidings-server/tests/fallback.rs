//! SSE, long-polling and streaming over real sockets: live delivery, resume by cursor (and by
//! `Last-Event-ID`), gaps told plainly, publish by POST, bad requests.

use serde_json::Value;
use std::time::Duration;
use tidings_core::PayloadKind;
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
            &server.hub().access().anonymous(),
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
            &hub.access().anonymous(),
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

/// Offsets of a poll answer's messages, as (topic, offset).
fn polled(answer: &Value) -> Vec<(String, u64)> {
    answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let topic = m["topic"].as_str().unwrap().to_owned();
            (topic, m["offset"].as_u64().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_wildcard_resumes_every_topic_of_its_cursor() {
    let server = server_with(|c| c.hub.history.max_messages = 3).await;
    publish(&server, "w.a", "a1");
    publish(&server, "w.b", "b1");
    // The first poll sees both topics live and hands out a cursor holding a position for each.
    let poll = |cursor: Option<String>| {
        let target = match cursor {
            None => "/poll?topic=w.*&timeout=1".to_owned(),
            Some(c) => format!("/poll?topic=w.*&timeout=1&cursor={c}"),
        };
        let server = &server;
        async move { whole(server, "GET", &target, "").await.1 }
    };
    let later = {
        let hub = server.hub().clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            for (topic, text) in [("w.a", "a2"), ("w.b", "b2")] {
                let who = hub.access().anonymous();
                hub.publish(
                    &who,
                    topic,
                    PayloadKind::Text,
                    text.into(),
                    vec![],
                    now_ms(),
                )
                .unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    while seen.len() < 2 {
        let answer = poll(cursor.clone()).await;
        seen.extend(polled(&answer));
        cursor = answer["cursor"].as_str().map(str::to_owned);
    }
    later.await.unwrap();
    assert_eq!(seen, [("w.a".into(), 2), ("w.b".into(), 2)]);
    let cursor = cursor.unwrap();

    // Offline: w.a gets two more (history still holds them), w.b five more (history keeps
    // only three: two are gone).
    for t in ["a3", "a4"] {
        publish(&server, "w.a", t);
    }
    for t in ["b3", "b4", "b5", "b6", "b7"] {
        publish(&server, "w.b", t);
    }
    let answer = poll(Some(cursor)).await;
    assert_eq!(
        polled(&answer),
        [
            ("w.a".into(), 3),
            ("w.a".into(), 4),
            ("w.b".into(), 5),
            ("w.b".into(), 6),
            ("w.b".into(), 7)
        ],
        "per topic exactly what was missed and is still held: {answer}"
    );
    let gaps = answer["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "one gap, for w.b: {answer}");
    assert_eq!(gaps[0]["topic"], "w.b");
    assert_eq!(gaps[0]["since"], 2);
    server.shutdown().await;
}
