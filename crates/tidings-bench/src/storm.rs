//! `tidings-bench storm`: N subscribers of one topic while a publisher publishes steadily;
//! then every worker drops all its connections at once (abrupt resets) and each subscriber
//! reconnects and resubscribes resuming after the last offset it got. Measured: time from the
//! drop until 50/90/99/100 % are back and resubscribed, failed handshakes, and, by each
//! subscriber checking that offsets follow each other across the storm, messages missed and
//! duplicated.

mod floor;

use crate::fleet::{self, Fleet, Spread};
use crate::peer::{self, Peer};
use crate::progress;
use crate::protocol::Command;
use crate::publisher::{Publisher, PublisherSpec};
use crate::report::{LineChart, Output, Table};
use crate::stats::median;
use crate::target::{Common, Target};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TOPIC: &str = "bench.storm";

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Subscribers.
    #[arg(long, default_value_t = 15_000)]
    pub(crate) subscribers: usize,
    /// Servers (node ws has no resume: its missed messages are expected).
    #[arg(long, value_delimiter = ',', default_value = "tidings,node-ws")]
    pub(crate) targets: Vec<Target>,
    /// Runs per server; tables show medians.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Messages per second published throughout (15,000 subscribers x 2/s = 30,000
    /// deliveries/s, within what every server measured sustains on the shared machine; at
    /// 100/s, 1.5 million deliveries/s, none keeps up).
    #[arg(long, default_value_t = 2.0)]
    pub(crate) rate: f64,
    /// Seconds of publishing before the drop and after everyone is back.
    #[arg(long, default_value_t = 2)]
    pub(crate) steady: u64,
    /// Handshakes in flight per worker while reconnecting.
    #[arg(long, default_value_t = 256)]
    pub(crate) concurrency: usize,
    /// Connections per worker process.
    #[arg(long, default_value_t = 5000)]
    pub(crate) per_worker: usize,
    /// Connections per source address 127.0.0.x. Half of tidings' default
    /// `limits.max_connections_per_ip` (1000): in a storm an address's new connections
    /// arrive before the server has read the resets of its old ones, and at 1000 per address
    /// hundreds of handshakes were refused by the per-address limit and retried (15k real
    /// clients come from many more addresses).
    #[arg(long, default_value_t = 500)]
    pub(crate) per_source: usize,
    /// Another tidings binary (say, one built from an older commit) measured in the same run
    /// as "tidings (baseline)", alternating with the targets, so a change's effect is seen
    /// side by side on the same machine load.
    #[arg(long)]
    pub(crate) baseline: Option<std::path::PathBuf>,
    /// How tidings (not the baseline, which may predate it) is subscribed: `frame` sends
    /// `subscribe` after `hello`; `url` names the topic and where to resume on the upgrade URL
    /// (`/ws?topic=..&since=..&epoch=..`: one round trip, and one read and one write fewer on
    /// the server per reconnect); `both` measures each as its own row.
    #[arg(long, value_enum, default_value = "both")]
    pub(crate) tidings_subscribe: SubscribeWay,
    /// Also measure the machine's floor: an epoll loop that only accepts, answers the upgrade
    /// and the URL's topic in one write, and closes on reset (`storm/floor.rs`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) floor: bool,
}

/// The hidden `storm-floor` subcommand.
pub(crate) fn floor() -> Result<(), String> {
    floor::run()
}

/// How a tidings subscriber names its topic (`--tidings-subscribe`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscribeWay {
    Frame,
    Url,
    Both,
}

/// A server measured: which kind, under which name, started from which binaries.
struct Entry {
    target: Target,
    name: String,
    common: Common,
    /// Topic on the upgrade URL instead of a `subscribe` frame.
    url_topic: bool,
    /// The floor (`storm/floor.rs`) rather than `target`.
    floor: bool,
}

/// The targets (tidings once per way of subscribing asked for), then the baseline binary
/// when given.
fn entries(args: &Args) -> Vec<Entry> {
    let mut all = Vec::new();
    for &target in &args.targets {
        let entry = |name: String, url_topic| Entry {
            target,
            name,
            common: args.common.clone(),
            url_topic,
            floor: false,
        };
        match (target, args.tidings_subscribe) {
            (Target::Tidings, SubscribeWay::Url) => {
                all.push(entry(format!("{} ?topic=", target.name()), true))
            }
            (Target::Tidings, SubscribeWay::Both) => {
                all.push(entry(target.name().into(), false));
                all.push(entry(format!("{} ?topic=", target.name()), true));
            }
            _ => all.push(entry(target.name().into(), false)),
        }
    }
    if let Some(binary) = &args.baseline {
        all.push(Entry {
            target: Target::Tidings,
            name: "tidings (baseline)".into(),
            common: Common {
                tidings: Some(binary.clone()),
                ..args.common.clone()
            },
            url_topic: false,
            floor: false,
        });
    }
    if args.floor {
        all.push(Entry {
            target: Target::Tidings,
            name: "machine floor (epoll loop)".into(),
            common: args.common.clone(),
            url_topic: true,
            floor: true,
        });
    }
    all
}

