#!/usr/bin/env bash
# Installs what the interoperability tests need, idempotently (a second run is a fast no-op):
#   - node packages of tests/interop (package-lock.json, `npm ci`) -> tests/interop/node_modules
#   - Python packages of tests/interop/requirements.txt -> a venv in tests/interop/.venv
#     (falls back to `pip install --target tests/interop/.pydeps` where venv is unavailable)
#   - Debian's chromium (/usr/bin/chromium) for the browser tests (as root, apt-get)
#   - Debian's redis-server for the Redis engine tests (crates/tidings-cli/tests/redis_engine.rs)
# The Rust interop tests (crates/tidings-cli/tests/interop.rs) look for exactly these places.
#   TIDINGS_SKIP_AUTOBAHN=1  do not pre-install Autobahn|Testsuite (scripts/test.sh needs it)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
interop=$root/tests/interop
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1 npm_config_fund=false npm_config_audit=false

say() { echo "install-test-deps: $*"; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "$1 missing: apt-get install $2"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  else
    say "error: $1 is not installed (Debian package: $2)" >&2; exit 1
  fi
}

# --- node -------------------------------------------------------------------------------
need node nodejs
need npm npm
stamp=$interop/node_modules/.tidings-stamp
want="$(node --version) $(hash_of "$interop/package-lock.json")"
if [[ -f $stamp && $(cat "$stamp") == "$want" && -d $interop/node_modules/ws ]]; then
  say "node packages up to date ($interop/node_modules)"
else
  say "npm ci in tests/interop"
  (cd "$interop" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
  say "installed node packages: $(cd "$interop" && npm ls --depth=0 --parseable 2>/dev/null | sed -n 's|.*/node_modules/||p' | tr '\n' ' ')"
fi

# --- chromium (browser tests drive Debian's chromium with playwright-core) ---------------
if [[ -x /usr/bin/chromium ]]; then
  say "chromium present (/usr/bin/chromium)"
elif [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  say "chromium missing: apt-get install chromium"
  apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
else
  say "error: /usr/bin/chromium is not installed (Debian package: chromium)" >&2; exit 1
fi

# --- redis-server (the Redis engine tests start their own on a free port) ----------------
if command -v redis-server >/dev/null 2>&1; then
  say "redis-server present ($(command -v redis-server))"
elif [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  say "redis-server missing: apt-get install redis-server"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
else
  say "error: redis-server is not installed (Debian package: redis-server)" >&2; exit 1
fi

# --- python -----------------------------------------------------------------------------
need python3 python3
py=$(command -v python3)
want="$("$py" -c 'import sys; print(sys.version.split()[0])') $(hash_of "$interop/requirements.txt")"
venv=$interop/.venv
pydeps=$interop/.pydeps
if [[ -f $venv/.tidings-stamp && $(cat "$venv/.tidings-stamp") == "$want" ]] \
   && "$venv/bin/python" -c 'import websockets' 2>/dev/null; then
  say "python packages up to date ($venv)"
elif [[ ! -d $venv && -f $pydeps/.tidings-stamp && $(cat "$pydeps/.tidings-stamp") == "$want" ]]; then
  say "python packages up to date ($pydeps)"
else
  rm -rf "$venv" "$pydeps"
  if "$py" -m venv "$venv" >/dev/null 2>&1 && [[ -x $venv/bin/pip ]]; then
    say "pip install -r requirements.txt into $venv"
    "$venv/bin/python" -m pip install -q -r "$interop/requirements.txt"
    echo "$want" > "$venv/.tidings-stamp"
  else
    rm -rf "$venv"
    say "python venv unavailable; pip install --target $pydeps"
    "$py" -m pip install -q --target "$pydeps" -r "$interop/requirements.txt"
    echo "$want" > "$pydeps/.tidings-stamp"
  fi
  say "installed python packages: $(tr '\n' ' ' < <(grep -v '^#' "$interop/requirements.txt"))"
fi

# --- autobahn (used by scripts/test.sh; its installer is idempotent and prints wstest's path) --
shared=$root/../shared
if [[ -z ${TIDINGS_SKIP_AUTOBAHN:-} && -x $shared/tools/autobahn/install.sh ]]; then
  say "autobahn: $("$shared/tools/autobahn/install.sh" | tail -n 1)"
fi
say "done"
