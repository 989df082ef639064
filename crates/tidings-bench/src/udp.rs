//! The `udp` scenario: one publisher sends fire-and-forget `PUBLISH` datagrams at a paced
//! rate to an in-process server; `--subscribers` UDP subscribers of `bench.>` count the
//! `MESSAGE` datagrams they get. Each step (one offered rate) uses its own topic, so offsets
//! restart and counting is exact; the server's own count of published messages tells loss on
//! the way in (publisher -> server) from loss on the way out (server -> subscribers).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use tidings_core::SlowConsumerPolicy;
use tidings_proto::udp::{self, Reply, Request, REPLY_ROOM};
use tidings_proto::PayloadKind;
use tidings_server::{Listen, Server, ServerConfig};

#[derive(Args, Debug)]
pub(crate) struct UdpArgs {
    /// Offered publish rates, datagrams per second, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5000,10000,25000,50000,100000,200000"
    )]
    rates: Vec<u64>,
    /// Seconds per rate.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// UDP subscribers (each gets every message).
    #[arg(long, default_value_t = 4)]
    subscribers: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Kernel socket buffer asked for every socket, bytes (capped by net.core.rmem_max).
    #[arg(long, default_value_t = 8 << 20)]
    socket_buffer: usize,
    /// Worker threads of the server's runtime.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// First measure the machine's own ceilings, flat out for `--seconds` each, to
    /// `--subscribers` sockets that count what arrives: one `sendto` per datagram, `sendmmsg`
    /// of 64, and GSO sends of 8 datagrams to one destination (Linux).
    #[arg(long)]
    ceilings: bool,
}

struct Row {
    offered: u64,
    sent: f64,
    published: f64,
    delivered: f64,
    publish_loss: f64,
    delivery_loss: f64,
}

