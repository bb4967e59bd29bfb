#!/usr/bin/env python3
"""Traffic client for the rvs lab (stdlib only). Prints one JSON object on stdout.

usage:
  client.py http   --url http://198.51.100.100/ [--count 10] [--timeout 5]
      N GET requests, each on a new TCP connection ("Connection: close").
      {"requests", "ok", "failed", "by_server": {"rs1": n, ...}, "errors": [first 5]}
      exit 0 only if every request got 200 and a server name.
  client.py udp    --addr 198.51.100.100 [--port 9000] [--count 10] [--timeout 2] [--size 16]
      N datagrams, each from a new socket (new source port); waits for each reply.
      {"datagrams", "ok", "failed", "from_vip", "wrong_source": [...], "by_server", "errors"}
      exit 0 only if every datagram was answered with its payload, from ADDR:PORT.
  client.py long   --url http://198.51.100.100/ [--seconds 10] [--timeout 5]
      one connection streaming /slow?s=SECONDS (one line per second).
      {"seconds", "lines", "servers", "by_server", "ok", "duration", "errors"}
      exit 0 only if all lines came, all from one server.
  client.py keepalive --url http://198.51.100.100/ --ready-file F --go-file G [--timeout 30]
      one HTTP/1.1 connection: a first GET, then F is created (holding the name of the server
      that answered); once G exists (looked for every
      10 ms, up to --timeout), a second GET on the same connection, timed until its answer or
      its error.
      {"first", "second": "ok"|"reset"|"closed"|"timeout"|"error", "second_server",
       "seconds", "errors"}
      exit 0 if the first request was answered (the second is what the caller judges).
  client.py stream --url http://198.51.100.100/ --rate 20 --seconds 10 [--timeout 2]
      new connections at a steady RATE per second for SECONDS, each one GET ("Connection:
      close") in a thread of its own (at most 512 at once), so that a hanging one does not
      delay the next.
      {"requests", "ok", "failed", "by_server", "events": [[start, ok, server_or_error, secs]]}
      with `start` in Unix seconds; exit 0 once all ended (the caller judges the failures).
  client.py upload --url http://198.51.100.100/ [--bytes 1048576] [--timeout 30]
      one POST /upload of N random bytes; checks the length and sha256 the server returns.
      {"bytes", "ok", "server", "length", "sha256", "duration", "errors"}
For long and upload, a URL whose path is "/" means /slow and /upload respectively.
Every operation is bounded by --timeout per socket operation and by --count/--seconds/--bytes.
"""

import argparse
import hashlib
import http.client
import json
import os
import socket
import sys
import time
from urllib.parse import urlsplit

MAX_COUNT = 100000
MAX_BYTES = 1 << 31


def split_url(url):
    u = urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise SystemExit(f"client.py: only http://HOST[:PORT]/PATH URLs: {url}")
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return u.hostname, u.port or 80, path


def emit(obj, good):
    print(json.dumps(obj, indent=1, sort_keys=True))
    return 0 if good else 1


def add_error(errors, msg):
    if len(errors) < 5:
        errors.append(msg)


def cmd_http(a):
    host, port, path = split_url(a.url)
    by_server, errors = {}, []
    ok = 0
    for i in range(a.count):
        conn = http.client.HTTPConnection(host, port, timeout=a.timeout)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read(65536)
            name = resp.getheader("X-Server") or body.decode(errors="replace").strip()
            if resp.status != 200:
                add_error(errors, f"#{i}: HTTP {resp.status} from {name or '?'}")
            elif not name:
                add_error(errors, f"#{i}: no server name in the answer")
            else:
                ok += 1
                by_server[name] = by_server.get(name, 0) + 1
        except (OSError, http.client.HTTPException) as e:
            add_error(errors, f"#{i}: {type(e).__name__}: {e}")
        finally:
            conn.close()
    out = {"requests": a.count, "ok": ok, "failed": a.count - ok, "by_server": by_server,
           "errors": errors}
    return emit(out, ok == a.count)


