#!/usr/bin/env bash
# The forwarding benchmark: rvs-gen (core 0) against one rvsd worker (core 1) over two
# net_memif links, per mode: established flows with 10k and with 1M connections, new
# connections per second, and latency at half the measured maximum; and, in the same run,
# the same generator against dpdk-testpmd (macswap before each mode, io once) on the same
# links: the ceiling.
# Prints one table (BENCHMARKS.md explains it). Run as root after scripts/setup.sh.
#
# Usage: scripts/bench.sh [--smoke] [--duration S] [--modes "nat fullnat dr tun"] [--out FILE]
#                         [--workers K]
#   --smoke     every point for 1 s with small counts: checks the machinery, measures nothing
#   --duration  seconds measured per point (default 30; one sample per second)
#   --out       also write the table (markdown) to FILE
#   --workers   rvsd workers (and testpmd forwarding cores) on cores 1..K, the generator with K
#               queue pairs per link on core 0: needs K + 1 cores (--smoke may share them, to
#               check the machinery only). Default 1.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"
cd "$ROOT"

DURATION=30
WARMUP=2
MODES="nat fullnat dr tun"
FLOWS_SMALL=10000
FLOWS_LARGE=1000000
SMOKE=0
OUT=""
WORKERS=1
while [[ $# -gt 0 ]]; do
    case $1 in
    --smoke) SMOKE=1 ;;
    --duration) DURATION=$2; shift ;;
    --modes) MODES=$2; shift ;;
    --out) OUT=$2; shift ;;
    --workers) WORKERS=$2; shift ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
    esac
    shift
done
if [[ $SMOKE == 1 ]]; then
    DURATION=1 WARMUP=0 FLOWS_SMALL=1000 FLOWS_LARGE=20000
fi

require_root
[[ $WORKERS =~ ^[1-9][0-9]?$ ]] || die "--workers K: 1 to 99"
[[ $(nproc) -ge 2 ]] || die "needs 2 cores: the generator on 0, the device under test on 1"
# The device's cores: 1..K; with fewer cores, only a smoke run may share them (it measures
# nothing, it checks that K workers and K queues work).
DUT_CORES=()
for ((w = 0; w < WORKERS; w++)); do
    if ((WORKERS < $(nproc))); then
        DUT_CORES+=($((w + 1)))
    else
        ((SMOKE)) || die "--workers $WORKERS needs $((WORKERS + 1)) cores (the generator has its own); this machine has $(nproc): run --workers $(($(nproc) - 1)) here, more on a larger machine"
        DUT_CORES+=(1)
    fi
done
DUT_CORE_LIST=$(IFS=,; echo "${DUT_CORES[*]}")
if [[ ! -x "$(command -v dpdk-testpmd)" ]] || ! mountpoint -q /dev/hugepages; then
    "$SCRIPT_DIR/setup.sh"
fi

# Everything this run starts, and the names it uses, are its own: cleaned up on any exit.
RUN="bench$$"
SOCKDIR=/run/rvs-bench
WORK=$(mktemp -d /tmp/rvs-bench.XXXXXX)
DUT_PID=""
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    stop_dut
    rm -rf -- "$WORK" "$SOCKDIR" /var/run/dpdk/rvs-"$RUN"-* /var/run/dpdk/rvs-bench-dut \
        /dev/hugepages/rvs-"$RUN"-* 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck disable=SC2317
stop_dut() {
    if [[ -n $DUT_PID ]] && kill -0 "$DUT_PID" 2>/dev/null; then
        kill -INT "$DUT_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$DUT_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DUT_PID" 2>/dev/null || true
        wait "$DUT_PID" 2>/dev/null || true
    fi
    DUT_PID=""
}

note "building (release)"
cargo build --release --quiet -p control --bin rvsd -p bench --bin rvs-gen
GEN="$ROOT/target/release/rvs-gen"
RVSD="$ROOT/target/release/rvsd"

