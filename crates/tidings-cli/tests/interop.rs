//! Interoperability tests: the real `tidings` binary on 127.0.0.1 (port 0) against real
//! clients — `nc`-style raw TCP, a WebSocket client (tungstenite), plain HTTP/1.1, and the
//! third-party client programs in `tests/interop/` (Python `websockets`, node `ws`, Socket.IO:
//! socket.io-client in Node and in headless Chromium, python-socketio).
//!
//! The third-party packages are installed by `scripts/install-test-deps.sh`; when they are
//! missing these tests fail (they never skip) and say so.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tidings_testkit::{interop, Process, Tidings};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

/// How long one expected reply may take before a test fails (never hang).
const WAIT: Duration = Duration::from_secs(5);
/// How long a client program may run (each caps itself at 20 s).
const PROGRAM_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));

/// A running `tidings serve` with HTTP and TCP on free ports (UDP and STOMP off); killed (and
/// its output shown if the test failed) on drop.
struct Server {
    process: Process,
    http: String,
    tcp: String,
}

impl Server {
    fn start() -> Server {
        Server::start_with_config(None)
    }

    fn start_with_config(config_toml: Option<&str>) -> Server {
        let mut serve = TIDINGS.serve().http().tcp();
        if let Some(toml) = config_toml {
            serve = serve.config(toml);
        }
        let process = serve.start();
        Server {
            http: process.addr("http").to_owned(),
            tcp: process.addr("tcp").to_owned(),
            process,
        }
    }

    fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.http, path)
    }
}

/// A `python` with the `websockets` package (>= 13), from scripts/install-test-deps.sh.
fn python() -> Command {
    interop::python("websockets.asyncio.client")
}

/// `node` with the `ws` package installed in tests/interop/node_modules.
fn node() -> Command {
    interop::node(&["ws"])
}

/// Runs a client program (in tests/interop/) to completion, within PROGRAM_LIMIT, and asserts
/// it succeeded; its `ok: ...` lines are echoed (visible with `--nocapture`).
fn run_program(cmd: Command, what: &str) {
    interop::run(cmd, what, PROGRAM_LIMIT).assert_passed("ok: ");
}

#[test]
fn python_websockets_client() {
    let server = Server::start();
    let mut cmd = python();
    cmd.arg("py_websockets_client.py").arg(server.ws_url("/ws"));
    run_program(cmd, "tests/interop/py_websockets_client.py");
}

#[test]
fn node_ws_client_with_permessage_deflate() {
    let server = Server::start();
    let mut cmd = node();
    cmd.arg("node_ws_client.mjs").arg(server.ws_url("/ws"));
    run_program(cmd, "tests/interop/node_ws_client.mjs");
}

#[test]
fn resume_after_disconnect_and_outside_the_history_window() {
    let server = Server::start_with_config(Some("[hub.history]\nmax_messages = 5\n"));
    let mut cmd = python();
    cmd.arg("py_resume.py")
        .arg(server.ws_url("/ws"))
        .args(["--window", "5"]);
    run_program(cmd, "tests/interop/py_resume.py");
}

// ---------------------------------------------------------------------------------------
// The TCP line protocol, as `nc` would drive it
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Line(String),
    /// `BMSG <topic> <offset> <len>\r\n<bytes>\r\n`
    Bmsg {
        topic: String,
        offset: u64,
        data: Vec<u8>,
    },
}

/// A line-protocol session: items the server sent are queued so a test can wait for the one
/// it expects whatever unrelated lines come first.
struct Nc {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pending: VecDeque<Item>,
    seen: Vec<String>,
}

