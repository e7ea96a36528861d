#!/usr/bin/env python3
"""Hold N concurrent SSE streams open against a server and report what it cost.

A quick capacity probe (standard library only; the load tester trickle-load
is the real tool). It opens N connections, waits for each stream's first
event, holds them all for --hold seconds while reading, then reports how many
were established, first-event latency, events received, and, with --pid, the
server's resident memory before and after (from /proc), per open stream.

    scripts/hold-streams.py --port 8080 -n 5000 --hold 20 --pid "$(pgrep -n trickle)"

Loopback only; one process holds at most ~19,900 sockets here.
"""

import argparse
import asyncio
import statistics
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Stream:
    def __init__(self):
        self.first_event = None
        self.events = 0
        self.error = None


async def hold_one(args, stream, started, stop):
    try:
        reader, writer = await asyncio.open_connection(args.host, args.port)
        request = f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\nAccept: text/event-stream\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            stream.error = status.decode(errors="replace").strip()
            writer.close()
            return
        while not stop.is_set():
            try:
                line = await asyncio.wait_for(reader.readline(), timeout=0.5)
            except asyncio.TimeoutError:
                continue
            if not line:
                stream.error = "closed"
                break
            if line.startswith(b"id:"):
                stream.events += 1
                if stream.first_event is None:
                    stream.first_event = time.monotonic() - started
        writer.close()
    except OSError as e:
        stream.error = str(e)


async def main(args):
    before = rss_kib(args.pid) if args.pid else None
    stop = asyncio.Event()
    streams = [Stream() for _ in range(args.n)]
    tasks = []
    t0 = time.monotonic()
    for i, s in enumerate(streams):
        tasks.append(asyncio.create_task(hold_one(args, s, time.monotonic(), stop)))
        if i % 500 == 499:
            await asyncio.sleep(0.05)
    deadline = time.monotonic() + args.hold
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        ok = sum(1 for s in streams if s.first_event is not None and s.error is None)
        print(f"  t={time.monotonic() - t0:5.1f}s open streams with events: {ok}/{args.n}", file=sys.stderr)
    during = rss_kib(args.pid) if args.pid else None
    stop.set()
    await asyncio.gather(*tasks)

    established = [s for s in streams if s.first_event is not None]
    failed = [s for s in streams if s.first_event is None]
    firsts = sorted(s.first_event for s in established)
    print(f"streams requested:   {args.n}")
    print(f"streams established: {len(established)} (failed: {len(failed)}"
          + (f", e.g. {failed[0].error!r}" if failed else "") + ")")
    if firsts:
        p99 = firsts[min(len(firsts) - 1, int(len(firsts) * 0.99))]
        print(f"first event:         p50 {statistics.median(firsts) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms")
        print(f"events received:     {sum(s.events for s in streams)}")
    if before is not None:
        per = (during - before) / max(1, len(established))
        print(f"server RSS:          {before} KiB idle -> {during} KiB holding; {per:.1f} KiB per open stream")
    print(f"rerun: {' '.join(sys.argv)}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--path", default="/sse?chunks=1000000&interval_ms=5000")
    p.add_argument("-n", type=int, default=1000, help="streams to hold")
    p.add_argument("--hold", type=float, default=15, help="seconds to hold them")
    p.add_argument("--pid", type=int, help="server process id, to read its RSS")
    a = p.parse_args()
    if not a.host.startswith("127.") and a.host not in ("localhost", "::1"):
        sys.exit("error: loopback targets only")
    asyncio.run(main(a))
