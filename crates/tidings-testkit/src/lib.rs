//! # tidings-testkit
//!
//! One place that starts what the integration and interoperability tests talk to, instead
//! of each test file carrying its own copy:
//!
//! - [`server()`]: an in-process [`tidings_server::Server`] on 127.0.0.1 port 0, every
//!   listener off unless the test asks for it;
//! - [`Tidings`], [`start_example()`], [`Process`], [`run()`]: the `tidings` binary or a
//!   cargo example as a child process on free ports, its `... listening on ADDR` lines read,
//!   its output kept for the failure message, killed by PID on drop;
//! - [`interop`]: the third-party client programs in `tests/interop/` (node, the Python venv
//!   of `scripts/install-test-deps.sh`), run with a time limit;
//! - [`http`]: one raw HTTP request on a fresh connection, read until the server closes;
//! - [`line::Line`]: the TCP line protocol as `nc` speaks it (text lines, no codec);
//! - [`redis::Redis`]: a `redis-server` of the test's own on a free port, for the Redis engine.
//!
//! What it does not do: clients built on a codec under test (STOMP frames, UDP datagrams,
//! WebSocket frames stay in their test files, next to what they test), or skipping a test when a dependency is missing
//! (interop tests fail and say what to install).
//!
//! A dev-dependency only (`publish = false`): helpers panic with a message instead of
//! returning errors, because a failed helper is a failed test.

pub mod http;
pub mod interop;
pub mod line;
mod process;
pub mod redis;
mod server;
pub mod stomp;

pub use process::{example, run, start_example, Finished, Process, Serve, Tidings};
pub use server::{local, server, ServerBuilder};
