#!/usr/bin/env python3
"""reconnoiter and Artillery side by side: same server, same workload.

    cargo build --release
    (cd bench/artillery && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts)
    python3 bench/vs-artillery.py [N ...]          # default: 1000 5000

For each N, each tool runs against a fresh reference server (`reconnoiter
serve`, its own process, seeded with N users in N/10 conversations of 10,
seed 1), so the server's cost is never counted as a tool's. The workload is
the same for both: N users arrive at RAMP/s; each logs in over REST, connects
over WebSocket with its token, joins its conversation (waiting for the ack),
sends MESSAGES messages of 64 bytes, one every 10 s (each waiting for its
ack), and receives its room's broadcasts; then it waits for the last
broadcasts and disconnects.

- reconnoiter: `reconnoiter run` of that scenario with `--target` (it also
  records every event to history.jsonl and checks delivery live: work
  Artillery does not do).
- Artillery 2 (bench/artillery/package-lock.json), its built-in socketio
  engine. Its socketio engine opens the socket before the scenario's first
  step, so the token must exist before a virtual user starts:
  bench/artillery/login.js does the N logins (and asks each user for its
  conversation) right before, and its CPU is added to Artillery's.

Measured per tool: CPU seconds (user + system, from wait4, children
included), peak RSS (the tool's process tree, summed, sampled every 100 ms),
connection errors. Printed as a table, the ratios last. Not run in CI: it
takes a few minutes and both tools share the machine with the server.
"""

import json
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
BINARY = os.path.join(TARGET_DIR, "release", "reconnoiter")
ART_DIR = os.path.join(ROOT, "bench", "artillery")
RAMP = 500  # users per second, both tools
MESSAGES = 3  # per user, one every 10 s
SEND_EVERY = 10


