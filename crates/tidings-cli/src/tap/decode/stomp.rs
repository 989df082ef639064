//! STOMP frames (STOMP 1.0-1.2), decoded generically from the bytes: a command line,
//! `name:value` header lines, a blank line, a body up to `content-length` or a NUL byte.
//! Heart-beats (bare line ends between frames) are skipped.

use super::{arrow, show, slot, MAX_PENDING};
use crate::tap::Dir;

pub(crate) struct StompStream {
    bufs: [Vec<u8>; 2],
    /// After lost bytes or a bad frame: drop input up to the next NUL, then decode again.
    resync: [bool; 2],
    max_text: usize,
}

impl StompStream {
    pub(crate) fn new(max_text: usize) -> Self {
        Self {
            bufs: Default::default(),
            resync: [false; 2],
            max_text,
        }
    }

    pub(crate) fn lost(&mut self, dir: Dir, n: usize, out: &mut Vec<String>) {
        out.push(format!(
            "stomp {} could not decode: {n} bytes were not captured; resuming after the next NUL",
            arrow(dir)
        ));
        self.bufs[slot(dir)].clear();
        self.resync[slot(dir)] = true;
    }

    pub(crate) fn feed(&mut self, dir: Dir, bytes: &[u8], out: &mut Vec<String>) {
        let i = slot(dir);
        self.bufs[i].extend_from_slice(bytes);
        loop {
            let buf = &mut self.bufs[i];
            if self.resync[i] {
                match buf.iter().position(|&b| b == 0) {
                    Some(at) => {
                        buf.drain(..=at);
                        self.resync[i] = false;
                    }
                    None => {
                        buf.clear();
                        return;
                    }
                }
            }
            let beats = buf
                .iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count();
            buf.drain(..beats);
            match frame(buf, self.max_text) {
                Frame::Incomplete => break,
                Frame::Done { text, len } => {
                    out.push(format!("stomp {} {text}", arrow(dir)));
                    buf.drain(..len);
                }
                Frame::Bad(why) => {
                    out.push(format!(
                        "stomp {} could not decode: {why}; resuming after the next NUL",
                        arrow(dir)
                    ));
                    self.resync[i] = true;
                }
            }
        }
        if self.bufs[i].len() > MAX_PENDING {
            self.lost(dir, 0, out);
        }
    }
}

enum Frame {
    Incomplete,
    Done { text: String, len: usize },
    Bad(String),
}

fn frame(buf: &[u8], max: usize) -> Frame {
    let Some(head_end) = find(buf, b"\n\n")
        .map(|at| (at, at + 2))
        .into_iter()
        .chain(find(buf, b"\r\n\r\n").map(|at| (at, at + 4)))
        .min_by_key(|(at, _)| *at)
    else {
        return Frame::Incomplete;
    };
    let (head, body_start) = head_end;
    let Ok(head) = std::str::from_utf8(&buf[..head]) else {
        return Frame::Bad("frame head is not UTF-8".into());
    };
    let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
    let command = lines.next().unwrap_or_default();
    if command.is_empty() || !command.bytes().all(|b| b.is_ascii_uppercase()) {
        return Frame::Bad(format!(
            "{} is not a STOMP command",
            show(command.as_bytes(), command.len(), 20)
        ));
    }
    let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let length = headers.iter().find_map(|h| {
        h.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let (body_end, len) = match length {
        Some(n) => match buf.get(body_start + n) {
            None => return Frame::Incomplete,
            Some(0) => (body_start + n, body_start + n + 1),
            Some(_) => return Frame::Bad("no NUL after content-length bytes".into()),
        },
        None => match buf[body_start..].iter().position(|&b| b == 0) {
            Some(at) => (body_start + at, body_start + at + 1),
            None => return Frame::Incomplete,
        },
    };
    let mut text = command.to_owned();
    for h in &headers {
        // Credentials stay off the screen.
        match h.split_once(':') {
            Some((name @ ("passcode" | "Authorization" | "authorization"), _)) => {
                text.push_str(&format!(" {name}:****"))
            }
            _ => {
                text.push(' ');
                text.push_str(h);
            }
        }
    }
    let body = &buf[body_start..body_end];
    if !body.is_empty() {
        text.push_str(&format!(" body {}", show(body, body.len(), max)));
    }
    Frame::Done { text, len }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_heartbeats_and_bad_input() {
        let mut s = StompStream::new(50);
        let mut out = Vec::new();
        s.feed(
            Dir::ToServer,
            b"CONNECT\naccept-version:1.2\nhost:/\nlogin:a\npasscode:s\n\n\0\n",
            &mut out,
        );
        s.feed(
            Dir::ToServer,
            b"SEND\r\ndestination:/topic/a\r\ncontent-length:3\r\n\r\na\0b",
            &mut out,
        );
        s.feed(Dir::ToServer, b"\0", &mut out);
        s.feed(Dir::ToClient, b"CONNECTED\nversion:1.2\n\n\0", &mut out);
        s.feed(
            Dir::ToClient,
            b"bogus\n\nx\0MESSAGE\ndestination:/topic/a\n\nhi\0",
            &mut out,
        );
        assert_eq!(
            out,
            [
                "stomp > CONNECT accept-version:1.2 host:/ login:a passcode:****",
                "stomp > SEND destination:/topic/a content-length:3 body \"a\\0b\"",
                "stomp < CONNECTED version:1.2",
                "stomp < could not decode: \"bogus\" is not a STOMP command; resuming after the next NUL",
                "stomp < MESSAGE destination:/topic/a body \"hi\"",
            ]
        );
    }
}
