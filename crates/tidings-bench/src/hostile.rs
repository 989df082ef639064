//! The `hostile` scenario: what a handful of hostile clients can make a server hold, tried
//! as they would try it, against each server binary given (e.g. a build from before the
//! limits and one from after), each in a fresh process on loopback, side by side in one run.
//! Prints one markdown table; every attack is bounded in count and time.
//!
//! - deflate: 60 `/ws` connections send compressed fragments of zeros (64 KiB each when
//!   inflated) and never finish the message; server RSS growth.
//! - slow readers: 50 `/sse` readers that read nothing while 20 000 × 1 KiB are published;
//!   server RSS and sessions still held 15 s later.
//! - guessing: 50 000 wrong `AUTH` lines pipelined on one line connection (how many are
//!   checked before the connection closes), then HTTP Basic guesses for 2 s.
//! - connections: 3 000 line connections from one address (how many are admitted), and
//!   whether `/healthz` still answers.
//! - topics: anonymous `/poll` requests naming 64 new topics each (anonymous may subscribe
//!   `public.>` only) until refused; whether a logged-in user can still publish a new topic.

use crate::peer::Peer;
use clap::Args as ClapArgs;
use futures::SinkExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(ClapArgs, Debug)]
pub(crate) struct Args {
    /// Server binaries to attack, each `LABEL=PATH` (e.g. `before=/tmp/old/tidings`).
    #[arg(long = "server", required = true)]
    servers: Vec<String>,
}

const USERS: &str = "[[hub.auth.users]]\nname = \"alice\"\npassword = \"right\"\n\
    publish = [\">\"]\nsubscribe = [\">\"]\n[hub.auth.anonymous]\nsubscribe = [\"public.>\"]\n";

pub(crate) fn run(args: Args) -> Result<(), String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    for spec in &args.servers {
        let (label, path) = spec
            .split_once('=')
            .ok_or_else(|| format!("--server {spec:?}: use LABEL=PATH"))?;
        let path = PathBuf::from(path);
        eprintln!("hostile: attacking {label} ({})", path.display());
        let results = rt.block_on(attack_all(&path))?;
        rows.push((label.to_owned(), results));
    }
    let heads = [
        "deflate: RSS growth",
        "slow readers: RSS growth / sessions held after 15 s",
        "AUTH lines checked on one connection",
        "HTTP Basic guesses checked in 2 s",
        "line connections admitted of 3000 / healthz",
        "anonymous topics before refused / user can publish",
    ];
    println!(
        "| attack | {} |",
        rows.iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(rows.len()));
    for (i, head) in heads.iter().enumerate() {
        let cells: Vec<&str> = rows.iter().map(|r| r.1[i].as_str()).collect();
        println!("| {head} | {} |", cells.join(" | "));
    }
    Ok(())
}