impl Nc {
    fn connect(addr: &str) -> Nc {
        let stream =
            TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to tcp {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        let writer = stream.try_clone().unwrap();
        Nc {
            reader: BufReader::new(stream),
            writer,
            pending: VecDeque::new(),
            seen: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .expect("write to the tcp listener");
    }

    /// Reads one item; `Ok(None)` on EOF; `Err(TimedOut)` when nothing came within 250 ms.
    fn read_item(&mut self) -> std::io::Result<Option<Item>> {
        let mut buf = Vec::new();
        let deadline = Instant::now() + WAIT;
        loop {
            match self.reader.read_until(b'\n', &mut buf) {
                Ok(0) if buf.is_empty() => return Ok(None),
                Ok(0) => break,
                Ok(_) if buf.ends_with(b"\n") => break,
                Ok(_) => {}
                // A partial line: keep it and wait for the rest.
                Err(e) if is_timeout(&e) && !buf.is_empty() && Instant::now() < deadline => {}
                Err(e) => return Err(e),
            }
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        let line =
            String::from_utf8(buf).unwrap_or_else(|e| panic!("server line is not UTF-8: {e}"));
        self.seen.push(line.clone());
        if let Some(rest) = line.strip_prefix("BMSG ") {
            let parts: Vec<&str> = rest.split(' ').collect();
            assert_eq!(
                parts.len(),
                3,
                "BMSG line should be `BMSG <topic> <offset> <len>`: {line:?}"
            );
            let offset = parts[1]
                .parse()
                .unwrap_or_else(|_| panic!("bad BMSG offset: {line:?}"));
            let len: usize = parts[2]
                .parse()
                .unwrap_or_else(|_| panic!("bad BMSG length: {line:?}"));
            let mut data = vec![0; len + 2];
            self.read_exact_patiently(&mut data);
            assert_eq!(
                &data[len..],
                b"\r\n",
                "BMSG payload must be followed by \\r\\n"
            );
            data.truncate(len);
            return Ok(Some(Item::Bmsg {
                topic: parts[0].to_string(),
                offset,
                data,
            }));
        }
        Ok(Some(Item::Line(line)))
    }

    fn read_exact_patiently(&mut self, buf: &mut [u8]) {
        let deadline = Instant::now() + WAIT;
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => panic!("EOF inside a BMSG payload"),
                Ok(n) => filled += n,
                Err(e) if is_timeout(&e) && Instant::now() < deadline => {}
                Err(e) => panic!("reading a BMSG payload: {e}"),
            }
        }
    }

    /// Removes and returns the first item matching `pred`, waiting up to WAIT.
    fn expect(&mut self, what: &str, pred: impl Fn(&Item) -> bool) -> Item {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.pending.iter().position(&pred) {
                return self.pending.remove(i).unwrap();
            }
            match self.read_item() {
                Ok(Some(item)) => self.pending.push_back(item),
                Ok(None) => panic!(
                    "tcp: EOF while waiting for {what}; lines so far: {:?}",
                    self.seen
                ),
                Err(e) if is_timeout(&e) && Instant::now() < deadline => {}
                Err(e) => panic!(
                    "tcp: {e} while waiting for {what}; lines so far: {:?}",
                    self.seen
                ),
            }
        }
    }

