#!/usr/bin/env bash
# Instructions per packet: the figure of rvsd's worker that does not drift with the machine's
# load, clock or neighbours, so that a regression shows up as a number.
#
# Each mode's worker runs under `valgrind --tool=callgrind` in rvs-instr (bench/src/bin/
# rvs-instr.rs): rvsd's own loop body (`Worker::poll`) on two in-process net_ring ports, fed
# one full burst of 32 packets of established TCP flows per poll, with the configurations in
# bench/configs/instr-*.ron. The figure is the inclusive instruction count (Ir) of
# `dpdk::worker::Worker::poll` over the measured polls divided by the packets it
# forwarded: receive, engine, transmit, counters and each packet's share of the per-poll work.
# Nothing is subtracted. Beside it, dpdk-testpmd's io and macswap forwarding on net_ring (and
# io on net_null) measured the same way: its forwarding thread's Ir over the packets it
# received, i.e. what a do-nothing DPDK forwarder costs.
#
# Usage: scripts/instructions.sh [--quick] [--keep DIR] [--jobs N]
#   --quick     smoke run (1000 flows, 64000 packets per run, testpmd 2 s): about 15 s
#   --keep DIR  keep the callgrind files and logs in DIR (callgrind_annotate --inclusive=yes)
#   --jobs N    rvs-instr runs at a time (default: all six, about 100 MB each; they spend
#               a few seconds asleep each); the figures do not depend on it
#
# Installs valgrind and dpdk (dpdk-testpmd) with apt-get when they are missing (as root).
# Leaves nothing behind: temporary files, DPDK runtime directories and the processes it
# started are removed on exit, also when it fails or is interrupted.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"
cd "$ROOT"

usage() {
    echo "usage: $RVS_PROG [--quick] [--keep DIR] [--jobs N]"
}

