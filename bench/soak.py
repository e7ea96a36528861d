#!/usr/bin/env python3
"""A soak: many long-lived streams with reconnects against one trickle for a
long time, judged by the memory slope. Not in CI (it runs for half an hour).

    cargo build --release --workspace --bins --examples
    bench/soak.py                                  # 30 minutes, 10,000 SSE + 1,000 LLM streams
    bench/soak.py --minutes 5 --streams 2000 --llm-streams 200   # a short look

trickle (release) runs with `--max-stream-duration 20s --retry 200ms`, so
every SSE stream is ended gracefully every 20 s and resumed by its client
(`Last-Event-ID`): 10,000 streams make 500 reconnects a second. One
trickle-load process holds the SSE streams (an event a second each,
`--reconnect`), another the LLM streams (`--api openai-chat`, 100-token
answers at `--llm-decode-rate 10`: a request lasts about 10 s, then the user
sends the next).

Every `--sample` seconds (10) it records trickle's RSS (and its two parts:
anonymous pages, the program's memory, and file pages, the binary read from
disk), jemalloc's live and resident bytes, open files, threads and
`trickle_streams_active`, and the RSS of both trickle-load processes. At
the end it fits a line to each process's RSS after the warm-up (per-minute
means, least squares) and prints the slope in KiB per hour with its 95%
interval, the events lost (from the reports' integrity counts: 0 expected),
and writes bench/results/soak-<date>.json and an SVG chart beside it.
"""

import argparse
import datetime
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (paths, ports, /proc usage)

TRICKLE = os.path.join(bench.RELEASE, "trickle")

# Two-sided 95% Student t quantiles by degrees of freedom (then ~1.96).
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23,
       12: 2.18, 15: 2.13, 20: 2.09, 25: 2.06, 30: 2.04, 40: 2.02, 60: 2.00, 120: 1.98}


def t95(df):
    if df <= 0:
        return float("inf")
    keys = [k for k in sorted(T95) if k <= df]
    return T95[keys[-1]] if df <= 120 else 1.96


def slope(points):
    """Least-squares slope of (t seconds, y) and its 95% half-interval, per hour."""
    n = len(points)
    if n < 3:
        return None, None
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((t - mt) ** 2 for t, _ in points)
    if sxx == 0:
        return None, None
    b = sum((t - mt) * (y - my) for t, y in points) / sxx
    a = my - b * mt
    resid = sum((y - a - b * t) ** 2 for t, y in points)
    se = math.sqrt(resid / (n - 2) / sxx)
    return b * 3600, t95(n - 2) * se * 3600


def per_minute(samples, key, after_s, before_s=float("inf")):
    """Per-minute means of a sampled series after the warm-up and before the
    load's end (the clients' wind-down is not the server's steady state):
    consecutive samples are not independent; minute means are nearer to it."""
    buckets = {}
    for s in samples:
        if after_s <= s["t"] < before_s and s.get(key) is not None:
            buckets.setdefault(int(s["t"] // 60), []).append(s[key])
    return [((m + 0.5) * 60, sum(v) / len(v)) for m, v in sorted(buckets.items())]


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "RssAnon:", "RssFile:", "Threads:")):
                    name, value = line.split(":", 1)
                    out[name] = int(value.split()[0])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


