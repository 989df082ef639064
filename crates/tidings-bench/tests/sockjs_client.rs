//! The benchmark's own SockJS client (`tidings-bench sockjs-probe`) reads exactly what the
//! real `sockjs-client` reads: both subscribe to one topic on tidings' `/sockjs` over the same
//! transport, the same messages are published (quotes, backslashes, non-ASCII, the characters
//! SockJS escapes, a long one), and the two must print the same messages in the same order.
//! The streaming response limit is small, so the streaming client must also reopen its
//! response mid-way as sockjs-client does. A figure from `tidings-bench sockjs` means
//! something only if this passes.

use std::process::Command;
use std::time::Duration;
use tidings_testkit::{http, interop, Process};

const WAIT: Duration = Duration::from_secs(10);

/// Texts whose framing could go wrong.
fn texts() -> Vec<String> {
    let mut texts: Vec<String> = [
        "plain",
        "quote \" backslash \\ slash / braces {}[]",
        "unicode é ß 漢字 😀",
        "line\nbreak\ttab\r",
        "separators \u{2028} \u{2029} and \u{7f} \u{80} \u{ad} \u{fff0}",
        "<script>&amp;</script>",
        "controls \u{1} \u{1f}",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    texts.push("x".repeat(3000));
    // A burst, so frames with several messages are likely too.
    texts.extend((0..40).map(|i| format!("burst {i}")));
    texts
}

/// The stdout lines after `ready` (the probe's messages), once the probe exited cleanly.
fn finish(mut probe: Process) -> Vec<String> {
    let status = probe
        .wait_timeout(WAIT)
        .unwrap_or_else(|| panic!("a probe did not finish\n{}", probe.output()));
    assert!(status.success(), "a probe failed\n{}", probe.output());
    let out = probe.stdout();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("ready"), "{}", probe.output());
    lines.map(str::to_owned).collect()
}

fn wait_ready(probe: &mut Process) {
    let line = probe.next_line(WAIT);
    assert_eq!(line.as_deref(), Some("ready"), "{}", probe.output());
}

#[test]
fn bench_client_reads_what_sockjs_client_reads_on_every_transport() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(
        tidings_testkit::server()
            .http()
            .with(|c| c.sockjs.response_limit = 4096)
            .start(),
    );
    let addr = server.addrs().http.expect("http listener").to_string();
    let texts = texts();
    for transport in ["websocket", "xhr-streaming", "xhr-polling"] {
        let topic = format!("probe.{}", transport.replace('-', "_"));
        let count = texts.len().to_string();
        let mut ours = Command::new(env!("CARGO_BIN_EXE_tidings-bench"));
        ours.args(["sockjs-probe", "--server", &addr, "--transport", transport])
            .args(["--topic", &topic, "--count", &count]);
        let mut node = interop::node(&["sockjs-client"]);
        node.current_dir(interop::dir())
            .arg("node_sockjs_probe.mjs")
            .arg(format!("http://{addr}/sockjs"))
            .args([transport, &topic, &count]);
        let mut ours = Process::spawn(format!("tidings-bench sockjs-probe ({transport})"), ours);
        let mut node = Process::spawn(format!("node_sockjs_probe.mjs ({transport})"), node);
        wait_ready(&mut ours);
        wait_ready(&mut node);
        for text in &texts {
            let request = http::request_1_0(
                "POST",
                &format!("/api/publish/{topic}"),
                "Content-Type: text/plain; charset=utf-8\r\n",
                text,
            );
            let response = http::blocking(&addr, request);
            assert_eq!(response.status, 200, "{}", response.text());
        }
        let (ours, node) = (finish(ours), finish(node));
        assert_eq!(
            ours, node,
            "{transport}: the two clients read different messages"
        );
        let received: Vec<String> = ours
            .iter()
            .map(|line| {
                let message: String = serde_json::from_str(line).expect("a JSON string");
                let message: serde_json::Value =
                    serde_json::from_str(&message).expect("a native message");
                message["text"].as_str().expect("a text").to_owned()
            })
            .collect();
        assert_eq!(received, texts, "{transport}: not what was published");
    }
}
