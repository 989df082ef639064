//! The Redis engine end to end: a real `redis-server` (Debian's, installed by
//! `scripts/install-test-deps.sh`) on a free port in a temporary directory, and several
//! `tidings serve --engine redis://...` nodes, all stopped by PID when the test ends. A
//! message published on one node (line protocol, `/ws`, STOMP, Socket.IO, UDP) reaches
//! subscribers on the others with one offset and epoch; a client resuming "since N" on another
//! node (line, `/ws`, STOMP, Socket.IO, SSE with `Last-Event-ID`, `/poll`) gets exactly what it
//! missed; with Redis down, publishes are refused plainly on every protocol (a STOMP ERROR, a
//! Socket.IO nack, a UDP error reply) and `/healthz` says so, and the node recovers when Redis
//! is back. Without redis-server the tests say so and
//! pass (they skip).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tidings_testkit::redis::Redis;
use tidings_testkit::stomp::{header, Stomp};
use tidings_testkit::{Process, Tidings};

mod support;
use support::{
    field, get, sio, sio_ask, sio_connect, sio_read, ws, ws_ask, ws_read, LineConn, WAIT,
};

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));

fn node(redis: &Redis) -> Process {
    TIDINGS
        .serve()
        .http()
        .tcp()
        .stomp()
        .udp()
        .arg("--engine")
        .arg(redis.url())
        .start()
}

/// An SSE response, read event by event (blocking, 5 s each): (event, data, id).
struct Sse(BufReader<TcpStream>);

impl Sse {
    fn open(addr: SocketAddr, query: &str, last_event_id: Option<&str>) -> Sse {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut r = BufReader::new(s);
        let extra = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        write!(
            r.get_mut(),
            "GET /sse?{query} HTTP/1.0\r\nHost: x\r\n{extra}\r\n"
        )
        .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.contains(" 200 "), "{line}");
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line.trim_end().is_empty() {
                break;
            }
        }
        Sse(r)
    }

    fn event(&mut self) -> (String, serde_json::Value, Option<String>) {
        let (mut event, mut data, mut id) = (String::new(), None, None);
        loop {
            let mut line = String::new();
            self.0.read_line(&mut line).expect("an event in time");
            assert!(!line.is_empty(), "the stream ended");
            let line = line.trim_end();
            if line.is_empty() {
                if let Some(data) = data.take() {
                    return (event, data, id);
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).unwrap());
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_owned());
            }
        }
    }
}

