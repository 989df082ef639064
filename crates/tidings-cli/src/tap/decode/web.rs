//! The HTTP port: request and response heads, then, after `101 Switching Protocols`,
//! WebSocket frames (RFC 6455 section 5.2): FIN, opcode, mask, length; payloads unmasked and
//! text shown. Compressed messages (permessage-deflate, RSV1) are shown by size only.

use super::{arrow, hex, show, slot, MAX_PENDING};
use crate::tap::Dir;

/// Payload bytes kept to show a frame; the rest of a big frame is skipped, not buffered.
const PREVIEW: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Http,
    /// After a `101`: WebSocket frames.
    Ws,
    /// Something this tap cannot follow (chunked bodies, lost bytes): stop decoding.
    Opaque,
}

struct Half {
    mode: Mode,
    buf: Vec<u8>,
    /// Bytes still to skip: the rest of an HTTP body or of a big frame's payload.
    skip: u64,
}

pub(crate) struct WebStream {
    halves: [Half; 2],
    max_text: usize,
}

impl WebStream {
    pub(crate) fn new(max_text: usize) -> Self {
        let half = || Half {
            mode: Mode::Http,
            buf: Vec::new(),
            skip: 0,
        };
        Self {
            halves: [half(), half()],
            max_text,
        }
    }

    pub(crate) fn lost(&mut self, dir: Dir, n: usize, out: &mut Vec<String>) {
        let h = &mut self.halves[slot(dir)];
        if h.mode != Mode::Opaque {
            out.push(format!(
                "{} {} could not decode: {n} bytes were not captured; no longer decoding this direction",
                name(h.mode),
                arrow(dir)
            ));
        }
        h.mode = Mode::Opaque;
        h.buf.clear();
    }

    pub(crate) fn feed(&mut self, dir: Dir, bytes: &[u8], out: &mut Vec<String>) {
        let i = slot(dir);
        let mut bytes = bytes;
        {
            let h = &mut self.halves[i];
            if h.mode == Mode::Opaque {
                return;
            }
            let skipped = (h.skip.min(bytes.len() as u64)) as usize;
            h.skip -= skipped as u64;
            bytes = &bytes[skipped..];
            h.buf.extend_from_slice(bytes);
        }
        loop {
            let progressed = match self.halves[i].mode {
                Mode::Http => self.http(dir, out),
                Mode::Ws => self.frame(dir, out),
                Mode::Opaque => false,
            };
            if !progressed {
                break;
            }
        }
        let h = &mut self.halves[i];
        if h.buf.len() > MAX_PENDING && h.mode != Mode::Opaque {
            out.push(format!(
                "{} {} could not decode: no frame boundary in {} bytes; no longer decoding this direction",
                name(h.mode),
                arrow(dir),
                h.buf.len()
            ));
            h.mode = Mode::Opaque;
            h.buf.clear();
        }
    }

