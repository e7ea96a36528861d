#!/usr/bin/env python3
"""What the simulated model's batch scheduler costs trickle per output
token: the same LLM load (trickle-load --api openai-chat, N streams of 50
tokens/s) against a release trickle without a scheduler (`off`) and with
`--llm-max-num-seqs N` (`on`: every request gets a place at once, so the
load is the same and the difference is the scheduler's bookkeeping),
interleaved round by round. trickle's CPU (user + system, /proc) over the
measured window per output token it produced in it
(`vllm:generation_tokens_total`).

    cargo build --release --workspace --bins
    bench/scheduler_cost.py                 # 400 streams, 3 rounds
    bench/scheduler_cost.py --streams 200 --rounds 5

Results: bench/results/scheduler-cost.json. The goal: under 10% more CPU
per token with the scheduler on.

`--what kv-cache` compares the same load without a KV cache (`off`: each
stream paced by its own timer) and with `--llm-kv-blocks` large enough for
every stream (`on`: the engine loop steps every request, with prefix
caching), so the difference is the engine and the cache's bookkeeping,
which is per step and per block, not per token. Results:
bench/results/kv-cache-cost.json; the goal: within 10%.
"""

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402

MODEL = ["--llm-ttft", "100ms", "--llm-decode-rate", "50"]
SERIES = 'vllm:generation_tokens_total{engine="0",model_name="trickle-sim"}'


def wait_listening(port, proc, within=20):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"trickle exited at start ({proc.returncode})")
            time.sleep(0.05)
    raise RuntimeError("trickle never listened")


def measure(variant, streams, hold, what="scheduler", warmup=5):
    port = bench.free_port()
    command = [os.path.join(bench.RELEASE, "trickle"), "--host", "127.0.0.1", "--port", str(port),
               "--max-streams", str(streams * 2), *MODEL]
    if variant == "on" and what == "scheduler":
        command += ["--llm-max-num-seqs", str(streams)]
    if variant == "on" and what == "kv-cache":
        # Room for every stream's 32-token prompt and 200 tokens, twice.
        command += ["--llm-kv-blocks", str(streams * 2 * (232 // 16 + 1))]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRICKLE_"))}
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(env, RUST_LOG="warn"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_listening(port, server)
        load = subprocess.Popen(
            [bench.LOAD, "--host", base, "--api", "openai-chat", "--model", "trickle-sim", "--max-tokens", "200",
             "--users", str(streams), "--increase-rate", "1000", "--run-time", f"{warmup + hold + 2}s",
             "--quiet", "--no-print-metrics", "--progress-secs", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(warmup)
        cpu0, _ = bench.usage(server.pid)
        tokens0 = bench.metric(base, SERIES)
        time.sleep(hold)
        cpu1, _ = bench.usage(server.pid)
        tokens1 = bench.metric(base, SERIES)
        load.wait(timeout=120)
        tokens = tokens1 - tokens0
        return {"variant": variant, "streams": streams, "cpu_s": round(cpu1 - cpu0, 3), "tokens": tokens,
                "tokens_per_s": round(tokens / hold, 1),
                "us_per_token": round((cpu1 - cpu0) / tokens * 1e6, 3) if tokens else None}
    finally:
        server.terminate()
        server.wait(timeout=10)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=400)
    p.add_argument("--hold", type=int, default=15)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--what", choices=["scheduler", "kv-cache"], default="scheduler",
                   help="what `on` adds: the batch scheduler, or the KV cache and its engine loop")
    args = p.parse_args()
    for path in (bench.LOAD, os.path.join(bench.RELEASE, "trickle")):
        if not os.path.exists(path):
            sys.exit(f"error: {path} missing: cargo build --release --workspace --bins")
    runs = {"off": [], "on": []}
    for r in range(args.rounds):
        for variant in ("off", "on"):
            result = measure(variant, args.streams, args.hold, args.what)
            print(f"round {r + 1} {variant}: {json.dumps(result)}", file=sys.stderr, flush=True)
            runs[variant].append(result)
    med = {v: statistics.median(x["us_per_token"] for x in rs if x["us_per_token"]) for v, rs in runs.items()}
    commit = subprocess.run(["git", "-C", bench.ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    result = {"what": args.what, "streams": args.streams, "hold_s": args.hold, "rounds": args.rounds,
              "model": " ".join(MODEL),
              "us_per_token": med, "rise": round(med["on"] / med["off"] - 1, 4), "runs": runs,
              "date": str(datetime.date.today()), "commit": commit, "cpus": os.cpu_count(),
              "kernel": platform.release(), "command": " ".join(sys.argv)}
    os.makedirs(bench.RESULTS, exist_ok=True)
    name = "scheduler-cost.json" if args.what == "scheduler" else "kv-cache-cost.json"
    with open(os.path.join(bench.RESULTS, name), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))
    print(f"\nrerun: {result['command']} ({result['cpus']} CPUs, Linux {result['kernel']}, commit {commit})")


if __name__ == "__main__":
    main()
