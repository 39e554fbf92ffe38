#!/bin/bash
# bench/ramp-cpu.sh [BINARY] [USERS] [RATE]: the CPU an arriving user costs
# the harness and the reference server beside it. USERS users (default
# 5,000) log in, connect, join and leave at RATE/s (default 2,000), no chat,
# against a fresh `reconnoiter serve`; prints the harness's wall, user and
# system seconds and peak RSS (/usr/bin/time), and the server's CPU seconds
# over the run (/proc/PID/stat). README, Performance, eighth pass.
set -euo pipefail
source "$(dirname "$(realpath "$0")")/serve.sh"
BIN=$(realpath "${1:-target/release/reconnoiter}"); N=${2:-5000}; RATE=${3:-2000}
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT; cd "$d"
cat > sc.toml <<EOT
[run]
duration = "2s"
ramp = "$RATE/s"
drain = "5s"
seed = 1
[users]
count = $N
conversations = $((N / 10))
members = 10
messages = 0
EOT
serve "$BIN" "$N"
sp=$server_pid url=$server_url
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$sp/stat"; }
s0=$(cpu)
/usr/bin/time -f "%e %U %S %M" -o t.out "$BIN" run sc.toml --target "$url" --reports rep -q > run.out 2>&1 || true
s1=$(cpu)
kill "$sp"; wait "$sp" 2>/dev/null || true
grep -q PASS run.out || { echo "not a PASS:" >&2; cat run.out >&2; exit 1; }
read -r wall user sys rss < t.out
server=$(echo "scale=2; ($s1 - $s0) / $ticks" | bc)
harness=$(echo "$user + $sys" | bc)
echo "harness: ${harness} s CPU (user $user, sys $sys), peak $((rss / 1024)) MiB, wall ${wall} s"
echo "server: ${server} s CPU"
echo "per arriving user: harness $(echo "scale=3; $harness * 1000 / $N" | bc) ms, server $(echo "scale=3; $server * 1000 / $N" | bc) ms"