#[test]
fn a_stomp_send_on_one_node_reaches_ws_and_stomp_on_another_with_its_offset() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis), node(&redis));
    let mut on_b = ws(b.socket_addr("http"));
    let ok = ws_ask(
        &mut on_b,
        serde_json::json!({"op": "subscribe", "id": 1, "topic": "quotes.x"}),
    );
    let epoch = ok["epoch"].as_str().expect("an epoch").to_owned();
    let mut stomp_b = Stomp::open(b.socket_addr("stomp"));
    stomp_b.send(
        "SUBSCRIBE",
        &[
            ("id", "s1"),
            ("destination", "/topic/quotes.x"),
            ("receipt", "r0"),
        ],
        "",
    );
    assert_eq!(header(&stomp_b.read(), "receipt-id"), "r0");

    // SEND on A: the RECEIPT comes once Redis numbered it.
    let mut stomp_a = Stomp::open(a.socket_addr("stomp"));
    for (i, body) in ["one", "two"].iter().enumerate() {
        let receipt = format!("r{}", i + 1);
        stomp_a.send(
            "SEND",
            &[("destination", "/topic/quotes.x"), ("receipt", &receipt)],
            body,
        );
        let r = stomp_a.read();
        assert_eq!(
            (r.0.as_str(), header(&r, "receipt-id")),
            ("RECEIPT", receipt.as_str())
        );
    }
    for (offset, text) in [(1, "one"), (2, "two")] {
        let m = ws_read(&mut on_b);
        assert_eq!(
            (
                m["offset"].as_u64(),
                m["text"].as_str(),
                m["epoch"].as_str()
            ),
            (Some(offset), Some(text), Some(epoch.as_str())),
            "{m}"
        );
        let f = stomp_b.read();
        assert_eq!((f.0.as_str(), f.2.as_str()), ("MESSAGE", text));
        assert_eq!(header(&f, "offset"), offset.to_string());
        assert_eq!(header(&f, "epoch"), epoch);
    }

    // A STOMP SUBSCRIBE resuming since 1 on another node replays exactly offset 2.
    let mut resumed = Stomp::open(b.socket_addr("stomp"));
    resumed.send(
        "SUBSCRIBE",
        &[
            ("id", "s2"),
            ("destination", "/topic/quotes.x"),
            ("since", "1"),
            ("epoch", &epoch),
            ("receipt", "r9"),
        ],
        "",
    );
    assert_eq!(header(&resumed.read(), "receipt-id"), "r9");
    let f = resumed.read();
    assert_eq!(
        (f.0.as_str(), f.2.as_str(), header(&f, "offset")),
        ("MESSAGE", "two", "2")
    );

    // A DISCONNECT right after a SEND: its RECEIPT waits for the SEND's (Redis answered).
    let mut quick = Stomp::open(a.socket_addr("stomp"));
    quick.send(
        "SEND",
        &[("destination", "/topic/quotes.x"), ("receipt", "sent")],
        "bye",
    );
    quick.send("DISCONNECT", &[("receipt", "bye")], "");
    assert_eq!(header(&quick.read(), "receipt-id"), "sent");
    assert_eq!(header(&quick.read(), "receipt-id"), "bye");
    let f = resumed.read();
    assert_eq!((f.2.as_str(), header(&f, "offset")), ("bye", "3"));

    // A transaction's SENDs to topics are committed all together in Redis: RECEIPT after.
    stomp_a.send("BEGIN", &[("transaction", "t1")], "");
    for (topic, body) in [("quotes.x", "three"), ("quotes.y", "other")] {
        let dest = format!("/topic/{topic}");
        stomp_a.send(
            "SEND",
            &[("destination", &dest), ("transaction", "t1")],
            body,
        );
    }
    stomp_a.send("COMMIT", &[("transaction", "t1"), ("receipt", "c1")], "");
    assert_eq!(header(&stomp_a.read(), "receipt-id"), "c1");
    let f = resumed.read();
    assert_eq!((f.2.as_str(), header(&f, "offset")), ("three", "4"));
    let mut line = LineConn::open(b.socket_addr("tcp"));
    assert!(line.ask("HIST quotes.y 0").starts_with("+OK HIST quotes.y"));
    assert_eq!(line.read(), "MSG quotes.y 1 other");

    // Topic SENDs cannot share a transaction with a queue (committed on this node only).
    stomp_a.send("BEGIN", &[("transaction", "t2")], "");
    stomp_a.send(
        "SEND",
        &[("destination", "/topic/quotes.x"), ("transaction", "t2")],
        "four",
    );
    stomp_a.send(
        "SEND",
        &[("destination", "/queue/jobs"), ("transaction", "t2")],
        "job",
    );
    stomp_a.send("COMMIT", &[("transaction", "t2")], "");
    let e = stomp_a.read();
    assert_eq!(e.0, "ERROR", "{e:?}");
    assert!(header(&e, "message").contains("cannot mix"), "{e:?}");
}

