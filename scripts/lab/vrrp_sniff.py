#!/usr/bin/env python3
"""Records the VRRP adverts and ARP frames seen on interfaces, one JSON line each (stdlib only).

usage: vrrp_sniff.py --out FILE --iface IFACE[=LABEL] ... [--seconds 3600] [--all-directions]
                     [--pidfile FILE]

One AF_PACKET socket per interface (bound to it). By default only frames the interface
receives are kept: on a bridge's ports (the lab runs it in NAME-sw on sw-lbc, sw-kac, ...)
that is exactly what the host behind each port sent, once, labelled LABEL (the sender's own
interface name: lb0, ka0, ...). Each line carries the kernel's receive time (SO_TIMESTAMPNS,
Unix seconds) in "t", "from" (LABEL), the MACs, and:
  VRRP (IPv4 protocol 112): "kind": "vrrp", src, dst, ttl, ip_id, tos, version, type, vrid,
    prio, naddr, "int_cs" (v3: the 12-bit interval in centiseconds; v2: adver_int x 100),
    addrs, auth_type and auth (v2, the 8 bytes as text), "cksum_ok" (the VRRP checksum as the
    version defines it: v2 over the message, v3 with the IPv4 pseudo-header), "len".
  ARP: "kind": "arp", op (1 request, 2 reply), sender_mac, sender_ip, target_mac, target_ip,
    "garp" (sender_ip == target_ip).
Lines are flushed as they are written, so a reader sees them at once. The pid file is written
once every socket is bound. SIGTERM/SIGINT stop it; it stops by itself after --seconds.
"""

import argparse
import json
import os
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
PACKET_OUTGOING = 4
PROTO_VRRP = 112


def mac(b):
    return ":".join(f"{x:02x}" for x in b)


def ip(b):
    return socket.inet_ntoa(bytes(b))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total ^ 0xFFFF


def parse(frame):
    """The record of a VRRP or ARP frame, else None."""
    if len(frame) < 14:
        return None
    rec = {"dst_mac": mac(frame[0:6]), "src_mac": mac(frame[6:12])}
    ethertype = struct.unpack("!H", frame[12:14])[0]
    p = frame[14:]
    if ethertype == 0x0806 and len(p) >= 28:
        op = struct.unpack("!H", p[6:8])[0]
        rec.update(kind="arp", op=op, sender_mac=mac(p[8:14]), sender_ip=ip(p[14:18]),
                   target_mac=mac(p[18:24]), target_ip=ip(p[24:28]),
                   garp=p[14:18] == p[24:28])
        return rec
    if ethertype != 0x0800 or len(p) < 20 or p[9] != PROTO_VRRP:
        return None
    ihl = (p[0] & 0x0F) * 4
    total = struct.unpack("!H", p[2:4])[0]
    v = p[ihl:total]
    rec.update(kind="vrrp", src=ip(p[12:16]), dst=ip(p[16:20]), ttl=p[8], tos=p[1],
               ip_id=struct.unpack("!H", p[4:6])[0], len=len(v))
    if len(v) < 8:
        rec.update(malformed=True)
        return rec
    version, vtype = v[0] >> 4, v[0] & 0x0F
    naddr = v[3]
    addrs = [ip(v[8 + 4 * i:12 + 4 * i]) for i in range(naddr) if 12 + 4 * i <= len(v)]
    rec.update(version=version, type=vtype, vrid=v[1], prio=v[2], naddr=naddr, addrs=addrs)
    if version == 2:
        rec.update(auth_type=v[4], int_cs=v[5] * 100)
        auth = v[8 + 4 * naddr:16 + 4 * naddr]
        rec.update(auth=auth.rstrip(b"\0").decode("latin-1"))
        rec.update(cksum_ok=csum(bytes(v)) == 0)
    else:
        rec.update(int_cs=struct.unpack("!H", v[4:6])[0] & 0x0FFF)
        pseudo = p[12:20] + struct.pack("!BBH", 0, PROTO_VRRP, len(v))
        rec.update(cksum_ok=csum(bytes(pseudo) + bytes(v)) == 0)
    return rec


def main():
    ap = argparse.ArgumentParser(description="record VRRP adverts and ARP frames")
    ap.add_argument("--out", required=True)
    ap.add_argument("--iface", action="append", required=True, help="IFACE or IFACE=LABEL")
    ap.add_argument("--seconds", type=float, default=3600.0)
    ap.add_argument("--all-directions", action="store_true",
                    help="also the frames the interfaces send")
    ap.add_argument("--pidfile")
    a = ap.parse_args()
    if not 0 < a.seconds <= 86400:
        raise SystemExit("vrrp_sniff.py: --seconds must be in (0, 86400]")

    socks = {}
    for spec in a.iface:
        name, _, label = spec.partition("=")
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, ETH_P_ALL))
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.setblocking(False)
        socks[s.fileno()] = (s, label or name)

    stopping = []

    def stop(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    out = open(a.out, "a", buffering=1)
    if a.pidfile:
        tmp = f"{a.pidfile}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, a.pidfile)

    cmsg_space = socket.CMSG_SPACE(16)
    deadline = time.monotonic() + a.seconds
    while not stopping:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            ready, _, _ = select.select(list(socks), [], [], min(left, 0.5))
        except InterruptedError:
            continue
        for fd in ready:
            s, label = socks[fd]
            for _ in range(256):
                try:
                    data, anc, _flags, addr = s.recvmsg(65535, cmsg_space)
                except BlockingIOError:
                    break
                except OSError:  # ENETDOWN while its link is pulled: read on later
                    break
                if addr[2] == PACKET_OUTGOING and not a.all_directions:
                    continue
                rec = parse(data)
                if rec is None:
                    continue
                t = time.time()
                for level, ctype, cdata in anc:
                    if level == socket.SOL_SOCKET and ctype == SO_TIMESTAMPNS and len(cdata) >= 16:
                        sec, nsec = struct.unpack("qq", cdata[:16])
                        t = sec + nsec / 1e9
                rec = {"t": round(t, 6), "from": label, **rec}
                if addr[2] == PACKET_OUTGOING:
                    rec["outgoing"] = True
                out.write(json.dumps(rec) + "\n")
    out.close()
    for s, _ in socks.values():
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
