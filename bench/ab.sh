#!/bin/bash
# bench/ab.sh A B [PAIRS] [USERS]: two reconnoiter builds on the Artillery
# workload (README, "Side by side with Artillery"), interleaved, each against
# a fresh `reconnoiter serve` of its own build; prints every run's CPU
# seconds and peak RSS, then the medians. The machine is shared and noisy:
# compare medians of several pairs, never one run.
set -euo pipefail
source "$(dirname "$0")/serve.sh"
A=$(realpath "$1"); B=$(realpath "$2"); PAIRS=${3:-3}; N=${4:-5000}

one() { # BINARY -> "cpu_s rss_mib"
  local bin=$1 d; d=$(mktemp -d); cd "$d"
  cat > sc.toml <<EOT
[run]
duration = "40s"
ramp = "500/s"
drain = "10s"
seed = 1
[users]
count = $N
conversations = $((N / 10))
members = 10
send_rate = "1/10s"
messages = 3
message_size = 64
EOT
  serve "$bin" "$N"
  local sp=$server_pid url=$server_url
  /usr/bin/time -f "%U %S %M" -o t.out "$bin" run sc.toml --target "$url" --reports rep -q > run.out 2>&1 || true
  kill "$sp"; wait "$sp" 2>/dev/null || true
  grep -q PASS run.out || { echo "not a PASS: $d/run.out" >&2; exit 1; }
  read -r u s m < t.out
  echo "$(echo "$u + $s" | bc) $((m / 1024))"
  cd /; rm -rf "$d"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

RA=$(mktemp); RB=$(mktemp); trap 'rm -f "$RA" "$RB"' EXIT
for i in $(seq "$PAIRS"); do
  # An assignment alone, so that a run that did not pass stops the script.
  r=$(one "$A"); read -r c m <<< "$r"; echo "A pair $i: cpu ${c} s, peak ${m} MiB"; echo "$r" >> "$RA"
  r=$(one "$B"); read -r c m <<< "$r"; echo "B pair $i: cpu ${c} s, peak ${m} MiB"; echo "$r" >> "$RB"
done
echo "A median: cpu $(cut -d' ' -f1 "$RA" | median) s, peak $(cut -d' ' -f2 "$RA" | median) MiB"
echo "B median: cpu $(cut -d' ' -f1 "$RB" | median) s, peak $(cut -d' ' -f2 "$RB" | median) MiB"
