//! The load: STOMP publishers and subscribers over TCP, one tokio task each (on one thread,
//! so the servers keep the other core). Writes are batched; MESSAGE frames are scanned with a
//! minimal parser (find the blank line, the `content-length`, the body) so the client costs
//! as little as possible, the same for both servers.

use super::{Sample, Shape};
use bytes::{BufMut, BytesMut};
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

pub(crate) struct Load {
    pub(crate) secs: Duration,
    pub(crate) size: usize,
    pub(crate) window: usize,
}

/// What the tasks of one measurement share (one thread: `Rc`/`Cell`).
struct Shared {
    start: Instant,
    /// received[s][p]: messages of publisher p that subscriber s got.
    received: Vec<Vec<Cell<u64>>>,
    /// Woken when subscribers made progress (publishers wait for room in their window).
    progress: Notify,
    measuring: Cell<bool>,
    stop: Cell<bool>,
    delivered: Cell<u64>,
    latencies: RefCell<Histogram<u64>>,
}

impl Load {
    pub(crate) async fn measure(
        &self,
        addr: SocketAddr,
        topic: &str,
        shape: Shape,
    ) -> Result<Sample, String> {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(self.measure_local(addr, topic, shape))
            .await
    }

    async fn measure_local(
        &self,
        addr: SocketAddr,
        topic: &str,
        shape: Shape,
    ) -> Result<Sample, String> {
        let dest = format!("/topic/{topic}");
        let shared = Rc::new(Shared {
            start: Instant::now(),
            received: (0..shape.subscribers)
                .map(|_| (0..shape.publishers).map(|_| Cell::new(0)).collect())
                .collect(),
            progress: Notify::new(),
            measuring: Cell::new(false),
            stop: Cell::new(false),
            delivered: Cell::new(0),
            latencies: RefCell::new(
                Histogram::new_with_bounds(1, 120_000_000, 3).map_err(|e| e.to_string())?,
            ),
        });
        let mut subs = Vec::new();
        for s in 0..shape.subscribers {
            let mut conn = Conn::connect(addr).await?;
            conn.request(
                &format!("SUBSCRIBE\nid:0\ndestination:{dest}\nack:auto\nreceipt:s{s}\n\n\0"),
                "RECEIPT",
            )
            .await?;
            subs.push(tokio::task::spawn_local(subscriber(
                conn,
                s,
                shared.clone(),
            )));
        }
        let mut pubs = Vec::new();
        for p in 0..shape.publishers {
            let conn = Conn::connect(addr).await?;
            let body = self.size;
            let window = self.window as u64;
            let head = format!("SEND\ndestination:{dest}\ncontent-length:{body}\n\n");
            pubs.push(tokio::task::spawn_local(publisher(
                conn,
                p,
                head,
                body,
                window,
                shared.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = shared.delivered.get();
        shared.measuring.set(true);
        let t0 = Instant::now();
        tokio::time::sleep(self.secs).await;
        shared.measuring.set(false);
        let elapsed = t0.elapsed().as_secs_f64();
        let delivered = shared.delivered.get() - before;
        shared.stop.set(true);
        shared.progress.notify_waiters();
        for t in pubs {
            t.await.map_err(|e| e.to_string())??;
        }
        for t in subs {
            t.abort();
        }
        let h = shared.latencies.borrow();
        if h.is_empty() {
            return Err(format!("no message was delivered by {addr}"));
        }
        Ok(Sample {
            msgs_per_sec: delivered as f64 / elapsed,
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
        })
    }
}

async fn publisher(
    mut conn: Conn,
    p: usize,
    head: String,
    body: usize,
    window: u64,
    shared: Rc<Shared>,
) -> Result<(), String> {
    let mut sent = 0u64;
    let mut out = BytesMut::new();
    while !shared.stop.get() {
        // In flight: sent but not yet received by the slowest subscriber.
        let acked = shared
            .received
            .iter()
            .map(|r| r[p].get())
            .min()
            .unwrap_or(0);
        let room = window.saturating_sub(sent - acked);
        if room == 0 {
            let wait = shared.progress.notified();
            tokio::pin!(wait);
            wait.as_mut().enable();
            let acked = shared
                .received
                .iter()
                .map(|r| r[p].get())
                .min()
                .unwrap_or(0);
            if sent - acked >= window && !shared.stop.get() {
                wait.await;
            }
            continue;
        }
        let now = shared.start.elapsed().as_nanos() as u64;
        for _ in 0..room.min(64) {
            out.put_slice(head.as_bytes());
            out.put_u64(now);
            out.put_u64(p as u64);
            out.put_bytes(b'x', body - 16);
            out.put_u8(0);
        }
        sent += room.min(64);
        conn.stream
            .write_all(&out)
            .await
            .map_err(|e| format!("publisher write: {e}"))?;
        out.clear();
    }
    Ok(())
}

async fn subscriber(mut conn: Conn, s: usize, shared: Rc<Shared>) -> Result<(), String> {
    loop {
        let mut progressed = false;
        while let Some(body) = conn.next_message()? {
            if body.len() < 16 {
                return Err("a message body shorter than 16 bytes".into());
            }
            let sent = u64::from_be_bytes(body[0..8].try_into().unwrap_or_default());
            let p = u64::from_be_bytes(body[8..16].try_into().unwrap_or_default()) as usize;
            if let Some(cell) = shared.received[s].get(p) {
                cell.set(cell.get() + 1);
            }
            shared.delivered.set(shared.delivered.get() + 1);
            if shared.measuring.get() {
                let now = shared.start.elapsed().as_nanos() as u64;
                let us = (now.saturating_sub(sent) / 1000).max(1);
                let _ = shared.latencies.borrow_mut().record(us);
            }
            progressed = true;
        }
        if progressed {
            shared.progress.notify_waiters();
        }
        conn.fill().await?;
    }
}

/// A STOMP connection with a read buffer.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut conn = Conn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
        };
        conn.request(
            "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\nheart-beat:0,0\n\n\0",
            "CONNECTED",
        )
        .await?;
        Ok(conn)
    }

    /// Sends a frame and waits for a frame starting with `want`.
    async fn request(&mut self, frame: &str, want: &str) -> Result<(), String> {
        self.stream
            .write_all(frame.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some((command, len)) = scan(&self.buf)? {
                let command = String::from_utf8_lossy(command).into_owned();
                let text = String::from_utf8_lossy(&self.buf[..len]).into_owned();
                let _ = self.buf.split_to(len);
                if command == want {
                    return Ok(());
                }
                return Err(format!("expected {want}, got {text:?}"));
            }
            tokio::time::timeout_at(deadline, self.fill())
                .await
                .map_err(|_| format!("no {want} in 10 s"))??;
        }
    }

    async fn fill(&mut self) -> Result<(), String> {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err("the server closed the connection".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The body of the next whole MESSAGE in the buffer (consumed), if there is one.
    fn next_message(&mut self) -> Result<Option<bytes::Bytes>, String> {
        let Some((command, len)) = scan(&self.buf)? else {
            return Ok(None);
        };
        if command != b"MESSAGE" {
            let text = String::from_utf8_lossy(&self.buf[..len.min(300)]).into_owned();
            return Err(format!("unexpected frame: {text:?}"));
        }
        let body_range = body_of(&self.buf[..len]);
        let frame = self.buf.split_to(len).freeze();
        Ok(Some(frame.slice(body_range)))
    }
}

/// Finds the frame at the front of `buf` (after heart-beat EOLs): its command and its whole
/// length through the NUL. `None` until it is complete.
fn scan(buf: &[u8]) -> Result<Option<(&[u8], usize)>, String> {
    let start = buf.iter().position(|&b| b != b'\n' && b != b'\r');
    let Some(start) = start else { return Ok(None) };
    let frame = &buf[start..];
    let Some(head_end) = find(frame, b"\n\n") else {
        return Ok(None);
    };
    let head = &frame[..head_end + 1];
    let command_end = head.iter().position(|&b| b == b'\n').unwrap_or(0);
    let command = &head[..command_end];
    let body_start = head_end + 2;
    let end = match find(head, b"\ncontent-length:") {
        Some(i) => {
            let digits = &head[i + 16..];
            let n: usize = digits
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .fold(0, |n, &d| n * 10 + usize::from(d - b'0'));
            let end = body_start + n;
            if frame.len() <= end {
                return Ok(None);
            }
            end
        }
        None => match frame[body_start..].iter().position(|&b| b == 0) {
            Some(i) => body_start + i,
            None => return Ok(None),
        },
    };
    // Heads without a leading EOL sit at `start`; report lengths from the buffer's front.
    Ok(Some((command, start + end + 1))).and_then(|r| match frame.get(end) {
        Some(0) => Ok(r),
        _ => Err("a frame body not followed by NUL".into()),
    })
}

/// The body range of a whole frame (as `scan` found it).
fn body_of(frame: &[u8]) -> std::ops::Range<usize> {
    let start = frame
        .iter()
        .position(|&b| b != b'\n' && b != b'\r')
        .unwrap_or(0);
    let head_end = find(&frame[start..], b"\n\n").unwrap_or(0);
    start + head_end + 2..frame.len() - 1
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
