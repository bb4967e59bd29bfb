#!/usr/bin/env python3
"""Counts the frames seen on interfaces of the current network namespace (stdlib only).

usage: sniff.py [--seconds 5] [--iface IFACE ...] [--show 20]

Opens one AF_PACKET/ETH_P_ALL socket (all interfaces of the namespace, or only those given),
in promiscuous mode, for SECONDS, and prints JSON: {"frames": n, "by_iface": {...},
"max_len": {iface: largest frame, bytes incl. the Ethernet header},
"first": [first SHOW frames: iface, direction, src/dst MAC, ethertype, length]}.
Exit 0 if no frame was seen (use it to check that a network is idle).
"""

import argparse
import json
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
DIRECTIONS = {0: "in", 1: "in-bcast", 2: "in-mcast", 3: "in-other", 4: "out"}


def mac(b):
    return ":".join(f"{x:02x}" for x in b)


def main():
    ap = argparse.ArgumentParser(description="count frames on this namespace's interfaces")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--iface", action="append", default=[])
    ap.add_argument("--show", type=int, default=20)
    a = ap.parse_args()
    if not 0 < a.seconds <= 600:
        raise SystemExit("sniff.py: --seconds must be in (0, 600]")

    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    names = a.iface or [n for _, n in socket.if_nameindex() if n != "lo"]
    wanted = set(names)
    for name in names:
        idx = socket.if_nametoindex(name)
        mreq = struct.pack("iHH8s", idx, PACKET_MR_PROMISC, 0, b"")
        s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
    s.setblocking(False)
    frames, by_iface, first, max_len = 0, {}, [], {}
    deadline = time.monotonic() + a.seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([s], [], [], left)
        for _ in range(1024 if r else 0):
            try:
                data, addr = s.recvfrom(65535)
            except BlockingIOError:
                break
            name, ptype = addr[0], addr[2]  # (ifname, proto, pkttype, hatype, addr)
            if name not in wanted:
                continue
            frames += 1
            by_iface[name] = by_iface.get(name, 0) + 1
            max_len[name] = max(max_len.get(name, 0), len(data))
            if len(first) < a.show and len(data) >= 14:
                first.append({"iface": name, "dir": DIRECTIONS.get(ptype, str(ptype)),
                              "dst": mac(data[0:6]), "src": mac(data[6:12]),
                              "ethertype": f"0x{struct.unpack('!H', data[12:14])[0]:04x}",
                              "len": len(data)})
    s.close()
    print(json.dumps({"seconds": a.seconds, "ifaces": sorted(names), "frames": frames,
                      "by_iface": by_iface, "max_len": max_len, "first": first}, indent=1))
    return 0 if frames == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
