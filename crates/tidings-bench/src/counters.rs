//! What every load-generator worker process counts (the WebSocket `worker` and the SockJS
//! `sockjs-worker` alike), and the loop that answers the parent's commands with it: ticks,
//! histograms and final counts on stdout (`protocol`).

use crate::client::{self, Delivery};
use crate::protocol::{self, Command, Event, Final, Tick};
use crate::stats;
use hdrhistogram::Histogram;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Counters of one worker's connections. Uncontended: a worker's runtime has one thread.
pub(crate) struct Counters {
    pub(crate) ready: AtomicUsize,
    pub(crate) failed: AtomicU64,
    pub(crate) closed: AtomicUsize,
    missed: AtomicU64,
    duplicates: AtomicU64,
    /// Per connection: messages delivered and the last offset seen.
    delivered: Vec<AtomicU64>,
    last_offset: Vec<AtomicU64>,
    recording: AtomicBool,
    latency: Mutex<Histogram<u64>>,
    /// Time from the last `drop` until each connection was back (reconnect storms).
    pub(crate) back: Mutex<Histogram<u64>>,
}

impl Counters {
    pub(crate) fn new(connections: usize) -> Counters {
        Counters {
            ready: AtomicUsize::new(0),
            failed: AtomicU64::new(0),
            closed: AtomicUsize::new(0),
            missed: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            delivered: (0..connections).map(|_| AtomicU64::new(0)).collect(),
            last_offset: (0..connections).map(|_| AtomicU64::new(0)).collect(),
            recording: AtomicBool::new(false),
            latency: Mutex::new(stats::micros_histogram()),
            back: Mutex::new(stats::micros_histogram()),
        }
    }

    /// Counts a delivery to connection `i`, checking its offset follows `last` (the last one
    /// that connection got; `None`: nothing to check against yet): a repeat is a duplicate and
    /// not counted, a jump counts the offsets skipped as missed.
    pub(crate) fn received(&self, i: usize, d: Delivery, last: &mut Option<u64>) {
        if let Some(offset) = d.offset {
            match *last {
                Some(l) if offset <= l => {
                    self.duplicates.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(l) if offset > l + 1 => {
                    self.missed.fetch_add(offset - l - 1, Ordering::Relaxed);
                }
                _ => {}
            }
            *last = Some(offset);
            self.last_offset[i].store(offset, Ordering::Relaxed);
        }
        self.delivered[i].fetch_add(1, Ordering::Relaxed);
        if self.recording.load(Ordering::Relaxed) {
            if let Some(sent) = d.sent_ns {
                let us = client::now_ns().saturating_sub(sent) / 1000;
                lock(&self.latency).saturating_record(us.max(1));
            }
        }
    }

    fn tick(&self) -> Tick {
        let counts = self.delivered.iter().map(|c| c.load(Ordering::Relaxed));
        Tick {
            ready: self.ready.load(Ordering::Relaxed),
            delivered: counts.clone().sum(),
            slowest: counts.min().unwrap_or(0),
            failed: self.failed.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
            reconnected: lock(&self.back).len(),
        }
    }

    fn final_counts(&self) -> Final {
        let t = self.tick();
        let lasts = self.last_offset.iter().map(|o| o.load(Ordering::Relaxed));
        Final {
            delivered: t.delivered,
            missed: self.missed.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            failed: t.failed,
            closed: t.closed,
            last_min: lasts.clone().min().unwrap_or(0),
            last_max: lasts.max().unwrap_or(0),
        }
    }
}

/// Answers the parent until `stop` (or a closed stdin: the parent died): a tick every
/// `tick_ms`, latency recorded between `record` and `report`, `on_drop` run on `drop` (after
/// the reconnect histogram is reset), the final counts last.
pub(crate) async fn serve_commands(counters: &Counters, tick_ms: u64, mut on_drop: impl FnMut()) {
    let mut commands = stdin_commands();
    let mut ticker = tokio::time::interval(Duration::from_millis(tick_ms.max(1)));
    loop {
        tokio::select! {
            _ = ticker.tick() => emit(&Event::Tick(counters.tick())),
            command = commands.recv() => match command {
                Some(Command::Record) => {
                    *lock(&counters.latency) = stats::micros_histogram();
                    counters.recording.store(true, Ordering::Relaxed);
                }
                Some(Command::Report) => {
                    counters.recording.store(false, Ordering::Relaxed);
                    emit(&Event::Histograms {
                        latency: stats::to_pairs(&lock(&counters.latency)),
                        back: stats::to_pairs(&lock(&counters.back)),
                    });
                }
                Some(Command::Drop) => {
                    *lock(&counters.back) = stats::micros_histogram();
                    on_drop();
                }
                Some(Command::Stop) | None => {
                    emit(&Event::Final(counters.final_counts()));
                    return;
                }
            }
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Commands from stdin, read on a thread of their own; a closed stdin (the parent died)
/// ends the channel, which stops the worker.
fn stdin_commands() -> tokio::sync::mpsc::Receiver<Command> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match protocol::parse_command(&line) {
                Ok(c) => {
                    if tx.blocking_send(c).is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("tidings-bench: a worker got {e}"),
            }
        }
    });
    rx
}

pub(crate) fn emit(event: &Event) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", protocol::line(event));
    let _ = out.flush();
}
