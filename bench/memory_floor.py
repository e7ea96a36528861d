#!/usr/bin/env python3
"""Memory per open stream: trickle against bare actix-web, the floor, in
interleaved rounds, the median of each.

    cargo build --release --workspace --bins --examples
    apt-get install libjemalloc2          # for bare-actix-jemalloc
    bench/memory_floor.py                 # 10,000 idle SSE streams, 3 rounds
    bench/memory_floor.py --n 5000 --rounds 5

Each round starts every server in turn (the order rotates from round to
round), holds N SSE streams on it (an event every 5 s, heartbeats between:
bench/run.py's capacity scenario) and reads its RSS per open stream: (peak
RSS while holding - RSS idle) / streams established. Servers: trickle
(release, as shipped: jemalloc), bare-actix (examples/bare_actix.rs: actix-web
with its http2 feature and nothing else, on glibc's malloc, what a user
writing their own gets) and bare-actix-jemalloc (the same on jemalloc 5.3
through LD_PRELOAD: the floor with the allocator held equal). Prints each
round and the medians with their ratios; writes
bench/results/memory-floor-<date>.json.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000, help="streams held (default 10,000)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--hold", type=int, default=20, help="seconds each server holds them (default 20)")
    p.add_argument("--servers", default="trickle,bare-actix,bare-actix-jemalloc")
    args = p.parse_args()
    servers = args.servers.split(",")
    for path in (bench.LOAD, os.path.join(bench.RELEASE, "trickle"),
                 os.path.join(bench.RELEASE, "examples", "bare_actix")):
        if not os.path.exists(path):
            sys.exit(f"error: {path} missing: cargo build --release --workspace --bins --examples")
    if "bare-actix-jemalloc" in servers and not os.path.exists(bench.JEMALLOC):
        sys.exit(f"error: {bench.JEMALLOC} missing: apt-get install libjemalloc2")
    bench.ensure_port_range()
    per = {name: [] for name in servers}
    runs = []
    for r in range(args.rounds):
        order = servers[r % len(servers):] + servers[:r % len(servers)]
        for name in order:
            server = bench.Server(name)
            try:
                result = bench.capacity(server, args.n, args.hold)
            finally:
                server.stop()
            kib = result["rss_per_stream_kib"]
            if result["established"] < 0.99 * args.n:
                sys.exit(f"error: {name} established {result['established']} of {args.n} streams")
            per[name].append(kib)
            runs.append({"round": r + 1, "server": name, **result})
            print(f"round {r + 1}: {name:20} {result['established']:>6} streams, "
                  f"idle {result['rss_idle_kib'] / 1024:6.1f} MiB, holding {result['rss_holding_kib'] / 1024:6.1f} MiB: "
                  f"{kib:5.2f} KiB per stream", flush=True)
    medians = {name: statistics.median(v) for name, v in per.items()}
    print(f"\n| server | KiB per open stream, rounds | median | vs bare-actix | vs bare-actix-jemalloc |")
    print("| --- | --- | --- | --- | --- |")
    for name in servers:
        ratio = lambda floor: (f"{medians[name] / medians[floor]:.2f}x" if medians.get(floor) else "-")
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in per[name])} | {medians[name]:.2f} | "
              f"{ratio('bare-actix')} | {ratio('bare-actix-jemalloc')} |")
    commit = subprocess.run(["git", "-C", bench.ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    command = "bench/memory_floor.py " + " ".join(sys.argv[1:])
    out = os.path.join(bench.RESULTS, f"memory-floor-{datetime.date.today()}.json")
    os.makedirs(bench.RESULTS, exist_ok=True)
    with open(out, "w") as f:
        json.dump({"date": str(datetime.date.today()), "commit": commit, "command": command,
                   "n": args.n, "hold_s": args.hold, "per_stream_kib": per, "medians_kib": medians,
                   "runs": runs}, f, indent=1)
    print(f"\nresults: {os.path.relpath(out)}\nrerun: {command}")


if __name__ == "__main__":
    main()