/// One server process with the HTTP and line listeners on free ports; its config file is
/// removed with it.
struct Server {
    peer: Peer,
    http: String,
    tcp: String,
    config: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

fn start(binary: &std::path::Path, config: &str) -> Result<Server, String> {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("tidings-hostile-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, config).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(binary);
    cmd.args(["serve", "--config"]).arg(&path).args([
        "--http",
        "127.0.0.1:0",
        "--tcp",
        "127.0.0.1:0",
        "--stomp",
        "off",
        "--udp",
        "off",
    ]);
    let banners = ["tidings: http listening on ", "tidings: tcp listening on "];
    let started = Peer::start_all(&mut cmd, &banners)?;
    Ok(Server {
        http: started.addrs[0].clone(),
        tcp: started.addrs[1].clone(),
        peer: started.peer,
        config: path,
    })
}

async fn attack_all(binary: &std::path::Path) -> Result<Vec<String>, String> {
    Ok(vec![
        deflate(&start(binary, "")?).await,
        slow_readers(&start(binary, "")?).await,
        guessing_line(&start(binary, USERS)?).await,
        guessing_http(&start(binary, USERS)?).await,
        connections(&start(binary, "")?).await,
        topics(&start(binary, USERS)?).await,
    ])
}

fn mib(s: &Server) -> f64 {
    s.peer.rss_mib()
}

async fn deflate(s: &Server) -> String {
    let before = mib(s);
    let url = format!("ws://{}/ws", s.http);
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(ws) = yawc::WebSocket::connect(url.parse().unwrap())
                .with_options(yawc::Options::default().with_balanced_compression())
                .await
            else {
                return;
            };
            let mut ws = ws.into_streaming();
            let zeros = vec![0u8; 64 * 1024];
            if ws
                .send(yawc::Frame::binary(zeros.clone()).with_fin(false))
                .await
                .is_err()
            {
                return;
            }
            // Up to 16 MiB inflated; stop when the server closes.
            for _ in 0..255 {
                if ws
                    .send(yawc::Frame::continuation(zeros.clone()).with_fin(false))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // Hold the half-built message open.
            tokio::time::sleep(Duration::from_secs(3)).await;
            drop(ws);
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak = mib(s);
    for t in tasks {
        let _ = t.await;
    }
    format!("+{:.0} MiB", (peak - before).max(0.0))
}

async fn slow_readers(s: &Server) -> String {
    let before = mib(s);
    let mut readers = Vec::new();
    for i in 0..50 {
        if let Ok(mut c) = TcpStream::connect(&s.http).await {
            let req = format!("GET /sse?topic=flood HTTP/1.1\r\nHost: r{i}\r\n\r\n");
            let _ = c.write_all(req.as_bytes()).await;
            readers.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Ok(mut publisher) = TcpStream::connect(&s.tcp).await {
        let line = format!("PUB flood {}\r\n", "x".repeat(1024));
        let batch = line.repeat(500);
        let mut sink = [0u8; 65536];
        for _ in 0..40 {
            let _ = publisher.write_all(batch.as_bytes()).await;
            // Read the +OK replies so the publisher itself is not a slow reader.
            let _ =
                tokio::time::timeout(Duration::from_millis(50), publisher.read(&mut sink)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak = mib(s);
    tokio::time::sleep(Duration::from_secs(13)).await;
    let sessions = metric(s, "tidings_sessions").await;
    drop(readers);
    format!(
        "+{:.0} MiB / {}",
        (peak - before).max(0.0),
        sessions.map_or("?".into(), |n| n.to_string())
    )
}

async fn guessing_line(s: &Server) -> String {
    let Ok(mut c) = TcpStream::connect(&s.tcp).await else {
        return "connect failed".into();
    };
    let guesses: String = (0..50_000)
        .map(|i| format!("AUTH alice guess{i}\r\n"))
        .collect();
    let write = c.write_all(guesses.as_bytes());
    let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    let checked = text.matches("-ERR AUTH").count();
    let closed = text.contains("closing");
    format!(
        "{checked}{}",
        if closed {
            " (then closed)"
        } else {
            " (still open)"
        }
    )
}

async fn guessing_http(s: &Server) -> String {
    use base64::Engine;
    let encode = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let started = Instant::now();
    let (mut checked, mut refused) = (0, 0);
    while started.elapsed() < Duration::from_secs(2) {
        let creds = encode(format!("alice:g{checked}{refused}").as_bytes());
        let req = format!("GET /api/history/t HTTP/1.0\r\nAuthorization: Basic {creds}\r\n\r\n");
        match http_status(&s.http, &req).await {
            Some(401) => checked += 1,
            Some(_) => refused += 1,
            None => break,
        }
    }
    format!("{checked} ({refused} refused unchecked)")
}

async fn connections(s: &Server) -> String {
    let mut held = Vec::new();
    let mut admitted = 0;
    for _ in 0..3000 {
        let Ok(Ok(mut c)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&s.tcp)).await
        else {
            continue;
        };
        let mut b = [0u8; 64];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), c.read(&mut b)).await {
            if b[..n].starts_with(b"+OK") {
                admitted += 1;
                held.push(c);
            }
        }
    }
    let health = http_status(&s.http, "GET /healthz HTTP/1.0\r\n\r\n").await;
    drop(held);
    format!(
        "{admitted} / {}",
        health.map_or("no answer".into(), |c| c.to_string())
    )
}

async fn topics(s: &Server) -> String {
    let mut created = 0;
    let mut refused = false;
    for i in 0..1600 {
        let names: String = (0..64).map(|j| format!("&topic=public.t{i}x{j}")).collect();
        let req = format!("GET /poll?timeout=0{names} HTTP/1.0\r\n\r\n");
        match http_status(&s.http, &req).await {
            Some(200) => created += 64,
            Some(_) => {
                refused = true;
                break;
            }
            None => break,
        }
    }
    let user_ok = match TcpStream::connect(&s.tcp).await {
        Ok(mut c) => {
            let _ = c
                .write_all(b"AUTH alice right\r\nPUB private.brand.new hi\r\n")
                .await;
            let mut out = vec![0u8; 4096];
            let mut text = String::new();
            let end = Instant::now() + Duration::from_secs(2);
            while text.matches("\r\n").count() < 3 && Instant::now() < end {
                match tokio::time::timeout(Duration::from_millis(500), c.read(&mut out)).await {
                    Ok(Ok(n)) if n > 0 => text.push_str(&String::from_utf8_lossy(&out[..n])),
                    _ => break,
                }
            }
            !text.contains("too many topics") && text.contains("+OK PUB")
        }
        Err(_) => false,
    };
    format!(
        "{}{} / {}",
        created,
        if refused { "" } else { " (never refused)" },
        if user_ok { "yes" } else { "no" }
    )
}

/// The status code of one HTTP/1.0 exchange, `None` when no answer came in 5 s.
async fn http_status(addr: &str, request: &str) -> Option<u16> {
    let exchange = async {
        let mut c = TcpStream::connect(addr).await.ok()?;
        c.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 16];
        let n = c.read(&mut head).await.ok()?;
        std::str::from_utf8(&head[..n])
            .ok()?
            .split(' ')
            .nth(1)?
            .parse()
            .ok()
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

async fn metric(s: &Server, name: &str) -> Option<u64> {
    let mut c = TcpStream::connect(&s.http).await.ok()?;
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&out)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))?
        .trim()
        .parse()
        .ok()
}
