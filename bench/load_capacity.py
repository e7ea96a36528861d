#!/usr/bin/env python3
"""What holding many streams costs trickle-load (and trickle): one load
process holds N concurrent SSE streams against a release trickle on the same
machine; resident memory and CPU of both processes are sampled from /proc.

    cargo build --release -p trickle -p trickle-load --bins
    bench/load_capacity.py -n 10000
    bench/load_capacity.py -n 2000 --hold 20 --interval-ms 1000

Loopback only. One process holds at most ~19,900 sockets here; for more,
run several trickle-load processes and merge their reports.
"""

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRICKLE = os.path.join(ROOT, "target", "release", "trickle")
LOAD = os.path.join(ROOT, "target", "release", "trickle-load")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=10_000, help="concurrent streams")
    p.add_argument("--rate", type=int, default=2_000, help="new streams per second during ramp-up")
    p.add_argument("--hold", type=int, default=30, help="seconds to hold them all")
    p.add_argument("--interval-ms", type=int, default=5_000, help="event interval of each stream")
    args = p.parse_args()
    for path in (TRICKLE, LOAD):
        if not os.path.exists(path):
            sys.exit(f"error: {path} missing: cargo build --release -p trickle -p trickle-load --bins")

    port = free_port()
    server = subprocess.Popen([TRICKLE, "--host", "127.0.0.1", "--port", str(port), "--max-streams", "20000"],
                              env={**os.environ, "RUST_LOG": "warn"}, stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    report = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    ramp = args.n / args.rate
    load = subprocess.Popen(
        [LOAD, "--host", f"http://127.0.0.1:{port}", "--users", str(args.n), "--increase-rate", str(args.rate),
         "--run-time", f"{args.hold}s", "--transport", "sse", "--chunks", "1000000",
         "--interval-ms", str(args.interval_ms), "--quiet", "--no-print-metrics", "--progress-secs", "5",
         "--stream-report", report, "--idle-timeout", "60s"],
        stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    load_rss0, server_rss0 = rss_kib(load.pid), rss_kib(server.pid)
    samples = []
    t0 = time.monotonic()
    while load.poll() is None:
        try:
            samples.append((time.monotonic() - t0, rss_kib(load.pid), cpu_s(load.pid), rss_kib(server.pid), cpu_s(server.pid)))
        except OSError:
            break
        time.sleep(1)
    code = load.wait()
    server.terminate()
    server.wait()
    with open(report) as f:
        r = json.load(f)
    os.unlink(report)

    # Hold phase: from the end of the ramp (plus a second) to just before the end.
    hold = [s for s in samples if ramp + 2 <= s[0] <= ramp + args.hold - 1]
    if len(hold) < 2:
        sys.exit(f"error: too few samples in the hold phase ({len(samples)} in all); exit code {code}")
    peak_open = max(p["open"].get(k, 0) for p in r["timeline"] for k in p["open"]) if r["timeline"] else 0
    load_rss = max(s[1] for s in hold)
    server_rss = max(s[3] for s in hold)
    span = hold[-1][0] - hold[0][0]
    load_cpu = (hold[-1][2] - hold[0][2]) / span
    server_cpu = (hold[-1][4] - hold[0][4]) / span
    per = lambda kib, base: (kib - base) / max(1, peak_open)
    print(f"\nMachine: {os.cpu_count()} CPUs, {datetime.date.today()}; trickle and trickle-load on the same machine, loopback.")
    print(f"Load: {args.n} SSE streams, ramp {args.rate}/s, held {args.hold} s, one event per {args.interval_ms} ms each.\n")
    print(f"| measure | trickle-load | trickle |")
    print(f"| --- | --- | --- |")
    print(f"| peak open streams (from the report) | {peak_open} | |")
    print(f"| RSS before -> holding | {load_rss0 / 1024:.1f} -> {load_rss / 1024:.1f} MiB | {server_rss0 / 1024:.1f} -> {server_rss / 1024:.1f} MiB |")
    print(f"| RSS per open stream | {per(load_rss, load_rss0):.1f} KiB | {per(server_rss, server_rss0):.1f} KiB |")
    print(f"| CPU while holding | {load_cpu * 100:.1f}% of a core | {server_cpu * 100:.1f}% of a core |")
    ends = ", ".join(f"{k}: {v}" for k, v in r["ends"].items())
    print(f"\nConnections {r['connections']} ({ends}); events {r['events']}; trickle-load exit code {code}.")
    print(f"rerun: {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
