//! A cluster of `tidings serve` nodes on one real `redis-server`, and what happens when parts
//! of it fail: presence is the same from every node (HTTP API, the line protocol's `WHO`,
//! the `/ws` presence request) and joins and leaves reach watchers on other nodes; a node
//! killed with SIGKILL while messages flow loses its clients, which resume on another node
//! and miss nothing, and its presence members leave (every watcher is told) within the
//! presence TTL; Redis restarted empty: subscribers are told their topic's history was lost
//! (a gap notice in their protocol), and everything recovers; Redis that answers PING but no
//! longer delivers pub/sub makes `/healthz` degraded. Without redis-server the tests say so
//! and pass (they skip).

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidings_testkit::redis::Redis;
use tidings_testkit::{Process, Tidings};

mod support;
use support::{field, get, sio, sio_ask, sio_read, ws, ws_read, LineConn, Ws, WAIT};

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));
/// `[engine] presence_ttl_ms` of the test nodes: short, so a dead node's members go fast.
const TTL_MS: u64 = 1500;

fn node(redis: &Redis) -> Process {
    node_with_ttl(redis, TTL_MS)
}

fn node_with_ttl(redis: &Redis, ttl_ms: u64) -> Process {
    TIDINGS
        .serve()
        .http()
        .tcp()
        .config(&format!(
            "[engine]\nkind = \"redis\"\nurl = \"{}\"\npresence_ttl_ms = {ttl_ms}\n\
             health_interval_ms = 200\ntimeout_ms = 500\n",
            redis.url()
        ))
        .start()
}

/// SIGKILL, by the node's PID: no shutdown, no goodbye to Redis.
fn kill_9(p: &Process) {
    signal(p, "-KILL");
}

