//! The admin API (`/api/admin/...`) with the real binary: off unless `[admin]` is configured;
//! refused without auth; login with an argon2 hash sets an `HttpOnly; SameSite=Strict` cookie;
//! wrong passwords are refused and throttled by the login guard; HTTP Basic and admin tokens
//! work; node, topics, a topic's presence and history, connections (paged, searched), queues
//! and auth failures read; publish, unsubscribe and disconnect act on a real line client.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use tidings_testkit::http::{self, request_1_0};
use tidings_testkit::{Process, Tidings};

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));
const SECRET: &str = "admin-test-secret-at-least-32-bytes!";

fn hash_password(password: &str) -> String {
    TIDINGS.hash_password(password)
}

fn serve_with_admin() -> Process {
    let hash = hash_password("s3cret-admin");
    TIDINGS
        .serve()
        .http()
        .tcp()
        .env("TIDINGS_JWT_SECRET", SECRET)
        .config(&format!(
            "[admin]\ntoken_users = [\"ops\"]\nadmin_tokens = true\n[[admin.users]]\nname = \"root\"\npassword_hash = \"{hash}\"\n"
        ))
        .start()
}

/// `method path` with extra header lines and a JSON body.
fn call(
    server: &Process,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, Value) {
    let mut headers = headers.to_owned();
    if method == "POST" {
        headers.push_str("Content-Type: application/json\r\n");
    }
    let resp = http::blocking(
        server.addr("http"),
        request_1_0(method, path, &headers, body),
    );
    let v = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    (resp.status, resp.head, v)
}

fn login(server: &Process) -> String {
    let (status, head, body) = call(
        server,
        "POST",
        "/api/admin/login",
        "",
        r#"{"user":"root","password":"s3cret-admin"}"#,
    );
    assert_eq!(status, 200, "{head} {body}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .expect("a session cookie")
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "not over plain HTTP: {cookie}");
    format!("Cookie: {}\r\n", cookie.split(';').next().unwrap())
}

fn token(sub: &str) -> String {
    token_with(&["--sub", sub])
}

fn token_with(args: &[&str]) -> String {
    let mut all = vec!["token", "--secret", SECRET, "--ttl", "1h"];
    all.extend_from_slice(args);
    let done = TIDINGS.run(&all);
    assert!(done.success(), "{}", done.report());
    done.stdout.trim().to_owned()
}

/// Whether the server's log gets a line with `action` by the admin "root" (within 5 s: its
/// stderr is read by another thread).
fn logged(server: &Process, action: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let log = server.stderr();
        if log
            .lines()
            .any(|l| l.contains(action) && l.contains("root"))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

struct Line {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Line {
    fn connect(addr: &str) -> Line {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut line = Line {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        };
        assert!(line.read().starts_with("+OK tidings"));
        line
    }
    fn send(&mut self, text: &str) {
        self.writer
            .write_all(format!("{text}\r\n").as_bytes())
            .unwrap();
    }
    fn read(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).unwrap();
        l.trim_end().to_owned()
    }
}

#[test]
fn the_admin_api_is_off_unless_configured() {
    let server = TIDINGS.serve().http().start();
    let (status, _, _) = call(&server, "GET", "/api/admin/node", "", "");
    assert_eq!(status, 404);
    let page = http::get(server.addr("http"), "/admin");
    assert_eq!(page.status, 404);
}

#[test]
fn without_an_admin_login_everything_is_refused_and_wrong_passwords_are_throttled() {
    let server = serve_with_admin();
    for path in [
        "/api/admin/node",
        "/api/admin/connections",
        "/api/admin/topics",
        "/api/admin/queues",
    ] {
        let (status, _, _) = call(&server, "GET", path, "", "");
        assert_eq!(status, 401, "{path}");
    }
    let (status, _, _) = call(
        &server,
        "POST",
        "/api/admin/publish",
        "",
        r#"{"topic":"a","text":"x"}"#,
    );
    assert_eq!(status, 401);
    let (status, _, _) = call(
        &server,
        "GET",
        "/api/admin/node",
        "Cookie: tidings_admin=forged\r\n",
        "",
    );
    assert_eq!(status, 401);
    // A hub token whose subject is no admin.
    let (status, _, _) = call(
        &server,
        "GET",
        "/api/admin/node",
        &format!("Authorization: Bearer {}\r\n", token("ann")),
        "",
    );
    assert_eq!(status, 403);
    // Wrong passwords: refused, then the address is throttled (limits.login_failures_per_ip).
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let (status, _, _) = call(
            &server,
            "POST",
            "/api/admin/login",
            "",
            r#"{"user":"root","password":"wrong"}"#,
        );
        statuses.push(status);
    }
    assert_eq!(statuses[0], 401);
    assert_eq!(statuses[10], 429, "{statuses:?}");
    let (status, _, _) = call(
        &server,
        "POST",
        "/api/admin/login",
        "",
        r#"{"user":"root","password":"s3cret-admin"}"#,
    );
    assert_eq!(status, 429, "even the right password waits out the window");
}

