#!/usr/bin/env bash
# Prepare this host (Debian 12) to build and run rvs: Debian packages,
# 2 MiB hugepages and a hugetlbfs mount. Idempotent; safe to run again.
#
# Usage: scripts/setup.sh
# Env:   RVS_HUGEPAGES  number of 2 MiB hugepages to reserve (default 1024)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"

usage() {
    echo "usage: $RVS_PROG   (env RVS_HUGEPAGES=N, default 1024)"
}

case ${1:-} in
    "") ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac

PACKAGES=(
    libdpdk-dev dpdk dpdk-dev pkg-config clang libclang-dev gcc
    libsystemd-dev
    iproute2 iputils-ping arping ethtool python3 curl procps kmod
    keepalived bird2
)
# promtool and Python's prometheus_client, for the metrics format test
# (control/tests/metrics_format.rs). Installed without their Recommends (prometheus's
# bring node_exporter, smartmontools, ipmitool... and their daemons); the Prometheus
# server the prometheus package enables and starts is stopped and disabled.
METRICS_PACKAGES=(prometheus python3-prometheus-client)
HUGEPAGES=${RVS_HUGEPAGES:-1024}
HP_FILE=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
HP_MNT=/dev/hugepages

# --- cargo: we never touch the Rust toolchain, we only require it. ---------
if ! have cargo; then
    cargo_home=${CARGO_HOME:-${HOME:-/root}/.cargo}
    if [[ -x $cargo_home/bin/cargo ]]; then
        warn "cargo is not on PATH; found $cargo_home/bin/cargo (add $cargo_home/bin to PATH)"
    else
        die "cargo not found: install a Rust toolchain (rustup) first; this script does not"
    fi
fi

require_root

[[ $HUGEPAGES =~ ^[0-9]+$ ]] || die "RVS_HUGEPAGES must be a non-negative integer (got '$HUGEPAGES')"

# --- Debian packages ---------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done
missing_metrics=()
for p in "${METRICS_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing_metrics+=("$p")
done

pkg_msg="packages ok"
if ((${#missing[@]} + ${#missing_metrics[@]})); then
    log=$(mktemp /tmp/rvs-setup-apt.XXXXXX.log)
    export DEBIAN_FRONTEND=noninteractive
    all_missing=("${missing[@]}" "${missing_metrics[@]}")
    note "installing: ${all_missing[*]} (log: $log)"
    if ! apt-get update -q >"$log" 2>&1 ||
        { ((${#missing[@]})) && ! apt-get install -y -q "${missing[@]}" >>"$log" 2>&1; } ||
        { ((${#missing_metrics[@]})) &&
            ! apt-get install -y -q --no-install-recommends "${missing_metrics[@]}" >>"$log" 2>&1; }; then
        tail -n 20 "$log" >&2
        die "apt-get failed (full log: $log)"
    fi
    if [[ " ${missing_metrics[*]} " == *" prometheus "* ]]; then
        if [[ -d /run/systemd/system ]]; then
            systemctl disable --now prometheus.service >>"$log" 2>&1 || true
        else
            invoke-rc.d prometheus stop >>"$log" 2>&1 || true
            update-rc.d prometheus disable >>"$log" 2>&1 || true
        fi
    fi
    rm -f -- "$log"
    pkg_msg="packages ok (installed ${#all_missing[@]}: ${all_missing[*]})"
fi

# --- hugepages ---------------------------------------------------------------
if [[ ! -e $HP_FILE ]]; then
    warn "$HP_FILE does not exist: kernel without 2 MiB hugepage support?"
    have_hp=0
else
    have_hp=$(<"$HP_FILE")
    if ((have_hp < HUGEPAGES)); then
        if ! echo "$HUGEPAGES" >"$HP_FILE" 2>/dev/null; then
            warn "could not write $HP_FILE (read-only sysfs / container?)"
        fi
        have_hp=$(<"$HP_FILE")
    fi
    if ((have_hp < HUGEPAGES)); then
        warn "asked for $HUGEPAGES hugepages of 2 MiB but the kernel has only $have_hp" \
            "(memory fragmented? try 'sync; echo 3 > /proc/sys/vm/drop_caches' and rerun, or set RVS_HUGEPAGES lower)"
    fi
fi

# --- hugetlbfs mount ---------------------------------------------------------
mkdir -p "$HP_MNT"
if mountpoint -q "$HP_MNT"; then
    mnt_msg="hugetlbfs at $HP_MNT (already mounted)"
else
    mount -t hugetlbfs -o pagesize=2M nodev "$HP_MNT" ||
        die "could not mount hugetlbfs at $HP_MNT"
    mnt_msg="hugetlbfs mounted at $HP_MNT"
fi

echo "setup: $pkg_msg; $have_hp hugepages of 2 MiB; $mnt_msg"