def cmd_udp(a):
    by_server, errors, wrong = {}, [], []
    ok = from_vip = 0
    nonce = os.urandom(4).hex()
    # Every socket stays open until the end: a closed one's ephemeral port could be handed out
    # again, and a datagram from it would be a packet of an existing flow, not a new one.
    held = []
    for i in range(a.count):
        payload = f"{nonce}-{i}-".encode()
        payload += b"x" * max(0, a.size - len(payload))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        held.append(s)
        try:
            s.bind(("0.0.0.0", 0))  # a new ephemeral source port for each datagram
            s.sendto(payload, (a.addr, a.port))
            deadline = time.monotonic() + a.timeout
            got = False
            for _ in range(64):  # bounded: ignore stray datagrams, up to 64
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                s.settimeout(left)
                data, src = s.recvfrom(65535)
                name, sep, rest = data.partition(b":")
                if not sep or rest != payload:
                    add_error(errors, f"#{i}: unexpected datagram from {src[0]}:{src[1]}")
                    continue
                got = True
                if src == (a.addr, a.port):
                    from_vip += 1
                elif len(wrong) < 5:
                    wrong.append(f"{src[0]}:{src[1]}")
                n = name.decode(errors="replace")
                by_server[n] = by_server.get(n, 0) + 1
                ok += 1
                break
            if not got:
                add_error(errors, f"#{i}: no reply within {a.timeout}s")
        except OSError as e:
            add_error(errors, f"#{i}: {type(e).__name__}: {e}")
    for s in held:
        s.close()
    out = {"datagrams": a.count, "ok": ok, "failed": a.count - ok, "from_vip": from_vip,
           "wrong_source": wrong, "by_server": by_server, "errors": errors}
    return emit(out, ok == a.count and from_vip == a.count)


def cmd_long(a):
    host, port, path = split_url(a.url)
    if path == "/":
        path = f"/slow?s={a.seconds}"
    by_server, errors, servers = {}, [], []
    lines = 0
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=a.timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        if resp.status != 200:
            add_error(errors, f"HTTP {resp.status}")
        for _ in range(a.seconds + 1):
            line = resp.readline(1024)
            if not line:
                break
            lines += 1
            name = line.decode(errors="replace").split(" ", 1)[0]
            servers.append(name)
            by_server[name] = by_server.get(name, 0) + 1
    except (OSError, http.client.HTTPException) as e:
        add_error(errors, f"after {lines} lines: {type(e).__name__}: {e}")
    finally:
        conn.close()
    distinct = sorted(set(servers))
    good = not errors and lines == a.seconds and len(distinct) <= 1
    out = {"seconds": a.seconds, "lines": lines, "servers": distinct, "by_server": by_server,
           "ok": good, "duration": round(time.monotonic() - t0, 3), "errors": errors}
    return emit(out, good)


