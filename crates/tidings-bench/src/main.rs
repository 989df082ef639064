//! `tidings-bench`: benchmark programs that print numbers (markdown tables), one subcommand per
//! scenario, each measuring tidings and a peer server side by side in the same run.

mod stomp;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tidings-bench",
    about = "Benchmarks of tidings against peer servers"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// STOMP pub/sub throughput and p99 latency: tidings vs RabbitMQ's STOMP plugin.
    Stomp(stomp::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.scenario {
        Scenario::Stomp(args) => stomp::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidings-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