#[derive(Debug, Clone)]
struct Sample {
    /// Time from the drop to 50, 90, 99 and 100 % back (ms).
    back_ms: [f64; 4],
    /// (ms, % back) for the chart.
    curve: Vec<(f64, f64)>,
    failed: u64,
    missed: u64,
    duplicates: u64,
    /// Whether some subscriber's last offset was short of the last published one 5 s after
    /// the publisher stopped.
    behind: bool,
    published: u64,
    server_cpu_secs: f64,
    /// Share of its core the load generator used from the drop until all were back.
    client_cpu: f64,
    /// Subscribers back within the storm's 30 s.
    reconnected: u64,
}

pub(crate) fn run(args: Args) -> Result<(), String> {
    args.common.pin_load_generator()?;
    let load = crate::stats::load_average();
    let mut results: Vec<(Entry, Vec<Sample>)> = entries(&args)
        .into_iter()
        .map(|e| (e, Vec::new()))
        .collect();
    for run in 1..=args.runs {
        for (entry, samples) in results.iter_mut() {
            let s = measure(&args, entry)?;
            eprintln!(
                "storm run {run} {:18} 99% back {:.0} ms, all {:.0} ms, failed {}, missed {}, duplicates {}, server CPU {:.1} µs per reconnect, client CPU {:.0} %",
                entry.name,
                s.back_ms[2],
                s.back_ms[3],
                s.failed,
                s.missed,
                s.duplicates,
                s.gross_us(),
                s.client_cpu * 100.0
            );
            samples.push(s);
        }
    }
    report(&args, &results, load)
}

fn measure(args: &Args, entry: &Entry) -> Result<Sample, String> {
    let (target, name) = (entry.target, entry.name.as_str());
    let server = if entry.floor {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("storm-floor");
        Peer::start(
            &mut peer::pinned(cmd, Some(entry.common.server_cpu)),
            floor::BANNER,
        )?
    } else {
        target.start(&entry.common)?
    };
    let addr: SocketAddr = server.addr.parse().map_err(|e| format!("{e}"))?;
    let n = args.subscribers;
    let mut specs = fleet::plan(
        addr,
        target.dialect(),
        n,
        Some(TOPIC),
        Spread {
            per_worker: args.per_worker,
            per_source: args.per_source,
            concurrency: args.concurrency,
        },
    );
    for spec in &mut specs {
        spec.url_topic = entry.url_topic;
    }
    let mut fleet = Fleet::spawn(&specs)?;
    fleet.wait_ready(
        &format!("{name} {n} subscribing"),
        n,
        Duration::from_secs(180),
    )?;
    let publisher = Publisher::start(
        PublisherSpec {
            server: addr,
            dialect: target.dialect(),
            topic: TOPIC.into(),
            payload: 64,
            rate: Some(args.rate),
            window: None,
            batch: 1,
        },
        0,
        || 0,
    );
    std::thread::sleep(Duration::from_secs(args.steady));
    let failed_before = fleet.totals().failed;
    let (cpu0, client0) = (server.cpu_secs(), fleet.cpu_secs());
    fleet.send(Command::Drop)?;
    let dropped = Instant::now();
    let bar = progress::count_bar(&format!("{name} reconnecting"), n as u64);
    let timeout = Duration::from_secs(30);
    loop {
        let back = fleet.totals().reconnected;
        bar.set_position(back);
        if back >= n as u64 || dropped.elapsed() > timeout {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bar.finish_and_clear();
    let (cpu1, client1) = (server.cpu_secs(), fleet.cpu_secs());
    let storm_secs = dropped.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(args.steady));
    let published = publisher.stop()?;
    // Let the last messages arrive: with resume, each subscriber's count of distinct offsets
    // reaches what was published (the topic was new, its offsets start at 1).
    let deadline = Instant::now() + Duration::from_secs(5);
    while fleet.totals().slowest < published && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, back) = fleet.histograms()?;
    let finals = fleet.stop()?;
    let sum = |f: fn(&crate::protocol::Final) -> u64| finals.iter().map(f).sum::<u64>();
    let last_min = finals.iter().map(|f| f.last_min).min().unwrap_or(0);
    Ok(Sample {
        back_ms: back_times(&back, n),
        curve: curve(&back, n),
        reconnected: back.len(),
        failed: sum(|f| f.failed) - failed_before,
        missed: sum(|f| f.missed),
        duplicates: sum(|f| f.duplicates),
        behind: last_min < published,
        published,
        server_cpu_secs: cpu1 - cpu0,
        client_cpu: (client1 - client0) / storm_secs,
    })
}

