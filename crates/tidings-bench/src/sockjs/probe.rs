//! The hidden `sockjs-probe` subcommand: one SockJS session of the benchmark's own client,
//! subscribed to a topic on tidings, printing every message it receives as a JSON string on
//! its own line, so a test can hold what it read next to what `sockjs-client` read from the
//! same publishes (tests/sockjs_client.rs).

use super::session::{Session, Transport};
use super::worker::subscribe;
use std::io::Write;
use std::net::SocketAddr;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The server's HTTP address.
    #[arg(long)]
    server: SocketAddr,
    #[arg(long, value_enum)]
    transport: Transport,
    #[arg(long, default_value = "/sockjs")]
    prefix: String,
    #[arg(long)]
    topic: String,
    /// Exit after this many messages of type `message`.
    #[arg(long)]
    count: usize,
}

pub(crate) fn run(args: Args) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(probe(args))
}

async fn probe(args: Args) -> Result<(), String> {
    let source = std::net::Ipv4Addr::LOCALHOST.into();
    let mut session = Session::open(args.transport, args.server, source, &args.prefix, 1).await?;
    let (_, early) = subscribe(&mut session, &args.topic).await?;
    let mut out = std::io::stdout().lock();
    let print = |out: &mut std::io::StdoutLock<'_>, line: &str| {
        writeln!(out, "{line}")
            .and_then(|_| out.flush())
            .map_err(|e| e.to_string())
    };
    print(&mut out, "ready")?;
    let mut seen = 0;
    let mut batch = early;
    while seen < args.count {
        for m in std::mem::take(&mut batch) {
            if m.starts_with(br#"{"type":"message""#) {
                seen += 1;
            }
            let text = String::from_utf8(m).map_err(|e| e.to_string())?;
            print(
                &mut out,
                &serde_json::to_string(&text).map_err(|e| e.to_string())?,
            )?;
        }
        if seen < args.count {
            session.next(|m| batch.push(m.to_vec())).await?;
        }
    }
    Ok(())
}
