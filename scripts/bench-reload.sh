#!/usr/bin/env bash
# The reload and edit benchmark: how long rvsd takes to reload a large configuration (every
# real server's weight changed), how many rvsadm edits a second it applies on it, and what
# forwarding does meanwhile. In a lab of its own (scripts/lab.sh, NAT): S services of R real
# servers each (ports of the three lab servers; no checkers), plus one HTTP service that a
# steady stream of new client connections uses during the reloads and the edits.
#
# Each reload is `rvsadm reload` (it returns once the new snapshot is published), alternating
# between two files that differ in every real server's weight; each edit is `rvsadm -e` of
# one real server's weight, sent one after the other.
#
# Prints one table. Run as root after scripts/setup.sh (cargo build --release is run here).
#
# Usage: scripts/bench-reload.sh [--services S] [--reals R] [--reloads N] [--edits N] [--quick]
#   defaults: 1,000 services x 100 real servers, 6 reloads, 100 edits
#   --quick   100 x 100, 2 reloads, 20 edits: checks the machinery (the test command runs it)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"
cd "$ROOT"

SERVICES=1000
REALS=100
RELOADS=6
EDITS=100
RATE=100
while [[ $# -gt 0 ]]; do
    case $1 in
    --services) SERVICES=$2; shift ;;
    --reals) REALS=$2; shift ;;
    --reloads) RELOADS=$2; shift ;;
    --edits) EDITS=$2; shift ;;
    --quick) SERVICES=100 REALS=100 RELOADS=2 EDITS=20 ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
    esac
    shift
done
[[ $SERVICES =~ ^[0-9]+$ ]] && ((SERVICES >= 1 && SERVICES <= 5000)) || die "--services: 1..5000"
[[ $REALS =~ ^[0-9]+$ ]] && ((REALS >= 1 && REALS <= 1000)) || die "--reals: 1..1000"
[[ $RELOADS =~ ^[0-9]+$ ]] && ((RELOADS >= 1)) || die "--reloads: >= 1"
[[ $EDITS =~ ^[0-9]+$ ]] && ((EDITS >= 1)) || die "--edits: >= 1"
require_root
have python3 || die "python3 is needed"

LAB=rvsbr$$
WORK=$(mktemp -d /tmp/rvs-bench-reload.XXXXXX)
RVSD_PID=""
STREAM_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $STREAM_PID ]]; then kill -TERM "$STREAM_PID" 2>/dev/null || true; fi
    if [[ -n $RVSD_PID ]] && kill -0 "$RVSD_PID" 2>/dev/null; then
        kill -TERM "$RVSD_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$RVSD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$RVSD_PID" 2>/dev/null || true
    fi
    "$SCRIPT_DIR/lab.sh" down "$LAB" >/dev/null 2>&1 || true
    if ((rc != 0)); then
        warn "failed (exit $rc); rvsd's log: $WORK/rvsd.log"
        tail -n 30 "$WORK/rvsd.log" >&2 2>/dev/null || true
    else
        rm -rf -- "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

note "building rvsd and rvsadm (release)"
cargo build --release -q -p control --bin rvsd --bin rvsadm
RVSD=$ROOT/target/release/rvsd
RVSADM=$ROOT/target/release/rvsadm
SOCKET=$WORK/rvsd.sock

"$SCRIPT_DIR/lab.sh" up "$LAB" >/dev/null
"$SCRIPT_DIR/lab.sh" mode "$LAB" nat >/dev/null
"$SCRIPT_DIR/lab.sh" servers "$LAB" start >/dev/null

# The worker gets the last core to itself; the control thread, the lab and rvsadm share the
# others.
WORKER_CORE=$(($(nproc) - 1))
LAB_CORES=0-$((WORKER_CORE > 0 ? WORKER_CORE - 1 : 0))
HUGE=true
(($(awk '/HugePages_Free/ {print $2}' /proc/meminfo) >= 128)) || HUGE=false
python3 - "$WORK" "$SERVICES" "$REALS" "$LAB" "$HUGE" "$WORKER_CORE" "$SOCKET" <<'EOF'
import sys
work, services, reals, lab, huge, core, socket = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
def config(weight):
    out = [f'''(
    eal: (memory_mb: 512, hugepages: {huge}, file_prefix: "{lab}"),
    workers: [{core}],
    control_core: 0,
    ports: [
        (name: "client", device: "net_af_packet0,iface=lb0", addresses: ["198.51.100.1/24"]),
        (name: "servers", device: "net_af_packet1,iface=lb1", addresses: ["203.0.113.1/24"]),
    ],
    control_socket: "{socket}",
    services: [
        (protocol: TCP, vip: "198.51.100.100", port: 80, lb_kind: NAT, lb_algo: "rr",
         real_servers: [(address: "203.0.113.11"), (address: "203.0.113.12"), (address: "203.0.113.13")]),''']
    for s in range(services):
        rs = ", ".join(f'(address: "203.0.113.1{k % 3 + 1}", port: {20000 + k}, weight: {weight})' for k in range(reals))
        out.append(f'''        (protocol: TCP, vip: "198.51.100.100", port: {10000 + s}, lb_kind: NAT, lb_algo: "wlc",
         real_servers: [{rs}]),''')
    out.append("    ],\n)")
    return "\n".join(out) + "\n"
