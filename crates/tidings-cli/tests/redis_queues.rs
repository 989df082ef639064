//! STOMP queues across nodes through Redis, end to end: a real `redis-server` on a free
//! port and several `tidings serve` nodes with `[engine] kind = "redis"`, stopped by PID when
//! the test ends. A queue with consumers on three nodes delivers each message to exactly one
//! of them; a NACK redelivers (to another consumer when there is one); the messages a
//! `kill -9`ed node's consumer held go to consumers on the other nodes after the claim
//! timeout (and not before, while it lives); a full queue refuses with an ERROR, a
//! transaction of queue SENDs commits all or none; stomp.py and @stomp/stompjs run their
//! scenarios against a node on Redis; the admin API of any node shows a queue's cluster-wide
//! counts and purges what waits (not what a consumer on another node holds). Without
//! redis-server the tests say so and pass (they
//! skip).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidings_testkit::redis::Redis;
use tidings_testkit::stomp::{header, Frame, Stomp};
use tidings_testkit::{interop, Process, Tidings};

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));
/// The claim timeout of these nodes: small, so a dead node's messages move within the test.
const CLAIM_MS: u64 = 1000;

/// A node on `redis` with the STOMP listener, a 1 s claim timeout and `extra` config.
fn node(redis: &Redis, extra: &str) -> Process {
    let config = format!(
        "[engine]\nkind = \"redis\"\nurl = \"{}\"\nqueue_claim_ms = {CLAIM_MS}\n{extra}",
        redis.url()
    );
    TIDINGS.serve().stomp().config(&config).start()
}

fn stomp(node: &Process) -> Stomp {
    Stomp::open(node.socket_addr("stomp"))
}

/// SUBSCRIBE to `/queue/<queue>` and wait for its RECEIPT (the consumer is then registered).
fn consume(c: &mut Stomp, queue: &str, ack: &str, prefetch: u32) {
    let dest = format!("/queue/{queue}");
    let prefetch = prefetch.to_string();
    c.send(
        "SUBSCRIBE",
        &[
            ("id", "s1"),
            ("destination", &dest),
            ("ack", ack),
            ("prefetch-count", &prefetch),
            ("receipt", "sub"),
        ],
        "",
    );
    let f = c.read();
    assert_eq!((f.0.as_str(), header(&f, "receipt-id")), ("RECEIPT", "sub"));
}

/// SENDs `bodies` to `/queue/<queue>`, each with a receipt, and waits for every RECEIPT.
fn publish(c: &mut Stomp, queue: &str, bodies: &[String]) {
    let dest = format!("/queue/{queue}");
    for (i, body) in bodies.iter().enumerate() {
        let receipt = format!("p{i}");
        c.send(
            "SEND",
            &[("destination", &dest), ("receipt", &receipt)],
            body,
        );
    }
    for i in 0..bodies.len() {
        let f = c.read();
        assert_eq!(f.0, "RECEIPT", "{f:?}");
        assert_eq!(header(&f, "receipt-id"), format!("p{i}"));
    }
}

fn message(c: &mut Stomp) -> Frame {
    let f = c.read();
    assert_eq!(f.0, "MESSAGE", "{f:?}");
    f
}

fn redelivered(f: &Frame) -> bool {
    f.1.iter().any(|(n, v)| n == "redelivered" && v == "true")
}

fn ack(c: &mut Stomp, command: &str, f: &Frame) {
    c.send(command, &[("id", header(f, "ack"))], "");
}

/// Nothing for `c` during `wait`.
fn assert_quiet(c: &mut Stomp, wait: Duration, why: &str) {
    if let Some(f) = c.try_read(wait) {
        panic!("{why}: got {f:?}");
    }
}

