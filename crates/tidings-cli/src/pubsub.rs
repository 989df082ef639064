//! `tidings pub` and `tidings sub`: thin front ends over tidings-client.

use clap::Args;
use std::io::Write;
use tidings_client::{Client, ClientConfig, Event, Events, Payload, UdpClient};

#[derive(Args, Debug)]
pub(crate) struct ConnectArgs {
    /// Server URL: tcp://HOST:PORT (line protocol), ws://HOST:PORT/ws (WebSocket) or
    /// udp://HOST:PORT (datagrams).
    #[arg(
        long,
        short,
        env = "TIDINGS_SERVER",
        default_value = DEFAULT_SERVER
    )]
    server: String,
    /// Log in as USER:PASSWORD.
    #[arg(long, env = "TIDINGS_AUTH")]
    auth: Option<String>,
    /// Use the UDP endpoint (udp://127.0.0.1:7072 unless --server names a udp:// URL):
    /// datagrams, unordered and lossy; offsets show gaps. Also implied by a udp:// server.
    #[arg(long)]
    udp: bool,
}

/// The default of `--server`, replaced by the UDP default under `--udp`.
const DEFAULT_SERVER: &str = "tcp://127.0.0.1:7071";

impl ConnectArgs {
    /// The UDP server URL when UDP is asked for (`--udp` or a `udp://` server).
    fn udp_url(&self) -> Result<Option<String>, String> {
        if self.server.starts_with("udp://") {
            return Ok(Some(self.server.clone()));
        }
        match (self.udp, self.server.as_str()) {
            (false, _) => Ok(None),
            (true, DEFAULT_SERVER) => Ok(Some("udp://127.0.0.1:7072".into())),
            (true, other) => Err(format!(
                "--udp needs a udp:// server (or none), not {other:?}"
            )),
        }
    }

    fn config(&self, reconnect: bool) -> Result<ClientConfig, String> {
        let mut cfg = ClientConfig::new(self.server.clone());
        cfg.reconnect = reconnect;
        if let Some(auth) = &self.auth {
            let (user, password) = auth.split_once(':').ok_or("--auth must be USER:PASSWORD")?;
            cfg.credentials = Some((user.to_owned(), password.to_owned()));
        }
        Ok(cfg)
    }
}

#[derive(Args, Debug)]
pub(crate) struct PubArgs {
    /// Topic to publish to, e.g. chat.lobby.
    topic: String,
    /// The message; `-` reads it from standard input (binary-safe).
    message: String,
    /// Send the message as a JSON document rather than text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub(crate) async fn publish(args: PubArgs) -> Result<(), String> {
    let payload = if args.message == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map_err(|e| e.to_string())?;
        match String::from_utf8(buf) {
            Ok(text) => Payload::Text(text),
            Err(e) => Payload::Binary(e.into_bytes().into()),
        }
    } else {
        Payload::Text(args.message)
    };
    let payload = match payload {
        Payload::Text(t) if args.json => {
            serde_json::from_str::<serde_json::Value>(&t)
                .map_err(|e| format!("--json: not valid JSON: {e}"))?;
            Payload::Json(t)
        }
        p => p,
    };
    if let Some(url) = args.connect.udp_url()? {
        let (client, _events) = UdpClient::connect(ClientConfig::new(url))
            .await
            .map_err(|e| e.to_string())?;
        let published = client.publish_acked(&args.topic, payload).await;
        client.close().await;
        let published = published.map_err(|e| e.to_string())?;
        println!("{} {}", args.topic, published.offset);
        return Ok(());
    }
    let (client, _events) = Client::connect(args.connect.config(false)?)
        .await
        .map_err(|e| e.to_string())?;
    let published = client
        .publish(&args.topic, payload)
        .await
        .map_err(|e| e.to_string())?;
    println!("{} {}", args.topic, published.offset);
    client.close().await;
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct SubArgs {
    /// Topics or patterns (`*` one token, `>` the rest).
    #[arg(required = true)]
    topics: Vec<String>,
    /// Replay history after this offset first (exact topics only).
    #[arg(long)]
    since: Option<u64>,
    /// Print each message as one JSON object per line.
    #[arg(long)]
    json: bool,
    /// Exit after this many messages.
    #[arg(long, short = 'n')]
    count: Option<u64>,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub(crate) async fn subscribe(args: SubArgs) -> Result<(), String> {
    if let Some(url) = args.connect.udp_url()? {
        if args.since.is_some() {
            return Err("--since: UDP delivers live messages only (no history)".into());
        }
        let (client, events) = UdpClient::connect(ClientConfig::new(url))
            .await
            .map_err(|e| e.to_string())?;
        for topic in &args.topics {
            client
                .subscribe(topic)
                .await
                .map_err(|e| format!("subscribe {topic}: {e}"))?;
        }
        print_events(&args, events).await;
        client.close().await;
        return Ok(());
    }
    let (client, events) = Client::connect(args.connect.config(true)?)
        .await
        .map_err(|e| e.to_string())?;
    for topic in &args.topics {
        let result = match args.since {
            Some(since) => client.subscribe_since(topic, since, None).await,
            None => client.subscribe(topic).await,
        };
        result.map_err(|e| format!("subscribe {topic}: {e}"))?;
    }
    print_events(&args, events).await;
    client.close().await;
    Ok(())
}

/// Prints messages (and reports gaps and connection changes on stderr) until `--count` or
/// the end of the events.
async fn print_events(args: &SubArgs, mut events: Events) {
    let mut seen = 0u64;
    let mut out = std::io::stdout();
    while let Some(event) = events.next().await {
        let line = match event {
            Event::Message(m) => {
                seen += 1;
                if args.json {
                    let mut obj =
                        serde_json::json!({"topic": m.topic, "offset": m.offset, "epoch": m.epoch});
                    match m.payload {
                        Payload::Text(t) => obj["text"] = t.into(),
                        Payload::Json(j) => {
                            obj["data"] =
                                serde_json::from_str(&j).unwrap_or(serde_json::Value::Null)
                        }
                        Payload::Binary(b) => obj["bytes"] = b.len().into(),
                    }
                    obj.to_string()
                } else {
                    let body = match m.payload {
                        Payload::Text(t) | Payload::Json(t) => t,
                        Payload::Binary(b) => format!("<{} bytes>", b.len()),
                    };
                    format!("{} {} {}", m.topic, m.offset, body)
                }
            }
            Event::Gap {
                topic,
                since,
                earliest,
                reason,
            } => {
                eprintln!("tidings: {topic}: messages after {since} were lost ({reason}); continuing from {earliest}");
                continue;
            }
            Event::Disconnected { reason } => {
                eprintln!("tidings: disconnected: {reason}; reconnecting");
                continue;
            }
            Event::Reconnected => {
                eprintln!("tidings: reconnected");
                continue;
            }
            _ => continue,
        };
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            break; // stdout closed (e.g. piped into head)
        }
        if args.count.is_some_and(|n| seen >= n) {
            break;
        }
    }
}
