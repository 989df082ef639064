//! TCP as the tap sees it: connections (handshake and close made visible) and each
//! direction's bytes put back in order for the protocol decoders.
//!
//! Best effort, as any passive observer: segments that arrive early wait (at most 64 per
//! direction and 1 MiB); a retransmission is recognised by its sequence numbers and skipped;
//! bytes that never show up (the tap started late, the kernel dropped them) are reported and
//! the decoder of that direction resynchronises where it can.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::decode::Stream;
use super::packet::Flags;
use super::{Dir, Role};

/// Early segments kept per direction.
const MAX_EARLY: usize = 64;
/// Early bytes kept per direction.
const MAX_EARLY_BYTES: usize = 1 << 20;
/// Connections tracked at once; the oldest is forgotten beyond it.
const MAX_CONNS: usize = 4096;

/// One line of output about a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    pub(crate) conn: u64,
    pub(crate) client: SocketAddr,
    pub(crate) text: String,
}

#[derive(Default)]
struct Half {
    /// Sequence number of the next byte expected; `None` until the first segment.
    next: Option<u32>,
    early: Vec<(u32, Vec<u8>)>,
    early_bytes: usize,
    fin: bool,
}

/// `true` when `a` comes after `b` in sequence space (RFC 1982 arithmetic).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Half {
    /// Takes a segment; returns the bytes now in order, and how many bytes were skipped as
    /// never seen (when the early queue overflowed).
    fn accept(&mut self, seq: u32, payload: &[u8]) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let mut lost = 0;
        let next = *self.next.get_or_insert(seq);
        if after(seq, next) {
            if self.early.len() >= MAX_EARLY || self.early_bytes + payload.len() > MAX_EARLY_BYTES {
                // Give up waiting for the hole: skip to the earliest segment held.
                let first = self
                    .early
                    .iter()
                    .map(|(s, _)| *s)
                    .chain([seq])
                    .min_by(|a, b| a.wrapping_sub(next).cmp(&b.wrapping_sub(next)))
                    .unwrap_or(seq);
                lost = first.wrapping_sub(next) as usize;
                self.next = Some(first);
                self.early.push((seq, payload.to_vec()));
                self.early_bytes += payload.len();
                self.drain(&mut out);
                return (out, lost);
            }
            self.early.push((seq, payload.to_vec()));
            self.early_bytes += payload.len();
            return (out, 0);
        }
        self.take(seq, payload, &mut out);
        self.drain(&mut out);
        (out, lost)
    }

    /// Appends the part of a segment at or before `next` that is new.
    fn take(&mut self, seq: u32, payload: &[u8], out: &mut Vec<u8>) {
        let Some(next) = self.next else { return };
        let skip = next.wrapping_sub(seq) as usize;
        if skip < payload.len() {
            out.extend_from_slice(&payload[skip..]);
            self.next = Some(next.wrapping_add((payload.len() - skip) as u32));
        }
    }

    /// Moves early segments that now fit onto `out`.
    fn drain(&mut self, out: &mut Vec<u8>) {
        while let Some(next) = self.next {
            let Some(i) = self.early.iter().position(|(s, _)| !after(*s, next)) else {
                return;
            };
            let (seq, data) = self.early.swap_remove(i);
            self.early_bytes -= data.len();
            self.take(seq, &data, out);
        }
    }
}

struct Conn {
    id: u64,
    halves: [Half; 2],
    stream: Stream,
    established: bool,
    /// Order of creation, to forget the oldest when full.
    born: u64,
}

pub(crate) struct Tracker {
    conns: HashMap<(SocketAddr, SocketAddr), Conn>,
    next_id: u64,
    max_text: usize,
}

fn index(dir: Dir) -> usize {
    match dir {
        Dir::ToServer => 0,
        Dir::ToClient => 1,
    }
}