    fn expect_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        match self.expect(what, |item| matches!(item, Item::Line(l) if pred(l))) {
            Item::Line(line) => line,
            Item::Bmsg { .. } => unreachable!(),
        }
    }

    /// Sends a command and returns its `+OK`/`-ERR` reply line.
    fn command(&mut self, line: &str) -> String {
        self.send(line);
        self.expect_line(&format!("the reply to {line:?}"), |l| {
            l.starts_with("+OK") || l.starts_with("-ERR")
        })
    }

    fn ok(&mut self, line: &str) -> String {
        let reply = self.command(line);
        assert!(
            reply.starts_with("+OK"),
            "{line:?} should get +OK, got {reply:?}"
        );
        reply
    }

    /// Waits for `MSG <topic> <offset> <payload>` and returns (offset, payload).
    fn msg(&mut self, topic: &str) -> (u64, String) {
        let prefix = format!("MSG {topic} ");
        let line = self.expect_line(&format!("a MSG on {topic}"), |l| l.starts_with(&prefix));
        let rest = &line[prefix.len()..];
        let (offset, payload) = rest.split_once(' ').unwrap_or((rest, ""));
        let offset = offset
            .parse()
            .unwrap_or_else(|_| panic!("MSG offset is not a number: {line:?}"));
        (offset, payload.to_string())
    }

    /// Asserts nothing matching arrives within `wait`.
    fn quiet(&mut self, what: &str, wait: Duration, pred: impl Fn(&Item) -> bool) {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            match self.read_item() {
                Ok(Some(item)) => self.pending.push_back(item),
                Ok(None) => break,
                Err(e) if is_timeout(&e) => {}
                Err(e) => panic!("tcp: {e}"),
            }
        }
        let bad: Vec<_> = self.pending.iter().filter(|i| pred(i)).collect();
        assert!(bad.is_empty(), "unexpected {what}: {bad:?}");
    }

    /// Asserts the server closes the connection within WAIT (after any pending lines).
    fn expect_eof(&mut self, what: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.read_item() {
                Ok(None) => return,
                Ok(Some(item)) => self.pending.push_back(item),
                Err(e) if is_timeout(&e) && Instant::now() < deadline => {}
                Err(e) if is_timeout(&e) => panic!(
                    "tcp: connection still open {WAIT:?} after {what}; lines: {:?}",
                    self.seen
                ),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) => panic!("tcp: {e} while waiting for EOF after {what}"),
            }
        }
    }

    /// Sends a PING and returns the PONG line (or a -ERR, to report it).
    fn command_or_pong(&mut self, line: &str) -> String {
        self.send(line);
        self.expect_line(&format!("the reply to {line:?}"), |l| {
            l.starts_with("PONG") || l.starts_with("-ERR")
        })
    }

    /// Sends `line` followed by a `PING <mark>` and returns every line the server sent
    /// before the matching PONG: the whole answer to a command of unknown length.
    fn transcript(&mut self, line: &str) -> Vec<String> {
        self.pending.clear();
        let mark = format!("mark{}", self.seen.len());
        self.send(line);
        self.send(&format!("PING {mark}"));
        let mut lines = Vec::new();
        let deadline = Instant::now() + WAIT;
        loop {
            match self.read_item() {
                Ok(Some(Item::Line(l))) if l.starts_with("PONG") && l.contains(&mark) => {
                    return lines
                }
                Ok(Some(Item::Line(l))) => lines.push(l),
                Ok(Some(item)) => lines.push(format!("{item:?}")),
                Ok(None) => panic!("tcp: EOF after {line:?}; got {lines:?}"),
                Err(e) if is_timeout(&e) && Instant::now() < deadline => {}
                Err(e) => panic!("tcp: {e} after {line:?} (PING {mark} unanswered); got {lines:?}"),
            }
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

#[test]
fn tcp_line_protocol_session_like_nc() {
    let server = Server::start();
    let mut nc = Nc::connect(&server.tcp);
    let greeting = nc.expect_line("the greeting", |_| true);
    assert!(
        greeting.starts_with("+OK"),
        "greeting should start with +OK: {greeting:?}"
    );

    // HELP answers with something that names the commands; the session goes on.
    let help = nc.transcript("HELP");
    assert!(
        help.iter().any(|l| l.contains("SUB")) && help.iter().any(|l| l.contains("PUB")),
        "HELP should mention SUB and PUB: {help:?}"
    );
    assert!(
        !help.iter().any(|l| l.starts_with("-ERR")),
        "HELP gave an error: {help:?}"
    );

    let pong = nc.command_or_pong("PING tok123");
    assert!(
        pong.starts_with("PONG") && pong.contains("tok123"),
        "PING tok123 should answer PONG tok123: {pong:?}"
    );

    // SUB then PUB on the same connection: +OK and our own MSG with offset 1.
    nc.ok("SUB nc.room");
    nc.ok("PUB nc.room hello world  with  spaces");
    let (offset, payload) = nc.msg("nc.room");
    assert_eq!((offset, payload.as_str()), (1, "hello world  with  spaces"));
    nc.ok("PUB nc.room second");
    assert_eq!(nc.msg("nc.room"), (2, "second".to_string()));

    // Binary-safe publish: BPUB with a length prefix, delivered as BMSG.
    let bytes: &[u8] = b"bin\x00\xff\r\nary\n";
    nc.send_raw(format!("BPUB nc.room {}\r\n", bytes.len()).as_bytes());
    nc.send_raw(bytes);
    nc.send_raw(b"\r\n");
    nc.expect_line("+OK for BPUB", |l| l.starts_with("+OK"));
    let item = nc.expect("a BMSG", |i| matches!(i, Item::Bmsg { .. }));
    assert_eq!(
        item,
        Item::Bmsg {
            topic: "nc.room".into(),
            offset: 3,
            data: bytes.to_vec()
        }
    );

    // A second session subscribed with a wildcard sees the same messages.
    let mut other = Nc::connect(&server.tcp);
    other.expect_line("the greeting", |l| l.starts_with("+OK"));
    other.ok("SUB nc.*");
    nc.ok("PUB nc.room from nc");
    assert_eq!(other.msg("nc.room"), (4, "from nc".to_string()));
    assert_eq!(nc.msg("nc.room"), (4, "from nc".to_string()));

    // Bad lines get -ERR and the connection stays usable.
    for bad in [
        "FROBNICATE now",
        "SUB",
        "PUB",
        "BPUB nc.room notanumber",
        "SUB a..b",
    ] {
        let reply = nc.command(bad);
        assert!(
            reply.starts_with("-ERR"),
            "{bad:?} should get -ERR, got {reply:?}"
        );
    }
    let pong = nc.command_or_pong("PING still-here");
    assert!(
        pong.starts_with("PONG"),
        "PING after errors should answer PONG: {pong:?}"
    );
    nc.ok("PUB nc.room after errors");
    assert_eq!(nc.msg("nc.room"), (5, "after errors".to_string()));
    assert_eq!(other.msg("nc.room"), (5, "after errors".to_string()));

    // HIST and WHO answer; UNSUB stops delivery.
    let hist = nc.transcript("HIST nc.room 3");
    assert!(
        hist.iter().any(|l| l.contains("from nc"))
            && hist.iter().any(|l| l.contains("after errors")),
        "HIST nc.room 3 should replay offsets 4 (from nc) and 5 (after errors): {hist:?}"
    );
    assert!(
        !hist.iter().any(|l| l.contains("second")),
        "HIST nc.room 3 replayed offset 2: {hist:?}"
    );
    let who = nc.transcript("WHO nc.room");
    assert!(
        !who.iter().any(|l| l.starts_with("-ERR")),
        "WHO nc.room gave an error: {who:?}"
    );
    nc.ok("UNSUB nc.room");
    other.ok("PUB nc.room not for nc");
    assert_eq!(other.msg("nc.room").0, 6);
    nc.quiet(
        "MSG after UNSUB",
        Duration::from_millis(300),
        |i| matches!(i, Item::Line(l) if l.starts_with("MSG")),
    );

    // A line over 4096 bytes: -ERR then the server closes.
    nc.pending.clear();
    nc.send(&format!("PUB nc.room {}", "x".repeat(5000)));
    nc.expect_line("-ERR for an oversize line", |l| l.starts_with("-ERR"));
    nc.expect_eof("an oversize line");

    // The other session is unharmed; QUIT ends it politely.
    other.ok("PUB nc.room still fine");
    assert_eq!(other.msg("nc.room"), (7, "still fine".to_string()));
    other.send("QUIT");
    other.expect_eof("QUIT");
}

// ---------------------------------------------------------------------------------------
// WebSocket (tungstenite) helpers
// ---------------------------------------------------------------------------------------

struct Ws {
    ws: WebSocket<TcpStream>,
    pending: VecDeque<Frame>,
    next_id: u64,
}

#[derive(Debug, Clone)]
enum Frame {
    Json(Value),
    /// A binary frame: its JSON header and the raw payload after the header's newline.
    Binary(Value, Vec<u8>),
    Close(Option<u16>),
}

impl Frame {
    fn obj(&self) -> Option<&Value> {
        match self {
            Frame::Json(v) | Frame::Binary(v, _) => Some(v),
            Frame::Close(_) => None,
        }
    }
}

impl Ws {
    fn connect(server: &Server, path: &str) -> Ws {
        let stream = TcpStream::connect(&server.http).expect("connect to the http listener");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let url = server.ws_url(path);
        let (ws, _) = tungstenite::client(url.as_str(), stream)
            .unwrap_or_else(|e| panic!("WebSocket handshake with {url} failed: {e}"));
        let mut ws = Ws {
            ws,
            pending: VecDeque::new(),
            next_id: 0,
        };
        let hello = ws.next("the hello frame");
        assert_eq!(
            hello.obj().and_then(|v| v["type"].as_str()),
            Some("hello"),
            "first frame: {hello:?}"
        );
        ws
    }

    fn next(&mut self, what: &str) -> Frame {
        if let Some(f) = self.pending.pop_front() {
            return f;
        }
        self.read(what)
    }

    fn read(&mut self, what: &str) -> Frame {
        loop {
            let msg = self
                .ws
                .read()
                .unwrap_or_else(|e| panic!("ws: {e} while waiting for {what}"));
            return match msg {
                Message::Text(t) => Frame::Json(
                    serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("ws text frame is not JSON ({e}): {t}")),
                ),
                Message::Binary(b) => {
                    let nl = b
                        .iter()
                        .position(|c| *c == b'\n')
                        .expect("binary frame without a header line");
                    let header =
                        serde_json::from_slice(&b[..nl]).expect("binary frame header is not JSON");
                    Frame::Binary(header, b[nl + 1..].to_vec())
                }
                Message::Close(c) => Frame::Close(c.map(|c| u16::from(c.code))),
                _ => continue,
            };
        }
    }

    fn expect(&mut self, what: &str, pred: impl Fn(&Frame) -> bool) -> Frame {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).unwrap();
        }
        loop {
            let f = self.read(what);
            if pred(&f) {
                return f;
            }
            if let Frame::Close(code) = f {
                panic!(
                    "ws closed (code {code:?}) while waiting for {what}; pending: {:?}",
                    self.pending
                );
            }
            self.pending.push_back(f);
        }
    }

    fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).expect("ws send");
    }

    fn request(&mut self, mut v: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        v["id"] = json!(id);
        let what = v.to_string();
        self.send(v);
        let reply = self.expect(&format!("the reply to {what}"), |f| {
            f.obj().is_some_and(|o| {
                o["id"] == json!(id) && (o["type"] == "ok" || o["type"] == "error")
            })
        });
        let reply = reply.obj().unwrap().clone();
        assert_eq!(reply["type"], "ok", "{what} failed: {reply}");
        reply
    }

    fn message(&mut self, topic: &str) -> Frame {
        self.expect(&format!("a message on {topic}"), |f| {
            f.obj()
                .is_some_and(|o| o["type"] == "message" && o["topic"] == topic)
        })
    }

    /// Writes raw bytes below tungstenite (for frames no well-behaved client would send).
    fn write_raw(&mut self, bytes: &[u8]) {
        let stream = self.ws.get_mut();
        stream.write_all(bytes).expect("raw write");
        stream.flush().unwrap();
    }

    /// Waits for the server's close frame (or EOF) and returns its code.
    fn expect_close(&mut self, what: &str) -> Option<u16> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(Message::Close(c)) => return c.map(|c| u16::from(c.code)),
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return None
                }
                Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
                Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                )) => panic!(
                    "ws: the server dropped the connection without a close frame after {what}"
                ),
                Err(e) => panic!("ws: {e} while waiting for the close after {what}"),
            }
        }
        panic!("ws: no close frame within {WAIT:?} after {what}");
    }
}