#[test]
fn an_sse_client_resuming_on_another_node_gets_exactly_what_it_missed() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis), node(&redis));
    let mut publisher = LineConn::open(a.socket_addr("tcp"));
    let mut on_a = Sse::open(a.socket_addr("http"), "topic=feed.x", None);
    let (event, _, _) = on_a.event();
    assert_eq!(event, "subscribed");
    assert_eq!(publisher.ask("PUB feed.x m1"), "+OK PUB feed.x 1");
    let (event, data, id) = on_a.event();
    assert_eq!(
        (event.as_str(), data["text"].as_str()),
        ("message", Some("m1"))
    );
    let cursor = id.expect("the last message of a batch carries the cursor");
    drop(on_a);

    // Missed while away: m2 and m3; the browser reconnects to B with Last-Event-ID.
    assert_eq!(publisher.ask("PUB feed.x m2"), "+OK PUB feed.x 2");
    assert_eq!(publisher.ask("PUB feed.x m3"), "+OK PUB feed.x 3");
    let mut on_b = Sse::open(b.socket_addr("http"), "topic=feed.x", Some(&cursor));
    let (event, hello, _) = on_b.event();
    assert_eq!(event, "subscribed");
    assert_eq!(hello["gaps"], serde_json::json!([]), "{hello}");
    let mut got = Vec::new();
    while got.len() < 2 {
        let (event, data, _) = on_b.event();
        assert_eq!(event, "message", "{data}");
        got.push((
            data["offset"].as_u64().unwrap(),
            data["text"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(got, [(2, "m2".to_owned()), (3, "m3".to_owned())]);
    // Then live, published on A.
    assert_eq!(publisher.ask("PUB feed.x m4"), "+OK PUB feed.x 4");
    let (_, data, _) = on_b.event();
    assert_eq!(
        (data["offset"].as_u64(), data["text"].as_str()),
        (Some(4), Some("m4"))
    );

    // /poll on B resumes with since= from Redis too.
    let (status, body) = get(
        b.socket_addr("http"),
        "/poll?topic=feed.x&since=2&timeout=1",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"m3\"") && body.contains("\"m4\"") && !body.contains("\"m2\""),
        "{body}"
    );
}

/// A Socket.IO (Engine.IO 4) client over WebSocket, connected to the root namespace.
#[test]
fn a_socketio_publish_on_one_node_reaches_subscribers_on_another() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis), node(&redis));
    let mut sub_b = sio(b.socket_addr("http"));
    let ok = sio_ask(&mut sub_b, 1, serde_json::json!(["subscribe", "game.1"]));
    assert_eq!(ok["ok"], true, "{ok}");
    let epoch = ok["epoch"].as_str().expect("an epoch").to_owned();
    let mut line_b = LineConn::open(b.socket_addr("tcp"));
    assert!(line_b.ask("SUB game.1").starts_with("+OK SUB game.1"));

    // Published on A: the ack comes once Redis numbered it.
    let mut pub_a = sio(a.socket_addr("http"));
    let ack = sio_ask(
        &mut pub_a,
        2,
        serde_json::json!(["publish", "game.1", "move e4"]),
    );
    assert_eq!(
        (
            ack["ok"].as_bool(),
            ack["offset"].as_u64(),
            ack["epoch"].as_str()
        ),
        (Some(true), Some(1), Some(epoch.as_str())),
        "{ack}"
    );
    let m = sio_read(&mut sub_b);
    assert!(
        m.starts_with(r#"42["message",{"topic":"game.1","offset":1,"#) && m.contains("move e4"),
        "{m}"
    );
    assert_eq!(line_b.read(), "MSG game.1 1 move e4");

    // A line publish on B reaches the Socket.IO subscriber; history and a resume on B read
    // Redis.
    // (From another connection: on the subscriber's own, the message may come before the
    // reply, since both wait for Redis.)
    let mut pub_b = LineConn::open(b.socket_addr("tcp"));
    assert_eq!(pub_b.ask("PUB game.1 move e5"), "+OK PUB game.1 2");
    assert!(sio_read(&mut sub_b).contains(r#""offset":2"#));
    let h = sio_ask(
        &mut pub_a,
        3,
        serde_json::json!(["history", "game.1", {"since": 0}]),
    );
    assert_eq!(h["messages"].as_array().map(Vec::len), Some(2), "{h}");
    let mut late = sio(b.socket_addr("http"));
    let ok = sio_ask(
        &mut late,
        4,
        serde_json::json!(["subscribe", "game.1", {"since": 1, "epoch": epoch}]),
    );
    assert_eq!(ok["replayed"], 1, "{ok}");
    let m = sio_read(&mut late);
    assert!(m.contains(r#""offset":2"#) && m.contains("move e5"), "{m}");
}

#[test]
fn a_udp_publish_on_one_node_reaches_another_with_its_offset() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis), node(&redis));
    let mut on_b = LineConn::open(b.socket_addr("tcp"));
    assert!(on_b.ask("SUB probes.udp").starts_with("+OK SUB probes.udp"));
    let udp = format!("udp://{}", a.addr("udp"));
    let published = TIDINGS.run(&["pub", "--server", &udp, "probes.udp", "ping"]);
    assert!(published.success(), "{}", published.stderr);
    assert_eq!(published.stdout.trim(), "probes.udp 1");
    assert_eq!(on_b.read(), "MSG probes.udp 1 ping");
}

#[test]
fn socketio_connection_state_recovery_resumes_from_redis() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis), node(&redis));
    let (mut w, hello) = sio_connect(a.socket_addr("http"), "");
    let (sid, pid) = (hello["sid"].clone(), hello["pid"].clone());
    assert!(pid.is_string(), "{hello}");
    assert_eq!(
        sio_ask(&mut w, 1, serde_json::json!(["subscribe", "game.2"]))["ok"],
        true
    );
    let mut publisher = LineConn::open(b.socket_addr("tcp"));
    assert_eq!(publisher.ask("PUB game.2 m1"), "+OK PUB game.2 1");
    let m = sio_read(&mut w);
    assert!(m.ends_with(r#","1:game.2"]"#), "{m}");
    drop(w); // the connection drops (not a disconnect on purpose)
    std::thread::sleep(Duration::from_millis(300));

    // Missed while away, published on another node; recovered on A from the Redis stream.
    assert_eq!(publisher.ask("PUB game.2 m2"), "+OK PUB game.2 2");
    assert_eq!(publisher.ask("PUB game.2 m3"), "+OK PUB game.2 3");
    let auth = serde_json::json!({"pid": pid, "offset": "1:game.2"}).to_string();
    let (mut w, hello) = sio_connect(a.socket_addr("http"), &auth);
    assert_eq!(hello["sid"], sid, "recovered: the same sid ({hello})");
    for (offset, text) in [(2, "m2"), (3, "m3")] {
        let m = sio_read(&mut w);
        assert!(
            m.contains(&format!(r#""offset":{offset},"#)) && m.contains(text),
            "{m}"
        );
    }
    assert_eq!(publisher.ask("PUB game.2 m4"), "+OK PUB game.2 4");
    let m = sio_read(&mut w);
    assert!(m.contains(r#""offset":4,"#), "{m}");
}

#[test]
fn a_node_that_stopped_following_a_topic_does_not_replay_old_messages_as_live() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis), node(&redis));
    let mut on_a = LineConn::open(a.socket_addr("tcp"));
    assert!(on_a.ask("SUB ticks.x").starts_with("+OK SUB ticks.x"));
    let mut publisher = LineConn::open(b.socket_addr("tcp"));
    assert_eq!(publisher.ask("PUB ticks.x t1"), "+OK PUB ticks.x 1");
    assert_eq!(on_a.read(), "MSG ticks.x 1 t1");
    assert_eq!(on_a.ask("UNSUB ticks.x"), "+OK UNSUB ticks.x");
    // A follows ticks.x no more: 2 and 3 are not its business.
    assert_eq!(publisher.ask("PUB ticks.x t2"), "+OK PUB ticks.x 2");
    assert_eq!(publisher.ask("PUB ticks.x t3"), "+OK PUB ticks.x 3");
    // A fresh subscription on A gets what follows its reply's `last` exactly once, in order:
    // not 2 and 3 again from a stale hole fill, nor a message it was told it is past.
    // (`last` is 3, or less when 2 and 3 were still on their way from Redis pub/sub: then
    // they come as live messages.)
    let sub = on_a.ask("SUB ticks.x");
    assert!(sub.starts_with("+OK SUB ticks.x"), "{sub}");
    let last: u64 = field(&sub, "last").parse().unwrap();
    assert_eq!(publisher.ask("PUB ticks.x t4"), "+OK PUB ticks.x 4");
    for i in last + 1..=4 {
        assert_eq!(on_a.read(), format!("MSG ticks.x {i} t{i}"));
    }
    // Nothing more: the next line is the reply to this.
    assert_eq!(on_a.ask("UNSUB ticks.x"), "+OK UNSUB ticks.x");
}

#[test]
fn a_publish_on_one_node_reaches_every_node_with_one_offset_and_epoch() {
    let Some(redis) = Redis::start() else { return };
    let (a, b, c) = (node(&redis), node(&redis), node(&redis));

    // Subscribers on B (WebSocket) and C (line protocol), and a pattern on C.
    let mut on_b = ws(b.socket_addr("http"));
    let ok = ws_ask(
        &mut on_b,
        serde_json::json!({"op": "subscribe", "id": 1, "topic": "chat.room"}),
    );
    assert_eq!(ok["type"], "ok", "{ok}");
    let epoch = ok["epoch"]
        .as_str()
        .expect("an epoch before the first message")
        .to_owned();
    let mut on_c = LineConn::open(c.socket_addr("tcp"));
    let sub = on_c.ask("SUB chat.room");
    assert!(sub.starts_with("+OK SUB chat.room"), "{sub}");
    assert_eq!(field(&sub, "epoch"), epoch, "one epoch on every node");
    assert_eq!(field(&sub, "last"), "0");
    let mut pattern_on_c = LineConn::open(c.socket_addr("tcp"));
    assert!(pattern_on_c.ask("SUB news.*").starts_with("+OK SUB news.*"));

    // Published on A, by the line protocol and by /ws with an ack.
    let mut pub_a = LineConn::open(a.socket_addr("tcp"));
    assert_eq!(pub_a.ask("PUB chat.room hello"), "+OK PUB chat.room 1");
    let mut ws_a = ws(a.socket_addr("http"));
    let ack = ws_ask(
        &mut ws_a,
        serde_json::json!({"op": "publish", "id": 2, "topic": "chat.room", "text": "again", "ack": true}),
    );
    assert_eq!(ack["offset"], 2, "{ack}");
    assert_eq!(ack["epoch"], epoch.as_str());
    assert_eq!(pub_a.ask("PUB news.today extra"), "+OK PUB news.today 1");

    for (offset, text) in [(1, "hello"), (2, "again")] {
        let m = ws_read(&mut on_b);
        assert_eq!(m["type"], "message", "{m}");
        assert_eq!(
            (m["offset"].as_u64(), m["text"].as_str()),
            (Some(offset), Some(text))
        );
        assert_eq!(m["epoch"], epoch.as_str());
        assert_eq!(on_c.read(), format!("MSG chat.room {offset} {text}"));
    }
    assert_eq!(pattern_on_c.read(), "MSG news.today 1 extra");

    // History is the same from every node.
    for n in [&a, &b, &c] {
        let mut h = LineConn::open(n.socket_addr("tcp"));
        let head = h.ask("HIST chat.room 0");
        assert_eq!(
            head,
            format!("+OK HIST chat.room epoch={epoch} earliest=1 last=2 count=2")
        );
        assert_eq!(h.read(), "MSG chat.room 1 hello");
        assert_eq!(h.read(), "MSG chat.room 2 again");
    }
    let (status, body) = get(c.socket_addr("http"), "/api/history/chat.room?since=1");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"again\"") && !body.contains("\"hello\""),
        "{body}"
    );
    let (status, body) = get(b.socket_addr("http"), "/healthz");
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"engine":"redis","redis":"up","status":"ok"}"#)
    );
}