def cmd_keepalive(a):
    host, port, path = split_url(a.url)
    errors = []
    out = {"first": None, "second": None, "second_server": None, "seconds": None}
    conn = http.client.HTTPConnection(host, port, timeout=a.timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read(65536)
        out["first"] = resp.getheader("X-Server")
    except (OSError, http.client.HTTPException) as e:
        add_error(errors, f"first: {type(e).__name__}: {e}")
        conn.close()
        out["errors"] = errors
        return emit(out, False)
    with open(a.ready_file + ".tmp", "w") as f:
        f.write(f"{out['first']}\n")
    os.replace(a.ready_file + ".tmp", a.ready_file)
    deadline = time.monotonic() + a.timeout
    while not os.path.exists(a.go_file):
        if time.monotonic() > deadline:
            add_error(errors, "no go file")
            out["errors"] = errors
            return emit(out, False)
        time.sleep(0.01)
    t0 = time.monotonic()
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read(65536)
        out["second"] = "ok"
        out["second_server"] = resp.getheader("X-Server")
    except ConnectionResetError:
        out["second"] = "reset"
    except socket.timeout:
        out["second"] = "timeout"
    except (http.client.RemoteDisconnected, http.client.IncompleteRead):
        out["second"] = "closed"
    except (OSError, http.client.HTTPException) as e:
        out["second"] = "error"
        add_error(errors, f"second: {type(e).__name__}: {e}")
    finally:
        conn.close()
    out["seconds"] = round(time.monotonic() - t0, 3)
    out["errors"] = errors
    return emit(out, True)


def one_get(host, port, path, timeout):
    """One GET on a new connection: (ok, server name or error kind)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(65536)
        name = resp.getheader("X-Server") or body.decode(errors="replace").strip()
        if resp.status != 200:
            return False, f"HTTP {resp.status}"
        return (True, name) if name else (False, "no server name")
    except ConnectionRefusedError:
        return False, "refused"
    except ConnectionResetError:
        return False, "reset"
    except socket.timeout:
        return False, "timeout"
    except (OSError, http.client.HTTPException) as e:
        return False, type(e).__name__
    finally:
        conn.close()


def cmd_stream(a):
    import threading

    host, port, path = split_url(a.url)
    events, lock = [], threading.Lock()
    slots = threading.BoundedSemaphore(512)

    def worker(start):
        try:
            t0 = time.monotonic()
            ok, what = one_get(host, port, path, a.timeout)
            with lock:
                events.append([round(start, 3), 1 if ok else 0, what, round(time.monotonic() - t0, 3)])
        finally:
            slots.release()

    threads = []
    total = int(a.rate * a.seconds)
    begin = time.monotonic()
    for i in range(total):
        due = begin + i / a.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        slots.acquire()
        t = threading.Thread(target=worker, args=(time.time(),), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(a.timeout + 5)
    with lock:
        events.sort()
        ok = sum(e[1] for e in events)
        by_server = {}
        for e in events:
            if e[1]:
                by_server[e[2]] = by_server.get(e[2], 0) + 1
        out = {"requests": total, "ok": ok, "failed": len(events) - ok, "by_server": by_server,
               "events": events}
    return emit(out, True)


def cmd_upload(a):
    host, port, path = split_url(a.url)
    if path == "/":
        path = "/upload"
    errors = []
    h = hashlib.sha256()
    out = {"bytes": a.bytes, "ok": False, "server": None, "length": None, "sha256": None}
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=a.timeout)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(a.bytes))
        conn.putheader("Connection", "close")
        conn.endheaders()
        left = a.bytes
        while left:
            chunk = os.urandom(min(left, 1 << 16))
            h.update(chunk)
            conn.send(chunk)
            left -= len(chunk)
        resp = conn.getresponse()
        body = resp.read(65536)
        out["server"] = resp.getheader("X-Server")
        if resp.status != 200:
            add_error(errors, f"HTTP {resp.status}: {body[:200]!r}")
        else:
            reply = json.loads(body)
            out["length"] = reply.get("length")
            out["sha256"] = reply.get("sha256")
            if out["length"] != a.bytes:
                add_error(errors, f"server got {out['length']} bytes, sent {a.bytes}")
            if out["sha256"] != h.hexdigest():
                add_error(errors, "sha256 differs")
    except (OSError, http.client.HTTPException, ValueError) as e:
        add_error(errors, f"{type(e).__name__}: {e}")
    finally:
        conn.close()
    out["ok"] = not errors
    out["sent_sha256"] = h.hexdigest()
    out["duration"] = round(time.monotonic() - t0, 3)
    out["errors"] = errors
    return emit(out, out["ok"])


def bounded(lo, hi):
    def conv(s):
        v = int(s)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi}")
        return v
    return conv


def main():
    ap = argparse.ArgumentParser(description="rvs lab traffic client")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("http", help="N GETs, one TCP connection each")
    p.add_argument("--url", required=True)
    p.add_argument("--count", type=bounded(1, MAX_COUNT), default=10)
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(fn=cmd_http)

    p = sub.add_parser("udp", help="N datagrams, one source port each")
    p.add_argument("--addr", required=True)
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--count", type=bounded(1, MAX_COUNT), default=10)
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--size", type=bounded(0, 65000), default=16, help="payload bytes")
    p.set_defaults(fn=cmd_udp)

    p = sub.add_parser("long", help="one long-lived connection streaming /slow")
    p.add_argument("--url", required=True)
    p.add_argument("--seconds", type=bounded(1, 30), default=10)
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(fn=cmd_long)

    p = sub.add_parser("keepalive", help="two GETs on one connection, the second on a signal")
    p.add_argument("--url", required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--go-file", required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(fn=cmd_keepalive)

    p = sub.add_parser("stream", help="new connections at a steady rate, each timed")
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=bounded(1, 1000), default=20)
    p.add_argument("--seconds", type=bounded(1, 300), default=10)
    p.add_argument("--timeout", type=float, default=2.0)
    p.set_defaults(fn=cmd_stream)

    p = sub.add_parser("upload", help="one POST /upload of N random bytes")
    p.add_argument("--url", required=True)
    p.add_argument("--bytes", type=bounded(0, MAX_BYTES), default=1 << 20)
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(fn=cmd_upload)

    a = ap.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