/// One client-to-server frame, masked, with a payload length that may claim more bytes than
/// `payload` holds (to test the server's size limit from the header).
fn masked_frame(opcode: u8, payload: &[u8], declared_len: Option<u64>) -> Vec<u8> {
    let declared_len = declared_len.unwrap_or(payload.len() as u64);
    let mut f = vec![0x80 | opcode];
    match declared_len {
        0..=125 => f.push(0x80 | declared_len as u8),
        126..=0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(declared_len as u16).to_be_bytes());
        }
        _ => {
            f.push(0x80 | 127);
            f.extend_from_slice(&declared_len.to_be_bytes());
        }
    }
    let mask = [0x12, 0x34, 0x56, 0x78];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[test]
fn websocket_bad_input_gets_close_codes() {
    let server = Server::start();

    // Invalid UTF-8 in a text frame: close 1007.
    let mut ws = Ws::connect(&server, "/ws");
    ws.write_raw(&masked_frame(
        0x1,
        b"{\"op\":\"ping\",\"x\":\"\xff\xfe\"}",
        None,
    ));
    assert_eq!(
        ws.expect_close("a text frame with invalid UTF-8"),
        Some(1007),
        "invalid UTF-8 must close with 1007"
    );

    // A frame whose header claims 256 MiB: close 1009 (without waiting for the payload).
    let mut ws = Ws::connect(&server, "/ws");
    ws.write_raw(&masked_frame(0x1, &[b' '; 1024], Some(256 << 20)));
    assert_eq!(
        ws.expect_close("a frame header claiming 256 MiB"),
        Some(1009),
        "an oversize frame must close with 1009"
    );

    // Other connections are unharmed.
    let mut ws = Ws::connect(&server, "/ws");
    let pong = {
        ws.send(json!({"op": "ping", "id": 9}));
        ws.expect("pong", |f| f.obj().is_some_and(|o| o["type"] == "pong"))
    };
    assert_eq!(pong.obj().unwrap()["id"], 9);
    let _ = ws.ws.close(Some(tungstenite::protocol::CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }));
}

