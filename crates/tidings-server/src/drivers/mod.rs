//! Protocol drivers: each joins one transport's decoded frames to the hub and writes the
//! session's outbox back in its protocol, coalescing everything queued into one write.

pub(crate) mod json_ws;
pub(crate) mod line;