pub(crate) fn run(args: UdpArgs) -> Result<(), String> {
    let ceilings = match args.ceilings {
        true => ceilings::measure(&args)?,
        false => Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut cfg = ServerConfig {
        http: Listen(None),
        tcp: Listen(None),
        udp: Listen(Some(SocketAddr::from(([127, 0, 0, 1], 0)))),
        stomp: Listen(None),
        ..Default::default()
    };
    cfg.datagram.rate_per_sec = 0; // one publisher address sends at every rate tried
    cfg.datagram.socket_buffer = args.socket_buffer;
    // Measure delivery, not history; and loss should show as loss, not as subscribers
    // dropped for being slow.
    cfg.hub.history.max_messages = 0;
    cfg.hub.slow_consumer = SlowConsumerPolicy::DropOldest;
    let server = runtime
        .block_on(Server::start(cfg))
        .map_err(|e| e.to_string())?;
    let target = server.addrs().udp.ok_or("no UDP address")?;

    let stop = Arc::new(AtomicBool::new(false));
    let step_topic = Arc::new(Mutex::new(String::new()));
    let mut counters = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..args.subscribers {
        let socket = open(args.socket_buffer)?;
        subscribe(&socket, target, "bench.>")?;
        let count = Arc::new(AtomicU64::new(0));
        counters.push(count.clone());
        let (stop, topic) = (stop.clone(), step_topic.clone());
        threads.push(thread::spawn(move || {
            receive(socket, target, count, stop, topic)
        }));
    }
    let publisher = open(args.socket_buffer)?;
    let payload = vec![b'x'; args.payload];
    let mut rows = Vec::new();
    for &offered in &args.rates {
        let topic = format!("bench.r{offered}");
        *step_topic.lock().map_err(|_| "poisoned")? = topic.clone();
        counters.iter().for_each(|c| c.store(0, Ordering::Relaxed));
        let before = server.hub().stats().published;
        let started = Instant::now();
        let sent = publish(&publisher, target, &topic, &payload, offered, args.seconds);
        let elapsed = started.elapsed().as_secs_f64();
        thread::sleep(Duration::from_millis(500)); // let queued datagrams arrive
        let published = server.hub().stats().published - before;
        let delivered: u64 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let expected = published * args.subscribers as u64;
        rows.push(Row {
            offered,
            sent: sent as f64 / elapsed,
            published: published as f64 / elapsed,
            delivered: delivered as f64 / elapsed,
            publish_loss: loss(sent, published),
            delivery_loss: loss(expected, delivered),
        });
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    runtime.block_on(server.shutdown());
    print_table(&args, &rows);
    if !ceilings.is_empty() {
        let gso = ceilings.iter().find(|c| c.0 == "gso").map_or(0.0, |c| c.1);
        let best = rows.iter().map(|r| r.delivered).fold(0.0, f64::max);
        println!(
            "\nThe machine's ceilings (flat out, {} sinks, same datagram size):\n",
            args.subscribers
        );
        println!("| loop | delivered/s |");
        println!("|---|---:|");
        for (name, rate) in &ceilings {
            println!("| {name} | {rate:.0} |");
        }
        if gso > 0.0 {
            println!(
                "\ntidings' best delivered/s above: {best:.0} = {:.0} % of the GSO loop",
                100.0 * best / gso
            );
        }
    }
    Ok(())
}

fn loss(expected: u64, got: u64) -> f64 {
    match expected {
        0 => 0.0,
        e => 100.0 * e.saturating_sub(got) as f64 / e as f64,
    }
}

fn open(buffer: usize) -> Result<UdpSocket, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let s = socket2::SockRef::from(&socket);
    let _ = s.set_recv_buffer_size(buffer);
    let _ = s.set_send_buffer_size(buffer);
    Ok(socket)
}

/// The address-validation round trip, by hand: SUBSCRIBE, CHALLENGE, SUBSCRIBE with cookie.
fn subscribe(socket: &UdpSocket, server: SocketAddr, pattern: &str) -> Result<(), String> {
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut cookie = None;
    let mut buf = vec![0u8; 2048];
    for id in 1..=6u32 {
        let mut out = Vec::new();
        let request = Request::Subscribe {
            id,
            cookie: cookie.as_ref(),
            pattern,
        };
        udp::encode_request(&request, REPLY_ROOM, &mut out);
        socket.send_to(&out, server).map_err(|e| e.to_string())?;
        let Ok((n, _)) = socket.recv_from(&mut buf) else {
            continue;
        };
        match udp::decode_reply(&buf[..n], udp::Limits::default()) {
            Ok(Reply::Challenge { cookie: c, .. }) => cookie = Some(*c),
            Ok(Reply::Subscribed { .. }) => return Ok(()),
            Ok(Reply::Error { message, .. }) => return Err(message.to_owned()),
            _ => {}
        }
    }
    Err("no SUBSCRIBED from the server".into())
}

/// Counts `MESSAGE` datagrams of the current step's topic until `stop`.
fn receive(
    socket: UdpSocket,
    server: SocketAddr,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    topic: Arc<Mutex<String>>,
) {
    let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 2048];
    let limits = udp::Limits::default();
    let mut last_renew = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Runs may outlast a lease: subscribing again renews it.
        if last_renew.elapsed() > Duration::from_secs(10) {
            let _ = subscribe(&socket, server, "bench.>");
            last_renew = Instant::now();
        }
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        if let Ok(Reply::Message { topic: t, .. }) = udp::decode_reply(&buf[..n], limits) {
            if topic.lock().map(|cur| *cur == t).unwrap_or(false) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Sends `rate` datagrams per second for `seconds`, paced in 1 ms slices; returns how many
/// the kernel accepted.
fn publish(
    socket: &UdpSocket,
    server: SocketAddr,
    topic: &str,
    payload: &[u8],
    rate: u64,
    seconds: f64,
) -> u64 {
    let mut datagram = Vec::new();
    let request = Request::Publish {
        id: 0,
        kind: PayloadKind::Binary,
        topic,
        payload,
    };
    udp::encode_request(&request, 0, &mut datagram);
    let start = Instant::now();
    let total = (rate as f64 * seconds) as u64;
    let mut sent = 0u64;
    let mut attempted = 0u64;
    while attempted < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while attempted < due {
            attempted += 1;
            if socket.send_to(&datagram, server).is_ok() {
                sent += 1;
            }
        }
        if attempted < total {
            thread::sleep(Duration::from_micros(500));
        }
    }
    sent
}

fn print_table(args: &UdpArgs, rows: &[Row]) {
    println!(
        "UDP: 1 publisher, {} subscribers of `bench.>`, {}-byte payloads, {} s per rate, \
         in-process server ({} worker threads), 127.0.0.1\n",
        args.subscribers, args.payload, args.seconds, args.server_threads
    );
    println!("| offered/s | sent/s | published/s (server) | delivered/s (all subscribers) | loss publisher->server | loss server->subscribers |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.2} % | {:.2} % |",
            r.offered, r.sent, r.published, r.delivered, r.publish_loss, r.delivery_loss
        );
    }
}

