//! Errors, by layer: I/O, a server that misbehaves, a server that refuses, local misuse.

/// Why a request (or connecting) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket failed (connection refused, reset, timed out).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent something this client cannot read, or the handshake failed.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server refused the request. `code` is the native protocol's error code
    /// (`bad_request`, `forbidden`, `unauthorized`, `not_found`, ...); over the line protocol,
    /// which has no codes, it is inferred from the `-ERR` text.
    #[error("server refused ({code}): {message}")]
    Server { code: String, message: String },
    /// A subscribe with `since` could not resume: history now holds `earliest..=last` of
    /// epoch `epoch`. Subscribe again with `since = earliest - 1` to get what is left.
    #[error("cannot resume {topic}: {message}")]
    ResumeUnavailable {
        topic: String,
        earliest: u64,
        last: u64,
        epoch: Option<String>,
        message: String,
    },
    /// The connection is down and the client is reconnecting; try again later. A request
    /// in flight when the connection dropped fails this way too (it may or may not have
    /// been carried out).
    #[error("not connected to the server (reconnecting)")]
    NotConnected,
    /// The client was closed (or lost its connection for good, without reconnect).
    #[error("the client is closed")]
    Closed,
    /// The URL is not `tcp://HOST:PORT` or `ws://HOST:PORT/PATH`.
    #[error("bad server URL: {0}")]
    BadUrl(String),
    /// Local misuse: a topic, pattern, user or JSON payload that cannot be sent.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl ClientError {
    /// True for errors that say nothing about the request itself, only that the connection
    /// is (temporarily) unavailable: retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::NotConnected | ClientError::Io(_))
    }
}
