//! No sticky sessions (issue 17): two `tidings serve --engine redis://...` nodes on one real
//! `redis-server`, and requests for one SockJS or Engine.IO session landing on either node.
//! Raw requests show that a node which does not hold a session answers for it (the holder
//! answers through Redis; on main the other node said `404` / `400 Session ID unknown`), that
//! a stream forwarded this way is cancelled on the holder when its client leaves, that an
//! Engine.IO upgrade is accepted only by the holder, and that sessions nobody holds still get
//! each protocol's own error. The real sockjs-client (xhr-polling, xhr-streaming) and
//! socket.io-client (polling) then run through a round-robin proxy (each request to the next
//! node) and keep working; `/poll` and `/stream` resume by cursor on whichever node answers.
//! Without redis-server the tests say so and pass (they skip).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidings_testkit::http::{blocking, request_1_0, Response};
use tidings_testkit::redis::Redis;
use tidings_testkit::{interop, Process, Tidings};

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));

fn node(redis: &Redis) -> Process {
    TIDINGS
        .serve()
        .http()
        .arg("--engine")
        .arg(redis.url())
        .start()
}

fn post(addr: &str, path: &str, body: &str) -> Response {
    blocking(
        addr,
        request_1_0("POST", path, "Content-Type: text/plain\r\n", body),
    )
}

fn get(addr: &str, path: &str) -> Response {
    blocking(addr, request_1_0("GET", path, "", ""))
}

/// The frames of an Engine.IO polling payload (separated by 0x1e).
fn packets(resp: &Response) -> Vec<String> {
    resp.text().split('\x1e').map(str::to_owned).collect()
}

