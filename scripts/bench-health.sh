#!/usr/bin/env bash
# The health-check benchmark: how many checks a second rvsd's checker sustains and what they
# cost, and what forwarding does meanwhile. In a lab of its own (scripts/lab.sh, NAT), with
# N real servers (default 10,000: ports of the three lab servers, each a listener that accepts
# and counts) in services of 100, each with a TCP_CHECK every DELAY_LOOP seconds (warmup
# spreads the first checks over one delay_loop), plus one unchecked HTTP service that a steady
# stream of new client connections uses.
#
#   1. rvsd starts on the configuration without checkers: the stream (200 new connections/s)
#      measures forwarding alone.
#   2. SIGHUP to the configuration with every checker: the reload's time is measured.
#   3. After a settling delay, for SECONDS: the checks the servers saw (accepted connections),
#      the CPU of rvsd's threads (checker, kernel path, control, worker), the kernel
#      interface's packets, and the same stream again.
#
# Prints one table. Run as root after scripts/setup.sh (cargo build --release is run here).
#
# Usage: scripts/bench-health.sh [--servers N] [--delay-loop S] [--seconds S] [--quick]
#   --quick   1,000 servers, 5 s measured: checks the machinery (the test command runs it)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"
cd "$ROOT"

SERVERS=10000
DELAY_LOOP=1
SECONDS_MEASURED=20
RATE=200
while [[ $# -gt 0 ]]; do
    case $1 in
    --servers) SERVERS=$2; shift ;;
    --delay-loop) DELAY_LOOP=$2; shift ;;
    --seconds) SECONDS_MEASURED=$2; shift ;;
    --quick) SERVERS=1000; SECONDS_MEASURED=5 ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
    esac
    shift
done
[[ $SERVERS =~ ^[0-9]+$ ]] && ((SERVERS >= 3 && SERVERS <= 30000)) || die "--servers: 3..30000"
[[ $DELAY_LOOP =~ ^[0-9]+$ ]] && ((DELAY_LOOP >= 1)) || die "--delay-loop: whole seconds >= 1"
[[ $SECONDS_MEASURED =~ ^[0-9]+$ ]] && ((SECONDS_MEASURED >= 2)) || die "--seconds: >= 2"
require_root
have python3 || die "python3 is needed"

LAB=rvsbh$$
WORK=$(mktemp -d /tmp/rvs-bench-health.XXXXXX)
RVSD_PID=""
LISTENER_PIDS=()
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    if [[ -n $RVSD_PID ]] && kill -0 "$RVSD_PID" 2>/dev/null; then
        kill -TERM "$RVSD_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$RVSD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$RVSD_PID" 2>/dev/null || true
    fi
    # The launchers' pids, and the listeners' own (from their pid files), whichever differs.
    local pids=("${LISTENER_PIDS[@]}")
    pids+=($(cat "$WORK"/listeners-rs*.pid 2>/dev/null || true))
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 30); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
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

note "building rvsd (release)"
cargo build --release -q -p control --bin rvsd
RVSD=$ROOT/target/release/rvsd

"$SCRIPT_DIR/lab.sh" up "$LAB" >/dev/null
"$SCRIPT_DIR/lab.sh" mode "$LAB" nat >/dev/null
"$SCRIPT_DIR/lab.sh" servers "$LAB" start >/dev/null

# The worker gets the last core to itself; everything else (rvsd's control, checker and
# kernel-path threads, the lab's servers and client) shares the others.
WORKER_CORE=$(($(nproc) - 1))
LAB_CORES=0-$((WORKER_CORE > 0 ? WORKER_CORE - 1 : 0))
PER=$(((SERVERS + 2) / 3))
FIRST_PORT=20000
LAST_PORT=$((FIRST_PORT + PER - 1))
for i in 1 2 3; do
    setsid taskset -c "$LAB_CORES" ip netns exec "$LAB-rs$i" python3 "$SCRIPT_DIR/lab/listeners.py" \
        --ports "$FIRST_PORT-$LAST_PORT" --count-file "$WORK/count-rs$i" \
        --pidfile "$WORK/listeners-rs$i.pid" </dev/null >"$WORK/listeners-rs$i.log" 2>&1 &
    LISTENER_PIDS+=($!)
done
for i in 1 2 3; do
    for _ in $(seq 600); do [[ -s $WORK/listeners-rs$i.pid ]] && break; sleep 0.1; done
    [[ -s $WORK/listeners-rs$i.pid ]] || die "listeners in rs$i did not start: $(cat "$WORK/listeners-rs$i.log")"
done

