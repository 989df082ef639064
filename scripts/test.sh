#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run execs this):
#   1. install test dependencies (scripts/install-test-deps.sh: node ws, socket.io-client, playwright-core,
#      Python websockets, python-socketio, Debian chromium, Autobahn)
#   2. cargo fmt --all --check
#   3. cargo clippy --workspace --all-targets -- -D warnings
#   4. cargo test --workspace   (includes crates/tidings-cli/tests/interop.rs: real clients,
#      tests/demo.rs: the demo pages in headless Chromium, tidings chat, tests/admin.rs: the admin
#      API and dashboard, tests/js_client.rs: the JS client under node --test and in Chromium)
#   5. Autobahn|Testsuite quick run against `tidings serve`'s /echo
# Every step runs even when an earlier one failed (except a failed install); the exit status is
# non-zero when any step failed, and the last line sums up.
#   TIDINGS_SKIP_AUTOBAHN=1  skip step 5        AUTOBAHN_MODE=full|quick|'["1.*"]'  (default quick)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shared=$root/../shared
logs=$root/target/test-logs
mkdir -p "$logs"

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]+"${pids[@]}"}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed_steps=()
failed_steps=()
tests_passed=0
tests_failed=0
banner() { printf '\n==== test.sh: %s ====\n' "$*"; }
step() { # step NAME CMD...: runs CMD, records the outcome, never exits
  local name=$1; shift
  banner "$name"
  local t0=$SECONDS failed_before=$tests_failed
  if "$@"; then
    passed_steps+=("$name"); echo "---- $name: ok ($((SECONDS - t0)) s)"
  else
    failed_steps+=("$name"); echo "---- $name: FAILED ($((SECONDS - t0)) s)"
    # A step that failed without counting a failed test (fmt, clippy, a build error) counts as one.
    ((tests_failed > failed_before)) || tests_failed=$((tests_failed + 1))
  fi
}

banner "install test dependencies"
if ! scripts/install-test-deps.sh; then
  echo "test.sh: scripts/install-test-deps.sh failed; not running the tests"
  echo "test.sh: 0 passed, 1 failed"
  exit 1
fi

step "cargo fmt" cargo fmt --all --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings

cargo_test() {
  local rc=0
  cargo test --workspace 2>&1 | tee "$logs/cargo-test.log" || rc=$?
  # Sum up libtest's "test result: ok. N passed; M failed; ..." lines.
  local counts
  counts=$(sed -n 's/.*test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' "$logs/cargo-test.log" \
    | awk '{p += $1; f += $2} END {print p + 0, f + 0}')
  tests_passed=$((tests_passed + ${counts% *}))
  tests_failed=$((tests_failed + ${counts#* }))
  return "$rc"
}
step "cargo test" cargo_test

autobahn() {
  local bin=${TIDINGS_BIN:-$root/target/debug/tidings}
  if [[ -z ${TIDINGS_BIN:-} ]]; then
    cargo build -p tidings-cli --bin tidings || return 1
  fi
  [[ -x $bin ]] || { echo "autobahn: no server binary at $bin"; return 1; }
  [[ -x $shared/tools/autobahn/run.sh ]] || { echo "autobahn: $shared/tools/autobahn/run.sh not found"; return 1; }
  local out=$logs/autobahn-server.log
  # Autobahn's section 9 sends messages of up to 16 MiB; the product default is 1 MiB.
  local config=$logs/autobahn-server.toml
  printf '[websocket]\nmax_message = 16777216\n' > "$config"
  "$bin" serve --config "$config" --http 127.0.0.1:0 --tcp off --udp off --stomp off > "$out" 2>&1 &
  local pid=$!
  pids+=("$pid")
  local port="" i
  for ((i = 0; i < 150; i++)); do
    port=$(sed -n 's/^tidings: http listening on .*:\([0-9][0-9]*\)[[:space:]]*$/\1/p' "$out" | head -n 1)
    [[ -n $port ]] && break
    kill -0 "$pid" 2>/dev/null || { echo "autobahn: the server exited:"; cat "$out"; return 1; }
    sleep 0.1
  done
  [[ -n $port ]] || { echo "autobahn: the server printed no http listening line in 15 s:"; cat "$out"; return 1; }
  local rc=0
  AUTOBAHN_OUT=$root/target/autobahn "$shared/tools/autobahn/run.sh" "ws://127.0.0.1:$port/echo" "${AUTOBAHN_MODE:-quick}" \
    | tee "$logs/autobahn.log" || rc=$?
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if ((rc != 0)); then
    echo "autobahn: cases FAILED (report: target/autobahn/index.html; server log: $out)"
    tail -n 20 "$out"
  fi
  # Count the cases: "server-under-test: N cases ..." and the lines of failed cases below it.
  local cases failed
  cases=$(sed -n 's/^server-under-test: \([0-9]*\) cases.*/\1/p' "$logs/autobahn.log" | head -n 1)
  failed=$(grep -c '^  [0-9.]*: behavior=' "$logs/autobahn.log" || true)
  tests_passed=$((tests_passed + ${cases:-0} - failed))
  tests_failed=$((tests_failed + failed))
  return "$rc"
}
if [[ -n ${TIDINGS_SKIP_AUTOBAHN:-} ]]; then
  banner "autobahn: skipped (TIDINGS_SKIP_AUTOBAHN)"
else
  step "autobahn ${AUTOBAHN_MODE:-quick}" autobahn
fi

banner "summary"
echo "steps ok: ${passed_steps[*]:-none}"
echo "steps FAILED: ${failed_steps[*]:-none}"
echo "(counted: cargo tests + Autobahn cases; a step that failed otherwise, e.g. fmt, counts as one)"
echo "test.sh: $tests_passed passed, $tests_failed failed"
((${#failed_steps[@]} == 0))