#[test]
fn an_engineio_session_answers_on_the_node_that_does_not_hold_it() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis), node(&redis));
    let (a, b) = (a.addr("http").to_owned(), b.addr("http").to_owned());

    let open = get(&a, "/socket.io/?EIO=4&transport=polling");
    assert_eq!(open.status, 200, "{}", open.text());
    let handshake: serde_json::Value =
        serde_json::from_str(open.text().strip_prefix('0').expect("an OPEN packet")).unwrap();
    let sid = handshake["sid"].as_str().expect("a sid").to_owned();
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");

    // CONNECT to the main namespace through B, the CONNECT reply fetched through B.
    let sent = post(&b, &path, "40");
    assert_eq!((sent.status, sent.text().as_str()), (200, "ok"), "{sent:?}");
    let reply = get(&b, &path);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        packets(&reply).iter().any(|p| p.starts_with("40{\"sid\":")),
        "a CONNECT reply through B: {}",
        reply.text()
    );

    // An event with an ack through A, its answer through B; then a publish through B.
    let sub = post(&a, &path, r#"421["subscribe","polls.x"]"#);
    assert_eq!(sub.status, 200, "{}", sub.text());
    let acked = get(&b, &path);
    assert!(
        packets(&acked)
            .iter()
            .any(|p| p.starts_with("431[{\"ok\":true")),
        "the subscribe's ack through B: {}",
        acked.text()
    );
    post(&b, &path, r#"422["publish","polls.x","hi"]"#);
    let mut seen = String::new();
    for _ in 0..3 {
        seen += &get(&a, &path).text();
        if seen.contains("\"hi\"") && seen.contains("432[{\"ok\":true") {
            break;
        }
    }
    assert!(
        seen.contains(r#"42["message",{"topic":"polls.x","offset":1"#) && seen.contains("\"hi\""),
        "the message through A: {seen}"
    );
    // A WebSocket upgrade is not forwarded: refused on B as an unknown sid (the client
    // stays on long-polling), accepted on A, which holds the session.
    let upgrade = |node: &str| {
        tungstenite::connect(format!(
            "ws://{node}/socket.io/?EIO=4&transport=websocket&sid={sid}"
        ))
    };
    match upgrade(&b) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        other => panic!("an upgrade on B: {other:?}"),
    }
    assert!(upgrade(&a).is_ok(), "the upgrade on A");
}

#[test]
fn a_sockjs_session_answers_on_the_node_that_does_not_hold_it() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis), node(&redis));
    let (a, b) = (a.addr("http").to_owned(), b.addr("http").to_owned());
    let session = "/sockjs/000/nonsticky1";

    // A receiving request on A opens the session there (and claims it in Redis).
    let open = post(&a, &format!("{session}/xhr"), "");
    assert_eq!((open.status, open.text().as_str()), (200, "o\n"));
    // The next poll, on B, gets what A queued: the native protocol's hello.
    let hello = post(&b, &format!("{session}/xhr"), "");
    assert_eq!(hello.status, 200, "{}", hello.text());
    assert!(
        hello.text().starts_with("a[") && hello.text().contains("hello"),
        "{}",
        hello.text()
    );
    // A send through B reaches the session on A; its reply comes back through B.
    let send = post(
        &b,
        &format!("{session}/xhr_send"),
        r#"["{\"op\":\"subscribe\",\"id\":1,\"topic\":\"polls.y\"}"]"#,
    );
    assert_eq!(send.status, 204, "{}", send.text());
    let ok = post(&b, &format!("{session}/xhr"), "");
    assert!(ok.text().contains(r#"\"type\":\"ok\""#), "{}", ok.text());
    // A streaming request through B carries A's frames as they come: a send through A
    // is answered on the stream through B while it stays open.
    let mut stream = TcpStream::connect(&b).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(request_1_0("POST", &format!("{session}/xhr_streaming"), "", "").as_bytes())
        .unwrap();
    let prelude = read_until(&mut stream, "hhhh\n");
    assert!(prelude.starts_with("HTTP/1.0 200 OK"), "{prelude}");
    let send = post(
        &a,
        &format!("{session}/xhr_send"),
        r#"["{\"op\":\"subscribe\",\"id\":2,\"topic\":\"polls.z\"}"]"#,
    );
    assert_eq!(send.status, 204, "{}", send.text());
    read_until(&mut stream, r#"\"id\":2"#);
}

#[test]
fn a_client_leaving_a_forwarded_stream_interrupts_the_session_on_its_holder() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis), node(&redis));
    let (a, b) = (a.addr("http").to_owned(), b.addr("http").to_owned());
    let xhr = "/sockjs/000/leaving1/xhr";
    assert_eq!(post(&a, xhr, "").text(), "o\n");
    assert!(post(&a, xhr, "").text().contains("hello"));

    // A stream through B, attached on A once its prelude came (A writes it).
    let mut held = TcpStream::connect(&b).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    held.write_all(request_1_0("POST", "/sockjs/000/leaving1/xhr_streaming", "", "").as_bytes())
        .unwrap();
    read_until(&mut held, "hhhh\n");
    // The client leaves: B cancels the tunnel and A interrupts the session, as if its own
    // client had left.
    drop(held);
    // Until then a poll on A is told the stream is still attached (at once, not held).
    let mut after = String::new();
    for _ in 0..100 {
        after = post(&a, xhr, "").text();
        if !after.contains("2010") {
            break;
        }
    }
    assert_eq!(after, "c[1002,\"Connection interrupted\"]\n");
}

