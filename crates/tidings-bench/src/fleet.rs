//! The parent side of the load generator: worker processes (this program re-executed as
//! `tidings-bench worker`), each holding a share of the connections from its own source
//! addresses. A thread per worker reads its events; the latest tick of every worker is kept
//! for [`Fleet::totals`], other events queue for [`Fleet::collect`].

use crate::client::Dialect;
use crate::progress;
use crate::protocol::{self, Command, Event, Final, Tick, WorkerSpec};
use crate::stats;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections per source address by default: tidings' `limits.max_connections_per_ip`
/// (1000), so a benchmark run against a server on its defaults is not refused.
pub(crate) const PER_SOURCE: usize = 1000;

/// Socket.IO sessions per source address at most: tidings' `socketio.max_sessions_per_ip`
/// (100) bounds one address tighter than connections do.
pub(crate) const SOCKETIO_PER_SOURCE: usize = 100;

/// How the connections are spread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spread {
    /// Connections per worker process (at most ~19,000 here: the open-file limit is 20,000).
    pub(crate) per_worker: usize,
    /// Connections per source address 127.0.0.x (each has ~28,000 ephemeral ports; tidings
    /// admits [`PER_SOURCE`] per client address by default).
    pub(crate) per_source: usize,
    /// Handshakes in flight per worker.
    pub(crate) concurrency: usize,
}

impl Default for Spread {
    fn default() -> Spread {
        Spread {
            per_worker: 5000,
            per_source: PER_SOURCE,
            concurrency: 256,
        }
    }
}

/// The worker specs for `connections` connections spread as `spread` says.
pub(crate) fn plan(
    server: SocketAddr,
    dialect: Dialect,
    connections: usize,
    topic: Option<&str>,
    spread: Spread,
) -> Vec<WorkerSpec> {
    let per_worker = spread.per_worker.max(1);
    let per_source = match dialect {
        Dialect::SocketIo => spread.per_source.min(SOCKETIO_PER_SOURCE),
        Dialect::Native | Dialect::NativeTls => spread.per_source,
    };
    (0..connections.div_ceil(per_worker))
        .map(|w| WorkerSpec {
            server,
            dialect,
            connections: per_worker.min(connections - w * per_worker),
            first_index: w * per_worker,
            per_source,
            topic: topic.map(str::to_owned),
            concurrency: spread.concurrency,
            tick_ms: 20,
            url_topic: false,
        })
        .collect()
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
}

pub(crate) struct Fleet {
    workers: Vec<Worker>,
    ticks: Arc<Mutex<Vec<Tick>>>,
    events: Receiver<(usize, Result<Event, String>)>,
}

impl Fleet {
    /// Starts one worker per spec.
    pub(crate) fn spawn(specs: &[WorkerSpec]) -> Result<Fleet, String> {
        let specs: Vec<String> = specs.iter().map(protocol::line).collect();
        Fleet::spawn_as("worker", &specs)
    }

