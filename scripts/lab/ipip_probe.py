#!/usr/bin/env python3
"""Hand-made IP-in-IP probes for the rvs lab's TUN mode (stdlib only). Prints JSON.

usage:
  ipip_probe.py send --outer-src A --outer-dst B [--inner-src 198.51.100.10]
                     [--inner-dst 198.51.100.100] [--sport 40000] [--dport 9000]
                     [--payload TEXT] [--icmp] [--ttl 64] [--no-df]
      Sends one IPv4 packet A -> B, protocol 4, carrying an inner IPv4 packet: a UDP
      datagram (inner-src:sport -> inner-dst:dport, PAYLOAD) or, with --icmp, an ICMP echo
      request. Uses socket(AF_INET, SOCK_RAW, IPPROTO_RAW) (the outer header is ours; the
      kernel fills in its checksum). The source must be one of this namespace's addresses or
      the kernel's rp/martian checks elsewhere may drop it; nothing here needs a route back.
  ipip_probe.py listen --addr 198.51.100.10 --port 40000 [--timeout 5]
      Waits for one UDP datagram on ADDR:PORT; prints its source and payload.
      Exit 0 if one arrived.
"""

import argparse
import json
import socket
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload, ttl=64, df=True, ident=0x1234):
    total = 20 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, 0x4000 if df else 0, ttl, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def udp(src, dst, sport, dport, payload):
    length = 8 + len(payload)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, length)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    c = csum(pseudo + hdr + payload) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, c) + payload


def icmp_echo(ident, seq, payload):
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    c = csum(hdr + payload)
    return struct.pack("!BBHHH", 8, 0, c, ident, seq) + payload


def cmd_send(a):
    payload = a.payload.encode()
    if a.icmp:
        inner = ipv4(a.inner_src, a.inner_dst, 1, icmp_echo(0x7276, 1, payload), ttl=a.ttl)
    else:
        inner = ipv4(a.inner_src, a.inner_dst, 17,
                     udp(a.inner_src, a.inner_dst, a.sport, a.dport, payload), ttl=a.ttl)
    outer = ipv4(a.outer_src, a.outer_dst, 4, inner, ttl=a.ttl, df=not a.no_df, ident=0x4242)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        n = s.sendto(outer, (a.outer_dst, 0))
    finally:
        s.close()
    print(json.dumps({"sent": n, "outer": [a.outer_src, a.outer_dst],
                      "inner": [a.inner_src, a.inner_dst], "icmp": a.icmp}))
    return 0


def cmd_listen(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.addr, a.port))
    s.settimeout(a.timeout)
    try:
        data, src = s.recvfrom(65535)
    except socket.timeout:
        print(json.dumps({"received": False}))
        return 1
    finally:
        s.close()
    print(json.dumps({"received": True, "src": src[0], "sport": src[1],
                      "payload": data.decode(errors="replace")}))
    return 0


def main():
    ap = argparse.ArgumentParser(description="IP-in-IP probes")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("send")
    p.add_argument("--outer-src", required=True)
    p.add_argument("--outer-dst", required=True)
    p.add_argument("--inner-src", default="198.51.100.10")
    p.add_argument("--inner-dst", default="198.51.100.100")
    p.add_argument("--sport", type=int, default=40000)
    p.add_argument("--dport", type=int, default=9000)
    p.add_argument("--payload", default="ipip-probe")
    p.add_argument("--icmp", action="store_true")
    p.add_argument("--ttl", type=int, default=64)
    p.add_argument("--no-df", action="store_true")
    p.set_defaults(fn=cmd_send)
    p = sub.add_parser("listen")
    p.add_argument("--addr", default="0.0.0.0")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(fn=cmd_listen)
    a = ap.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
