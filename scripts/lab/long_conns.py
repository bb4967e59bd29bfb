#!/usr/bin/env python3
"""Many long-lived connections at once, for failover tests (stdlib only).

usage:
  long_conns.py --url http://198.51.100.100/ --count 50 --seconds 30 [--timeout 20]
      [--ready-file F]
      COUNT connections, each streaming /slow?s=SECONDS (one line a second, each line naming
      the real server), opened together; F is written once every connection has its first
      line. Prints one JSON object:
      {"connections", "ok", "broken", "moved", "by_server", "max_gap", "errors": [first 5]}
      a connection is ok when all its lines came and all from one server; "moved" counts
      those whose lines came from two servers; "max_gap" is the longest wait between two
      lines of one connection, in seconds. Exit 0 once all ended (the caller judges).
"""

import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlsplit


def one(host, port, seconds, timeout, result, started):
    lines, servers, gap, last = 0, [], 0.0, None
    error = None
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", f"/slow?s={seconds}")
        resp = conn.getresponse()
        if resp.status != 200:
            error = f"HTTP {resp.status}"
        else:
            for _ in range(seconds + 1):
                line = resp.readline(1024)
                now = time.monotonic()
                if not line:
                    break
                if last is not None:
                    gap = max(gap, now - last)
                else:
                    started.release()
                last = now
                lines += 1
                servers.append(line.decode(errors="replace").split(" ", 1)[0])
    except (OSError, http.client.HTTPException) as e:
        error = f"after {lines} lines: {type(e).__name__}: {e}"
    finally:
        conn.close()
        if last is None:
            started.release()
    result.update(lines=lines, servers=sorted(set(servers)), gap=gap, error=error)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--ready-file")
    a = ap.parse_args()
    if not 1 <= a.count <= 1000 or not 1 <= a.seconds <= 30:
        raise SystemExit("long_conns.py: --count 1..1000, --seconds 1..30")
    u = urlsplit(a.url)
    host, port = u.hostname, u.port or 80
    started = threading.Semaphore(0)
    results = [dict() for _ in range(a.count)]
    threads = [threading.Thread(target=one, args=(host, port, a.seconds, a.timeout, r, started))
               for r in results]
    for t in threads:
        t.start()
    for _ in threads:
        started.acquire()
    if a.ready_file:
        with open(a.ready_file, "w") as f:
            f.write("ready\n")
    for t in threads:
        t.join()
    ok = [r for r in results if r["error"] is None and r["lines"] == a.seconds
          and len(r["servers"]) == 1]
    by_server = {}
    for r in results:
        for s in r["servers"]:
            by_server[s] = by_server.get(s, 0) + 1
    errors = [r["error"] for r in results if r["error"]][:5]
    print(json.dumps({
        "connections": a.count,
        "ok": len(ok),
        "broken": a.count - len(ok),
        "moved": sum(1 for r in results if len(r["servers"]) > 1),
        "by_server": by_server,
        "max_gap": round(max((r["gap"] for r in results), default=0.0), 3),
        "errors": errors,
    }, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
