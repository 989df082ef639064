//! The client's settings, and the server URL read into a transport and an address.

use std::time::Duration;

use url::{Host, Url};

use crate::error::ClientError;

/// How to reach the server and how to behave when the connection drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `tcp://HOST:PORT` for the line protocol (port 7071 when omitted) or
    /// `ws://HOST:PORT/ws` for WebSocket (path `/ws` when omitted). `wss://` is not supported.
    pub url: String,
    /// Reconnect with backoff when the connection drops, log in again and resubscribe,
    /// resuming exact topics after the last offset seen. Default true.
    pub reconnect: bool,
    /// `(user, password)` to log in with on every connection. Default none (anonymous).
    pub credentials: Option<(String, String)>,
    /// First reconnect delay; doubled after each failed attempt. Default 100 ms.
    pub min_backoff: Duration,
    /// Longest reconnect delay. Default 5 s. Each delay is picked at random in its upper
    /// half, so many clients of a restarted server do not all come back at once.
    pub max_backoff: Duration,
    /// Events (messages, presence, ...) buffered between the connection and the reader of
    /// [`Events`](crate::Events). Default 1024. When it is full the connection stops reading
    /// from the socket, so TCP pushes back on the server (which then applies its
    /// slow-consumer policy) instead of the client buffering without bound.
    pub event_buffer: usize,
}

impl ClientConfig {
    /// A config for `url` with every other field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        ClientConfig {
            url: url.into(),
            reconnect: true,
            credentials: None,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            event_buffer: 1024,
        }
    }
}

/// Where to connect, and with which protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// The TCP line protocol.
    Line { host: Host, port: u16 },
    /// The native JSON protocol over WebSocket.
    Ws { url: Url, host: Host, port: u16 },
}

/// Default TCP port of the line protocol (`tidings serve`).
const DEFAULT_LINE_PORT: u16 = 7071;

impl Target {
    pub(crate) fn parse(text: &str) -> Result<Target, ClientError> {
        let bad = |why: &str| ClientError::BadUrl(format!("{text:?}: {why}"));
        let mut url = Url::parse(text).map_err(|e| {
            bad(&format!(
                "{e}; expected tcp://HOST:PORT or ws://HOST:PORT/ws"
            ))
        })?;
        let host = url
            .host()
            .map(|h| h.to_owned())
            .ok_or_else(|| bad("no host"))?;
        match url.scheme() {
            "tcp" => {
                if !matches!(url.path(), "" | "/") || url.query().is_some() {
                    return Err(bad("a tcp:// URL has no path or query"));
                }
                let port = url.port().unwrap_or(DEFAULT_LINE_PORT);
                Ok(Target::Line { host, port })
            }
            "ws" => {
                let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
                if matches!(url.path(), "" | "/") {
                    url.set_path("/ws");
                }
                Ok(Target::Ws { url, host, port })
            }
            "wss" => Err(bad("wss:// is not supported: this client has no TLS")),
            other => Err(bad(&format!(
                "unknown scheme {other:?}; expected tcp:// or ws://"
            ))),
        }
    }

    pub(crate) fn host_port(&self) -> (&Host, u16) {
        match self {
            Target::Line { host, port } | Target::Ws { host, port, .. } => (host, *port),
        }
    }
}

/// Checks the settings that could make the client misbehave.
pub(crate) fn validate(cfg: &ClientConfig) -> Result<Target, ClientError> {
    if cfg.event_buffer == 0 {
        return Err(ClientError::InvalidInput(
            "event_buffer must be at least 1".into(),
        ));
    }
    if cfg.min_backoff > cfg.max_backoff {
        return Err(ClientError::InvalidInput(
            "min_backoff must not exceed max_backoff".into(),
        ));
    }
    if let Some((user, password)) = &cfg.credentials {
        check_token("user", user)?;
        check_token("password", password)?;
    }
    Target::parse(&cfg.url)
}

/// A topic, pattern, user or password must be one non-empty token: the line protocol
/// separates arguments by spaces, and no server accepts control characters in a topic.
pub(crate) fn check_token(what: &str, value: &str) -> Result<(), ClientError> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ClientError::InvalidInput(format!(
            "{what} {value:?} must be non-empty, without spaces or control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("tcp://127.0.0.1:7000").unwrap();
        assert_eq!(t.host_port().1, 7000);
        assert!(matches!(t, Target::Line { .. }));
        assert_eq!(
            Target::parse("tcp://localhost").unwrap().host_port().1,
            7071
        );
        match Target::parse("ws://127.0.0.1:7070").unwrap() {
            Target::Ws { url, port, .. } => {
                assert_eq!(url.as_str(), "ws://127.0.0.1:7070/ws");
                assert_eq!(port, 7070);
            }
            t => panic!("{t:?}"),
        }
        match Target::parse("ws://[::1]/custom").unwrap() {
            Target::Ws { url, port, .. } => {
                assert_eq!(url.path(), "/custom");
                assert_eq!(port, 80);
            }
            t => panic!("{t:?}"),
        }
        for bad in [
            "127.0.0.1:7071",
            "http://x",
            "wss://x/ws",
            "tcp://x:1/path",
            "",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(ClientError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn config_checks() {
        let mut cfg = ClientConfig::new("tcp://127.0.0.1:1");
        assert!(validate(&cfg).is_ok());
        cfg.event_buffer = 0;
        assert!(validate(&cfg).is_err());
        cfg.event_buffer = 1;
        cfg.credentials = Some(("a b".into(), "x".into()));
        assert!(validate(&cfg).is_err());
        assert!(check_token("topic", "chat.lobby").is_ok());
        assert!(check_token("topic", "").is_err());
        assert!(check_token("topic", "a\tb").is_err());
    }
}