#[test]
fn resume_since_n_on_another_node_gets_exactly_what_was_missed() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (node(&redis), node(&redis));
    let mut on_a = LineConn::open(a.socket_addr("tcp"));
    let sub = on_a.ask("SUB orders.eu");
    let epoch = field(&sub, "epoch").to_owned();
    let mut publisher = LineConn::open(a.socket_addr("tcp"));
    for i in 1..=5 {
        assert_eq!(
            publisher.ask(&format!("PUB orders.eu o{i}")),
            format!("+OK PUB orders.eu {i}")
        );
    }
    // The client saw 1 and 2 on A, then A went away.
    assert_eq!(on_a.read(), "MSG orders.eu 1 o1");
    assert_eq!(on_a.read(), "MSG orders.eu 2 o2");
    drop(on_a);
    drop(a);

    // It resumes on B since 2: exactly 3, 4, 5, then live 6 (published on B).
    let mut on_b = LineConn::open(b.socket_addr("tcp"));
    let resumed = on_b.ask(&format!("SUB orders.eu 2 {epoch}"));
    assert_eq!(
        resumed,
        format!("+OK SUB orders.eu epoch={epoch} last=5 replayed=3")
    );
    for i in 3..=5 {
        assert_eq!(on_b.read(), format!("MSG orders.eu {i} o{i}"));
    }
    let mut publisher_b = LineConn::open(b.socket_addr("tcp"));
    assert_eq!(publisher_b.ask("PUB orders.eu o6"), "+OK PUB orders.eu 6");
    assert_eq!(on_b.read(), "MSG orders.eu 6 o6");

    // The same over /ws, and a resume with an epoch that is not the topic's is refused.
    let mut w = ws(b.socket_addr("http"));
    let ok = ws_ask(
        &mut w,
        serde_json::json!({"op": "subscribe", "id": 1, "topic": "orders.eu", "since": 4, "epoch": epoch}),
    );
    assert_eq!(
        (ok["type"].as_str(), ok["replayed"].as_u64()),
        (Some("ok"), Some(2)),
        "{ok}"
    );
    for i in 5..=6 {
        let m = ws_read(&mut w);
        assert_eq!(
            (m["offset"].as_u64(), m["text"].as_str()),
            (Some(i), Some(format!("o{i}").as_str()))
        );
    }
    let mut other = LineConn::open(b.socket_addr("tcp"));
    let refused = other.ask("SUB orders.eu 2 not-the-epoch");
    assert!(
        refused.starts_with("-ERR SUB orders.eu: cannot resume"),
        "{refused}"
    );
}

