//! A subscriber that stops reading, under each slow-consumer policy: the server's memory stays
//! bounded and a fast subscriber on the same topic is not held back. Prints what it measured.

use std::time::{Duration, Instant};
use tidings_core::{OutboxLimits, SlowConsumerPolicy};
use tidings_server::Server;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

const MESSAGES: usize = 20_000;
const PAYLOAD: usize = 1000;
const ROUND: usize = 100;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn start(policy: SlowConsumerPolicy) -> Server {
    tidings_testkit::server()
        .tcp()
        .with(|cfg| {
            cfg.hub.slow_consumer = policy;
            cfg.hub.outbox = OutboxLimits {
                max_messages: 256,
                max_bytes: 256 * 1024,
            };
            cfg.hub.history.max_messages = 100;
        })
        .start()
        .await
}

async fn connect(server: &Server, small_buffer: bool) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if small_buffer {
        socket.set_recv_buffer_size(4096).unwrap();
    }
    let mut s = socket.connect(server.addrs().tcp.unwrap()).await.unwrap();
    s.write_all(b"SUB t\r\n").await.unwrap();
    s
}

/// Reads lines until the message with offset `until` arrived; returns the offsets seen.
async fn read_msgs(stream: &mut BufReader<TcpStream>, until: u64, deadline: Duration) -> Vec<u64> {
    let mut offsets = Vec::new();
    let mut line = String::new();
    let end = Instant::now() + deadline;
    while offsets.last() != Some(&until) {
        line.clear();
        match tokio::time::timeout_at(end.into(), stream.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => {
                if let Some(rest) = line.strip_prefix("MSG t ") {
                    offsets.push(rest.split(' ').next().unwrap().parse().unwrap());
                }
            }
            _ => break,
        }
    }
    offsets
}

async fn run(policy: SlowConsumerPolicy) {
    let server = start(policy).await;
    let mut slow = connect(&server, true).await;
    let mut fast = BufReader::new(connect(&server, false).await);
    let publisher = TcpStream::connect(server.addrs().tcp.unwrap())
        .await
        .unwrap();
    let (mut pub_rd, mut pub_wr) = publisher.into_split();
    // The publisher's own replies (+OK PUB) must be read, or it becomes a slow consumer too.
    tokio::spawn(async move { tokio::io::copy(&mut pub_rd, &mut tokio::io::sink()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = rss_kib();
    let payload = "x".repeat(PAYLOAD);
    let started = Instant::now();
    let mut fast_offsets = Vec::with_capacity(MESSAGES);
    // Publish in rounds the fast subscriber keeps up with; the slow one never reads.
    for round in 1..=MESSAGES / ROUND {
        let mut batch = String::with_capacity(ROUND * (PAYLOAD + 16));
        for _ in 0..ROUND {
            batch.push_str("PUB t ");
            batch.push_str(&payload);
            batch.push_str("\r\n");
        }
        pub_wr.write_all(batch.as_bytes()).await.unwrap();
        let until = (round * ROUND) as u64;
        let got = read_msgs(&mut fast, until, Duration::from_secs(10)).await;
        let complete = got.last() == Some(&until);
        fast_offsets.extend(got);
        if !complete {
            break;
        }
    }
    let fast_time = started.elapsed();
    let grown_kib = rss_kib().saturating_sub(before);
    let stats = server.hub().stats();
    println!(
        "{policy:?}: published {MESSAGES} x {PAYLOAD} B; fast subscriber got {} in {:?} ({:.0} msg/s); \
         server RSS grew {} KiB; dropped {}, slow consumers closed {}",
        fast_offsets.len(),
        fast_time,
        fast_offsets.len() as f64 / fast_time.as_secs_f64(),
        grown_kib,
        stats.dropped,
        stats.slow_consumers_closed
    );
    if policy == SlowConsumerPolicy::Conflate {
        // A conflating subscriber may skip values it was not fast enough to see, never the newest.
        assert_eq!(
            fast_offsets.last().copied(),
            Some(MESSAGES as u64),
            "the fast subscriber reached the newest"
        );
        assert!(fast_offsets.windows(2).all(|w| w[1] > w[0]), "in order");
    } else {
        let in_order = fast_offsets.iter().copied().eq(1..=MESSAGES as u64);
        assert!(
            in_order,
            "the fast subscriber got all {MESSAGES} in order (got {})",
            fast_offsets.len()
        );
    }
    // 20 MB went through; the slow session may hold at most its outbox (256 KiB) plus kernel buffers.
    assert!(
        grown_kib < 24 * 1024,
        "memory stayed bounded: grew {grown_kib} KiB"
    );

    // Now the slow subscriber reads what it was left.
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), slow.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    let offsets: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("MSG t "))
        .map(|r| r.split(' ').next().unwrap().parse().unwrap())
        .collect();
    match policy {
        SlowConsumerPolicy::Disconnect => {
            assert!(
                text.contains("-ERR slow consumer"),
                "told why it was closed"
            );
            assert_eq!(stats.slow_consumers_closed, 1);
            assert!(
                offsets.windows(2).all(|w| w[1] == w[0] + 1),
                "no gaps before the close"
            );
            assert!(offsets.len() < MESSAGES);
        }
        SlowConsumerPolicy::DropOldest | SlowConsumerPolicy::Conflate => {
            assert_eq!(stats.slow_consumers_closed, 0);
            assert!(stats.dropped > 0 || policy == SlowConsumerPolicy::Conflate);
            assert_eq!(
                offsets.last().copied(),
                Some(MESSAGES as u64),
                "the newest message arrives"
            );
            assert!(offsets.windows(2).all(|w| w[1] > w[0]), "in order");
            assert!(offsets.len() < MESSAGES, "some were dropped");
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_disconnect() {
    run(SlowConsumerPolicy::Disconnect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_drop_oldest() {
    run(SlowConsumerPolicy::DropOldest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_conflate() {
    run(SlowConsumerPolicy::Conflate).await;
}
