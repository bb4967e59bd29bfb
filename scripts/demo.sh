#!/usr/bin/env bash
# The rvs demo, from a fresh machine: set-up, release build, the namespace lab with three real
# HTTP servers, rvsd on DPDK load-balancing a NAT service (configs/lab-nat.ron) and answering
# ping and ARP, its counters, a clean stop. Leaves nothing behind (lab, processes, DPDK
# files), also when interrupted.
#
# Usage: scripts/demo.sh   (as root)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"
cd "$ROOT"
require_root

LAB=rvsdemo
WORK=$(mktemp -d /tmp/rvs-demo.XXXXXX)
RVSD_PID=

# shellcheck disable=SC2317  # called by the trap
cleanup() {
    if [[ -n $RVSD_PID ]] && kill -0 "$RVSD_PID" 2>/dev/null; then
        kill -TERM "$RVSD_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$RVSD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$RVSD_PID" 2>/dev/null || true
    fi
    "$SCRIPT_DIR/lab.sh" down "$LAB" >/dev/null 2>&1 || true
    rm -rf -- "$WORK" /var/run/dpdk/rvs-demo
}
trap cleanup EXIT INT TERM

show() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

"$SCRIPT_DIR/setup.sh"
echo "building rvsd (release: DPDK linked statically)..."
cargo build --release -p control --quiet
"$SCRIPT_DIR/lab.sh" up "$LAB"
"$SCRIPT_DIR/lab.sh" servers "$LAB" start
"$SCRIPT_DIR/lab.sh" mode "$LAB" nat

worker_core=$(($(nproc) - 1))
sed -e 's/"rvs-lab"/"rvs-demo"/' \
    -e "s#\"/run/rvs/lab-stats.json\"#\"$WORK/stats.json\"#" \
    -e "s/workers: \[1\]/workers: [$worker_core]/" \
    configs/lab-nat.ron >"$WORK/lab.ron"
if [[ $(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages) -lt 256 ]]; then
    sed -i 's/hugepages: true/hugepages: false/' "$WORK/lab.ron"
fi

ip netns exec "$LAB-lb" target/release/rvsd --config "$WORK/lab.ron" >"$WORK/rvsd.log" 2>&1 &
RVSD_PID=$!
for _ in $(seq 300); do
    grep -q "rvsd running" "$WORK/rvsd.log" && break
    kill -0 "$RVSD_PID" 2>/dev/null || { cat "$WORK/rvsd.log"; die "rvsd exited"; }
    sleep 0.1
done
echo; cat "$WORK/rvsd.log"

show ip netns exec "$LAB-client" ping -c 3 -i 0.2 198.51.100.1
show ip netns exec "$LAB-client" arping -c 3 -i cl0 198.51.100.1
show ip netns exec "$LAB-rs1" ping -c 3 -i 0.2 203.0.113.1
show ip netns exec "$LAB-client" curl -sS http://198.51.100.100/
show ip netns exec "$LAB-client" curl -sS http://198.51.100.100/
show ip netns exec "$LAB-client" python3 scripts/lab/client.py http --url http://198.51.100.100/ --count 300
show ip netns exec "$LAB-client" python3 scripts/lab/client.py udp --addr 198.51.100.100 --port 9000 --count 6

printf '\n\033[1mrvsd counters (SIGUSR1):\033[0m\n'
kill -USR1 "$RVSD_PID"
sleep 0.5
sed -n '/counters:/,$p' "$WORK/rvsd.log" | tail -n +2

printf '\n\033[1mstopping rvsd (SIGTERM)\033[0m\n'
kill -TERM "$RVSD_PID"
if wait "$RVSD_PID"; then echo "rvsd exited 0"; else die "rvsd exited with status $?"; fi
RVSD_PID=
grep "stopped:" "$WORK/rvsd.log"
