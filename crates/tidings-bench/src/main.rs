//! `tidings-bench`: benchmark programs that print numbers (markdown tables), one subcommand per
//! scenario, each measuring tidings and the peer servers users would pick instead, side by
//! side in the same run. Run them with `--release`; they are programs, not tests.
//!
//! The suite scenarios (capacity, echo, fanout, storm, all) share one load generator:
//! `client` (the WebSocket client and its dialects), `fleet` + `worker` + `counters` + `protocol` (worker
//! processes holding the connections), `publisher`, `peer` + `target` (the servers), `stats`,
//! `progress` and `report` (markdown tables and SVG charts).

mod capacity;
mod client;
mod cluster;
mod counters;
mod echo;
mod fanout;
mod fleet;
mod hostile;
mod peer;
mod progress;
mod protocol;
mod publisher;
mod report;
mod socketio;
mod sockjs;
mod stats;
mod stomp;
mod storm;
mod suite;
mod target;
mod tls;
mod udp;
mod worker;
mod ws_handshake;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tidings-bench",
    about = "Benchmarks of tidings against peer servers (markdown tables, SVG charts)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// The suite: capacity, echo, fanout and storm with defaults that fit in ~15 minutes,
    /// results in bench/results/<scenario>/.
    All(suite::Args),
    /// Idle WebSocket connections: connection rate and server RSS per connection.
    Capacity(capacity::Args),
    /// WebSocket echo: C connections with messages in flight, echoes/s, server CPU per echo,
    /// tidings' `/echo` vs node `ws`, per message size.
    Echo(echo::Args),
    /// Broadcast fan-out: one publisher to S subscribers; deliveries/s at saturation and
    /// latency percentiles at fixed rates.
    Fanout(fanout::Args),
    /// Several nodes on one Redis (issue 17): 1, 2, 3 tidings nodes against node socket.io
    /// on its Redis adapters; deliveries/s, p99, CPU of the nodes and of redis-server.
    Cluster(cluster::Args),
    /// Reconnect storm: drop every subscriber at once; time until they are back, messages
    /// missed with resume.
    Storm(storm::Args),
    /// Socket.IO broadcast: N clients in one room, deliveries/s and server memory, tidings
    /// against the official Node socket.io server.
    Socketio(socketio::Args),
    /// SockJS broadcast over websocket, xhr-streaming and xhr-polling: deliveries/s, latency,
    /// server RSS and CPU and the load generator's CPU share, tidings against sockjs-node.
    Sockjs(sockjs::Args),
    /// STOMP pub/sub throughput and p99 latency: tidings vs RabbitMQ's STOMP plugin.
    Stomp(stomp::Args),
    /// UDP datagrams published and delivered per second, and the loss, at rising send rates.
    Udp(udp::UdpArgs),
    /// Hostile clients (deflate bombs, readers that read nothing, password guessing,
    /// connection floods, invented topics) against each server binary given: what they make
    /// it hold.
    Hostile(hostile::Args),
    /// A load-generator worker process (started by the scenarios themselves).
    #[command(hide = true)]
    Worker(worker::Args),
    /// A SockJS load-generator worker process (started by `sockjs`).
    #[command(hide = true)]
    SockjsWorker(sockjs::WorkerArgs),
    /// One SockJS session of the benchmark's client printing what it receives (for the test
    /// that holds it next to sockjs-client).
    #[command(hide = true)]
    SockjsProbe(sockjs::ProbeArgs),
    /// The least a WebSocket server does per reconnect (started by `storm` as its floor).
    #[command(hide = true)]
    StormFloor,
}

fn main() -> ExitCode {
    let result = match Cli::parse().scenario {
        Scenario::All(args) => suite::run(args),
        Scenario::Capacity(args) => capacity::run(args),
        Scenario::Echo(args) => echo::run(args),
        Scenario::Fanout(args) => fanout::run(args),
        Scenario::Cluster(args) => cluster::run(args),
        Scenario::Storm(args) => storm::run(args),
        Scenario::Socketio(args) => socketio::run(args),
        Scenario::Stomp(args) => stomp::run(args),
        Scenario::Udp(args) => udp::run(args),
        Scenario::Hostile(args) => hostile::run(args),
        Scenario::Worker(args) => worker::run(args),
        Scenario::Sockjs(args) => sockjs::run(args),
        Scenario::SockjsWorker(args) => sockjs::worker(args),
        Scenario::SockjsProbe(args) => sockjs::probe(args),
        Scenario::StormFloor => storm::floor(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidings-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
