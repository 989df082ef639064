#!/usr/bin/env bash
# The benchmark suite (capacity, echo, fan-out, reconnect storm) with the defaults of
# `tidings-bench all` (~15 minutes on the 2-core machine): builds the release binaries,
# installs the node peers, then writes tables and SVG charts into bench/results/<scenario>/
# and prints the tables. Extra arguments go to `tidings-bench all` (e.g. --runs 1).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p tidings-cli -p tidings-bench
[ -d bench/peers/node_modules ] || (cd bench/peers && npm ci)
exec target/release/tidings-bench all --results bench/results "$@"
