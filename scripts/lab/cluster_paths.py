#!/usr/bin/env python3
"""The router's next hops for a prefix, and how long they take to change (stdlib only).

usage:
  cluster_paths.py count --ns NS --prefix P
      prints the number of next hops of the kernel route to P (exactly P) in namespace NS,
      then their gateways ("3 198.51.100.11 198.51.100.12 198.51.100.13"; "0" for none).
  cluster_paths.py wait --ns NS --prefix P --want N [--op eq|ge|le|ne] [--timeout S]
      [--interval S] [--signal PID:SIG] [--since UNIX] [--out FILE]
      polls (every --interval, default 0.02 s) until the count compares to N as --op says
      (default eq). The clock starts at --since (Unix seconds), or just before the signal
      (SIG: TERM, KILL, HUP... sent to PID by this program), or at the program's start.
      Prints (and writes to FILE) one JSON object:
      {"ok", "paths", "gateways", "seconds" (from the start to the end of the first poll that
       saw it), "start" (Unix seconds), "polls", "worst_poll" (longest gap between polls)}
      exit 0 if reached within --timeout, 1 otherwise.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time


def gateways(ns, prefix):
    try:
        out = subprocess.run(["ip", "-n", ns, "-j", "-4", "route", "show", prefix],
                             capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None
    try:
        routes = json.loads(out.stdout or "[]")
    except ValueError:
        return None
    gws = []
    for r in routes:
        if r.get("type", "unicast") != "unicast":
            continue
        if "nexthops" in r:
            gws.extend(h.get("gateway", h.get("dev", "?")) for h in r["nexthops"])
        elif "gateway" in r:
            gws.append(r["gateway"])
        elif "dev" in r:
            gws.append(r["dev"])
    return sorted(gws)


OPS = {
    "eq": lambda a, b: a == b,
    "ge": lambda a, b: a >= b,
    "le": lambda a, b: a <= b,
    "ne": lambda a, b: a != b,
}


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("count")
    p.add_argument("--ns", required=True)
    p.add_argument("--prefix", required=True)
    p = sub.add_parser("wait")
    p.add_argument("--ns", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--want", type=int, required=True)
    p.add_argument("--op", choices=sorted(OPS), default="eq")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--signal")
    p.add_argument("--since", type=float)
    p.add_argument("--out")
    a = ap.parse_args()

    if a.cmd == "count":
        gws = gateways(a.ns, a.prefix) or []
        print(" ".join([str(len(gws))] + gws))
        return 0

    start = a.since if a.since is not None else time.time()
    if a.signal:
        pid, _, sig = a.signal.partition(":")
        signum = getattr(signal, "SIG" + sig.upper().removeprefix("SIG"))
        start = time.time()
        try:
            os.kill(int(pid), signum)
        except ProcessLookupError:
            print(f"cluster_paths.py: no process {pid}", file=sys.stderr)
            return 1
    deadline = time.monotonic() + a.timeout
    polls, worst, last = 0, 0.0, None
    gws = []
    ok = False
    while True:
        now = time.monotonic()
        if last is not None:
            worst = max(worst, now - last)
        last = now
        got = gateways(a.ns, a.prefix)
        polls += 1
        if got is not None:
            gws = got
            if OPS[a.op](len(gws), a.want):
                ok = True
                break
        if time.monotonic() >= deadline:
            break
        time.sleep(a.interval)
    out = {
        "ok": ok,
        "paths": len(gws),
        "gateways": gws,
        "seconds": round(time.time() - start, 3),
        "start": round(start, 3),
        "polls": polls,
        "worst_poll": round(worst, 3),
    }
    text = json.dumps(out, sort_keys=True)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