/// Reads `stream` until `needle` has come (10 s at most per read); returns what came.
fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = stream.read(&mut buf).expect("more of the stream in time");
        assert!(
            n > 0,
            "the stream ended before {needle:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn sessions_no_node_holds_get_each_protocols_own_error() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis), node(&redis));
    let b_addr = b.addr("http").to_owned();

    // A session A held, asked on B after A is gone: unknown, as on one node.
    let open = get(a.addr("http"), "/socket.io/?EIO=4&transport=polling");
    let sid = serde_json::from_str::<serde_json::Value>(&open.text()[1..]).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(a);
    let gone = get(
        &b_addr,
        &format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
    );
    assert_eq!(gone.status, 400);
    assert_eq!(gone.text(), r#"{"code":1,"message":"Session ID unknown"}"#);
    // A sid naming no node at all.
    let forged = get(
        &b_addr,
        "/socket.io/?EIO=4&transport=polling&sid=0123456789abAAAAAAAAAAAAAAAAAAAA",
    );
    assert_eq!(forged.status, 400, "{}", forged.text());
    // SockJS: a send for a session nobody opened.
    let send = post(&b_addr, "/sockjs/000/nobody/xhr_send", r#"["x"]"#);
    assert_eq!(send.status, 404, "{}", send.text());
}

/// A round-robin HTTP/1.1 proxy: each request goes to the next node (`Connection: close`
/// both ways: one request per connection), its answer is copied back as it comes (streams
/// included).
struct RoundRobin {
    addr: SocketAddr,
    /// Requests sent to each node.
    served: Arc<[AtomicUsize; 2]>,
    /// SockJS `xhr_streaming` requests among them.
    streams: Arc<AtomicUsize>,
}

impl RoundRobin {
    fn start(nodes: [SocketAddr; 2]) -> RoundRobin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let served: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let next = Arc::new(AtomicUsize::new(0));
        let counts = served.clone();
        let streams = Arc::new(AtomicUsize::new(0));
        let streams_seen = streams.clone();
        // The accept thread ends with the test process.
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (next, counts, streams) = (next.clone(), counts.clone(), streams_seen.clone());
                std::thread::spawn(move || {
                    proxy_connection(client, nodes, &next, &counts, &streams)
                });
            }
        });
        RoundRobin {
            addr,
            served,
            streams,
        }
    }

    fn served(&self) -> [usize; 2] {
        [0, 1].map(|i| self.served[i].load(Ordering::Relaxed))
    }
}

fn proxy_connection(
    client: TcpStream,
    nodes: [SocketAddr; 2],
    next: &AtomicUsize,
    served: &[AtomicUsize; 2],
    streams: &AtomicUsize,
) {
    let Ok(mut to_client) = client.try_clone() else {
        return;
    };
    let mut from_client = BufReader::new(client);
    let mut head = String::new();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        match from_client.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().expect("a content-length");
        }
        chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
        let hop = [
            "connection:",
            "keep-alive:",
            "transfer-encoding:",
            "content-length:",
        ];
        if !hop.iter().any(|h| lower.starts_with(h)) {
            head += &line;
        }
    }
    let body = if chunked {
        match read_chunked(&mut from_client) {
            Some(body) => body,
            None => return,
        }
    } else {
        let mut body = vec![0u8; length];
        if from_client.read_exact(&mut body).is_err() {
            return;
        }
        body
    };
    head += &format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if head
        .lines()
        .next()
        .is_some_and(|l| l.contains("/xhr_streaming"))
    {
        streams.fetch_add(1, Ordering::Relaxed);
    }
    let i = next.fetch_add(1, Ordering::Relaxed) % 2;
    served[i].fetch_add(1, Ordering::Relaxed);
    let Ok(mut upstream) = TcpStream::connect(nodes[i]) else {
        return;
    };
    if upstream.write_all(head.as_bytes()).is_err() || upstream.write_all(&body).is_err() {
        return;
    }
    // The node closes after its answer (Connection: close) and says so to the client; the
    // proxy closes too, so every request comes on a fresh connection.
    let _ = std::io::copy(&mut upstream, &mut to_client);
}

/// A chunked request body (node's http client sends one when no length is set), whole.
fn read_chunked(from: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        from.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        let mut chunk = vec![0u8; size + 2];
        if size == 0 {
            // No trailers from these clients: the final CRLF.
            from.read_exact(&mut chunk).ok()?;
            return Some(body);
        }
        from.read_exact(&mut chunk).ok()?;
        body.extend_from_slice(&chunk[..size]);
    }
}

#[test]
fn sockjs_and_socketio_clients_keep_working_while_requests_alternate_between_nodes() {
    let Some(redis) = Redis::start() else { return };
    // Streaming responses end after 4 KiB, so xhr-streaming reopens its stream every few
    // messages, on either node: streams get forwarded too.
    let short_streams = |redis: &Redis| {
        TIDINGS
            .serve()
            .http()
            .config("[sockjs]\nresponse_limit = 4096\n")
            .arg("--engine")
            .arg(redis.url())
            .start()
    };
    let (a, b) = (short_streams(&redis), short_streams(&redis));
    let proxy = RoundRobin::start([a.socket_addr("http"), b.socket_addr("http")]);
    let mut cmd = interop::node(&["sockjs-client", "socket.io-client"]);
    cmd.arg("nonsticky_clients.mjs")
        .arg(format!("http://{}", proxy.addr))
        .arg(format!("http://{}", a.addr("http")))
        .arg(format!("http://{}", b.addr("http")));
    interop::run(
        cmd,
        "tests/interop/nonsticky_clients.mjs",
        Duration::from_secs(90),
    )
    .assert_passed("ok: ");
    let served = proxy.served();
    let streams = proxy.streams.load(Ordering::Relaxed);
    println!("requests per node through the proxy: {served:?}, xhr_streaming: {streams}");
    assert!(streams >= 3, "xhr-streaming reopened its stream: {streams}");
    assert!(
        served.iter().all(|&n| n >= 20),
        "each node got a good share of the requests: {served:?}"
    );
}

