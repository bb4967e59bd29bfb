#!/usr/bin/env python3
"""UDP echo real server for the rvs lab (stdlib only).

usage: udp_echo.py NAME [--addr 0.0.0.0] [--port 9000] [--pidfile FILE]

Each datagram is answered with b"NAME:" + payload, sent FROM the address the datagram was
sent TO (IP_PKTINFO: the reply's ipi_spec_dst is the request's ipi_addr). This matters when
the virtual IP sits on lo (DR and TUN modes): without it the kernel would pick eth0's address
as the source and the client would drop the reply. The pid file is written once bound.
SIGTERM/SIGINT stop it cleanly.
"""

import argparse
import os
import select
import signal
import socket
import struct
import sys

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux value
PKTINFO = struct.Struct("=I4s4s")  # ipi_ifindex, ipi_spec_dst, ipi_addr
MAX_DGRAM = 65535


def main():
    ap = argparse.ArgumentParser(description="rvs lab UDP echo real server")
    ap.add_argument("name", help="server name, prefixed to every reply as 'NAME:'")
    ap.add_argument("--addr", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--pidfile", help="written once bound")
    args = ap.parse_args()

    prefix = f"{args.name}:".encode()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    sock.bind((args.addr, args.port))
    sock.setblocking(False)

    stopping = []

    def stop(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.pidfile:
        tmp = f"{args.pidfile}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, args.pidfile)

    cmsg_space = socket.CMSG_SPACE(PKTINFO.size)
    errors = 0
    while not stopping:
        r, _, _ = select.select([sock], [], [], 0.5)
        if not r:
            continue
        # Drain what is queued, a bounded number per wake-up.
        for _ in range(256):
            try:
                data, anc, _flags, peer = sock.recvmsg(MAX_DGRAM, cmsg_space)
            except BlockingIOError:
                break
            except OSError as e:  # e.g. ICMP errors reported on the socket
                errors += 1
                if errors <= 20:
                    print(f"{args.name}: recvmsg: {e}", file=sys.stderr)
                continue
            dst = None
            for level, ctype, cdata in anc:
                if level == socket.IPPROTO_IP and ctype == IP_PKTINFO:
                    _ifindex, _spec, dst = PKTINFO.unpack(cdata[: PKTINFO.size])
            reply = (prefix + data)[:65507]
            anc_out = []
            if dst is not None:
                anc_out = [(socket.IPPROTO_IP, IP_PKTINFO, PKTINFO.pack(0, dst, bytes(4)))]
            try:
                sock.sendmsg([reply], anc_out, 0, peer)
            except OSError as e:
                errors += 1
                if errors <= 20:
                    print(f"{args.name}: sendmsg to {peer}: {e}", file=sys.stderr)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
