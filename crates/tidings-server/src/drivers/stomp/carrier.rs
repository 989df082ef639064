//! A bounded queue of STOMP frames for a message-oriented carrier (a SockJS session): the
//! broker pushes each frame as one message, the carrier drains them when it can send.
//!
//! It stands where a second hub session once did: it holds only bytes, is bounded like a hub
//! outbox (the hub's `outbox` limits), and says why it ended.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tidings_core::OutboxLimits;
use tokio::sync::Notify;

/// How a carrier's stream of frames ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The broker closed the connection (after DISCONNECT's RECEIPT or an ERROR).
    Finished,
    /// The client did not take frames as fast as they came.
    Overflowed,
}

pub(crate) struct Carrier {
    state: Mutex<State>,
    /// Notified when frames arrive or the stream ends.
    wake: Arc<Notify>,
    limits: OutboxLimits,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    bytes: usize,
    ended: Option<Ending>,
}

/// The frame was not queued: the carrier ended (it may just have, by overflowing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ended;

impl Carrier {
    pub(crate) fn new(limits: OutboxLimits, wake: Arc<Notify>) -> Carrier {
        Carrier {
            state: Mutex::new(State::default()),
            wake,
            limits,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one frame; past the bounds the carrier ends as [`Ending::Overflowed`].
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), Ended> {
        let mut st = self.state();
        if st.ended.is_some() {
            return Err(Ended);
        }
        if st.frames.len() >= self.limits.max_messages
            || st.bytes + frame.len() > self.limits.max_bytes
        {
            st.ended = Some(Ending::Overflowed);
            st.frames.clear();
            st.bytes = 0;
            drop(st);
            self.wake.notify_one();
            return Err(Ended);
        }
        st.bytes += frame.len();
        st.frames.push_back(frame);
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// Ends the stream (unless it already ended); frames queued before stay deliverable.
    pub(crate) fn end(&self, how: Ending) {
        self.state().ended.get_or_insert(how);
        self.wake.notify_one();
    }

    /// Moves the queued frames into `out`; once they are all taken, how the stream ended.
    pub(crate) fn drain(&self, out: &mut Vec<Bytes>) -> Option<Ending> {
        let mut st = self.state();
        out.extend(st.frames.drain(..));
        st.bytes = 0;
        st.ended
    }
}