    /// One HTTP head (and the body after it, skipped).
    fn http(&mut self, dir: Dir, out: &mut Vec<String>) -> bool {
        let a = arrow(dir);
        let max = self.max_text;
        let h = &mut self.halves[slot(dir)];
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let (head_len, line, interesting, body, upgraded) = match dir {
            Dir::ToServer => {
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&h.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let line = format!(
                            "{} {} HTTP/1.{}",
                            req.method.unwrap_or("?"),
                            without_token(req.path.unwrap_or("?")),
                            req.version.unwrap_or(1)
                        );
                        let (interesting, body) = summarize(req.headers);
                        (n, line, interesting, body, false)
                    }
                    Ok(httparse::Status::Partial) => return false,
                    Err(e) => return self.give_up(dir, &format!("not HTTP ({e})"), out),
                }
            }
            Dir::ToClient => {
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&h.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let code = resp.code.unwrap_or(0);
                        let line = format!(
                            "HTTP/1.{} {code} {}",
                            resp.version.unwrap_or(1),
                            resp.reason.unwrap_or("")
                        );
                        let (interesting, body) = summarize(resp.headers);
                        (n, line, interesting, body, code == 101)
                    }
                    Ok(httparse::Status::Partial) => return false,
                    Err(e) => return self.give_up(dir, &format!("not HTTP ({e})"), out),
                }
            }
        };
        h.buf.drain(..head_len);
        let mut text = format!("http {a} {line}");
        if !interesting.is_empty() {
            text.push_str(&format!(" [{}]", interesting.join(", ")));
        }
        match body {
            Body::None => {}
            Body::Length(n) => {
                let shown = (n as usize).min(h.buf.len()).min(PREVIEW);
                text.push_str(&format!(" body {}", show(&h.buf[..shown], n as usize, max)));
                let have = (n as usize).min(h.buf.len());
                h.buf.drain(..have);
                h.skip = n - have as u64;
            }
            Body::Chunked => {
                out.push(text);
                return self.give_up(dir, "chunked body not followed", out);
            }
        }
        out.push(text);
        if upgraded {
            out.push("ws: switched protocols; WebSocket frames follow".into());
            for half in &mut self.halves {
                half.mode = Mode::Ws;
            }
        }
        true
    }

    fn give_up(&mut self, dir: Dir, why: &str, out: &mut Vec<String>) -> bool {
        let h = &mut self.halves[slot(dir)];
        out.push(format!(
            "{} {} could not decode: {why}; no longer decoding this direction",
            name(h.mode),
            arrow(dir)
        ));
        h.mode = Mode::Opaque;
        h.buf.clear();
        false
    }

    /// One WebSocket frame: its head and a preview of its payload.
    fn frame(&mut self, dir: Dir, out: &mut Vec<String>) -> bool {
        let max = self.max_text;
        let h = &mut self.halves[slot(dir)];
        let b = &h.buf;
        if b.len() < 2 {
            return false;
        }
        let fin = b[0] & 0x80 != 0;
        let rsv1 = b[0] & 0x40 != 0;
        let opcode = b[0] & 0x0f;
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            126 | 127 => return false,
            n => (u64::from(n), 2),
        };
        let mut key = [0u8; 4];
        if masked {
            if b.len() < at + 4 {
                return false;
            }
            key.copy_from_slice(&b[at..at + 4]);
            at += 4;
        }
        let want = len.min(PREVIEW as u64) as usize;
        if b.len() < at + want {
            return false;
        }
        let mut payload: Vec<u8> = b[at..at + want].to_vec();
        if masked {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= key[i % 4];
            }
        }
        let kind = match opcode {
            0 => "continuation",
            1 => "text",
            2 => "binary",
            8 => "close",
            9 => "ping",
            10 => "pong",
            _ => "reserved-opcode",
        };
        let mut text = format!("ws {} {kind}", arrow(dir));
        if fin {
            text.push_str(" fin");
        }
        if masked {
            text.push_str(" masked");
        }
        text.push_str(&format!(" len={len}"));
        if rsv1 {
            text.push_str(" compressed (permessage-deflate: payload not shown)");
        } else if opcode == 8 && payload.len() >= 2 {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            text.push_str(&format!(
                " code={code} {}",
                show(&payload[2..], payload.len() - 2, max)
            ));
        } else if opcode == 2 {
            text.push(' ');
            text.push_str(&show_binary(&payload, len as usize));
        } else if !payload.is_empty() {
            text.push(' ');
            text.push_str(&show(&payload, len as usize, max));
        }
        out.push(text);
        h.buf.drain(..at + want);
        h.skip = len - want as u64;
        if h.skip > 0 {
            let now = (h.skip.min(h.buf.len() as u64)) as usize;
            h.buf.drain(..now);
            h.skip -= now as u64;
        }
        true
    }
}