impl Sample {
    /// Server CPU µs per reconnect: all of the storm's CPU over the subscribers that came
    /// back (fewer than `n` when the storm timed out: dividing by `n` would flatter a server
    /// that left some out).
    fn gross_us(&self) -> f64 {
        self.server_cpu_secs * 1e6 / self.reconnected.max(1) as f64
    }
}

/// Milliseconds until 50, 90, 99 and 100 % of `n` were back (infinite when never).
fn back_times(back: &Histogram<u64>, n: usize) -> [f64; 4] {
    [0.5, 0.9, 0.99, 1.0].map(|q| {
        let needed = (q * n as f64).ceil() as u64;
        if back.len() < needed {
            return f64::INFINITY;
        }
        // The quantile among those that came back, scaled to all n.
        back.value_at_quantile(needed as f64 / back.len() as f64) as f64 / 1000.0
    })
}

/// (ms, % of n back) at each recorded value.
fn curve(back: &Histogram<u64>, n: usize) -> Vec<(f64, f64)> {
    let mut points = vec![(0.0, 0.0)];
    let mut seen = 0u64;
    for v in back.iter_recorded() {
        seen += v.count_at_value();
        points.push((
            v.value_iterated_to() as f64 / 1000.0,
            seen as f64 * 100.0 / n as f64,
        ));
    }
    points
}

fn ms(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "never".into()
    }
}

fn report(args: &Args, results: &[(Entry, Vec<Sample>)], load: f64) -> Result<(), String> {
    let mut out = Output::new(args.common.out.as_deref())?;
    out.note(&crate::stats::load_note(load));
    out.note(&format!(
        "{} subscribers of one topic ({} per worker process), a publisher at {} messages/s throughout; every worker resets all its connections at once, then each reconnects and resubscribes at once with `since` = the last offset it got ({} handshakes in flight per worker; a failed attempt is retried after 50 ms x attempts). Times from the drop; median of {} runs, servers alternating.",
        args.subscribers, args.per_worker, args.rate, args.concurrency, args.runs
    ));
    let mut table = Table::new(&[
        "server",
        "50 % back (ms)",
        "90 %",
        "99 %",
        "100 %",
        "failed handshakes",
        "missed",
        "duplicates",
        "all caught up",
        "published",
        "server CPU s in storm",
        "server CPU µs per reconnect",
        "client CPU in storm",
    ]);
    let mut series = Vec::new();
    for (entry, samples) in results {
        let m = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f));
        table.row(vec![
            entry.name.clone(),
            ms(m(&|s| s.back_ms[0])),
            ms(m(&|s| s.back_ms[1])),
            ms(m(&|s| s.back_ms[2])),
            ms(m(&|s| s.back_ms[3])),
            format!("{:.0}", m(&|s| s.failed as f64)),
            format!("{:.0}", m(&|s| s.missed as f64)),
            format!("{:.0}", m(&|s| s.duplicates as f64)),
            format!(
                "{} of {} runs",
                samples.iter().filter(|s| !s.behind).count(),
                samples.len()
            ),
            format!("{:.0}", m(&|s| s.published as f64)),
            format!("{:.2}", m(&|s| s.server_cpu_secs)),
            format!("{:.1}", m(&|s| s.gross_us())),
            format!("{:.0} %", m(&|s| s.client_cpu) * 100.0),
        ]);
        // The run with the median 99 % time stands for the server in the chart.
        let mut by_p99: Vec<&Sample> = samples.iter().collect();
        by_p99.sort_by(|a, b| a.back_ms[2].total_cmp(&b.back_ms[2]));
        if let Some(s) = by_p99.get(by_p99.len() / 2) {
            series.push((entry.name.clone(), s.curve.clone()));
        }
    }
    out.table(&table);
    out.note("missed: offsets a subscriber never received (gaps across the storm); duplicates: offsets received twice; all caught up: runs in which every subscriber had the last published offset within 5 s of the last publish; server CPU µs per reconnect: the server's CPU from the drop until all were back over the subscribers. It includes the fan-out of the messages published meanwhile: each subscriber back gets what it missed with its subscribe's reply, in one write.");
    out.line_chart(
        "reconnect",
        &LineChart {
            title: format!(
                "Reconnect storm: {} subscribers back and resubscribed",
                args.subscribers
            ),
            x_label: "ms after the drop".into(),
            y_label: "% back".into(),
            series,
        },
    )?;
    out.finish("Reconnect storm")
}