def scrape(base):
    """Open streams, and jemalloc's live and resident bytes in MiB (None
    when trickle runs on another allocator), from trickle's /metrics."""
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None, None, None
    values = {}
    for line in text.splitlines():
        if line.startswith("trickle_streams_active") or line.startswith("trickle_allocator_"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    mib = lambda name: values[name] / 1048576 if name in values else None
    return (values.get("trickle_streams_active"), mib("trickle_allocator_allocated_bytes"),
            mib("trickle_allocator_resident_bytes"))


def svg_chart(samples, path, title):
    """trickle's and the clients' RSS (MiB) and trickle's open streams over time."""
    w, h, left, right, top, bottom = 760, 320, 60, 60, 30, 40
    t_max = max(s["t"] for s in samples) or 1
    series = [("trickle RSS", "rss_mib", "#c0392b"), ("trickle-load SSE RSS", "load_sse_mib", "#2980b9"),
              ("trickle-load LLM RSS", "load_llm_mib", "#27ae60")]
    y_max = max((s.get(k) or 0) for s in samples for _, k, _ in series) * 1.1 or 1
    a_max = max((s.get("active") or 0) for s in samples) * 1.1 or 1

    def x(t):
        return left + (w - left - right) * t / t_max

    def y(v, top_value):
        return top + (h - top - bottom) * (1 - v / top_value)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{left}" y="18" font-size="13">{title}</text>',
             f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="#333"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#333"/>']
    for i in range(6):
        v = y_max * i / 5
        parts.append(f'<text x="{left - 6}" y="{y(v, y_max) + 4:.0f}" text-anchor="end">{v:.0f}</text>')
        a = a_max * i / 5
        parts.append(f'<text x="{w - right + 6}" y="{y(a, a_max) + 4:.0f}" fill="#888">{a:.0f}</text>')
    for i in range(7):
        t = t_max * i / 6
        parts.append(f'<text x="{x(t):.0f}" y="{h - bottom + 16}" text-anchor="middle">{t / 60:.0f} min</text>')
    parts.append(f'<text x="14" y="{top + 100}" transform="rotate(-90 14 {top + 100})">RSS, MiB</text>')
    parts.append(f'<text x="{w - 12}" y="{top + 60}" fill="#888" transform="rotate(90 {w - 12} {top + 60})">open streams</text>')
    points = " ".join(f"{x(s['t']):.1f},{y(s['active'], a_max):.1f}" for s in samples if s.get("active") is not None)
    parts.append(f'<polyline points="{points}" fill="none" stroke="#bbb" stroke-width="1"/>')
    for i, (label, key, color) in enumerate(series):
        points = " ".join(f"{x(s['t']):.1f},{y(s[key], y_max):.1f}" for s in samples if s.get(key) is not None)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        parts.append(f'<text x="{left + 10 + 190 * i}" y="{h - 6}" fill="{color}">{label}</text>')
    parts.append(f'<text x="{left + 10 + 190 * 3}" y="{h - 6}" fill="#888">open streams</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


def report_of(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--streams", type=int, default=10_000, help="SSE streams held (default 10,000)")
    p.add_argument("--llm-streams", type=int, default=1_000, help="LLM streams held (default 1,000; 0: none)")
    p.add_argument("--stream-life", default="20s", help="trickle's --max-stream-duration (default 20s)")
    p.add_argument("--sample", type=float, default=10, help="seconds between samples (default 10)")
    p.add_argument("--warmup-minutes", type=float, default=5, help="left out of the fit (default 5)")
    p.add_argument("--first-id", type=int, default=None, metavar="N",
                   help="SSE streams start after event id N (last_event_id=N): ids keep one width for the "
                        "whole soak (N=100000: six digits), so event sizes do not grow with the run")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="set in trickle's environment (repeatable), e.g. LD_PRELOAD=/usr/lib/x86_64-linux-gnu/"
                        "libjemalloc.so.2 to compare allocators; recorded in the result")
    p.add_argument("--out", help="result JSON (default bench/results/soak-<date>.json)")
    args = p.parse_args()
    for binary in (TRICKLE, bench.LOAD):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: cargo build --release --workspace --bins --examples")
    if args.streams + args.llm_streams > 19_000:
        sys.exit("at most 19,000 streams: the open-files limit is 20,000 per process")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    bench.ensure_port_range(args.streams + args.llm_streams + 1000)

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H%M")
    out = args.out or os.path.join(bench.RESULTS, f"soak-{stamp}.json")
    tmp = tempfile.mkdtemp(prefix="trickle-soak-")
    port = bench.free_port()
    base = f"http://127.0.0.1:{port}"
    run_time = f"{int(args.minutes * 60)}s"
    server_cmd = [TRICKLE, "--host", "127.0.0.1", "--port", str(port),
                  "--max-streams", str(args.streams + args.llm_streams + 500),
                  "--max-stream-duration", args.stream_life, "--retry", "200ms",
                  "--llm-decode-rate", "10", "--log-format", "text"]
    sse_path = [] if args.first_id is None else ["--path", f"/sse?last_event_id={args.first_id}"]
    sse_cmd = [bench.LOAD, "--host", base, *sse_path, "--users", str(args.streams), "--increase-rate", "500",
               "--run-time", run_time, "--transport", "sse", "--chunks", "1000000", "--interval-ms", "1000",
               "--reconnect", "--idle-timeout", "60s", "--quiet", "--no-print-metrics", "--progress-secs", "0",
               "--stream-report", os.path.join(tmp, "sse.json")]
    llm_cmd = [bench.LOAD, "--host", base, "--api", "openai-chat", "--model", "trickle-sim",
               "--max-tokens", "100", "--prompt-tokens", "64", "--users", str(args.llm_streams),
               "--increase-rate", "200", "--run-time", run_time, "--idle-timeout", "60s",
               "--quiet", "--no-print-metrics", "--progress-secs", "0",
               "--stream-report", os.path.join(tmp, "llm.json")]
    print(f"soak: {args.streams:,} SSE streams (reconnect every {args.stream_life}) + {args.llm_streams:,} LLM "
          f"streams for {args.minutes:g} min, a sample every {args.sample:g} s", flush=True)
    server_env = dict(os.environ)
    for pair in args.server_env:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            sys.exit(f"soak: --server-env wants NAME=VALUE, got {pair!r}")
        server_env[name] = value
    server = subprocess.Popen(server_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server_env)
    for _ in range(100):
        if scrape(base)[0] is not None:
            break
        time.sleep(0.1)
    else:
        server.kill()
        sys.exit("trickle did not start")
    # Their stderr goes to files: a pipe nobody reads for half an hour fills.
    errs = {name: open(os.path.join(tmp, f"{name}.stderr"), "w+") for name in ("sse", "llm")}
    loads = {"sse": subprocess.Popen(sse_cmd, stdout=subprocess.DEVNULL, stderr=errs["sse"])}
    if args.llm_streams:
        loads["llm"] = subprocess.Popen(llm_cmd, stdout=subprocess.DEVNULL, stderr=errs["llm"])
    samples = []
    t0 = time.monotonic()
    next_print = 0
    try:
        while any(c.poll() is None for c in loads.values()):
            t = time.monotonic() - t0
            st = proc_status(server.pid)
            active, allocated, resident = scrape(base)
            # VmRSS = RssAnon (the heap, stacks) + RssFile (the binary's pages
            # read from disk) + RssShmem: only the first is the program's memory.
            sample = {"t": round(t, 1), "rss_mib": st.get("VmRSS", 0) / 1024,
                      "rss_anon_mib": st.get("RssAnon", 0) / 1024, "rss_file_mib": st.get("RssFile", 0) / 1024,
                      "fds": st.get("fds"),
                      "threads": st.get("Threads"), "active": active,
                      "allocated_mib": allocated, "resident_mib": resident}
            for name, c in loads.items():
                sample[f"load_{name}_mib"] = proc_status(c.pid).get("VmRSS", 0) / 1024 or None
            samples.append(sample)
            if t >= next_print:
                print(f"  {t / 60:5.1f} min: trickle RSS {sample['rss_mib']:.1f} MiB, {sample['fds']} files, "
                      f"{sample['threads']} threads, {sample['active']:.0f} streams open; trickle-load RSS "
                      + ", ".join(f"{n} {sample.get(f'load_{n}_mib') or 0:.1f} MiB" for n in loads), flush=True)
                next_print += 60
            time.sleep(max(0.0, args.sample - (time.monotonic() - t0 - t)))
    finally:
        for c in loads.values():
            if c.poll() is None:
                c.terminate()
        server.terminate()
        server.wait(timeout=30)

    warm = args.warmup_minutes * 60
    fits = {}
    for key in ("rss_mib", "rss_anon_mib", "rss_file_mib", "allocated_mib", "resident_mib",
                "load_sse_mib", "load_llm_mib", "fds", "threads"):
        points = per_minute(samples, key, warm, args.minutes * 60)
        scale = 1024 if key.endswith("_mib") else 1  # slopes of memory in KiB
        b, ci = slope([(t, v * scale) for t, v in points])
        fits[key] = {"per_hour": b, "ci95_per_hour": ci, "minutes_fitted": len(points),
                     "unit": "KiB" if scale == 1024 else "count"}
    sse, llm = report_of(os.path.join(tmp, "sse.json")), report_of(os.path.join(tmp, "llm.json"))
    summary = {}
    for name, r in (("sse", sse), ("llm", llm)):
        if r:
            ends = bench.ends(r)
            summary[name] = {"events": r.get("events"), "integrity": r.get("integrity"), "ends": ends,
                             "exit": loads[name].returncode}
    result = {"date": stamp, "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=bench.ROOT,
                                                      capture_output=True, text=True).stdout.strip(),
              "machine": f"{os.cpu_count()} cores, {platform.machine()}",
              "command": "bench/soak.py " + " ".join(sys.argv[1:]), "server": " ".join([*args.server_env, "trickle", *server_cmd[1:]]),
              "sse_load": " ".join(["trickle-load", *sse_cmd[1:-2]]),
              "llm_load": " ".join(["trickle-load", *llm_cmd[1:-2]]) if args.llm_streams else None,
              "warmup_minutes": args.warmup_minutes, "fits": fits, "loads": summary, "samples": samples}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    chart = out.replace(".json", ".svg")
    svg_chart(samples, chart, f"soak {stamp}: {args.streams:,} SSE + {args.llm_streams:,} LLM streams, "
                              f"{args.minutes:g} min")

    def fmt(fit):
        if fit["per_hour"] is None:
            return "n/a"
        return f"{fit['per_hour']:+,.0f} +/- {fit['ci95_per_hour']:,.0f} {fit['unit']}/h"

    first = next((s for s in samples if s["t"] >= warm), samples[0] if samples else {})
    # Each series' last value (a client that ended first has none after).
    last = {k: v for s in samples for k, v in s.items() if v}
    print(f"\nafter {len(samples)} samples ({(last.get('t') or 0) / 60:.1f} min), fitted from minute "
          f"{args.warmup_minutes:g} on (per-minute means, least squares, 95% interval):")
    print(f"| process | RSS at minute {args.warmup_minutes:g} | RSS at the end | slope |")
    print("| --- | --- | --- | --- |")
    for label, key in (("trickle", "rss_mib"),
                       ("trickle, anonymous pages (RssAnon)", "rss_anon_mib"),
                       ("trickle, file pages (RssFile)", "rss_file_mib"),
                       ("trickle, jemalloc live bytes (stats.allocated)", "allocated_mib"),
                       ("trickle, jemalloc resident pages (stats.resident)", "resident_mib"),
                       ("trickle-load, SSE", "load_sse_mib"),
                       ("trickle-load, LLM", "load_llm_mib")):
        if first.get(key) is not None:
            print(f"| {label} | {first[key]:.1f} MiB | {(last.get(key) or 0):.1f} MiB | {fmt(fits[key])} |")
    print(f"| trickle open files | {first.get('fds')} | {last.get('fds')} | {fmt(fits['fds'])} |")
    print(f"| trickle threads | {first.get('threads')} | {last.get('threads')} | {fmt(fits['threads'])} |")
    for name, s in summary.items():
        i = s["integrity"] or {}
        print(f"{name}: {s['events']:,} events, lost {i.get('lost')}, duplicated {i.get('duplicated')}, "
              f"out of order {i.get('out_of_order')}; ends {s['ends']}; exit {s['exit']}")
    for name, c in loads.items():
        errs[name].seek(0)
        err = errs[name].read()
        if c.returncode not in (0, None) and err:
            print(f"{name} trickle-load said: {err[-600:]}")
    print(f"\nresults: {os.path.relpath(out, bench.ROOT)}, chart: {os.path.relpath(chart, bench.ROOT)}")
    print("rerun: " + result["command"])


if __name__ == "__main__":
    main()
