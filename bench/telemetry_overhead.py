#!/usr/bin/env python3
"""What trickle's telemetry costs: server CPU time per chunk at saturation.

Runs the release binary four ways on loopback and streams the same chunks
through it as fast as the clients read (interval_ms=0):

  off        --metrics false, no OTLP endpoint
  metrics    metrics only (the default without an endpoint)
  unsampled  metrics + OTLP endpoint, OTEL_TRACES_SAMPLER=always_off
  recorded   metrics + every chunk span recorded and exported over
             OTLP/HTTP to a local receiver (examples/otlp_sink.rs)

For each run it reads the server's CPU time (utime + stime, /proc/PID/stat)
before and after, waits for span export to finish when spans are recorded
(the batch exporter's CPU is part of the cost), and divides by the chunks
sent. Each mode runs --repeat times; the median is reported.

    cargo build --release --bin trickle --example otlp_sink
    bench/telemetry_overhead.py                 # all modes
    bench/telemetry_overhead.py --modes off,metrics --streams 4 --chunks 100000

Loopback only. Clients are curl processes reading to /dev/null. With two
or more CPUs the server is pinned to CPU 0 and the clients and receiver to
CPU 1 (taskset), so they do not steal each other's time.
"""

import argparse
import datetime
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRICKLE = os.path.join(ROOT, "target", "release", "trickle")
SINK = os.path.join(ROOT, "target", "release", "examples", "otlp_sink")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def pinned(cpu):
    """A taskset prefix when the machine has a CPU to spare for the clients."""
    if (os.cpu_count() or 1) >= 2 and subprocess.run(["which", "taskset"], capture_output=True).returncode == 0:
        return ["taskset", "-c", str(cpu)]
    return []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def wait_ready(url, proc):
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"error: server exited early ({proc.returncode})")
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"error: {url} never answered")


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def run_mode(mode, args):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRICKLE_"))}
    env["RUST_LOG"] = "warn"
    flags = ["--host", "127.0.0.1", "--port", str(port), "--max-streams", "1000"]
    sink = None
    if mode == "off":
        flags += ["--metrics", "false"]
    if mode in ("unsampled", "recorded"):
        sink_port = free_port()
        sink = subprocess.Popen(pinned(1) + [SINK, f"127.0.0.1:{sink_port}"], stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        env.update({
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            # A queue that holds the whole run, so every span is exported
            # (and its export cost counted) rather than dropped.
            "OTEL_BSP_MAX_QUEUE_SIZE": str(args.streams * args.chunks + 1024),
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8192",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_TRACES_SAMPLER": "always_off" if mode == "unsampled" else "always_on",
        })
    server = subprocess.Popen(pinned(0) + [TRICKLE, "--workers", "1"] + flags, env=env, stdout=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/healthz", server)
        url = f"{base}/sse?chunks={args.chunks}&interval_ms=0&size={args.size}"
        cpu0 = cpu_seconds(server.pid)
        t0 = time.monotonic()
        clients = [subprocess.Popen(pinned(1) + ["curl", "-sS", "-o", "/dev/null", url]) for _ in range(args.streams)]
        for c in clients:
            if c.wait() != 0:
                sys.exit(f"error: curl failed in mode {mode}")
        wall = time.monotonic() - t0
        spans = None
        if mode == "recorded":
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                text = get(base + "/metrics")
                ended = metric(text, "trickle_otel_spans_ended_total")
                done = metric(text, "trickle_otel_spans_exported_total") + metric(text, "trickle_otel_spans_export_failed_total")
                if ended > 0 and done >= ended:
                    break
                time.sleep(0.2)
            spans = (ended, metric(text, "trickle_otel_spans_exported_total"))
        cpu = cpu_seconds(server.pid) - cpu0
        chunks = args.streams * args.chunks
        return {"cpu_us_per_chunk": cpu / chunks * 1e6, "cpu_s": cpu, "wall_s": wall,
                "chunks_per_s": chunks / wall, "spans": spans}
    finally:
        server.terminate()
        server.wait()
        if sink:
            sink.terminate()
            sink.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default="off,metrics,unsampled,recorded")
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--chunks", type=int, default=250_000, help="chunks per stream")
    p.add_argument("--size", type=int, default=64, help="payload bytes per chunk")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    for path in (TRICKLE, SINK):
        if not os.path.exists(path):
            sys.exit(f"error: {path} missing: cargo build --release --bin trickle --example otlp_sink")

    results = {}
    for mode in args.modes.split(","):
        runs = []
        for i in range(args.repeat):
            r = run_mode(mode, args)
            runs.append(r)
            extra = f", spans ended/exported {r['spans'][0]:.0f}/{r['spans'][1]:.0f}" if r["spans"] else ""
            print(f"  {mode} run {i + 1}: {r['cpu_us_per_chunk']:.3f} us CPU/chunk, "
                  f"{r['chunks_per_s']:.0f} chunks/s{extra}", file=sys.stderr)
        results[mode] = runs

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"\nMachine: {os.cpu_count()} CPUs ({cpu_model}), {platform.system()} {platform.release()}; "
          f"{datetime.date.today()}; commit {commit}")
    print(f"Load: {args.streams} SSE streams x {args.chunks} chunks of {args.size} payload bytes, interval 0, "
          f"curl clients on loopback; one server worker{' pinned to CPU 0, clients on CPU 1' if pinned(0) else ''}; "
          f"median of {args.repeat} runs.\n")
    base = statistics.median(r["cpu_us_per_chunk"] for r in results["off"]) if "off" in results else None
    print("| mode | server CPU per chunk | vs off | chunks/s |")
    print("| --- | --- | --- | --- |")
    for mode, runs in results.items():
        cpu = statistics.median(r["cpu_us_per_chunk"] for r in runs)
        rate = statistics.median(r["chunks_per_s"] for r in runs)
        ratio = f"{cpu / base:.2f}x" if base else "-"
        print(f"| {mode} | {cpu:.3f} us | {ratio} | {rate:,.0f} |")
    if "recorded" in results and "unsampled" in results:
        span = statistics.median(r["cpu_us_per_chunk"] for r in results["recorded"]) - \
            statistics.median(r["cpu_us_per_chunk"] for r in results["unsampled"])
        print(f"\nA recorded and exported chunk span costs {span:.3f} us of server CPU (recorded - unsampled).")
    print(f"\nrerun: {' '.join([sys.argv[0]] + sys.argv[1:])}")


if __name__ == "__main__":
    main()
