//! The admin dashboard's live stream (`GET /api/admin/live`, Server-Sent Events) and the
//! cluster view (`GET /api/admin/nodes`) with the real binary: a snapshot arrives at once and
//! then about once a second and shows a client that connects; a logout ends the stream with
//! `signed_out`, and so does a token's expiry; the streams are bounded; two nodes on a real redis-server each list the other,
//! and a node that stops drops out of the list, in the API and on node A's dashboard in
//! Chromium; the id the list gives a node is the one its presence records and Engine.IO sids
//! carry.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use tidings_testkit::http::{self, request_1_0};
use tidings_testkit::redis::Redis;
use tidings_testkit::{Process, Tidings};

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));
const WAIT: Duration = Duration::from_secs(10);
/// The streams a node holds at once (`runtime/admin/live.rs`).
const MAX_LIVE_STREAMS: usize = 32;

fn admin_config() -> String {
    let hash = TIDINGS.hash_password("s3cret-admin");
    format!("[[admin.users]]\nname = \"root\"\npassword_hash = \"{hash}\"\n")
}

fn basic() -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode("root:s3cret-admin");
    format!("Authorization: Basic {b64}\r\n")
}

fn call(server: &Process, method: &str, path: &str, headers: &str) -> (u16, Value) {
    let mut headers = headers.to_owned();
    let body = if method == "POST" {
        headers.push_str("Content-Type: application/json\r\n");
        "{}"
    } else {
        ""
    };
    let resp = http::blocking(
        server.addr("http"),
        request_1_0(method, path, &headers, body),
    );
    let v = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    (resp.status, v)
}

