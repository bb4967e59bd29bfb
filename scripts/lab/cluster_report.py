#!/usr/bin/env python3
"""Counters and figures of the cluster lab (scripts/cluster-lab.sh), stdlib only.

usage:
  cluster_report.py counters STATS...
      one line per rvsd stats file (JSON, control/src/stats.rs):
      "created sloppy unix_ms" = the ports' connections_created, the connections created by
      sloppy TCP (the workers' connections_sloppy), and when they were written; "0 -1 0" for
      a missing or unreadable file.
  cluster_report.py health STATS
      "live quorum met": the first service's live weight, its quorum and whether it is met, or
      "? ? ?" when the file does not say.
  cluster_report.py wait-quorum STATS --met yes|no [--since UNIX] [--timeout S]
      polls STATS (every 50 ms) until its first service's quorum_met is as asked; prints
      {"ok", "seconds" (from --since, default now), "live_weight", "reasons"} (the real
      servers' last verdicts); exit 1 on timeout.
  cluster_report.py get FILE KEY...
      prints each KEY of the JSON object in FILE, one per line (objects and lists as compact
      JSON; "null" when absent). KEY may be dotted: by_server.rs1.
  cluster_report.py shares FILE
      "rs1 rs2 rs3 min_over_mean" from the by_server of a client.py / long_conns.py summary.
  cluster_report.py summary FIGURES [--json OUT]
      FIGURES holds "NAME<TAB>VALUE" lines (in order; a later NAME replaces an earlier one);
      prints "cluster: NAME: VALUE" for each, and with --json writes them as one JSON object
      (numbers as numbers).
"""

import argparse
import json
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def counters(paths):
    for p in paths:
        d = load(p)
        if not isinstance(d, dict):
            print("0 -1 0")
            continue
        created = sum(int(x.get("connections_created", 0)) for x in d.get("ports") or [])
        sloppy = sum(int(w.get("connections_sloppy", 0)) for w in d.get("workers") or [])
        print(created, sloppy, int(d.get("unix_ms", 0)))


def health(path):
    d = load(path)
    svcs = (d or {}).get("services") or []
    if not svcs or not isinstance(svcs[0], dict):
        print("? ? ?")
        return
    s = svcs[0]
    live = s.get("live_weight", s.get("live", "?"))
    quorum = s.get("quorum", "?")
    up = s.get("quorum_met")
    if up is None and isinstance(live, int) and isinstance(quorum, int):
        up = live >= quorum
    print(live, quorum, {True: "yes", False: "no"}.get(up, "?"))


def wait_quorum(path, met, since, timeout):
    import time
    start = since if since is not None else time.time()
    deadline = time.monotonic() + timeout
    ok, svc = False, {}
    while True:
        d = load(path)
        svcs = (d or {}).get("services") or []
        if svcs and isinstance(svcs[0], dict):
            svc = svcs[0]
            if bool(svc.get("quorum_met")) == met:
                ok = True
                break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    print(json.dumps({
        "ok": ok,
        "seconds": round(time.time() - start, 3),
        "live_weight": svc.get("live_weight"),
        "reasons": [r.get("reason") for r in svc.get("real_servers", [])],
    }, sort_keys=True))
    return 0 if ok else 1


def get(path, keys):
    d = load(path)
    for k in keys:
        v = d
        for part in k.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        if isinstance(v, (dict, list)):
            print(json.dumps(v, sort_keys=True, separators=(",", ":")))
        elif v is None:
            print("null")
        elif isinstance(v, bool):
            print("true" if v else "false")
        else:
            print(v)


def shares(path):
    d = load(path) or {}
    by = d.get("by_server") or {}
    counts = [int(by.get(f"rs{i}", 0)) for i in (1, 2, 3)]
    mean = sum(counts) / 3
    ratio = min(counts) / mean if mean else 0.0
    print(*counts, f"{ratio:.2f}")


def number(v):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def summary(path, out):
    figures = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            name, _, value = line.partition("\t")
            figures[name] = value
    for name, value in figures.items():
        print(f"cluster: {name}: {value}")
    if out:
        with open(out + ".tmp", "w") as f:
            json.dump({k: number(v) for k, v in figures.items()}, f, indent=1)
            f.write("\n")
        import os
        os.replace(out + ".tmp", out)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("counters")
    p.add_argument("stats", nargs="+")
    p = sub.add_parser("health")
    p.add_argument("stats")
    p = sub.add_parser("wait-quorum")
    p.add_argument("stats")
    p.add_argument("--met", choices=["yes", "no"], required=True)
    p.add_argument("--since", type=float)
    p.add_argument("--timeout", type=float, default=30.0)
    p = sub.add_parser("get")
    p.add_argument("file")
    p.add_argument("keys", nargs="+")
    p = sub.add_parser("shares")
    p.add_argument("file")
    p = sub.add_parser("summary")
    p.add_argument("figures")
    p.add_argument("--json")
    a = ap.parse_args()
    if a.cmd == "counters":
        counters(a.stats)
    elif a.cmd == "health":
        health(a.stats)
    elif a.cmd == "wait-quorum":
        return wait_quorum(a.stats, a.met == "yes", a.since, a.timeout)
    elif a.cmd == "get":
        get(a.file, a.keys)
    elif a.cmd == "shares":
        shares(a.file)
    else:
        summary(a.figures, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
