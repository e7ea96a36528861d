#!/usr/bin/env python3
"""Writes BENCHMARKS.md from the raw results in bench/results/*.json
(written by bench/run.py), with ratios to trickle beside the figures.

    bench/report.py            # rewrites BENCHMARKS.md
"""

import glob
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
ORDER = ["trickle", "trickle-off", "trickle-spans", "bare-actix", "node", "uvicorn", "flask", "gunicorn"]
LABEL = {
    "trickle": "trickle (metrics on)",
    "trickle-off": "trickle (telemetry off)",
    "trickle-spans": "trickle (metrics + every chunk span exported)",
    "bare-actix": "bare actix-web (no trickle code)",
    "node": "Node.js http",
    "uvicorn": "uvicorn + sse-starlette",
    "flask": "Flask threaded server",
    "gunicorn": "gunicorn --workers 1 --threads 8 (Flask)",
}


def load(scenario):
    rows = [json.load(open(p)) for p in glob.glob(os.path.join(RESULTS, f"{scenario}-*.json"))]
    return sorted(rows, key=lambda r: (ORDER.index(r["server"]) if r["server"] in ORDER else 99, r.get("n", 0)))


def commits(rows):
    return ", ".join(sorted({r.get("commit", "?") for r in rows}))


def ratio(value, base):
    if value is None or base in (None, 0):
        return "-"
    return f"{value / base:.2f}x"


