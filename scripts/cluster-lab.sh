#!/usr/bin/env bash
# The cluster lab: three rvsd nodes behind a Linux router that spreads a VIP over them with
# ECMP, the VIP announced by BIRD 2 over eBGP from each node, in network namespaces.
#
#   client   eth0 203.0.113.2/25, default via 203.0.113.1
#     | veth
#   router   cl0 203.0.113.1/25, lan 198.51.100.1/24; ip_forward, L4 multipath hash
#            (fib_multipath_hash_policy 1); BIRD 2: AS 65000, eBGP to each node, `kernel`
#            protocol with `merge paths yes` (the VIP's route gets one next hop per node)
#     | veth
#   sw       bridge br0 (the LAN 198.51.100.0/24): router, n1..n3, rs1..rs3
#     | veth (lan0 in each node)
#   n1..n3   rvsd: port "lan" = net_af_packet0 on lan0 (n1: 2 workers, qpairs=2), address
#            198.51.100.1N/24 on rvsd's kernel interface rvs-lan; service TCP 203.0.113.200:80,
#            DR, mh + mh-port, sloppy_tcp, TCP_CHECK of the three real servers every second,
#            `announce` (the VIP as a /32 on rvs-lan while the quorum holds, hold-down 2 s,
#            withdraw wait 1 s); BIRD 2 (AS 65010) peers with 198.51.100.1 over rvs-lan
#            (through rvsd's kernel path) and exports the /32s of `protocol direct` on rvs-lan
#   rs1..rs3 eth0 198.51.100.21-23/24, default via 198.51.100.1, VIP on lo (arp_ignore 1,
#            arp_announce 2: DR), scripts/lab/http_server.py
#
# Every rvsd's busy-polling workers share the last core; the control threads, BIRD and the
# lab's Python programs run on the others.
#
# Checks (both forms check; the full form uses more connections and longer streams):
#   a. 3 next hops: N new connections all succeed, each node creates some, the real servers'
#      shares (mh) roughly equal.
#   b. M long-lived connections streaming: n2 stopped with SIGTERM (convergence = signal to
#      the router's route losing that next hop: <= 1.5 s; rvsd exits >= 1 s after the signal
#      and after the convergence: withdraw_wait_ms), every connection keeps its server; n2
#      back; the same with SIGKILL of n1 (convergence = BGP hold time: <= 4.5 s, or BFD with
#      --bfd: <= 1.5 s); then (after d) sloppy_tcp off on every node by a reload (SIGHUP:
#      each rvsd must log "... 1 changed ..."), and SIGTERM of n2 again: the survivors no
#      longer take over mid-flow segments (checked: some connections break, none is created
#      by sloppy TCP; how many break is printed). The full form also streams 20 new
#      connections a second through each of these and counts the failed ones.
#   c. n2's health checks made to fail (a host route to each real server via an address no
#      one answers, in n2's namespace: its checks time out, its data plane is unaffected):
#      time until the router drops n2; new connections all succeed; the routes removed: time
#      until n2 is back (>= the 2 s hold-down).
#   d. n3 stopped; with 2 nodes and M long-lived connections streaming, n3 started: the join
#      time, the fraction of flows that moved (connections created by sloppy TCP), and every
#      connection keeps its server.
# Prints "cluster: NAME: VALUE" lines at the end (--json FILE: the same as one JSON object)
# and exits 1 if a check failed.
#
# The lab needs an rvsd with `announce` and `sloppy_tcp`: if its --check-config refuses the
# generated configuration, the lab stops with rvsd's message.
#
# Usage: scripts/cluster-lab.sh [--quick] [--bfd] [--json FILE] [--no-build]
#   --quick     60 new connections, 20 long-lived ones, short streams: the test command's
#               form (about 70 s with --no-build on 2 cores)
#   --bfd       BFD (100 ms x 5) on the BGP sessions: SIGKILL converges in ~0.5 s
#   --json FILE the figures as one JSON object in FILE as well
#   --no-build  use target/release/rvsd (or $RVS_BIN) as it is
# Env: RVS_BIN (the rvsd to run), RVS_TEST_RUN (names: namespaces e2e$RVS_TEST_RUN-cl-*,
# DPDK prefixes rvs-cl-nN-$RVS_TEST_RUN, as scripts/test.sh's clean-up expects).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"
cd "$ROOT"

