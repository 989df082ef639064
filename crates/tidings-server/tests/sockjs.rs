//! SockJS 0.3.3 over real sockets: the details the protocol specifies (frames, errors, one
//! receiver per session, close, jsonp/htmlfile/eventsource framing, CORS, cookies), and that
//! abandoned sessions are reclaimed.

use std::net::SocketAddr;
use std::time::Duration;
use tidings_server::{Server, ServerConfig};
use tidings_testkit::http::{self, ALL};
use tidings_testkit::Process;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where a request goes: the product server, or the conformance fixture.
trait Target {
    fn http(&self) -> SocketAddr;
}

impl Target for Server {
    fn http(&self) -> SocketAddr {
        self.addrs().http.unwrap()
    }
}

/// `examples/sockjs_conformance.rs` (echo, close and friends under `/sockjs-test/`), started
/// on a free port; killed on drop.
struct Fixture(Process);

impl Target for Fixture {
    fn http(&self) -> SocketAddr {
        self.0.socket_addr("sockjs_conformance")
    }
}

impl Fixture {
    async fn shutdown(self) {}
}

fn fixture() -> Fixture {
    Fixture(tidings_testkit::start_example(
        "tidings-server",
        "sockjs_conformance",
        &["127.0.0.1:0"],
    ))
}

