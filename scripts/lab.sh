#!/usr/bin/env bash
# Network-namespace lab for rvs: client -- [lb: rvsd] -- servers, plus a router (gw) for the
# direct return path of the DR and TUN modes.
#
#   NAME-client  cl0 198.51.100.10/24, default via 198.51.100.1 (rvsd port 0); rp_filter 0
#       | veth (cl0 -- sw-cl)
#   NAME-sw      bridge brc (client network 198.51.100.0/24): sw-cl, sw-lbc, sw-gwc
#                bridge br0 (server network 203.0.113.0/24):  sw-lb, sw-gw, sw-rs1..3
#                (STP off, forward delay 0, multicast snooping off, no bridge netfilter)
#       | veth (lb0 -- sw-lbc)                      | veth (lb1 -- sw-lb)
#   NAME-lb      lb0 (port 0, client side), lb1 (port 1, server side): up, promisc, no IPv4
#                address; rvsd attaches with DPDK net_af_packet and owns 198.51.100.1 (lb0),
#                203.0.113.1 (lb1), the VIP 198.51.100.100 and the FULLNAT local addresses
#                203.0.113.201/.202 (lb1).
#   NAME-gw      gw0 198.51.100.254/24 (veth to sw-gwc), gw1 203.0.113.254/24 (veth to sw-gw);
#                ip_forward 1, rp_filter 0, no redirects, arp_ignore 1 / arp_announce 2.
#   NAME-rs1..3  eth0 203.0.113.11-13/24 (veth to sw-rsN); rp_filter 0. Per mode:
#                  nat, fullnat: default via 203.0.113.1 (rvsd); no VIP; arp_ignore/announce 0
#                  dr:           default via 203.0.113.254 (gw); VIP 198.51.100.100/32 on lo;
#                                arp_ignore 1, arp_announce 2 (all, eth0)
#                  tun:          as dr, plus a user-space IP-in-IP decapsulator
#                                (lab/tun_decap.py) feeding tun0 (rp_filter 0)
#
# Optional, for VRRP (`peers`): two more namespaces on the same bridges:
#   NAME-ka      ka0 198.51.100.3/24 (veth to sw-kac on brc), ka1 203.0.113.3/24 (veth to
#                sw-ka on br0); arp_ignore 1 / arp_announce 2; a keepalived peer runs here
#                (`keepalived NAME start CONF`) and floats the addresses rvsd floats.
#   NAME-lb2     lb2c (veth to sw-lb2c on brc), lb2s (veth to sw-lb2s on br0): a second
#                appliance's two bare ports for another rvsd (up, promisc, no IPv4 address).
#
# IPv6 is disabled in every namespace so that the kernel emits no RS/MLD/DAD frames (tests
# count frames); nothing in the lab sends a frame on its own. TX checksum offload is off on
# every veth so that AF_PACKET readers see complete checksums.
#
# Usage: scripts/lab.sh up|down|status [NAME]
#        scripts/lab.sh mac [NAME] IFACE                   (MAC of IFACE in NAME-lb)
#        scripts/lab.sh mode [NAME] nat|fullnat|dr|tun     (reconfigure the real servers)
#        scripts/lab.sh servers [NAME] start|stop|status   (HTTP :80 and UDP echo :9000)
#        scripts/lab.sh rs NAME rsN ACTION [VALUE]         (one real server's trouble:
#            http-stop, http-start, link-down, link-up, and what its GET /health answers:
#            health-ok (200 "ok"), health-status CODE, health-body TEXT (200 with TEXT))
#        scripts/lab.sh peers NAME                         (add NAME-ka and NAME-lb2)
#        scripts/lab.sh keepalived NAME start CONF [ka|lb2] (keepalived -P -n -l -D -G -f CONF
#            in NAME-ka, or in NAME-lb2 once the caller gave lb2c/lb2s addresses; own pid files)
#        scripts/lab.sh keepalived NAME stop|kill|status [ka|lb2]  (stop: SIGTERM, it
#            says goodbye; kill: SIGKILL to its VRRP process and its parent, as a crash, then
#            the addresses it held are taken off its interfaces, as a dead box holds none)
#        scripts/lab.sh ka-link|lb-link|lb2-link NAME down|up [client|servers|both]
#            (the switch's side of that appliance's link(s): a pulled cable; default client)
#        scripts/lab.sh sniff NAME start|stop|status  (scripts/lab/vrrp_sniff.py in NAME-sw on
#            the brc/br0 ports of rvsd, ka, lb2 and the client: every VRRP advert and ARP
#            frame they send, kernel-timestamped, one JSON line each, to NAME.d/vrrp-sniff.jsonl)
# NAME defaults to $RVS_LAB, else "rvs".
# State: /run/rvs-lab/NAME.state (the namespaces), /run/rvs-lab/NAME.d/ (mode, pid files and
# logs of the processes the lab started, tun-rsN.json of the decapsulators). `down` stops those
# processes by their recorded pid (checked against the start time) and removes everything.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"

