//! What a client asks for: a decoded [`Frame`] checked against its version's required headers
//! and turned into a typed [`ClientFrame`].

use super::{Command, Frame, HeartBeat, Version};
use bytes::Bytes;

/// Headers of `SEND` that steer the broker and are not passed on to subscribers.
pub const SEND_CONTROL_HEADERS: [&str; 4] =
    ["destination", "transaction", "receipt", "content-length"];

/// How a subscriber acknowledges messages (`ack` header of `SUBSCRIBE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum AckMode {
    /// Messages count as acknowledged once sent. The default.
    #[default]
    Auto,
    /// `ACK` acknowledges the message and every earlier one of the subscription (cumulative).
    Client,
    /// `ACK` acknowledges exactly one message.
    ClientIndividual,
}

impl AckMode {
    pub fn parse(text: &str) -> Option<AckMode> {
        match text {
            "auto" => Some(AckMode::Auto),
            "client" => Some(AckMode::Client),
            "client-individual" => Some(AckMode::ClientIndividual),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Auto => "auto",
            AckMode::Client => "client",
            AckMode::ClientIndividual => "client-individual",
        }
    }
}

/// A client frame, checked and typed. `receipt` is the frame's `receipt` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFrame {
    pub receipt: Option<String>,
    pub op: ClientOp,
}

/// What a client frame asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientOp {
    /// `CONNECT` or `STOMP`.
    Connect {
        /// `None`: no `accept-version` header (a 1.0 client).
        accept_version: Option<String>,
        host: Option<String>,
        login: Option<String>,
        passcode: Option<String>,
        /// The token of an `Authorization: Bearer <jwt>` header (Spring's convention; the
        /// name `authorization` is accepted too, as STOMP header names are case-sensitive).
        bearer: Option<String>,
        heart_beat: HeartBeat,
    },
    Send {
        destination: String,
        transaction: Option<String>,
        /// Every other header, first occurrence of each name, in order (`content-type` too).
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    Subscribe {
        destination: String,
        /// The subscription id (1.0 without `id`: the destination).
        id: String,
        ack: AckMode,
        /// `prefetch-count` (as RabbitMQ names it): most unacknowledged queue messages.
        prefetch: Option<u32>,
        /// `since`: resume a topic after this offset (tidings extension).
        since: Option<u64>,
        /// `epoch`: the epoch the client saw with `since`.
        epoch: Option<String>,
    },
    Unsubscribe {
        id: String,
    },
    /// `ACK`/`NACK`: `id` is the `ack` header value (1.2) or the `message-id` (1.0/1.1).
    Ack {
        id: String,
        subscription: Option<String>,
        transaction: Option<String>,
    },
    Nack {
        id: String,
        subscription: Option<String>,
        transaction: Option<String>,
    },
    Begin {
        transaction: String,
    },
    Commit {
        transaction: String,
    },
    Abort {
        transaction: String,
    },
    Disconnect,
}