/// The session cookie header of a fresh login as root.
fn login(server: &Process) -> String {
    let resp = http::blocking(
        server.addr("http"),
        request_1_0(
            "POST",
            "/api/admin/login",
            "Content-Type: application/json\r\n",
            r#"{"user":"root","password":"s3cret-admin"}"#,
        ),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let cookie = resp.header("set-cookie").expect("a session cookie");
    format!("Cookie: {}\r\n", cookie.split(';').next().unwrap())
}

/// A live stream read line by line (HTTP/1.0: the body ends when the server closes).
struct Live {
    reader: BufReader<TcpStream>,
    status: u16,
}

impl Live {
    fn open(server: &Process, headers: &str) -> Live {
        let s = TcpStream::connect(server.addr("http")).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        (&s).write_all(request_1_0("GET", "/api/admin/live", headers, "").as_bytes())
            .unwrap();
        let mut reader = BufReader::new(s);
        let mut head = String::new();
        let mut status = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if status == 0 {
                status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
            }
            if line.trim().is_empty() {
                break;
            }
            head.push_str(&line.to_lowercase());
        }
        if status == 200 {
            assert!(head.contains("content-type: text/event-stream"), "{head}");
        }
        Live { reader, status }
    }

    /// The next event's name and data; `None` at the end of the stream.
    fn event(&mut self) -> Option<(String, Value)> {
        let (mut name, mut data) = (String::new(), String::new());
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap() == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if !data.is_empty() {
                    return Some((name, serde_json::from_str(&data).unwrap()));
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("event: ") {
                name = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
    }

    fn snapshot(&mut self) -> Value {
        let (name, data) = self.event().expect("a snapshot");
        assert_eq!(name, "snapshot", "{data}");
        data
    }
}

#[test]
fn the_live_stream_pushes_a_snapshot_each_second_until_the_admin_logs_out() {
    let server = TIDINGS.serve().http().tcp().config(&admin_config()).start();
    let refused = Live::open(&server, "");
    assert_eq!(refused.status, 401, "no credentials, no stream");

    let cookie = login(&server);
    let mut live = Live::open(&server, &cookie);
    assert_eq!(live.status, 200);
    let first = live.snapshot();
    for part in ["node", "nodes", "topics", "connections", "queues", "events"] {
        assert!(!first[part].is_null(), "{part} in {first}");
    }
    assert_eq!(first["nodes"]["cluster"], false);
    assert_eq!(first["nodes"]["nodes"][0]["id"], first["node"]["id"]);
    assert!(
        first["node"]["connections"].get("line").is_none(),
        "{first}"
    );

    // A client connects: a later snapshot lists it, about a second after the one before.
    let mut line = TcpStream::connect(server.addr("tcp")).unwrap();
    line.write_all(b"SUB live.topic\r\n").unwrap();
    let started = Instant::now();
    let mut previous = first["at_ms"].as_u64().unwrap();
    let seen = loop {
        let s = live.snapshot();
        let at = s["at_ms"].as_u64().unwrap();
        assert!(
            at > previous,
            "snapshots move forward: {previous} then {at}"
        );
        assert!(at - previous < 2_500, "one a second: {previous} then {at}");
        previous = at;
        if s["node"]["connections"]["line"] == 1 {
            break s;
        }
        assert!(
            started.elapsed() < WAIT,
            "the line client never showed: {s}"
        );
    };
    let row = seen["connections"]["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["protocol"] == "line")
        .cloned()
        .expect("its row");
    assert_eq!(row["subscriptions"], 1, "{row}");

    // Logging out ends the stream: `signed_out`, then the server closes it.
    let (status, _) = call(&server, "POST", "/api/admin/logout", &cookie);
    assert_eq!(status, 200);
    loop {
        let (name, data) = live.event().expect("signed_out before the end");
        if name == "signed_out" {
            assert_eq!(data["type"], "signed_out");
            break;
        }
        assert_eq!(name, "snapshot");
    }
    assert!(live.event().is_none(), "the stream ends after signed_out");
    assert_eq!(
        Live::open(&server, &cookie).status,
        401,
        "the cookie is gone"
    );
}

#[test]
fn a_token_s_live_stream_ends_when_the_token_expires() {
    const SECRET: &str = "admin-live-test-secret-at-least-32-bytes";
    let server = TIDINGS
        .serve()
        .http()
        .env("TIDINGS_JWT_SECRET", SECRET)
        .config("[admin]\nadmin_tokens = true\n[auth.jwt]\nleeway_secs = 0\n")
        .start();
    let minted = TIDINGS.run(&[
        "token", "--secret", SECRET, "--sub", "ops", "--admin", "--ttl", "3s",
    ]);
    assert!(minted.success(), "{}", minted.report());
    let bearer = format!("Authorization: Bearer {}\r\n", minted.stdout.trim());
    let mut live = Live::open(&server, &bearer);
    assert_eq!(live.status, 200);
    let opened = Instant::now();
    let mut snapshots = 0;
    loop {
        let (name, _) = live.event().expect("signed_out before the end");
        if name == "signed_out" {
            break;
        }
        snapshots += 1;
        assert!(opened.elapsed() < WAIT, "the stream outlived its token");
    }
    assert!(
        snapshots >= 2,
        "snapshots while the token was valid: {snapshots}"
    );
    assert!(live.event().is_none(), "the stream ends after signed_out");
}

#[test]
fn live_streams_are_bounded() {
    let server = TIDINGS.serve().http().config(&admin_config()).start();
    let cookie = login(&server);
    let mut open: Vec<Live> = (0..MAX_LIVE_STREAMS)
        .map(|_| Live::open(&server, &cookie))
        .collect();
    assert!(open.iter().all(|l| l.status == 200));
    let over = http::blocking(
        server.addr("http"),
        request_1_0("GET", "/api/admin/live", &cookie, ""),
    );
    assert_eq!(over.status, 503, "{}", over.text());
    assert!(
        over.text().contains("too many live admin streams"),
        "{}",
        over.text()
    );
    // The JSON API still answers, and a closed stream makes room for a new one.
    assert_eq!(call(&server, "GET", "/api/admin/node", &cookie).0, 200);
    drop(open.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let mut again = Live::open(&server, &cookie);
        if again.status == 200 {
            again.snapshot();
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream's place never came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cluster_node(redis: &Redis) -> Process {
    TIDINGS
        .serve()
        .http()
        .tcp()
        .arg("--engine")
        .arg(redis.url())
        .config(&admin_config())
        .start()
}

/// Node `from`'s cluster view, polled until `wanted` holds (or the test's patience ends).
fn nodes_until(from: &Process, what: &str, wanted: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = call(from, "GET", "/api/admin/nodes", &basic());
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["cluster"], true, "{body}");
        let nodes = body["nodes"].as_array().cloned().unwrap_or_default();
        if wanted(&nodes) {
            return nodes;
        }
        assert!(Instant::now() < deadline, "{what}: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn in_a_redis_cluster_every_node_lists_every_node() {
    let Some(redis) = Redis::start() else { return };
    let a = cluster_node(&redis);
    let b = cluster_node(&redis);
    let id_of = |p: &Process| call(p, "GET", "/api/admin/node", &basic()).1["id"].clone();
    let (a_id, b_id) = (id_of(&a), id_of(&b));
    assert_ne!(a_id, b_id);

    let both = |n: &[Value]| {
        [&a_id, &b_id]
            .iter()
            .all(|id| n.iter().any(|x| &x["id"] == *id))
    };
    nodes_until(&a, "node A lists A and B", both);
    nodes_until(&b, "node B lists A and B", both);

    // A client of node B shows in node A's view of B.
    let _client = TcpStream::connect(b.addr("tcp")).unwrap();
    let nodes = nodes_until(&a, "A sees B's line client", |n| {
        n.iter()
            .any(|x| x["id"] == b_id && x["connections"]["line"] == 1)
    });
    let b_row = nodes.iter().find(|x| x["id"] == b_id).unwrap();
    assert_eq!(b_row["version"], env!("CARGO_PKG_VERSION"));
    assert!(b_row["pid"].as_u64() == Some(u64::from(b.id())), "{b_row}");

    // The live stream carries the same view.
    let mut live = Live::open(&a, &basic());
    let snap = live.snapshot();
    let listed = snap["nodes"]["nodes"].as_array().unwrap();
    assert!(listed.iter().any(|x| x["id"] == b_id), "{snap}");
    assert_eq!(snap["nodes"]["this"], a_id);

    // A node that stops drops out within its summary's TTL (3 s).
    drop(b);
    nodes_until(&a, "B is gone from A's view", |n| {
        !n.iter().any(|x| x["id"] == b_id) && n.iter().any(|x| x["id"] == a_id)
    });
}

/// What a person sees (tests/interop/admin_cluster_browser.mjs in headless Chromium): node A's
/// dashboard lists node B in its nodes table, and B's row goes when B stops.
#[test]
fn a_cluster_node_s_dashboard_shows_the_other_node_in_a_browser() {
    let Some(redis) = Redis::start() else { return };
    let a = cluster_node(&redis);
    let b = cluster_node(&redis);
    let b_id = call(&b, "GET", "/api/admin/node", &basic()).1["id"]
        .as_str()
        .expect("B's id")
        .to_owned();
    let mut cmd = tidings_testkit::interop::node(&["playwright-core"]);
    tidings_testkit::interop::chromium();
    cmd.current_dir(tidings_testkit::interop::dir())
        .arg("admin_cluster_browser.mjs")
        .arg(format!("http://{}", a.addr("http")))
        .args(["root", "s3cret-admin", &b_id]);
    let mut browser = Process::spawn_with_stdin("admin_cluster_browser.mjs", cmd);
    let first = browser.next_line(Duration::from_secs(60));
    assert!(
        first
            .as_deref()
            .is_some_and(|l| l.starts_with("ok: lists the other node")),
        "{first:?}\n{}",
        browser.output()
    );
    drop(b);
    writeln!(browser.stdin().expect("its stdin")).unwrap();
    let status = browser.wait_timeout(Duration::from_secs(30));
    browser.settle();
    assert!(status.is_some_and(|s| s.success()), "{}", browser.output());
    assert!(browser.stdout().contains("ok: the stopped node is gone"));
}

/// One process, one name: the id node A's cluster view gives node B is the id B's presence
/// lives under in Redis (its liveness key and its members' records), the tag of B's session
/// ids, and the prefix of the Engine.IO sids B hands out.
#[test]
fn a_node_has_one_id_in_the_admin_view_presence_and_engineio_sids() {
    let Some(redis) = Redis::start() else { return };
    let a = cluster_node(&redis);
    let b = cluster_node(&redis);
    let (status, this) = call(&b, "GET", "/api/admin/nodes", &basic());
    assert_eq!(status, 200, "{this}");
    let b_id = this["this"].as_str().expect("B's id").to_owned();
    nodes_until(&a, "A lists B", |n| n.iter().any(|x| x["id"] == b_id));

    // A line client on B joins room.ids (line subscriptions join presence).
    let line = TcpStream::connect(b.addr("tcp")).unwrap();
    line.set_read_timeout(Some(WAIT)).unwrap();
    let mut lines = BufReader::new(line.try_clone().unwrap());
    let mut greeting = String::new();
    lines.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("+OK tidings"), "{greeting}");
    let mut ask = |text: &str| {
        (&line).write_all(format!("{text}\r\n").as_bytes()).unwrap();
        let mut reply = String::new();
        lines.read_line(&mut reply).unwrap();
        reply.trim_end().to_owned()
    };
    assert!(ask("SUB room.ids").starts_with("+OK SUB room.ids"));
    let who = ask("WHO room.ids");
    let client = who
        .strip_prefix("+OK WHO room.ids 1 ")
        .and_then(|m| m.split('=').next())
        .and_then(|c| c.strip_prefix('c'))
        .unwrap_or_else(|| panic!("{who}"))
        .to_owned();

    // Its record in Redis names node B by the same id, under B's liveness key.
    let deadline = Instant::now() + WAIT;
    let record = loop {
        let record = redis.command(&["HGET", "tidings:p:room.ids", &client]);
        if record.starts_with('{') {
            break record;
        }
        assert!(Instant::now() < deadline, "no presence record: {record}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let record: Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["n"], b_id.as_str(), "{record}");
    let liveness = format!("tidings:pl:{b_id}");
    assert_eq!(redis.command(&["EXISTS", &liveness]), ":1");
    assert_eq!(redis.command(&["SISMEMBER", "tidings:pnodes", &b_id]), ":1");
    // The session id's tag is the id's first 21 bits.
    let client: u64 = client.parse().unwrap();
    let id_bits = u64::from_str_radix(&b_id, 16).unwrap();
    assert_eq!(client >> 32, (id_bits >> 27).max(1), "session {client}");

    // B's Engine.IO sids start with it.
    let open = http::blocking(
        b.addr("http"),
        request_1_0("GET", "/socket.io/?EIO=4&transport=polling", "", ""),
    );
    assert_eq!(open.status, 200, "{}", open.text());
    let handshake: Value =
        serde_json::from_str(open.text().strip_prefix('0').expect("an OPEN packet")).unwrap();
    let sid = handshake["sid"].as_str().expect("a sid");
    assert!(sid.starts_with(&b_id), "sid {sid} of node {b_id}");
}