QUICK=0
KEEP=""
JOBS=0
while (($#)); do
    case $1 in
        --quick) QUICK=1 ;;
        --keep)
            [[ $# -ge 2 ]] || { usage >&2; exit 2; }
            KEEP=$2
            shift
            ;;
        --jobs)
            [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { usage >&2; exit 2; }
            JOBS=$2
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
    shift
done

if ((QUICK)); then
    FLOWS=1000
    PACKETS=64000
    TESTPMD_SECONDS=2
else
    FLOWS=10000
    PACKETS=2000000
    TESTPMD_SECONDS=8
fi

# mode direction target [workers placement]: what rvs-instr measures (targets are reported,
# not enforced). With 2 workers every flow is worker 1's and arrives on its own queue (owner)
# or on worker 0's, which hands it over (other): the difference is the hand-off's cost.
RUNS=(
    "nat in 170"
    "nat out 170"
    "fullnat in 170"
    "fullnat out 170"
    "dr in 100"
    "tun in 170"
    "nat in 170 2 owner"
    "nat in 170 2 other"
    "fullnat out 170 2 owner"
    "fullnat out 170 2 other"
)
# forward-mode vdev reference: dpdk-testpmd's baselines, with the figures measured on the
# project's reference machine.
TESTPMD_RUNS=(
    "io net_ring0 16.3"
    "macswap net_ring0 34.3"
    "io net_null0 124.8"
)

((JOBS)) || JOBS=${#RUNS[@]}

# --- tools ------------------------------------------------------------------------------------
missing=()
have valgrind || missing+=(valgrind)
have dpdk-testpmd || missing+=(dpdk)
pkg-config --exists libdpdk 2>/dev/null || missing+=(libdpdk-dev pkg-config clang libclang-dev gcc)
if ((${#missing[@]})); then
    if [[ ${EUID:-$(id -u)} -ne 0 ]] || ! have apt-get; then
        die "missing: ${missing[*]} (install them, or run this script as root on Debian)"
    fi
    note "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
have cargo || die "cargo not found: install a Rust toolchain first"

note "building rvs-instr (release)"
cargo build --release -p bench --bin rvs-instr --quiet
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/rvs-instr
[[ -x $BIN ]] || die "$BIN was not built"

# --- clean-up ---------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/rvs-instr.XXXXXX)
PREFIX="rvs-instr-$$"
# Processes started and not yet reaped (pid -> 1): only these are stopped on exit.
declare -A RUNNING=() JOB_NAME=() JOB_STATUS=()
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    local pid
    trap - EXIT INT TERM
    for pid in "${!RUNNING[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${!RUNNING[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    # EAL's runtime directories: /var/run/dpdk/<prefix> as root, else under XDG_RUNTIME_DIR
    # or /tmp. rvs-instr removes its own when it exits normally; testpmd never does.
    rm -rf /var/run/dpdk/"$PREFIX"-* "${XDG_RUNTIME_DIR:-/tmp}"/dpdk/"$PREFIX"-* \
        /tmp/dpdk/"$PREFIX"-* 2>/dev/null || true
    if [[ -n $KEEP ]]; then
        mkdir -p "$KEEP" && cp -a "$WORK"/. "$KEEP"/ && note "callgrind files and logs in $KEEP"
    fi
    rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- measuring --------------------------------------------------------------------------------
# incl_ir FILE REGEX: inclusive Ir of the functions whose name matches REGEX in a callgrind
# file: their own cost lines (in every inlined file) plus the inclusive cost of the calls they
# make. Prints "IR NAMES" (NAMES: how many distinct function names matched).
incl_ir() {
    awk -v want="$2" '
        function ident(s,    id) {
            if (match(s, /^\([0-9]+\)/)) {
                id = substr(s, 1, RLENGTH)
                s = substr(s, RLENGTH + 1)
                sub(/^ /, "", s)
                if (s != "") names[id] = s
                return names[id]
            }
            return s
        }
        /^fn=/    { cur = ident(substr($0, 4)); hit = (cur ~ want); if (hit) seen[cur] = 1; next }
        /^cfn=/   { ident(substr($0, 5)); next }
        /^[0-9+*-]/ { if (hit && NF >= 2) total += $2; next }
        END { n = 0; for (k in seen) n++; printf "%.0f %d\n", total, n }
    ' "$1"
}

# The largest inclusive Ir callgrind_annotate gives a function matching REGEX: the annotator
# lists a function once per file its code was inlined from; the entry of its own file holds
# everything. A cross-check of incl_ir.
annotate_ir() {
    callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$1" 2>/dev/null |
        awk -v want="$2" '$0 ~ want && $1 ~ /^[0-9,]+$/ { gsub(",", "", $1); if ($1 + 0 > max) max = $1 + 0 }
                          END { printf "%.0f\n", max }'
}

POLL_RE='(^|::)Worker(<[^>]*>)?::poll$'

run_name() { # mode dir workers placement
    if (($3 == 1)); then echo "rvs-$1-$2"; else echo "rvs-$1-$2-$3w-$4"; fi
}

# Runs one mode and direction under callgrind, collecting only inside rvs-instr's measured
# loop (`measure`). Started by pid, so that clean-up can stop it (timeout passes the signal on).
start_rvs() {
    local mode=$1 dir=$2 workers=${3:-1} placement=${4:-owner} name
    name=$(run_name "$mode" "$dir" "$workers" "$placement")
    # timeout: a hung run (none so far) ends the script instead of blocking it.
    local cmd=(timeout -k 10 900
        valgrind --tool=callgrind --collect-atstart=no "--toggle-collect=rvs_instr::measure*"
        "--callgrind-out-file=$WORK/$name.cg"
        "$BIN" --config "bench/configs/instr-$mode.ron" --direction "$dir"
        --workers "$workers" --placement "$placement"
        --flows "$FLOWS" --packets "$PACKETS" --file-prefix "$PREFIX-$name")
    printf '%q ' "${cmd[@]}" >"$WORK/$name.cmd"
    "${cmd[@]}" >"$WORK/$name.log" 2>&1 </dev/null &
    RUNNING[$!]=1
    JOB_NAME[$!]=$name
}

# Waits for any one job; records its exit status.
reap_one() {
    local status=0 pid
    wait -n -p pid || status=$?
    [[ -n ${pid:-} ]] || return 0
    unset "RUNNING[$pid]"
    JOB_STATUS[$pid]=$status
}

started=$SECONDS
note "rvs-instr under callgrind: ${#RUNS[@]} runs, $FLOWS flows, $PACKETS packets each, $JOBS at a time"
for run in "${RUNS[@]}"; do
    read -r mode dir _ workers placement <<<"$run"
    while ((${#RUNNING[@]} >= JOBS)); do
        reap_one
    done
    start_rvs "$mode" "$dir" "${workers:-1}" "${placement:-owner}"
done
while ((${#RUNNING[@]} > 0)); do
    reap_one
done

# testpmd: forwarding from the start (--tx-first puts a burst in the loop), stopped with
# SIGINT after TESTPMD_SECONDS, when it prints its forward statistics and exits.
# --fair-sched=yes: without it the spinning forwarding thread holds valgrind's lock and the
# main thread sees the signal many seconds late. All runs at once: they share the CPUs, which
# changes how many packets each forwards, not what a packet costs.
note "dpdk-testpmd under callgrind: ${#TESTPMD_RUNS[@]} runs of ${TESTPMD_SECONDS} s"
TP_PIDS=()
for run in "${TESTPMD_RUNS[@]}"; do
    read -r fwd vdev _ <<<"$run"
    name="testpmd-$fwd-$vdev"
    # timeout passes the SIGINT below on to valgrind, and sends one itself if that is lost.
    cmd=(timeout -s INT -k 30 $((TESTPMD_SECONDS + 180))
        valgrind --tool=callgrind --fair-sched=yes --separate-threads=yes
        "--callgrind-out-file=$WORK/$name.cg.%p"
        dpdk-testpmd --no-huge --no-shconf -m 128 "--file-prefix=$PREFIX-$name" --no-pci
        --no-telemetry -l "0,1" "--vdev=$vdev"
        -- "--forward-mode=$fwd" --tx-first --total-num-mbufs=2048 --stats-period=3600)
    printf '%q ' "${cmd[@]}" >"$WORK/$name.cmd"
    "${cmd[@]}" >"$WORK/$name.log" 2>&1 </dev/null &
    RUNNING[$!]=1
    TP_PIDS+=("$!")
    JOB_NAME[$!]=$name
done
# Forwarding starts a few seconds in (EAL and ports under valgrind); count from there.
deadline=$((SECONDS + 60))
for pid in "${TP_PIDS[@]}"; do
    until grep -q "start packet forwarding" "$WORK/${JOB_NAME[$pid]}.log" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || break
        ((SECONDS < deadline)) || break
        sleep 0.2
    done
done
# In the background, so that a signal meanwhile is handled at once (the trap stops it too).
sleep "$TESTPMD_SECONDS" &
RUNNING[$!]=1
wait "$!" || true
unset "RUNNING[$!]"
for pid in "${TP_PIDS[@]}"; do
    kill -INT "$pid" 2>/dev/null || true
done
for pid in "${TP_PIDS[@]}"; do
    status=0
    wait "$pid" || status=$?
    unset "RUNNING[$pid]"
    JOB_STATUS[$pid]=$status
done
rm -rf /var/run/dpdk/"$PREFIX"-* "${XDG_RUNTIME_DIR:-/tmp}"/dpdk/"$PREFIX"-* /tmp/dpdk/"$PREFIX"-* 2>/dev/null || true
elapsed=$((SECONDS - started))

# --- the table --------------------------------------------------------------------------------
failed=0
fail() {
    warn "$*"
    failed=1
}
status_of() {
    local pid
    for pid in "${!JOB_NAME[@]}"; do
        [[ ${JOB_NAME[$pid]} == "$1" ]] && { echo "${JOB_STATUS[$pid]:-?}"; return; }
    done
    echo "?"
}

rows=()
tp_rows=()
declare -A PER # run name -> instructions per packet
for run in "${RUNS[@]}"; do
    read -r mode dir target workers placement <<<"$run"
    workers=${workers:-1}
    name=$(run_name "$mode" "$dir" "$workers" "${placement:-owner}")
    label="${mode^^} $dir"
    if ((workers > 1)); then
        label+=", 2w $placement"
    fi
    log=$WORK/$name.log
    result=$(grep '^RESULT ' "$log" || true)
    if [[ $(status_of "$name") != 0 || -z $result ]]; then
        fail "$name failed (exit $(status_of "$name")); its output:"
        sed 's/^/    /' "$log" | grep -v '^    ==[0-9]*==' >&2 || true
        rows+=("$label|-|-|-|FAILED|<= $target|")
        continue
    fi
    packets=$(sed -n 's/.* packets=\([0-9]*\) .*/\1/p' <<<"$result")
    polls=$(sed -n 's/.* polls=\([0-9]*\) .*/\1/p' <<<"$result")
    read -r ir names < <(incl_ir "$WORK/$name.cg" "$POLL_RE")
    if [[ $names != 1 || $ir == 0 ]]; then
        fail "$name: Worker::poll found under $names names in the profile (inlined or renamed?)"
        rows+=("$label|$packets|$polls|-|FAILED|<= $target|")
        continue
    fi
    annotated=$(annotate_ir "$WORK/$name.cg" 'Worker(<[^>]*>)?::poll( |$)')
    [[ $annotated == "$ir" ]] ||
        fail "$name: callgrind_annotate gives Worker::poll $annotated Ir, the profile $ir"
    per=$(awk -v i="$ir" -v p="$packets" 'BEGIN { printf "%.1f", i / p }')
    verdict=$(awk -v x="$per" -v t="$target" 'BEGIN { print (x <= t) ? "met" : "over" }')
    rows+=("$label|$packets|$polls|$ir|$per|<= $target|$verdict")
    PER[$name]=$per
done

# The hand-off's cost: the same packets handed over minus arriving on their owner's queue
# (both runs have a second worker polling, so its idle turns cancel out).
handoff_rows=()
for run in "${RUNS[@]}"; do
    read -r mode dir _ workers placement <<<"$run"
    [[ ${workers:-1} == 2 && $placement == other ]] || continue
    other=${PER[$(run_name "$mode" "$dir" 2 other)]:-}
    owner=${PER[$(run_name "$mode" "$dir" 2 owner)]:-}
    alone=${PER[$(run_name "$mode" "$dir" 1 owner)]:-}
    [[ -n $other && -n $owner && -n $alone ]] || continue
    handoff_rows+=("$(awk -v m="${mode^^} $dir" -v a="$alone" -v o="$owner" -v h="$other" \
        'BEGIN { printf "%-14s alone %7.1f   2 workers, owner queue %7.1f (+%.1f)   handed over %7.1f (+%.1f beyond the owner queue; target <= 30)", m, a, o, o - a, h, h - o }')")
done

for run in "${TESTPMD_RUNS[@]}"; do
    read -r fwd vdev reference <<<"$run"
    name="testpmd-$fwd-$vdev"
    log=$WORK/$name.log
    # "Accumulated forward statistics for all ports", then its RX-packets line.
    packets=$(awk '/Accumulated forward statistics/ { a = 1 } a && /RX-packets:/ { print $2; exit }' "$log")
    # The forwarding thread: the busiest one besides the main thread (thread 1).
    best=0
    for f in "$WORK/$name".cg.*-*; do
        [[ -e $f && $f != *-01 ]] || continue
        ir=$(sed -n 's/^summary: *//p' "$f")
        [[ $ir =~ ^[0-9]+$ ]] && ((ir > best)) && best=$ir
    done
    if [[ $(status_of "$name") != 0 || -z $packets || $packets == 0 || $best == 0 ]]; then
        fail "$name failed (exit $(status_of "$name"), $packets packets, thread Ir $best); its output:"
        grep -v '^==[0-9]*==' "$log" | tail -n 20 | sed 's/^/    /' >&2 || true
        tp_rows+=("$fwd on ${vdev%0}|-|-|-|FAILED|$reference|")
        continue
    fi
    per=$(awk -v i="$best" -v p="$packets" 'BEGIN { printf "%.1f", i / p }')
    tp_rows+=("$fwd on ${vdev%0}|$packets|-|$best|$per|$reference|")
done

row() {
    printf '%-26s %11s %8s %15s %10s %10s %s\n' "$@"
}
echo
echo "Instructions per packet (callgrind Ir), $FLOWS established TCP flows, 32 packets per poll"
echo
row "rvs worker" packets polls "Ir" instr/pkt target ""
for r in "${rows[@]}"; do
    IFS='|' read -r a b c d e f g <<<"$r"
    row "$a" "$b" "$c" "$d" "$e" "$f" "$g"
done
echo
if ((${#handoff_rows[@]})); then
    echo
    echo "Several workers: instructions per packet alone, with a second worker (the owner check),"
    echo "and handed over by the worker that received it"
    printf '%s\n' "${handoff_rows[@]}"
fi
echo
row "dpdk-testpmd" packets "" "Ir" instr/pkt reference ""
for r in "${tp_rows[@]}"; do
    IFS='|' read -r a b c d e f g <<<"$r"
    row "$a" "$b" "$c" "$d" "$e" "$f" "$g"
done
echo
echo "rvs: inclusive Ir of Worker::poll over the measured polls / packets it forwarded; in = the"
echo "clients' packets to the VIP, out = the real servers' replies. testpmd: Ir of its forwarding"
echo "thread / packets it received. $elapsed s under valgrind. The rvs figures do not depend on the"
echo "machine's speed or load: two runs agree within 0.05 instructions per packet."
exit "$failed"
