#!/usr/bin/env python3
"""Self-test of the rvs lab without rvsd (stdlib only; root). Prints one line per check.

usage: selftest.py [--name NAME] [--quick]

  (a) lab up/down twice (with servers and decapsulators running): no namespace, state file,
      state dir or lab process left
  idle: nothing is sent on the lab's bridges for 5 s, right after up and after everything
      (sniff.py in NAME-sw, all ports and both bridges; positive control: it sees a ping)
  (b) HTTP rs2 -> rs1 (203.0.113.11:80): 20 new connections all answered by rs1; /slow and
      /upload too
  (c) UDP echo rs2 -> rs1: replies from the address the datagram went to (203.0.113.11, and
      203.0.113.150 on rs1's lo: the IP_PKTINFO path); a naive echo fails that check
  (e) modes nat -> dr -> tun -> fullnat -> nat (each applied twice): routes, VIP on lo, ARP
      sysctls, decapsulators and tun0 as specified
  (d) tun: a hand-made IP-in-IP packet rs2 -> rs1 (inner 198.51.100.10 -> VIP, UDP :9000 and
      ICMP echo) is decapsulated and counted; rs1 answers from the VIP through the gw, and the
      client receives the answer
  dr: with the gw standing in for rvsd (client route VIP via gw, gw route VIP via rs1) HTTP
      and UDP to the VIP are answered directly (by rs1, from the VIP); the servers do not
      answer ARP for the VIP
--quick skips the second up/down round and the idle capture after everything.
Exit status 0 only if every check passed. The lab is always brought down (also on SIGTERM).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LAB = os.path.join(os.path.dirname(HERE), "lab.sh")
PY = sys.executable or "python3"
VIP = "198.51.100.100"

results = []


def run(cmd, timeout=60, check=False):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {p.returncode}\n{p.stdout}{p.stderr}")
    return p


def nsrun(ns, cmd, timeout=60, check=False):
    return run(["ip", "netns", "exec", ns] + cmd, timeout=timeout, check=check)


def tool(ns, script, *args, timeout=60):
    """Runs scripts/lab/SCRIPT in NS; returns (rc, parsed JSON or raw text)."""
    p = nsrun(ns, [PY, os.path.join(HERE, script)] + list(args), timeout=timeout)
    try:
        out = json.loads(p.stdout)
    except ValueError:
        out = p.stdout + p.stderr
    return p.returncode, out


def check(name, ok, detail=""):
    results.append((name, bool(ok)))
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  -- {detail}" if detail and not ok else ""),
          flush=True)
    return ok


def lab(*args, timeout=120):
    return run([LAB] + list(args), timeout=timeout)


def lab_procs(name):
    """Processes running one of our lab programs for this lab (by command line)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if HERE in cmd and f"/run/rvs-lab/{name}.d/" in cmd:
            found.append(f"{pid}: {cmd.strip()}")
    return found


def leftovers(name):
    ns = [n.split()[0] for n in run(["ip", "netns", "list"]).stdout.splitlines() if n.strip()]
    mine = [n for n in ns if n.startswith(f"{name}-")]
    files = [p for p in (f"/run/rvs-lab/{name}.state", f"/run/rvs-lab/{name}.d")
             if os.path.exists(p)]
    return mine, files, lab_procs(name)


def sysctl(ns, key):
    return nsrun(ns, ["sysctl", "-n", key]).stdout.strip()


def idle_capture(name, label, seconds=5):
    rc, out = tool(f"{name}-sw", "sniff.py", "--seconds", str(seconds), timeout=seconds + 30)
    frames = out.get("frames") if isinstance(out, dict) else None
    return check(f"idle: no frame on the bridges for {seconds} s ({label})",
                 rc == 0 and frames == 0, json.dumps(out)[:600])


def test_up_down(name, rounds):
    for r in range(1, rounds + 1):
        p = lab("up", name)
        ok = p.returncode == 0
        if ok:
            ok = lab("servers", name, "start").returncode == 0
            ok = ok and lab("mode", name, "tun").returncode == 0
            running = len(lab_procs(name))
        p2 = lab("down", name)
        mine, files, procs = leftovers(name)
        check(f"(a) round {r}: up, servers, mode tun ({running if ok else '?'} processes), down "
              "leaves nothing", ok and running == 9 and p2.returncode == 0 and not mine
              and not files and not procs,
              f"up rc={p.returncode} {p.stderr[-300:]} ns={mine} files={files} procs={procs}")