#[test]
fn a_queue_with_consumers_on_three_nodes_delivers_each_message_exactly_once() {
    let Some(redis) = Redis::start() else { return };
    let nodes: Vec<Process> = (0..3).map(|_| node(&redis, "")).collect();
    const N: usize = 90;
    let mut consumers = Vec::new();
    for n in &nodes {
        let mut c = stomp(n);
        consume(&mut c, "jobs", "client-individual", 5);
        consumers.push(c);
    }
    let total = Arc::new(AtomicUsize::new(0));
    let got: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let readers: Vec<_> = consumers
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let (total, got) = (total.clone(), got.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut all_seen: Option<Instant> = None;
                while Instant::now() < deadline {
                    if let Some(f) = c.try_read(Duration::from_millis(100)) {
                        assert_eq!(f.0, "MESSAGE", "{f:?}");
                        got.lock().unwrap().push((i, f.2.clone()));
                        total.fetch_add(1, Ordering::SeqCst);
                        // A consumer that works a while per message (as real ones do), so
                        // two nodes cannot drain the queue before the third one's fetch on
                        // a loaded machine: every node's consumer must take part.
                        std::thread::sleep(Duration::from_millis(25));
                        ack(&mut c, "ACK", &f);
                        continue;
                    }
                    // Once all came, listen a while longer: a duplicate would show up here
                    // (an ACK that did not reach Redis would be claimed again after 1 s).
                    if total.load(Ordering::SeqCst) >= N {
                        let since = *all_seen.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_millis(CLAIM_MS * 2) {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    let mut publisher = stomp(&nodes[0]);
    let bodies: Vec<String> = (0..N).map(|i| format!("job-{i}")).collect();
    publish(&mut publisher, "jobs", &bodies);
    for r in readers {
        r.join().unwrap();
    }
    let got = got.lock().unwrap();
    let mut seen: Vec<&str> = got.iter().map(|(_, b)| b.as_str()).collect();
    seen.sort_unstable();
    let mut want: Vec<&str> = bodies.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(
        seen, want,
        "each message exactly once: none missing, none twice"
    );
    let mut per: HashMap<usize, usize> = HashMap::new();
    for (i, _) in got.iter() {
        *per.entry(*i).or_default() += 1;
    }
    assert_eq!(per.len(), 3, "every node's consumer took part: {per:?}");
}

#[test]
fn a_nack_redelivers_to_another_consumer_or_back_to_the_only_one() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis, ""), node(&redis, ""));
    // Two consumers on one node: a NACKed message goes to the other one.
    let (mut c1, mut c2) = (stomp(&a), stomp(&a));
    consume(&mut c1, "work", "client-individual", 1);
    consume(&mut c2, "work", "client-individual", 1);
    let mut publisher = stomp(&b);
    publish(&mut publisher, "work", &["w1".into()]);
    let (first, mut other) = match c1.try_read(Duration::from_secs(5)) {
        Some(f) => ((f, c1), c2),
        None => ((message(&mut c2), c2), c1),
    };
    let (f, mut nacker) = first;
    assert_eq!((f.2.as_str(), redelivered(&f)), ("w1", false));
    ack(&mut nacker, "NACK", &f);
    let again = message(&mut other);
    assert_eq!(again.2, "w1");
    assert!(redelivered(&again), "{again:?}");
    ack(&mut other, "ACK", &again);
    // Acknowledged for good: not claimed again after the claim timeout.
    assert_quiet(
        &mut nacker,
        Duration::from_millis(CLAIM_MS * 2),
        "after the ACK",
    );
    assert_quiet(&mut other, Duration::from_millis(100), "after the ACK");

    // The only consumer of the cluster NACKs: the message goes back to Redis and comes
    // back to it, marked redelivered.
    let mut only = stomp(&b);
    consume(&mut only, "solo", "client", 10);
    publish(&mut publisher, "solo", &["s1".into()]);
    let f = message(&mut only);
    assert_eq!((f.2.as_str(), redelivered(&f)), ("s1", false));
    ack(&mut only, "NACK", &f);
    let again = message(&mut only);
    assert_eq!(again.2, "s1");
    assert!(redelivered(&again), "{again:?}");
    ack(&mut only, "ACK", &again);
    assert_quiet(
        &mut only,
        Duration::from_millis(CLAIM_MS * 2),
        "after the ACK",
    );
}

#[test]
fn messages_held_by_a_killed_node_go_to_consumers_on_the_others_after_the_claim_timeout() {
    let Some(redis) = Redis::start() else { return };
    let (mut doomed, survivor) = (node(&redis, ""), node(&redis, ""));
    let mut holder = stomp(&doomed);
    consume(&mut holder, "tasks", "client", 5);
    let mut publisher = stomp(&survivor);
    let bodies: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    publish(&mut publisher, "tasks", &bodies);
    let held: Vec<String> = (0..5).map(|_| message(&mut holder).2).collect();
    assert_eq!(held, bodies);

    // While the holder's node lives, it renews its lease: nothing moves, however long.
    let mut taker = stomp(&survivor);
    consume(&mut taker, "tasks", "client-individual", 10);
    assert_quiet(
        &mut taker,
        Duration::from_millis(CLAIM_MS * 3),
        "a live node's unacknowledged messages were taken",
    );

    doomed.kill();
    let killed = Instant::now();
    let mut moved = Vec::new();
    for _ in 0..5 {
        let f = taker
            .try_read(Duration::from_secs(10))
            .expect("claimed in time");
        assert_eq!(f.0, "MESSAGE", "{f:?}");
        assert!(redelivered(&f), "{f:?}");
        moved.push(f.2.clone());
        ack(&mut taker, "ACK", &f);
    }
    assert!(
        killed.elapsed() < Duration::from_millis(CLAIM_MS * 5),
        "claimed after {:?}",
        killed.elapsed()
    );
    moved.sort();
    assert_eq!(moved, bodies);
    assert_quiet(
        &mut taker,
        Duration::from_millis(CLAIM_MS * 2),
        "after the ACKs",
    );
}

#[test]
fn a_full_queue_refuses_with_an_error_and_a_transaction_commits_all_or_none() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (
        node(&redis, "[hub.queues]\nmax_messages = 3\n"),
        node(&redis, ""),
    );
    let mut p = stomp(&a);
    // One SEND, then a transaction of two: all three stored (RECEIPT after Redis).
    publish(&mut p, "box", &["m1".into()]);
    p.send("BEGIN", &[("transaction", "t1")], "");
    for body in ["m2", "m3"] {
        p.send(
            "SEND",
            &[("destination", "/queue/box"), ("transaction", "t1")],
            body,
        );
    }
    p.send("COMMIT", &[("transaction", "t1"), ("receipt", "c1")], "");
    let f = p.read();
    assert_eq!((f.0.as_str(), header(&f, "receipt-id")), ("RECEIPT", "c1"));
    // A transaction that would pass the bound is refused whole.
    let mut t = stomp(&a);
    t.send("BEGIN", &[("transaction", "t2")], "");
    t.send(
        "SEND",
        &[("destination", "/queue/box"), ("transaction", "t2")],
        "too many",
    );
    t.send("COMMIT", &[("transaction", "t2"), ("receipt", "c2")], "");
    let f = t.read();
    assert_eq!(f.0, "ERROR", "{f:?}");
    assert!(header(&f, "message").contains("full"), "{f:?}");
    // So is a SEND.
    p.send(
        "SEND",
        &[("destination", "/queue/box"), ("receipt", "r4")],
        "m4",
    );
    let f = p.read();
    assert_eq!(f.0, "ERROR", "{f:?}");
    assert_eq!(header(&f, "receipt-id"), "r4");
    assert!(header(&f, "message").contains("full"), "{f:?}");
    // Nothing accepted was dropped, nothing refused was stored: a consumer on another node
    // gets exactly the three.
    let mut c = stomp(&b);
    consume(&mut c, "box", "auto", 10);
    let got: Vec<String> = (0..3).map(|_| message(&mut c).2).collect();
    assert_eq!(got, ["m1", "m2", "m3"]);
    assert_quiet(&mut c, Duration::from_millis(500), "more than was accepted");
}

