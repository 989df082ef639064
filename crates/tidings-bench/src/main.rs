//! `tidings-bench`: benchmark programs that print numbers, each measuring tidings against
//! a peer server in the same run. Not part of CI. One subcommand per protocol.

mod socketio;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tidings-bench",
    about = "Benchmarks of tidings against peer servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Socket.IO broadcast: N clients in one room, deliveries/s and server memory, tidings
    /// against the official Node socket.io server.
    Socketio(socketio::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Socketio(args) => socketio::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidings-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