# Waits until both memif sockets of the device under test exist.
wait_sockets() {
    for _ in $(seq 100); do
        [[ -S $SOCKDIR/client.sock && -S $SOCKDIR/servers.sock ]] && return 0
        kill -0 "$DUT_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# start_rvsd MODE: a fresh rvsd (fresh connection table) for one point, with its workers on
# the device's cores.
start_rvsd() {
    rm -rf "$SOCKDIR" && mkdir -p "$SOCKDIR"
    local shared=""
    ((${#DUT_CORES[@]} > $(printf '%s\n' "${DUT_CORES[@]}" | sort -u | wc -l))) && shared=" oversubscribe: true,"
    sed "s/^    workers: \[1\],/    workers: [$DUT_CORE_LIST],$shared/" "bench/configs/bench-$1.ron" >"$WORK/dut.ron"
    grep -q "workers: \[$DUT_CORE_LIST\]" "$WORK/dut.ron" || die "bench-$1.ron: no 'workers: [1],' line to set"
    RVS_LOG=warn "$RVSD" --config "$WORK/dut.ron" >"$WORK/dut.log" 2>&1 &
    DUT_PID=$!
    wait_sockets || { cat "$WORK/dut.log" >&2; die "rvsd ($1) did not open its memif sockets"; }
}

# start_testpmd FWD: dpdk-testpmd on core 1 (its main thread sleeps, one forwarding lcore),
# serving the same two memif sockets with the same MACs. A fresh one per point.
start_testpmd() {
    rm -rf "$SOCKDIR" && mkdir -p "$SOCKDIR"
    local lcores="0@1" w
    for ((w = 0; w < WORKERS; w++)); do lcores+=",$((w + 1))@${DUT_CORES[w]}"; done
    dpdk-testpmd --lcores "$lcores" --file-prefix "rvs-$RUN-pmd" --socket-mem 256 \
        --socket-limit 256 --huge-unlink --no-pci --no-telemetry \
        --vdev="net_memif0,role=server,id=0,socket=$SOCKDIR/client.sock,socket-abstract=no,mac=02:00:00:00:00:01" \
        --vdev="net_memif1,role=server,id=0,socket=$SOCKDIR/servers.sock,socket-abstract=no,mac=02:00:00:00:00:02" \
        -- --forward-mode="$1" --nb-cores="$WORKERS" --rxq="$WORKERS" --txq="$WORKERS" \
        --stats-period=3600 --total-num-mbufs=16384 \
        >"$WORK/dut.log" 2>&1 &
    DUT_PID=$!
    wait_sockets || { cat "$WORK/dut.log" >&2; die "dpdk-testpmd ($1) did not open its memif sockets"; }
}

# try_gen NAME ARGS...: one rvs-gen run; fails (status 1) if rvs-gen does.
try_gen() {
    local name=$1
    shift
    "$GEN" --core 0 --file-prefix "rvs-$RUN-gen" --warmup "$WARMUP" --duration "$DURATION" \
        --queues "$WORKERS" --quiet "$@" >"$WORK/$name.out" 2>&1
}

# fresh_dut START ARG NAME GEN-ARGS...: rvs-gen against a fresh device (START ARG: start_testpmd
# FWD or start_rvsd MODE). Debian's DPDK 22.11 memif driver, which testpmd and rvsd (linked
# statically) share, sometimes crashes when a peer connects with several queues (gdb on
# testpmd's cores: in librte_net_memif, in the forwarding lcore, before any packet; about one
# start in three with two queue pairs here, one in two in some clean-clone runs, where three
# tries in a row all failed once): a run whose device died is tried again with a fresh one,
# up to DUT_TRIES times in all, and each death is said. A generator failure against a live
# device is final.
DUT_TRIES=10
fresh_dut() {
    local start=$1 arg=$2 name=$3 try status
    shift 3
    for ((try = 1; ; try++)); do
        "$start" "$arg"
        if try_gen "$name" "$@"; then
            return 0
        fi
        if kill -0 "$DUT_PID" 2>/dev/null; then
            # The device is alive: the failure is the generator's, and final.
            cat "$WORK/$name.out" >&2
            echo "--- the device's log:" >&2
            tail -20 "$WORK/dut.log" >&2
            die "$name: rvs-gen failed (above)"
        fi
        status=0
        wait "$DUT_PID" 2>/dev/null || status=$?
        DUT_PID=""
        if ((try >= DUT_TRIES)); then
            cat "$WORK/$name.out" >&2
            die "$name: the device ($start $arg) died $try times (last exit status $status)"
        fi
        note "$name: the device ($start $arg) died (exit status $status$( ((status > 128)) && echo ", signal $((status - 128))"); $(grep -m1 -iE 'fault|error|panic' "$WORK/dut.log" || echo 'nothing logged')); again with a fresh one"
    done
}

# ceiling FWD NAME ARGS...: rvs-gen against a fresh dpdk-testpmd forwarding FWD.
ceiling() {
    local fwd=$1 name=$2
    shift 2
    fresh_dut start_testpmd "$fwd" "$name" "$@"
    stop_dut
    keep_result "$name"
}

# keep_result NAME: the RESULT line of a run, kept as $WORK/NAME.result.
keep_result() {
    local name=$1
    grep '^RESULT ' "$WORK/$name.out" >"$WORK/$name.result"
    note "$name: $(sed -n 's/.*fwd_mpps_p50=\([^ ]*\).*fwd_mpps_p90=\([^ ]*\).*cps_p50=\([^ ]*\).*lat_us_p50=\([^ ]*\).*/\1 \/ \2 Mpps, \3 conn\/s, latency p50 \4 us/p' "$WORK/$name.result")"
}

# field NAME KEY: a value of a run's RESULT line.
field() {
    sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$WORK/$1.result"
}

# The device's own accounting after an rvsd point: bytes per connection, and no drop.
dut_stats() {
    python3 - "$SOCKDIR/dut-stats.json" "$1" >>"$WORK/memory" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
drops = {k: v for p in d["ports"] for k, v in p["drops"].items() if v}
if drops:
    sys.exit(f"{sys.argv[2]}: rvsd dropped packets: {drops}")
print(sys.argv[2], d["workers"][0]["bytes_per_connection"])
EOF
}

rvsd_point() { # MODE NAME GEN-ARGS...
    local mode=$1 name=$2
    shift 2
    fresh_dut start_rvsd "$mode" "$name" --dut "$mode" "$@"
    keep_result "$name"
    stop_dut
    dut_stats "$name"
}

half() { awk -v x="$1" 'BEGIN { printf "%d", x * 1e6 / 2 }'; }
PASSTHROUGH=(--dut passthrough --flows "$FLOWS_SMALL")

START=$SECONDS
# The ceiling: the same generator, the same links, dpdk-testpmd forwarding: one way (as DR and
# TUN: what crosses is checked at the servers' side) or both ways (as NAT and FULLNAT: the
# servers' answers cross back). The machine's speed flips every few seconds or minutes, so
# each mode's ceiling is measured right before that mode's points, and its ratios use it.
ceiling io ceiling-io "${PASSTHROUGH[@]}" --replies direct
for mode in $MODES; do
    replies=direct
    [[ $mode == nat || $mode == fullnat ]] && replies=cross
    ceiling macswap "ceiling-$mode" "${PASSTHROUGH[@]}" --replies "$replies"
    rvsd_point "$mode" "$mode-est-small" --flows "$FLOWS_SMALL"
    rvsd_point "$mode" "$mode-est-large" --flows "$FLOWS_LARGE"
    rvsd_point "$mode" "$mode-cps" --script connections --flows "$FLOWS_LARGE"
    rate=$(half "$(field "$mode-est-small" sent_mpps_p50)")
    rvsd_point "$mode" "$mode-latency" --flows "$FLOWS_SMALL" --rate "$rate"
done
# testpmd's latency at half its own (io) rate, one way, for comparison.
rate=$(half "$(field ceiling-io sent_mpps_p50)")
ceiling macswap ceiling-latency "${PASSTHROUGH[@]}" --replies direct --rate "$rate"
ELAPSED=$((SECONDS - START))

# The table.
python3 - "$WORK" "$MODES" "$FLOWS_SMALL" "$FLOWS_LARGE" "$DURATION" "$ELAPSED" "$SMOKE" "$WORKERS" >"$WORK/table.md" <<'EOF'
import os, sys
work, modes, small, large, duration, elapsed, smoke, workers = sys.argv[1:9]
def result(name):
    line = open(os.path.join(work, name + ".result")).read().split()
    return {k: v for k, v in (w.split("=", 1) for w in line[1:])}
memory = dict(l.split() for l in open(os.path.join(work, "memory")))
k = lambda n: f"{int(n) // 1000}k" if int(n) < 1_000_000 else f"{int(n) // 1_000_000}M"
if workers == "1":
    print(f"rvs-gen on core 0, one rvsd worker (or dpdk-testpmd) on core 1, two net_memif links, 64-byte TCP;")
else:
    print(f"rvs-gen on core 0 with {workers} queue pairs per link (a flow on queue flow mod {workers}), {workers} rvsd workers")
    print(f"(or dpdk-testpmd forwarding cores) on cores 1..{workers}, two net_memif links, 64-byte TCP;")
print(f"{duration} s per point after warm-up, one sample per second; Mpps = packets the device forwarded")
print(f"(both directions where replies cross); ratio = Mpps / the same generator against dpdk-testpmd")
print(f"macswap measured just before the mode's points (one way for DR/TUN, both ways for NAT/FULLNAT);")
print(f"latency of one crossing, at half the p50 rate. Total {elapsed} s." + ("  SMOKE RUN: tiny counts, 1 s points: not a measurement." if smoke == "1" else ""))
print()
print("| device | point | Mpps p50 | Mpps p90 | ratio p50 | ratio p90 | conn/s p50 | conn/s p90 | latency p50 / p99 / p99.9 us | bytes/conn |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
def row(dev, point, r, ceil=None, mem="", lat=None, cps=False):
    f = lambda x: f"{float(x):.2f}"
    ratio = lambda p: f"{float(r['fwd_mpps_' + p]) / float(ceil['fwd_mpps_' + p]):.2f}" if ceil else ""
    cells = [dev, point, f(r["fwd_mpps_p50"]), f(r["fwd_mpps_p90"]), ratio("p50"), ratio("p90"),
             r["cps_p50"] if cps else "", r["cps_p90"] if cps else "",
             f"{float(lat['lat_us_p50']):.1f} / {float(lat['lat_us_p99']):.1f} / {float(lat['lat_us_p999']):.1f}" if lat else "",
             mem]
    print("| " + " | ".join(cells) + " |")
row("testpmd io", f"one way, {k(small)} flows", result("ceiling-io"))
row("testpmd macswap", "one way, at half io's rate", result("ceiling-latency"), lat=result("ceiling-latency"))
for m in modes.split():
    ceil = result(f"ceiling-{m}")
    way = "both ways" if m in ("nat", "fullnat") else "one way"
    name = m.upper()
    row("testpmd macswap", f"{way}, just before {name}", ceil)
    row(f"rvsd {name}", f"established, {k(small)}", result(f"{m}-est-small"), ceil, memory[f"{m}-est-small"], lat=result(f"{m}-latency"))
    row(f"rvsd {name}", f"established, {k(large)}", result(f"{m}-est-large"), ceil, memory[f"{m}-est-large"])
    row(f"rvsd {name}", f"new connections (SYN, data, FIN), {k(large)} tuples", result(f"{m}-cps"), None, memory[f"{m}-cps"], cps=True)
EOF
echo
cat "$WORK/table.md"
if [[ -n $OUT ]]; then
    cp "$WORK/table.md" "$OUT"
fi
