//! Why a datagram was refused.

/// A datagram that cannot be decoded. Datagrams are independent, so no error is fatal: the
/// receiver drops the datagram (and counts it) and goes on.
///
/// [`is_foreign`](Self::is_foreign) tells a datagram that is not tidings' at all (answer
/// nothing) from one of ours that is malformed (a server may answer with an `ERROR`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    /// Longer than the configured maximum.
    #[error("datagram of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// No `TD` magic, or shorter than a header.
    #[error("not a tidings datagram")]
    NotTidings,
    /// A version this side does not speak.
    #[error("unsupported protocol version {0}; this side speaks version 1")]
    UnsupportedVersion(u8),
    /// A type byte that names nothing.
    #[error("unknown datagram type 0x{0:02x}")]
    UnknownType(u8),
    /// A server's datagram sent to a server, or a client's to a client.
    #[error("datagram type 0x{0:02x} is not one this side receives")]
    WrongDirection(u8),
    /// The datagram ends inside a field (or a length points past its end).
    #[error("datagram ends inside {field}")]
    Truncated { field: &'static str },
    /// A string field is not UTF-8.
    #[error("{field} is not valid UTF-8")]
    NotUtf8 { field: &'static str },
    /// A field that must not be empty is.
    #[error("{field} is empty")]
    Empty { field: &'static str },
    /// A payload kind other than 0 (text), 1 (JSON), 2 (binary).
    #[error("unknown payload kind {0}")]
    UnknownKind(u8),
    /// A payload of kind JSON that is not one JSON value.
    #[error("JSON payload is not one valid JSON value")]
    NotJson,
    /// A cookie length other than 0 or 24.
    #[error("cookie length must be 0 or 24, got {0}")]
    BadCookieLength(u8),
    /// Bytes after a request that are not zero padding.
    #[error("{len} bytes after the request are not zero padding")]
    BadPadding { len: usize },
    /// Bytes after the last field of a reply.
    #[error("{len} unexpected bytes after the reply")]
    TrailingBytes { len: usize },
}

impl DatagramError {
    /// True when the datagram is not tidings' (no magic, or an unknown version): nothing in it
    /// can be trusted to be a request, so it gets no answer.
    pub fn is_foreign(&self) -> bool {
        matches!(
            self,
            Self::NotTidings | Self::UnsupportedVersion(_) | Self::TooLarge { .. }
        )
    }
}
