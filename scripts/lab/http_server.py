#!/usr/bin/env python3
"""Real-server HTTP/1.1 server for the rvs lab (stdlib only).

usage: http_server.py NAME [--addr 0.0.0.0] [--port 80] [--pidfile FILE] [--health-file F]

  GET /              -> "NAME\\n"
  GET /health        -> 200 "ok\\n"; if F exists: its first word is the status, the rest of its
                        first line the body (e.g. "500", "200 changed"), for health-check labs
  GET /slow?s=N      -> N lines "NAME i/N\\n", one per second, on one connection (N <= 30)
  GET|POST|PUT /upload -> reads the whole request body (Content-Length or chunked) and answers
                        {"server": NAME, "length": n, "sha256": "..."} as JSON
Every answer carries the header "X-Server: NAME". The pid file is written once the socket
listens (it is the readiness signal for scripts/lab.sh). SIGTERM/SIGINT stop it cleanly.
Logging: one line per 100 requests, and at most 20 error lines.
"""

import argparse
import hashlib
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_SLOW = 30
MAX_BODY = 1 << 31  # 2 GiB: an upload larger than this is refused
CHUNK = 1 << 16


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = 0


STATS = Stats()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "rvs-lab"
    timeout = 60  # per socket operation; an idle or stuck client frees its thread
    name = "rs?"
    health_file = None

    def version_string(self):
        return self.server_version

    # --- helpers -----------------------------------------------------------

    def _send(self, code, body, ctype="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Server", self.name)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _read_body(self):
        """Reads the request body; returns (length, sha256 hex) or raises ValueError."""
        h = hashlib.sha256()
        n = 0
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ValueError("truncated chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers, up to the empty line
                    for _ in range(100):
                        t = self.rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                if n + size > MAX_BODY:
                    raise ValueError("body too large")
                left = size
                while left:
                    buf = self.rfile.read(min(left, CHUNK))
                    if not buf:
                        raise ValueError("truncated chunk")
                    h.update(buf)
                    left -= len(buf)
                n += size
                self.rfile.readline(16)  # CRLF after the chunk
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0 or length > MAX_BODY:
                raise ValueError("bad Content-Length")
            left = length
            while left:
                buf = self.rfile.read(min(left, CHUNK))
                if not buf:
                    raise ValueError(f"truncated body ({length - left} of {length} bytes)")
                h.update(buf)
                left -= len(buf)
            n = length
        return n, h.hexdigest()

    # --- methods -----------------------------------------------------------

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/":
            self._send(200, f"{self.name}\n")
        elif url.path == "/health":
            self._health()
        elif url.path == "/slow":
            self._slow(url.query)
        elif url.path == "/upload":
            self._upload()
        else:
            self._send(404, "not found\n")

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path == "/upload":
            self._upload()
        else:
            # the body is not read: do not reuse this connection
            self.close_connection = True
            self._send(404, "not found\n")

    do_PUT = do_POST  # curl -T

    def _health(self):
        status, body = 200, "ok"
        if self.health_file:
            try:
                with open(self.health_file) as f:
                    words = f.readline().strip().split(" ", 1)
                status = int(words[0])
                body = words[1] if len(words) > 1 else f"status {status}"
            except FileNotFoundError:
                pass
            except (OSError, ValueError):
                status, body = 500, "unreadable health file"
        self._send(status, f"{body}\n")

    def _slow(self, query):
        try:
            s = int(parse_qs(query).get("s", ["5"])[0])
        except ValueError:
            s = -1
        if not 0 <= s <= MAX_SLOW:
            self._send(400, f"s must be 0..{MAX_SLOW}\n")
            return
        lines = [f"{self.name} {i}/{s}\n".encode() for i in range(1, s + 1)]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(sum(len(x) for x in lines)))
        self.send_header("X-Server", self.name)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        for line in lines:
            time.sleep(1)
            self.wfile.write(line)
            self.wfile.flush()

    def _upload(self):
        try:
            n, digest = self._read_body()
        except ValueError as e:
            self.close_connection = True
            self._send(400, f"{e}\n")
            return
        body = json.dumps({"server": self.name, "length": n, "sha256": digest}) + "\n"
        self._send(200, body, "application/json")

    # --- logging -----------------------------------------------------------

    def log_request(self, code="-", size="-"):
        with STATS.lock:
            STATS.requests += 1
            n = STATS.requests
        if n % 100 == 0:
            sys.stderr.write(f"{self.name}: {n} requests\n")

    def log_error(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's signature)
        with STATS.lock:
            STATS.errors += 1
            n = STATS.errors
        if n <= 20:
            sys.stderr.write(f"{self.name}: error: {format % args}\n")

    def log_message(self, format, *args):  # noqa: A002
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def main():
    ap = argparse.ArgumentParser(description="rvs lab HTTP real server")
    ap.add_argument("name", help="server name, returned by GET / (e.g. rs1)")
    ap.add_argument("--addr", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--pidfile", help="written once listening")
    ap.add_argument("--health-file", help="what GET /health answers, if it exists")
    args = ap.parse_args()

    Handler.name = args.name
    Handler.health_file = args.health_file
    httpd = Server((args.addr, args.port), Handler)

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.pidfile:
        tmp = f"{args.pidfile}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, args.pidfile)
    code = 0
    try:
        httpd.serve_forever(poll_interval=0.5)
    except SystemExit as e:
        code = 0 if e.code in (128 + signal.SIGTERM, 128 + signal.SIGINT) else e.code
    finally:
        httpd.server_close()
    return code


if __name__ == "__main__":
    sys.exit(main())
