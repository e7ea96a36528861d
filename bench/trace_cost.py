#!/usr/bin/env python3
"""What trace context, the worst-streams lists and the stream log cost
trickle-load per connection: short streams (one event each) started at a
fixed rate against one trickle (release build, loopback), trickle-load's
CPU per connection in three variants run interleaved, round by round:

  baseline     --header 'traceparent: <fixed>' --worst 0: the user's own
               header (same bytes on the wire), so nothing is minted or
               formatted per connection, and no worst-streams lists.
  traced       the defaults: a trace id per stream, a span id and a
               traceparent per connection, the worst-streams lists.
  traced+log   the same with --stream-log FILE (a JSON line per connection).

    cargo build --release --workspace --bins --examples
    bench/trace_cost.py                       # 5 rounds, 2,000 streams/s
    bench/trace_cost.py --rate 1000 --rounds 3

The CPU is trickle-load's user + system time over the hold window (after a
warm-up), from /proc; the connections are the streams trickle counted
starting in that window (trickle_streams_started_total). The figures are
the medians of the rounds, with each variant's lowest and highest. On a
2-core machine shared with the server these move by about 15% from run to
run (the kernel's connect() time grows with the TIME_WAIT sockets earlier
runs left), more than the differences measured; so the added work is also
measured on its own (loadtest/examples/per_connection_cost.rs: a million
connection records through each step, in one process) and put against the
baseline's CPU per connection. The goal is under 5% more CPU per
connection. Results: bench/results/trace-cost.json.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (the servers, /proc usage, metric reads)

FIXED = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
VARIANTS = ("baseline", "traced", "traced+log")
WARMUP_S = 3
MICRO = os.path.join(bench.RELEASE, "examples", "per_connection_cost")


def command(variant, load_bin, base, rate, seconds, log_path):
    cmd = [load_bin, "--host", base, "--arrival-rate", str(rate), "--max-in-flight", "500",
           "--run-time", f"{seconds}s", "--transport", "sse", "--chunks", "1", "--interval-ms", "0",
           "--quiet", "--no-print-metrics", "--progress-secs", "0"]
    if variant == "baseline":
        cmd += ["--header", FIXED, "--worst", "0"]
    if variant == "traced+log":
        cmd += ["--stream-log", log_path]
    return cmd


def measure(variant, load_bin, rate, hold):
    server = bench.Server("trickle")
    log = tempfile.NamedTemporaryFile(prefix="trace-cost-", suffix=".jsonl", delete=False)
    log.close()
    try:
        seconds = WARMUP_S + hold + 2
        proc = subprocess.Popen(command(variant, load_bin, server.base, rate, seconds, log.name),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(WARMUP_S)
        cpu0, _ = bench.usage(proc.pid)
        s0 = bench.metric(server.base, "trickle_streams_started_total")
        w0 = time.monotonic()
        time.sleep(hold)
        cpu1, _ = bench.usage(proc.pid)
        s1 = bench.metric(server.base, "trickle_streams_started_total")
        w1 = time.monotonic()
        proc.wait(timeout=seconds + 60)
        connections = s1 - s0
        lines = sum(1 for _ in open(log.name)) if variant == "traced+log" else None
        return {"variant": variant, "window_s": round(w1 - w0, 2), "cpu_s": round(cpu1 - cpu0, 3),
                "connections": connections, "per_s": round(connections / (w1 - w0), 1),
                "log_lines": lines,
                "us_per_connection": round((cpu1 - cpu0) / connections * 1e6, 2) if connections else None}
    finally:
        server.stop()
        os.unlink(log.name)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=2000, help="new one-event streams a second")
    p.add_argument("--hold", type=int, default=10, help="seconds measured per run")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--load-bin", default=bench.LOAD)
    args = p.parse_args()
    for path in (args.load_bin, os.path.join(bench.RELEASE, "trickle"), MICRO):
        if not os.path.exists(path):
            sys.exit(f"error: {path} missing: cargo build --release --workspace --bins --examples")
    bench.ensure_port_range(args.rate * (args.hold + WARMUP_S + 2))
    os.makedirs(bench.RESULTS, exist_ok=True)
    runs = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        for variant in VARIANTS:
            result = measure(variant, args.load_bin, args.rate, args.hold)
            print(f"round {r + 1} {variant}: {json.dumps(result)}", file=sys.stderr, flush=True)
            runs[variant].append(result)
    med = {v: statistics.median(x["us_per_connection"] for x in rs if x["us_per_connection"])
           for v, rs in runs.items()}
    spread = {v: [min(x["us_per_connection"] for x in rs), max(x["us_per_connection"] for x in rs)]
              for v, rs in runs.items()}
    # The added work itself, in one process (no sockets, no server).
    direct = json.loads(subprocess.run([MICRO], capture_output=True, text=True, check=True).stdout)
    commit = subprocess.run(["git", "-C", bench.ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    result = {
        "rate": args.rate, "hold_s": args.hold, "rounds": args.rounds,
        "us_per_connection": med,
        "spread": spread,
        "direct_us_per_connection": direct,
        "direct_share": {
            "traced": round((direct["trace_us"] + direct["worst_us"]) / med["baseline"], 5),
            "traced+log": round((direct["trace_us"] + direct["worst_us"] + direct["stream_log_us"]) / med["baseline"], 5),
        },
        "rise": {v: round(med[v] / med["baseline"] - 1, 4) for v in VARIANTS if v != "baseline"},
        "runs": runs, "date": str(datetime.date.today()), "commit": commit, "cpus": os.cpu_count(),
        "kernel": platform.release(), "command": " ".join(sys.argv),
    }
    with open(os.path.join(bench.RESULTS, "trace-cost.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))
    print(f"\nrerun: {result['command']} ({result['cpus']} CPUs, Linux {result['kernel']}, commit {commit})")


if __name__ == "__main__":
    main()