HUGE=true
(($(awk '/HugePages_Free/ {print $2}' /proc/meminfo) >= 128)) || HUGE=false
python3 - "$WORK" "$SERVERS" "$DELAY_LOOP" "$LAB" "$HUGE" "$WORKER_CORE" <<'EOF'
import sys
work, servers, delay_loop, lab, huge, core = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
def config(checks):
    out = [f'''(
    eal: (memory_mb: 512, hugepages: {huge}, file_prefix: "{lab}"),
    workers: [{core}],
    control_core: 0,
    ports: [
        (name: "client", device: "net_af_packet0,iface=lb0", addresses: ["198.51.100.1/24"]),
        (name: "servers", device: "net_af_packet1,iface=lb1", addresses: ["203.0.113.1/24"]),
    ],
    services: [
        (protocol: TCP, vip: "198.51.100.100", port: 80, lb_kind: NAT, lb_algo: "rr",
         real_servers: [(address: "203.0.113.11"), (address: "203.0.113.12"), (address: "203.0.113.13")]),''']
    per_service = 100
    for s in range((servers + per_service - 1) // per_service):
        reals = []
        for k in range(s * per_service, min(servers, (s + 1) * per_service)):
            addr = f"203.0.113.1{k % 3 + 1}"
            port = 20000 + k // 3
            check = ", checks: [TCP_CHECK()]" if checks else ""
            reals.append(f'(address: "{addr}", port: {port}{check})')
        timing = (f"delay_loop: {delay_loop}, connect_timeout: 2, retry: 1, delay_before_retry: 1, "
                  f"warmup: {delay_loop}, ") if checks else ""
        out.append(f'''        (protocol: TCP, vip: "198.51.100.100", port: {10000 + s}, lb_kind: NAT, lb_algo: "rr", {timing}
         real_servers: [{", ".join(reals)}]),''')
    out.append(f'''    ],
    stats_file: "{work}/stats.json",
    stats_interval_ms: 1000,
)''')
    return "\n".join(out) + "\n"
open(f"{work}/plain.ron", "w").write(config(False))
open(f"{work}/checked.ron", "w").write(config(True))
EOF
cp "$WORK/plain.ron" "$WORK/rvsd.ron"
"$RVSD" --check-config "$WORK/checked.ron" >/dev/null || die "the generated configuration is refused"

RVS_LOG=info setsid ip netns exec "$LAB-lb" "$RVSD" --config "$WORK/rvsd.ron" \
    </dev/null >"$WORK/rvsd.log" 2>&1 &
RVSD_PID=$!
for _ in $(seq 600); do grep -q "rvsd running" "$WORK/rvsd.log" && break; sleep 0.1; done
grep -q "rvsd running" "$WORK/rvsd.log" || die "rvsd did not start"
for _ in $(seq 100); do (($(grep -c "neighbor 203.0.113.1" "$WORK/rvsd.log") >= 3)) && break; sleep 0.1; done

# stream SECONDS: new connections to the HTTP service at RATE/s; prints "ok total p50 p99".
stream() {
    taskset -c "$LAB_CORES" ip netns exec "$LAB-client" python3 "$SCRIPT_DIR/lab/client.py" stream \
        --url http://198.51.100.100/ --rate "$RATE" --seconds "$1" --timeout 2 |
        python3 -c '
import json, sys
d = json.load(sys.stdin)
lat = sorted(e[3] for e in d["events"] if e[1])
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")
print(d["ok"], d["requests"], f"{q(0.5):.2f}", f"{q(0.99):.2f}")'
}

# cpu: "tid comm ticks" of every thread of rvsd (utime + stime), read at once.
cpu() {
    python3 - "$RVSD_PID" <<'EOF'
import os, sys
base = f"/proc/{sys.argv[1]}/task"
for tid in os.listdir(base):
    try:
        stat = open(f"{base}/{tid}/stat").read()
        comm = open(f"{base}/{tid}/comm").read().strip().replace(" ", "_")
    except OSError:
        continue
    rest = stat[stat.rindex(")") + 2:].split()
    print(tid, comm, int(rest[11]) + int(rest[12]))
EOF
}

accepted() {
    python3 - "$WORK" <<'EOF'
import json, sys
# The servers' total, and when they wrote it (their mean clock: each writes once a second).
counts = [json.load(open(f"{sys.argv[1]}/count-rs{i}")) for i in (1, 2, 3)]
print(sum(c["accepted"] for c in counts), sum(c["at"] for c in counts) / 3)
EOF
}

note "forwarding alone: $RATE new connections/s for 5 s"
read -r A_OK A_TOTAL A_P50 A_P99 < <(stream 5)

note "reload to $SERVERS checked real servers (delay_loop $DELAY_LOOP)"
cp "$WORK/checked.ron" "$WORK/rvsd.ron"
RELOADS=$(grep -c "reloaded " "$WORK/rvsd.log" || true)
T0=$(date +%s.%N)
kill -HUP "$RVSD_PID"
for _ in $(seq 600); do (($(grep -c "reloaded " "$WORK/rvsd.log" || true) > RELOADS)) && break; sleep 0.05; done
(($(grep -c "reloaded " "$WORK/rvsd.log" || true) > RELOADS)) || die "the reload did not happen"
RELOAD_S=$(python3 -c "print(f'{$(date +%s.%N) - $T0:.2f}')")
sleep $((DELAY_LOOP * 2 + 3))

note "measuring for $SECONDS_MEASURED s"
# "kernel-path packets, checks done, when": from rvsd's stats file (written every second).
rvsd_counts() {
    python3 -c "import json; d=json.load(open('$WORK/stats.json')); k=d['ports'][1]['kernel']; print(k['up'] + k['down'], d['health_checks'], d['unix_ms'] / 1000)"
}
read -r K0 C0 CT0 < <(rvsd_counts)
STAT0=$(grep '^cpu[0-9]' /proc/stat)
W0=$(date +%s.%N)
CPU0=$(cpu)
read -r N0 NT0 < <(accepted)
read -r B_OK B_TOTAL B_P50 B_P99 < <(stream "$SECONDS_MEASURED")
read -r N1 NT1 < <(accepted)
CPU1=$(cpu)
W1=$(date +%s.%N)
STAT1=$(grep '^cpu[0-9]' /proc/stat)
read -r K1 C1 CT1 < <(rvsd_counts)
UP=$(python3 -c "
import json
d = json.load(open('$WORK/stats.json'))
print(sum(r['up'] for s in d['services'] for r in s['real_servers'] if r['checks']))")
PROBES=$(grep -o "health: [0-9]* probes" "$WORK/rvsd.log" | tail -1 | awk '{print $2}' || true)

python3 - "$C0" "$C1" "$CT0" "$CT1" "$W0" "$W1" "$N0" "$N1" "$NT0" "$NT1" "$K0" "$K1" "$SERVERS" "$DELAY_LOOP" "$UP" "${PROBES:-?}" \
    "$RELOAD_S" "$A_OK/$A_TOTAL" "$A_P50" "$A_P99" "$B_OK/$B_TOTAL" "$B_P50" "$B_P99" "$RATE" \
    "$(nproc)" <<EOF
import sys
(c0, c1, ct0, ct1, w0, w1, n0, n1, nt0, nt1, k0, k1, servers, delay, up, probes, reload_s, a_ok, a50, a99, b_ok, b50, b99,
 rate, cores) = sys.argv[1:]
secs = float(w1) - float(w0)
before = {l.split()[0]: (l.split()[1], int(l.split()[2])) for l in """$CPU0""".splitlines() if l.strip()}
after = {l.split()[0]: (l.split()[1], int(l.split()[2])) for l in """$CPU1""".splitlines() if l.strip()}
hz = 100.0
threads = {}
for tid, (comm, ticks) in after.items():
    d = ticks - before.get(tid, (comm, 0))[1]
    name = comm if comm.startswith(("rvs-", "rvsd")) else "other (EAL)"
    threads[name] = threads.get(name, 0) + d
checks = (int(c1) - int(c0)) / (float(ct1) - float(ct0))
accepts = (int(n1) - int(n0)) / (float(nt1) - float(nt0))
print()
print(f"health checks: {servers} real servers with a TCP_CHECK each, delay_loop {delay} s; {cores} cores: the worker")
print(f"  on the last, rvsd's other threads, the lab's servers and client on the others")
print(f"  probes                     {probes} ({up} servers up at the end)")
print(f"  reload to them             {reload_s} s")
print(f"  checks/s (rvsd's count)    {checks:,.0f}  (target {int(servers) / int(delay):,.0f})")
print(f"  connections/s the servers accepted {accepts:,.0f}")
print(f"  kernel path, servers port  {(int(k1) - int(k0)) / (float(ct1) - float(ct0)):,.0f} packets/s (up + down)")
for name in sorted(threads):
    print(f"  CPU {name:<22} {threads[name] / hz / secs * 100:6.1f} % of a core")
print(f"  CPU rvsd total             {sum(threads.values()) / hz / secs * 100:6.1f} % (the worker polls: 100 % by design)")
if checks > 0:
    for name, label in (("rvs-check", "checker"), ("rvs-kernel", "kernel path")):
        print(f"  {label + ' per check':<26} {threads.get(name, 0) / hz / (checks * secs) * 1e6:6.1f} us of CPU")
def cores(text):
    out = {}
    for l in text.splitlines():
        f = l.split()
        vals = list(map(int, f[1:]))
        out[f[0]] = (sum(vals) - vals[3] - vals[4], sum(vals), vals[5] + vals[6])
    return out
c0, c1 = cores("""$STAT0"""), cores("""$STAT1""")
for cpu in sorted(c1):
    busy = c1[cpu][0] - c0[cpu][0]
    total = c1[cpu][1] - c0[cpu][1]
    irq = c1[cpu][2] - c0[cpu][2]
    print(f"  machine {cpu:<18} {busy / total * 100:6.1f} % busy ({irq / total * 100:.1f} % in interrupts: the lab's veths)")
print(f"forwarding, {rate} new connections/s (HTTP, NAT), answered, p50/p99 ms:")
print(f"  without checks             {a_ok}   {a50} / {a99}")
print(f"  with the checks running    {b_ok}   {b50} / {b99}")
EOF
