//! The connect timeout: a connection that has not connected to a namespace within
//! `connect_timeout` of its handshake is closed. Every connection has the same timeout, so
//! deadlines come in the order connections open: one FIFO queue and one task per endpoint
//! instead of a timer task per connection (which idle connections would pay for).

use super::engineio::CloseReason;
use super::EioSocket;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

pub(super) struct ConnectTimeouts {
    timeout: Duration,
    /// Open connections by handshake time; at most one entry per Engine.IO session
    /// (bounded by `max_sessions`), removed when its deadline passes.
    queue: Mutex<VecDeque<(Instant, Weak<EioSocket>)>>,
    /// Wakes the task when the queue goes from empty to non-empty.
    wake: Notify,
    started: std::sync::Once,
}

impl ConnectTimeouts {
    pub(super) fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(ConnectTimeouts {
            timeout,
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            started: std::sync::Once::new(),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Weak<EioSocket>)>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the clock for a connection that just opened.
    pub(super) fn watch(self: &Arc<Self>, socket: &Arc<EioSocket>) {
        // Started on first use: the task needs the runtime, which exists by then.
        self.started.call_once(|| {
            tokio::spawn(Arc::clone(self).run());
        });
        let deadline = Instant::now() + self.timeout;
        let mut q = self.queue();
        let was_empty = q.is_empty();
        q.push_back((deadline, Arc::downgrade(socket)));
        drop(q);
        if was_empty {
            self.wake.notify_one();
        }
    }

    async fn run(self: Arc<Self>) {
        loop {
            let front = self.queue().front().map(|(at, _)| *at);
            match front {
                None => self.wake.notified().await,
                Some(at) if at > Instant::now() => tokio::time::sleep_until(at).await,
                Some(_) => {
                    let Some((_, weak)) = self.queue().pop_front() else {
                        continue;
                    };
                    if let Some(s) = weak.upgrade() {
                        if !s.data.connected_once.load(Ordering::Relaxed) {
                            // Nothing was ever queued for it: no goodbye to wait for.
                            s.close(CloseReason::TransportClose);
                        }
                    }
                }
            }
        }
    }
}