def tree_pids(root):
    """root and every descendant, from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measured(cmd, cwd=None, env=None, log=None):
    """Runs cmd; returns (exit code, CPU seconds, peak tree RSS in KiB)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], sum(rss_kib(p) for p in tree_pids(proc.pid)))
            done.wait(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, peak[0]


def start_server(n, workdir):
    cmd = [
        BINARY, "serve", "--listen", "127.0.0.1:0", "--db", os.path.join(workdir, "chat.db"),
        "--users", str(n), "--conversations", str(n // 10), "--members", "10", "--seed", "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.match(r"listening on (\S+)", line)
    if not m:
        raise SystemExit(f"server did not start: {line!r}")
    threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
    return proc, "http://" + m.group(1)


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_reconnoiter(n, url, workdir):
    # The first send comes at a random point of the first interval, so the
    # chat lasts one interval more than MESSAGES sends; `messages` caps them.
    scenario = os.path.join(workdir, "vs-artillery.toml")
    with open(scenario, "w") as f:
        f.write(
            f'[run]\nduration = "{(MESSAGES + 1) * SEND_EVERY}s"\nramp = "{RAMP}/s"\ndrain = "10s"\nseed = 1\n'
            f'[users]\ncount = {n}\nconversations = {n // 10}\nmembers = 10\n'
            f'send_rate = "1/{SEND_EVERY}s"\nmessages = {MESSAGES}\nmessage_size = 64\n'
        )
    reports = os.path.join(workdir, "reports")
    with open(os.path.join(workdir, "reconnoiter.log"), "w") as log:
        code, cpu, peak = measured(
            [BINARY, "run", scenario, "--target", url, "--reports", reports, "-q"], log=log
        )
    summary = {}
    for d in os.listdir(reports):
        p = os.path.join(reports, d, "summary.json")
        if os.path.exists(p):
            with open(p) as f:
                summary = json.load(f)
    live = summary.get("live", {})
    return {
        "cpu": cpu,
        "peak_kib": peak,
        "errors": live.get("connect_failures", "?"),
        "note": f"exit {code}, {live.get('acked', '?')} acked, {live.get('delivered', '?')}/{live.get('expected', '?')} delivered",
    }


def run_artillery(n, url, workdir):
    csv = os.path.join(workdir, "users.csv")
    with open(os.path.join(workdir, "login.log"), "w") as log:
        code, login_cpu, login_peak = measured(
            ["node", os.path.join(ART_DIR, "login.js"), url, str(n), csv], log=log
        )
    if code != 0:
        raise SystemExit(f"login.js failed: see {workdir}/login.log")
    script = os.path.join(workdir, "vs-artillery.yml")
    content = "x" * 64
    with open(script, "w") as f:
        f.write(
            f"""config:
  target: "{url}"
  phases:
    - duration: {max(1, n // RAMP)}
      arrivalRate: {RAMP}
      maxVusers: {n}
  payload:
    path: "{csv}"
    fields: ["userId", "token", "conversationId"]
    order: sequence
    skipHeader: true
scenarios:
  - engine: socketio
    # Here, not under config: Artillery renders config templates once at
    # load time (no virtual user's variables yet), which drops the token.
    socketio:
      transports: ["websocket"]
      auth:
        token: "{{{{ token }}}}"
    flow:
      - emit:
          channel: "join-room"
          data:
            conversationId: "{{{{ conversationId }}}}"
          acknowledge: {{}}
      - loop:
          - think: {SEND_EVERY}
          - emit:
              channel: "send-message"
              data:
                temp_id: "{{{{ $uuid }}}}-{{{{ $loopCount }}}}"
                conversationId: "{{{{ conversationId }}}}"
                content: "{content}"
              acknowledge: {{}}
        count: {MESSAGES}
      - think: 5
"""
        )
    env = dict(os.environ, ARTILLERY_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
    report = os.path.join(workdir, "artillery.json")
    artillery = os.path.join(ART_DIR, "node_modules", ".bin", "artillery")
    with open(os.path.join(workdir, "artillery.log"), "w") as log:
        code, cpu, peak = measured(
            [artillery, "run", "--output", report, script], cwd=ART_DIR, env=env, log=log
        )
    counters = {}
    if os.path.exists(report):
        with open(report) as f:
            counters = json.load(f).get("aggregate", {}).get("counters", {})
    errors = sum(v for k, v in counters.items() if k.startswith("errors."))
    return {
        "cpu": cpu + login_cpu,
        "login_cpu": login_cpu,
        "peak_kib": max(peak, login_peak),
        "errors": errors,
        "note": f"exit {code}, vusers completed {counters.get('vusers.completed', '?')}/{counters.get('vusers.created', '?')}, "
        f"emits {counters.get('socketio.emit', '?')}, login.js {login_cpu:.1f}s CPU",
    }


def main():
    if not os.path.exists(BINARY):
        raise SystemExit(f"build first: cargo build --release ({BINARY})")
    if not os.path.exists(os.path.join(ART_DIR, "node_modules", ".bin", "artillery")):
        raise SystemExit(
            "install Artillery first: (cd bench/artillery && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts)"
        )
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 5000]
    rows = []
    for n in sizes:
        for tool, run in (("reconnoiter", run_reconnoiter), ("artillery", run_artillery)):
            workdir = tempfile.mkdtemp(prefix=f"vs-{tool}-{n}-")
            server, url = start_server(n, workdir)
            t = time.time()
            try:
                r = run(n, url, workdir)
            finally:
                stop_server(server)
            r.update(tool=tool, n=n, wall=time.time() - t, dir=workdir)
            print(
                f"{tool:>12} N={n}: CPU {r['cpu']:.1f}s, peak RSS {r['peak_kib'] / 1024:.0f} MiB, "
                f"connection errors {r['errors']}, {r['wall']:.0f}s wall ({r['note']}; {workdir})",
                flush=True,
            )
            rows.append(r)
    print()
    print("| users | tool | CPU s | peak RSS MiB | connection errors |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']:,} | {r['tool']} | {r['cpu']:.1f} | {r['peak_kib'] / 1024:.0f} | {r['errors']} |")
    print()
    for n in sizes:
        rec = next(r for r in rows if r["n"] == n and r["tool"] == "reconnoiter")
        art = next(r for r in rows if r["n"] == n and r["tool"] == "artillery")
        print(
            f"N={n}: Artillery / reconnoiter: CPU {art['cpu'] / max(rec['cpu'], 0.01):.1f}x, "
            f"peak memory {art['peak_kib'] / max(rec['peak_kib'], 1):.1f}x"
        )


if __name__ == "__main__":
    main()
