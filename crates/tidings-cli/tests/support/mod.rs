//! Small blocking clients shared by the Redis engine's test files (`redis_engine.rs`,
//! `redis_cluster.rs`): the line protocol, `/ws`, Socket.IO over WebSocket, and one HTTP GET.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long one line or frame may take before the test fails (never hang).
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// A line-protocol client (blocking, 5 s per line).
pub(crate) struct LineConn(BufReader<TcpStream>);

impl LineConn {
    pub(crate) fn open(addr: SocketAddr) -> LineConn {
        let s = TcpStream::connect(addr).expect("connect tcp");
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut c = LineConn(BufReader::new(s));
        assert!(c.read().starts_with("+OK tidings"));
        c
    }

    pub(crate) fn send(&mut self, text: &str) {
        self.0
            .get_mut()
            .write_all(format!("{text}\r\n").as_bytes())
            .unwrap();
    }

    /// The next line; `None` when the connection ended (reset or closed). Panics after 5 s.
    pub(crate) fn try_read(&mut self) -> Option<String> {
        let mut s = String::new();
        match self.0.read_line(&mut s) {
            Ok(0) => None,
            Ok(_) => Some(s.trim_end().to_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("no line in time")
            }
            Err(_) => None,
        }
    }

    pub(crate) fn read(&mut self) -> String {
        self.try_read().expect("a line")
    }

    /// The next line that is not a presence line (JOIN/LEAVE come whenever others move).
    pub(crate) fn read_reply(&mut self) -> String {
        loop {
            let l = self.read();
            if !l.starts_with("JOIN ") && !l.starts_with("LEAVE ") {
                return l;
            }
        }
    }

    /// Sends `text` and returns the next line.
    pub(crate) fn ask(&mut self, text: &str) -> String {
        self.send(text);
        self.read()
    }

    /// Sends `text` and returns the next line that is not a presence line.
    pub(crate) fn ask_reply(&mut self, text: &str) -> String {
        self.send(text);
        self.read_reply()
    }
}

pub(crate) type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// A `/ws` connection that has read the server's hello.
pub(crate) fn ws(addr: SocketAddr) -> Ws {
    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/ws")).expect("connect /ws");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(WAIT)).unwrap();
    }
    let hello = ws_read(&mut ws);
    assert_eq!(hello["type"], "hello");
    ws
}

pub(crate) fn ws_read(ws: &mut Ws) -> serde_json::Value {
    loop {
        match ws.read().expect("a frame in time") {
            tungstenite::Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Sends `request` and returns the next frame.
pub(crate) fn ws_ask(ws: &mut Ws, request: serde_json::Value) -> serde_json::Value {
    ws.send(tungstenite::Message::text(request.to_string()))
        .unwrap();
    ws_read(ws)
}

/// `GET path` over HTTP/1.0: status and body.
pub(crate) fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status, body.unwrap_or_default())
}

/// The value of `name=value` in a reply line.
pub(crate) fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ')
        .find_map(|t| t.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

/// A Socket.IO client over Engine.IO's WebSocket transport, connected to the main
/// namespace.
pub(crate) fn sio(addr: SocketAddr) -> Ws {
    sio_connect(addr, "").0
}

/// Connects with the CONNECT payload `auth` (e.g. a recovery `pid` and `offset`); returns
/// the CONNECT reply's object too.
pub(crate) fn sio_connect(addr: SocketAddr, auth: &str) -> (Ws, serde_json::Value) {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut w, _) = tungstenite::connect(url).expect("connect /socket.io/");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = w.get_mut() {
        s.set_read_timeout(Some(WAIT)).unwrap();
    }
    assert!(sio_read(&mut w).starts_with('0'));
    w.send(tungstenite::Message::text(format!("40{auth}")))
        .unwrap();
    let reply = sio_read(&mut w);
    let body = reply.strip_prefix("40").expect("a CONNECT reply");
    (w, serde_json::from_str(body).unwrap())
}

/// The next Socket.IO packet, answering Engine.IO pings.
pub(crate) fn sio_read(w: &mut Ws) -> String {
    loop {
        match w.read().expect("a packet in time") {
            tungstenite::Message::Text(t) if t.as_str() == "2" => {
                w.send(tungstenite::Message::text("3")).unwrap();
            }
            tungstenite::Message::Text(t) => return t.as_str().to_owned(),
            _ => continue,
        }
    }
}

/// Sends `packet` and returns the first argument of its ack (`43<id>[{...}]`).
pub(crate) fn sio_ask(w: &mut Ws, id: u32, event: serde_json::Value) -> serde_json::Value {
    let args = event.to_string();
    w.send(tungstenite::Message::text(format!("42{id}{args}")))
        .unwrap();
    let prefix = format!("43{id}");
    let reply = sio_read(w);
    let body = reply
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("not the ack {prefix}: {reply}"));
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v[0].clone()
}