fn signal(p: &Process, which: &str) {
    let status = Command::new("kill")
        .args([which, &p.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Polls `check` until it is true; panics with `what` after `limit`.
fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < until, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The next frame whose `type` is `kind` (others, such as presence events, are skipped).
fn ws_read_type(ws: &mut Ws, kind: &str) -> serde_json::Value {
    loop {
        let v = ws_read(ws);
        if v["type"] == kind {
            return v;
        }
    }
}

/// Sends `request`; the next frame that is not a presence event.
fn ws_ask_reply(ws: &mut Ws, request: serde_json::Value) -> serde_json::Value {
    ws.send(tungstenite::Message::text(request.to_string()))
        .unwrap();
    loop {
        let v = ws_read(ws);
        if v["type"] != "presence" {
            return v;
        }
    }
}

/// The client ids `/api/presence/<topic>` lists on the node at `http`, sorted.
fn api_members(http: SocketAddr, topic: &str) -> Vec<String> {
    let (status, body) = get(http, &format!("/api/presence/{topic}"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut ids: Vec<String> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["client"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// The client id of a `JOIN topic id user` / `LEAVE ...` line.
fn presence_client(line: &str, verb: &str, topic: &str) -> String {
    let rest = line
        .strip_prefix(&format!("{verb} {topic} "))
        .unwrap_or_else(|| panic!("expected {verb} {topic}, got {line:?}"));
    rest.split(' ').next().unwrap().to_owned()
}

#[test]
fn presence_is_the_same_from_every_node_and_a_killed_nodes_members_leave() {
    let Some(redis) = Redis::start() else { return };
    let (a, b, c) = (node(&redis), node(&redis), node(&redis));
    let http = [a.socket_addr("http"), b.socket_addr("http")];

    // A line client on A watches room.one (line subscriptions watch presence).
    let mut watcher = LineConn::open(a.socket_addr("tcp"));
    assert!(watcher
        .ask_reply("SUB room.one")
        .starts_with("+OK SUB room.one"));
    let who = watcher.ask_reply("WHO room.one");
    let watcher_id = who
        .strip_prefix("+OK WHO room.one 1 ")
        .and_then(|m| m.split('=').next())
        .unwrap_or_else(|| panic!("{who}"))
        .to_owned();

    // A /ws client on B joins, watching presence too; A's watcher is told.
    let mut on_b = ws(b.socket_addr("http"));
    let ok = ws_ask_reply(
        &mut on_b,
        serde_json::json!({"op": "subscribe", "id": 1, "topic": "room.one", "presence": true}),
    );
    assert_eq!(ok["type"], "ok", "{ok}");
    let b_id = presence_client(&watcher.read(), "JOIN", "room.one");

    // A line client on C joins: both watchers, on A and on B, are told.
    let mut on_c = LineConn::open(c.socket_addr("tcp"));
    assert!(on_c
        .ask_reply("SUB room.one")
        .starts_with("+OK SUB room.one"));
    let c_id = presence_client(&watcher.read(), "JOIN", "room.one");
    let joined = ws_read_type(&mut on_b, "presence");
    assert_eq!(
        (joined["event"].as_str(), joined["client"].as_str()),
        (Some("join"), Some(c_id.as_str())),
        "{joined}"
    );
    let mut all = vec![watcher_id.clone(), b_id.clone(), c_id.clone()];
    all.sort();
    assert_eq!(all.len(), 3, "{all:?}");
    all.dedup();
    assert_eq!(
        all.len(),
        3,
        "session ids are unique in the cluster: {all:?}"
    );

    // The same members from every node: the HTTP API, WHO, and the /ws presence request.
    for node in [&a, &b, &c] {
        let at = node.socket_addr("http");
        wait_until(WAIT, "every node lists the three members", || {
            api_members(at, "room.one") == all
        });
        let mut l = LineConn::open(node.socket_addr("tcp"));
        let who = l.ask_reply("WHO room.one");
        let mut listed: Vec<String> = who
            .strip_prefix("+OK WHO room.one 3 ")
            .unwrap_or_else(|| panic!("{who}"))
            .split(' ')
            .map(|m| m.split('=').next().unwrap().to_owned())
            .collect();
        listed.sort();
        assert_eq!(listed, all, "{who}");
    }
    let listed = ws_ask_reply(
        &mut on_b,
        serde_json::json!({"op": "presence", "id": 2, "topic": "room.one"}),
    );
    let mut ids: Vec<String> = listed["members"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|m| m["client"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, all);
    let mut s = sio(a.socket_addr("http"));
    let listed = sio_ask(&mut s, 1, serde_json::json!(["presence", "room.one"]));
    let mut ids: Vec<String> = listed["members"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|m| m["client"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, all, "Socket.IO's presence event, on A");

    // C dies without a word: its member leaves within the TTL, told to watchers on A and B.
    let killed_at = Instant::now();
    kill_9(&c);
    assert_eq!(
        presence_client(&watcher.read(), "LEAVE", "room.one"),
        c_id,
        "A's watcher is told C's member left"
    );
    let left = ws_read_type(&mut on_b, "presence");
    assert_eq!(
        (left["event"].as_str(), left["client"].as_str()),
        (Some("leave"), Some(c_id.as_str())),
        "{left}"
    );
    let took = killed_at.elapsed();
    eprintln!("the leave was told {took:?} after SIGKILL (presence_ttl_ms {TTL_MS})");
    assert!(
        took < Duration::from_millis(TTL_MS * 3),
        "the leave took {took:?} (ttl {TTL_MS} ms)"
    );
    let mut rest = vec![watcher_id, b_id.clone()];
    rest.sort();
    for at in http {
        assert_eq!(api_members(at, "room.one"), rest);
    }

    // B's client goes away: A's watcher is told at once (no TTL to wait for).
    drop(on_b);
    assert_eq!(presence_client(&watcher.read(), "LEAVE", "room.one"), b_id);
    let (_, metrics) = get(http[0], "/metrics");
    for counter in [
        "tidings_engine_presence_events_total",
        "tidings_engine_presence_remote_members 0",
    ] {
        assert!(metrics.contains(counter), "{counter} in {metrics}");
    }
}

#[test]
fn clients_of_a_node_killed_while_messages_flow_resume_elsewhere_and_miss_nothing() {
    let Some(redis) = Redis::start() else { return };
    let (a, b, c) = (node(&redis), node(&redis), node(&redis));
    let mut sub = LineConn::open(c.socket_addr("tcp"));
    let ok = sub.ask_reply("SUB feed.x");
    let epoch = field(&ok, "epoch").to_owned();

    // A publishes on A as fast as Redis numbers them, until told to stop (at most 800: the
    // topic's history holds 1000, so a resume always finds what it missed).
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (stop, done, addr) = (stop.clone(), acknowledged.clone(), a.socket_addr("tcp"));
        std::thread::spawn(move || {
            let mut p = LineConn::open(addr);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 800 {
                n += 1;
                assert_eq!(
                    p.ask_reply(&format!("PUB feed.x m{n}")),
                    format!("+OK PUB feed.x {n}")
                );
                done.store(n, Ordering::Relaxed);
            }
            n
        })
    };

    // C's subscriber reads a while, then C is killed under it.
    let mut last = 0;
    while last < 30 {
        let m = sub.read_reply();
        last += 1;
        assert_eq!(m, format!("MSG feed.x {last} m{last}"));
    }
    kill_9(&c);
    let at_kill = acknowledged.load(Ordering::Relaxed);
    while let Some(m) = sub.try_read() {
        if m.starts_with("JOIN ") || m.starts_with("LEAVE ") {
            continue;
        }
        last += 1;
        assert_eq!(m, format!("MSG feed.x {last} m{last}"));
    }

    // It resumes on B since the last offset it had: every message after it, in order, once.
    let mut resumed = LineConn::open(b.socket_addr("tcp"));
    let ok = resumed.ask_reply(&format!("SUB feed.x {last} {epoch}"));
    assert!(
        ok.starts_with(&format!("+OK SUB feed.x epoch={epoch} ")),
        "{ok}"
    );
    let next = |resumed: &mut LineConn, last: &mut u64| {
        let m = resumed.read_reply();
        *last += 1;
        assert_eq!(m, format!("MSG feed.x {last} m{last}"), "exact offsets");
    };
    // Until messages published after the kill arrived (live, on B), then the publisher stops.
    while last < at_kill + 20 {
        next(&mut resumed, &mut last);
    }
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().expect("the publisher");
    while last < published {
        next(&mut resumed, &mut last);
    }
    assert!(
        published > at_kill,
        "messages flowed across the kill ({at_kill} then {published})"
    );
}

#[test]
fn redis_restarted_empty_subscribers_are_told_and_everything_recovers() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let (a, b) = (node(&redis), node(&redis));
    let mut line_sub = LineConn::open(b.socket_addr("tcp"));
    let ok = line_sub.ask_reply("SUB alerts.x");
    let old_epoch = field(&ok, "epoch").to_owned();
    let mut ws_sub = ws(b.socket_addr("http"));
    let ok = ws_ask_reply(
        &mut ws_sub,
        serde_json::json!({"op": "subscribe", "id": 1, "topic": "alerts.x"}),
    );
    assert_eq!(ok["type"], "ok", "{ok}");
    let mut sio_sub = sio(b.socket_addr("http"));
    let ok = sio_ask(
        &mut sio_sub,
        1,
        serde_json::json!(["subscribe", "alerts.x"]),
    );
    assert_eq!(ok["ok"], true, "{ok}");
    let mut publisher = LineConn::open(a.socket_addr("tcp"));
    assert_eq!(
        publisher.ask_reply("PUB alerts.x one"),
        "+OK PUB alerts.x 1"
    );
    assert_eq!(line_sub.read_reply(), "MSG alerts.x 1 one");
    assert_eq!(ws_read_type(&mut ws_sub, "message")["offset"], 1);
    assert!(sio_read(&mut sio_sub).contains(r#""offset":1"#));
    wait_until(WAIT, "A lists B's three members", || {
        api_members(a.socket_addr("http"), "alerts.x").len() == 3
    });

    // Redis comes back empty: the topic's history and every member are gone from it.
    redis.stop();
    redis.run();

    // Subscribers are told, each in its protocol, that what came after offset 1 is lost.
    assert_eq!(
        line_sub.read_reply(),
        "-ERR gap in alerts.x after offset 1: the topic's history was lost (epoch changed)"
    );
    let gap = ws_read_type(&mut ws_sub, "gap");
    assert_eq!(
        (gap["topic"].as_str(), gap["since"].as_u64()),
        (Some("alerts.x"), Some(1)),
        "{gap}"
    );
    // Socket.IO: a `gap` event, `42["gap",{...}]`.
    let packet = sio_read(&mut sio_sub);
    let event: serde_json::Value =
        serde_json::from_str(packet.strip_prefix("42").expect("an event")).unwrap();
    assert_eq!(event[0], "gap", "{packet}");
    assert_eq!(
        (event[1]["topic"].as_str(), event[1]["since"].as_u64()),
        (Some("alerts.x"), Some(1)),
        "{packet}"
    );

    // Publishes work again (a new epoch, offsets from 1) and reach both subscribers.
    let until = Instant::now() + Duration::from_secs(15);
    let reply = loop {
        let r = publisher.ask_reply("PUB alerts.x two");
        if r.starts_with("+OK") || Instant::now() > until {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(reply, "+OK PUB alerts.x 1");
    assert_eq!(line_sub.read_reply(), "MSG alerts.x 1 two");
    let m = ws_read_type(&mut ws_sub, "message");
    assert_eq!(
        (m["offset"].as_u64(), m["text"].as_str()),
        (Some(1), Some("two"))
    );
    assert_ne!(m["epoch"].as_str(), Some(old_epoch.as_str()));

    // B wrote its members again: A lists them; both nodes are healthy; reconnects counted.
    wait_until(Duration::from_secs(10), "A lists B's members again", || {
        api_members(a.socket_addr("http"), "alerts.x").len() == 3
    });
    for n in [&a, &b] {
        wait_until(Duration::from_secs(10), "/healthz ok again", || {
            get(n.socket_addr("http"), "/healthz").0 == 200
        });
    }
    let (_, metrics) = get(b.socket_addr("http"), "/metrics");
    let reconnects: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tidings_engine_pubsub_reconnects_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(reconnects >= 1, "{metrics}");
    assert!(
        metrics.contains("tidings_engine_presence_resyncs_total"),
        "{metrics}"
    );
}

#[test]
fn healthz_is_degraded_when_pubsub_stops_delivering_though_redis_answers_ping() {
    let Some(redis) = Redis::start() else { return };
    let a = node(&redis);
    let http = a.socket_addr("http");
    wait_until(WAIT, "healthy", || get(http, "/healthz").0 == 200);
    let mut publisher = LineConn::open(a.socket_addr("tcp"));
    assert_eq!(publisher.ask_reply("PUB t.x one"), "+OK PUB t.x 1");

    // PUBLISH refused to the server's user (ACL): nothing published comes back through
    // pub/sub, yet Redis answers PING and every other command, and subscriptions stay up.
    assert_eq!(
        redis.command(&["ACL", "SETUSER", "default", "-publish"]),
        "+OK"
    );
    assert_eq!(redis.command(&["PING"]), "+PONG");
    let mut degraded = String::new();
    wait_until(Duration::from_millis(2500), "/healthz degraded", || {
        let (status, body) = get(http, "/healthz");
        degraded = body;
        status == 503
    });
    assert!(
        degraded.contains("no redis pub/sub round trip"),
        "{degraded}"
    );
    assert_eq!(
        redis.command(&["ACL", "SETUSER", "default", "+publish"]),
        "+OK"
    );
    wait_until(
        Duration::from_secs(5),
        "/healthz ok once PUBLISH is allowed again",
        || get(http, "/healthz").0 == 200,
    );

    // The engine's figures: one publish timed, no errors, round trips measured.
    let (_, metrics) = get(http, "/metrics");
    for row in [
        "tidings_engine_publish_seconds_count 1\n",
        "tidings_engine_publish_errors_total 0\n",
        "# TYPE tidings_engine_health_round_trip_seconds gauge\n",
        "# TYPE tidings_engine_publish_seconds histogram\n",
    ] {
        assert!(metrics.contains(row), "{row} in {metrics}");
    }
}

#[test]
fn a_node_stopped_cleanly_takes_its_members_out_at_once() {
    let Some(redis) = Redis::start() else { return };
    // B would keep its members for a minute if it died; stopped with SIGTERM it says goodbye.
    let (a, mut b) = (node(&redis), node_with_ttl(&redis, 60_000));
    let mut watcher = LineConn::open(a.socket_addr("tcp"));
    assert!(watcher
        .ask_reply("SUB room.two")
        .starts_with("+OK SUB room.two"));
    let mut on_b = LineConn::open(b.socket_addr("tcp"));
    assert!(on_b
        .ask_reply("SUB room.two")
        .starts_with("+OK SUB room.two"));
    let b_id = presence_client(&watcher.read(), "JOIN", "room.two");

    signal(&b, "-TERM");
    assert_eq!(
        presence_client(&watcher.read(), "LEAVE", "room.two"),
        b_id,
        "told well before B's 60 s presence TTL"
    );
    assert!(b.wait_timeout(WAIT).is_some(), "B exited");
    assert_eq!(api_members(a.socket_addr("http"), "room.two").len(), 1);
}