// ---------------------------------------------------------------------------------------
// Cross-protocol: TCP <-> WebSocket
// ---------------------------------------------------------------------------------------

/// The payload of a delivered WebSocket message as bytes, whatever form it took
/// (`text`, `data` as JSON, or a binary frame).
fn ws_payload(f: &Frame) -> Vec<u8> {
    match f {
        Frame::Binary(_, bytes) => bytes.clone(),
        Frame::Json(o) if o.get("text").is_some() => o["text"]
            .as_str()
            .expect("text is a string")
            .as_bytes()
            .to_vec(),
        Frame::Json(o) => match &o["data"] {
            Value::String(s) => s.as_bytes().to_vec(),
            other => other.to_string().into_bytes(),
        },
        Frame::Close(_) => panic!("no payload in a close"),
    }
}

#[test]
fn cross_protocol_tcp_and_websocket() {
    let server = Server::start();
    let mut nc = Nc::connect(&server.tcp);
    nc.expect_line("the greeting", |l| l.starts_with("+OK"));
    let mut ws = Ws::connect(&server, "/ws");

    // TCP PUB -> WebSocket subscriber (exact and wildcard).
    let sub = ws.request(json!({"op": "subscribe", "topic": "x.tcp2ws"}));
    assert_eq!(sub["offset"], 0, "subscribe to a fresh topic: {sub}");
    ws.request(json!({"op": "subscribe", "topic": "wild.*"}));
    nc.ok("PUB x.tcp2ws hello from nc ✓");
    let m = ws.message("x.tcp2ws");
    assert_eq!(m.obj().unwrap()["offset"], 1, "{m:?}");
    let epoch = m.obj().unwrap()["epoch"].clone();
    assert!(
        epoch.as_str().is_some_and(|e| !e.is_empty()),
        "message without an epoch: {m:?}"
    );
    assert_eq!(
        String::from_utf8(ws_payload(&m)).unwrap(),
        "hello from nc ✓",
        "{m:?}"
    );
    nc.ok("PUB wild.card {\"json\":true}");
    let m = ws.message("wild.card");
    assert!(
        m.obj().unwrap()["data"] == json!({"json": true})
            || m.obj().unwrap()["text"] == "{\"json\":true}",
        "a JSON line payload should arrive as data {{\"json\":true}} (or the same text): {m:?}"
    );

    // TCP BPUB (binary) -> WebSocket binary frame.
    let bytes: &[u8] = b"\x00\x01\x02\xff\n\r\nbinary";
    nc.send_raw(format!("BPUB x.tcp2ws {}\r\n", bytes.len()).as_bytes());
    nc.send_raw(bytes);
    nc.send_raw(b"\r\n");
    nc.expect_line("+OK for BPUB", |l| l.starts_with("+OK"));
    let m = ws.message("x.tcp2ws");
    assert!(
        matches!(m, Frame::Binary(..)),
        "a non-UTF-8 payload must arrive as a binary frame: {m:?}"
    );
    assert_eq!(m.obj().unwrap()["offset"], 2);
    assert_eq!(
        m.obj().unwrap()["epoch"],
        epoch,
        "the epoch of a topic is stable: {m:?}"
    );
    assert_eq!(ws_payload(&m), bytes);

    // WebSocket publish -> TCP subscriber (text, JSON data, binary).
    nc.ok("SUB x.ws2tcp");
    let ack = ws
        .request(json!({"op": "publish", "topic": "x.ws2tcp", "text": "hi from ws", "ack": true}));
    assert_eq!(ack["offset"], 1, "{ack}");
    assert_eq!(nc.msg("x.ws2tcp"), (1, "hi from ws".to_string()));
    ws.request(json!({"op": "publish", "topic": "x.ws2tcp", "data": {"k": [1, 2]}, "ack": true}));
    let (offset, payload) = nc.msg("x.ws2tcp");
    assert_eq!(offset, 2);
    let parsed: Value = serde_json::from_str(&payload)
        .unwrap_or_else(|e| panic!("MSG payload not JSON ({e}): {payload:?}"));
    assert_eq!(parsed, json!({"k": [1, 2]}));
    let mut frame =
        serde_json::to_vec(&json!({"op": "publish", "id": 99, "topic": "x.ws2tcp", "ack": true}))
            .unwrap();
    frame.push(b'\n');
    frame.extend_from_slice(b"\xfe\xff\r\n\x00raw");
    ws.ws.send(Message::binary(frame)).unwrap();
    let item = nc.expect("a BMSG on x.ws2tcp", |i| matches!(i, Item::Bmsg { .. }));
    assert_eq!(
        item,
        Item::Bmsg {
            topic: "x.ws2tcp".into(),
            offset: 3,
            data: b"\xfe\xff\r\n\x00raw".to_vec()
        }
    );

    // Offsets are per topic and shared by both protocols.
    nc.ok("PUB x.ws2tcp from nc");
    assert_eq!(nc.msg("x.ws2tcp").0, 4);
}

