#!/usr/bin/env bash
# SockJS broadcast benchmark: tidings vs sockjs-node, side by side, same run, same machine.
# C real sockjs-client connections (in W node processes) per transport receive every message a
# publisher sends at R msg/s; each pair of runs alternates the servers; medians of N rounds.
# The server is pinned to CPU 0 and the load generator to CPU 1 (taskset).
#   bench/sockjs/run.sh [CLIENTS=1000] [RATE=100] [SECONDS=10] [ROUNDS=3]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
CLIENTS=${CLIENTS:-1000} RATE=${RATE:-100} SECONDS_=${SECONDS:-10} ROUNDS=${ROUNDS:-3}
(cd "$root/bench/sockjs" && [[ -d node_modules ]] || npm install --no-audit --no-fund --loglevel=error)
(cd "$root/bench/peers" && [[ -d node_modules ]] || npm install --no-audit --no-fund --loglevel=error)
cargo build --release -p tidings-cli --manifest-path "$root/Cargo.toml" >&2
ulimit -n 20000 || true
out=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

start() { # start KIND -> sets url pid
  local log=$out/$1.log
  if [[ $1 == tidings ]]; then
    taskset -c 0 "$root/target/release/tidings" serve --http 127.0.0.1:0 --tcp off --udp off --stomp off > "$log" 2>&1 &
  else
    taskset -c 0 node "$root/bench/peers/sockjs-node-server.js" 0 > "$log" 2>&1 &
  fi
  pid=$!; pids+=("$pid")
  for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
  url="http://$(grep -o '127.0.0.1:[0-9]*' "$log" | head -1)/sockjs"
}

results=$out/results.jsonl
for transport in xhr-streaming xhr-polling; do
  for round in $(seq "$ROUNDS"); do
    for server in tidings sockjs-node; do
      start "$server"
      taskset -c 1 node "$root/bench/sockjs/bench.mjs" --url "$url" --pid "$pid" --tidings "$([[ $server == tidings ]] && echo 1 || echo 0)" \
        --transport "$transport" --clients "$CLIENTS" --rate "$RATE" --seconds "$SECONDS_" | tail -1 | tee -a "$results" >&2
      kill "$pid"; wait "$pid" 2>/dev/null || true
    done
  done
done

python3 - "$results" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("| transport | server | deliveries/s (median) | delivered of expected | p50 ms | p99 ms | RSS idle MiB | RSS peak MiB |")
print("|---|---|---|---|---|---|---|---|")
for t in ["xhr-streaming", "xhr-polling"]:
    for s in ["tidings", "sockjs-node"]:
        r = [x for x in rows if x["transport"] == t and x["server"] == s]
        if not r: continue
        med = lambda k: st.median(x[k] for x in r)
        print(f"| {t} | {s} | {med('deliveries_per_s'):.0f} | {sum(x['received'] for x in r)/max(1,sum(x['expected'] for x in r)):.1%} | {med('p50_ms'):.0f} | {med('p99_ms'):.0f} | {med('rss_idle_mib'):.1f} | {med('rss_peak_mib'):.1f} |")
PY
