//! The publisher of the fan-out and storm scenarios: one connection in the parent process,
//! on a thread and runtime of its own, sending time-stamped messages either as fast as the
//! subscribers take them (never more than `window` messages ahead of the slowest subscriber,
//! so a server is measured at the rate it delivers, not the rate it buffers) or at a fixed
//! rate.

use crate::client::{self, Dialect};
use futures::{SinkExt, StreamExt};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use yawc::{Frame, OpCode};

pub(crate) struct PublisherSpec {
    pub(crate) server: SocketAddr,
    pub(crate) dialect: Dialect,
    pub(crate) topic: String,
    pub(crate) payload: usize,
    /// Messages per second; `None`: as fast as the window allows.
    pub(crate) rate: Option<f64>,
    /// Most messages ahead of the slowest subscriber; `None`: no flow control.
    pub(crate) window: Option<u64>,
    /// Messages per flush when unpaced.
    pub(crate) batch: u64,
}

/// A running publisher; [`Publisher::stop`] ends it.
pub(crate) struct Publisher {
    stop: Arc<AtomicBool>,
    /// Messages sent so far (shared with the thread).
    pub(crate) sent: Arc<AtomicU64>,
    thread: JoinHandle<Result<(), String>>,
}

impl Publisher {
    /// Starts publishing. `slowest()` is what the slowest subscriber has received in all, and
    /// `already` what was published to the topic before this publisher.
    pub(crate) fn start(
        spec: PublisherSpec,
        already: u64,
        slowest: impl Fn() -> u64 + Send + 'static,
    ) -> Publisher {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (stop2, sent2) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(publish(spec, already, slowest, &stop2, &sent2))
        });
        Publisher { stop, sent, thread }
    }

    /// Stops and returns how many messages were sent.
    pub(crate) fn stop(self) -> Result<u64, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| "the publisher panicked".to_owned())??;
        Ok(self.sent.load(Ordering::Relaxed))
    }
}

async fn publish(
    spec: PublisherSpec,
    already: u64,
    slowest: impl Fn() -> u64,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> Result<(), String> {
    let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let ws = client::connect(spec.dialect, spec.server, source).await?;
    let (mut sink, mut stream) = ws.split();
    // Replies and pings are read (so the server never blocks on us); Engine.IO pings are
    // answered from here.
    let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<()>(4);
    let reader = tokio::spawn(async move {
        while let Some(f) = stream.next().await {
            if f.opcode() == OpCode::Text && f.payload().as_ref() == b"2" {
                let _ = ping_tx.try_send(());
            }
        }
    });
    let batch = if spec.rate.is_some() {
        1
    } else {
        spec.batch.max(1)
    };
    let mut pace = spec.rate.map(|r| {
        let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(0.001)));
        // After a stall, go on at the rate rather than bursting to catch up.
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        i
    });
    let mut published = 0u64;
    while !stop.load(Ordering::Relaxed) {
        while ping_rx.try_recv().is_ok() {
            sink.feed(Frame::text("3"))
                .await
                .map_err(|e| e.to_string())?;
        }
        if let Some(window) = spec.window {
            let ahead = (already + published).saturating_sub(slowest());
            if ahead + batch > window {
                sink.flush().await.map_err(|e| e.to_string())?;
                tokio::time::sleep(Duration::from_micros(200)).await;
                continue;
            }
        }
        if let Some(pace) = &mut pace {
            pace.tick().await;
        }
        for _ in 0..batch {
            let payload = client::stamped_payload(spec.payload);
            let frame = client::publish_frame(spec.dialect, &spec.topic, &payload, false);
            sink.feed(Frame::text(frame))
                .await
                .map_err(|e| e.to_string())?;
        }
        sink.flush().await.map_err(|e| e.to_string())?;
        published += batch;
        sent.store(published, Ordering::Relaxed);
    }
    reader.abort();
    Ok(())
}
