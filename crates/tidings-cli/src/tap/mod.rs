//! `tidings tap`: a live, human-readable trace of tidings' own traffic, captured from a raw
//! packet socket (Linux `AF_PACKET`; needs root or `CAP_NET_RAW`).
//!
//! ```text
//!  AF_PACKET frame ─> packet.rs (etherparse: IP, TCP/UDP) ─> which tidings port? (role)
//!     TCP ─> tcp.rs: handshake/close lines, bytes put in order per direction
//!              ─> decode/: line protocol | HTTP + WebSocket | STOMP  ─> lines
//!     UDP ─> decode/udp.rs (tidings-proto's datagram decoder)        ─> lines
//! ```
//!
//! Everything is bounded: connections tracked, early segments per direction, bytes a decoder
//! waits on, text shown per payload. See docs/tap.md.

mod capture;
pub(crate) mod decode;
mod packet;
mod tcp;

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;

use capture::Capture;
use packet::Transport;
use tcp::{Note, Tracker};

/// Which side a segment goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    ToServer,
    ToClient,
}

/// What a tidings port carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Http,
    Line,
    Udp,
    Stomp,
}

#[derive(Args, Debug)]
pub(crate) struct TapArgs {
    /// Network interface to capture on (tidings on 127.0.0.1 talks over `lo`).
    #[arg(long, short, default_value = "lo")]
    interface: String,
    /// Port of the HTTP listener (HTTP, WebSocket); 0 ignores it.
    #[arg(long, default_value_t = 7070)]
    http: u16,
    /// Port of the TCP line-protocol listener; 0 ignores it.
    #[arg(long, default_value_t = 7071)]
    tcp: u16,
    /// Port of the UDP endpoint; 0 ignores it.
    #[arg(long, default_value_t = 7072)]
    udp: u16,
    /// Port of the STOMP listener; 0 ignores it.
    #[arg(long, default_value_t = 61613)]
    stomp: u16,
    /// Show only these ports (repeatable); default: every port above.
    #[arg(long = "port", short = 'p')]
    ports: Vec<u16>,
    /// Show only these connections (repeatable): `N` as in `tcp#N`, or the client's
    /// HOST:PORT (which also selects UDP datagrams of that address).
    #[arg(long = "conn", short = 'c')]
    conns: Vec<String>,
    /// Longest text shown of one payload, in characters.
    #[arg(long, default_value_t = 200)]
    max_text: usize,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after printing this many lines.
    #[arg(long, short = 'n')]
    count: Option<u64>,
}

impl TapArgs {
    fn role(&self, port: u16) -> Option<Role> {
        if port == 0 || (!self.ports.is_empty() && !self.ports.contains(&port)) {
            return None;
        }
        [
            (self.http, Role::Http),
            (self.tcp, Role::Line),
            (self.udp, Role::Udp),
            (self.stomp, Role::Stomp),
        ]
        .into_iter()
        .find(|(p, _)| *p == port)
        .map(|(_, r)| r)
    }

    fn wants(&self, conn: Option<u64>, client: SocketAddr) -> bool {
        self.conns.is_empty()
            || self.conns.iter().any(|c| {
                let c = c.trim_start_matches("tcp#").trim_start_matches('#');
                conn.is_some_and(|id| c == id.to_string()) || c == client.to_string()
            })
    }
}

pub(crate) async fn run(args: TapArgs) -> Result<(), String> {
    tokio::task::spawn_blocking(move || capture_loop(args))
        .await
        .map_err(|e| format!("tap: {e}"))?
}

fn capture_loop(args: TapArgs) -> Result<(), String> {
    let mut capture =
        Capture::open(&args.interface, Duration::from_millis(200)).map_err(|e| e.to_string())?;
    eprintln!(
        "tidings tap: capturing on {} (http {}, tcp {}, udp {}, stomp {}); Ctrl-C stops",
        args.interface, args.http, args.tcp, args.udp, args.stomp
    );
    let deadline = args
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut tracker = Tracker::new(args.max_text);
    let mut buf = vec![0u8; 65536 + 256];
    let mut notes = Vec::new();
    let mut printed = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        let frame = match capture.next(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => continue,
            Err(e) => return Err(format!("tap: reading packets failed: {e}")),
        };
        let Some(p) = packet::parse(frame.data) else {
            continue;
        };
        let (dir, client, server, role) = match (args.role(p.dst.port()), args.role(p.src.port())) {
            (Some(role), _) => (Dir::ToServer, p.src, p.dst, role),
            (None, Some(role)) => (Dir::ToClient, p.dst, p.src, role),
            (None, None) => continue,
        };
        let mut lines = Vec::new();
        match p.transport {
            Transport::Udp { payload } if role == Role::Udp && args.wants(None, client) => {
                let arrow = decode::arrow(dir);
                let text = decode::udp::describe(dir, payload, args.max_text);
                lines.push(format!("udp {client} {arrow} {server} {text}"));
            }
            Transport::Tcp {
                seq,
                flags,
                payload,
            } if role != Role::Udp => {
                tracker.segment(client, server, dir, role, seq, flags, payload, &mut notes);
                for Note { conn, client, text } in notes.drain(..) {
                    if args.wants(Some(conn), client) {
                        lines.push(format!("tcp#{conn} {text}"));
                    }
                }
            }
            _ => {}
        }
        for line in lines {
            let _ = writeln!(out, "{} {line}", clock());
            printed += 1;
            if args.count.is_some_and(|n| printed >= n) {
                let _ = out.flush();
                return Ok(());
            }
        }
        if out.flush().is_err() {
            return Ok(()); // stdout closed (piped into head)
        }
    }
}

/// Wall-clock time of day, UTC, to the millisecond.
fn clock() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        tap: TapArgs,
    }

    fn args(list: &[&str]) -> TapArgs {
        Cli::parse_from([&["tap"], list].concat()).tap
    }

    #[test]
    fn ports_and_connection_filters() {
        let a = args(&[]);
        assert_eq!(a.role(7070), Some(Role::Http));
        assert_eq!(a.role(61613), Some(Role::Stomp));
        assert_eq!(a.role(9999), None);
        let a = args(&["--tcp", "0", "-p", "7072", "-p", "7070"]);
        assert_eq!(a.role(7071), None, "0 ignores a port");
        assert_eq!(a.role(7072), Some(Role::Udp));
        assert_eq!(a.role(61613), None, "not among --port");
        let client: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let a = args(&["-c", "tcp#3", "-c", "127.0.0.1:6000"]);
        assert!(a.wants(Some(3), client));
        assert!(!a.wants(Some(4), client));
        assert!(a.wants(None, "127.0.0.1:6000".parse().unwrap()));
        assert!(args(&[]).wants(Some(9), client));
    }
}
