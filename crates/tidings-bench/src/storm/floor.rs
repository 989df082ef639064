//! The hidden `storm-floor` subcommand: the least a WebSocket server can do per reconnect on
//! this machine, measured by the same storm as the servers (issue 19 asks for ≤ 40 µs of
//! server CPU per reconnect; this says what the kernel alone costs here).
//!
//! One thread, one level-triggered epoll, no runtime, no allocation per read: accept, add to
//! epoll, read the upgrade request, answer `101` + `hello` + the URL subscription's `ok` in
//! one write (what tidings does with `/ws?topic=`), read and drop whatever comes next, and
//! close on reset (the kernel takes a closed socket out of epoll by itself). It keeps no
//! topic, no history, no session: it is a floor to compare with, not a server, and it is
//! only ever started by `storm` on loopback.

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

/// What `storm` waits for on the floor's standard output, followed by its address.
pub(crate) const BANNER: &str = "storm-floor: listening on ";

/// The event key of the listener (connections use their fd).
const LISTENER: u64 = u64::MAX;

/// A connection that has not sent its whole upgrade request yet keeps at most this much.
const MAX_HEAD: usize = 4096;

struct Conn {
    stream: TcpStream,
    /// The upgrade request so far; `None` once answered.
    head: Option<Vec<u8>>,
}

pub(crate) fn run() -> Result<(), String> {
    let listener = listener().map_err(|e| format!("listen: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("{BANNER}{addr}");
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| e.to_string())?;
    epoll
        .add(&listener, EpollEvent::new(EpollFlags::EPOLLIN, LISTENER))
        .map_err(|e| e.to_string())?;
    let mut conns: HashMap<u64, Conn> = HashMap::new();
    let mut events = vec![EpollEvent::empty(); 256];
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.to_string()),
        };
        for event in &events[..n] {
            let key = event.data();
            if key == LISTENER {
                accept_all(&listener, &epoll, &mut conns);
                continue;
            }
            let Some(conn) = conns.get_mut(&key) else {
                continue;
            };
            let open = match conn.stream.read(&mut buf) {
                Ok(0) | Err(_) => false,
                Ok(got) => match &mut conn.head {
                    Some(head) => {
                        head.extend_from_slice(&buf[..got]);
                        answer(conn)
                    }
                    // Publishes and anything else after the upgrade: read and dropped.
                    None => true,
                },
            };
            if !open {
                conns.remove(&key);
            }
        }
    }
}

/// A listener like tidings': backlog 4096 (std's 128 would drop a storm's SYNs, retried only
/// after a second), TCP_NODELAY set once for the sockets it accepts, non-blocking.
fn listener() -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn accept_all(listener: &TcpListener, epoll: &Epoll, conns: &mut HashMap<u64, Conn>) {
    loop {
        // std's accept is accept4(SOCK_CLOEXEC); making it non-blocking is one more syscall
        // (FIONBIO) than tidings' accept4(SOCK_NONBLOCK): the floor errs on the high side.
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => {
                eprintln!("storm-floor: accept: {e}");
                return;
            }
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        let key = stream.as_raw_fd() as u64;
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        if epoll.add(&stream, EpollEvent::new(flags, key)).is_ok() {
            conns.insert(
                key,
                Conn {
                    stream,
                    head: Some(Vec::new()),
                },
            );
        }
    }
}

/// Answers the upgrade once its head is complete; false when the connection should end.
fn answer(conn: &mut Conn) -> bool {
    let Some(head) = &conn.head else {
        return true;
    };
    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
        return head.len() < MAX_HEAD;
    };
    let Some(reply) = reply_to(&head[..end + 4]) else {
        // Not an upgrade: refused, and the connection ends.
        let _ = conn.stream.write_all(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        return false;
    };
    conn.head = None;
    conn.stream.write_all(&reply).is_ok()
}

/// `101`, `hello`, and the `ok` of the topic on the URL (offset = `since`: nothing is kept).
fn reply_to(head: &[u8]) -> Option<Vec<u8>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    request.parse(head).ok()?;
    let key = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))?
        .value;
    let accept = crate::ws_handshake::accept_key(key);
    let query = request.path?.split_once('?').map_or("", |(_, q)| q);
    let (mut topic, mut since) = (None, 0u64);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("topic", t)) => topic = Some(t),
            Some(("since", s)) => since = s.parse().ok()?,
            _ => {}
        }
    }
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes();
    text_frame(
        &mut out,
        r#"{"type":"hello","client":"1","server":"floor"}"#,
    );
    if let Some(topic) = topic {
        text_frame(
            &mut out,
            &format!(
                r#"{{"type":"ok","id":"url.0","topic":"{topic}","epoch":"floor","offset":{since},"replayed":0}}"#
            ),
        );
    }
    Some(out)
}

/// An unmasked server text frame (RFC 6455 5.2), payloads under 64 KiB.
fn text_frame(out: &mut Vec<u8>, text: &str) {
    out.push(0x81);
    match text.len() {
        n if n < 126 => out.push(n as u8),
        n => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_is_a_101_then_hello_then_the_url_topics_ok() {
        let head = b"GET /ws?topic=bench.storm&since=7&epoch=x HTTP/1.1\r\nHost: h\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let reply = String::from_utf8_lossy(&reply_to(head).unwrap()).into_owned();
        assert!(reply.starts_with("HTTP/1.1 101"), "{reply}");
        assert!(reply.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        let hello = reply.find(r#"{"type":"hello""#).unwrap();
        let ok = reply
            .find(r#"{"type":"ok","id":"url.0","topic":"bench.storm","epoch":"floor","offset":7"#)
            .unwrap();
        assert!(hello < ok);
        assert!(reply_to(b"GET /ws HTTP/1.1\r\nHost: h\r\n\r\n").is_none());
    }
}