def test_http_udp(name):
    rs1, rs2 = f"{name}-rs1", f"{name}-rs2"
    rc, out = tool(rs2, "client.py", "http", "--url", "http://203.0.113.11/", "--count", "20")
    check("(b) HTTP rs2 -> 203.0.113.11: 20 connections, all by rs1",
          rc == 0 and out.get("by_server") == {"rs1": 20}, out)
    rc, out = tool(rs2, "client.py", "long", "--url", "http://203.0.113.11/", "--seconds", "3")
    check("(b) HTTP /slow?s=3 on one connection: 3 lines, one server",
          rc == 0 and out.get("lines") == 3 and out.get("servers") == ["rs1"]
          and out.get("duration", 0) >= 2.5, out)
    rc, out = tool(rs2, "client.py", "upload", "--url", "http://203.0.113.11/",
                   "--bytes", str(5 * 1024 * 1024 + 7))
    check("(b) HTTP upload of 5 MiB + 7 bytes: length and sha256 match",
          rc == 0 and out.get("ok") and out.get("server") == "rs1", out)
    p = nsrun(rs2, ["curl", "-s", "-m", "5", "http://203.0.113.11/"])
    check("(b) curl rs2 -> rs1 answers 'rs1'", p.stdout == "rs1\n", p.stdout + p.stderr)

    rc, out = tool(rs2, "client.py", "udp", "--addr", "203.0.113.11", "--count", "5")
    check("(c) UDP echo rs2 -> 203.0.113.11: 5 replies by rs1, from 203.0.113.11",
          rc == 0 and out.get("by_server") == {"rs1": 5} and out.get("from_vip") == 5, out)
    run(["ip", "-n", rs1, "addr", "add", "203.0.113.150/32", "dev", "lo"], check=True)
    run(["ip", "-n", rs2, "route", "add", "203.0.113.150/32", "via", "203.0.113.11"], check=True)
    try:
        rc, out = tool(rs2, "client.py", "udp", "--addr", "203.0.113.150", "--count", "5")
        check("(c) UDP echo to 203.0.113.150 (rs1's lo): replies come from 203.0.113.150 "
              "(IP_PKTINFO)", rc == 0 and out.get("from_vip") == 5
              and out.get("by_server") == {"rs1": 5}, out)
        # Negative control: an echo without IP_PKTINFO answers from eth0's address.
        naive = subprocess.Popen(
            ["ip", "netns", "exec", rs1, PY, "-c",
             "import socket\n"
             "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',9001))\n"
             "s.settimeout(5);d,a=s.recvfrom(100);s.sendto(b'naive:'+d,a)\n"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            rc, out = tool(rs2, "client.py", "udp", "--addr", "203.0.113.150", "--port", "9001",
                           "--count", "1")
            check("(c) control: a naive echo (no IP_PKTINFO) answers from 203.0.113.11 and "
                  "client.py flags it", rc != 0 and out.get("wrong_source") == ["203.0.113.11:9001"],
                  out)
        finally:
            naive.wait(timeout=10)
    finally:
        run(["ip", "-n", rs2, "route", "del", "203.0.113.150/32"])
        run(["ip", "-n", rs1, "addr", "del", "203.0.113.150/32", "dev", "lo"])


def mode_state(name, i):
    ns = f"{name}-rs{i}"
    route = run(["ip", "-n", ns, "route", "show", "default"]).stdout.split()
    lo = run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "lo"]).stdout
    tun = run(["ip", "-n", ns, "link", "show", "tun0"]).returncode == 0
    return {
        "via": route[2] if len(route) > 2 else None,
        "vip": f"{VIP}/32" in lo,
        "arp_ignore": (sysctl(ns, "net.ipv4.conf.all.arp_ignore"),
                       sysctl(ns, "net.ipv4.conf.eth0.arp_ignore")),
        "arp_announce": (sysctl(ns, "net.ipv4.conf.all.arp_announce"),
                         sysctl(ns, "net.ipv4.conf.eth0.arp_announce")),
        "rp_filter": sysctl(ns, "net.ipv4.conf.all.rp_filter"),
        "tun0": tun,
        "tun0_rp_filter": sysctl(ns, "net.ipv4.conf.tun0.rp_filter") if tun else None,
    }