/// Binary frames of the native protocol start with a JSON header line: show it as text.
fn show_binary(payload: &[u8], total: usize) -> String {
    match payload.iter().position(|&b| b == b'\n') {
        Some(nl)
            if payload.first() == Some(&b'{') && std::str::from_utf8(&payload[..nl]).is_ok() =>
        {
            format!(
                "{} + {} payload bytes",
                show(&payload[..nl], nl, 200),
                total - nl - 1
            )
        }
        _ => hex(payload, total),
    }
}

fn name(mode: Mode) -> &'static str {
    match mode {
        Mode::Http => "http",
        Mode::Ws | Mode::Opaque => "ws",
    }
}

enum Body {
    None,
    Length(u64),
    Chunked,
}

/// The headers worth showing (the WebSocket handshake's), and how the body is framed.
/// A request target with the value of a `token=` (and `password=`) query parameter masked:
/// tokens on URLs are credentials and stay off the screen.
fn without_token(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k @ ("token" | "password"), _)) => format!("{k}=****"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

fn summarize(headers: &[httparse::Header<'_>]) -> (Vec<String>, Body) {
    let mut shown = Vec::new();
    let mut body = Body::None;
    for h in headers {
        let value = String::from_utf8_lossy(h.value);
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "upgrade"
            | "sec-websocket-protocol"
            | "sec-websocket-extensions"
            | "sec-websocket-version"
            | "content-type" => shown.push(format!("{name}: {value}")),
            "content-length" => {
                if let Ok(n) = value.trim().parse() {
                    body = Body::Length(n);
                }
            }
            "transfer-encoding" if value.to_ascii_lowercase().contains("chunked") => {
                body = Body::Chunked
            }
            _ => {}
        }
    }
    (shown, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_on_urls_are_masked() {
        assert_eq!(
            without_token("/sse?topic=a&token=eyJ.x.y&since=1"),
            "/sse?topic=a&token=****&since=1"
        );
        assert_eq!(without_token("/ws"), "/ws");
    }

    fn masked_text(text: &str) -> Vec<u8> {
        let key = [1u8, 2, 3, 4];
        let mut f = vec![0x81, 0x80 | text.len() as u8];
        f.extend_from_slice(&key);
        f.extend(text.bytes().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    #[test]
    fn handshake_then_frames() {
        let mut s = WebStream::new(100);
        let mut out = Vec::new();
        s.feed(
            Dir::ToServer,
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            &mut out,
        );
        s.feed(
            Dir::ToClient,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hel",
            &mut out,
        );
        s.feed(Dir::ToClient, b"lo\x88\x02\x03\xe8", &mut out);
        let frame = masked_text(r#"{"op":"ping"}"#);
        s.feed(Dir::ToServer, &frame[..5], &mut out);
        s.feed(Dir::ToServer, &frame[5..], &mut out);
        assert_eq!(
            out,
            [
                "http > GET /ws HTTP/1.1 [upgrade: websocket]",
                "http < HTTP/1.1 101 Switching Protocols [upgrade: websocket]",
                "ws: switched protocols; WebSocket frames follow",
                "ws < text fin len=5 \"hello\"",
                "ws < close fin len=2 code=1000 \"\"",
                "ws > text fin masked len=13 \"{\\\"op\\\":\\\"ping\\\"}\"",
            ]
        );
    }

    #[test]
    fn big_frames_are_previewed_and_skipped() {
        let mut s = WebStream::new(10);
        for h in &mut s.halves {
            h.mode = Mode::Ws;
        }
        let mut out = Vec::new();
        let mut f = vec![0x82, 127];
        f.extend_from_slice(&100_000u64.to_be_bytes());
        f.extend(std::iter::repeat_n(0u8, 100_000));
        f.extend_from_slice(b"\x89\x00");
        for chunk in f.chunks(1500) {
            s.feed(Dir::ToClient, chunk, &mut out);
        }
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].starts_with("ws < binary fin len=100000 <100000 bytes: 00"));
        assert_eq!(out[1], "ws < ping fin len=0");
    }
}
