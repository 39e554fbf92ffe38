#!/usr/bin/env bash
# One command per figure of README's Performance section:
#
#   bench/figure.sh NAME
#
# builds what it needs (release), runs the benchmark and prints the figure
# as its last line (the benchmark's whole output comes before it, on stderr).
#
#   users          connected users one harness process holds (18,000, no proxy)
#   rss            RSS per connected user (same run)
#   ramp           connect ramp rate: login + connect + join, users/s (same run)
#   cpu-message    harness CPU per delivered message at steady chat load (5,000 users)
#   cpu-reconnect  harness CPU per user-reconnect (5,000 users, server killed mid-chat)
#   cpu-idle       harness CPU per connected, silent user-second (5,000 users,
#                  nobody sends): the part of cpu-message that is not per delivery
#   checker        checker throughput from history.jsonl (parse + check), delivery events/s
#   checker-memory checker heap per accepted message over a long run (2 M messages)
#   proxy-latency  the proxy's added round-trip latency, no toxic (p99)
#   proxy-users    users one proxy process holds (two sockets each)
#   artillery      reconnoiter vs Artillery at 1,000 and 5,000 users (a few minutes)
#
# The embedded server always runs as a process of its own, so its CPU and
# memory are never counted as the harness's. Figures are one run each on
# whatever machine this is: run them on a quiet one.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
name=${1:-}

users_run() { # USERS RAMP CHAT [restart] -> output of users_bench
  cargo build --release --quiet --bin reconnoiter --example users_bench >&2
  "$target/release/examples/users_bench" "$@" | tee /dev/stderr
}

last() { # PATTERN: the matching line of stdin, printed last
  local line
  line=$(grep -- "$1" | tail -n 1)
  [ -n "$line" ] || { echo "figure not found: $1" >&2; exit 1; }
  echo "$line"
}

case "$name" in
  # 18,000 users asking for 2,000/s, one message each a minute: the most
  # the reference server beside them on 2 cores serves without timeouts
  # (a message every 10 s from 18,000 users overloads it, not the harness).
  users) users_run 18000 2000 60 every=60 | last 'connected users one process held' ;;
  rss) users_run 18000 2000 60 every=60 | last 'rss per connected user' ;;
  ramp) users_run 18000 2000 60 every=60 | last 'connect ramp' ;;
  cpu-message) users_run 5000 1000 60 | last 'cpu per delivered message' ;;
  cpu-reconnect) users_run 5000 2500 30 restart | last 'cpu per user-reconnect' ;;
  cpu-idle) users_run 5000 1000 30 idle | last 'cpu per connected user-second' ;;
  checker) cargo bench --quiet --bench checker 2>&1 | tee /dev/stderr | last 'check_file throughput' ;;
  checker-memory) cargo bench --quiet --bench checker 2>&1 | tee /dev/stderr | last 'checker heap per accepted message' ;;
  proxy-latency) cargo bench --quiet --bench proxy_latency 2>&1 | tee /dev/stderr | last 'added by the proxy' ;;
  proxy-users)
    cargo build --release --quiet --bin reconnoiter --example proxy_capacity >&2
    "$target/release/examples/proxy_capacity" | tee /dev/stderr | last 'users one proxy process held'
    ;;
  artillery)
    cargo build --release --quiet --bin reconnoiter >&2
    python3 bench/vs-artillery.py 1000 5000 | tee /dev/stderr | last 'N=5000: Artillery'
    ;;
  *)
    sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//' | grep -v '^set -e' >&2
    exit 2
    ;;
esac