#[test]
fn with_redis_down_publishes_are_refused_plainly_and_the_node_recovers() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let a = node(&redis);
    let mut c = LineConn::open(a.socket_addr("tcp"));
    assert_eq!(c.ask("PUB alerts.x one"), "+OK PUB alerts.x 1");
    let old_epoch = {
        let h = c.ask("HIST alerts.x 1");
        field(&h, "epoch").to_owned()
    };

    redis.stop();
    let refused = c.ask("PUB alerts.x two");
    assert!(
        refused.starts_with("-ERR PUB alerts.x: the engine is unavailable: redis"),
        "{refused}"
    );
    let mut w = ws(a.socket_addr("http"));
    let err = ws_ask(
        &mut w,
        serde_json::json!({"op": "publish", "id": 9, "topic": "alerts.x", "text": "two", "ack": true}),
    );
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("error"), Some("unavailable")),
        "{err}"
    );
    // STOMP: an ERROR that says why (with the SEND's receipt id), then the connection ends.
    let mut stomp = Stomp::open(a.socket_addr("stomp"));
    stomp.send(
        "SEND",
        &[("destination", "/topic/alerts.x"), ("receipt", "r1")],
        "two",
    );
    let e = stomp.read();
    assert_eq!(
        (e.0.as_str(), header(&e, "receipt-id")),
        ("ERROR", "r1"),
        "{e:?}"
    );
    assert!(
        header(&e, "message").contains("the engine is unavailable: redis"),
        "{e:?}"
    );
    // Socket.IO: the publish's ack says unavailable.
    let mut s = sio(a.socket_addr("http"));
    let nack = sio_ask(&mut s, 1, serde_json::json!(["publish", "alerts.x", "two"]));
    assert_eq!(
        (nack["ok"].as_bool(), nack["error"].as_str()),
        (Some(false), Some("unavailable")),
        "{nack}"
    );
    // UDP: the request's error reply says so, and the failure is counted.
    let udp = format!("udp://{}", a.addr("udp"));
    let refused = TIDINGS.run(&["pub", "--server", &udp, "alerts.x", "two"]);
    assert!(
        !refused.success() && refused.stderr.contains("unavailable"),
        "{} {}",
        refused.stdout,
        refused.stderr
    );
    let (_, metrics) = get(a.socket_addr("http"), "/metrics");
    assert!(
        metrics.contains("tidings_udp_publish_failures_total 1"),
        "{metrics}"
    );
    let (status, body) = get(a.socket_addr("http"), "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"status\":\"degraded\""), "{body}");

    // Redis is back (empty: it kept nothing): the node reconnects; the topic's history was
    // lost, so its epoch is a new one and offsets start again.
    redis.run();
    let until = Instant::now() + Duration::from_secs(15);
    let reply = loop {
        let r = c.ask("PUB alerts.x three");
        if r.starts_with("+OK") || Instant::now() > until {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(reply, "+OK PUB alerts.x 1");
    let h = c.ask("HIST alerts.x 1");
    assert_ne!(field(&h, "epoch"), old_epoch, "{h}");
    let until = Instant::now() + Duration::from_secs(15);
    while get(a.socket_addr("http"), "/healthz").0 != 200 {
        assert!(Instant::now() < until, "/healthz did not recover");
        std::thread::sleep(Duration::from_millis(200));
    }
}
