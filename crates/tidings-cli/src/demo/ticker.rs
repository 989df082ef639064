//! The simulated price feed: a random walk over a fixed set of symbols, published on
//! `prices.<SYMBOL>` as `{"symbol":"AAPL","price":189.32,"open":187.10}`.
//!
//! Two ways to run it: `tidings demo ticker` publishes to a server through tidings-client;
//! `tidings serve --demo-ticker` publishes straight into the server's hub, in-process.

use clap::Args;
use std::sync::Arc;
use std::time::Duration;
use tidings_client::{Client, ClientConfig, Payload};
use tidings_core::{Hub, PayloadKind};

/// Symbols and their opening prices.
const SYMBOLS: &[(&str, f64)] = &[
    ("AAPL", 189.30),
    ("MSFT", 411.20),
    ("GOOG", 152.80),
    ("AMZN", 178.40),
    ("META", 487.10),
    ("NVDA", 875.60),
    ("TSLA", 175.20),
    ("NFLX", 612.90),
    ("AMD", 164.30),
    ("INTC", 42.70),
    ("ORCL", 125.60),
    ("IBM", 190.10),
    ("CSCO", 48.90),
    ("ADBE", 503.20),
    ("CRM", 298.40),
    ("PYPL", 64.10),
    ("UBER", 71.80),
    ("SHOP", 76.50),
    ("QCOM", 168.90),
    ("TXN", 171.30),
];

/// Default updates per second, over all symbols.
pub(crate) const DEFAULT_RATE: u32 = 200;

/// Publishing happens in ticks of this length (a whole tick's updates at once), so a high
/// rate costs one timer wake-up per tick rather than one per update.
const TICK: Duration = Duration::from_millis(20);

#[derive(Args, Debug)]
pub(crate) struct TickerArgs {
    /// Server URL: ws://HOST:PORT/ws (payloads travel as JSON) or tcp://HOST:PORT.
    #[arg(
        long,
        short,
        env = "TIDINGS_SERVER",
        default_value = "ws://127.0.0.1:7070/ws"
    )]
    server: String,
    /// Price updates per second, over all symbols.
    #[arg(long, default_value_t = DEFAULT_RATE)]
    rate: u32,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    seconds: Option<u64>,
}

/// The random walk's state.
pub(crate) struct Feed {
    quotes: Vec<(&'static str, f64, f64)>,
    rng: fastrand::Rng,
}

impl Feed {
    pub(crate) fn new(seed: u64) -> Feed {
        Feed {
            quotes: SYMBOLS.iter().map(|&(s, p)| (s, p, p)).collect(),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Moves one random symbol by up to ±0.2% and returns its topic and JSON payload.
    pub(crate) fn next_update(&mut self) -> (String, String) {
        let i = self.rng.usize(..self.quotes.len());
        let (symbol, open, price) = &mut self.quotes[i];
        let step = (self.rng.f64() - 0.5) * 0.004;
        // Drift back towards the open so a long-running demo stays plausible.
        let pull = (*open - *price) / *open * 0.002;
        *price = (*price * (1.0 + step + pull)).max(0.01);
        let payload = format!(
            r#"{{"symbol":"{symbol}","price":{:.2},"open":{:.2}}}"#,
            *price, *open
        );
        (format!("prices.{symbol}"), payload)
    }
}

/// Calls `publish` `rate` times a second, in ticks, until it fails.
async fn pace<F, Fut>(rate: u32, mut publish: F) -> Result<(), String>
where
    F: FnMut(String, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut feed = Feed::new(u64::from(std::process::id()));
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = tokio::time::Instant::now();
    let rate = u64::from(rate);
    let mut sent = 0u64;
    loop {
        tick.tick().await;
        // What is due by the clock, so late ticks do not lower the rate; after a stall of
        // more than a second the feed skips ahead rather than bursting to catch up.
        let due = (rate as f64 * start.elapsed().as_secs_f64()) as u64;
        sent = sent.max(due.saturating_sub(rate));
        while sent < due {
            sent += 1;
            let (topic, payload) = feed.next_update();
            publish(topic, payload).await?;
        }
    }
}

/// `tidings serve --demo-ticker`: publishes into `hub` until the hub shuts down.
pub(crate) async fn run_in_process(hub: Arc<Hub>, rate: u32) {
    let who = hub.access().anonymous();
    let result = pace(rate, |topic, payload| {
        let published = hub.publish(
            &who,
            &topic,
            PayloadKind::Json,
            bytes::Bytes::from(payload),
            Vec::new(),
            now_ms(),
        );
        std::future::ready(published.map(|_| ()).map_err(|e| e.to_string()))
    })
    .await;
    if let Err(e) = result {
        if !hub.is_shutting_down() {
            eprintln!("tidings: demo ticker stopped: {e}");
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `tidings demo ticker`: publishes to a server over tidings-client.
pub(crate) async fn run(args: TickerArgs) -> Result<(), String> {
    let (client, _events) = Client::connect(ClientConfig::new(args.server.clone()))
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.server))?;
    eprintln!(
        "tidings: demo ticker publishing {} updates/s on prices.<SYMBOL> ({} symbols) to {}",
        args.rate,
        SYMBOLS.len(),
        args.server
    );
    let feed = pace(args.rate, |topic, payload| {
        let client = &client;
        async move {
            match client.publish(&topic, Payload::Json(payload)).await {
                Ok(_) => Ok(()),
                // Reconnecting: skip this update, prices move on anyway.
                Err(e) if e.is_transient() => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
    });
    let result = match args.seconds {
        Some(secs) => tokio::time::timeout(Duration::from_secs(secs), feed)
            .await
            .unwrap_or(Ok(())),
        None => feed.await,
    };
    client.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_walk_every_symbol_within_bounds() {
        let mut feed = Feed::new(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5000 {
            let (topic, payload) = feed.next_update();
            let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
            let symbol = v["symbol"].as_str().unwrap();
            assert_eq!(topic, format!("prices.{symbol}"));
            let (price, open) = (v["price"].as_f64().unwrap(), v["open"].as_f64().unwrap());
            assert!(price > open * 0.5 && price < open * 1.5, "{payload}");
            seen.insert(symbol.to_owned());
        }
        assert_eq!(seen.len(), SYMBOLS.len());
    }
}