#[test]
fn poll_and_stream_clients_resume_by_cursor_on_whichever_node_answers() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis), node(&redis));
    let proxy = RoundRobin::start([a.socket_addr("http"), b.socket_addr("http")]);
    let proxy_addr = proxy.addr.to_string();
    let nodes = [a.addr("http").to_owned(), b.addr("http").to_owned()];

    // /poll through the proxy: each poll lands on the other node and carries the cursor the
    // previous one returned; messages are published on both nodes.
    let mut cursor: Option<String> = None;
    let mut got = Vec::new();
    for i in 1..=6u64 {
        let published = post(
            &nodes[i as usize % 2],
            "/api/publish/feed.poll",
            &format!("m{i}"),
        );
        assert_eq!(published.status, 200, "{}", published.text());
        let position = match &cursor {
            Some(c) => format!("cursor={c}"),
            None => "since=0".to_owned(),
        };
        let poll = get(
            &proxy_addr,
            &format!("/poll?topic=feed.poll&{position}&timeout=2"),
        );
        assert_eq!(poll.status, 200, "{}", poll.text());
        let body: serde_json::Value = serde_json::from_slice(&poll.body).unwrap();
        assert_eq!(body["gaps"], serde_json::json!([]), "{body}");
        for m in body["messages"].as_array().unwrap() {
            got.push((
                m["offset"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_owned(),
            ));
        }
        cursor = body["cursor"].as_str().map(str::to_owned);
    }
    let want: Vec<(u64, String)> = (1..=6).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(got, want, "every message once, in order");
    assert!(
        proxy.served().iter().all(|&n| n >= 3),
        "{:?}",
        proxy.served()
    );

    // /stream on A until its cursor after m2; m3 and m4 are missed; /stream on B with the
    // cursor gets exactly them.
    for i in 1..=2 {
        post(&nodes[0], "/api/publish/feed.stream", &format!("s{i}"));
    }
    let mut on_a = TcpStream::connect(&nodes[0]).unwrap();
    on_a.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    on_a.write_all(request_1_0("GET", "/stream?topic=feed.stream&since=0", "", "").as_bytes())
        .unwrap();
    let mut seen = read_until(&mut on_a, "\"s2\"");
    let after_s2 = |seen: &str| seen.split("\"s2\"").nth(1).unwrap_or_default().to_owned();
    if !after_s2(&seen).contains("\"type\":\"cursor\"") {
        seen += &read_until(&mut on_a, "\"type\":\"cursor\"");
    }
    let cursor_line = seen
        .lines()
        .rev()
        .find(|l| l.contains("\"type\":\"cursor\""))
        .unwrap();
    let cursor: serde_json::Value = serde_json::from_str(cursor_line).unwrap();
    let cursor = cursor["cursor"].as_str().unwrap().to_owned();
    drop(on_a);
    for i in 3..=4 {
        post(&nodes[1], "/api/publish/feed.stream", &format!("s{i}"));
    }
    let mut on_b = TcpStream::connect(&nodes[1]).unwrap();
    on_b.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    on_b.write_all(
        request_1_0(
            "GET",
            &format!("/stream?topic=feed.stream&cursor={cursor}"),
            "",
            "",
        )
        .as_bytes(),
    )
    .unwrap();
    let resumed = read_until(&mut on_b, "\"s4\"");
    assert!(resumed.contains("\"s3\""), "{resumed}");
    assert!(!resumed.contains("\"s2\""), "nothing twice: {resumed}");
}
