#!/usr/bin/env python3
"""The load generator itself: trickle-load's CPU per received event beside a
raw-socket floor (loadtest/examples/floor_client.rs: one process, a
current-thread runtime, its own HTTP/1.1 chunked and SSE decoding, a
timestamp per event, nothing else), and trickle-load's memory per open
stream. Loopback only, against one trickle (release build).

    cargo build --release --workspace --bins --examples
    bench/client_cost.py                       # every profile below
    bench/client_cost.py --profile paced-500 --rounds 3
    bench/client_cost.py --load-bin /tmp/old/trickle-load   # another build
    bench/client_cost.py --profile paced-500 --rounds 5 --also before=/tmp/old/trickle-load

Profiles:
  paced-500    500 streams x a 64-byte event every 20 ms (25,000 events/s):
               the goal profile, trickle-load <= 1.3x the floor per event.
  paced-1000   1,000 streams x a 64-byte event every 10 ms (100,000/s).
  idle-10000   10,000 streams x an event every 5 s, one process each.
  memory       trickle-load's RSS holding 9,500 idle SSE streams (an event
               every 5 s) above its RSS holding 100, per stream.
  memory-gzip  trickle-load holding 1,000 SSE streams (a 64-byte event a
               second) through nginx compressing them (gzip on
               text/event-stream, proxy_buffering off): its RSS with
               --compressed=gzip above its RSS asking for nothing, per
               stream (the gzip decoder's cost). Needs nginx (nginx-light).

For each client the CPU is its process's user+system time over the hold
window (after the ramp), from /proc; the events are what trickle counted
sending in that window (trickle_stream_chunks_total), the same for both
clients. Clients run one after the other, interleaved round by round; the
figure is the median of the rounds. Results: bench/results/client-cost-*.json.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (the servers, /proc usage, metric reads)

FLOOR = os.path.join(bench.RELEASE, "examples", "floor_client")

PROFILES = {
    # name: (streams, interval_ms, size, hold seconds)
    "paced-500": (500, 20, 64, 15),
    "paced-1000": (1000, 10, 64, 15),
    "idle-10000": (10_000, 5_000, 16, 15),
}


def path_of(interval_ms, size):
    return f"/sse?chunks=1000000&interval_ms={interval_ms}&size={size}"


LOAD_ARGS = []  # extra trickle-load flags (--load-args)


def client_command(client, load_bin, base, port, streams, interval_ms, size, seconds):
    if client == "floor":
        return [FLOOR, f"127.0.0.1:{port}", path_of(interval_ms, size), str(streams), str(seconds)]
    return [load_bin, "--host", base, "--users", str(streams), "--increase-rate", "1000",
            "--run-time", f"{seconds}s", "--transport", "sse", "--chunks", "1000000",
            "--interval-ms", str(interval_ms), "--size", str(size), "--idle-timeout", "60s",
            "--quiet", "--no-print-metrics", "--progress-secs", "0", *LOAD_ARGS]


def measure(client, load_bin, streams, interval_ms, size, hold):
    """One client run against a fresh trickle: CPU seconds and events in
    the hold window, and the client's peak RSS in it."""
    server = bench.Server("trickle")
    try:
        ramp = streams / 1000 + 3
        seconds = int(ramp + hold + 3)
        proc = subprocess.Popen(
            client_command(client, load_bin, server.base, server.port, streams, interval_ms, size, seconds),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        time.sleep(ramp)
        cpu0, _ = bench.usage(proc.pid)
        ev0 = bench.metric(server.base, "trickle_stream_chunks_total")
        held = bench.metric(server.base, "trickle_streams_active")
        w0 = time.monotonic()
        rss = 0
        while time.monotonic() - w0 < hold:
            time.sleep(1)
            rss = max(rss, bench.usage(proc.pid)[1])
        cpu1, _ = bench.usage(proc.pid)
        ev1 = bench.metric(server.base, "trickle_stream_chunks_total")
        w1 = time.monotonic()
        proc.wait(timeout=seconds + 60 - (time.monotonic() - t0))
        events = ev1 - ev0
        return {"client": client, "held": held, "window_s": round(w1 - w0, 2),
                "cpu_s": round(cpu1 - cpu0, 3), "events": events, "rss_kib": rss,
                "us_per_event": round((cpu1 - cpu0) / events * 1e6, 3) if events else None}
    finally:
        server.stop()


def cost(profile, load_bin, rounds, others=()):
    """The floor and trickle-load (and each NAME=BIN of others: other
    builds), interleaved round by round."""
    streams, interval_ms, size, hold = PROFILES[profile]
    runs = {"floor": [], "trickle-load": []}
    bins = {"trickle-load": load_bin}
    for other in others:
        name, _, path = other.partition("=")
        runs[name] = []
        bins[name] = path
    for r in range(rounds):
        for client in runs:
            result = measure(client, bins.get(client, load_bin), streams, interval_ms, size, hold)
            print(f"{profile} round {r + 1} {client}: {json.dumps(result)}", file=sys.stderr, flush=True)
            runs[client].append(result)
    med = {c: statistics.median(x["us_per_event"] for x in rs if x["us_per_event"]) for c, rs in runs.items()}
    # Each round's ratio to that round's floor: the floor moves 10-20%
    # between rounds on a shared machine, and a round's clients share it.
    round_ratios = {c: [round(x["us_per_event"] / f["us_per_event"], 3)
                        for x, f in zip(rs, runs["floor"]) if x["us_per_event"] and f["us_per_event"]]
                    for c, rs in runs.items() if c != "floor"}
    result = {"profile": profile, "streams": streams, "interval_ms": interval_ms, "size": size, "hold_s": hold,
              "rounds": rounds, "runs": runs, "floor_us_per_event": med["floor"],
              "trickle_load_us_per_event": med["trickle-load"],
              "ratio": round(med["trickle-load"] / med["floor"], 2),
              "round_ratios": round_ratios,
              "median_round_ratio": round(statistics.median(round_ratios["trickle-load"]), 2)}
    result["others"] = {name: {"us_per_event": med[name], "ratio": round(med[name] / med["floor"], 2),
                               "median_round_ratio": round(statistics.median(round_ratios[name]), 2),
                               "bin": bins[name]}
                        for name in runs if name not in ("floor", "trickle-load")}
    return result


def memory(load_bin, hold=10):
    """RSS holding 9,500 idle streams above RSS holding 100, per stream."""
    held = {}
    for n in (100, 9_500):
        result = measure("trickle-load", load_bin, n, 5_000, 16, hold)
        print(f"memory {n}: {json.dumps(result)}", file=sys.stderr, flush=True)
        held[n] = result
    per_stream = (held[9_500]["rss_kib"] - held[100]["rss_kib"]) / 9_400
    return {"profile": "memory", "runs": held, "kib_per_stream": round(per_stream, 2)}


NGINX_GZIP = """worker_processes 1; daemon off; pid {dir}/nginx.pid; error_log {dir}/error.log;
worker_rlimit_nofile 8192;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_http_version 1.1; proxy_buffering off;
      gzip on; gzip_types text/event-stream; gzip_min_length 0;
    }}
  }}
}}
"""


def memory_gzip(load_bin, streams=1_000, hold=10):
    """RSS per stream of --compressed=gzip through a gzipping nginx."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        sys.exit("error: nginx missing: apt-get install nginx-light")
    runs = {}
    for mode in ("identity", "gzip"):
        server = bench.Server("trickle")
        tmp = tempfile.mkdtemp(prefix="trickle-bench-nginx-")
        port = bench.free_port()
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(NGINX_GZIP.format(dir=tmp, port=port, upstream=server.port))
        proxy = subprocess.Popen([nginx, "-c", os.path.join(tmp, "nginx.conf"), "-p", tmp],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        report = os.path.join(tmp, "report.json")
        try:
            time.sleep(0.5)
            seconds = int(streams / 1000 + 3 + hold + 3)
            args = client_command("trickle-load", load_bin, f"http://127.0.0.1:{port}", port,
                                  streams, 1_000, 64, seconds)
            args += ["--stream-report", report]
            if mode == "gzip":
                args.append("--compressed=gzip")
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(streams / 1000 + 3)
            held = bench.metric(server.base, "trickle_streams_active")
            rss = 0
            w0 = time.monotonic()
            while time.monotonic() - w0 < hold:
                time.sleep(1)
                rss = max(rss, bench.usage(proc.pid)[1])
            proc.wait(timeout=seconds + 60)
            with open(report) as f:
                encodings = json.load(f).get("summary", {}).get("encodings", {})
            runs[mode] = {"held": held, "rss_kib": rss, "encodings": encodings}
            print(f"memory-gzip {mode}: {json.dumps(runs[mode])}", file=sys.stderr, flush=True)
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
            server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    if runs["gzip"]["encodings"].get("gzip", 0) < streams:
        sys.exit(f"error: the streams were not gzipped: {runs['gzip']['encodings']}")
    per_stream = (runs["gzip"]["rss_kib"] - runs["identity"]["rss_kib"]) / streams
    return {"profile": "memory-gzip", "streams": streams, "runs": runs,
            "gzip_kib_per_stream": round(per_stream, 2)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=[*PROFILES, "memory", "memory-gzip", "all"], default="all")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--load-bin", default=bench.LOAD, help="the trickle-load binary to measure")
    p.add_argument("--also", action="append", default=[], metavar="NAME=BIN",
                   help="another build measured in the same rounds, e.g. before=/tmp/old/trickle-load (repeatable)")
    p.add_argument("--tag", default="", help="suffix of the result files (e.g. before)")
    p.add_argument("--code-commit", help="the commit --load-bin was built from (default: this checkout's)")
    p.add_argument("--load-args", default="", help="extra trickle-load flags, e.g. '--threads 2'")
    args = p.parse_args()
    LOAD_ARGS.extend(args.load_args.split())
    for path in (args.load_bin, FLOOR, os.path.join(bench.RELEASE, "trickle")):
        if not os.path.exists(path):
            sys.exit(f"error: {path} missing: cargo build --release --workspace --bins --examples")
    bench.ensure_port_range()
    os.makedirs(bench.RESULTS, exist_ok=True)
    commit = subprocess.run(["git", "-C", bench.ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    meta = {"date": str(datetime.date.today()), "commit": commit, "code_commit": args.code_commit or commit,
            "load_args": args.load_args,
            "cpus": os.cpu_count(),
            "kernel": platform.release(), "load_bin": args.load_bin, "command": " ".join(sys.argv)}
    profiles = [*PROFILES, "memory", "memory-gzip"] if args.profile == "all" else [args.profile]
    for profile in profiles:
        if profile == "memory":
            result = memory(args.load_bin)
        elif profile == "memory-gzip":
            result = memory_gzip(args.load_bin)
        else:
            result = cost(profile, args.load_bin, args.rounds, args.also)
        result.update(meta)
        suffix = f"-{args.tag}" if args.tag else ""
        with open(os.path.join(bench.RESULTS, f"client-cost-{profile}{suffix}.json"), "w") as f:
            json.dump(result, f, indent=2)
        summary = {k: v for k, v in result.items() if k != "runs"}
        print(json.dumps(summary))
    print(f"\nrerun: {meta['command']} ({meta['cpus']} CPUs, Linux {meta['kernel']}, commit {meta['commit']})")


if __name__ == "__main__":
    main()