def main():
    capacity, paced, burst, ttfb = load("capacity"), load("paced"), load("burst"), load("ttfb")
    meta = next(iter(capacity or paced or burst), {})
    out = []
    out.append("# Benchmarks: trickle beside what users would deploy instead\n")
    out.append(f"Machine: {meta.get('cpus', '?')} cores, 24 GiB, Linux {meta.get('kernel', '?')}; "
               f"{meta.get('date', '?')}; each scenario names the commit it ran at. Every server and every client on the same "
               "machine over loopback; the client is trickle-load for all of them (release build), spread over two "
               "processes past 9,500 streams (the open-files cap is 20,000 per process). Server CPU and RSS come from "
               "/proc (children included). Raw results: `bench/results/*.json`; this file: `bench/report.py`.\n")
    out.append("```sh\ncargo build --release --workspace --bins --examples\n"
               "bench/run.py --scenario capacity --servers trickle,trickle-off,bare-actix,node,uvicorn,flask,gunicorn "
               "--n 1000,5000,10000,19000 --hold 15\n"
               "bench/run.py --scenario paced --servers trickle,trickle-off,trickle-spans,bare-actix,node,uvicorn,flask,gunicorn "
               "--paced-seconds 15\n"
               "bench/run.py --scenario burst --servers trickle,trickle-off,trickle-spans,bare-actix,node,uvicorn,flask\n"
               "bench/report.py\n```\n")

    if capacity:
        out.append(f"## 1. Capacity: concurrent idle SSE streams (commit {commits(capacity)})\n")
        out.append("N streams held for 15 s, one event every 5 s each (first at once), heartbeats in between. "
                   "A server is not tried at a larger N once it established fewer than 95% of the streams asked.\n")
        out.append("| server | streams asked | established | first event p99 | server RSS per open stream | vs trickle | server CPU while holding |")
        out.append("| --- | --- | --- | --- | --- | --- | --- |")
        base = {r["n"]: r for r in capacity if r["server"] == "trickle" and "error" not in r}
        for r in capacity:
            if "error" in r:
                out.append(f"| {LABEL.get(r['server'], r['server'])} | {r['n']} | failed: {r['error']} | | | | |")
                continue
            b = base.get(r["n"], {})
            out.append(f"| {LABEL.get(r['server'], r['server'])} | {r['n']:,} | {r['established']:,} | "
                       f"{r['first_event_p99_ms']} ms | {r['rss_per_stream_kib']:.1f} KiB | "
                       f"{ratio(r['rss_per_stream_kib'], b.get('rss_per_stream_kib'))} | {r['cpu_holding_share'] * 100:.1f}% |")
        out.append("")

    if paced:
        out.append(f"## 2. Throughput, paced: 1,000 streams x a 64-byte event every 10 ms (commit {commits(paced)})\n")
        out.append("100,000 events/s asked in all, for 15 s. Lateness shows as the client-side gap p99 above 10 ms.\n")
        out.append("| server | events delivered | events/s | server CPU per event | vs trickle | gap p50 / p99 |")
        out.append("| --- | --- | --- | --- | --- | --- |")
        base = next((r for r in paced if r["server"] == "trickle" and "error" not in r), {})
        for r in paced:
            if "error" in r:
                out.append(f"| {LABEL.get(r['server'], r['server'])} | failed: {r['error']} | | | | |")
                continue
            out.append(f"| {LABEL.get(r['server'], r['server'])} | {r['events']:,} | {r['events_per_s']:,.0f} | "
                       f"{r['cpu_us_per_event']:.2f} us | {ratio(r['cpu_us_per_event'], base.get('cpu_us_per_event'))} | "
                       f"{r['gap_p50_ms']} / {r['gap_p99_ms']} ms |")
        out.append("")

    if burst:
        out.append(f"## 2b. Throughput, burst: 100 streams x 2,000 events as fast as possible (commit {commits(burst)})\n")
        out.append("| server | events | completed streams | events/s | vs trickle | server CPU per event |")
        out.append("| --- | --- | --- | --- | --- | --- |")
        base = next((r for r in burst if r["server"] == "trickle" and "error" not in r), {})
        for r in burst:
            if "error" in r:
                out.append(f"| {LABEL.get(r['server'], r['server'])} | failed: {r['error']} | | | | |")
                continue
            out.append(f"| {LABEL.get(r['server'], r['server'])} | {r['events']:,} | {r['completed']} | "
                       f"{r['events_per_s']:,.0f} | {ratio(r['events_per_s'], base.get('events_per_s'))} | "
                       f"{r['cpu_us_per_event']:.2f} us |")
        out.append("")

    if ttfb:
        out.append(f"## 3. TTFB under load: new streams while 10,000 are open (commit {commits(ttfb)})\n")
        out.append("10,000 idle SSE streams held (two trickle-load processes) while a third process starts one-event "
                   "streams at 500/s (`--stream-rate 500`, paced before the clock starts) for 20 s.\n")
        out.append("| server | streams held | new streams | arrivals/s | client TTFB p50 / p99 | p99 vs trickle |")
        out.append("| --- | --- | --- | --- | --- | --- |")
        base = next((r for r in ttfb if r["server"] == "trickle" and "error" not in r), {})
        for r in ttfb:
            if "error" in r:
                out.append(f"| {LABEL.get(r['server'], r['server'])} | failed: {r['error']} | | | | |")
                continue
            out.append(f"| {LABEL.get(r['server'], r['server'])} | {r['held']:,} | {r['new_streams']:,} | "
                       f"{r['arrivals_per_s']:.0f} | {r['ttfb_p50_ms']} / {r['ttfb_p99_ms']} ms | "
                       f"{ratio(r['ttfb_p99_ms'], base.get('ttfb_p99_ms'))} |")
        out.append("")

    def pick(rows, server, n=None):
        return next((r for r in rows if r["server"] == server and "error" not in r and (n is None or r.get("n") == n)), None)

    out.append("## Against the targets\n")
    t19, b19 = pick(capacity, "trickle", 19000), pick(capacity, "bare-actix", 19000)
    if t19 and b19:
        out.append(f"- Capacity: {t19['established']:,} of 19,000 SSE streams held by one trickle process "
                   f"(clients in two trickle-load processes). Memory: {t19['rss_per_stream_kib']:.1f} KiB per open stream "
                   f"against {b19['rss_per_stream_kib']:.1f} KiB for bare actix-web in the same run: "
                   f"{t19['rss_per_stream_kib'] / b19['rss_per_stream_kib']:.2f}x (target at most 1.1x). "
                   "The per-stream gap check at 19,000 (gap p99 within 10% of the interval) is not in this scenario "
                   "yet (its events are 5 s apart).")
    tp, bp, sp = pick(paced, "trickle"), pick(paced, "bare-actix"), pick(paced, "trickle-spans")
    if tp and bp:
        out.append(f"- CPU per paced event: trickle with metrics {tp['cpu_us_per_event']:.1f} us, bare actix-web "
                   f"{bp['cpu_us_per_event']:.1f} us: {tp['cpu_us_per_event'] / bp['cpu_us_per_event']:.2f}x (target at most 1.2x)"
                   + (f"; every chunk span recorded and exported adds {sp['cpu_us_per_event'] - tp['cpu_us_per_event']:.1f} us "
                      "(target at most 2 us)" if sp else "")
                   + ". At 100,000 events/s asked, the 2 cores are shared with the client, which is why every "
                   "server's gap p99 is well above 10 ms; uvicorn's gap p50 of 0 ms means its events arrive in bursts.")
    tb, bb = pick(burst, "trickle"), pick(burst, "bare-actix")
    if tb and bb:
        out.append(f"- Burst: trickle spends {tb['cpu_us_per_event']:.2f} us of CPU per event against "
                   f"{bb['cpu_us_per_event']:.2f} us for bare actix-web ({tb['cpu_us_per_event'] / bb['cpu_us_per_event']:.1f}x), "
                   "with telemetry off too: the cost is trickle's framing (a JSON object and a few allocations per event), "
                   "not its instrumentation. The next optimisation to profile.")
    tt = pick(ttfb, "trickle")
    if tt:
        out.append(f"- TTFB p99 with 10,000 open streams and {tt['arrivals_per_s']:.0f} new streams/s: "
                   f"{tt['ttfb_p99_ms']} ms (target at most 5 ms).")
    out.append("- trickle-load: 33.7 KiB and 5.2% of a core for 10,000 open streams (README, `bench/load_capacity.py`).\n")

    out.append("## Not measured yet\n")
    out.append("- Scenario 4 (trickle-load vs Locust holding the same streams) is not in the suite yet.\n"
               "- The Cloud Run sizing table (smallest instance that holds 1,000 streams, per peer) is not written yet.\n"
               "- The 19,000-stream run does not yet check each stream's gap p99 against its interval.\n")
    with open(os.path.join(ROOT, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
