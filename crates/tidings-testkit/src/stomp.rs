//! A small blocking STOMP 1.2 client over TCP for integration tests: frames as
//! (command, headers, body). The real third-party clients are in `tests/interop/`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A frame as read: (command, headers in order, body).
pub type Frame = (String, Vec<(String, String)>, String);

/// How long [`Stomp::read`] waits for a frame.
const WAIT: Duration = Duration::from_secs(5);

/// A connected STOMP 1.2 client.
pub struct Stomp {
    s: TcpStream,
    /// Bytes read and not yet a whole frame (kept across a [`Stomp::try_read`] that timed out).
    pending: Vec<u8>,
}

impl Stomp {
    /// Connects and sends CONNECT (1.2); panics unless CONNECTED comes back.
    pub fn open(addr: SocketAddr) -> Stomp {
        let s = TcpStream::connect(addr).expect("connect stomp");
        let mut c = Stomp {
            s,
            pending: Vec::new(),
        };
        c.send("CONNECT", &[("accept-version", "1.2"), ("host", "x")], "");
        assert_eq!(c.read().0, "CONNECTED");
        c
    }

    /// Sends one frame.
    pub fn send(&mut self, command: &str, headers: &[(&str, &str)], body: &str) {
        let mut f = format!("{command}\n");
        for (n, v) in headers {
            f.push_str(&format!("{n}:{v}\n"));
        }
        f.push_str(&format!("\n{body}\0"));
        self.s.write_all(f.as_bytes()).unwrap();
    }

    /// The next frame; panics when none comes within 5 s or the connection ends.
    pub fn read(&mut self) -> Frame {
        self.try_read(WAIT).expect("a frame in time")
    }

    /// The next frame, or `None` when none came within `wait` (a partial frame is kept).
    /// Panics when the connection ends.
    pub fn try_read(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = Instant::now() + wait;
        loop {
            // Heart-beat EOLs between frames are skipped.
            let start = self.pending.iter().position(|b| *b != b'\n' && *b != b'\r');
            if let Some(start) = start {
                if let Some(end) = self.pending[start..].iter().position(|b| *b == 0) {
                    let raw: Vec<u8> = self.pending.drain(..start + end + 1).collect();
                    return Some(parse(&raw[start..raw.len() - 1]));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.s.set_read_timeout(Some(left)).unwrap();
            let mut buf = [0u8; 4096];
            match self.s.read(&mut buf) {
                Ok(0) => panic!("the connection ended: {:?}", self.pending),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("stomp read: {e}"),
            }
        }
    }
}

fn parse(raw: &[u8]) -> Frame {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let command = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_owned(), unescape(v)))
        .collect();
    (command, headers, body.to_owned())
}

/// A STOMP 1.2 header value as written (`\c` is `:`, `\n` a newline, `\\` a backslash).
pub fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('c') => out.push(':'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// The value of header `name` of `frame`; panics when it has none.
pub fn header<'a>(frame: &'a Frame, name: &str) -> &'a str {
    frame
        .1
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {frame:?}"))
}
