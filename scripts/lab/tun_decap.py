#!/usr/bin/env python3
"""User-space IP-in-IP decapsulator for the rvs lab's TUN mode (stdlib only).

usage: tun_decap.py STATS_JSON [--dev tun0] [--pidfile FILE] [--keep N]

The kernel here has no ipip module. This program opens /dev/net/tun (IFF_TUN | IFF_NO_PI)
as DEV, brings it up (`ip link set DEV up`, rp_filter 0 on it), and reads every IPv4
protocol-4 packet addressed to this host from a raw socket(AF_INET, SOCK_RAW, IPPROTO_IPIP).
Raw IPv4 sockets deliver the outer header too. A packet is decapsulated when its outer
header is IPv4 with protocol 4 and its payload is a whole IPv4 packet; the inner packet is
written to DEV, so the kernel receives it as if it had arrived on DEV. (While a raw socket
for protocol 4 is open, the kernel sends no ICMP protocol-unreachable for it.)

STATS_JSON (rewritten atomically, at most once per second while packets arrive, and at exit):
  {"dev", "pid", "running", "decapsulated", "bad", "bad_reasons": {...},
   "first": [outer/inner fields of the first --keep (8) packets], "last": {... of the last},
   "updated": unix time}
  outer fields: src, dst, ttl, df, protocol, total_length, id, tos, ihl;
  inner fields: inner_src, inner_dst, inner_protocol, inner_length, inner_ttl.
The pid file is written once ready. SIGTERM/SIGINT stop it cleanly (the TUN device goes away).
"""

import argparse
import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IPPROTO_IPIP = 4


def ip4(b):
    return socket.inet_ntoa(b)


def parse(pkt):
    """Returns (fields, inner) or raises ValueError(reason)."""
    if len(pkt) < 20:
        raise ValueError("short_outer")
    vihl, tos, total, ident, frag, ttl, proto, _csum, src, dst = struct.unpack_from(
        "!BBHHHBBH4s4s", pkt
    )
    if vihl >> 4 != 4:
        raise ValueError("outer_not_ipv4")
    ihl = (vihl & 0x0F) * 4
    if ihl < 20 or ihl > len(pkt):
        raise ValueError("outer_bad_ihl")
    if proto != IPPROTO_IPIP:
        raise ValueError("outer_not_ipip")
    fields = {
        "src": ip4(src),
        "dst": ip4(dst),
        "ttl": ttl,
        "df": bool(frag & 0x4000),
        "protocol": proto,
        "total_length": total,
        "received_length": len(pkt),
        "id": ident,
        "tos": tos,
        "ihl": ihl,
    }
    inner = pkt[ihl:]
    if len(inner) < 20:
        raise ValueError("short_inner")
    ivihl, _itos, itotal, _iid, _ifrag, ittl, iproto, _icsum, isrc, idst = struct.unpack_from(
        "!BBHHHBBH4s4s", inner
    )
    if ivihl >> 4 != 4:
        raise ValueError("inner_not_ipv4")
    iihl = (ivihl & 0x0F) * 4
    if iihl < 20 or itotal < iihl or itotal > len(inner):
        raise ValueError("inner_bad_length")
    fields.update(
        inner_src=ip4(isrc),
        inner_dst=ip4(idst),
        inner_protocol=iproto,
        inner_length=itotal,
        inner_ttl=ittl,
    )
    return fields, inner[:itotal]


def main():
    ap = argparse.ArgumentParser(description="user-space IP-in-IP decapsulator into a TUN device")
    ap.add_argument("stats", help="JSON file for counters and the outer headers seen")
    ap.add_argument("--dev", default="tun0")
    ap.add_argument("--pidfile", help="written once ready")
    ap.add_argument("--keep", type=int, default=8, help="packets whose headers are recorded")
    args = ap.parse_args()

    tun = os.open("/dev/net/tun", os.O_RDWR)
    ifr = struct.pack("16sH", args.dev.encode(), IFF_TUN | IFF_NO_PI)
    fcntl.ioctl(tun, TUNSETIFF, ifr)
    subprocess.run(["ip", "link", "set", "dev", args.dev, "up"], check=True, timeout=10)
    try:
        with open(f"/proc/sys/net/ipv4/conf/{args.dev}/rp_filter", "w") as f:
            f.write("0\n")
    except OSError as e:
        print(f"tun_decap: cannot set rp_filter on {args.dev}: {e}", file=sys.stderr)

    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    raw.setblocking(False)

    stopping = []

    def stop(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    state = {
        "dev": args.dev,
        "pid": os.getpid(),
        "running": True,
        "decapsulated": 0,
        "bad": 0,
        "bad_reasons": {},
        "first": [],
        "last": None,
        "updated": None,
    }

    def write_stats():
        state["updated"] = time.time()
        tmp = f"{args.stats}.tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1)
            f.write("\n")
        os.replace(tmp, args.stats)

    write_stats()
    if args.pidfile:
        tmp = f"{args.pidfile}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, args.pidfile)

    dirty = False
    last_write = time.monotonic()
    while not stopping:
        r, _, _ = select.select([raw], [], [], 0.5)
        for _ in range(1024 if r else 0):
            try:
                pkt = raw.recv(65535)
            except BlockingIOError:
                break
            dirty = True
            try:
                fields, inner = parse(pkt)
            except ValueError as e:
                state["bad"] += 1
                reason = str(e)
                state["bad_reasons"][reason] = state["bad_reasons"].get(reason, 0) + 1
                continue
            try:
                os.write(tun, inner)
            except OSError as e:
                state["bad"] += 1
                reason = f"tun_write_{e.errno}"
                state["bad_reasons"][reason] = state["bad_reasons"].get(reason, 0) + 1
                continue
            state["decapsulated"] += 1
            if len(state["first"]) < args.keep:
                state["first"].append(fields)
            state["last"] = fields
        now = time.monotonic()
        if dirty and now - last_write >= 1.0:
            write_stats()
            dirty = False
            last_write = now

    state["running"] = False
    write_stats()
    raw.close()
    os.close(tun)
    return 0


if __name__ == "__main__":
    sys.exit(main())