    /// Starts one `tidings-bench <subcommand> <spec>` per spec (JSON): a worker of another
    /// kind that speaks the same `protocol`.
    pub(crate) fn spawn_as(subcommand: &str, specs: &[String]) -> Result<Fleet, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let ticks = Arc::new(Mutex::new(vec![Tick::default(); specs.len()]));
        let (tx, events) = std::sync::mpsc::channel();
        let mut workers = Vec::new();
        for (w, spec) in specs.iter().enumerate() {
            let mut child = std::process::Command::new(&exe)
                .arg(subcommand)
                .arg(spec)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("cannot start a worker: {e}"))?;
            let stdin = child.stdin.take().ok_or("worker without stdin")?;
            let stdout = child.stdout.take().ok_or("worker without stdout")?;
            let (ticks, tx) = (ticks.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    match protocol::parse_event(&line) {
                        Ok(Event::Tick(t)) => lock(&ticks)[w] = t,
                        other => {
                            if tx.send((w, other)).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = tx.send((w, Err(format!("worker {w} ended"))));
            });
            workers.push(Worker { child, stdin });
        }
        Ok(Fleet {
            workers,
            ticks,
            events,
        })
    }

    /// The latest ticks of all workers added up.
    pub(crate) fn totals(&self) -> Tick {
        Tick::sum(lock(&self.ticks).iter())
    }

    /// A cheap handle on [`Fleet::totals`] for another thread (the publisher's flow control).
    pub(crate) fn totals_handle(&self) -> impl Fn() -> Tick + Send + Sync + 'static {
        let ticks = self.ticks.clone();
        move || Tick::sum(lock(&ticks).iter())
    }

    pub(crate) fn send(&mut self, command: Command) -> Result<(), String> {
        let line = format!("{}\n", protocol::line(&command));
        for w in &mut self.workers {
            w.stdin
                .write_all(line.as_bytes())
                .and_then(|_| w.stdin.flush())
                .map_err(|e| format!("a worker is gone: {e}"))?;
        }
        Ok(())
    }

    /// Waits (showing a progress bar of ready connections) until `target` connections are
    /// ready. Returns how long it took.
    pub(crate) fn wait_ready(
        &mut self,
        label: &str,
        target: usize,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        let bar = progress::count_bar(label, target as u64);
        loop {
            let t = self.totals();
            bar.set_position(t.ready as u64);
            if t.ready >= target {
                bar.finish_and_clear();
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                bar.abandon();
                return Err(format!(
                    "{label}: only {} of {target} connections ready after {:?} ({} failed attempts)",
                    t.ready, timeout, t.failed
                ));
            }
            match self.events.recv_timeout(Duration::from_millis(50)) {
                Ok((w, Err(e))) => return Err(format!("worker {w}: {e}")),
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err("workers gone".into()),
            }
        }
    }

    /// One event of each worker matched by `pick` (other events are dropped).
    fn collect<T>(
        &mut self,
        timeout: Duration,
        pick: impl Fn(Event) -> Option<T>,
    ) -> Result<Vec<T>, String> {
        let deadline = Instant::now() + timeout;
        let mut got: Vec<Option<T>> = self.workers.iter().map(|_| None).collect();
        while got.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok((w, Ok(e))) => {
                    if let Some(t) = pick(e) {
                        got[w] = Some(t);
                    }
                }
                // A worker that already answered may end (after its `final`) before the
                // others answer: only a worker that ends without answering is an error.
                Ok((w, Err(_))) if got[w].is_some() => {}
                Ok((w, Err(e))) => return Err(format!("worker {w}: {e}")),
                Err(_) => return Err("workers did not answer in time".into()),
            }
        }
        Ok(got.into_iter().flatten().collect())
    }

    /// Asks every worker for its histograms and merges them: (latency, reconnect times).
    pub(crate) fn histograms(
        &mut self,
    ) -> Result<(hdrhistogram::Histogram<u64>, hdrhistogram::Histogram<u64>), String> {
        self.send(Command::Report)?;
        let parts = self.collect(Duration::from_secs(30), |e| match e {
            Event::Histograms { latency, back } => Some((latency, back)),
            _ => None,
        })?;
        let (mut latency, mut back) = (stats::micros_histogram(), stats::micros_histogram());
        for (l, b) in parts {
            stats::add_pairs(&mut latency, &l);
            stats::add_pairs(&mut back, &b);
        }
        Ok((latency, back))
    }

    /// CPU seconds the worker processes have used so far.
    pub(crate) fn cpu_secs(&self) -> f64 {
        self.workers
            .iter()
            .filter_map(|w| stats::cpu_secs(w.child.id()))
            .sum()
    }

    /// Stops every worker and returns their final counts.
    pub(crate) fn stop(mut self) -> Result<Vec<Final>, String> {
        self.send(Command::Stop)?;
        let finals = self.collect(Duration::from_secs(30), |e| match e {
            Event::Final(f) => Some(f),
            _ => None,
        });
        for w in &mut self.workers {
            let _ = w.child.wait();
        }
        finals
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for w in &mut self.workers {
            if let Ok(None) = w.child.try_wait() {
                let _ = w.child.kill();
                let _ = w.child.wait();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_spreads_connections_over_workers_with_suite_wide_indexes() {
        let specs = plan(
            "127.0.0.1:1".parse().unwrap(),
            Dialect::Native,
            12_000,
            Some("t"),
            Spread {
                per_worker: 5000,
                per_source: 8000,
                concurrency: 10,
            },
        );
        let shares: Vec<(usize, usize)> = specs
            .iter()
            .map(|s| (s.first_index, s.connections))
            .collect();
        assert_eq!(shares, [(0, 5000), (5000, 5000), (10000, 2000)]);
        assert!(specs.iter().all(|s| s.topic.as_deref() == Some("t")));
    }
}
