//! The tables, ratios and charts of `tidings-bench cluster`, from the medians of its samples.

use super::nodes::Node;
use super::{Args, Sample};
use crate::report::{BarChart, Output, Table};
use crate::stats::{self, median};

/// The median of `f` over `samples`.
fn med(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    median(samples.iter().map(f))
}

/// `results[target][node count]` as tables (stdout and `<out>/results.md`) and charts.
pub(super) fn write(args: &Args, results: &[Vec<Vec<Sample>>], load: f64) -> Result<(), String> {
    let mut out = Output::new(args.common.out.as_deref())?;
    out.note(&stats::load_note(load));
    out.note(&format!(
        "{} subscribers of one topic spread evenly over the nodes, one publisher on the first node, {} B payloads, one redis-server; nodes and redis-server pinned to CPU {}, the load generator to CPU {}. Saturation: the publisher at most {} messages ahead of the slowest subscriber, {} s measured after {} s. Fixed rate: {} messages/s ({} deliveries/s offered), {} s recorded. Latency is publish-to-delivery (the send time travels in the payload). Median of {} run(s). The Socket.IO rows use the same Socket.IO clients for every server; `tidings /ws` is tidings' native protocol.",
        args.subscribers,
        args.payload,
        args.common.server_cpu,
        args.common.client_cpu,
        args.window,
        args.seconds,
        args.warmup,
        args.rate,
        args.rate * args.subscribers as f64,
        args.rate_seconds,
        args.runs
    ));
    let mut saturated = Table::new(&[
        "cluster",
        "nodes",
        "deliveries/s",
        "vs 1 node",
        "p50 ms",
        "p99 ms",
        "nodes CPU",
        "redis CPU",
        "server CPU µs per delivery",
        "nodes RSS MiB",
        "redis RSS MiB",
        "client CPU",
        "missed / dup / closed",
    ]);
    for (ti, target) in args.targets.iter().enumerate() {
        let one = args
            .nodes
            .iter()
            .position(|&n| n == 1)
            .map(|i| med(&results[ti][i], |s| s.deliveries_per_sec));
        for (ni, &n) in args.nodes.iter().enumerate() {
            let s = &results[ti][ni];
            let rate = med(s, |x| x.deliveries_per_sec);
            let cpu = med(s, |x| x.nodes_cpu) + med(s, |x| x.redis_cpu);
            let losses: (u64, u64, usize) = s.iter().fold((0, 0, 0), |a, x| {
                (a.0 + x.missed, a.1 + x.duplicates, a.2 + x.closed)
            });
            saturated.row(vec![
                target.name().into(),
                n.to_string(),
                format!("{rate:.0}"),
                match one {
                    Some(o) if o > 0.0 && n != 1 => format!("{:.2}x", rate / o),
                    _ => String::new(),
                },
                format!("{:.2}", med(s, |x| x.saturated.p50_ms)),
                format!("{:.2}", med(s, |x| x.saturated.p99_ms)),
                percent(med(s, |x| x.nodes_cpu)),
                percent(med(s, |x| x.redis_cpu)),
                format!("{:.2}", cpu * 1e6 / rate.max(1.0)),
                format!("{:.1}", med(s, |x| x.nodes_rss_mib)),
                format!("{:.1}", med(s, |x| x.redis_rss_mib)),
                percent(med(s, |x| x.client_cpu)),
                format!("{} / {} / {}", losses.0, losses.1, losses.2),
            ]);
        }
    }
    out.table(&saturated);

    let mut paced = Table::new(&[
        "cluster",
        "nodes",
        "offered deliveries/s",
        "achieved deliveries/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
    ]);
    for (ti, target) in args.targets.iter().enumerate() {
        for (ni, &n) in args.nodes.iter().enumerate() {
            let s = &results[ti][ni];
            paced.row(vec![
                target.name().into(),
                n.to_string(),
                format!("{:.0}", args.rate * args.subscribers as f64),
                format!("{:.0}", med(s, |x| x.paced_deliveries_per_sec)),
                format!("{:.2}", med(s, |x| x.paced.p50_ms)),
                format!("{:.2}", med(s, |x| x.paced.p99_ms)),
                format!("{:.2}", med(s, |x| x.paced.p999_ms)),
                format!("{:.2}", med(s, |x| x.paced.max_ms)),
            ]);
        }
    }
    out.table(&paced);

    for line in comparisons(args, results) {
        out.note(&line);
    }

    let categories: Vec<String> = args
        .nodes
        .iter()
        .map(|n| format!("{n} node{}", if *n == 1 { "" } else { "s" }))
        .collect();
    let series = |f: fn(&Sample) -> f64| -> Vec<(String, Vec<f64>)> {
        args.targets
            .iter()
            .enumerate()
            .map(|(ti, t)| {
                let values = (0..args.nodes.len())
                    .map(|ni| med(&results[ti][ni], f))
                    .collect();
                (t.name().to_owned(), values)
            })
            .collect()
    };
    out.bar_chart(
        "deliveries",
        &BarChart {
            title: "Nodes on one Redis: deliveries per second at saturation".into(),
            y_label: "deliveries/s".into(),
            categories: categories.clone(),
            series: series(|s| s.deliveries_per_sec),
        },
    )?;
    out.bar_chart(
        "latency-p99",
        &BarChart {
            title: format!(
                "Nodes on one Redis: p99 publish-to-delivery at {}/s (lower is better)",
                args.rate
            ),
            y_label: "ms".into(),
            categories,
            series: series(|s| s.paced.p99_ms),
        },
    )?;
    out.finish("Several nodes on one Redis")
}

/// One line per node count: tidings' Socket.IO cluster against each socket.io cluster (the
/// same clients), deliveries/s and saturated p99.
fn comparisons(args: &Args, results: &[Vec<Vec<Sample>>]) -> Vec<String> {
    let Some(base) = args
        .targets
        .iter()
        .position(|&t| t == Node::Tidings)
        .or_else(|| args.targets.iter().position(|t| t.is_tidings()))
    else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for (ni, &n) in args.nodes.iter().enumerate() {
        let b = &results[base][ni];
        for (ti, target) in args.targets.iter().enumerate() {
            if target.is_tidings() {
                continue;
            }
            let p = &results[ti][ni];
            let rate = |s: &[Sample]| med(s, |x| x.deliveries_per_sec);
            let p99 = |s: &[Sample]| med(s, |x| x.saturated.p99_ms);
            let paced = |s: &[Sample]| med(s, |x| x.paced.p99_ms);
            lines.push(format!(
                "{n} node(s): {} is {:.1}x {} in deliveries/s; p99 {:.2} vs {:.2} ms saturated, {:.2} vs {:.2} ms at {}/s.",
                args.targets[base].name(),
                rate(b) / rate(p).max(1e-9),
                target.name(),
                p99(b),
                p99(p),
                paced(b),
                paced(p),
                args.rate
            ));
        }
    }
    lines
}

fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}
