#!/usr/bin/env bash
# Takes the README's screenshots of the demo pages: builds tidings, starts
# `tidings serve --demo-ticker` on free ports, drives headless Chromium
# (tests/interop/screenshots.mjs) and writes docs/img/chat.png, docs/img/ticker.png and
# docs/img/admin.png (the dashboard, with a throwaway admin account).
# Needs scripts/install-test-deps.sh (playwright-core, Debian chromium).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build -q -p tidings-cli
out=$(mktemp)
config=$(mktemp --suffix=.toml)
hash=$(echo screenshot-admin | target/debug/tidings hash-password)
printf '[[admin.users]]\nname = "root"\npassword_hash = "%s"\n' "$hash" >"$config"
target/debug/tidings serve --config "$config" --http 127.0.0.1:0 --tcp 127.0.0.1:0 --udp off --stomp off --demo-ticker >"$out" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$out" "$config"' EXIT
for _ in $(seq 100); do
  grep -q "http listening" "$out" && break
  sleep 0.1
done
http=$(sed -n 's/^tidings: http listening on //p' "$out")
[[ -n $http ]] || { cat "$out"; echo "screenshots: the server did not start" >&2; exit 1; }
mkdir -p docs/img
(cd tests/interop && node screenshots.mjs "http://$http" "$root/docs/img" root screenshot-admin)