QUICK=0 BFD=0 JSON_OUT="" BUILD=1
while (($#)); do
    case $1 in
        --quick) QUICK=1 ;;
        --bfd) BFD=1 ;;
        --json)
            (($# >= 2)) || die "--json needs a file"
            JSON_OUT=$2
            shift
            ;;
        --no-build) BUILD=0 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
if [[ -n $JSON_OUT ]]; then
    JSON_OUT=$(realpath -m -- "$JSON_OUT")
fi

require_root
"$SCRIPT_DIR/setup.sh" >/dev/null
for c in ip bird birdc python3 setsid; do
    have "$c" || die "$c is needed (scripts/setup.sh installs bird2, iproute2, python3)"
done

# --- sizes -----------------------------------------------------------------------------
if ((QUICK)); then
    FORM=quick N_NEW=60 N_QUORUM=30 M_LONG=20 S_TERM=6 S_KILL=9 S_JOIN=14 S_NOSLOPPY=6 STREAM=0
    SHARE_MIN=0.3
else
    FORM=full N_NEW=600 N_QUORUM=200 M_LONG=100 S_TERM=10 S_KILL=14 S_JOIN=20 S_NOSLOPPY=10
    STREAM=20 SHARE_MIN=0.8
fi
VIP=203.0.113.200
URL=http://$VIP/
LAB_PY=$SCRIPT_DIR/lab
HOLD_DOWN_S=2

# --- names -----------------------------------------------------------------------------
if [[ -n ${RVS_TEST_RUN:-} ]]; then
    TAG=$RVS_TEST_RUN
    NSP="e2e${RVS_TEST_RUN}-cl-"
else
    TAG="p$$"
    NSP="rvscl$$-"
fi
ROLES=(client router sw n1 n2 n3 rs1 rs2 rs3)
declare -A PREFIX=([1]="rvs-cl-n1-$TAG" [2]="rvs-cl-n2-$TAG" [3]="rvs-cl-n3-$TAG")
ns() { echo "$NSP$1"; }

WORK=$(mktemp -d /tmp/rvs-cluster.XXXXXX)
FIGS=$WORK/figures
: >"$FIGS"
FAILED=()
CREATED_NS=()
# Processes this script started: "KEY PID STARTTIME".
declare -A PROCS=()
declare -A STARTS=([1]=0 [2]=0 [3]=0)

# --- processes ---------------------------------------------------------------------------

proc_starttime() { # PID -> its start time (field 22 of /proc/PID/stat); fails if gone/zombie
    local stat rest f=()
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    rest=${stat##*) }
    read -r -a f <<<"$rest"
    ((${#f[@]} > 19)) || return 1
    [[ ${f[0]} != Z && ${f[0]} != X ]] || return 1
    echo "${f[19]}"
}

# remember KEY PID: record a process just started (its start time guards every later signal).
remember() {
    local st
    st=$(proc_starttime "$2") || st=0
    PROCS[$1]="$2 $st"
}

alive() { # KEY
    local pid st cur
    [[ -n ${PROCS[$1]:-} ]] || return 1
    read -r pid st <<<"${PROCS[$1]}"
    cur=$(proc_starttime "$pid") || return 1
    [[ $cur == "$st" ]]
}

pid_of() { # KEY
    local pid st
    read -r pid st <<<"${PROCS[$1]:-0 0}"
    echo "$pid"
}

signal() { # KEY SIG
    if alive "$1"; then kill "-$2" "$(pid_of "$1")" 2>/dev/null || true; fi
}

# stop KEY... : SIGTERM, up to 5 s, then SIGKILL, up to 2 s.
stop() {
    local k i any
    for k in "$@"; do signal "$k" TERM; done
    for ((i = 0; i < 70; i++)); do
        any=0
        for k in "$@"; do if alive "$k"; then any=1; fi; done
        ((any)) || break
        if ((i == 50)); then
            for k in "$@"; do signal "$k" KILL; done
        fi
        sleep 0.1
    done
    for k in "$@"; do
        if alive "$k"; then warn "$k (pid $(pid_of "$k")) survived SIGKILL"; else unset "PROCS[$k]"; fi
    done
}

remove_dpdk_files() { # N
    rm -f -- "/dev/hugepages/${PREFIX[$1]}"* 2>/dev/null || true
    rm -rf -- "/var/run/dpdk/${PREFIX[$1]}" 2>/dev/null || true
}

# shellcheck disable=SC2317  # run by the trap
cleanup() {
    local rc=$? k n nsn pid keys=()
    trap - EXIT INT TERM
    set +e
    for k in "${!PROCS[@]}"; do
        [[ $k == client-* ]] && keys+=("$k")
    done
    ((${#keys[@]} == 0)) || stop "${keys[@]}"
    keys=()
    for k in "${!PROCS[@]}"; do
        [[ $k == rvsd-* ]] && keys+=("$k")
    done
    ((${#keys[@]} == 0)) || stop "${keys[@]}"
    keys=("${!PROCS[@]}")
    ((${#keys[@]} == 0)) || stop "${keys[@]}"
    for nsn in "${CREATED_NS[@]}"; do
        # Whatever still runs in a namespace of ours was started by this script.
        for pid in $(ip netns pids "$nsn" 2>/dev/null); do
            warn "process $pid still in $nsn: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        done
    done
    for nsn in "${CREATED_NS[@]}"; do
        ip netns del "$nsn" 2>/dev/null || warn "could not delete namespace $nsn"
    done
    for n in 1 2 3; do remove_dpdk_files "$n"; done
    if ((rc != 0)); then
        warn "failed (exit $rc); logs kept in $WORK"
        for n in 1 2 3; do
            [[ -n ${LOGS[$n]:-} ]] || continue
            echo "--- ${LOGS[$n]} (last lines)" >&2
            tail -n 8 "${LOGS[$n]}" >&2 2>/dev/null
        done
    else
        rm -rf -- "$WORK"
    fi
    exit "$rc"
}
declare -A LOGS=()
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fig NAME VALUE : a figure for the summary.
fig() {
    printf '%s\t%s\n' "$1" "$2" >>"$FIGS"
    note "$1: $2"
}

# check OK NAME MESSAGE : a check; a failure is recorded (the run goes on, exit 1 at the end).
check() {
    if [[ $1 == 1 ]]; then
        note "check ok: $2"
    else
        warn "CHECK FAILED: $2: $3"
        FAILED+=("$2")
    fi
}

elapsed() { echo "$SECONDS"; }

# ge A B : A >= B, as decimals.
ge() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "$1" "$2"; }

# --- the rvsd binary ----------------------------------------------------------------------
if [[ -n ${RVS_BIN:-} ]]; then
    SRC_BIN=$RVS_BIN
else
    if ((BUILD)); then
        note "building rvsd (release)"
        cargo build --release -q -p control --bin rvsd
    fi
    SRC_BIN=$ROOT/target/release/rvsd
fi
[[ -x $SRC_BIN ]] || die "no rvsd at $SRC_BIN (build it: cargo build --release -p control --bin rvsd)"
# A copy: a rebuild during the run must not change the binary between restarts.
RVSD=$WORK/rvsd
cp -- "$SRC_BIN" "$RVSD"

# --- cores and hugepages ------------------------------------------------------------------
NCPU=$(nproc)
WORKER_CORE=$((NCPU - 1))
if ((NCPU > 1)); then OTHER_CORES=0-$((NCPU - 2)); else OTHER_CORES=0; fi
# other CMD... : run on the cores the workers leave.
other() { taskset -c "$OTHER_CORES" "$@"; }
HP_FREE=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
HP_SIZE=$(awk '/Hugepagesize/ {print $2}' /proc/meminfo)
HP_NEED=$((3 * 256 * 1024 / ${HP_SIZE:-2048} + 16))
if ((${HP_FREE:-0} >= HP_NEED)); then
    HUGE=true
else
    HUGE=false
    warn "only ${HP_FREE:-0} free hugepages (3 nodes need $HP_NEED): running EAL with --no-huge"
fi

# --- configurations ------------------------------------------------------------------------
conf_rvsd() { # N SLOPPY(0|1) -> WORK/nN.ron
    local n=$1 cores=$WORKER_CORE args=()
    ((n == 1)) && cores="$WORKER_CORE,$WORKER_CORE"
    (($2)) && args+=(--sloppy)
    python3 "$LAB_PY/cluster_conf.py" rvsd --node "$n" --prefix "${PREFIX[$n]}" --cores "$cores" \
        --control-core 0 --hugepages "$HUGE" --stats "$WORK/n$n-stats.json" \
        --socket "$WORK/n$n.sock" "${args[@]}" >"$WORK/n$n.ron"
}

# Every node with `announce` and `sloppy_tcp`: an rvsd without them refuses the configuration.
for n in 1 2 3; do
    conf_rvsd "$n" 1
    out=$("$RVSD" --check-config "$WORK/n$n.ron" 2>&1) ||
        die "rvsd ($SRC_BIN) refuses n$n's configuration (the lab needs announce and sloppy_tcp): $out"
done
bfd_arg=()
((BFD)) && bfd_arg=(--bfd)
python3 "$LAB_PY/cluster_conf.py" bird-router --nodes 3 "${bfd_arg[@]}" >"$WORK/bird-router.conf"
for n in 1 2 3; do
    python3 "$LAB_PY/cluster_conf.py" bird-node --node "$n" "${bfd_arg[@]}" >"$WORK/bird-n$n.conf"
done
for f in "$WORK"/bird-*.conf; do bird -p -c "$f" || die "BIRD refuses $f"; done
fig form "$FORM"
fig bfd "$( ((BFD)) && echo on || echo off)"
fig hugepages "$HUGE"

# --- namespaces ------------------------------------------------------------------------------
nsctl() { # ROLE KEY=VALUE...
    local r=$1
    shift
    ip netns exec "$(ns "$r")" sysctl -qw "$@" >/dev/null
}

mkns() { # ROLE
    local n
    n=$(ns "$1")
    [[ ! -e /run/netns/$n ]] || die "namespace $n exists already"
    ip netns add "$n"
    CREATED_NS+=("$n")
    if [[ -d /proc/sys/net/ipv6 ]]; then
        nsctl "$1" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    fi
    nsctl "$1" net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    ip -n "$n" link set lo up
}

mkveth() { # ROLE_A IF_A ROLE_B IF_B
    ip link add name "$2" netns "$(ns "$1")" type veth peer name "$4" netns "$(ns "$3")"
    if have ethtool; then
        ip netns exec "$(ns "$1")" ethtool -K "$2" tx off >/dev/null
        ip netns exec "$(ns "$3")" ethtool -K "$4" tx off >/dev/null
    fi
}

note "namespaces ${NSP}{${ROLES[*]}}"
for r in "${ROLES[@]}"; do mkns "$r"; done
SW=$(ns sw) R=$(ns router) C=$(ns client)
for t in iptables ip6tables arptables; do
    if ip netns exec "$SW" test -e "/proc/sys/net/bridge/bridge-nf-call-$t"; then
        nsctl sw "net.bridge.bridge-nf-call-$t=0"
    fi
done
ip -n "$SW" link add name br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
ip -n "$SW" link set br0 up
mkveth client eth0 router cl0
mkveth router lan sw sw-router
for n in 1 2 3; do mkveth "n$n" lan0 sw "sw-n$n"; done
for i in 1 2 3; do mkveth "rs$i" eth0 sw "sw-rs$i"; done
for p in sw-router sw-n1 sw-n2 sw-n3 sw-rs1 sw-rs2 sw-rs3; do
    ip -n "$SW" link set "$p" master br0 up
done

ip -n "$C" addr add 203.0.113.2/25 dev eth0
ip -n "$C" link set eth0 up
ip -n "$C" route add default via 203.0.113.1

nsctl router net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
    net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
ip -n "$R" addr add 203.0.113.1/25 dev cl0
ip -n "$R" addr add 198.51.100.1/24 dev lan
ip -n "$R" link set cl0 up
ip -n "$R" link set lan up

for n in 1 2 3; do
    ip -n "$(ns "n$n")" link set lan0 promisc on up
done

for i in 1 2 3; do
    nsn=$(ns "rs$i")
    ip -n "$nsn" addr add "198.51.100.2$i/24" dev eth0
    ip -n "$nsn" addr add "$VIP/32" dev lo
    ip -n "$nsn" link set eth0 up
    ip -n "$nsn" route add default via 198.51.100.1
    nsctl "rs$i" net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.eth0.arp_ignore=1 \
        net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.eth0.arp_announce=2
done

# --- the real servers, the router's BIRD ------------------------------------------------------
for i in 1 2 3; do
    setsid ip netns exec "$(ns "rs$i")" taskset -c "$OTHER_CORES" python3 "$LAB_PY/http_server.py" \
        "rs$i" --port 80 --pidfile "$WORK/http-rs$i.pid" </dev/null >"$WORK/http-rs$i.log" 2>&1 &
    remember "http-rs$i" "$!"
done
for i in 1 2 3; do
    for _ in $(seq 100); do [[ -s $WORK/http-rs$i.pid ]] && break; sleep 0.1; done
    [[ -s $WORK/http-rs$i.pid ]] || die "the HTTP server of rs$i did not start: $(tail -n 3 "$WORK/http-rs$i.log")"
done

# bird_start KEY ROLE CONF : BIRD in the foreground of its own session, own socket and pid file.
bird_start() {
    setsid ip netns exec "$(ns "$2")" taskset -c "$OTHER_CORES" bird -f -c "$3" \
        -s "$WORK/$1.ctl" -P "$WORK/$1.pid" </dev/null >"$WORK/$1.log" 2>&1 &
    remember "$1" "$!"
}
bird_start bird-router router "$WORK/bird-router.conf"

# --- the nodes ----------------------------------------------------------------------------------
# node_start N : start rvsd in nN (its BIRD too, the first time).
node_start() {
    local n=$1
    alive "rvsd-$n" && die "rvsd of n$n is running already"
    remove_dpdk_files "$n"
    STARTS[$n]=$((STARTS[$n] + 1))
    LOGS[$n]=$WORK/rvsd-n$n-${STARTS[$n]}.log
    RVS_LOG=info setsid ip netns exec "$(ns "n$n")" "$RVSD" --config "$WORK/n$n.ron" \
        </dev/null >"${LOGS[$n]}" 2>&1 &
    remember "rvsd-$n" "$!"
    if ! alive "bird-n$n"; then bird_start "bird-n$n" "n$n" "$WORK/bird-n$n.conf"; fi
}

# node_wait N : until rvsd runs and its kernel interface holds its address (60 s).
node_wait() {
    local n=$1 i
    for ((i = 0; i < 600; i++)); do
        grep -q "rvsd running" "${LOGS[$n]}" 2>/dev/null && break
        alive "rvsd-$n" || die "rvsd of n$n exited: $(tail -n 5 "${LOGS[$n]}")"
        sleep 0.1
    done
    grep -q "rvsd running" "${LOGS[$n]}" || die "rvsd of n$n did not start within 60 s"
    for ((i = 0; i < 100; i++)); do
        ip -n "$(ns "n$n")" -4 -o addr show dev rvs-lan 2>/dev/null | grep -q "198.51.100.1$n/" && break
        sleep 0.1
    done
}

# node_gone N TIMEOUT : wait for rvsd of nN to exit; prints when it was seen gone (Unix s).
node_gone() {
    local n=$1 i
    for ((i = 0; i < $2 * 50; i++)); do
        alive "rvsd-$n" || break
        sleep 0.02
    done
    if alive "rvsd-$n"; then
        warn "rvsd of n$n still runs after $2 s; SIGKILL"
        signal "rvsd-$n" KILL
        sleep 0.5
    fi
    date +%s.%N
    unset "PROCS[rvsd-$n]"
}

# paths WANT TIMEOUT OUT [cluster_paths.py args...] : wait for the router's VIP route to have
# WANT next hops; the JSON result in OUT. Fails (returns 1) on timeout.
paths() {
    local want=$1 timeout=$2 out=$3
    shift 3
    other python3 "$LAB_PY/cluster_paths.py" wait --ns "$R" --prefix "$VIP" --want "$want" \
        --timeout "$timeout" --interval 0.02 --out "$out" "$@" >/dev/null
}

seconds_of() { python3 "$LAB_PY/cluster_report.py" get "$1" seconds; }

counters() { # -> "c1 s1 c2 s2 c3 s3": created and sloppy-created per node
    python3 "$LAB_PY/cluster_report.py" counters "$WORK/n1-stats.json" "$WORK/n2-stats.json" \
        "$WORK/n3-stats.json" | awk '{printf "%s %s ", $1, $2} END {print ""}'
}

# client CMD ARGS... : scripts/lab/client.py in the client namespace.
client() {
    ip netns exec "$C" taskset -c "$OTHER_CORES" python3 "$LAB_PY/client.py" "$@"
}

# long_start KEY COUNT SECONDS : long_conns.py in the background; waits until every connection
# has its first line (30 s).
long_start() {
    local key=$1 i
    rm -f -- "$WORK/$key.ready"
    setsid ip netns exec "$C" taskset -c "$OTHER_CORES" python3 "$LAB_PY/long_conns.py" --url "$URL" \
        --count "$2" --seconds "$3" --timeout 20 --ready-file "$WORK/$key.ready" \
        </dev/null >"$WORK/$key.json" 2>"$WORK/$key.err" &
    remember "client-$key" "$!"
    for ((i = 0; i < 300; i++)); do
        [[ -e $WORK/$key.ready ]] && return 0
        alive "client-$key" || break
        sleep 0.1
    done
    die "long-lived connections $key did not all start: $(cat "$WORK/$key.err" "$WORK/$key.json" 2>/dev/null | tail -n 5)"
}

# stream_start KEY SECONDS : new connections at STREAM a second in the background.
stream_start() {
    setsid ip netns exec "$C" taskset -c "$OTHER_CORES" python3 "$LAB_PY/client.py" stream \
        --url "$URL" --rate "$STREAM" --seconds "$2" --timeout 2 \
        </dev/null >"$WORK/$1-stream.json" 2>"$WORK/$1-stream.err" &
    remember "client-$1-stream" "$!"
}

# stream_figs KEY : the new connections' figures (failed ones, and how they failed).
stream_figs() {
    local pid
    pid=$(pid_of "client-$1-stream")
    wait "$pid" 2>/dev/null || true
    unset "PROCS[client-$1-stream]"
    python3 - "$WORK/$1-stream.json" "$1" >>"$FIGS" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    d = {"requests": 0, "ok": 0, "events": []}
kinds = {}
for e in d.get("events", []):
    if not e[1]:
        kinds[e[2]] = kinds.get(e[2], 0) + 1
print(f"{sys.argv[2]}_new_total\t{d.get('requests', 0)}")
print(f"{sys.argv[2]}_new_failed\t{d.get('requests', 0) - d.get('ok', 0)}")
print(f"{sys.argv[2]}_new_failed_kinds\t{json.dumps(kinds, sort_keys=True)}")
EOF
    note "$1: new connections: $(tail -n 2 "$FIGS" | cut -f2 | tr '\n' ' ')"
}

long_wait() { # KEY
    local pid
    pid=$(pid_of "client-$1")
    wait "$pid" 2>/dev/null || true
    unset "PROCS[client-$1]"
    [[ -s $WORK/$1.json ]] || die "long-lived connections $1: no result ($(tail -n 3 "$WORK/$1.err"))"
}

# long_figs PREFIX KEY : figures of a long_conns.py result; sets L_OK L_BROKEN L_MOVED.
long_figs() {
    local p=$1 f=$WORK/$2.json gap errs by
    {
        read -r L_OK
        read -r L_BROKEN
        read -r L_MOVED
        read -r gap
        read -r by
        read -r errs
    } < <(python3 "$LAB_PY/cluster_report.py" get "$f" ok broken moved max_gap by_server errors)
    fig "${p}_long_ok" "$L_OK"
    fig "${p}_long_broken" "$L_BROKEN"
    fig "${p}_long_moved" "$L_MOVED"
    fig "${p}_long_max_gap_s" "$gap"
    fig "${p}_long_by_server" "$by"
    [[ $errs == "[]" ]] || note "$p: first errors: $errs"
}

note "starting n1 n2 n3 (rvsd: workers on core $WORKER_CORE, n1 with 2), BIRD on each"
for n in 1 2 3; do node_start "$n"; done
for n in 1 2 3; do node_wait "$n"; done
paths 3 60 "$WORK/paths-start.json" --since "$(date +%s.%N)" ||
    die "the router did not get 3 next hops for $VIP within 60 s: $(cat "$WORK/paths-start.json")"
fig setup_s "$(elapsed)"

# --- a. three nodes, new connections ---------------------------------------------------------
# nothing_through MESSAGE : what the nodes dropped, the figures so far, and stop.
nothing_through() {
    local n
    for n in 1 2 3; do
        note "n$n: $(python3 - "$WORK/n$n-stats.json" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    d = {}
drops = {}
for p in d.get("ports", []):
    for k, v in p.get("drops", {}).items():
        if v:
            drops[k] = drops.get(k, 0) + v
print("created", sum(p.get("connections_created", 0) for p in d.get("ports", [])),
      "drops", json.dumps(drops, sort_keys=True),
      "to_kernel", sum(p.get("to_kernel", 0) for p in d.get("ports", [])))
EOF
)"
    done
    fig wall_s "$(elapsed)"
    python3 "$LAB_PY/cluster_report.py" summary "$FIGS" ${JSON_OUT:+--json "$JSON_OUT"}
    die "$1"
}

# One connection first (up to 5 tries): if none goes through, every later phase would only
# wait for time-outs.
probe=0
for i in 1 2 3 4 5; do
    if client http --url "$URL" --count 1 --timeout 2 >"$WORK/probe.json"; then
        probe=1
        break
    fi
done
if ((!probe)); then
    nothing_through "no connection goes through the cluster: $(python3 "$LAB_PY/cluster_report.py" get "$WORK/probe.json" errors)"
fi

note "a. $N_NEW new connections over 3 nodes"
read -r c1 _ c2 _ c3 _ < <(counters)
client http --url "$URL" --count "$N_NEW" --timeout 3 >"$WORK/a.json" || true
sleep 0.7 # a stats file rewrite
read -r d1 _ d2 _ d3 _ < <(counters)
{ read -r ok; read -r failed; } < <(python3 "$LAB_PY/cluster_report.py" get "$WORK/a.json" ok failed)
read -r s1 s2 s3 ratio < <(python3 "$LAB_PY/cluster_report.py" shares "$WORK/a.json")
fig a_new_ok "$ok"
fig a_new_total "$N_NEW"
fig a_created_n1 $((d1 - c1))
fig a_created_n2 $((d2 - c2))
fig a_created_n3 $((d3 - c3))
fig a_share_rs1 "$s1"
fig a_share_rs2 "$s2"
fig a_share_rs3 "$s3"
fig a_share_min_over_mean "$ratio"
check "$( ((ok == N_NEW)) && echo 1)" a_all_new_ok "$failed of $N_NEW failed"
check "$( ((d1 > c1 && d2 > c2 && d3 > c3)) && echo 1)" a_every_node_used \
    "created per node: $((d1 - c1)) $((d2 - c2)) $((d3 - c3))"
check "$(ge "$ratio" "$SHARE_MIN" && echo 1)" a_shares_even "rs1..3: $s1 $s2 $s3 (min/mean $ratio < $SHARE_MIN)"

# --- b. a node stops (SIGTERM, SIGKILL) under long-lived connections ---------------------------
# failover TAG N SIG SECONDS SLOPPY : M long-lived connections, then SIG to nN's rvsd; the
# convergence, the connections' fate (SLOPPY 1: checked to be kept on their servers; 0, the
# nodes without sloppy_tcp: checked to be not taken over), nN back.
failover() {
    local tag=$1 n=$2 sig=$3 secs=$4 sloppy=$5 t0 conv gone start exit_s bound before after
    local moved=0 i c s j
    note "b. $tag: $M_LONG long-lived connections, SIG$sig to n$n"
    paths 3 30 "$WORK/$tag-pre.json" || die "$tag: not 3 next hops before: $(cat "$WORK/$tag-pre.json")"
    long_start "$tag" "$M_LONG" "$secs"
    sleep 1
    read -r -a before < <(counters)
    if ((STREAM)); then stream_start "$tag" "$((secs - 2))"; fi
    paths 2 20 "$WORK/$tag-conv.json" --signal "$(pid_of "rvsd-$n"):$sig" || true
    conv=$(seconds_of "$WORK/$tag-conv.json")
    if ! python3 "$LAB_PY/cluster_report.py" get "$WORK/$tag-conv.json" ok | grep -qx true; then
        check 0 "${tag}_converged" "the router still has $(python3 "$LAB_PY/cluster_report.py" get "$WORK/$tag-conv.json" paths) next hops 20 s after SIG$sig"
    fi
    fig "${tag}_convergence_s" "$conv"
    start=$(python3 "$LAB_PY/cluster_report.py" get "$WORK/$tag-conv.json" start)
    gone=$(node_gone "$n" 15)
    if [[ $sig == TERM ]]; then
        # From the signal to rvsd's exit: it forwards for withdraw_wait_ms after the withdrawal.
        exit_s=$(python3 -c "print(round($gone - $start, 2))")
        fig "${tag}_rvsd_exit_s" "$exit_s"
        check "$(ge 1.5 "$conv" && echo 1)" "${tag}_fast" "convergence after SIGTERM $conv s (> 1.5 s)"
        check "$(ge "$exit_s" 1.0 && ge "$exit_s" "$conv" && echo 1)" "${tag}_withdraw_wait" \
            "rvsd exited $exit_s s after SIGTERM: not withdraw_wait_ms (1 s) after the withdrawal ($conv s)"
    else
        remove_dpdk_files "$n"
        # The BGP hold time (3 s, of which up to a keepalive interval may have passed), or BFD
        # (5 x 100 ms), and some slack for a loaded machine.
        if ((BFD)); then bound=1.5; else bound=4.5; fi
        check "$(ge "$bound" "$conv" && echo 1)" "${tag}_bounded" "convergence after SIGKILL $conv s (> $bound s)"
    fi
    long_wait "$tag"
    if ((STREAM)); then stream_figs "$tag"; fi
    sleep 0.6
    read -r -a after < <(counters)
    # Connections the survivors created from a packet without SYN: the flows that moved.
    for ((i = 1; i <= 3; i++)); do
        ((i == n)) && continue
        j=$(((i - 1) * 2 + 1))
        s=${after[$j]}
        c=${before[$j]}
        if ((s >= 0)); then moved=$((moved + s - c)); else moved=-1; fi
    done
    long_figs "$tag" "$tag"
    fig "${tag}_sloppy_created" "$moved"
    if ((sloppy)); then
        check "$( ((L_BROKEN == 0 && L_MOVED == 0)) && echo 1)" "${tag}_long_kept" \
            "$L_BROKEN of $M_LONG broke, $L_MOVED moved"
    else
        # The flows the router moved off n2 reach a node that never saw their SYN: without
        # sloppy_tcp it must not create a connection for them, and they break.
        check "$( ((moved == 0 && L_BROKEN > 0 && L_MOVED == 0)) && echo 1)" "${tag}_not_taken_over" \
            "without sloppy_tcp: $moved connections created mid-flow, $L_BROKEN of $M_LONG broke, $L_MOVED moved"
    fi
    note "b. $tag: n$n back"
    t0=$(date +%s.%N)
    node_start "$n"
    node_wait "$n"
    paths 3 40 "$WORK/$tag-back.json" --since "$t0" || die "$tag: n$n did not come back: $(cat "$WORK/$tag-back.json")"
    fig "${tag}_rejoin_s" "$(seconds_of "$WORK/$tag-back.json")"
}

failover b_term 2 TERM "$S_TERM" 1
failover b_kill 1 KILL "$S_KILL" 1

# --- c. quorum lost on n2 only -------------------------------------------------------------------
# ok_of FILE : true if the JSON result in FILE says "ok": true.
ok_of() { python3 "$LAB_PY/cluster_report.py" get "$1" ok | grep -qx true; }

note "c. n2's health checks fail (its real servers unreachable from its kernel only)"
paths 3 30 "$WORK/c-pre.json" || die "c: not 3 next hops before"
N2=$(ns n2)
t0=$(date +%s.%N)
for i in 1 2 3; do
    # A next hop no one answers: the checks' SYNs wait for ARP and time out (a failure of the
    # server, as keepalived counts it; a `prohibit` route would fail the connect() at once,
    # which rvsd counts as the appliance's own fault and holds against no server). rvsd's
    # data plane uses no kernel route: forwarding is unaffected.
    ip -n "$N2" route add "198.51.100.2$i/32" via 198.51.100.99 dev rvs-lan
done
python3 "$LAB_PY/cluster_report.py" wait-quorum "$WORK/n2-stats.json" --met no --since "$t0" \
    --timeout 30 >"$WORK/c-qdown.json" &
qpid=$!
paths 2 30 "$WORK/c-down.json" --since "$t0" || true
wait "$qpid" || true
fig c_quorum_lost_s "$(seconds_of "$WORK/c-qdown.json")"
fig c_n2_reasons "$(python3 "$LAB_PY/cluster_report.py" get "$WORK/c-qdown.json" reasons)"
check "$(ok_of "$WORK/c-qdown.json" && echo 1)" c_n2_quorum_lost "n2's quorum still met 30 s after its checks began to fail"
if ok_of "$WORK/c-down.json"; then
    fig c_withdraw_s "$(seconds_of "$WORK/c-down.json")"
    read -r c1 _ c2 _ c3 _ < <(counters)
    client http --url "$URL" --count "$N_QUORUM" --timeout 3 >"$WORK/c.json" || true
    sleep 0.7
    read -r d1 _ d2 _ d3 _ < <(counters)
    { read -r ok; read -r failed; } < <(python3 "$LAB_PY/cluster_report.py" get "$WORK/c.json" ok failed)
    fig c_new_ok "$ok"
    fig c_new_total "$N_QUORUM"
    fig c_created_n1 $((d1 - c1))
    fig c_created_n2 $((d2 - c2))
    fig c_created_n3 $((d3 - c3))
    check "$( ((ok == N_QUORUM)) && echo 1)" c_new_ok "$failed of $N_QUORUM failed"
    check "$( ((d2 == c2)) && echo 1)" c_n2_unused "n2 created $((d2 - c2)) connections while withdrawn"
else
    check 0 c_n2_withdrawn "the router kept n2 30 s after its checks began to fail ($(cat "$WORK/c-down.json"))"
fi
t0=$(date +%s.%N)
for i in 1 2 3; do ip -n "$N2" route del "198.51.100.2$i/32" 2>/dev/null || true; done
python3 "$LAB_PY/cluster_report.py" wait-quorum "$WORK/n2-stats.json" --met yes --since "$t0" \
    --timeout 30 >"$WORK/c-qup.json" &
qpid=$!
paths 3 30 "$WORK/c-up.json" --since "$t0" || true
wait "$qpid" || true
fig c_quorum_back_s "$(seconds_of "$WORK/c-qup.json")"
check "$(ok_of "$WORK/c-qup.json" && echo 1)" c_n2_quorum_back "n2's quorum not back 30 s after its checks pass again"
back=$(seconds_of "$WORK/c-up.json")
fig c_return_s "$back"
if ok_of "$WORK/c-up.json"; then
    check "$(ge "$back" "$HOLD_DOWN_S" && echo 1)" c_hold_down "n2 back after $back s, before the hold-down"
else
    check 0 c_n2_back "n2 not back 30 s after its checks pass again"
    paths 3 30 "$WORK/c-up2.json" || die "c: n2 never came back"
fi

# --- d. a node joins under long-lived connections --------------------------------------------------
note "d. n3 stopped; $M_LONG long-lived connections over n1 n2; n3 joins"
paths 3 30 "$WORK/d-pre.json" || die "d: not 3 next hops before"
signal rvsd-3 TERM
paths 2 20 "$WORK/d-leave.json" || die "d: n3 did not leave"
node_gone 3 15 >/dev/null
long_start d "$M_LONG" "$S_JOIN"
sleep 1
read -r -a before < <(counters)
t0=$(date +%s.%N)
node_start 3
node_wait 3
paths 3 40 "$WORK/d-join.json" --since "$t0" || die "d: n3 did not join: $(cat "$WORK/d-join.json")"
fig d_join_s "$(seconds_of "$WORK/d-join.json")"
long_wait d
sleep 0.6
read -r -a after < <(counters)
long_figs d d
m1=$((after[1] - before[1])) m2=$((after[3] - before[3])) m3=${after[5]}
fig d_moved_to_n1 "$m1"
fig d_moved_to_n2 "$m2"
fig d_moved_to_n3 "$m3"
fig d_moved_fraction "$(python3 -c "print(round(($m1 + $m2 + $m3) / $M_LONG, 3))")"
fig d_moved_to_n3_fraction "$(python3 -c "print(round($m3 / $M_LONG, 3))")"
check "$( ((L_BROKEN == 0 && L_MOVED == 0)) && echo 1)" d_long_kept "$L_BROKEN of $M_LONG broke, $L_MOVED moved"
check "$( ((m3 > 0)) && echo 1)" d_n3_takes_flows "n3 took none of the flows"

# --- b (end). the same stop without sloppy_tcp ---------------------------------------------------
# reloaded N FROM : waits (10 s) for rvsd of nN to log the outcome of a SIGHUP after line FROM
# of its log; prints that line; fails unless the reload changed the one service.
reloaded() {
    local n=$1 from=$2 i line=""
    for ((i = 0; i < 100; i++)); do
        line=$(tail -n +"$((from + 1))" "${LOGS[$n]}" | grep -m1 -E "reloaded |reload refused" || true)
        [[ -n $line ]] && break
        sleep 0.1
    done
    echo "${line:-nothing logged within 10 s}"
    # Applied: "reloaded FILE: 0 added, 0 removed, 1 changed, 0 unchanged; ...".
    [[ $line == *"reloaded "*": 0 added, 0 removed, 1 changed, 0 unchanged"* ]]
}

note "b. without sloppy_tcp: every node reloaded (SIGHUP)"
for n in 1 2 3; do conf_rvsd "$n" 0; done
declare -A lines=()
for n in 1 2 3; do
    lines[$n]=$(wc -l <"${LOGS[$n]}")
    signal "rvsd-$n" HUP
done
reload_ok=1
for n in 1 2 3; do
    if ! line=$(reloaded "$n" "${lines[$n]}"); then
        check 0 b_nosloppy_reloaded "n$n's reload did not change the service: $line"
        reload_ok=0
    fi
done
if ((reload_ok)); then
    note "check ok: b_nosloppy_reloaded"
    failover b_nosloppy 2 TERM "$S_NOSLOPPY" 0
fi

# --- summary -------------------------------------------------------------------------------------
fig wall_s "$(elapsed)"
fig checks_failed "${#FAILED[@]}"
echo
python3 "$LAB_PY/cluster_report.py" summary "$FIGS" ${JSON_OUT:+--json "$JSON_OUT"}
if ((${#FAILED[@]})); then
    warn "failed checks: ${FAILED[*]}"
    exit 1
fi
note "all checks passed ($FORM form, $(elapsed) s)"
