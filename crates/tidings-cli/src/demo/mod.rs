//! `tidings demo ...`: feeds that make the demo pages move.

pub(crate) mod ticker;

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    #[command(subcommand)]
    demo: Demo,
}

#[derive(Subcommand, Debug)]
enum Demo {
    /// Publish simulated stock prices on prices.<SYMBOL> (a random walk) to a server; open
    /// http://127.0.0.1:7070/ticker to watch them.
    Ticker(ticker::TickerArgs),
}

pub(crate) async fn run(args: DemoArgs) -> Result<(), String> {
    match args.demo {
        Demo::Ticker(args) => ticker::run(args).await,
    }
}