// ---------------------------------------------------------------------------------------
// HTTP API
// ---------------------------------------------------------------------------------------

/// One HTTP/1.1 request on a fresh connection; returns (status, body).
fn http(
    addr: &str,
    method: &str,
    target: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the http listener");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(ct) = content_type {
        req += &format!("Content-Type: {ct}\r\n");
    }
    if method != "GET" || !body.is_empty() {
        req += &format!("Content-Length: {}\r\n", body.len());
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        panic!(
            "{method} {target}: {e} (got so far: {:?})",
            String::from_utf8_lossy(&raw)
        );
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "{method} {target}: no end of headers: {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let body = &raw[end + 4..];
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {target}: bad status line: {head:?}"));
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&body[..eol]);
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size:?}"));
        if n == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&body[start..start + n]);
        body = body[start + n..]
            .strip_prefix(b"\r\n")
            .unwrap_or(&body[start + n..]);
    }
    out
}

#[test]
fn http_api_publish_topics_healthz() {
    let server = Server::start();
    let addr = server.http.clone();

    let (status, body) = http(&addr, "GET", "/healthz", None, b"");
    assert_eq!(status, 200, "GET /healthz: {body}");

    let mut nc = Nc::connect(&server.tcp);
    nc.expect_line("the greeting", |l| l.starts_with("+OK"));
    nc.ok("SUB api.t1");
    let mut wild = Nc::connect(&server.tcp);
    wild.expect_line("the greeting", |l| l.starts_with("+OK"));
    wild.ok("SUB api.*");

    // JSON envelope.
    let envelope = json!({"topic": "api.t1", "data": {"n": 1, "s": "ü"}}).to_string();
    let (status, body) = http(
        &addr,
        "POST",
        "/api/publish",
        Some("application/json"),
        envelope.as_bytes(),
    );
    assert!(
        (200..300).contains(&status),
        "POST /api/publish {envelope} -> {status} {body}"
    );
    let (offset, payload) = nc.msg("api.t1");
    assert_eq!(offset, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&payload).ok(),
        Some(json!({"n": 1, "s": "ü"})),
        "payload {payload:?}"
    );
    assert_eq!(
        wild.msg("api.t1"),
        (1, payload),
        "the wildcard subscriber should get it too"
    );

    // Raw body with ?topic=.
    let (status, body) = http(
        &addr,
        "POST",
        "/api/publish?topic=api.t1",
        Some("text/plain"),
        b"raw body text",
    );
    assert!(
        (200..300).contains(&status),
        "POST /api/publish?topic=api.t1 -> {status} {body}"
    );
    assert_eq!(nc.msg("api.t1"), (2, "raw body text".to_string()));

    // Raw body with the topic in the path.
    let (status, body) = http(
        &addr,
        "POST",
        "/api/publish/api.t1",
        Some("text/plain"),
        b"path body",
    );
    assert!(
        (200..300).contains(&status),
        "POST /api/publish/api.t1 -> {status} {body}"
    );
    assert_eq!(nc.msg("api.t1"), (3, "path body".to_string()));

    // Bad requests are 4xx, not 5xx or silence.
    let (status, body) = http(
        &addr,
        "POST",
        "/api/publish",
        Some("application/json"),
        b"{not json",
    );
    assert!(
        (400..500).contains(&status),
        "POST /api/publish with broken JSON -> {status} {body}"
    );
    let (status, body) = http(&addr, "GET", "/no/such/path", None, b"");
    assert_eq!(status, 404, "GET /no/such/path -> {status} {body}");

    // The topic is listed.
    let (status, body) = http(&addr, "GET", "/api/topics", None, b"");
    assert_eq!(status, 200, "GET /api/topics: {body}");
    assert!(
        body.contains("api.t1"),
        "GET /api/topics should list api.t1: {body}"
    );
    assert!(
        serde_json::from_str::<Value>(&body).is_ok(),
        "GET /api/topics should be JSON: {body}"
    );
}

