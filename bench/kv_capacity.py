#!/usr/bin/env python3
"""What prefix caching is worth to capacity: trickle-load capacity against
the simulated model with a KV cache (a release trickle, --llm-kv-blocks),
once with unique single-turn prompts and once with the same tokens as
4-turn conversations (each turn's prompt holds the previous one, so its
prefix is cached): the most concurrent streams within a TTFT SLO, the TTFT
p99 at that level, and the prefix hit rate the server counted
(vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total).

    cargo build --release --workspace --bins
    bench/kv_capacity.py
    bench/kv_capacity.py --kv-blocks 4000 --slo-ttft 400ms

The two workloads send the same tokens: 4-turn sessions of 500-token turns
and 20-token answers have prompts of 500, 1,020, 1,540 and 2,060 tokens
(1,280 on average), and the single-turn requests are 1,280-token prompts
(--unique-prompts) with 20-token answers. Results:
bench/results/kv-capacity.json.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402
from scheduler_cost import wait_listening  # noqa: E402

HITS = 'vllm:prefix_cache_hits_total{engine="0",model_name="trickle-sim"}'
QUERIES = 'vllm:prefix_cache_queries_total{engine="0",model_name="trickle-sim"}'

WORKLOADS = {
    "unique": "--prompt-tokens 1280 --unique-prompts --max-tokens 20",
    "conversations": "--turns 4 --prompt-tokens 500 --max-tokens 20",
}


def search(workload, args):
    port = bench.free_port()
    model = ["--llm-kv-blocks", str(args.kv_blocks), "--llm-prefill-rate", str(args.prefill_rate),
             "--llm-ttft", "20ms", "--llm-decode-rate", "50"]
    server_cmd = [os.path.join(bench.RELEASE, "trickle"), "--host", "127.0.0.1", "--port", str(port),
                  "--max-streams", "5000", *model]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRICKLE_"))}
    server = subprocess.Popen(server_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(env, RUST_LOG="warn"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_listening(port, server)
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "capacity.json")
            load_cmd = [bench.LOAD, "capacity", "--host", base, "--api", "openai-chat", "--model", "trickle-sim",
                        *WORKLOADS[workload].split(), "--slo-ttfb-p99", args.slo_ttft,
                        "--start", "4", "--max", "256", "--hold", "5s", "--warmup", "2s", "--settle", "1s",
                        "--metrics-url", "none", "--report", out]
            done = subprocess.run(load_cmd, capture_output=True, text=True, timeout=1800)
            if not os.path.exists(out):
                sys.exit(f"error: the {workload} search wrote no report:\n{done.stderr[-2000:]}")
            with open(out) as f:
                report = json.load(f)
        c = report["capacity"]
        knee = c.get("max_streams")
        level = next((lv for lv in reversed(c["levels"]) if lv["streams"] == knee and lv.get("pass")), None)
        hits, queries = bench.metric(base, HITS), bench.metric(base, QUERIES)
        return {
            "workload": workload, "flags": WORKLOADS[workload], "max_streams": knee,
            "limited_by": c.get("limited_by"),
            "ttft_p99_ms_at_knee": level["ttfb_p99_ms"] if level else None,
            "levels": [(lv["streams"], lv.get("pass"), lv["ttfb_p99_ms"]) for lv in c["levels"]],
            "prefix_hit_rate": round(hits / queries, 3) if queries else None,
            "command": " ".join(server_cmd[:1] + model) + "  |  " + " ".join(
                ["trickle-load", *load_cmd[1:-2]]),
        }
    finally:
        server.terminate()
        server.wait(timeout=10)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kv-blocks", type=int, default=2000)
    p.add_argument("--prefill-rate", type=float, default=5000)
    p.add_argument("--slo-ttft", default="500ms")
    args = p.parse_args()
    for path in (bench.LOAD, os.path.join(bench.RELEASE, "trickle")):
        if not os.path.exists(path):
            sys.exit(f"error: {path} missing: cargo build --release --workspace --bins")
    results = []
    for workload in WORKLOADS:
        r = search(workload, args)
        print(json.dumps(r), file=sys.stderr, flush=True)
        results.append(r)
    commit = subprocess.run(["git", "-C", bench.ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    result = {"kv_blocks": args.kv_blocks, "prefill_rate": args.prefill_rate, "slo_ttft": args.slo_ttft,
              "results": results, "date": str(datetime.date.today()), "commit": commit, "cpus": os.cpu_count(),
              "kernel": platform.release(), "command": " ".join(sys.argv)}
    os.makedirs(bench.RESULTS, exist_ok=True)
    with open(os.path.join(bench.RESULTS, "kv-capacity.json"), "w") as f:
        json.dump(result, f, indent=2)
    for r in results:
        print(f"{r['workload']}: {r['max_streams']} streams (limited by {r['limited_by']}), "
              f"TTFT p99 at the knee {r['ttft_p99_ms_at_knee']} ms, prefix hit rate {r['prefix_hit_rate']}")
        print(f"  {r['command']}")
    print(f"\nrerun: {result['command']} ({result['cpus']} CPUs, Linux {result['kernel']}, commit {commit})")


if __name__ == "__main__":
    main()