open(f"{work}/a.ron", "w").write(config(1))
open(f"{work}/b.ron", "w").write(config(2))
EOF
cp "$WORK/a.ron" "$WORK/rvsd.ron"
T0=$(date +%s.%N)
"$RVSD" --check-config "$WORK/rvsd.ron" >/dev/null || die "the generated configuration is refused"
CHECK_S=$(python3 -c "print(f'{$(date +%s.%N) - $T0:.2f}')")

RVS_LOG=info setsid ip netns exec "$LAB-lb" "$RVSD" --config "$WORK/rvsd.ron" \
    </dev/null >"$WORK/rvsd.log" 2>&1 &
RVSD_PID=$!
for _ in $(seq 1200); do grep -q "rvsd running" "$WORK/rvsd.log" && break; sleep 0.1; done
grep -q "rvsd running" "$WORK/rvsd.log" || die "rvsd did not start"
for _ in $(seq 100); do (($(grep -c "neighbor 203.0.113.1" "$WORK/rvsd.log") >= 3)) && break; sleep 0.1; done

# The stream runs through the reloads and the edits; its summary at the end.
STREAM_SECONDS=$((RELOADS * 8 + EDITS / 5 + 10))
setsid taskset -c "$LAB_CORES" ip netns exec "$LAB-client" python3 "$SCRIPT_DIR/lab/client.py" stream \
    --url http://198.51.100.100/ --rate "$RATE" --seconds "$STREAM_SECONDS" --timeout 2 \
    </dev/null >"$WORK/stream.json" 2>"$WORK/stream.log" &
STREAM_PID=$!
sleep 2

note "$RELOADS reloads of $SERVICES services x $REALS real servers"
: >"$WORK/reloads"
for ((i = 0; i < RELOADS; i++)); do
    if ((i % 2 == 0)); then cp "$WORK/b.ron" "$WORK/rvsd.ron"; else cp "$WORK/a.ron" "$WORK/rvsd.ron"; fi
    T0=$(date +%s.%N)
    taskset -c "$LAB_CORES" "$RVSADM" --socket "$SOCKET" reload >/dev/null
    python3 -c "print($(date +%s.%N) - $T0)" >>"$WORK/reloads"
done

note "$EDITS edits (rvsadm -e, one real server's weight)"
T0=$(date +%s.%N)
for ((i = 0; i < EDITS; i++)); do
    taskset -c "$LAB_CORES" "$RVSADM" --socket "$SOCKET" -e -t 198.51.100.100:10000 \
        -r "203.0.113.11:20000" -m -w $((i % 5 + 1))
done
EDITS_S=$(python3 -c "print($(date +%s.%N) - $T0)")
wait "$STREAM_PID" || true
STREAM_PID=""

python3 - "$WORK" "$SERVICES" "$REALS" "$CHECK_S" "$EDITS" "$EDITS_S" "$RATE" <<'EOF'
import json, statistics, sys
work, services, reals, check_s, edits, edits_s, rate = sys.argv[1:8]
reloads = [float(l) for l in open(f"{work}/reloads")]
d = json.load(open(f"{work}/stream.json"))
lat = sorted(e[3] for e in d["events"] if e[1])
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")
n = int(services) * int(reals)
print(f"| measure | value |")
print(f"| --- | ---: |")
print(f"| configuration | {services} services x {reals} real servers = {n:,} |")
print(f"| rvsd --check-config (parse + validate, process included) | {float(check_s):.2f} s |")
print(f"| rvsadm reload, median of {len(reloads)} (min / max) | {statistics.median(reloads):.2f} s ({min(reloads):.2f} / {max(reloads):.2f}) |")
print(f"| rvsadm -e edits | {int(edits) / float(edits_s):.1f} /s ({edits} in {float(edits_s):.1f} s) |")
print(f"| new connections meanwhile ({rate}/s) | {d['ok']} of {d['requests']} ok, p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {q(1.0):.1f} ms |")
EOF
