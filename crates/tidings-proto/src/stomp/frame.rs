//! A decoded frame: a command, headers in wire order, and a body.

use super::Command;
use bytes::Bytes;

/// One STOMP frame.
///
/// Headers keep their wire order and repetitions; [`Frame::header`] returns the first
/// occurrence, which is the one that counts (spec 1.2, "Repeated Header Entries").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub command: Command,
    /// Decoded (unescaped) names and values.
    pub headers: Vec<(String, String)>,
    /// The body, shared with the read buffer it was decoded from.
    pub body: Bytes,
}

impl Frame {
    /// A frame without headers or body.
    pub fn new(command: Command) -> Frame {
        Frame {
            command,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: &str) -> Frame {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body (builder style). Add a `content-length` header if it may contain NUL.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Frame {
        self.body = body.into();
        self
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}
