//! `tidings serve`: config from defaults, then a TOML file, then environment, then flags.

use clap::Args;
use std::io::Write;
use tidings_server::{Listen, Server, ServerConfig};

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// TOML config file (see docs/configuration.md).
    #[arg(long, env = "TIDINGS_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// HTTP listener (WebSocket, HTTP API, pages): HOST:PORT, port 0 for any, or `off`.
    #[arg(long, env = "TIDINGS_HTTP", value_parser = Listen::parse)]
    http: Option<Listen>,
    /// TCP line-protocol listener: HOST:PORT or `off`.
    #[arg(long, env = "TIDINGS_TCP", value_parser = Listen::parse)]
    tcp: Option<Listen>,
    /// UDP listener: HOST:PORT or `off` (the UDP endpoint is not built yet).
    #[arg(long, env = "TIDINGS_UDP", value_parser = Listen::parse)]
    udp: Option<Listen>,
    /// STOMP listener: HOST:PORT or `off` (the STOMP broker is not built yet).
    #[arg(long, env = "TIDINGS_STOMP", value_parser = Listen::parse)]
    stomp: Option<Listen>,
}

fn load(args: &ServeArgs) -> Result<ServerConfig, String> {
    let mut config = match &args.config {
        None => ServerConfig::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
    };
    if let Some(l) = args.http {
        config.http = l;
    }
    if let Some(l) = args.tcp {
        config.tcp = l;
    }
    if let Some(l) = args.udp {
        config.udp = l;
    }
    if let Some(l) = args.stomp {
        config.stomp = l;
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

pub(crate) async fn run(args: ServeArgs) -> Result<(), String> {
    let config = load(&args)?;
    let (udp, stomp) = (config.udp, config.stomp);
    let server = Server::start(config).await.map_err(|e| e.to_string())?;
    {
        let mut out = std::io::stdout().lock();
        for (kind, addr) in [("http", server.addrs().http), ("tcp", server.addrs().tcp)] {
            if let Some(addr) = addr {
                let _ = writeln!(out, "tidings: {kind} listening on {addr}");
            }
        }
        let _ = out.flush();
    }
    for (kind, listen) in [("udp", udp), ("stomp", stomp)] {
        if listen.0.is_some() {
            tracing::info!("{kind} listener requested but not built yet; nothing listens there");
        }
    }
    wait_for_signal().await;
    eprintln!("tidings: shutting down");
    let left = server.shutdown().await;
    if left > 0 {
        eprintln!("tidings: {left} connections did not finish within the grace period");
    }
    Ok(())
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