STATE_DIR=/run/rvs-lab
NETNS_DIR=/run/netns
LAB_PY=$SCRIPT_DIR/lab
ROLES=(client lb sw gw rs1 rs2 rs3)
# Made by `peers`, not by `up`: the VRRP peer (keepalived) and a second appliance.
PEER_ROLES=(ka lb2)
MODES="nat fullnat dr tun"
VIP=198.51.100.100
LB_CLIENT_IP=198.51.100.1
LB_SERVER_IP=203.0.113.1
GW_CLIENT_IP=198.51.100.254
GW_SERVER_IP=203.0.113.254
KA_CLIENT_IP=198.51.100.3
KA_SERVER_IP=203.0.113.3

usage() {
    cat <<EOF
usage: $RVS_PROG up|down|status [NAME]
       $RVS_PROG mac [NAME] IFACE                  (MAC of IFACE inside NAME-lb)
       $RVS_PROG mode [NAME] nat|fullnat|dr|tun    (reconfigure the real servers for a mode)
       $RVS_PROG servers [NAME] start|stop|status  (HTTP :80 and UDP echo :9000 on each server)
       $RVS_PROG rs NAME rs1|rs2|rs3 http-stop|http-start|link-down|link-up|health-ok
       $RVS_PROG rs NAME rs1|rs2|rs3 health-status CODE|health-body TEXT  (its GET /health)
       $RVS_PROG peers NAME                        (add NAME-ka: keepalived, NAME-lb2: 2nd rvsd)
       $RVS_PROG keepalived NAME start CONF [ka|lb2]          (keepalived -P in that namespace)
       $RVS_PROG keepalived NAME stop|kill|status [ka|lb2]      (SIGTERM | crash: SIGKILL)
       $RVS_PROG ka-link|lb-link|lb2-link NAME down|up [client|servers|both]  (pull a cable)
       $RVS_PROG sniff NAME start|stop|status      (VRRP adverts and ARP on brc/br0, as JSON lines)
NAME defaults to \$RVS_LAB, else "rvs". State in $STATE_DIR/NAME.state and $STATE_DIR/NAME.d/.
EOF
}

ns_exists() {
    [[ -e $NETNS_DIR/$1 ]]
}

# Namespaces this lab may own: exactly NAME-<role>.
lab_names() {
    local r
    for r in "${ROLES[@]}" "${PEER_ROLES[@]}"; do
        echo "$NAME-$r"
    done
}

is_lab_name() {
    local r
    for r in "${ROLES[@]}" "${PEER_ROLES[@]}"; do
        [[ $1 == "$NAME-$r" ]] && return 0
    done
    return 1
}

# Namespaces of this lab: those listed in the state file if it exists,
# otherwise those of the exact names NAME-<role> that exist.
lab_namespaces() {
    local ns
    if [[ -f $STATE ]]; then
        while IFS= read -r ns || [[ -n $ns ]]; do
            [[ -n $ns ]] || continue
            if is_lab_name "$ns"; then
                echo "$ns"
            else
                warn "ignoring unexpected line '$ns' in $STATE"
            fi
        done <"$STATE"
    else
        for ns in $(lab_names); do
            if ns_exists "$ns"; then echo "$ns"; fi
        done
    fi
}

iface_mac() { # NS IFACE
    local mac
    mac=$(ip -n "$1" -br link show dev "$2" 2>/dev/null | awk '{print $3}') || true
    if [[ -z $mac ]]; then
        warn "no interface '$2' in namespace '$1'"
        return 1
    fi
    echo "$mac"
}

# nsctl NS KEY=VALUE... : sysctl inside a namespace.
nsctl() {
    local ns=$1
    shift
    ip netns exec "$ns" sysctl -qw "$@" >/dev/null
}

require_lab() {
    local r
    for r in "${ROLES[@]}"; do
        ns_exists "$NAME-$r" || die "lab '$NAME' is not up (no namespace $NAME-$r); run '$0 up $NAME'"
    done
    mkdir -p "$RUN"
}

# --- processes started by the lab ---------------------------------------------
# Each is recorded as RUN/KEY.proc: "PID STARTTIME NS KEY" (STARTTIME: field 22 of
# /proc/PID/stat). A pid is only ever signalled if its start time still matches.