/// The machine's own send ceilings: the same sinks, no server.
mod ceilings {
    use std::io::IoSlice;
    use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    use nix::sys::socket::{self, ControlMessage, MsgFlags, MultiHeaders, SockaddrIn};

    use super::{open, UdpArgs};

    /// About the size of a MESSAGE datagram with a 64-byte payload.
    fn datagram_len(args: &UdpArgs) -> usize {
        args.payload + 40
    }

    pub(super) fn measure(args: &UdpArgs) -> Result<Vec<(&'static str, f64)>, String> {
        let mut out = Vec::new();
        for name in ["sendto", "sendmmsg64", "gso"] {
            out.push((name, one(args, name)?));
        }
        Ok(out)
    }

    fn one(args: &UdpArgs, how: &str) -> Result<f64, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let mut sinks = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..args.subscribers.max(1) {
            let socket = open(args.socket_buffer)?;
            let SocketAddr::V4(addr) = socket.local_addr().map_err(|e| e.to_string())? else {
                return Err("IPv4 sinks expected".into());
            };
            sinks.push(addr);
            let (stop, count) = (stop.clone(), count.clone());
            threads.push(thread::spawn(move || sink(socket, stop, count)));
        }
        let sender = open(args.socket_buffer)?;
        let datagram = vec![b'x'; datagram_len(args)];
        let started = Instant::now();
        let run = Duration::from_secs_f64(args.seconds);
        let mut i = 0usize;
        while started.elapsed() < run {
            match how {
                "sendto" => {
                    for _ in 0..64 {
                        let _ = sender.send_to(&datagram, sinks[i % sinks.len()]);
                        i += 1;
                    }
                }
                "sendmmsg64" => {
                    i = send_mmsg(&sender, &sinks, &datagram, i);
                }
                _ => {
                    i = send_gso(&sender, &sinks, &datagram, i)?;
                }
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        Ok(count.load(Ordering::Relaxed) as f64 / elapsed)
    }

    fn sink(socket: UdpSocket, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) {
        let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            if socket.recv(&mut buf).is_ok() {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn send_mmsg(sender: &UdpSocket, sinks: &[SocketAddrV4], datagram: &[u8], i: usize) -> usize {
        const N: usize = 64;
        let iovs: Vec<[IoSlice<'_>; 1]> = (0..N).map(|_| [IoSlice::new(datagram)]).collect();
        let addrs: Vec<Option<SockaddrIn>> = (0..N)
            .map(|k| Some(SockaddrIn::from(sinks[(i + k) % sinks.len()])))
            .collect();
        let mut headers = MultiHeaders::<SockaddrIn>::preallocate(N, None);
        let cmsgs: [ControlMessage<'_>; 0] = [];
        let fd = sender.as_raw_fd();
        let _ = socket::sendmmsg(fd, &mut headers, &iovs, &addrs, cmsgs, MsgFlags::empty());
        i + N
    }

    fn send_gso(
        sender: &UdpSocket,
        sinks: &[SocketAddrV4],
        datagram: &[u8],
        i: usize,
    ) -> Result<usize, String> {
        const SEGMENTS: usize = 8;
        let buf = datagram.repeat(SEGMENTS);
        let segment = datagram.len() as u16;
        let to = SockaddrIn::from(sinks[i % sinks.len()]);
        let iov = [IoSlice::new(&buf)];
        let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
        let fd = sender.as_raw_fd();
        match socket::sendmsg(fd, &iov, &cmsg, MsgFlags::empty(), Some(&to)) {
            Err(nix::errno::Errno::EIO | nix::errno::Errno::EINVAL) => {
                Err("the kernel refuses GSO here".into())
            }
            _ => Ok(i + 1),
        }
    }
}