/// A node on the Redis engine with every listener the interop programs use, and short
/// heart-beats (their scenarios show a silent peer dropped), as `stomp_interop.rs` runs them.
fn interop_node(redis: &Redis) -> Process {
    let config = format!(
        "[engine]\nkind = \"redis\"\nurl = \"{}\"\n\
         [stomp_broker]\nheart_beat_send_ms = 200\nheart_beat_receive_ms = 200\n",
        redis.url()
    );
    TIDINGS.serve().http().tcp().stomp().config(&config).start()
}

/// stomp.py, the real third-party client, runs its whole scenario list (pub/sub, queues in
/// each ack mode, redelivery after a consumer dies, NACK, transactions, heart-beats,
/// cross-protocol traffic) against a node on the Redis engine, as it does in memory
/// (`stomp_interop.rs`).
#[test]
fn stomp_py_runs_its_scenarios_against_a_node_on_redis() {
    let Some(redis) = Redis::start() else { return };
    let n = interop_node(&redis);
    let mut cmd = interop::python("stomp, websockets");
    cmd.arg("py_stomp_client.py")
        .args(["tcp", n.addr("stomp"), "--line", n.addr("tcp"), "--ws"])
        .arg(format!("ws://{}/ws", n.addr("http")));
    interop::run(
        cmd,
        "py_stomp_client.py tcp (redis)",
        Duration::from_secs(60),
    )
    .assert_passed("ok: all ");
}

