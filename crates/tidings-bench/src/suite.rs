//! `tidings-bench all`: the suite with defaults that fit in about 15 minutes on the 2-core
//! machine, each scenario's tables and charts in `<results>/<scenario>/`.

use crate::target::{Common, Target};
use crate::{capacity, echo, fanout, storm};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    common: Common,
    /// The folder for every scenario's results.
    #[arg(long, default_value = "bench/results")]
    results: PathBuf,
    /// Runs per measurement (medians); fan-out gets at most 2 to stay within the time.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

pub(crate) fn run(args: Args) -> Result<(), String> {
    let common = |scenario: &str| Common {
        out: Some(args.results.join(scenario)),
        ..args.common.clone()
    };
    println!("## Capacity\n");
    capacity::run(capacity::Args {
        common: common("capacity"),
        connections: 10_000,
        targets: vec![
            Target::Tidings,
            Target::NodeWs,
            Target::TidingsSocketio,
            Target::Socketio,
        ],
        runs: args.runs,
        settle: 2,
        per_worker: 5000,
        per_source: crate::fleet::PER_SOURCE,
    })?;
    println!("## Echo\n");
    echo::run(echo::Args {
        common: common("echo"),
        connections: 100,
        sizes: vec![20, 16384],
        window: 8,
        seconds: 5,
        runs: args.runs,
        threads: 2,
    })?;
    println!("## Broadcast fan-out\n");
    fanout::run(fanout::Args {
        common: common("fanout"),
        subscribers: vec![1000, 5000, 15_000],
        targets: vec![Target::Tidings, Target::NodeWs, Target::Socketio],
        runs: args.runs.min(2),
        seconds: 5,
        warmup: 2,
        latency_rates: vec![10.0, 100.0],
        latency_seconds: 4,
        payload: 64,
        window: 64,
        per_worker: 5000,
    })?;
    println!("## Reconnect storm\n");
    storm::run(storm::Args {
        common: common("storm"),
        subscribers: 15_000,
        targets: vec![Target::Tidings, Target::NodeWs],
        runs: args.runs,
        rate: 2.0,
        steady: 2,
        concurrency: 256,
        per_worker: 5000,
        per_source: 500,
        baseline: None,
        tidings_subscribe: storm::SubscribeWay::Both,
        floor: true,
    })
}