impl Tracker {
    pub(crate) fn new(max_text: usize) -> Self {
        Self {
            conns: HashMap::new(),
            next_id: 1,
            max_text,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn segment(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        dir: Dir,
        role: Role,
        seq: u32,
        flags: Flags,
        payload: &[u8],
        out: &mut Vec<Note>,
    ) {
        let key = (client, server);
        let arrow = |dir: Dir| match dir {
            Dir::ToServer => format!("{client} > {server}"),
            Dir::ToClient => format!("{client} < {server}"),
        };
        if !self.conns.contains_key(&key) {
            // Only a SYN or data open a connection; a stray ACK or FIN of one we never saw
            // (or already closed) says nothing.
            if flags.rst || (!flags.syn && payload.is_empty()) {
                return;
            }
            if self.conns.len() >= MAX_CONNS {
                if let Some(oldest) = self
                    .conns
                    .iter()
                    .min_by_key(|(_, c)| c.born)
                    .map(|(k, _)| *k)
                {
                    self.conns.remove(&oldest);
                }
            }
            let id = self.next_id;
            self.next_id += 1;
            self.conns.insert(
                key,
                Conn {
                    id,
                    halves: Default::default(),
                    stream: Stream::new(role, self.max_text),
                    established: false,
                    born: id,
                },
            );
            if !flags.syn {
                out.push(Note {
                    conn: id,
                    client,
                    text: format!(
                        "{} (open before the tap started: decoding from here, best effort)",
                        arrow(dir)
                    ),
                });
            }
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        let note = |text: String| Note {
            conn: conn.id,
            client,
            text,
        };
        let half = &mut conn.halves[index(dir)];
        if flags.rst {
            out.push(note(format!("{} RST: connection reset", arrow(dir))));
            self.conns.remove(&key);
            return;
        }
        if flags.syn {
            half.next = Some(seq.wrapping_add(1));
            let what = if flags.ack { "SYN-ACK" } else { "SYN" };
            out.push(note(format!("{} {what}", arrow(dir))));
            return;
        }
        if !conn.established && dir == Dir::ToServer && flags.ack {
            conn.established = true;
            if payload.is_empty() {
                out.push(note(format!("{} ACK (connection established)", arrow(dir))));
            }
        }
        if !payload.is_empty() {
            let (bytes, lost) = half.accept(seq, payload);
            let mut lines = Vec::new();
            if lost > 0 {
                conn.stream.lost(dir, lost, &mut lines);
            }
            if !bytes.is_empty() {
                conn.stream.feed(dir, &bytes, &mut lines);
            }
            out.extend(lines.into_iter().map(note));
        }
        if flags.fin && !half.fin {
            half.fin = true;
            out.push(note(format!("{} FIN", arrow(dir))));
            if conn.halves.iter().all(|h| h.fin) {
                out.push(note("closed".into()));
                self.conns.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reorders_skips_retransmissions_and_reports_holes() {
        let mut h = Half::default();
        assert_eq!(h.accept(100, b"abc"), (b"abc".to_vec(), 0));
        assert_eq!(h.accept(100, b"abc"), (vec![], 0), "retransmission");
        assert_eq!(h.accept(106, b"ghi"), (vec![], 0), "early: waits");
        assert_eq!(
            h.accept(101, b"bcdef"),
            (b"defghi".to_vec(), 0),
            "overlap trimmed"
        );
        // Wrapping sequence numbers.
        let mut h = Half::default();
        assert_eq!(h.accept(u32::MAX - 1, b"ab"), (b"ab".to_vec(), 0));
        assert_eq!(h.accept(0, b"cd"), (b"cd".to_vec(), 0));
        // A hole that never fills: after MAX_EARLY segments the tap moves on.
        let mut h = Half::default();
        h.accept(0, b"a");
        for i in 0..MAX_EARLY as u32 {
            assert_eq!(h.accept(10 + i, b"x").0, Vec::<u8>::new());
        }
        let (bytes, lost) = h.accept(10 + MAX_EARLY as u32, b"y");
        assert_eq!(lost, 9);
        assert_eq!(bytes.len(), MAX_EARLY + 1);
    }

    fn flags(syn: bool, ack: bool, fin: bool) -> Flags {
        Flags {
            syn,
            ack,
            fin,
            rst: false,
        }
    }

    #[test]
    fn handshake_data_and_close() {
        let c: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let s: SocketAddr = "127.0.0.1:7071".parse().unwrap();
        let mut t = Tracker::new(100);
        let mut out = Vec::new();
        let mut seg = |dir, seq, f, p: &[u8]| t.segment(c, s, dir, Role::Line, seq, f, p, &mut out);
        seg(Dir::ToServer, 10, flags(true, false, false), b"");
        seg(Dir::ToClient, 500, flags(true, true, false), b"");
        seg(Dir::ToServer, 11, flags(false, true, false), b"");
        seg(Dir::ToServer, 11, flags(false, true, false), b"SUB a\r\n");
        seg(
            Dir::ToClient,
            501,
            flags(false, true, false),
            b"+OK SUB a\r\n",
        );
        seg(Dir::ToServer, 18, flags(false, true, true), b"");
        seg(Dir::ToClient, 512, flags(false, true, true), b"");
        let text: Vec<String> = out.iter().map(|n| n.text.clone()).collect();
        assert_eq!(
            text,
            [
                "127.0.0.1:5000 > 127.0.0.1:7071 SYN",
                "127.0.0.1:5000 < 127.0.0.1:7071 SYN-ACK",
                "127.0.0.1:5000 > 127.0.0.1:7071 ACK (connection established)",
                "line > SUB a",
                "line < +OK SUB a",
                "127.0.0.1:5000 > 127.0.0.1:7071 FIN",
                "127.0.0.1:5000 < 127.0.0.1:7071 FIN",
                "closed",
            ]
        );
        assert!(out.iter().all(|n| n.conn == 1 && n.client == c));
    }
}
