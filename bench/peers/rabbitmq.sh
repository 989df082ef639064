#!/usr/bin/env bash
# RabbitMQ with its STOMP plugins as a benchmark peer, on 127.0.0.1 only, in a scratch
# directory with its own node name, ports and epmd, so it collides with nothing else.
#
#   bench/peers/rabbitmq.sh start   installs Debian's rabbitmq-server if missing, enables
#                                   rabbitmq_stomp and rabbitmq_web_stomp, starts the node and
#                                   prints `rabbitmq: stomp listening on ADDR`,
#                                   `rabbitmq: web-stomp listening on ADDR` and `rabbitmq: pid PID`
#   bench/peers/rabbitmq.sh stop    stops the node and its epmd, removes the scratch directory
#
# Ports (environment): TIDINGS_RMQ_STOMP (16613), TIDINGS_RMQ_WEB_STOMP (16674),
# TIDINGS_RMQ_AMQP (16672), TIDINGS_RMQ_DIST (16673), TIDINGS_RMQ_EPMD (16369).
# Scratch directory: TIDINGS_RMQ_DIR (${TMPDIR:-/tmp}/tidings-bench-rabbitmq).
set -euo pipefail

dir=${TIDINGS_RMQ_DIR:-${TMPDIR:-/tmp}/tidings-bench-rabbitmq}
stomp_port=${TIDINGS_RMQ_STOMP:-16613}
web_port=${TIDINGS_RMQ_WEB_STOMP:-16674}
amqp_port=${TIDINGS_RMQ_AMQP:-16672}
dist_port=${TIDINGS_RMQ_DIST:-16673}
epmd_port=${TIDINGS_RMQ_EPMD:-16369}
bin=/usr/lib/rabbitmq/bin

say() { echo "rabbitmq: $*"; }

# Everything RabbitMQ and Erlang read, pointing into the scratch directory.
env_setup() {
  export HOME=$dir # the Erlang cookie lives here
  export RABBITMQ_NODENAME=tidings-bench@localhost
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$amqp_port
  export RABBITMQ_DIST_PORT=$dist_port
  export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
  export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
  export RABBITMQ_MNESIA_BASE=$dir/mnesia
  export RABBITMQ_LOG_BASE=$dir/log
  export RABBITMQ_PID_FILE=$dir/rabbitmq.pid
  # Erlang distribution on loopback too (it listens on every interface otherwise).
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export ERL_EPMD_PORT=$epmd_port
}

install_if_missing() {
  [[ -x $bin/rabbitmq-server ]] && return 0
  say "rabbitmq-server missing: apt-get install rabbitmq-server"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  # Debian may start a default node on install; the benchmark uses its own.
  if command -v service >/dev/null 2>&1; then service rabbitmq-server stop >/dev/null 2>&1 || true; fi
}

start() {
  install_if_missing
  stop_quietly
  mkdir -p "$dir/mnesia" "$dir/log"
  env_setup
  cat > "$dir/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$amqp_port
stomp.listeners.tcp.1 = 127.0.0.1:$stomp_port
web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = $web_port
loopback_users = none
log.console = false
log.file.level = warning
CONF
  echo "[rabbitmq_stomp,rabbitmq_web_stomp]." > "$dir/enabled_plugins"
  "$bin/rabbitmq-server" < /dev/null > "$dir/log/stdout.log" 2>&1 &
  local i
  for ((i = 0; i < 120; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$stomp_port") 2>/dev/null; then
      say "stomp listening on 127.0.0.1:$stomp_port"
      say "web-stomp listening on 127.0.0.1:$web_port"
      say "pid $(cat "$RABBITMQ_PID_FILE" 2>/dev/null || pgrep -f -n "beam.*tidings-bench@localhost" || echo unknown)"
      return 0
    fi
    sleep 0.5
  done
  say "did not start within 60 s; log:" >&2
  tail -n 40 "$dir/log/stdout.log" >&2 || true
  return 1
}

stop_quietly() {
  [[ -d $dir ]] || return 0
  local pid
  pid=$(cat "$dir/rabbitmq.pid" 2>/dev/null || true)
  (
    env_setup
    "$bin/rabbitmqctl" -n "$RABBITMQ_NODENAME" stop >/dev/null 2>&1 || true
  )
  if [[ -n $pid ]]; then
    local i
    for ((i = 0; i < 60 && $(kill -0 "$pid" 2>/dev/null && echo 1 || echo 0) == 1; i++)); do sleep 0.25; done
    kill "$pid" 2>/dev/null || true
  fi
  ERL_EPMD_PORT=$epmd_port epmd -kill >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case ${1:-} in
  start) start ;;
  stop) stop_quietly; say "stopped" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