/// @stomp/stompjs (over WebSocket at `/stomp`) runs its scenarios against a node on Redis.
#[test]
fn stompjs_runs_its_scenarios_against_a_node_on_redis() {
    let Some(redis) = Redis::start() else { return };
    let n = interop_node(&redis);
    let mut cmd = interop::node(&["@stomp/stompjs", "@stomp/tcp-wrapper", "ws"]);
    cmd.arg("node_stomp_client.mjs")
        .arg("ws")
        .arg(format!("ws://{}/stomp", n.addr("http")))
        .args(["--line", n.addr("tcp"), "--native"])
        .arg(format!("ws://{}/ws", n.addr("http")));
    interop::run(
        cmd,
        "node_stomp_client.mjs ws (redis)",
        Duration::from_secs(60),
    )
    .assert_passed("ok: all ");
}

#[test]
fn with_redis_down_a_queue_send_is_refused_plainly_and_works_again_when_it_is_back() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let n = node(&redis, "");
    redis.stop();
    let mut p = stomp(&n);
    p.send(
        "SEND",
        &[("destination", "/queue/later"), ("receipt", "r1")],
        "lost?",
    );
    let f = p.read();
    assert_eq!(f.0, "ERROR", "{f:?}");
    assert_eq!(header(&f, "receipt-id"), "r1");
    assert!(header(&f, "message").contains("unavailable"), "{f:?}");
    redis.run();
    // The connection manager reconnects by itself: the next SEND is stored (a first try
    // may still meet the old connection's failure, so a refused one is retried).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut p = stomp(&n);
        p.send(
            "SEND",
            &[("destination", "/queue/later"), ("receipt", "r2")],
            "stored",
        );
        let f = p.read();
        if f.0 == "RECEIPT" {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {f:?}");
    }
    let mut c = stomp(&n);
    consume(&mut c, "later", "auto", 10);
    assert_eq!(message(&mut c).2, "stored");
    assert_quiet(
        &mut c,
        Duration::from_millis(500),
        "the refused SEND was stored",
    );
}

/// A node on `redis` with HTTP and the admin user `root` (HTTP Basic below).
fn admin_node(redis: &Redis) -> Process {
    let config = format!(
        "[engine]\nkind = \"redis\"\nurl = \"{}\"\nqueue_claim_ms = {CLAIM_MS}\n[[admin.users]]\nname = \"root\"\npassword_hash = \"{}\"\n",
        redis.url(),
        TIDINGS.hash_password("s3cret-admin")
    );
    TIDINGS.serve().http().stomp().config(&config).start()
}

/// `method path` on the admin API as `root`: the status and the JSON answer.
fn admin(node: &Process, method: &str, path: &str) -> (u16, serde_json::Value) {
    let body = if method == "POST" { "{}" } else { "" };
    admin_with(node, method, path, body)
}

/// `admin` with a request body.
fn admin_with(node: &Process, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("root:s3cret-admin");
    let headers = format!("Authorization: Basic {basic}\r\nContent-Type: application/json\r\n");
    let resp = tidings_testkit::http::blocking(
        node.addr("http"),
        tidings_testkit::http::request_1_0(method, path, &headers, body),
    );
    let v = serde_json::from_slice(&resp.body).unwrap_or(serde_json::Value::Null);
    (resp.status, v)
}