// ---------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut server = Server::start();
    let mut nc = Nc::connect(&server.tcp);
    nc.expect_line("the greeting", |l| l.starts_with("+OK"));
    let mut ws = Ws::connect(&server, "/ws");

    let pid = server.process.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid} failed");

    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = server.process.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tidings did not exit within 10 s of SIGTERM"
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        exit.success(),
        "tidings should exit 0 after SIGTERM, got {exit}"
    );
    nc.expect_eof("SIGTERM");
    let code = ws.expect_close("SIGTERM");
    assert!(
        matches!(code, None | Some(1001) | Some(1012)),
        "ws close code after SIGTERM: {code:?}"
    );
}

#[test]
fn sockjs_client_each_transport_with_ws_and_tcp_clients() {
    let server = Server::start();
    let mut cmd = node();
    cmd.arg("node_sockjs_client.mjs")
        .arg(format!("http://{}", server.http))
        .arg(&server.tcp);
    run_program(cmd, "tests/interop/node_sockjs_client.mjs");
}

#[test]
fn chromium_sockjs_without_websocket_and_eventsource_resume() {
    // A small response limit makes the server end SSE responses, so the browser reconnects
    // with Last-Event-ID by itself while messages keep coming.
    let server = Server::start_with_config(Some("[fallback]\nresponse_limit = 2048\n"));
    let mut cmd = node();
    cmd.arg("browser_fallbacks.mjs")
        .arg(format!("http://{}", server.http))
        .arg(&server.tcp);
    run_program(cmd, "tests/interop/browser_fallbacks.mjs");
}

