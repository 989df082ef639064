//! `tidings-bench`: benchmark programs that print numbers (markdown tables), one subcommand per
//! scenario, each measuring tidings (and, where one exists, a peer server side by side in the
//! same run). Run them with `--release`; they are programs, not tests.

mod echo;
mod peer;
mod socketio;
mod stomp;
mod udp;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tidings-bench",
    about = "Benchmarks of tidings against peer servers (markdown tables)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// WebSocket echo: C connections with messages in flight, echoes/s and server RSS, tidings'
    /// `/echo` vs node `ws`, per message size.
    Echo(echo::Args),
    /// Socket.IO broadcast: N clients in one room, deliveries/s and server memory, tidings
    /// against the official Node socket.io server.
    Socketio(socketio::Args),
    /// STOMP pub/sub throughput and p99 latency: tidings vs RabbitMQ's STOMP plugin.
    Stomp(stomp::Args),
    /// UDP datagrams published and delivered per second, and the loss, at rising send rates.
    Udp(udp::UdpArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().scenario {
        Scenario::Echo(args) => echo::run(args),
        Scenario::Socketio(args) => socketio::run(args),
        Scenario::Stomp(args) => stomp::run(args),
        Scenario::Udp(args) => udp::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidings-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