/// Why a well-formed frame is not an acceptable request. `Display` is the ERROR `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("{0} is a server frame; a client may not send it")]
    ServerCommand(Command),
    #[error("{command} needs a {header:?} header")]
    MissingHeader {
        command: Command,
        header: &'static str,
    },
    #[error("{command} in STOMP 1.2 needs an \"id\" header (the \"ack\" header of the MESSAGE); \"message-id\" names the message in 1.0 and 1.1 only")]
    AckWithoutId { command: Command },
    #[error("{command} header {header:?}: {value:?} is not {expected}")]
    InvalidHeader {
        command: Command,
        header: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl ClientFrame {
    /// Checks `frame` from a client speaking `version` (use 1.2 before `CONNECT`: only
    /// `CONNECT`/`STOMP` are acceptable then and they do not depend on it).
    pub fn from_frame(frame: Frame, version: Version) -> Result<ClientFrame, FrameError> {
        let receipt = frame.header("receipt").map(str::to_owned);
        let op = op_of(frame, version)?;
        Ok(ClientFrame { receipt, op })
    }
}

fn op_of(frame: Frame, version: Version) -> Result<ClientOp, FrameError> {
    let command = frame.command;
    let opt = |name: &str| frame.header(name).map(str::to_owned);
    let req = |name: &'static str| {
        frame
            .header(name)
            .map(str::to_owned)
            .ok_or(FrameError::MissingHeader {
                command,
                header: name,
            })
    };
    let invalid =
        |header: &'static str, value: &str, expected: &'static str| FrameError::InvalidHeader {
            command,
            header,
            value: value.to_owned(),
            expected,
        };
    Ok(match command {
        Command::Connect | Command::Stomp => {
            let heart_beat = match frame.header("heart-beat") {
                None => HeartBeat::default(),
                Some(v) => HeartBeat::parse(v)
                    .ok_or_else(|| invalid("heart-beat", v, "two numbers like 10000,10000"))?,
            };
            ClientOp::Connect {
                accept_version: opt("accept-version"),
                host: opt("host"),
                login: opt("login"),
                passcode: opt("passcode"),
                bearer: frame
                    .header("Authorization")
                    .or_else(|| frame.header("authorization"))
                    .and_then(crate::bearer::bearer_token)
                    .map(str::to_owned),
                heart_beat,
            }
        }
        Command::Send => {
            let destination = req("destination")?;
            let transaction = opt("transaction");
            let mut headers: Vec<(String, String)> = Vec::new();
            for (name, value) in frame.headers {
                if SEND_CONTROL_HEADERS.contains(&name.as_str())
                    || headers.iter().any(|(n, _)| *n == name)
                {
                    continue;
                }
                headers.push((name, value));
            }
            ClientOp::Send {
                destination,
                transaction,
                headers,
                body: frame.body,
            }
        }
        Command::Subscribe => {
            let destination = req("destination")?;
            let id = match (frame.header("id"), version) {
                (Some(id), _) => id.to_owned(),
                (None, Version::V1_0) => destination.clone(),
                (None, _) => {
                    return Err(FrameError::MissingHeader {
                        command,
                        header: "id",
                    })
                }
            };
            let ack = match frame.header("ack") {
                None => AckMode::Auto,
                Some(v) => AckMode::parse(v)
                    .ok_or_else(|| invalid("ack", v, "auto, client or client-individual"))?,
            };
            let number = |header: &'static str| -> Result<Option<u64>, FrameError> {
                match frame.header(header) {
                    None => Ok(None),
                    Some(v) => v
                        .trim()
                        .parse()
                        .map(Some)
                        .map_err(|_| invalid(header, v, "a whole number")),
                }
            };
            let prefetch = match number("prefetch-count")? {
                None => None,
                Some(n) => Some(u32::try_from(n).map_err(|_| {
                    invalid("prefetch-count", &n.to_string(), "a number below 2^32")
                })?),
            };
            ClientOp::Subscribe {
                destination,
                id,
                ack,
                prefetch,
                since: number("since")?,
                epoch: opt("epoch"),
            }
        }
        Command::Unsubscribe => {
            let id = match (frame.header("id"), frame.header("destination"), version) {
                (Some(id), _, _) => id.to_owned(),
                (None, Some(dest), Version::V1_0) => dest.to_owned(),
                (None, _, _) => {
                    return Err(FrameError::MissingHeader {
                        command,
                        header: "id",
                    })
                }
            };
            ClientOp::Unsubscribe { id }
        }
        Command::Ack | Command::Nack => {
            // 1.2 names the message by the `ack` header's value in `id` (and only so: a
            // 1.1-style `message-id` is refused); 1.0/1.1 by its `message-id`, where `id` is
            // taken too (some clients send it).
            let id = match version {
                Version::V1_2 => frame
                    .header("id")
                    .ok_or(FrameError::AckWithoutId { command })?,
                _ => frame
                    .header("message-id")
                    .or_else(|| frame.header("id"))
                    .ok_or(FrameError::MissingHeader {
                        command,
                        header: "message-id",
                    })?,
            }
            .to_owned();
            let subscription = opt("subscription");
            let transaction = opt("transaction");
            if command == Command::Ack {
                ClientOp::Ack {
                    id,
                    subscription,
                    transaction,
                }
            } else {
                ClientOp::Nack {
                    id,
                    subscription,
                    transaction,
                }
            }
        }
        Command::Begin => ClientOp::Begin {
            transaction: req("transaction")?,
        },
        Command::Commit => ClientOp::Commit {
            transaction: req("transaction")?,
        },
        Command::Abort => ClientOp::Abort {
            transaction: req("transaction")?,
        },
        Command::Disconnect => ClientOp::Disconnect,
        Command::Connected | Command::Message | Command::Receipt | Command::Error => {
            return Err(FrameError::ServerCommand(command))
        }
    })
}
