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
    /// UDP listener (datagrams): HOST:PORT or `off`.
    #[arg(long, env = "TIDINGS_UDP", value_parser = Listen::parse)]
    udp: Option<Listen>,
    /// STOMP-over-TCP listener: HOST:PORT or `off`.
    #[arg(long, env = "TIDINGS_STOMP", value_parser = Listen::parse)]
    stomp: Option<Listen>,
    /// Share topics, offsets and history with other nodes through Redis:
    /// `redis://HOST:PORT` (sets `[engine] kind = "redis"` and its `url`).
    #[arg(long, env = "TIDINGS_ENGINE", value_name = "URL")]
    engine: Option<String>,
    /// The TLS listeners and certificate (boxed: the flags are most of this struct).
    #[command(flatten)]
    tls: Box<crate::tls::TlsArgs>,
    /// Run the demo stock ticker in-process: simulated prices on prices.<SYMBOL>, shown at
    /// http://HOST:PORT/ticker.
    #[arg(long)]
    demo_ticker: bool,
    /// Price updates per second of --demo-ticker, over all symbols.
    #[arg(long, default_value_t = crate::demo::ticker::DEFAULT_RATE)]
    demo_ticker_rate: u32,
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
    match args.engine.as_deref() {
        None => {}
        Some("memory") => config.engine.kind = tidings_server::EngineKind::Memory,
        Some(url) => {
            config.engine.kind = tidings_server::EngineKind::Redis;
            config.engine.url = url.to_owned();
        }
    }
    // The shortcut for tokens signed with a shared secret; read here, not as a flag, so the
    // secret does not show in the process list.
    if let Some(secret) = std::env::var("TIDINGS_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
    {
        config.auth.jwt.hmac_secret = Some(secret);
        config.auth.jwt.hmac_secret_file = None;
    }
    crate::tls::apply(&args.tls, &mut config)?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

pub(crate) async fn run(args: ServeArgs) -> Result<(), String> {
    let config = load(&args)?;
    // Listen for signals before announcing the listeners: a script may send SIGTERM as soon
    // as it reads them, and the default action would kill us without a goodbye.
    let signal = shutdown_signal()?;
    let mut hup = crate::tls::sighup(&config)?;
    let tls = config.tls_listeners();
    for user in tidings_core::Access::plain_password_users(&config.hub.auth) {
        eprintln!(
            "tidings: warning: user {user:?} has a plain-text password in the config; \
             use password_hash (tidings hash-password) instead"
        );
    }
    let server = Server::start(config).await.map_err(|e| e.to_string())?;
    {
        let mut out = std::io::stdout().lock();
        let addrs = server.addrs();
        for (kind, addr) in [
            ("http", addrs.http),
            ("tcp", addrs.tcp),
            ("udp", addrs.udp),
            ("stomp", addrs.stomp),
            ("https", addrs.https),
            ("tcp-tls", addrs.tcp_tls),
            ("stomp-tls", addrs.stomp_tls),
        ] {
            if let Some(addr) = addr {
                let _ = writeln!(out, "tidings: {kind} listening on {addr}");
            }
        }
        let _ = out.flush();
    }
    if args.demo_ticker {
        let hub = server.hub().clone();
        tokio::spawn(crate::demo::ticker::run_in_process(
            hub,
            args.demo_ticker_rate,
        ));
    }
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = crate::tls::next_sighup(&mut hup) => crate::tls::reload(&server, tls),
        }
    }
    eprintln!("tidings: shutting down");
    let left = server.shutdown().await;
    if left > 0 {
        eprintln!("tidings: {left} connections did not finish within the grace period");
    }
    Ok(())
}

/// Installs SIGINT and SIGTERM handlers now; the returned future resolves on either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