proc_starttime() { # PID -> start time, fails if gone or a zombie
    local stat rest f=()
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    rest=${stat##*) }
    read -r -a f <<<"$rest"
    ((${#f[@]} > 19)) || return 1
    [[ ${f[0]} != Z && ${f[0]} != X ]] || return 1
    echo "${f[19]}"
}

proc_is() { # PID STARTTIME
    local cur
    [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] || return 1
    cur=$(proc_starttime "$1") || return 1
    [[ $cur == "$2" ]]
}

proc_alive() { # KEY
    local pid st rest
    [[ -f $RUN/$1.proc ]] || return 1
    read -r pid st rest <"$RUN/$1.proc" || true
    proc_is "${pid:-}" "${st:-}"
}

proc_pid() { # KEY
    local pid rest
    read -r pid rest <"$RUN/$1.proc" 2>/dev/null || true
    echo "${pid:-?}"
}

# start_proc NS KEY SCRIPT ARGS... : run python3 SCRIPT ARGS --pidfile RUN/KEY.pid in NS,
# detached (own session, stdin /dev/null, output to RUN/KEY.log); wait until the program has
# written its pid file (it does so once ready). No-op if KEY is already running.
start_proc() {
    local ns=$1 key=$2
    shift 2
    local pidf=$RUN/$key.pid procf=$RUN/$key.proc log=$RUN/$key.log pid="" st launcher i
    if proc_alive "$key"; then return 0; fi
    rm -f -- "$pidf" "$procf"
    setsid ip netns exec "$ns" python3 "$@" --pidfile "$pidf" </dev/null >>"$log" 2>&1 &
    launcher=$!
    for ((i = 0; i < 100; i++)); do # up to 10 s
        if [[ -s $pidf ]]; then break; fi
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -s $pidf ]]; then pid=$(<"$pidf"); fi
    if [[ ! $pid =~ ^[0-9]+$ ]] || ! st=$(proc_starttime "$pid"); then
        kill -TERM "$launcher" 2>/dev/null || true
        die "could not start $key in $ns: $(tail -n 5 "$log" 2>/dev/null | tr '\n' ' ')"
    fi
    echo "$pid $st $ns $key" >"$procf"
}

# stop_procs KEY... : SIGTERM to those still running, up to 5 s, then SIGKILL, up to 2 s more;
# forget them. Fails if one survives.
stop_procs() {
    local key pid st rest i live=() left=() failed=0
    for key in "$@"; do
        [[ -f $RUN/$key.proc ]] || continue
        read -r pid st rest <"$RUN/$key.proc" || true
        if proc_is "${pid:-}" "${st:-}"; then
            kill -TERM "$pid" 2>/dev/null || true
            live+=("$key $pid $st")
        fi
    done
    for ((i = 0; i < 70 && ${#live[@]}; i++)); do
        if ((i == 50)); then
            for key in "${live[@]}"; do
                read -r key pid st <<<"$key"
                warn "$key (pid $pid) did not stop on SIGTERM; sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            done
        fi
        sleep 0.1
        left=()
        for key in "${live[@]}"; do
            read -r _ pid st <<<"$key"
            if proc_is "$pid" "$st"; then left+=("$key"); fi
        done
        live=("${left[@]}")
    done
    for key in "${live[@]}"; do
        read -r key pid st <<<"$key"
        warn "could not stop $key (pid $pid)"
        failed=1
    done
    for key in "$@"; do
        if ((failed)) && [[ " ${live[*]} " == *" $key "* ]]; then continue; fi
        rm -f -- "$RUN/$key.proc" "$RUN/$key.pid" "$RUN/$key.pid.tmp"
    done
    return "$failed"
}

stop_all_procs() {
    local f keys=()
    [[ -d $RUN ]] || return 0
    for f in "$RUN"/*.proc; do
        [[ -e $f ]] || continue
        keys+=("$(basename -- "$f" .proc)")
    done
    ((${#keys[@]} == 0)) || stop_procs "${keys[@]}"
}

# --- modes ---------------------------------------------------------------------

has_vip() { # NS
    [[ -n $(ip -n "$1" -4 -o addr show dev lo to "$VIP/32" 2>/dev/null) ]]
}

apply_mode() { # MODE
    local mode=$1 i ns via ign ann
    case $mode in
        nat | fullnat) via=$LB_SERVER_IP ign=0 ann=0 ;;
        dr | tun) via=$GW_SERVER_IP ign=1 ann=2 ;;
        *) die "unknown mode '$mode' (one of: $MODES)" ;;
    esac
    have python3 || [[ $mode != tun ]] || die "python3 is needed for the tun mode's decapsulators"
    if [[ $mode != tun ]]; then stop_procs decap-rs1 decap-rs2 decap-rs3; fi
    for i in 1 2 3; do
        ns=$NAME-rs$i
        ip -n "$ns" route replace default via "$via" dev eth0
        case $mode in
            dr | tun) has_vip "$ns" || ip -n "$ns" addr add "$VIP/32" dev lo ;;
            *) if has_vip "$ns"; then ip -n "$ns" addr del "$VIP/32" dev lo; fi ;;
        esac
        nsctl "$ns" "net.ipv4.conf.all.arp_ignore=$ign" "net.ipv4.conf.eth0.arp_ignore=$ign" \
            "net.ipv4.conf.all.arp_announce=$ann" "net.ipv4.conf.eth0.arp_announce=$ann"
        if [[ $mode == tun ]]; then
            start_proc "$ns" "decap-rs$i" "$LAB_PY/tun_decap.py" "$RUN/tun-rs$i.json" --dev tun0
            nsctl "$ns" net.ipv4.conf.tun0.rp_filter=0
        fi
    done
    echo "$mode" >"$RUN/mode"
}

current_mode() {
    if [[ -f $RUN/mode ]]; then cat -- "$RUN/mode"; else echo "nat"; fi
}

# --- servers ---------------------------------------------------------------------

servers_start() {
    local i
    have python3 || die "python3 is needed for the servers"
    for i in 1 2 3; do
        start_proc "$NAME-rs$i" "http-rs$i" "$LAB_PY/http_server.py" "rs$i" --port 80 \
            --health-file "$RUN/health-rs$i"
        start_proc "$NAME-rs$i" "udp-rs$i" "$LAB_PY/udp_echo.py" "rs$i" --port 9000
    done
}

# rs_action RSN ACTION [VALUE]: one real server's trouble, for the health-check labs.
rs_action() {
    local rs=$1 action=$2 value=${3:-} i=${1#rs}
    case $action in
        http-stop) stop_procs "http-$rs" ;;
        http-start)
            start_proc "$NAME-$rs" "http-$rs" "$LAB_PY/http_server.py" "$rs" --port 80 \
                --health-file "$RUN/health-$rs"
            ;;
        # The switch's side: the server's eth0 loses its carrier but keeps its routes, as
        # with a pulled cable.
        link-down) ip -n "$NAME-sw" link set "sw-$rs" down ;;
        link-up) ip -n "$NAME-sw" link set "sw-$rs" up ;;
        health-ok) rm -f -- "$RUN/health-$rs" ;;
        health-status)
            [[ $value =~ ^[1-5][0-9][0-9]$ ]] || die "health-status needs an HTTP status (got '$value')"
            echo "$value" >"$RUN/health-$rs.tmp" && mv -f -- "$RUN/health-$rs.tmp" "$RUN/health-$rs"
            ;;
        health-body)
            [[ -n $value ]] || die "health-body needs a body"
            printf '200 %s\n' "$value" >"$RUN/health-$rs.tmp" && mv -f -- "$RUN/health-$rs.tmp" "$RUN/health-$rs"
            ;;
        *) die "bad rs action '$action'" ;;
    esac
    : "$i"
}

servers_stop() {
    stop_procs http-rs1 udp-rs1 http-rs2 udp-rs2 http-rs3 udp-rs3
}

procs_status() {
    local f key
    [[ -d $RUN ]] || return 0
    for f in "$RUN"/*.proc; do
        [[ -e $f ]] || continue
        key=$(basename -- "$f" .proc)
        if proc_alive "$key"; then
            echo "  $key: running, pid $(proc_pid "$key") (log $RUN/$key.log)"
        else
            echo "  $key: NOT running (was pid $(proc_pid "$key"); log $RUN/$key.log)"
        fi
    done
}

# --- up ----------------------------------------------------------------------

CREATED=()
STATE_WRITTEN=0

up_cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    if ((rc != 0)); then
        warn "'up $NAME' failed (exit $rc); removing what it made"
        stop_all_procs || true
        for ((i = ${#CREATED[@]} - 1; i >= 0; i--)); do
            ip netns del "${CREATED[i]}" 2>/dev/null || warn "could not delete namespace ${CREATED[i]}"
        done
        if ((STATE_WRITTEN)); then rm -f -- "$STATE"; fi
        if [[ -d $RUN ]]; then rm -rf -- "$RUN"; fi
    fi
    exit "$rc"
}

mkns() { # NS
    local ns=$1
    ip netns add "$ns"
    CREATED+=("$ns")
    echo "$ns" >>"$STATE"
    STATE_WRITTEN=1
    # No IPv6 at all: no router solicitations, MLD reports or DAD probes.
    if [[ -d /proc/sys/net/ipv6 ]]; then
        nsctl "$ns" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    fi
    ip -n "$ns" link set lo up
}

# mkveth NS_A IF_A NS_B IF_B: create a veth pair directly in both namespaces.
mkveth() {
    ip link add name "$2" netns "$1" type veth peer name "$4" netns "$3"
    if have ethtool; then
        ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
        ip netns exec "$3" ethtool -K "$4" tx off >/dev/null
    fi
}

# mkbridge NS BR PORT... : a plain learning bridge, no STP, no multicast snooping.
mkbridge() {
    local ns=$1 br=$2 p
    shift 2
    ip -n "$ns" link add name "$br" type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    for p in "$@"; do
        ip -n "$ns" link set "$p" master "$br" up
    done
    ip -n "$ns" link set "$br" up
}

# rp_filter off: replies from the VIP come back from the gw's MAC (client), and the servers
# receive the client's address on tun0 (TUN mode). Namespaces inherit the host's IPv4 sysctls.
no_rp_filter() { # NS IFACE...
    local ns=$1 i args=(net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0)
    shift
    for i in "$@"; do args+=("net.ipv4.conf.$i.rp_filter=0"); done
    nsctl "$ns" "${args[@]}"
}

lab_up() {
    local existing=() ns r i C L S G
    for ns in $(lab_names); do
        if ns_exists "$ns"; then existing+=("$ns"); fi
    done
    if ((${#existing[@]})); then
        die "lab '$NAME' already exists (${existing[*]}); run '$0 down $NAME' first"
    fi
    if [[ -e $RUN ]]; then
        die "state of an earlier lab '$NAME' remains in $RUN; run '$0 down $NAME' first"
    fi

    mkdir -p "$STATE_DIR"
    trap up_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    : >"$STATE"
    STATE_WRITTEN=1
    mkdir -p "$RUN"

    C=$NAME-client L=$NAME-lb S=$NAME-sw G=$NAME-gw
    for r in "${ROLES[@]}"; do
        mkns "$NAME-$r"
    done

    mkveth "$C" cl0 "$S" sw-cl
    mkveth "$L" lb0 "$S" sw-lbc
    mkveth "$G" gw0 "$S" sw-gwc
    mkveth "$L" lb1 "$S" sw-lb
    mkveth "$G" gw1 "$S" sw-gw
    for i in 1 2 3; do
        mkveth "$NAME-rs$i" eth0 "$S" "sw-rs$i"
    done

    # Appliance: two bare ports for rvsd (AF_PACKET), no kernel addresses.
    ip -n "$L" link set lb0 promisc on up
    ip -n "$L" link set lb1 promisc on up

    # Switch: two plain learning bridges, no STP, no netfilter on bridged frames.
    for r in iptables ip6tables arptables; do
        if ip netns exec "$S" test -e "/proc/sys/net/bridge/bridge-nf-call-$r"; then
            nsctl "$S" "net.bridge.bridge-nf-call-$r=0"
        fi
    done
    mkbridge "$S" brc sw-cl sw-lbc sw-gwc
    mkbridge "$S" br0 sw-lb sw-gw sw-rs1 sw-rs2 sw-rs3

    # Client.
    no_rp_filter "$C" cl0
    ip -n "$C" addr add 198.51.100.10/24 dev cl0
    ip -n "$C" link set cl0 up
    ip -n "$C" route add default via "$LB_CLIENT_IP" dev cl0

    # Router for the direct return path (DR, TUN). It answers ARP only for its own address
    # on each leg and never for the VIP; it sends nothing unless it forwards.
    no_rp_filter "$G" gw0 gw1
    nsctl "$G" net.ipv4.ip_forward=1 \
        net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
        net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
    ip -n "$G" addr add "$GW_CLIENT_IP/24" dev gw0
    ip -n "$G" addr add "$GW_SERVER_IP/24" dev gw1
    ip -n "$G" link set gw0 up
    ip -n "$G" link set gw1 up

    # Real servers (NAT mode to begin with).
    for i in 1 2 3; do
        ns=$NAME-rs$i
        no_rp_filter "$ns" eth0 lo
        ip -n "$ns" addr add "203.0.113.1$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route add default via "$LB_SERVER_IP" dev eth0
    done
    apply_mode nat

    local mac0 mac1
    mac0=$(iface_mac "$L" lb0)
    mac1=$(iface_mac "$L" lb1)
    trap - EXIT INT TERM

    cat <<EOF
lab '$NAME' up: $(lab_names | tr '\n' ' ')
  rvsd:    run in netns $L; port 0 = lb0 (client side, $mac0), port 1 = lb1 (server side, $mac1)
           e.g. ip netns exec $L target/release/rvsd --config configs/lab.ron  (ports net_af_packet0,iface=lb0 and net_af_packet1,iface=lb1)
           rvsd owns 198.51.100.1 (port 0) and 203.0.113.1 (port 1); the kernel has no address on lb0/lb1
  client:  $C cl0 198.51.100.10/24, default via $LB_CLIENT_IP (bridge brc in $S)
  gw:      $G gw0 $GW_CLIENT_IP/24, gw1 $GW_SERVER_IP/24, forwarding (return path of dr/tun)
  servers: $NAME-rs1/2/3 eth0 203.0.113.11/12/13 /24, default via $LB_SERVER_IP (bridge br0 in $S)
  mode:    nat   ($0 mode $NAME nat|fullnat|dr|tun; servers: $0 servers $NAME start)
  state:   $STATE, $RUN/   teardown: $0 down $NAME
EOF
}

# --- VRRP peers: keepalived (NAME-ka) and a second appliance (NAME-lb2) ---------

# Bridge ports of each appliance in NAME-sw: client side, server side.
side_ports() { # WHO(lb|ka|lb2) SIDE(client|servers|both)
    local c s
    case $1 in
        lb) c=sw-lbc s=sw-lb ;;
        ka) c=sw-kac s=sw-ka ;;
        lb2) c=sw-lb2c s=sw-lb2s ;;
        *) die "bad appliance '$1' (lb, ka or lb2)" ;;
    esac
    case $2 in
        client) echo "$c" ;;
        servers) echo "$s" ;;
        both) echo "$c $s" ;;
        *) die "bad side '$2' (client, servers or both)" ;;
    esac
}

peers_cleanup() {
    local rc=$? i tmp
    trap - EXIT INT TERM
    if ((rc != 0)); then
        warn "'peers $NAME' failed (exit $rc); removing what it made"
        for ((i = ${#CREATED[@]} - 1; i >= 0; i--)); do
            ip netns del "${CREATED[i]}" 2>/dev/null || warn "could not delete namespace ${CREATED[i]}"
            if [[ -f $STATE ]]; then
                tmp=$(grep -vxF -- "${CREATED[i]}" "$STATE" || true)
                printf '%s\n' "$tmp" | sed '/^$/d' >"$STATE"
            fi
        done
    fi
    exit "$rc"
}

peers_up() {
    local K=$NAME-ka B=$NAME-lb2 S=$NAME-sw ns
    for ns in "$K" "$B"; do
        if ns_exists "$ns"; then die "namespace $ns already exists (peers of lab '$NAME' are up)"; fi
    done
    trap peers_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkns "$K"
    mkns "$B"
    mkveth "$K" ka0 "$S" sw-kac
    mkveth "$K" ka1 "$S" sw-ka
    mkveth "$B" lb2c "$S" sw-lb2c
    mkveth "$B" lb2s "$S" sw-lb2s
    ip -n "$S" link set sw-kac master brc up
    ip -n "$S" link set sw-lb2c master brc up
    ip -n "$S" link set sw-ka master br0 up
    ip -n "$S" link set sw-lb2s master br0 up

    # keepalived's side: a plain host with one address per network; the addresses it floats
    # come and go as keepalived adds and removes them. It answers ARP only for the addresses
    # of the interface asked on.
    no_rp_filter "$K" ka0 ka1
    nsctl "$K" net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
    ip -n "$K" addr add "$KA_CLIENT_IP/24" dev ka0
    ip -n "$K" addr add "$KA_SERVER_IP/24" dev ka1
    ip -n "$K" link set ka0 up
    ip -n "$K" link set ka1 up

    # The second appliance: two bare ports for another rvsd, as NAME-lb.
    ip -n "$B" link set lb2c promisc on up
    ip -n "$B" link set lb2s promisc on up
    trap - EXIT INT TERM
    cat <<END
lab '$NAME' peers up: $K $B
  keepalived: $K ka0 $KA_CLIENT_IP/24 (brc, $(iface_mac "$K" ka0)), ka1 $KA_SERVER_IP/24 (br0, $(iface_mac "$K" ka1))
              $0 keepalived $NAME start CONF | stop | kill | status
  2nd rvsd:   $B lb2c (brc, $(iface_mac "$B" lb2c)), lb2s (br0, $(iface_mac "$B" lb2s)): no kernel address
END
}

# keepalived runs with -n (no daemon), so the process the lab records is its parent, which
# forks the VRRP process (-P: VRRP only). Both write their pid files (-p, -r), distinct per
# lab and namespace, so that keepalived's "already running" check never sees another's.
ka_key() { echo "keepalived-$1"; }

ka_parent_of() { # PID -> its parent's pid
    awk '/^PPid:/ {print $2}' "/proc/$1/status" 2>/dev/null
}

# The VRRP process of a recorded keepalived, if it is the recorded parent's child.
ka_vrrp_pid() { # KEY
    local key=$1 pid vpid rest
    read -r pid rest <"$RUN/$key.proc" 2>/dev/null || return 1
    vpid=$(cat "$RUN/$key-vrrp.pid" 2>/dev/null) || return 1
    [[ $vpid =~ ^[0-9]+$ ]] || return 1
    [[ $(ka_parent_of "$vpid") == "$pid" ]] || return 1
    echo "$vpid"
}

keepalived_start() { # CONF ROLE
    local conf=$1 role=$2 ns=$NAME-$2 key pidf vpidf log pid="" st launcher i
    key=$(ka_key "$role")
    have keepalived || die "keepalived is not installed (apt-get install -y keepalived)"
    ns_exists "$ns" || die "no namespace $ns; run '$0 peers $NAME' first"
    [[ -f $conf && -r $conf ]] || die "cannot read keepalived configuration '$conf'"
    conf=$(realpath -- "$conf")
    if proc_alive "$key"; then die "$key is already running (pid $(proc_pid "$key"))"; fi
    pidf=$RUN/$key.pid vpidf=$RUN/$key-vrrp.pid log=$RUN/$key.log
    rm -f -- "$pidf" "$vpidf" "$RUN/$key.proc"
    # What the namespace holds before: `kill` takes off what keepalived added.
    ip -n "$ns" -4 -o addr show | awk '{print $2, $4}' >"$RUN/$key.addrs"
    echo "== $(date -u +%Y-%m-%dT%H:%M:%S.%NZ) start: keepalived -f $conf in $ns" >>"$log"
    setsid ip netns exec "$ns" keepalived -P -n -l -D -G -f "$conf" -p "$pidf" -r "$vpidf" \
        </dev/null >>"$log" 2>&1 &
    launcher=$!
    for ((i = 0; i < 100; i++)); do # up to 10 s for both pid files
        if [[ -s $pidf && -s $vpidf ]]; then break; fi
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -s $pidf ]]; then pid=$(<"$pidf"); fi
    if [[ ! $pid =~ ^[0-9]+$ ]] || ! st=$(proc_starttime "$pid") || [[ ! -s $vpidf ]]; then
        kill -TERM "$launcher" 2>/dev/null || true
        die "could not start keepalived in $ns: $(tail -n 5 "$log" 2>/dev/null | tr '\n' ' ')"
    fi
    echo "$pid $st $ns $key" >"$RUN/$key.proc"
    ka_vrrp_pid "$key" >/dev/null || warn "$key: its VRRP process is not (yet) its child"
}

keepalived_stop() { # ROLE
    local key
    key=$(ka_key "$1")
    stop_procs "$key"
    rm -f -- "$RUN/$key-vrrp.pid" "$RUN/$key.addrs"
}

# A crash: SIGKILL to the VRRP process (the parent is stopped first so that it cannot start
# another), then to the parent. A dead box holds no address: what keepalived added to the
# namespace's interfaces (anything not there at start) is taken off afterwards.
keepalived_kill() { # ROLE
    local role=$1 ns=$NAME-$1 key pid st rest vpid="" i dev cidr
    key=$(ka_key "$role")
    proc_alive "$key" || die "$key is not running"
    read -r pid st rest <"$RUN/$key.proc"
    vpid=$(ka_vrrp_pid "$key") || vpid=""
    kill -STOP "$pid" 2>/dev/null || true
    if [[ -n $vpid ]]; then kill -KILL "$vpid" 2>/dev/null || true; fi
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        if ! proc_is "$pid" "$st" && { [[ -z $vpid ]] || ! proc_starttime "$vpid" >/dev/null; }; then
            break
        fi
        sleep 0.1
    done
    if proc_is "$pid" "$st"; then die "$key (pid $pid) survived SIGKILL"; fi
    rm -f -- "$RUN/$key.proc" "$RUN/$key.pid" "$RUN/$key-vrrp.pid"
    echo "== $(date -u +%Y-%m-%dT%H:%M:%S.%NZ) killed (SIGKILL): pid $pid, VRRP pid ${vpid:-?}" \
        >>"$RUN/$key.log"
    if [[ -f $RUN/$key.addrs ]]; then
        while read -r dev cidr; do
            [[ -n $cidr ]] || continue
            if ! grep -qxF -- "$dev $cidr" "$RUN/$key.addrs"; then
                ip -n "$ns" addr del "$cidr" dev "$dev" 2>/dev/null || true
            fi
        done < <(ip -n "$ns" -4 -o addr show | awk '{print $2, $4}')
        rm -f -- "$RUN/$key.addrs"
    fi
}

keepalived_status() { # ROLE
    local key vpid
    key=$(ka_key "$1")
    if proc_alive "$key"; then
        vpid=$(ka_vrrp_pid "$key") || vpid="?"
        echo "$key: running, pid $(proc_pid "$key"), VRRP pid $vpid (log $RUN/$key.log)"
        grep -E 'Entering|entering' "$RUN/$key.log" 2>/dev/null | tail -n 4 | sed 's/^/  /' || true
    else
        echo "$key: not running"
        return 1
    fi
}

link_pull() { # WHO down|up SIDE
    local p
    for p in $(side_ports "$1" "$3"); do
        ip -n "$NAME-sw" link set "$p" "$2"
    done
}

# The VRRP sniffer: in NAME-sw, on each appliance's bridge ports (and the client's), what
# each sends (frames the bridge receives), labelled by the sender's interface.
SNIFF_PORTS="sw-cl=cl0 sw-lbc=lb0 sw-lb=lb1 sw-kac=ka0 sw-ka=ka1 sw-lb2c=lb2c sw-lb2s=lb2s"

sniff_start() {
    local spec port args=()
    have python3 || die "python3 is needed for the sniffer"
    if proc_alive vrrp-sniff; then die "the sniffer is already running (pid $(proc_pid vrrp-sniff))"; fi
    for spec in $SNIFF_PORTS; do
        port=${spec%%=*}
        if ip -n "$NAME-sw" link show dev "$port" >/dev/null 2>&1; then args+=(--iface "$spec"); fi
    done
    : >"$RUN/vrrp-sniff.jsonl"
    start_proc "$NAME-sw" vrrp-sniff "$LAB_PY/vrrp_sniff.py" --out "$RUN/vrrp-sniff.jsonl" "${args[@]}"
}

# --- down --------------------------------------------------------------------

lab_down() {
    local nss=() ns pids failed=0
    mapfile -t nss < <(lab_namespaces)
    if ((${#nss[@]} == 0)) && [[ ! -f $STATE && ! -d $RUN ]]; then
        note "lab '$NAME' does not exist; nothing to do"
        return 0
    fi
    stop_all_procs || failed=1
    for ns in "${nss[@]}"; do
        ns_exists "$ns" || continue
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ') || true
        if [[ -n ${pids// /} ]]; then
            warn "processes still running in $ns (pids: ${pids% }); it lives on until they exit"
        fi
        if ! ip netns del "$ns"; then
            warn "could not delete namespace $ns"
            failed=1
        fi
    done
    if ((failed)); then
        die "some processes or namespaces of lab '$NAME' could not be removed; state kept in $STATE and $RUN"
    fi
    rm -f -- "$STATE"
    rm -rf -- "$RUN"
    note "lab '$NAME' down (${#nss[@]} namespaces removed)"
}

# --- status ------------------------------------------------------------------

lab_status() {
    local nss=() ns
    mapfile -t nss < <(lab_namespaces)
    local present=0
    for ns in "${nss[@]}"; do
        ns_exists "$ns" || continue
        present=$((present + 1))
        echo "== $ns"
        ip -n "$ns" -br addr
        case $ns in
            "$NAME"-rs[123] | "$NAME"-client) ip -n "$ns" route show default | sed 's/^/   route: /' ;;
        esac
    done
    if ((present == 0)); then
        echo "lab '$NAME' is not up"
        return 1
    fi
    if ns_exists "$NAME-lb"; then
        echo "== rvsd ports in $NAME-lb: lb0 $(iface_mac "$NAME-lb" lb0 2>/dev/null || echo '?')" \
            "(client side), lb1 $(iface_mac "$NAME-lb" lb1 2>/dev/null || echo '?') (server side)"
    fi
    echo "== mode: $(current_mode)"
    echo "== processes ($RUN):"
    procs_status
    for ns in "${PEER_ROLES[@]}"; do
        if ns_exists "$NAME-$ns"; then present=$((present - 1)); fi
    done
    if ((present != ${#ROLES[@]})); then
        warn "lab '$NAME' is incomplete ($present of ${#ROLES[@]} namespaces); consider '$0 down $NAME'"
    fi
}

# --- main --------------------------------------------------------------------

cmd=${1:-}
IFACE="" ARG=""
case $cmd in
    up | down | status)
        (($# <= 2)) || { usage >&2; exit 2; }
        NAME=${2:-${RVS_LAB:-rvs}}
        ;;
    mac | mode | servers)
        case $# in
            2) NAME=${RVS_LAB:-rvs} ARG=$2 ;;
            3) NAME=$2 ARG=$3 ;;
            *) usage >&2; exit 2 ;;
        esac
        case $cmd in
            mac)
                IFACE=$ARG
                [[ $IFACE =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || die "bad interface name '$IFACE'"
                ;;
            mode) [[ " $MODES " == *" $ARG "* ]] || die "bad mode '$ARG' (one of: $MODES)" ;;
            servers) [[ $ARG =~ ^(start|stop|status)$ ]] || die "bad servers action '$ARG' (start|stop|status)" ;;
        esac
        ;;
    rs)
        (($# == 4 || $# == 5)) || { usage >&2; exit 2; }
        NAME=$2
        [[ $3 =~ ^rs[123]$ ]] || die "bad real server '$3' (rs1, rs2 or rs3)"
        ;;
    peers)
        (($# == 2)) || { usage >&2; exit 2; }
        NAME=$2
        ;;
    keepalived)
        (($# >= 3 && $# <= 5)) || { usage >&2; exit 2; }
        NAME=$2 ARG=$3
        case $ARG in
            start) (($# >= 4)) || die "keepalived start needs a configuration file" ;;
            stop | kill | status) (($# <= 4)) || { usage >&2; exit 2; } ;;
            *) die "bad keepalived action '$ARG' (start, stop, kill or status)" ;;
        esac
        ;;
    ka-link | lb-link | lb2-link)
        (($# == 3 || $# == 4)) || { usage >&2; exit 2; }
        NAME=$2 ARG=$3
        [[ $ARG =~ ^(down|up)$ ]] || die "bad link action '$ARG' (down or up)"
        [[ ${4:-client} =~ ^(client|servers|both)$ ]] || die "bad side '${4:-}' (client, servers or both)"
        ;;
    sniff)
        (($# == 3)) || { usage >&2; exit 2; }
        NAME=$2 ARG=$3
        [[ $ARG =~ ^(start|stop|status)$ ]] || die "bad sniff action '$ARG' (start, stop or status)"
        ;;
    -h | --help | help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 2
        ;;
esac

[[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$ ]] ||
    die "bad lab name '$NAME' (letters, digits, '_' and '-', at most 32 chars)"
STATE=$STATE_DIR/$NAME.state
RUN=$STATE_DIR/$NAME.d

require_root

case $cmd in
    up) lab_up ;;
    down) lab_down ;;
    status) lab_status ;;
    mac)
        ns_exists "$NAME-lb" || die "lab '$NAME' is not up (no namespace $NAME-lb)"
        iface_mac "$NAME-lb" "$IFACE" || exit 1
        ;;
    mode)
        require_lab
        apply_mode "$ARG"
        note "lab '$NAME': mode $ARG"
        ;;
    servers)
        require_lab
        case $ARG in
            start)
                servers_start
                note "lab '$NAME': servers running (HTTP :80, UDP echo :9000 on rs1..3)"
                ;;
            stop) servers_stop ;;
            status) procs_status ;;
        esac
        ;;
    rs)
        require_lab
        rs_action "$3" "$4" "${5:-}"
        ;;
    peers)
        require_lab
        peers_up
        ;;
    keepalived)
        require_lab
        if [[ $ARG == start ]]; then ROLE=${5:-ka}; else ROLE=${4:-ka}; fi
        [[ $ROLE =~ ^(ka|lb2)$ ]] || die "bad namespace '$ROLE' for keepalived (ka or lb2)"
        case $ARG in
            start) keepalived_start "$4" "$ROLE" ;;
            stop) keepalived_stop "$ROLE" ;;
            kill) keepalived_kill "$ROLE" ;;
            status) keepalived_status "$ROLE" ;;
        esac
        ;;
    ka-link | lb-link | lb2-link)
        require_lab
        WHO=${cmd%-link}
        if [[ $WHO != lb ]] && ! ns_exists "$NAME-$WHO"; then
            die "no namespace $NAME-$WHO; run '$0 peers $NAME' first"
        fi
        link_pull "$WHO" "$ARG" "${4:-client}"
        ;;
    sniff)
        require_lab
        case $ARG in
            start) sniff_start ;;
            stop) stop_procs vrrp-sniff ;;
            status)
                if proc_alive vrrp-sniff; then
                    echo "vrrp-sniff: running, pid $(proc_pid vrrp-sniff) ($RUN/vrrp-sniff.jsonl)"
                else
                    echo "vrrp-sniff: not running"
                fi
                ;;
        esac
        ;;
esac