def expected(mode):
    direct = mode in ("dr", "tun")
    return {
        "via": "203.0.113.254" if direct else "203.0.113.1",
        "vip": direct,
        "arp_ignore": ("1", "1") if direct else ("0", "0"),
        "arp_announce": ("2", "2") if direct else ("0", "0"),
        "rp_filter": "0",
        "tun0": mode == "tun",
        "tun0_rp_filter": "0" if mode == "tun" else None,
    }


def set_mode(name, mode):
    ok = True
    for _ in range(2):  # idempotent
        p = lab("mode", name, mode)
        ok = ok and p.returncode == 0
    states = {i: mode_state(name, i) for i in (1, 2, 3)}
    decaps = [p for p in lab_procs(name) if "tun_decap.py" in p]
    want = expected(mode)
    good = ok and all(s == want for s in states.values()) and \
        len(decaps) == (3 if mode == "tun" else 0)
    check(f"(e) mode {mode} (applied twice): routes, VIP, ARP sysctls, decapsulators",
          good, f"rc ok={ok} decaps={len(decaps)} got={states[1]} want={want}")
    return good


def test_tun(name):
    rs2, client = f"{name}-rs2", f"{name}-client"
    stats = f"/run/rvs-lab/{name}.d/tun-rs1.json"
    listener = subprocess.Popen(
        ["ip", "netns", "exec", client, PY, os.path.join(HERE, "ipip_probe.py"), "listen",
         "--addr", "198.51.100.10", "--port", "40000", "--timeout", "5"],
        stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    rc, sent = tool(rs2, "ipip_probe.py", "send", "--outer-src", "203.0.113.12",
                    "--outer-dst", "203.0.113.11", "--sport", "40000", "--payload", "via-tun")
    out, _ = listener.communicate(timeout=15)
    try:
        got = json.loads(out)
    except ValueError:
        got = {"raw": out}
    check("(d) IP-in-IP UDP probe rs2 -> rs1: the client gets 'rs1:via-tun' from VIP:9000 "
          "(decap -> tun0 -> udp_echo -> gw -> client)",
          rc == 0 and got.get("received") and got.get("src") == VIP and got.get("sport") == 9000
          and got.get("payload") == "rs1:via-tun", f"sent={sent} got={got}")

    # ICMP echo inside IP-in-IP: the echo reply from the VIP must cross the gw to the client.
    cap = subprocess.Popen(
        ["ip", "netns", "exec", client, "timeout", "6", "tcpdump", "-i", "cl0", "-n", "-l",
         "-c", "1", f"icmp and src host {VIP} and icmp[icmptype] == icmp-echoreply"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(1.0)
    rc, _ = tool(rs2, "ipip_probe.py", "send", "--outer-src", "203.0.113.12",
                 "--outer-dst", "203.0.113.11", "--icmp")
    out, _ = cap.communicate(timeout=15)
    check("(d) IP-in-IP ICMP echo probe: rs1's echo reply from the VIP reaches the client",
          rc == 0 and f"{VIP} > 198.51.100.10: ICMP echo reply" in out, out)

    time.sleep(1.5)  # the decapsulator writes its JSON at most once per second
    try:
        with open(stats) as f:
            st = json.load(f)
    except (OSError, ValueError) as e:
        st = {"error": str(e)}
    first = (st.get("first") or [{}])[0]
    check("(d) decapsulator stats: 2 decapsulated, 0 bad, first outer header recorded",
          st.get("decapsulated") == 2 and st.get("bad") == 0
          and first.get("src") == "203.0.113.12" and first.get("dst") == "203.0.113.11"
          and first.get("protocol") == 4 and first.get("df") is True
          and first.get("inner_dst") == VIP, st)


def test_dr(name):
    client, gw, rs2 = f"{name}-client", f"{name}-gw", f"{name}-rs2"
    # No rvsd: the gw stands in for it (client -> gw -> rs1 with dst = VIP); rs1 answers
    # from the VIP through its default route, the gw.
    run(["ip", "-n", client, "route", "add", f"{VIP}/32", "via", "198.51.100.254"], check=True)
    run(["ip", "-n", gw, "route", "add", f"{VIP}/32", "via", "203.0.113.11"], check=True)
    try:
        rc, out = tool(client, "client.py", "http", "--url", f"http://{VIP}/", "--count", "5")
        check("dr: HTTP client -> VIP (gw standing in for rvsd): answered by rs1",
              rc == 0 and out.get("by_server") == {"rs1": 5}, out)
        rc, out = tool(client, "client.py", "udp", "--addr", VIP, "--count", "5")
        check("dr: UDP client -> VIP: replies by rs1 from the VIP",
              rc == 0 and out.get("by_server") == {"rs1": 5} and out.get("from_vip") == 5, out)
    finally:
        run(["ip", "-n", gw, "route", "del", f"{VIP}/32"])
        run(["ip", "-n", client, "route", "del", f"{VIP}/32"])
    p = nsrun(gw, ["arping", "-c", "2", "-w", "3", "-i", "gw1", VIP], timeout=20)
    check("dr: no server answers ARP for the VIP on the server network (arp_ignore 1)",
          p.returncode != 0 and " 0 packets received" in p.stdout, p.stdout + p.stderr)
    p = nsrun(client, ["arping", "-c", "2", "-w", "3", "-i", "cl0", VIP], timeout=20)
    check("dr: nobody (gw included) answers the client's ARP for the VIP without rvsd",
          p.returncode != 0 and " 0 packets received" in p.stdout, p.stdout + p.stderr)
    p = nsrun(rs2, ["arping", "-c", "1", "-w", "3", "-i", "eth0", "203.0.113.11"], timeout=20)
    check("dr: the servers still answer ARP for their own address",
          p.returncode == 0, p.stdout + p.stderr)


def positive_sniff(name):
    sn = subprocess.Popen(
        ["ip", "netns", "exec", f"{name}-sw", PY, os.path.join(HERE, "sniff.py"),
         "--seconds", "2", "--iface", "brc"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    nsrun(f"{name}-client", ["ping", "-c", "2", "-i", "0.2", "-W", "1", "198.51.100.254"])
    out, _ = sn.communicate(timeout=15)
    try:
        frames = json.loads(out).get("frames", 0)
    except ValueError:
        frames = 0
    check("idle control: the capture does see a ping client -> gw", frames >= 4, out)


def main():
    ap = argparse.ArgumentParser(description="self-test of scripts/lab.sh without rvsd")
    ap.add_argument("--name", default="labtest")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("selftest.py: must be run as root")
    name = a.name

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    lab("down", name)
    try:
        test_up_down(name, 1 if a.quick else 2)
        p = lab("up", name)
        if not check("lab up", p.returncode == 0, p.stderr):
            return 1
        bad = []
        for role in ("client", "lb", "sw", "gw", "rs1", "rs2", "rs3"):
            for k in ("all", "default"):
                v = sysctl(f"{name}-{role}", f"net.ipv6.conf.{k}.disable_ipv6")
                if v != "1":
                    bad.append(f"{role}:{k}={v}")
        check("IPv6 disabled in every namespace", not bad, bad)
        idle_capture(name, "right after up")
        positive_sniff(name)
        check("servers start", lab("servers", name, "start").returncode == 0)
        test_http_udp(name)
        if set_mode(name, "nat") and set_mode(name, "dr"):
            test_dr(name)
        if set_mode(name, "tun"):
            test_tun(name)
        set_mode(name, "fullnat")
        set_mode(name, "nat")
        set_mode(name, "tun")
        set_mode(name, "nat")
        if not a.quick:
            idle_capture(name, "servers running, after all the modes")
    finally:
        p = lab("down", name)
        mine, files, procs = leftovers(name)
        check("final down leaves nothing", p.returncode == 0 and not mine and not files
              and not procs, f"ns={mine} files={files} procs={procs}")
    failed = [n for n, ok in results if not ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
