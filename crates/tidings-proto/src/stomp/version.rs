//! Protocol versions and heart-beat negotiation.

/// A STOMP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// 1.0: no header escaping, no `NACK`, `id` optional on `SUBSCRIBE`.
    V1_0,
    /// 1.1: header escaping (`\\`, `\c`, `\n`), heart-beats, `NACK`.
    V1_1,
    /// 1.2: adds `\r` escaping and `\r\n` line ends; `ACK`/`NACK` by the `ack` header's id.
    V1_2,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    /// As written in `accept-version` and `version` headers (`1.0`, `1.1`, `1.2`).
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// The WebSocket subprotocol of this version (`v10.stomp`, `v11.stomp`, `v12.stomp`).
    pub fn subprotocol(self) -> &'static str {
        match self {
            Version::V1_0 => "v10.stomp",
            Version::V1_1 => "v11.stomp",
            Version::V1_2 => "v12.stomp",
        }
    }

    /// The version named `text` (`1.0`, `1.1`, `1.2`).
    pub fn parse(text: &str) -> Option<Version> {
        Self::ALL.into_iter().find(|v| v.as_str() == text.trim())
    }

    /// The highest version both sides speak. A `CONNECT` without `accept-version` is 1.0;
    /// `None` when the lists do not meet (the server must then answer with an ERROR frame).
    pub fn negotiate(accept_version: Option<&str>) -> Option<Version> {
        match accept_version {
            None => Some(Version::V1_0),
            Some(list) => list.split(',').filter_map(Version::parse).max(),
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `heart-beat` header: `<cx>,<cy>` in milliseconds.
///
/// From the sender's point of view: `send` is the smallest interval at which it can send
/// heart-beats (0: it cannot), `receive` the interval at which it wants to receive them (0:
/// it does not want any).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeartBeat {
    pub send: u32,
    pub receive: u32,
}

impl HeartBeat {
    /// Parses `cx,cy` (two whole numbers, spaces around them tolerated).
    pub fn parse(text: &str) -> Option<HeartBeat> {
        let (a, b) = text.split_once(',')?;
        Some(HeartBeat {
            send: a.trim().parse().ok()?,
            receive: b.trim().parse().ok()?,
        })
    }

    /// The header value.
    pub fn to_header(self) -> String {
        format!("{},{}", self.send, self.receive)
    }

    /// The intervals agreed between `client` (from `CONNECT`) and `server` (our offer), as the
    /// spec computes them: `(server sends every, server expects from the client every)`, in
    /// milliseconds, 0 meaning never.
    pub fn negotiate(client: HeartBeat, server: HeartBeat) -> (u32, u32) {
        let outgoing = match (server.send, client.receive) {
            (0, _) | (_, 0) => 0,
            (s, c) => s.max(c),
        };
        let incoming = match (client.send, server.receive) {
            (0, _) | (_, 0) => 0,
            (c, s) => c.max(s),
        };
        (outgoing, incoming)
    }
}
