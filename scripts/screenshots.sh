#!/usr/bin/env bash
# Takes the README's screenshots of the demo pages: builds tidings, starts
# `tidings serve --demo-ticker` on free ports, drives headless Chromium
# (tests/interop/screenshots.mjs) and writes docs/img/chat.png and docs/img/ticker.png.
# Needs scripts/install-test-deps.sh (playwright-core, Debian chromium).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build -q -p tidings-cli
out=$(mktemp)
target/debug/tidings serve --http 127.0.0.1:0 --tcp off --udp off --stomp off --demo-ticker >"$out" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do
  grep -q "http listening" "$out" && break
  sleep 0.1
done
http=$(sed -n 's/^tidings: http listening on //p' "$out")
[[ -n $http ]] || { cat "$out"; echo "screenshots: the server did not start" >&2; exit 1; }
mkdir -p docs/img
(cd tests/interop && node screenshots.mjs "http://$http" "$root/docs/img")
