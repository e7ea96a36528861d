#!/usr/bin/env python3
"""trickle beside the servers users would deploy instead, on the same
machine, under the same client (trickle-load), loopback only.

    cargo build --release --workspace --bins --examples
    bench/run.py                                   # every scenario, every server
    bench/run.py --scenario capacity --servers trickle,bare-actix --n 1000,5000
    bench/run.py --scenario paced --servers node,uvicorn

Servers: trickle (metrics on), trickle-off (--metrics false), trickle-spans
(metrics + every chunk span recorded and exported to examples/otlp_sink),
bare-actix (examples/bare_actix.rs), node (bench/servers/node_sse.mjs),
uvicorn (uvicorn + sse-starlette), flask (Flask's threaded server) and
gunicorn (--workers 1 --threads 8), both running bench/servers/flask_params.py,
the classic example with stream parameters; flask-classic and
gunicorn-classic run the article's example exactly as written
(bench/servers/flask_classic.py; `python flask_classic.py` binds 8080).
Python tools run from a venv the script makes in bench/.venv (pip: flask
gunicorn uvicorn sse-starlette locust).

Scenarios:
  capacity  N concurrent SSE streams (an event every 5 s, or --interval-ms;
            heartbeats in between): streams established, first event p99,
            client-side gap p99 against the interval, server RSS per open
            stream, server CPU while holding them.
  paced     1,000 streams, a 64-byte event every 10 ms each: server CPU per
            event, client-side gap p99 (does the server keep the pace?).
  burst     100 streams of 2,000 events as fast as possible: events/s and
            server CPU per event.
  ttfb      10,000 open streams while new one-event streams arrive at 500/s
            (trickle-load --stream-rate): client TTFB p50/p99 of the new ones.
  classic   the article's GET /stream (ten lines, one per second) to N
            clients at once: how many get all ten lines within 15 s.
  search    trickle-load capacity against each server, for idle streams
            (an event every 5 s) and busy ones (a 64-byte event every
            100 ms): the most concurrent streams within SLO (first event
            p99 <= 100 ms, gap p99 <= interval + 100 ms, errors <= 0.1%),
            what limited it, and the Cloud Run settings it implies. One
            client process (up to its open-files limit, ~19,900 streams).
  goodput-search  trickle-load capacity and guidellm (--profile goodput,
            pinned, in bench/.venv-guidellm, offline with a local tokenizer)
            search the same simulated model (TPOT = 20 ms x (1 + 0.01 n)) for
            the most streams with 95% of requests at TPOT <= 30 ms, probes
            held 5 s and 2 s: answer, probes, unresolved probes, wall time,
            client CPU.
  clients   the load generators: trickle-load and Locust (HttpUser, requests
            streaming) each hold N SSE streams (an event a second each, or
            --client-interval-ms) against trickle in one process: client CPU
            and RSS, and the streams trickle itself counts open.

Each run records the server process's CPU seconds and peak RSS from /proc
(children included, for servers that fork). Raw results go to
bench/results/<scenario>-<server>-<n>.json; bench/report.py renders them
into BENCHMARKS.md.
"""

import argparse
import atexit
import datetime
import glob
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
RELEASE = os.path.join(ROOT, "target", "release")
LOAD = os.path.join(RELEASE, "trickle-load")
VENV = os.path.join(BENCH, ".venv")
RESULTS = os.path.join(BENCH, "results")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PER_PROCESS = 9_500  # streams per trickle-load process (fd cap 20,000)
# Debian's jemalloc (apt-get install libjemalloc2), for bare-actix-jemalloc.
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid):
    """pid and its descendants."""
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        pids += kids
        frontier += kids
    return pids


def usage(pid):
    """(cpu seconds, rss KiB) of a process tree."""
    cpu, rss = 0.0, 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK
            with open(f"/proc/{p}/status") as f:
                rss += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return cpu, rss


PORT_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"


