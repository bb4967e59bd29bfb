#!/usr/bin/env python3
"""Many TCP listeners for the health-check benchmark (stdlib only).

usage: listeners.py --ports 20000-23333 [--addr 0.0.0.0] [--count-file F] [--pidfile FILE]

Listens on every port of the range, accepts every connection and closes it at once (what a
TCP_CHECK needs), and counts them: F is rewritten every second with {"accepted": N, "at": T}
(T in Unix seconds). The pid file is written once every port listens. SIGTERM/SIGINT stop it.
"""

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
import time

MAX_PORTS = 20000


def main():
    ap = argparse.ArgumentParser(description="rvs lab: many TCP listeners that count accepts")
    ap.add_argument("--ports", required=True, help="FIRST-LAST")
    ap.add_argument("--addr", default="0.0.0.0")
    ap.add_argument("--count-file")
    ap.add_argument("--pidfile")
    args = ap.parse_args()
    first, last = (int(x) for x in args.ports.split("-"))
    if not (1 <= first <= last <= 65535 and last - first < MAX_PORTS):
        sys.exit(f"listeners.py: bad port range {args.ports}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, (last - first + 1) + 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    accepted = [0]

    async def handle(_reader, writer):
        accepted[0] += 1
        writer.close()

    async def run():
        servers = []
        for port in range(first, last + 1):
            servers.append(await asyncio.start_server(handle, args.addr, port, backlog=64))
        if args.pidfile:
            tmp = f"{args.pidfile}.tmp"
            with open(tmp, "w") as f:
                f.write(f"{os.getpid()}\n")
            os.replace(tmp, args.pidfile)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            if args.count_file:
                tmp = f"{args.count_file}.tmp"
                with open(tmp, "w") as f:
                    json.dump({"accepted": accepted[0], "at": time.time()}, f)
                os.replace(tmp, args.count_file)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
        for s in servers:
            s.close()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