/// The server under test, HTTP only.
async fn server_with(f: impl FnOnce(&mut ServerConfig)) -> Server {
    tidings_testkit::server().http().with(f).start().await
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.0 request; reads until the server closes (or `cap` bytes for streams, or 5 s).
async fn req(
    server: &impl Target,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
    cap: usize,
) -> Reply {
    let request = http::request_1_0(method, path, headers, body);
    let r = http::exchange(server.http(), request, cap, Duration::from_secs(5)).await;
    Reply {
        status: r.status,
        head: r.head.to_ascii_lowercase(),
        body: r.text(),
    }
}

#[tokio::test]
async fn greeting_info_and_iframe() {
    let server = fixture();
    let r = req(&server, "GET", "/sockjs-test/echo", "", "", ALL).await;
    assert_eq!((r.status, r.body.as_str()), (200, "Welcome to SockJS!\n"));
    let r = req(&server, "GET", "/sockjs-test/echo/info", "", "", ALL).await;
    let info: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (info["websocket"].as_bool(), info["cookie_needed"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(info["entropy"].is_u64() && r.head.contains("no-store"));
    let info = req(
        &server,
        "GET",
        "/sockjs-test/disabled_websocket_echo/info",
        "",
        "",
        ALL,
    )
    .await;
    assert!(info.body.contains("\"websocket\":false"));
    let r = req(&server, "GET", "/sockjs-test/echo/iframe.html", "", "", ALL).await;
    assert!(r.body.contains("SockJS.bootstrap_iframe()") && r.head.contains("etag"));
    let etag = r
        .head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .to_owned();
    let r = req(
        &server,
        "GET",
        "/sockjs-test/echo/iframe.html",
        &format!("If-None-Match: {etag}\r\n"),
        "",
        ALL,
    )
    .await;
    assert_eq!(r.status, 304);
    server.shutdown().await;
}

#[tokio::test]
async fn xhr_polling_session_lifecycle_and_errors() {
    let server = fixture();
    let p = "/sockjs-test/echo/000/s1";
    assert_eq!(
        req(&server, "POST", &format!("{p}/xhr"), "", "", ALL)
            .await
            .body,
        "o\n"
    );
    assert_eq!(
        req(
            &server,
            "POST",
            &format!("{p}/xhr_send"),
            "",
            r#"["a","\u2028"]"#,
            ALL
        )
        .await
        .status,
        204
    );
    assert_eq!(
        req(&server, "POST", &format!("{p}/xhr"), "", "", ALL)
            .await
            .body,
        "a[\"a\",\"\\u2028\"]\n"
    );
    let empty = req(&server, "POST", &format!("{p}/xhr_send"), "", "", ALL).await;
    assert_eq!(
        (empty.status, empty.body.as_str()),
        (500, "Payload expected.")
    );
    let broken = req(&server, "POST", &format!("{p}/xhr_send"), "", "[\"x", ALL).await;
    assert_eq!(
        (broken.status, broken.body.as_str()),
        (500, "Broken JSON encoding.")
    );
    let unknown = req(
        &server,
        "POST",
        "/sockjs-test/echo/000/nope/xhr_send",
        "",
        "[\"x\"]",
        ALL,
    )
    .await;
    assert_eq!(unknown.status, 404);
    // A second receiving request while one is held: "Another connection still open".
    let held = {
        let addr = server.http();
        tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("POST {p}/xhr HTTP/1.0\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out).await;
            out
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = req(&server, "POST", &format!("{p}/xhr"), "", "", ALL).await;
    assert_eq!(second.body, "c[2010,\"Another connection still open\"]\n");
    req(
        &server,
        "POST",
        &format!("{p}/xhr_send"),
        "",
        "[\"wake\"]",
        ALL,
    )
    .await;
    assert!(held.await.unwrap().ends_with("a[\"wake\"]\n"));
    server.shutdown().await;
}

#[tokio::test]
async fn close_app_says_go_away_on_every_transport() {
    let server = fixture();
    let p = "/sockjs-test/close/000/c1";
    assert_eq!(
        req(&server, "POST", &format!("{p}/xhr"), "", "", ALL)
            .await
            .body,
        "o\n"
    );
    assert_eq!(
        req(&server, "POST", &format!("{p}/xhr"), "", "", ALL)
            .await
            .body,
        "c[3000,\"Go away!\"]\n"
    );
    let s = req(
        &server,
        "POST",
        "/sockjs-test/close/000/c2/xhr_streaming",
        "",
        "",
        ALL,
    )
    .await;
    assert_eq!(
        s.body,
        format!("{}\no\nc[3000,\"Go away!\"]\n", "h".repeat(2048))
    );
    let e = req(
        &server,
        "GET",
        "/sockjs-test/close/000/c3/eventsource",
        "",
        "",
        ALL,
    )
    .await;
    assert_eq!(
        e.body,
        "\r\ndata: o\r\n\r\ndata: c[3000,\"Go away!\"]\r\n\r\n"
    );
    assert!(e.head.contains("content-type: text/event-stream"));
    server.shutdown().await;
}

#[tokio::test]
async fn jsonp_and_htmlfile_framing() {
    let server = fixture();
    let p = "/sockjs-test/echo/000/j1";
    let r = req(&server, "GET", &format!("{p}/jsonp"), "", "", ALL).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, "\"callback\" parameter required")
    );
    let r = req(
        &server,
        "GET",
        &format!("{p}/jsonp?c=%3Cscript%3E"),
        "",
        "",
        ALL,
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, "invalid \"callback\" parameter")
    );
    assert_eq!(
        req(&server, "GET", &format!("{p}/jsonp?c=cb"), "", "", ALL)
            .await
            .body,
        "/**/cb(\"o\");\r\n"
    );
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    let sent = req(
        &server,
        "POST",
        &format!("{p}/jsonp_send"),
        form,
        "d=%5B%22x%22%5D",
        ALL,
    )
    .await;
    assert_eq!((sent.status, sent.body.as_str()), (200, "ok"));
    assert_eq!(
        req(&server, "GET", &format!("{p}/jsonp?c=cb"), "", "", ALL)
            .await
            .body,
        "/**/cb(\"a[\\\"x\\\"]\");\r\n"
    );
    let h = req(
        &server,
        "GET",
        "/sockjs-test/close/000/h1/htmlfile?c=cb",
        "",
        "",
        ALL,
    )
    .await;
    assert!(
        h.body.contains("var c = parent.cb;")
            && h.body.contains("<script>\np(\"o\");\n</script>\r\n")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn streaming_ends_at_the_response_limit() {
    let server = fixture();
    let p = "/sockjs-test/echo/000/big";
    let addr = server.http();
    let stream = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("POST {p}/xhr_streaming HTTP/1.0\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .expect("the response ends")
            .unwrap();
        out
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let chunk = format!("[\"{}\"]", "x".repeat(3000));
    req(&server, "POST", &format!("{p}/xhr_send"), "", &chunk, ALL).await;
    req(&server, "POST", &format!("{p}/xhr_send"), "", &chunk, ALL).await;
    let body = stream.await.unwrap();
    assert!(body.contains("\no\na[\""), "open then messages");
    server.shutdown().await;
}

#[tokio::test]
async fn cors_and_cookies() {
    let server = fixture();
    let pre = req(
        &server,
        "OPTIONS",
        "/sockjs-test/echo/000/x/xhr",
        "Origin: http://a.example\r\nAccess-Control-Request-Headers: x-a\r\n",
        "",
        ALL,
    )
    .await;
    assert_eq!(pre.status, 204);
    assert!(pre
        .head
        .contains("access-control-allow-origin: http://a.example"));
    assert!(pre.head.contains("access-control-allow-credentials: true"));
    assert!(pre
        .head
        .contains("access-control-allow-methods: options, post"));
    assert!(pre.head.contains("access-control-allow-headers: x-a"));
    let c = req(
        &server,
        "POST",
        "/sockjs-test/cookie_needed_echo/000/k/xhr",
        "",
        "",
        ALL,
    )
    .await;
    assert!(c.head.contains("set-cookie: jsessionid=dummy; path=/"));
    let c = req(
        &server,
        "POST",
        "/sockjs-test/cookie_needed_echo/000/k2/xhr",
        "Cookie: JSESSIONID=abc\r\n",
        "",
        ALL,
    )
    .await;
    assert!(c.head.contains("set-cookie: jsessionid=abc; path=/"));
    server.shutdown().await;
}

#[tokio::test]
async fn abandoned_sessions_are_reclaimed() {
    let server = server_with(|c| c.sockjs.disconnect_delay_secs = 1).await;
    req(&server, "POST", "/sockjs/000/gone/xhr", "", "", ALL).await;
    let subs = || server.hub().stats().sessions;
    assert_eq!(subs(), 1, "the session holds a hub session");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(subs(), 0, "reclaimed after the disconnect delay");
    let r = req(
        &server,
        "POST",
        "/sockjs/000/gone/xhr_send",
        "",
        "[\"x\"]",
        ALL,
    )
    .await;
    assert_eq!(r.status, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn a_session_whose_client_hung_up_mid_poll_is_reclaimed() {
    let server = server_with(|c| c.sockjs.disconnect_delay_secs = 1).await;
    req(&server, "POST", "/sockjs/000/left/xhr", "", "", ALL).await;
    let hello = req(&server, "POST", "/sockjs/000/left/xhr", "", "", ALL).await;
    assert!(hello.body.contains("hello"), "{}", hello.body);
    // The next poll is held (nothing to say yet); the client goes away while it waits, as a
    // closed browser tab does. The session must not stay attached to the dead request.
    let mut held = TcpStream::connect(server.http()).await.unwrap();
    held.write_all(b"POST /sockjs/000/left/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(held);
    let sessions = || server.hub().stats().sessions;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sessions() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session outlived its client by 5 s (disconnect delay 1 s)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn native_protocol_runs_inside_a_session() {
    let server = server_with(|_| {}).await;
    let p = "/sockjs/000/n1";
    assert_eq!(
        req(&server, "POST", &format!("{p}/xhr"), "", "", ALL)
            .await
            .body,
        "o\n"
    );
    let hello = req(&server, "POST", &format!("{p}/xhr"), "", "", ALL)
        .await
        .body;
    assert!(
        hello.starts_with("a[\"{\\\"type\\\":\\\"hello\\\""),
        "{hello}"
    );
    let op = r#"["{\"op\":\"subscribe\",\"id\":1,\"topic\":\"t\"}","{\"op\":\"publish\",\"topic\":\"t\",\"text\":\"hi\"}"]"#;
    req(&server, "POST", &format!("{p}/xhr_send"), "", op, ALL).await;
    let got = req(&server, "POST", &format!("{p}/xhr"), "", "", ALL)
        .await
        .body;
    assert!(
        got.contains("\\\"type\\\":\\\"ok\\\"") && got.contains("\\\"text\\\":\\\"hi\\\""),
        "{got}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_raw_websocket_transport_runs_the_application_unframed() {
    use futures::SinkExt;
    use yawc::{Frame, OpCode, WebSocket};
    async fn next(ws: &mut yawc::TcpWebSocket) -> Frame {
        tokio::time::timeout(Duration::from_secs(5), ws.next_frame())
            .await
            .expect("a frame in time")
            .expect("open")
    }
    let server = fixture();
    // Echo: each text message comes back as it was, with no `o`/`a[...]` framing.
    let url = format!("ws://{}/sockjs-test/echo/websocket", server.http());
    let mut ws = WebSocket::connect(url.parse().unwrap()).await.unwrap();
    ws.send(Frame::text("hello \"raw\"")).await.unwrap();
    let f = next(&mut ws).await;
    assert_eq!(f.opcode(), OpCode::Text);
    assert_eq!(f.payload().as_ref(), b"hello \"raw\"");
    // Close: the application's close code (3000) becomes the WebSocket close code.
    let url = format!("ws://{}/sockjs-test/close/websocket", server.http());
    let mut ws = WebSocket::connect(url.parse().unwrap()).await.unwrap();
    let f = next(&mut ws).await;
    assert_eq!(f.opcode(), OpCode::Close);
    assert_eq!(f.close_code().map(u16::from), Some(3000));
}

/// Every SockJS URL that takes XHR requests answers CORS for the request's origin: echoed
/// with credentials allowed (the literal `null` of sandboxed iframes and `file://` pages
/// too, since browsers refuse `*` with credentials), `*` when there is none.
#[tokio::test]
async fn cors_echoes_every_origin_including_null() {
    let server = fixture();
    let base = "/sockjs-test/echo";
    let requests: [(&str, &str); 7] = [
        ("OPTIONS", "/info"),
        ("GET", "/info"),
        ("POST", "/000/cors1/xhr"),
        ("OPTIONS", "/000/cors1/xhr"),
        ("OPTIONS", "/000/cors1/xhr_streaming"),
        ("OPTIONS", "/000/cors1/xhr_send"),
        ("POST", "/000/cors1/xhr_send"),
    ];
    for origin in ["null", "http://a.example"] {
        for (method, path) in requests {
            let headers =
                format!("Origin: {origin}\r\nAccess-Control-Request-Headers: x-a, x-b\r\n");
            let body = if path.ends_with("xhr_send") {
                "[\"x\"]"
            } else {
                ""
            };
            let r = req(
                &server,
                method,
                &format!("{base}{path}"),
                &headers,
                body,
                ALL,
            )
            .await;
            assert!(r.status < 300, "{method} {path}: {}", r.status);
            let echoed = format!("access-control-allow-origin: {origin}\r\n");
            assert!(
                r.head.contains(&echoed),
                "{method} {path} from {origin}: {}",
                r.head
            );
            assert!(
                r.head.contains("access-control-allow-credentials: true"),
                "{method} {path} from {origin}: {}",
                r.head
            );
            assert!(
                r.head.contains("access-control-allow-headers: x-a, x-b"),
                "{}",
                r.head
            );
        }
    }
    // xhr_streaming too (read only its prelude: the stream stays open).
    let r = req(
        &server,
        "POST",
        &format!("{base}/000/cors2/xhr_streaming"),
        "Origin: null\r\n",
        "",
        2048,
    )
    .await;
    assert!(
        r.head.contains("access-control-allow-origin: null\r\n"),
        "{}",
        r.head
    );
    let r = req(&server, "GET", &format!("{base}/info"), "", "", ALL).await;
    assert!(
        r.head.contains("access-control-allow-origin: *\r\n"),
        "{}",
        r.head
    );
    assert!(
        !r.head.contains("access-control-allow-credentials"),
        "{}",
        r.head
    );
}

/// sockjs-protocol's test_notFound: under a prefix only the greeting, `/info`, the iframe
/// page, `/websocket` and `/<server>/<session>/<transport>` exist.
#[tokio::test]
async fn everything_else_under_the_prefix_is_404() {
    let server = fixture();
    for suffix in ["", "/"] {
        let r = req(
            &server,
            "GET",
            &format!("/sockjs-test/echo{suffix}"),
            "",
            "",
            ALL,
        )
        .await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "Welcome to SockJS!\n"),
            "{suffix:?}"
        );
    }
    for suffix in [
        "/a",
        "/a.html",
        "//",
        "///",
        "/a/a",
        "/a/a/",
        "/a/",
        "/iframe.htmlx",
        "/IFRAME.html",
        "//info",
        "/info/",
        "/000/s/nope",
        "/a./a/xhr",
        "/a/a./xhr",
        "/./../xhr",
    ] {
        let r = req(
            &server,
            "GET",
            &format!("/sockjs-test/echo{suffix}"),
            "",
            "",
            ALL,
        )
        .await;
        assert_eq!(r.status, 404, "GET /sockjs-test/echo{suffix}: {}", r.body);
    }
    let r = req(
        &server,
        "GET",
        "/sockjs-test/echo/iframe-1.6.1.html",
        "",
        "",
        ALL,
    )
    .await;
    assert_eq!(r.status, 200);
}

/// A method a URL does not take: 405 with `Allow`, an empty body and no `Content-Type`.
#[tokio::test]
async fn wrong_methods_get_405_with_allow_and_no_content_type() {
    let server = fixture();
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    let cases = [
        ("POST", "/websocket", upgrade, "GET"),
        ("POST", "/websocket", "", "GET"),
        ("POST", "/000/m/websocket", upgrade, "GET"),
        ("POST", "/000/m/websocket", "", "GET"),
        ("GET", "/000/m/xhr", "", "OPTIONS, POST"),
        ("GET", "/000/m/xhr_send", "", "OPTIONS, POST"),
        ("GET", "/000/m/xhr_streaming", "", "OPTIONS, POST"),
        ("POST", "/000/m/eventsource", "", "GET"),
        ("POST", "/000/m/htmlfile", "", "GET"),
        ("GET", "/000/m/jsonp_send", "", "POST"),
        ("POST", "/info", "", "OPTIONS, GET"),
        ("DELETE", "/", "", "GET"),
    ];
    for (method, path, headers, allow) in cases {
        let r = req(
            &server,
            method,
            &format!("/sockjs-test/echo{path}"),
            headers,
            "",
            ALL,
        )
        .await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.head);
        assert!(
            r.head
                .contains(&format!("\r\nallow: {}\r\n", allow.to_ascii_lowercase())),
            "{method} {path}: {}",
            r.head
        );
        assert!(
            !r.head.contains("content-type"),
            "{method} {path}: {}",
            r.head
        );
        assert!(r.body.is_empty(), "{method} {path}: {:?}", r.body);
    }
}

/// A raw HTTP/1.0 request left open, read as it arrives.
struct Held(TcpStream, String);

impl Held {
    async fn open(server: &impl Target, method: &str, path: &str) -> Held {
        let mut s = TcpStream::connect(server.http()).await.unwrap();
        s.write_all(format!("{method} {path} HTTP/1.0\r\nContent-Length: 0\r\n\r\n").as_bytes())
            .await
            .unwrap();
        Held(s, String::new())
    }

    /// Reads until `needle` arrived (panics after 5 s); returns everything read so far.
    async fn until(&mut self, needle: &str) -> &str {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 4096];
        while !self.1.contains(needle) {
            let n = tokio::time::timeout_at(deadline, self.0.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} within 5 s; got {:?}", self.1))
                .unwrap();
            assert!(n > 0, "closed before {needle:?}; got {:?}", self.1);
            self.1.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        &self.1
    }
}

/// sockjs-protocol's test_abort_xhr_streaming: the receiver goes away while a second
/// request was told "Another connection still open"; the next request answers at once.
#[tokio::test]
async fn an_aborted_streaming_receiver_interrupts_the_session() {
    let server = fixture();
    let url = "/sockjs-test/echo/000/abort1/xhr_streaming";
    let mut first = Held::open(&server, "POST", url).await;
    first.until("o\n").await;
    let mut second = Held::open(&server, "POST", url).await;
    second
        .until("c[2010,\"Another connection still open\"]\n")
        .await;
    drop(second);
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = Held::open(&server, "POST", url).await;
    let got = third.until("\n").await.to_owned();
    let got = third
        .until(if got.contains("o\n") { "o\n" } else { "c[" })
        .await;
    assert!(
        got.ends_with("c[1002,\"Connection interrupted\"]\n") || got.ends_with("o\n"),
        "{got:?}"
    );
}

/// sockjs-protocol's test_abort_xhr_polling, and what it means for the hub: the session is
/// released at once (presence says the user left), not after the disconnect delay.
#[tokio::test]
async fn an_aborted_poll_interrupts_the_session_and_releases_it_at_once() {
    let server = server_with(|c| c.sockjs.disconnect_delay_secs = 60).await;
    let url = "/sockjs/000/abort2/xhr";
    assert_eq!(req(&server, "POST", url, "", "", ALL).await.body, "o\n");
    let hello = req(&server, "POST", url, "", "", ALL).await;
    assert!(hello.body.contains("hello"), "{}", hello.body);
    let held = Held::open(&server, "POST", url).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = req(&server, "POST", url, "", "", ALL).await;
    assert_eq!(busy.body, "c[2010,\"Another connection still open\"]\n");
    assert_eq!(server.hub().stats().sessions, 1);
    drop(held);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while server.hub().stats().sessions > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub session outlived its aborted receiver by 3 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = std::time::Instant::now();
    let next = req(&server, "POST", url, "", "", ALL).await;
    assert_eq!(next.body, "c[1002,\"Connection interrupted\"]\n");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    server.shutdown().await;
}
