#!/usr/bin/env python3
"""Where reconnoiter's peak memory goes, by mapping.

    python3 bench/peak-rss.py [BINARY] [USERS]     # default: target/release/reconnoiter 1000

Runs `reconnoiter run` of bench/vs-artillery.py's workload (USERS users at
500/s, 3 messages of 64 bytes each, 10 s apart) against a fresh
`reconnoiter serve` of its own, samples the harness's RSS every 100 ms as
vs-artillery.py does, keeps /proc/PID/smaps at the highest sample and
prints that peak split by mapping (the binary's pages, each library, the
heap, anonymous memory). A figure's before and after are two runs of this
with two binaries, interleaved.
"""

import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def by_mapping(smaps):
    """Rss in KiB per mapped file (basename), anonymous mappings as [anon]."""
    totals = collections.Counter()
    name = None
    for line in smaps.splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            parts = line.split(None, 5)
            name = os.path.basename(parts[5]) if len(parts) > 5 else "[anon]"
        elif line.startswith("Rss:"):
            totals[name] += int(line.split()[1])
    return totals


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TARGET_DIR, "release", "reconnoiter")
    users = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    if not os.path.exists(binary):
        raise SystemExit(f"build first: cargo build --release ({binary})")
    with tempfile.TemporaryDirectory(prefix="peak-rss-") as work:
        server = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--db", f"{work}/chat.db",
             "--users", str(users), "--conversations", str(users // 10), "--members", "10",
             "--seed", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            url = "http://" + re.match(r"listening on (\S+)", server.stdout.readline()).group(1)
            threading.Thread(target=server.stdout.read, daemon=True).start()
            scenario = f"{work}/workload.toml"
            with open(scenario, "w") as f:
                f.write(f'[run]\nduration = "40s"\nramp = "500/s"\ndrain = "10s"\nseed = 1\n'
                        f'[users]\ncount = {users}\nconversations = {users // 10}\nmembers = 10\n'
                        f'send_rate = "1/10s"\nmessages = 3\nmessage_size = 64\n')
            run = subprocess.Popen([binary, "run", scenario, "--target", url,
                                    "--reports", f"{work}/reports", "-q"],
                                   stdout=subprocess.DEVNULL)
            peak, peak_smaps = 0, ""
            while run.poll() is None:
                try:
                    with open(f"/proc/{run.pid}/status") as f:
                        rss = int(next(l for l in f if l.startswith("VmRSS")).split()[1])
                    if rss > peak:
                        with open(f"/proc/{run.pid}/smaps") as f:
                            peak, peak_smaps = rss, f.read()
                except (OSError, StopIteration):
                    pass  # between samples the run ended
                time.sleep(0.1)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait()
    print(f"run exit {run.returncode}")
    for name, kib in by_mapping(peak_smaps).most_common(8):
        print(f"{kib / 1024:8.1f} MiB  {name}")
    print(f"peak RSS {peak / 1024:.1f} MiB ({users} users)")


if __name__ == "__main__":
    main()