def ensure_port_range(connections=20_000):
    """Linux scans ip_local_port_range for each connect(), even ports first:
    past half the range towards one server address, connects stall in the
    kernel and delay the client's other streams (loadtest/src/infra/ports.rs). The
    default 32768-60999 is too narrow for 19,000 streams; widen it for the
    run (root only) and put it back at exit."""
    try:
        with open(PORT_RANGE) as f:
            old = f.read().split()
    except OSError:
        return
    if (int(old[1]) - int(old[0]) + 1) // 2 >= connections:
        return
    try:
        with open(PORT_RANGE, "w") as f:
            f.write("1024 65535")
    except OSError:
        print(f"warning: {PORT_RANGE} is {' '.join(old)}: too narrow for {connections} client connections; "
              "run as root or: sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"", file=sys.stderr)
        return
    print(f"widened {PORT_RANGE} from {' '.join(old)} to 1024 65535 for this run", file=sys.stderr)

    def restore():
        with open(PORT_RANGE, "w") as f:
            f.write(" ".join(old))
    atexit.register(restore)


def python(tool):
    return os.path.join(VENV, "bin", tool)


def ensure_venv():
    if all(os.path.exists(python(tool)) for tool in ("gunicorn", "uvicorn", "locust")):
        return
    print("setting up bench/.venv (flask, gunicorn, uvicorn, sse-starlette, locust)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([python("pip"), "install", "-q", "flask", "gunicorn", "uvicorn", "sse-starlette", "locust"],
                   check=True)


def server_command(name, port, sink_port):
    trickle = [os.path.join(RELEASE, "trickle"), "--host", "127.0.0.1", "--port", str(port), "--max-streams", "20000"]
    servers = {
        "trickle": (trickle, {}),
        "trickle-off": (trickle + ["--metrics", "false"], {}),
        "trickle-llm": (trickle + LLM_MODEL, {}),
        "trickle-goodput": (trickle + GOODPUT_MODEL, {}),
        "trickle-spans": (trickle, {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
                                    "OTEL_BSP_MAX_QUEUE_SIZE": "65536", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096"}),
        "bare-actix": ([os.path.join(RELEASE, "examples", "bare_actix")], {"PORT": str(port)}),
        # The same bare server on the allocator trickle's binary links
        # (jemalloc 5.3, Debian's libjemalloc2): the floor with the
        # allocator held equal.
        "bare-actix-jemalloc": ([os.path.join(RELEASE, "examples", "bare_actix")],
                                {"PORT": str(port), "LD_PRELOAD": JEMALLOC}),
        "node": (["node", os.path.join(BENCH, "servers", "node_sse.mjs"), str(port)], {}),
        "uvicorn": ([python("uvicorn"), "starlette_sse:app", "--app-dir", os.path.join(BENCH, "servers"),
                     "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
                     "--backlog", "4096"], {}),
        "flask": ([python("python"), os.path.join(BENCH, "servers", "flask_params.py"), str(port)], {}),
        "gunicorn": ([python("gunicorn"), "--workers", "1", "--threads", "8", "--chdir", os.path.join(BENCH, "servers"),
                      "-b", f"127.0.0.1:{port}", "--log-level", "warning", "flask_params:app"], {}),
        # The article's example exactly as written: `python app.py` (Flask's
        # debug server with its reloader, threaded, on 0.0.0.0:8080) ...
        "flask-classic": ([python("python"), os.path.join(BENCH, "servers", "flask_classic.py")], {}),
        # ... and under gunicorn the way Cloud Run's Python samples run it.
        "gunicorn-classic": ([python("gunicorn"), "--workers", "1", "--threads", "8", "--chdir",
                              os.path.join(BENCH, "servers"), "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                              "flask_classic:app"], {}),
    }
    return servers[name]


class Server:
    def __init__(self, name):
        self.name = name
        # The classic example binds the port it was written with.
        self.port = 8080 if name == "flask-classic" else free_port()
        self.sink = None
        sink_port = free_port()
        if name == "trickle-spans":
            self.sink = subprocess.Popen([os.path.join(RELEASE, "examples", "otlp_sink"), f"127.0.0.1:{sink_port}"],
                                         stdout=subprocess.DEVNULL)
        command, env = server_command(name, self.port, sink_port)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRICKLE_"))}
        full_env.update(env, RUST_LOG="warn")
        self.proc = subprocess.Popen(command, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{name} exited at start ({self.proc.returncode})")
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{name} never listened")
        time.sleep(0.3)

    def usage(self):
        return usage(self.proc.pid)

    def stop(self):
        for p in (self.proc, self.sink):
            if p:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


def load(server, users, run_time, chunks, interval_ms, size, rate, idle_timeout="60s", transport="sse", path=None):
    """Runs trickle-load (several processes past PER_PROCESS users) while
    sampling the server; returns (merged report, samples)."""
    procs = max(1, math.ceil(users / PER_PROCESS))
    tmp = tempfile.mkdtemp(prefix="trickle-bench-")
    reports, clients = [], []
    for i in range(procs):
        n = users // procs + (1 if i < users % procs else 0)
        report = os.path.join(tmp, f"part-{i}.json")
        reports.append(report)
        clients.append(subprocess.Popen(
            [LOAD, "--host", server.base, "--users", str(n), "--increase-rate", str(max(1, rate // procs)),
             "--run-time", f"{run_time}s", "--transport", transport, "--chunks", str(chunks),
             "--interval-ms", str(interval_ms), "--size", str(size), "--idle-timeout", idle_timeout,
             "--quiet", "--no-print-metrics", "--progress-secs", "0",
             "--stream-report", report] + (["--path", path] if path else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    samples = []
    t0 = time.monotonic()
    while any(c.poll() is None for c in clients):
        cpu, rss = server.usage()
        samples.append((time.monotonic() - t0, cpu, rss))
        time.sleep(0.5)
    merged = os.path.join(tmp, "all.json")
    subprocess.run([LOAD, "merge", *reports, "-o", merged], check=True, stdout=subprocess.DEVNULL)
    with open(merged) as f:
        return json.load(f), samples


# The summary's measure keys, by the labels the report tables use.
LABELS = {"connect": "TCP connect", "headers": "time to headers", "first_byte": "TTFB, first body byte",
          "first_event": "TTFB, first event", "gap": "gap between events", "lifetime": "connection lifetime",
          "cutoff": "age at cut-off", "resume": "resume (cut to next event)"}


def percentiles(report):
    """The report's summary measures (trickle-load derives them from its
    histograms: HDR decoding stays in Rust), by table label."""
    rows = {}
    for key, m in report["summary"]["measures"].items():
        if m["count"]:
            rows[LABELS.get(key, key)] = {"count": m["count"], "p50": m["p50_ms"], "p90": m["p90_ms"],
                                          "p99": m["p99_ms"], "max": m["max_ms"]}
    return rows


def markdown_table(path):
    """The summary measures of a JSON report file."""
    with open(path) as f:
        return percentiles(json.load(f))


def ends(report):
    """Connections by how they ended: `summary.ends` (schema 2), or the
    top-level `ends` of reports written before it."""
    return report["summary"]["ends"] if "summary" in report and report["summary"].get("ends") else report["ends"]


def peak_open(report):
    return max((sum(p["open"].values()) for p in report["timeline"]), default=0)


def capacity(server, n, hold, interval_ms=5_000):
    ramp = max(1, n // 2000)
    idle_cpu, idle_rss = server.usage()
    report, samples = load(server, n, ramp + hold, 1_000_000, interval_ms, 0, min(2000, n))
    hold_samples = [s for s in samples if ramp + 3 <= s[0] <= ramp + hold - 1]
    rows = percentiles(report)
    first = rows.get("TTFB, first event", {})
    gap = rows.get("gap between events", {})
    established = peak_open(report)
    rss = max((s[2] for s in hold_samples), default=0)
    cpu = ((hold_samples[-1][1] - hold_samples[0][1]) / max(0.1, hold_samples[-1][0] - hold_samples[0][0])
           if len(hold_samples) > 1 else float("nan"))
    return {
        "n": n, "established": established,
        "first_event_p99_ms": first.get("p99"),
        "interval_ms": interval_ms, "gaps": gap.get("count", 0),
        "gap_p50_ms": gap.get("p50"), "gap_p99_ms": gap.get("p99"), "gap_max_ms": gap.get("max"),
        "rss_idle_kib": idle_rss, "rss_holding_kib": rss,
        "rss_per_stream_kib": (rss - idle_rss) / max(1, established),
        "cpu_holding_share": cpu,
        "ends": ends(report),
    }


SEARCH_PROFILES = {
    # profile: (interval_ms, size)
    "idle": (5_000, 0),
    "busy": (100, 64),
}


def search(server, profile, hold=10, processes=1):
    """trickle-load capacity against the server (its levels held by
    `processes` client processes); returns its report plus the server's
    peak RSS over the whole search."""
    interval_ms, size = SEARCH_PROFILES[profile]
    tmp = tempfile.mkdtemp(prefix="trickle-search-")
    out = os.path.join(tmp, "capacity.json")
    command = [LOAD, "capacity", "--host", server.base, "--transport", "sse",
               "--chunks", "1000000", "--interval-ms", str(interval_ms), "--size", str(size),
               "--idle-timeout", "60s",
               "--slo-ttfb-p99", "100ms", "--slo-gap-p99", f"{interval_ms + 100}ms", "--slo-error-rate", "0.001",
               "--start", "100", "--hold", f"{hold}s", "--warmup", "3s", "--settle", "3s",
               "--ramp-rate", "1000", "--max-time", "20m", "--target-streams", "100000",
               "--processes", str(processes), "--report", out]
    if server.name != "trickle":
        command += ["--metrics-url", "none"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_rss = 0
    while proc.poll() is None:
        peak_rss = max(peak_rss, server.usage()[1])
        time.sleep(0.5)
    progress = proc.stderr.read() if proc.stderr else ""
    if not os.path.exists(out):
        raise RuntimeError(f"trickle-load capacity exited {proc.returncode}: {progress[-500:]}")
    with open(out) as f:
        report = json.load(f)
    return {"profile": profile, "interval_ms": interval_ms, "size": size, "exit_code": proc.returncode,
            "client_processes": processes, "server_peak_rss_kib": peak_rss, "load_command": " ".join(["trickle-load", *command[1:-2]]), **report}


def paced(server, streams=1000, seconds=20, interval_ms=10):
    cpu0, _ = server.usage()
    report, samples = load(server, streams, seconds, 1_000_000, interval_ms, 64, 1000)
    cpu1, _ = server.usage()
    rows = percentiles(report)
    gap = rows.get("gap between events", {})
    return {
        "streams": streams, "interval_ms": interval_ms, "events": report["events"],
        "cpu_us_per_event": (cpu1 - cpu0) / max(1, report["events"]) * 1e6,
        "events_per_s": report["events"] / max(0.1, report["duration_s"]),
        "gap_p50_ms": gap.get("p50"), "gap_p99_ms": gap.get("p99"),
        "lateness_p99_ms": (gap.get("p99") or 0) - interval_ms,
        "peak_rss_kib": max(s[2] for s in samples),
    }


def burst(server, streams=100, events=2000):
    cpu0, _ = server.usage()
    t0 = time.monotonic()
    report, _ = load(server, streams, 30, events, 0, 64, 1000)
    cpu1, _ = server.usage()
    completed = ends(report).get("completed", 0)
    wall = time.monotonic() - t0
    return {
        "streams": streams, "events_per_stream": events, "events": report["events"], "completed": completed,
        "events_per_s": report["events"] / max(0.1, report["duration_s"]),
        "cpu_us_per_event": (cpu1 - cpu0) / max(1, report["events"]) * 1e6,
        "wall_s": wall,
    }


def ttfb_under_load(server, held=10_000, rate=500, seconds=20):
    """Scenario 3: `held` open idle streams while new short streams arrive
    at `rate` per second (--stream-rate); client TTFB of the new ones."""
    tmp = tempfile.mkdtemp(prefix="trickle-bench-ttfb-")
    procs = max(1, math.ceil(held / PER_PROCESS))
    ramp = max(1, held // 2000)
    holders = [subprocess.Popen(
        [LOAD, "--host", server.base, "--users", str(held // procs), "--increase-rate", str(2000 // procs),
         "--run-time", f"{ramp + seconds + 4}s", "--transport", "sse", "--chunks", "1000000", "--interval-ms", "5000",
         "--idle-timeout", "60s", "--quiet", "--no-print-metrics", "--progress-secs", "0",
         "--stream-report", os.path.join(tmp, f"held-{i}.json")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(procs)]
    time.sleep(ramp + 2)
    report_path = os.path.join(tmp, "arrivals.json")
    subprocess.run(
        [LOAD, "--host", server.base, "--users", "50", "--increase-rate", "50", "--run-time", f"{seconds}s",
         "--stream-rate", str(rate), "--transport", "sse", "--chunks", "1", "--interval-ms", "0",
         "--quiet", "--no-print-metrics", "--progress-secs", "0", "--stream-report", report_path],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    for h in holders:
        h.wait()
    with open(report_path) as f:
        arrivals = json.load(f)
    subprocess.run([LOAD, "merge", *[os.path.join(tmp, f"held-{i}.json") for i in range(procs)], "-o",
                    os.path.join(tmp, "held.json")], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(tmp, "held.json")) as f:
        held_report = json.load(f)
    rows = markdown_table(report_path)
    first = rows.get("TTFB, first event", {})
    return {"held": peak_open(held_report), "rate": rate, "new_streams": arrivals["connections"],
            "arrivals_per_s": arrivals["connections"] / max(0.1, arrivals["duration_s"]),
            "ttfb_p50_ms": first.get("p50"), "ttfb_p99_ms": first.get("p99"), "ends": ends(arrivals)}


def classic(server, n, run_time=15):
    """The article's stream (GET /stream: ten lines, one per second) to n
    concurrent clients at once: how many get all ten lines, on time."""
    report, samples = load(server, n, run_time, 10, 1_000, 0, min(2000, n), transport="text", path="/stream")
    rows = percentiles(report)
    first = rows.get("TTFB, first event", {})
    gap = rows.get("gap between events", {})
    return {
        "n": n, "run_time_s": run_time, "connections": report["connections"],
        "completed": ends(report).get("completed", 0), "events": report["events"],
        "first_line_p50_ms": first.get("p50"), "first_line_p99_ms": first.get("p99"),
        "got_first_line": first.get("count", 0), "peak_open": peak_open(report),
        "gap_p99_ms": gap.get("p99"), "peak_rss_kib": max((s[2] for s in samples), default=0),
        "ends": ends(report),
    }


def metric(base, name):
    """One unlabelled-sum value from a Prometheus text endpoint."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#") and line[len(name)] in " {")


def clients(server, client, n, hold=20, interval_ms=5_000):
    """Scenario 4: one client process (trickle-load or Locust) holds n SSE
    streams against trickle; the client's CPU and RSS while holding, and the
    streams trickle itself counts open (trickle_streams_active)."""
    rate = 1000
    ramp = math.ceil(n / rate)
    run_time = ramp + hold + 2
    path = f"/sse?chunks=1000000&interval_ms={interval_ms}"
    if client == "trickle-load":
        command = [LOAD, "--host", server.base, "--users", str(n), "--increase-rate", str(rate),
                   "--run-time", f"{run_time}s", "--transport", "sse", "--chunks", "1000000",
                   "--interval-ms", str(interval_ms), "--idle-timeout", "60s", "--quiet", "--no-print-metrics",
                   "--progress-secs", "0"]
        env = None
    else:
        command = [python("locust"), "-f", os.path.join(BENCH, "clients", "locust_sse.py"), "--headless",
                   "-u", str(n), "-r", str(rate), "-t", f"{run_time}s", "--host", server.base,
                   "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "0"]
        env = {**os.environ, "TRICKLE_SSE_PATH": path}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    samples, held = [], []
    while proc.poll() is None and time.monotonic() - t0 < run_time + 30:
        t = time.monotonic() - t0
        cpu, rss = usage(proc.pid)
        samples.append((t, cpu, rss))
        if ramp + 2 <= t <= ramp + hold:
            held.append(metric(server.base, "trickle_streams_active"))
        time.sleep(1)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    window = [s for s in samples if ramp + 2 <= s[0] <= ramp + hold]
    if len(window) < 2:
        raise RuntimeError(f"{client} ran {len(samples)} s, too short to measure a hold")
    streams = min(held) if held else 0
    cpu = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
    rss = max(s[2] for s in window)
    return {"client": client, "n": n, "held_min": streams, "held_max": max(held, default=0),
            "client_rss_kib": rss, "client_cpu_share": cpu, "interval_ms": interval_ms, "hold_s": hold}


SCENARIOS = {
    # scenario: (default servers, default counts)
    "capacity": ("trickle,trickle-off,bare-actix,node,uvicorn,flask,gunicorn", "1000,5000,10000,19000"),
    "paced": ("trickle,trickle-off,trickle-spans,bare-actix,node,uvicorn,flask,gunicorn", "0"),
    "burst": ("trickle,trickle-off,trickle-spans,bare-actix,node,uvicorn,flask", "0"),
    "ttfb": ("trickle,bare-actix,node,uvicorn", "0"),
    "classic": ("trickle,flask-classic,gunicorn-classic", "100,1000,5000"),
    # The clients scenario runs trickle and compares the load generators.
    "clients": ("trickle-load,locust", "10,1000,5000,9500"),
    # The search scenario's "counts" are its stream profiles.
    "search": ("trickle,bare-actix,node,uvicorn,flask,gunicorn", "idle,busy"),
    "llm": ("trickle-llm", "0"),
    # The llm-clients scenario runs trickle's simulated model and compares
    # LLM load generators on it.
    "llm-clients": ("trickle-load,aiperf", "50,200"),
    # The goodput searches of trickle-load and guidellm on one simulated
    # model; the "counts" are the seconds each probe (level) is held.
    "goodput-search": ("trickle-load,guidellm", "5,2"),
    # guidellm against trickle as a user runs it: its default backend
    # validation (GET /health) on; the "count" is the requests it sends.
    "guidellm-check": ("guidellm", "5"),
}


LLM_MODEL = ["--llm-ttft", "200ms", "--llm-decode-rate", "50", "--llm-tokens-per-chunk", "1"]
# Decode slows with load: TPOT = 20 ms x (1 + 0.01 n), within 30 ms up to
# n = 50 streams.
GOODPUT_MODEL = ["--llm-ttft", "10ms", "--llm-decode-rate", "50", "--llm-slowdown", "0.01"]


def llm(server, max_tokens=200, hold=10, measure_seconds=20):
    """How many simulated LLM streams (50 tokens/s, a chunk per token) one
    trickle process holds with ITL p99 <= 30 ms: trickle-load capacity with
    --api; then the server's CPU per token at the answer, from a fixed run."""
    tmp = tempfile.mkdtemp(prefix="trickle-llm-")
    out = os.path.join(tmp, "capacity.json")
    command = [LOAD, "capacity", "--host", server.base, "--api", "openai-chat", "--model", "trickle-sim",
               "--max-tokens", str(max_tokens), "--prompt-tokens", "64", "--idle-timeout", "60s",
               "--slo-itl-p99", "30ms", "--slo-error-rate", "0.001",
               "--start", "100", "--hold", f"{hold}s", "--warmup", "5s", "--settle", "3s",
               "--ramp-rate", "1000", "--max-time", "20m", "--report", out]
    proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if not os.path.exists(out):
        raise RuntimeError(f"trickle-load capacity exited {proc.returncode}: {proc.stderr[-500:]}")
    with open(out) as f:
        report = json.load(f)
    answer = report["capacity"].get("max_streams")
    per_token = None
    if answer:
        tokens0 = metric(server.base, 'gen_ai_server_token_usage_sum{gen_ai_operation_name="chat",gen_ai_provider_name="trickle",gen_ai_request_model="trickle-sim",gen_ai_token_type="output"}')
        cpu0, _ = server.usage()
        run = [LOAD, "--host", server.base, "--api", "openai-chat", "--model", "trickle-sim",
               "--max-tokens", str(max_tokens), "--prompt-tokens", "64", "--users", str(answer),
               "--increase-rate", "1000", "--run-time", f"{measure_seconds}s", "--quiet", "--no-print-metrics",
               "--progress-secs", "0"]
        subprocess.run(run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu1, _ = server.usage()
        tokens1 = metric(server.base, 'gen_ai_server_token_usage_sum{gen_ai_operation_name="chat",gen_ai_provider_name="trickle",gen_ai_request_model="trickle-sim",gen_ai_token_type="output"}')
        if tokens1 and tokens0 is not None and tokens1 > tokens0:
            per_token = (cpu1 - cpu0) / (tokens1 - tokens0) * 1e6
    return {"model": " ".join(LLM_MODEL), "max_tokens": max_tokens, "exit_code": proc.returncode,
            "cpu_us_per_token": per_token, "load_command": " ".join(["trickle-load", *command[1:-2]]), **report}


AIPERF_VENV = os.path.join(BENCH, ".venv-aiperf")
AIPERF_VERSION = "0.13.0"


def ensure_aiperf():
    """AIPerf (NVIDIA's LLM benchmark client) in a virtualenv of its own, and
    a local tokenizer for trickle's simulated model."""
    aiperf = os.path.join(AIPERF_VENV, "bin", "aiperf")
    if not os.path.exists(aiperf):
        print(f"setting up bench/.venv-aiperf (aiperf=={AIPERF_VERSION}, tokenizers)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", AIPERF_VENV], check=True)
        subprocess.run([os.path.join(AIPERF_VENV, "bin", "pip"), "install", "-q",
                        f"aiperf=={AIPERF_VERSION}", "tokenizers"], check=True)
    tokenizer = os.path.join(AIPERF_VENV, "trickle-tokenizer")
    subprocess.run([os.path.join(AIPERF_VENV, "bin", "python"),
                    os.path.join(BENCH, "clients", "wordlevel_tokenizer.py"), tokenizer], check=True)
    return aiperf, tokenizer


def watch(proc, limit_s=1200):
    """Waits for proc, reading its whole process tree from /proc every
    quarter second: wall seconds, CPU seconds (user + system, every process
    seen), peak RSS in KiB (the tree's sum)."""
    t0 = time.monotonic()
    cpu_seen, peak_rss = {}, 0
    while proc.poll() is None and time.monotonic() - t0 < limit_s:
        rss_now = 0
        for p in tree(proc.pid):
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                cpu_seen[p] = (int(fields[11]) + int(fields[12])) / CLK_TCK
                with open(f"/proc/{p}/status") as f:
                    rss_now += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            except (OSError, StopIteration):
                pass
        peak_rss = max(peak_rss, rss_now)
        time.sleep(0.25)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    return time.monotonic() - t0, sum(cpu_seen.values()), peak_rss


GUIDELLM_VENV = os.path.join(BENCH, ".venv-guidellm")
GUIDELLM_VERSION = "0.8.1"


def ensure_guidellm():
    """guidellm (from PyPI, pinned) in a virtualenv of its own (it brings
    torch: about 6 GB), and the local tokenizer of trickle's simulated
    model, so it runs offline."""
    guidellm = os.path.join(GUIDELLM_VENV, "bin", "guidellm")
    if not os.path.exists(guidellm):
        print(f"setting up bench/.venv-guidellm (guidellm=={GUIDELLM_VERSION})", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", GUIDELLM_VENV], check=True)
        subprocess.run([os.path.join(GUIDELLM_VENV, "bin", "pip"), "install", "-q",
                        f"guidellm=={GUIDELLM_VERSION}"], check=True)
    tokenizer = os.path.join(GUIDELLM_VENV, "trickle-tokenizer")
    subprocess.run([os.path.join(GUIDELLM_VENV, "bin", "python"),
                    os.path.join(BENCH, "clients", "wordlevel_tokenizer.py"), tokenizer], check=True)
    return guidellm, tokenizer


def goodput_search(server, client, probe_s, max_tokens=10, prompt_tokens=32):
    """The same goodput search from trickle-load (`capacity --slo-goodput`)
    and guidellm (`--profile kind=goodput`) on the same model: at least 95%
    of requests with TPOT <= 30 ms, levels doubling from 4 streams then
    bisected to 10%, each held probe_s seconds (trickle-load holds an
    unresolved level longer, up to 4x; guidellm records it unresolved).
    The answer, the probes, the unresolved ones, wall time, client CPU."""
    tmp = tempfile.mkdtemp(prefix="trickle-goodput-")
    out = os.path.join(tmp, "search.json")
    env = dict(os.environ)
    if client == "trickle-load":
        command = [LOAD, "capacity", "--host", server.base, "--api", "openai-chat", "--model", "trickle-sim",
                   "--max-tokens", str(max_tokens), "--prompt-tokens", str(prompt_tokens), "--start", "4",
                   "--precision", "0.1", "--slo-goodput", "0.95", "--goodput", "tpot:30ms",
                   "--hold", f"{probe_s}s", "--warmup", "0s", "--settle", "0s", "--ramp-rate", "1000",
                   "--metrics-url", "none", "--report", out]
    else:
        guidellm, tokenizer = ensure_guidellm()
        env["HF_HUB_OFFLINE"] = "1"
        # guidellm's default backend validation (GET /health) on.
        command = [guidellm, "run", "--backend",
                   f"kind=openai_http,target={server.base},model=trickle-sim",
                   "--profile", "kind=goodput,initial_streams=4,target_attainment=0.95,tolerance=0.1",
                   "--metrics", '{"kind":"generative","slo":{"tpot_ms":30}}',
                   "--constraint", f"kind=max_duration,seconds={probe_s}",
                   "--data", f"kind=synthetic_text,prompt_tokens={prompt_tokens},output_tokens={max_tokens}",
                   "--tokenizer", f"kind=hf_auto,model={tokenizer}",
                   "--output", f"kind=json,path={out}", "--disable-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall, cpu, peak_rss = watch(proc)
    result = {"client": client, "n": probe_s, "probe_s": probe_s, "model": " ".join(GOODPUT_MODEL),
              "max_tokens": max_tokens, "prompt_tokens": prompt_tokens, "exit_code": proc.returncode,
              "wall_s": round(wall, 2), "client_cpu_s": round(cpu, 2), "client_peak_rss_kib": peak_rss,
              "command": " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(command))
              .replace(server.base, "http://127.0.0.1:PORT").replace(tmp, "TMP")
              .replace(GUIDELLM_VENV + "/", "bench/.venv-guidellm/")}
    with open(out) as f:
        report = json.load(f)
    if client == "trickle-load":
        c = report["capacity"]
        levels = c["levels"]
        result.update(answer=c["max_streams"], lowest_failing=min(
            (l["streams"] for l in levels if l["verdict"] == "FAIL"), default=None),
            probes=[{"streams": l["streams"], "verdict": l["verdict"], "held_s": l["held_for_s"],
                     "attainment": l["goodput"], "samples": l["measures"]["goodput"]["samples"],
                     "lower": l["measures"]["goodput"]["ci_low"], "upper": l["measures"]["goodput"]["ci_high"]}
                    for l in levels],
            unresolved=len(c["unresolved_levels"]),
            extended=sum(1 for l in levels if l["held_for_s"] > probe_s + 0.5),
            held_s=round(sum(l["held_for_s"] for l in levels), 1))
    else:
        search = report["conclusions"][0]
        probes = search["probes"]
        result.update(answer=search.get("best_passing_streams"), lowest_failing=search.get("lowest_failing_streams"),
                      stop_reason=search.get("stop_reason"),
                      probes=[{"streams": p["streams"],
                               "verdict": ("PASS" if p["passed"] else "FAIL") if p["resolved"] else "UNRESOLVED",
                               "held_s": probe_s, "attainment": p["attainment"],
                               "samples": p["determined_requests"], "lower": p["attainment_lower"],
                               "upper": p["attainment_upper"]} for p in probes],
                      unresolved=sum(1 for p in probes if not p["resolved"]), extended=0,
                      held_s=round(sum(b["duration"] for b in report["benchmarks"]), 1),
                      guidellm_version=GUIDELLM_VERSION)
    return result


def guidellm_check(server, requests):
    """guidellm as a user runs it against trickle, backend validation on
    (its GET /health before any request): `requests` synchronous requests,
    every one successful, or an error."""
    guidellm, tokenizer = ensure_guidellm()
    tmp = tempfile.mkdtemp(prefix="trickle-guidellm-")
    out = os.path.join(tmp, "out.json")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    command = [guidellm, "run", "--backend", f"kind=openai_http,target={server.base},model=trickle-sim",
               "--profile", "kind=synchronous", "--constraint", f"kind=max_requests,count={requests}",
               "--data", "kind=synthetic_text,prompt_tokens=32,output_tokens=10",
               "--tokenizer", f"kind=hf_auto,model={tokenizer}",
               "--output", f"kind=json,path={out}", "--disable-progress"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0 or not os.path.exists(out):
        raise RuntimeError(f"guidellm exited {proc.returncode}: {(proc.stdout + proc.stderr)[-800:]}")
    with open(out) as f:
        done = json.load(f)["benchmarks"][0]["requests"]
    count = lambda v: len(v) if isinstance(v, list) else (v or 0)  # noqa: E731 (lists of request stats)
    successful, errored = count(done.get("successful")), count(done.get("errored"))
    if successful != requests or errored:
        raise RuntimeError(f"guidellm: {successful} successful, {errored} errored of {requests}")
    return {"client": "guidellm", "n": requests, "successful": successful, "errored": errored,
            "guidellm_version": GUIDELLM_VERSION, "validate_backend": True,
            "command": " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(command))
            .replace(server.base, "http://127.0.0.1:PORT").replace(tmp, "TMP")
            .replace(GUIDELLM_VENV + "/", "bench/.venv-guidellm/")}


def llm_clients(server, client, n, max_tokens=100, prompt_tokens=64, per_user=4):
    """The same LLM load from trickle-load and from AIPerf against the same
    simulated model: n concurrent streams, about per_user requests each;
    what each reports (TTFT, ITL) and what it costs (client CPU, peak RSS of
    its whole process tree)."""
    tmp = tempfile.mkdtemp(prefix="trickle-llm-clients-")
    run_time = math.ceil(per_user * 2.3)
    if client == "trickle-load":
        out = os.path.join(tmp, "run.json")
        command = [LOAD, "--host", server.base, "--api", "openai-chat", "--model", "trickle-sim",
                   "--max-tokens", str(max_tokens), "--prompt-tokens", str(prompt_tokens), "--users", str(n),
                   "--increase-rate", "1000", "--run-time", f"{run_time}s", "--quiet", "--no-print-metrics",
                   "--progress-secs", "0", "--stream-report", out]
    else:
        aiperf, tokenizer = ensure_aiperf()
        out = os.path.join(tmp, "artifacts")
        command = [aiperf, "profile", "--model-names", "trickle-sim", "--url", server.base, "--endpoint-type",
                   "chat", "--streaming", "--tokenizer", tokenizer, "--concurrency", str(n), "--request-count",
                   str(n * per_user), "--synthetic-input-tokens-mean", str(prompt_tokens),
                   "--output-tokens-mean", str(max_tokens), "--ui-type", "none", "--artifact-dir", out]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall, cpu, peak_rss = watch(proc)
    result = {"client": client, "n": n, "max_tokens": max_tokens, "prompt_tokens": prompt_tokens,
              "exit_code": proc.returncode, "wall_s": round(wall, 2),
              "client_cpu_s": round(cpu, 2), "client_peak_rss_kib": peak_rss,
              "command": " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(command))}
    if client == "trickle-load":
        with open(out) as f:
            s = json.load(f)["summary"]
        result.update(requests=s["e2e"]["count"], ttft_p50_ms=s["ttft"]["p50_ms"], ttft_p99_ms=s["ttft"]["p99_ms"],
                      itl_p50_ms=s["itl"]["p50_ms"], itl_p99_ms=s["itl"]["p99_ms"],
                      tpot_p50_ms=s["tpot"]["p50_ms"], e2e_p50_ms=s["e2e"]["p50_ms"])
    else:
        with open(os.path.join(out, "profile_export_aiperf.json")) as f:
            a = json.load(f)
        result.update(requests=a["request_count"]["avg"], ttft_p50_ms=a["time_to_first_token"]["p50"],
                      ttft_p99_ms=a["time_to_first_token"]["p99"], itl_p50_ms=a["inter_chunk_latency"]["p50"],
                      itl_p99_ms=a["inter_chunk_latency"]["p99"], tpot_p50_ms=a["inter_token_latency"]["p50"],
                      e2e_p50_ms=a["request_latency"]["p50"], aiperf_version=a.get("aiperf_version"))
    return result


def run_one(scenario, name, n, args):
    """One measurement; returns its result (an error is a result too)."""
    server = Server("trickle" if scenario == "clients" else "trickle-llm" if scenario == "llm-clients"
                    else "trickle-goodput" if scenario in ("goodput-search", "guidellm-check") else name)
    try:
        if scenario == "capacity":
            return capacity(server, n, args.hold, args.interval_ms)
        if scenario == "paced":
            return paced(server, seconds=args.paced_seconds)
        if scenario == "ttfb":
            return ttfb_under_load(server)
        if scenario == "classic":
            return classic(server, n)
        if scenario == "clients":
            return clients(server, name, n, hold=args.hold, interval_ms=args.client_interval_ms)
        if scenario == "search":
            return search(server, n, processes=args.load_processes)
        if scenario == "llm":
            return llm(server)
        if scenario == "llm-clients":
            return llm_clients(server, name, n)
        if scenario == "goodput-search":
            return goodput_search(server, name, n)
        if scenario == "guidellm-check":
            return guidellm_check(server, n)
        return burst(server)
    except Exception as e:  # a server that falls over is a result too
        return {"n": n, "error": str(e)}
    finally:
        server.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="all", choices=["all", *SCENARIOS])
    p.add_argument("--servers", help="comma-separated (clients scenario: trickle-load,locust); default: the scenario's")
    p.add_argument("--n", help="capacity, classic, clients: stream counts (capacity stops a server when it fails); "
                               "search: profiles (idle,busy)")
    p.add_argument("--hold", type=int, default=20, help="capacity, clients: seconds to hold the streams")
    p.add_argument("--interval-ms", type=int, default=5_000, help="capacity: event interval of each stream")
    p.add_argument("--client-interval-ms", type=int, default=1_000, help="clients: event interval of each stream")
    p.add_argument("--paced-seconds", type=int, default=20)
    p.add_argument("--load-processes", type=int, default=1,
                   help="search: trickle-load capacity --processes (client processes holding each level)")
    args = p.parse_args()
    for path in (LOAD, os.path.join(RELEASE, "trickle"), os.path.join(RELEASE, "examples", "bare_actix")):
        if not os.path.exists(path):
            sys.exit(f"error: {path} missing: cargo build --release --workspace --bins --examples")
    os.makedirs(RESULTS, exist_ok=True)
    ensure_port_range()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = {"date": str(datetime.date.today()), "commit": commit, "cpus": os.cpu_count(),
            "kernel": platform.release(), "command": " ".join(sys.argv)}
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    for scenario in scenarios:
        servers = (args.servers or SCENARIOS[scenario][0]).split(",")
        if scenario == "clients" or any(s in ("uvicorn", "flask", "gunicorn", "flask-classic", "gunicorn-classic")
                                        for s in servers):
            ensure_venv()
        for name in servers:
            counts = (args.n or SCENARIOS[scenario][1]).split(",")
            for n in (counts if scenario == "search" else [int(n) for n in counts]):
                print(f"{scenario} {name} {n or ''}...", file=sys.stderr, flush=True)
                result = run_one(scenario, name, n, args)
                result.update(server=name, scenario=scenario, **meta)
                suffix = f"-{args.interval_ms}ms" if scenario == "capacity" and args.interval_ms != 5_000 else ""
                if scenario == "search" and args.load_processes > 1:
                    suffix = f"-p{args.load_processes}"
                with open(os.path.join(RESULTS, f"{scenario}{suffix}-{name}-{n}.json"), "w") as f:
                    json.dump(result, f, indent=2)
                print(json.dumps(result), file=sys.stderr)
                if scenario == "capacity" and result.get("established", 0) < 0.95 * n:
                    # This server failed at n; larger n would too, and their
                    # results from earlier runs no longer stand.
                    prefix = f"{scenario}{suffix}-{name}-"
                    for stale in glob.glob(os.path.join(RESULTS, f"{prefix}*.json")):
                        count = os.path.basename(stale)[len(prefix):-len(".json")]
                        if count.isdigit() and int(count) > n:
                            os.remove(stale)
                    break
    print(f"\n{meta['cpus']} CPUs, Linux {meta['kernel']}, {meta['date']}, commit {meta['commit']}; "
          f"rerun: {meta['command']}\nbench/report.py renders BENCHMARKS.md from bench/results/.")


if __name__ == "__main__":
    main()
