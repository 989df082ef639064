//! The JavaScript client (`clients/js/tidings.js`) against the real `tidings` binary, with
//! node's own test runner (`node --test clients/js/test/`): subscribe/publish/ack, binary,
//! history, presence; reconnect with resume after a dropped connection (nothing missed, no
//! duplicates, on an exact topic and a pattern); resubscribing on the upgrade URL (the TCP
//! proxy records the request line: which topics, since/epoch and presence flag the server was
//! asked for, and that what was missed came back; a token's rights refusing a URL topic; none
//! before a password login; at most 64 topics and 3 KB on it, the rest by frame; by frame too
//! when `url.N` never comes, behind a hop that renames the URL's keys); a gap reported beyond
//! history (from a URL resume); token refresh
//! and a fresh token on reconnect; user/password login; the SSE + POST fallback when
//! WebSocket is blocked. And the binary serves the client at `/client/tidings.js`, which
//! works in headless Chromium too (tests/interop/js_client_browser.mjs: the browser's own
//! WebSocket and fetch; resumes after an admin disconnects it; behind a TCP proxy: a gap beyond
//! history, token refresh and a fresh token on reconnect, the SSE + POST fallback when the
//! proxy refuses WebSocket and resume when the stream is cut; the fallback when the WebSocket
//! port is closed).
//!
//! Needs node (18+) and the `ws` package of scripts/install-test-deps.sh (Node < 22 has no
//! global WebSocket); fails, never skips, without them.

use std::time::Duration;

use tidings_testkit::{http, interop, Tidings};

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));
const SECRET: &str = "js-client-test-secret-at-least-32-bytes";

/// The topics the tests use: `js.small.>` keeps three messages (the gap test); carol logs in
/// with a password; anonymous sessions may do everything, as without users.
const CONFIG: &str = r#"
[[hub.topics]]
pattern = "js.small.>"
history = { max_messages = 3, max_bytes = 65536, max_age_ms = 0 }

[[hub.auth.users]]
name = "carol"
password = "carol-pw"
publish = [">"]
subscribe = [">"]

[hub.auth.anonymous]
publish = [">"]
subscribe = [">"]
"#;

#[test]
fn js_client_passes_its_node_tests_against_the_real_server() {
    let server = TIDINGS
        .serve()
        .http()
        .config(CONFIG)
        .env("TIDINGS_JWT_SECRET", SECRET)
        .start();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cmd = interop::node(&["ws"]);
    cmd.arg("--test")
        .arg("--test-concurrency=1")
        .arg(root.join("clients/js/test/client.test.mjs"))
        .env("TIDINGS_HTTP", server.addr("http"))
        .env("TIDINGS_JWT_SECRET", SECRET)
        .env("TIDINGS_INTEROP", interop::dir());
    let done = interop::run(cmd, "node --test clients/js/test", Duration::from_secs(120));
    done.assert_passed("# pass");
    assert!(done.stdout.contains("# fail 0"), "{}", done.report());
}

#[test]
fn the_binary_serves_the_client_as_javascript() {
    let server = TIDINGS.serve().http().start();
    let resp = http::get(server.addr("http"), "/client/tidings.js");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("text/javascript")),
        "{resp:?}"
    );
    let shipped = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/js/tidings.js"),
    )
    .unwrap();
    assert_eq!(
        resp.body, shipped,
        "the embedded client is clients/js/tidings.js"
    );
    let types = http::get(server.addr("http"), "/client/tidings.d.ts");
    assert_eq!(types.status, 200);
}

#[test]
fn js_client_in_chromium_resumes_reports_gaps_refreshes_tokens_and_falls_back() {
    let hash = TIDINGS.hash_password("browser-admin-pw");
    let server = TIDINGS
        .serve()
        .http()
        .config(&format!(
            "{CONFIG}\n[[hub.topics]]\npattern = \"browser.small.>\"\nhistory = {{ max_messages = 3, max_bytes = 65536, max_age_ms = 0 }}\n[[admin.users]]\nname = \"root\"\npassword_hash = \"{hash}\"\n"
        ))
        .env("TIDINGS_JWT_SECRET", SECRET)
        .start();
    let mut cmd = interop::node(&["playwright-core"]);
    interop::chromium();
    cmd.arg("js_client_browser.mjs")
        .arg(format!("http://{}", server.addr("http")))
        .arg("root")
        .arg("browser-admin-pw")
        .env("TIDINGS_JWT_SECRET", SECRET);
    interop::run(cmd, "js_client_browser.mjs", Duration::from_secs(170))
        .assert_passed("ok: a proxy refuses WebSocket");
}