// ---------------------------------------------------------------------------------------
// Socket.IO: the official clients (tests/interop/sio_*.mjs, py_socketio_client.py) meeting
// WebSocket-native and TCP line clients on the same topics
// ---------------------------------------------------------------------------------------

fn socketio_program(mut cmd: Command, script: &str, server: &Server, extra: &[&str]) {
    cmd.arg(script)
        .arg(format!("http://{}", server.http))
        .arg(&server.tcp)
        .args(extra);
    run_program(cmd, &format!("tests/interop/{script}"));
}

#[test]
fn socketio_node_client_transports_acks_binary_recovery_namespaces() {
    let server = Server::start();
    socketio_program(node(), "sio_node_client.mjs", &server, &[]);
}

#[test]
fn socketio_node_client_handshake_auth() {
    let server = Server::start_with_config(Some(
        "[[hub.auth.users]]\nname = \"alice\"\npassword = \"secret\"\npublish = [\"chat.>\"]\n\
         subscribe = [\">\"]\n[hub.auth.anonymous]\nsubscribe = [\">\"]\n",
    ));
    socketio_program(node(), "sio_node_client.mjs", &server, &["--auth"]);
}

#[test]
fn socketio_python_client() {
    let server = Server::start();
    socketio_program(python(), "py_socketio_client.py", &server, &[]);
}

#[test]
fn socketio_node_client_permessage_deflate() {
    let server = Server::start();
    socketio_program(node(), "sio_deflate.mjs", &server, &[]);
    let server = Server::start_with_config(Some("[socketio]\ncompression = false\n"));
    socketio_program(node(), "sio_deflate.mjs", &server, &["--expect-off"]);
}

#[test]
fn socketio_browser_bundle_in_headless_chromium() {
    let server = Server::start_with_config(Some("[socketio]\ncors_origins = [\"*\"]\n"));
    socketio_program(node(), "sio_browser.mjs", &server, &[]);
}

#[test]
fn stompjs_over_sockjs_client_each_transport() {
    let server = Server::start();
    let mut cmd = node();
    cmd.arg("node_stomp_sockjs.mjs")
        .arg(format!("http://{}", server.http))
        .arg(&server.tcp);
    run_program(cmd, "tests/interop/node_stomp_sockjs.mjs");
}
