//! `tidings-bench`: benchmark scenarios, one subcommand each, each printing a markdown table.
//! Run them with `--release`; they are programs that print numbers, not tests.

mod udp;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tidings-bench",
    about = "Benchmarks of tidings (markdown tables)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// UDP datagrams published and delivered per second, and the loss, at rising send rates.
    Udp(udp::UdpArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().scenario {
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