#[test]
fn an_admin_sees_the_node_and_acts_on_a_connection() {
    let server = serve_with_admin();
    let cookie = login(&server);
    let (status, _, node) = call(&server, "GET", "/api/admin/node", &cookie, "");
    assert_eq!(status, 200, "{node}");
    assert_eq!(node["version"], env!("CARGO_PKG_VERSION"));
    assert!(node["rss_bytes"].as_u64().unwrap() > 0);

    let mut line = Line::connect(server.addr("tcp"));
    line.send("AUTH TOKEN not-a-token");
    assert!(line.read().starts_with("-ERR"));
    line.send("SUB admin.demo");
    assert!(line.read().starts_with("+OK SUB admin.demo"));

    let (_, _, node) = call(&server, "GET", "/api/admin/node", &cookie, "");
    assert_eq!(node["connections"]["line"], 1, "{node}");
    let (_, _, page) = call(
        &server,
        "GET",
        "/api/admin/connections?q=line&limit=10",
        &cookie,
        "",
    );
    assert_eq!(page["total"], 1, "{page}");
    let conn = &page["connections"][0];
    assert_eq!(conn["protocol"], "line");
    assert_eq!(conn["subscriptions"], 1);
    assert!(conn["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let id = conn["id"].as_str().unwrap().to_owned();
    let (_, _, none) = call(
        &server,
        "GET",
        "/api/admin/connections?q=no-such-thing",
        &cookie,
        "",
    );
    assert_eq!(none["total"], 0);

    // Publish from the admin API: the line client gets it.
    let (status, _, ack) = call(
        &server,
        "POST",
        "/api/admin/publish",
        &cookie,
        r#"{"topic":"admin.demo","text":"from the admin"}"#,
    );
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["receivers"], 1);
    assert_eq!(line.read(), "MSG admin.demo 1 from the admin");

    let (_, _, topics) = call(&server, "GET", "/api/admin/topics?q=admin", &cookie, "");
    assert_eq!(topics["topics"][0]["topic"], "admin.demo", "{topics}");
    assert_eq!(topics["topics"][0]["subscribers"], 1);
    let (_, _, topic) = call(&server, "GET", "/api/admin/topics/admin.demo", &cookie, "");
    assert_eq!(topic["members"][0]["client"], id.as_str(), "{topic}");
    assert_eq!(topic["messages"][0]["text"], "from the admin");
    let (status, _, queues) = call(&server, "GET", "/api/admin/queues", &cookie, "");
    assert_eq!(status, 200);
    assert!(queues["queues"].is_array());
    let (_, _, events) = call(&server, "GET", "/api/admin/events", &cookie, "");
    assert_eq!(events["auth_failures"][0]["user"], "(token)", "{events}");
    assert_eq!(events["auth_failures"][0]["peer"], "127.0.0.1", "{events}");

    let (_, _, detail) = call(
        &server,
        "GET",
        &format!("/api/admin/connections/{id}"),
        &cookie,
        "",
    );
    assert_eq!(detail["subscriptions"][0], "admin.demo", "{detail}");
    assert_eq!(detail["protocol"], "line");

    // Unsubscribe it from the topic: the next publish reaches nobody.
    let (status, _, _) = call(
        &server,
        "POST",
        &format!("/api/admin/connections/{id}/unsubscribe"),
        &cookie,
        r#"{"topic":"admin.demo"}"#,
    );
    assert_eq!(status, 200);
    let (_, _, ack) = call(
        &server,
        "POST",
        "/api/admin/publish",
        &cookie,
        r#"{"topic":"admin.demo","data":{"n":2}}"#,
    );
    assert_eq!(ack["receivers"], 0, "{ack}");

    // Disconnect it: the socket closes, the connection is gone from the list.
    let (status, _, _) = call(
        &server,
        "POST",
        &format!("/api/admin/connections/{id}/disconnect"),
        &cookie,
        "{}",
    );
    assert_eq!(status, 200);
    let mut rest = String::new();
    while line
        .reader
        .read_line(&mut rest)
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
    let (_, _, page) = call(&server, "GET", "/api/admin/connections?q=line", &cookie, "");
    assert_eq!(page["total"], 0, "{page}");
    let (status, _, _) = call(
        &server,
        "POST",
        &format!("/api/admin/connections/{id}/disconnect"),
        &cookie,
        "{}",
    );
    assert_eq!(status, 404);

    // Each action is in the log with the admin's name.
    for action in [
        "admin: published",
        "admin: unsubscribed",
        "admin: disconnected",
    ] {
        assert!(
            logged(&server, action),
            "{action} not logged:\n{}",
            server.stderr()
        );
    }

    // An unknown admin name is refused like a wrong password.
    let (status, _, _) = call(
        &server,
        "POST",
        "/api/admin/login",
        "",
        r#"{"user":"nobody","password":"s3cret-admin"}"#,
    );
    assert_eq!(status, 401);

    // A form post (not JSON) is refused; logout ends the session.
    let resp = http::blocking(
        server.addr("http"),
        request_1_0(
            "POST",
            "/api/admin/publish",
            &format!("{cookie}Content-Type: application/x-www-form-urlencoded\r\n"),
            "topic=a",
        ),
    );
    assert_eq!(resp.status, 415);
    let (status, _, _) = call(&server, "POST", "/api/admin/logout", &cookie, "{}");
    assert_eq!(status, 200);
    let (status, _, _) = call(&server, "GET", "/api/admin/node", &cookie, "");
    assert_eq!(status, 401);
}

#[test]
fn an_admin_sees_a_queue_and_purges_it() {
    let server = TIDINGS
        .serve()
        .http()
        .stomp()
        .config(&format!(
            "[[admin.users]]\nname = \"root\"\npassword_hash = \"{}\"\n",
            hash_password("s3cret-admin")
        ))
        .start();
    let cookie = login(&server);
    let mut stomp = TcpStream::connect(server.addr("stomp")).unwrap();
    stomp
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stomp
        .write_all(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
        .unwrap();
    let mut reader = BufReader::new(stomp.try_clone().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert_eq!(first.trim(), "CONNECTED");
    for i in 0..3 {
        stomp
            .write_all(
                format!("SEND\ndestination:/queue/jobs\nreceipt:r{i}\n\njob {i}\0").as_bytes(),
            )
            .unwrap();
    }
    let mut receipts = 0;
    let mut line = String::new();
    while receipts < 3 && reader.read_line(&mut line).unwrap() > 0 {
        if line.contains("RECEIPT") {
            receipts += 1;
        }
        line.clear();
    }
    let (_, _, queues) = call(&server, "GET", "/api/admin/queues", &cookie, "");
    assert_eq!(queues["queues"][0]["queue"], "jobs", "{queues}");
    assert_eq!(queues["queues"][0]["depth"], 3);
    assert_eq!(queues["queues"][0]["consumers"], 0);
    let (status, _, purged) = call(
        &server,
        "POST",
        "/api/admin/queues/jobs/purge",
        &cookie,
        "{}",
    );
    assert_eq!(status, 200, "{purged}");
    assert_eq!(purged["purged"], 3);
    let (_, _, queues) = call(&server, "GET", "/api/admin/queues", &cookie, "");
    assert_eq!(queues["queues"].as_array().unwrap().len(), 0, "{queues}");
    let (status, _, _) = call(
        &server,
        "POST",
        "/api/admin/queues/jobs/purge",
        &cookie,
        "{}",
    );
    assert_eq!(status, 404);
    assert!(logged(&server, "admin: purged a queue"));
}

#[test]
fn scripts_use_basic_auth_or_an_admin_token() {
    let server = serve_with_admin();
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("root:s3cret-admin");
    let (status, _, _) = call(
        &server,
        "GET",
        "/api/admin/node",
        &format!("Authorization: Basic {basic}\r\n"),
        "",
    );
    assert_eq!(status, 200);
    let (status, _, body) = call(
        &server,
        "GET",
        "/api/admin/connections",
        &format!("Authorization: Bearer {}\r\n", token("ops")),
        "",
    );
    assert_eq!(status, 200, "{body}");
    // A token with the admin right (`tidings token --admin`), accepted with admin_tokens.
    let right = token_with(&["--sub", "someone", "--admin"]);
    let (status, _, body) = call(
        &server,
        "GET",
        "/api/admin/node",
        &format!("Authorization: Bearer {right}\r\n"),
        "",
    );
    assert_eq!(status, 200, "{body}");
    // It is no right on topics: publishing with it over the HTTP API is forbidden.
    let resp = http::blocking(
        server.addr("http"),
        request_1_0(
            "POST",
            "/api/publish/a.b",
            &format!("Authorization: Bearer {right}\r\n"),
            "x",
        ),
    );
    assert_eq!(resp.status, 403, "{}", resp.text());
}

#[test]
fn over_https_the_session_cookie_is_secure() {
    let hash = hash_password("s3cret-admin");
    let mut server = TIDINGS
        .serve()
        .http()
        .arg("--https")
        .arg("127.0.0.1:0")
        .arg("--tls-self-signed")
        .config(&format!(
            "[[admin.users]]\nname = \"root\"\npassword_hash = \"{hash}\"\n"
        ))
        .start();
    server.wait_listening(&["https"]);
    let out = std::process::Command::new("curl")
        .args([
            "-sk",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "content-type: application/json",
        ])
        .args(["-d", r#"{"user":"root","password":"s3cret-admin"}"#])
        .arg(format!("https://{}/api/admin/login", server.addr("https")))
        .output()
        .expect("run curl");
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    for part in ["httponly", "samesite=strict", "secure"] {
        assert!(cookie.contains(part), "{cookie}");
    }
}

/// The dashboard in headless Chromium (tests/interop/admin_browser.mjs): wrong password
/// refused; sign in; ws, line and SSE clients appear; a feed's rate moves; publish from the
/// page reaches a subscriber; disconnect from the page closes the client and its row goes.
#[test]
fn the_dashboard_in_a_browser() {
    let hash = hash_password("s3cret-admin");
    let server = TIDINGS
        .serve()
        .http()
        .tcp()
        .config(&format!(
            "[[admin.users]]\nname = \"root\"\npassword_hash = \"{hash}\"\n"
        ))
        .start();
    let mut cmd = tidings_testkit::interop::node(&["playwright-core", "ws"]);
    tidings_testkit::interop::chromium();
    cmd.arg("admin_browser.mjs")
        .arg(format!("http://{}", server.addr("http")))
        .arg(server.addr("tcp"))
        .arg("root")
        .arg("s3cret-admin");
    tidings_testkit::interop::run(cmd, "admin_browser.mjs", Duration::from_secs(140))
        .assert_passed("ok: disconnected");
}
