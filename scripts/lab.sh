#!/usr/bin/env bash
# Network-namespace lab for rvs: client -- [lb: rvsd] -- bridge -- 3 servers.
#
#   NAME-client  cl0 198.51.100.10/24, default via 198.51.100.1 (rvsd port 0)
#       | veth
#   NAME-lb      lb0 (port 0, client side), lb1 (port 1, server side):
#                up, promisc, no IPv4 address, IPv6 disabled; rvsd attaches
#                to them with DPDK net_af_packet.
#       | veth
#   NAME-sw      bridge br0: sw-lb, sw-rs1, sw-rs2, sw-rs3 (STP off)
#       | veth x3
#   NAME-rs1..3  eth0 203.0.113.11-13/24, default via 203.0.113.1 (rvsd port 1)
#
# IPv6 is disabled in every namespace so that the kernel emits no RS/MLD/DAD
# frames (tests count frames). TX checksum offload is off on every veth so
# that AF_PACKET readers see complete checksums.
#
# Usage: scripts/lab.sh up|down|status [NAME]
#        scripts/lab.sh mac [NAME] IFACE     (MAC of IFACE in NAME-lb)
# NAME defaults to $RVS_LAB, else "rvs". State: /run/rvs-lab/NAME.state
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"

STATE_DIR=/run/rvs-lab
NETNS_DIR=/run/netns
ROLES=(client lb sw rs1 rs2 rs3)

usage() {
    cat <<EOF
usage: $RVS_PROG up|down|status [NAME]
       $RVS_PROG mac [NAME] IFACE   (MAC of IFACE inside NAME-lb)
NAME defaults to \$RVS_LAB, else "rvs".
EOF
}

ns_exists() {
    [[ -e $NETNS_DIR/$1 ]]
}

# Namespaces this lab may own: exactly NAME-<role>.
lab_names() {
    local r
    for r in "${ROLES[@]}"; do
        echo "$NAME-$r"
    done
}

is_lab_name() {
    local r
    for r in "${ROLES[@]}"; do
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

# --- up ----------------------------------------------------------------------

CREATED=()
STATE_WRITTEN=0

up_cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    if ((rc != 0)); then
        warn "'up $NAME' failed (exit $rc); removing what it made"
        for ((i = ${#CREATED[@]} - 1; i >= 0; i--)); do
            ip netns del "${CREATED[i]}" 2>/dev/null || warn "could not delete namespace ${CREATED[i]}"
        done
        if ((STATE_WRITTEN)); then rm -f -- "$STATE"; fi
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
        ip netns exec "$ns" sysctl -qw \
            net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
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

lab_up() {
    local existing=() ns r i C L S
    for ns in $(lab_names); do
        if ns_exists "$ns"; then existing+=("$ns"); fi
    done
    if ((${#existing[@]})); then
        die "lab '$NAME' already exists (${existing[*]}); run '$0 down $NAME' first"
    fi

    mkdir -p "$STATE_DIR"
    trap up_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    : >"$STATE"
    STATE_WRITTEN=1

    C=$NAME-client L=$NAME-lb S=$NAME-sw
    for r in "${ROLES[@]}"; do
        mkns "$NAME-$r"
    done

    mkveth "$C" cl0 "$L" lb0
    mkveth "$L" lb1 "$S" sw-lb
    for i in 1 2 3; do
        mkveth "$NAME-rs$i" eth0 "$S" "sw-rs$i"
    done

    # Appliance: two bare ports for rvsd (AF_PACKET), no kernel addresses.
    ip -n "$L" link set lb0 promisc on up
    ip -n "$L" link set lb1 promisc on up

    # Switch: plain learning bridge, no STP, no netfilter on bridged frames.
    for r in iptables ip6tables arptables; do
        if ip netns exec "$S" test -e "/proc/sys/net/bridge/bridge-nf-call-$r"; then
            ip netns exec "$S" sysctl -qw "net.bridge.bridge-nf-call-$r=0"
        fi
    done
    ip -n "$S" link add name br0 type bridge stp_state 0 forward_delay 0
    for ns in sw-lb sw-rs1 sw-rs2 sw-rs3; do
        ip -n "$S" link set "$ns" master br0 up
    done
    ip -n "$S" link set br0 up

    # Client.
    ip -n "$C" addr add 198.51.100.10/24 dev cl0
    ip -n "$C" link set cl0 up
    ip -n "$C" route add default via 198.51.100.1 dev cl0

    # Real servers.
    for i in 1 2 3; do
        ns=$NAME-rs$i
        ip -n "$ns" addr add "203.0.113.1$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route add default via 203.0.113.1 dev eth0
    done

    local mac0 mac1
    mac0=$(iface_mac "$L" lb0)
    mac1=$(iface_mac "$L" lb1)
    trap - EXIT INT TERM

    cat <<EOF
lab '$NAME' up: $(lab_names | tr '\n' ' ')
  rvsd:    run in netns $L; port 0 = lb0 (client side, $mac0), port 1 = lb1 (server side, $mac1)
           e.g. ip netns exec $L target/release/rvsd --config configs/lab.ron  (ports net_af_packet0,iface=lb0 and net_af_packet1,iface=lb1)
           rvsd owns 198.51.100.1 (port 0) and 203.0.113.1 (port 1); the kernel has no address on lb0/lb1
  client:  $C cl0 198.51.100.10/24, default via 198.51.100.1
  servers: $NAME-rs1/2/3 eth0 203.0.113.11/12/13 /24, default via 203.0.113.1 (bridge br0 in $S)
  state:   $STATE   teardown: $0 down $NAME
EOF
}

# --- down --------------------------------------------------------------------

lab_down() {
    local nss=() ns pids failed=0
    mapfile -t nss < <(lab_namespaces)
    if ((${#nss[@]} == 0)) && [[ ! -f $STATE ]]; then
        note "lab '$NAME' does not exist; nothing to do"
        return 0
    fi
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
        die "some namespaces of lab '$NAME' could not be removed; state kept in $STATE"
    fi
    rm -f -- "$STATE"
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
    done
    if ((present == 0)); then
        echo "lab '$NAME' is not up"
        return 1
    fi
    if ns_exists "$NAME-lb"; then
        echo "== rvsd ports in $NAME-lb: lb0 $(iface_mac "$NAME-lb" lb0 2>/dev/null || echo '?')" \
            "(client side), lb1 $(iface_mac "$NAME-lb" lb1 2>/dev/null || echo '?') (server side)"
    fi
    if ((present != ${#ROLES[@]})); then
        warn "lab '$NAME' is incomplete ($present of ${#ROLES[@]} namespaces); consider '$0 down $NAME'"
    fi
}

# --- main --------------------------------------------------------------------

cmd=${1:-}
IFACE=
case $cmd in
    up | down | status)
        (($# <= 2)) || { usage >&2; exit 2; }
        NAME=${2:-${RVS_LAB:-rvs}}
        ;;
    mac)
        case $# in
            2) NAME=${RVS_LAB:-rvs} IFACE=$2 ;;
            3) NAME=$2 IFACE=$3 ;;
            *) usage >&2; exit 2 ;;
        esac
        [[ $IFACE =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || die "bad interface name '$IFACE'"
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

require_root

case $cmd in
    up) lab_up ;;
    down) lab_down ;;
    status) lab_status ;;
    mac)
        ns_exists "$NAME-lb" || die "lab '$NAME' is not up (no namespace $NAME-lb)"
        iface_mac "$NAME-lb" "$IFACE" || exit 1
        ;;
esac
