//! STOMP interoperability: the real `tidings` binary (every listener on 127.0.0.1 port 0)
//! against the real third-party STOMP clients in `tests/interop/`: stomp.py over TCP and over
//! WebSocket, `@stomp/stompjs` over WebSocket (node `ws`) and over TCP (`@stomp/tcp-wrapper`).
//!
//! Each program runs every scenario the broker promises (pub/sub with wildcards, queues in
//! each ack mode with redelivery and NACK, transactions, receipts, heart-beats, binary bodies,
//! and cross-protocol traffic with the TCP line protocol and native WebSocket clients) and
//! prints `ok: ...` per scenario. The packages are installed by
//! `scripts/install-test-deps.sh`; when they are missing these tests fail (they never skip).

use std::process::Command;
use std::time::Duration;

use tidings_testkit::{interop, Process, Tidings};

const TIDINGS: Tidings = Tidings(env!("CARGO_BIN_EXE_tidings"));

/// How long one client program may run (each caps itself at 40 s).
const PROGRAM_LIMIT: Duration = Duration::from_secs(60);

/// Short heart-beats so the programs can show a silent peer being dropped in a second.
const CONFIG: &str = "[stomp_broker]\nheart_beat_send_ms = 200\nheart_beat_receive_ms = 200\n";

/// A running `tidings serve` with every listener but UDP; killed (and its output shown if
/// the test failed) on drop.
struct Server {
    /// Held for its drop, which kills the server.
    _process: Process,
    http: String,
    tcp: String,
    stomp: String,
}

impl Server {
    fn start() -> Server {
        let process = TIDINGS.serve().http().tcp().stomp().config(CONFIG).start();
        Server {
            http: process.addr("http").to_owned(),
            tcp: process.addr("tcp").to_owned(),
            stomp: process.addr("stomp").to_owned(),
            _process: process,
        }
    }
}

/// The venv's python with stomp.py and websockets; fails loudly without them.
fn python() -> Command {
    interop::python("stomp, websockets")
}

/// `node` with @stomp/stompjs, @stomp/tcp-wrapper and ws in tests/interop/node_modules.
fn node() -> Command {
    interop::node(&["@stomp/stompjs", "@stomp/tcp-wrapper", "ws"])
}

/// Runs a client program to completion within PROGRAM_LIMIT and asserts it succeeded and
/// printed its final `ok: all ...` line; its output is echoed (visible with `--nocapture`).
/// The server's output is shown by its drop when this fails.
fn run_program(cmd: Command, what: &str) {
    interop::run(cmd, what, PROGRAM_LIMIT).assert_passed("ok: all ");
}

fn python_program(transport: &str) {
    let server = Server::start();
    let target = match transport {
        "tcp" => server.stomp.clone(),
        _ => server.http.clone(),
    };
    let mut cmd = python();
    cmd.arg("py_stomp_client.py")
        .args([transport, &target, "--line", &server.tcp, "--ws"])
        .arg(format!("ws://{}/ws", server.http));
    run_program(cmd, &format!("py_stomp_client.py {transport}"));
}

fn node_program(transport: &str) {
    let server = Server::start();
    let target = match transport {
        "tcp" => server.stomp.clone(),
        _ => format!("ws://{}/stomp", server.http),
    };
    let mut cmd = node();
    cmd.arg("node_stomp_client.mjs")
        .args([transport, &target, "--line", &server.tcp, "--native"])
        .arg(format!("ws://{}/ws", server.http));
    run_program(cmd, &format!("node_stomp_client.mjs {transport}"));
}

#[test]
fn stomp_py_over_tcp() {
    python_program("tcp");
}

#[test]
fn stomp_py_over_websocket() {
    python_program("ws");
}

#[test]
fn stompjs_over_websocket() {
    node_program("ws");
}

#[test]
fn stompjs_over_tcp_wrapper() {
    node_program("tcp");
}