/// `queue`'s row in `node`'s admin view once `ready` accepts it (within 10 s).
fn queue_row(
    node: &Process,
    queue: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, view) = admin(node, "GET", "/api/admin/queues");
        assert_eq!(status, 200, "{view}");
        let row = view["queues"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["queue"] == queue).cloned())
            .unwrap_or(serde_json::Value::Null);
        if ready(&row) {
            return row;
        }
        assert!(Instant::now() < deadline, "{queue} never as wanted: {view}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_admin_of_any_node_sees_a_queue_in_redis_and_purges_what_waits_not_what_is_held() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (admin_node(&redis), admin_node(&redis));
    // A consumer on A holds m1 unacknowledged (prefetch 1: it takes nothing more).
    let mut holder = stomp(&a);
    consume(&mut holder, "backlog", "client-individual", 1);
    let mut publisher = stomp(&b);
    publish(&mut publisher, "backlog", &["m1".into()]);
    assert_eq!(message(&mut holder).2, "m1");
    // A consumer on B takes m2 and goes away: m2 is handed back to Redis, waiting again.
    let mut leaver = stomp(&b);
    consume(&mut leaver, "backlog", "client", 1);
    publish(&mut publisher, "backlog", &["m2".into()]);
    assert_eq!(message(&mut leaver).2, "m2");
    drop(leaver);
    // m3 and m4 nobody can take.
    publish(&mut publisher, "backlog", &["m3".into(), "m4".into()]);

    // B's admin sees the cluster: three waiting, one held by a consumer on the other node.
    let row = queue_row(&b, "backlog", |r| r["depth"] == 3 && r["unacked"] == 1);
    assert_eq!(row["consumers"], 1, "{row}");
    assert_eq!(row["published"], 4, "{row}");

    let (status, purged) = admin(&b, "POST", "/api/admin/queues/backlog/purge");
    assert_eq!(status, 200, "{purged}");
    assert_eq!(purged, serde_json::json!({"queue": "backlog", "purged": 3}));
    queue_row(&b, "backlog", |r| r["depth"] == 0 && r["unacked"] == 1);
    let (status, _) = admin(&b, "POST", "/api/admin/queues/nothing-here/purge");
    assert_eq!(status, 404);
    let logged = || {
        b.stderr()
            .lines()
            .any(|l| l.contains("admin: purged a queue") && l.contains("root"))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !logged() {
        assert!(Instant::now() < deadline, "the purge was not logged");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A consumer connecting afterwards gets nothing purged; m1, held through the purge,
    // comes to it once its holder leaves without acknowledging.
    let mut late = stomp(&b);
    consume(&mut late, "backlog", "client", 10);
    assert_quiet(
        &mut late,
        Duration::from_millis(CLAIM_MS * 2),
        "after the purge",
    );
    drop(holder);
    let f = message(&mut late);
    assert_eq!(f.2, "m1");
    assert!(redelivered(&f), "{f:?}");
    assert_quiet(
        &mut late,
        Duration::from_millis(CLAIM_MS * 2),
        "only m1 was left",
    );
}

/// The admin's publish goes through Redis like every protocol's: numbered there, delivered on
/// every node (before, it went to the node's own hub, which refuses appends in Redis mode).
#[test]
fn the_admins_publish_on_one_node_reaches_subscribers_on_another() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (admin_node(&redis), admin_node(&redis));
    let mut sub = Stomp::open(a.socket_addr("stomp"));
    sub.send(
        "SUBSCRIBE",
        &[
            ("id", "s1"),
            ("destination", "/topic/news.x"),
            ("receipt", "r0"),
        ],
        "",
    );
    assert_eq!(header(&sub.read(), "receipt-id"), "r0");
    let (status, published) = admin_with(
        &b,
        "POST",
        "/api/admin/publish",
        r#"{"topic":"news.x","text":"from the admin"}"#,
    );
    assert_eq!(status, 200, "{published}");
    assert_eq!(published["offset"], 1, "{published}");
    let m = sub.read();
    assert_eq!(m.0, "MESSAGE", "{m:?}");
    assert_eq!(m.2, "from the admin");
    assert_eq!(header(&m, "offset"), "1");
}
