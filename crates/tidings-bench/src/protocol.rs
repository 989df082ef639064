//! What a load-generator worker process and its parent say to each other: the worker gets its
//! [`WorkerSpec`] as one JSON argument, then [`Command`]s as JSON lines on stdin; it answers
//! with [`Event`]s as JSON lines on stdout (a [`Event::Tick`] every few milliseconds).

use crate::client::Dialect;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The connections one worker opens and holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WorkerSpec {
    pub(crate) server: SocketAddr,
    pub(crate) dialect: Dialect,
    pub(crate) connections: usize,
    /// Suite-wide number of this worker's first connection (it picks the source addresses).
    pub(crate) first_index: usize,
    /// Connections per source address 127.0.0.x.
    pub(crate) per_source: usize,
    /// Subscribe every connection to this topic; `None` holds idle connections.
    pub(crate) topic: Option<String>,
    /// Handshakes in flight at once.
    pub(crate) concurrency: usize,
    /// Milliseconds between ticks.
    pub(crate) tick_ms: u64,
    /// Name the topic (and where to resume) on the upgrade URL, `/ws?topic=..&since=..`,
    /// instead of sending `subscribe` after `hello` (native protocol; servers since issue 19).
    #[serde(default)]
    pub(crate) url_topic: bool,
}

/// Parent to worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub(crate) enum Command {
    /// Start recording publish-to-receive latency (discarding what was recorded before).
    Record,
    /// Send the histograms ([`Event::Histograms`]).
    Report,
    /// Drop every connection abruptly at once, then reconnect each (resuming after the last
    /// offset it got): the reconnect storm.
    Drop,
    /// Send [`Event::Final`] and exit.
    Stop,
}

/// Worker to parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Event {
    Tick(Tick),
    /// Latency of deliveries since [`Command::Record`] and times from [`Command::Drop`] to
    /// resubscribed, in µs, as `(value, count)` pairs.
    Histograms {
        latency: Vec<(u64, u64)>,
        back: Vec<(u64, u64)>,
    },
    Final(Final),
}

/// Counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tick {
    /// Connections open and greeted (and subscribed, when there is a topic).
    pub(crate) ready: usize,
    /// Messages delivered to all connections.
    pub(crate) delivered: u64,
    /// Messages delivered to the connection that got the fewest.
    pub(crate) slowest: u64,
    /// Connect, handshake or subscribe attempts that failed.
    pub(crate) failed: u64,
    /// Connections the server closed.
    pub(crate) closed: usize,
    /// Connections back and resubscribed since the last [`Command::Drop`].
    pub(crate) reconnected: u64,
}

impl Tick {
    /// Ticks of several workers added up (`slowest` is the minimum).
    pub(crate) fn sum<'a>(ticks: impl IntoIterator<Item = &'a Tick>) -> Tick {
        let mut total = Tick {
            slowest: u64::MAX,
            ..Tick::default()
        };
        let mut any = false;
        for t in ticks {
            any = true;
            total.ready += t.ready;
            total.delivered += t.delivered;
            total.slowest = total.slowest.min(t.slowest);
            total.failed += t.failed;
            total.closed += t.closed;
            total.reconnected += t.reconnected;
        }
        if !any {
            total.slowest = 0;
        }
        total
    }
}

/// What a worker counted over its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Final {
    pub(crate) delivered: u64,
    /// Offsets skipped (a message never received).
    pub(crate) missed: u64,
    /// Offsets received again.
    pub(crate) duplicates: u64,
    pub(crate) failed: u64,
    pub(crate) closed: usize,
    /// Lowest and highest last offset over the connections.
    pub(crate) last_min: u64,
    pub(crate) last_max: u64,
}

/// One line of a worker's stdout, or an error naming what was wrong.
pub(crate) fn parse_event(line: &str) -> Result<Event, String> {
    serde_json::from_str(line).map_err(|e| format!("bad worker line {line:?}: {e}"))
}

/// One line of a worker's stdin.
pub(crate) fn parse_command(line: &str) -> Result<Command, String> {
    serde_json::from_str(line).map_err(|e| format!("bad command {line:?}: {e}"))
}

/// `value` as one JSON line (without the newline).
pub(crate) fn line<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("protocol types always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_commands_round_trip_as_json_lines() {
        let events = [
            Event::Tick(Tick {
                ready: 5,
                delivered: 10,
                slowest: 2,
                failed: 1,
                closed: 0,
                reconnected: 0,
            }),
            Event::Histograms {
                latency: vec![(100, 3), (2000, 1)],
                back: vec![],
            },
            Event::Final(Final {
                missed: 4,
                ..Final::default()
            }),
        ];
        for e in events {
            let text = line(&e);
            assert!(!text.contains('\n'));
            assert_eq!(parse_event(&text).unwrap(), e);
        }
        for c in [
            Command::Record,
            Command::Report,
            Command::Drop,
            Command::Stop,
        ] {
            assert_eq!(parse_command(&line(&c)).unwrap(), c);
        }
        assert_eq!(parse_command(r#"{"cmd":"drop"}"#).unwrap(), Command::Drop);
    }

    #[test]
    fn bad_lines_are_errors_that_quote_the_line() {
        let err = parse_event("{\"event\":\"tock\"}").unwrap_err();
        assert!(err.contains("tock"), "{err}");
        assert!(parse_command("stop").is_err());
    }

    #[test]
    fn spec_round_trips() {
        let spec = WorkerSpec {
            server: "127.0.0.1:7070".parse().unwrap(),
            dialect: Dialect::SocketIo,
            connections: 5000,
            first_index: 10000,
            per_source: 8000,
            topic: Some("bench.fanout".into()),
            concurrency: 200,
            tick_ms: 20,
            url_topic: true,
        };
        let back: WorkerSpec = serde_json::from_str(&line(&spec)).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn ticks_add_up_with_the_minimum_slowest() {
        let a = Tick {
            ready: 2,
            delivered: 10,
            slowest: 4,
            failed: 1,
            closed: 0,
            reconnected: 1,
        };
        let b = Tick {
            ready: 3,
            delivered: 20,
            slowest: 6,
            failed: 0,
            closed: 1,
            reconnected: 2,
        };
        let s = Tick::sum([&a, &b]);
        assert_eq!(
            (
                s.ready,
                s.delivered,
                s.slowest,
                s.failed,
                s.closed,
                s.reconnected
            ),
            (5, 30, 4, 1, 1, 3)
        );
        assert_eq!(Tick::sum([]).slowest, 0);
    }
}
