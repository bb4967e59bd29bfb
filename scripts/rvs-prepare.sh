#!/usr/bin/env bash
# rvs-prepare.sh: what rvsd needs from the machine before it starts, read from its RON file.
# The ExecStartPre of deploy/systemd/rvsd.service (installed as /usr/local/sbin/rvs-prepare).
#
#   rvs-prepare.sh [--dry-run] [--config FILE]     (default FILE: /etc/rvs/rvsd.ron)
#
# - Hugepages: with eal.hugepages (default true), eal.memory_mb (default 512) of 2 MiB pages
#   available (nr_hugepages raised by what is missing; pages other processes hold stay
#   theirs), and a hugetlbfs of 2 MiB pages mounted (/dev/hugepages if none is).
# - NICs: every ports[].device that is a PCI address (0000:03:00.0, or 03:00.0) bound to
#   vfio-pci with dpdk-devbind.py, vfio-pci loaded first. vdevs (net_*) are skipped, and so
#   are Mellanox/NVIDIA devices (DPDK's mlx5 driver works beside the kernel's mlx5_core).
#   A device whose kernel interface carries the default route, an address an ssh session
#   uses, or any IPv4 route is refused with the reason, and then nothing at all is changed.
#
# Idempotent: what is already so is left alone. --dry-run prints the plan and the problems
# and changes nothing; its exit status is the real run's as far as it can tell.
# Exit status: 0 ready (or would be), 1 a problem (printed), 2 usage or an unreadable file.
#
# The RON file is read with grep and sed (the fields `device: "..."`, `memory_mb: N`,
# `hugepages: BOOL`, comments left out, a "//" inside a string no comment); rvsd
# --check-config validates the rest (the unit runs it first).
# For tests: RVS_SYSFS (default /sys) and RVS_DEVBIND (the dpdk-devbind.py to use).
set -euo pipefail

readonly SYSFS="${RVS_SYSFS:-/sys}"
readonly ME="rvs-prepare"
readonly PAGE_KB=2048

config=/etc/rvs/rvsd.ron
dry_run=false

usage() {
    awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"
}

while (($#)); do
    case "$1" in
    --dry-run | -n) dry_run=true ;;
    --config | -c)
        [[ $# -ge 2 ]] || { echo "$ME: --config needs a file" >&2; exit 2; }
        config="$2"
        shift
        ;;
    --config=*) config="${1#--config=}" ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "$ME: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) config="$1" ;;
    esac
    shift
done

say() { echo "$ME: $*"; }
problems=()
problem() {
    problems+=("$*")
    echo "$ME: problem: $*" >&2
}
warn() { echo "$ME: warning: $*" >&2; }
# The plan: each step printed as it is planned, run after the whole plan holds.
steps=()
plan() {
    # $1: what is said; the rest: the command.
    say "plan: $1"
    shift
    steps+=("$(printf '%q ' "$@")")
}

[[ -r "$config" ]] || { echo "$ME: cannot read $config" >&2; exit 2; }

# The file without its comments (// to the end of the line, /* */ nested as RON has them),
# strings kept whole, so that a commented-out port or a "//" inside a string misleads nothing.
ron_code() {
    awk '
    {
        line = $0; out = ""; n = length(line); i = 1
        while (i <= n) {
            c = substr(line, i, 1); two = substr(line, i, 2)
            if (depth > 0) {
                if (two == "*/") { depth--; i += 2 } else if (two == "/*") { depth++; i += 2 } else { i++ }
                continue
            }
            if (instr) {
                out = out c
                if (c == "\\") { out = out substr(line, i + 1, 1); i += 2; continue }
                if (c == "\"") { instr = 0 }
                i++
                continue
            }
            if (c == "\"") { instr = 1; out = out c; i++; continue }
            if (two == "//") { break }
            if (two == "/*") { depth = 1; i += 2; continue }
            out = out c; i++
        }
        print out
    }' "$1"
}

code="$(ron_code "$config")"

# ron_field NAME VALUE_REGEX: every value of field NAME, one per line.
ron_field() {
    grep -oE "(^|[^[:alnum:]_])$1[[:space:]]*:[[:space:]]*$2" <<<"$code" |
        sed -E "s/^.*$1[[:space:]]*:[[:space:]]*//" || true
}

mapfile -t devices < <(ron_field device '"[^"]*"' | sed -E 's/^"(.*)"$/\1/')
mapfile -t memory < <(ron_field memory_mb '[0-9][0-9_]*' | tr -d _)
mapfile -t huge < <(ron_field hugepages '(true|false)')

((${#memory[@]} <= 1)) || { echo "$ME: $config: memory_mb is written ${#memory[@]} times" >&2; exit 2; }
((${#huge[@]} <= 1)) || { echo "$ME: $config: hugepages is written ${#huge[@]} times" >&2; exit 2; }
((${#devices[@]} >= 1)) || { echo "$ME: $config: no ports[].device found" >&2; exit 2; }
memory_mb="${memory[0]:-512}"   # the schema's defaults
hugepages="${huge[0]:-true}"
memory_mb=$((10#$memory_mb))
say "config $config: ${#devices[@]} port(s), eal.memory_mb $memory_mb, eal.hugepages $hugepages"

# --- hugepages -----------------------------------------------------------------------------

if [[ $hugepages == true ]]; then
    need=$(((memory_mb * 1024 + PAGE_KB - 1) / PAGE_KB))
    pool="$SYSFS/kernel/mm/hugepages/hugepages-${PAGE_KB}kB"
    if [[ ! -r $pool/nr_hugepages ]]; then
        problem "no 2 MiB hugepages on this kernel ($pool missing); or set eal.hugepages: false"
    else
        nr=$(<"$pool/nr_hugepages")
        free=$(<"$pool/free_hugepages")
        resv=$(<"$pool/resv_hugepages")
        available=$((free - resv))
        say "hugepages: eal.memory_mb $memory_mb needs $need pages of 2 MiB; $available of $nr available"
        if ((available >= need)); then
            say "ok: hugepages: enough ($available available, $need needed)"
        else
            target=$((nr + need - available))
            plan "set nr_hugepages $nr -> $target ($need needed, $((nr - available)) held by others)" \
                set_hugepages "$pool" "$target" "$need"
        fi
    fi
    # A hugetlbfs of 2 MiB pages: EAL finds every hugetlbfs mount.
    default_kb=$(awk '/^Hugepagesize:/ {print $2}' /proc/meminfo 2>/dev/null || true)
    mount_2m=$(awk -v dflt="${default_kb:-0}" '$3 == "hugetlbfs" {
            size = ($4 ~ /pagesize=2M/) ? 2048 : ($4 ~ /pagesize=/ ? 0 : dflt)
            if (size == 2048) { print $2; exit }
        }' /proc/mounts)
    if [[ -n $mount_2m ]]; then
        say "ok: hugetlbfs of 2 MiB pages mounted at $mount_2m"
    elif ! awk '$2 == "/dev/hugepages" {found = 1} END {exit !found}' /proc/mounts; then
        plan "mount hugetlbfs (pagesize=2M) at /dev/hugepages" mount_hugetlbfs /dev/hugepages
    else
        plan "mount hugetlbfs (pagesize=2M) at /dev/hugepages-2M (/dev/hugepages has another size)" \
            mount_hugetlbfs /dev/hugepages-2M
    fi
else
    say "hugepages: eal.hugepages is false: none needed"
fi

# --- NICs ----------------------------------------------------------------------------------

# The interfaces that carry a default route (IPv4 or IPv6), and the local addresses of ssh
# sessions (sshd's established connections, and this shell's own if it came over ssh).
default_routes=$({ ip -o -4 route show default || true; ip -o -6 route show default || true; } 2>/dev/null)
default_devs=$(sed -nE 's/.* dev ([^ ]+).*/\1/p' <<<"$default_routes" | sort -u)
ssh_local() {
    ss -Htnp state established 2>/dev/null | awk '/"sshd/ {print $3}' || true
    if [[ -n ${SSH_CONNECTION:-} ]]; then
        awk '{print $3}' <<<"$SSH_CONNECTION"
    fi
}
ssh_addrs=$(ssh_local | sed -E 's/:[0-9]+$//; s/^\[//; s/\]$//; s/%.*$//; s/^::ffff://' | sort -u)

# Whether the kernel interface $1 may be taken from the kernel; says why not.
interface_free() {
    local iface="$1" dev="$2" addrs addr route routes ok=0
    if grep -qxF "$iface" <<<"$default_devs"; then
        route=$(grep -E " dev $iface( |\$)" <<<"$default_routes" | head -n1 | sed -E 's/ +$//')
        problem "$dev is $iface, which carries the default route ($route): not taken from the kernel"
        ok=1
    fi
    addrs=$(ip -o addr show dev "$iface" 2>/dev/null | awk '{sub(/\/.*/, "", $4); print $4}')
    while read -r addr; do
        [[ -n $addr ]] || continue
        if grep -qxF "$addr" <<<"$addrs"; then
            problem "$dev is $iface, whose address $addr an ssh session uses: not taken from the kernel"
            ok=1
        fi
    done <<<"$ssh_addrs"
    if ((ok == 0)); then
        routes=$(ip -o -4 route show dev "$iface" 2>/dev/null | cut -d' ' -f1 | paste -sd' ' || true)
        if [[ -n $routes ]]; then
            problem "$dev is $iface, which is in use (IPv4 routes: $routes): dpdk-devbind.py would not unbind it; take $iface out of the network configuration and down first"
            ok=1
        fi
    fi
    return $ok
}

pci=()
for device in "${devices[@]}"; do
    name="${device%%,*}"
    name="${name//[[:space:]]/}"
    lower="${name,,}"
    if [[ $lower =~ ^[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]$ ]]; then
        lower="0000:$lower"
    fi
    if [[ $lower =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]$ ]]; then
        pci+=("$lower")
    elif [[ $name == net_* ]]; then
        say "skip $device: a vdev, nothing to bind"
    else
        problem "device \"$device\" is neither a PCI address nor a vdev (net_*): rvsd --check-config says more"
    fi
done

to_bind=()
for dev in "${pci[@]}"; do
    dir="$SYSFS/bus/pci/devices/$dev"
    if [[ ! -e $dir ]]; then
        problem "no PCI device $dev on this machine (lspci -D, dpdk-devbind.py --status)"
        continue
    fi
    driver=none
    [[ -e $dir/driver ]] && driver=$(basename "$(readlink -f "$dir/driver")")
    vendor=$(cat "$dir/vendor" 2>/dev/null || echo unknown)
    if [[ $driver == vfio-pci ]]; then
        say "ok: $dev already bound to vfio-pci"
        continue
    fi
    if [[ $vendor == 0x15b3 ]]; then
        say "ok: $dev is a Mellanox/NVIDIA device: DPDK's mlx5 driver runs beside $driver, not bound"
        continue
    fi
    ifaces=()
    if [[ -d $dir/net ]]; then
        for n in "$dir"/net/*; do
            [[ -e $n ]] && ifaces+=("$(basename "$n")")
        done
    fi
    free=true
    for iface in "${ifaces[@]}"; do
        interface_free "$iface" "$dev" || free=false
    done
    $free || continue
    shown="${ifaces[*]}"
    say "$dev: driver $driver, kernel interface ${shown:-none}"
    to_bind+=("$dev")
done

if ((${#to_bind[@]})); then
    if [[ ! -d $SYSFS/bus/pci/drivers/vfio-pci ]]; then
        plan "load vfio-pci" modprobe vfio-pci
    fi
    # VFIO needs an IOMMU, or no-IOMMU mode chosen knowingly (no DMA isolation).
    noiommu=$(cat "$SYSFS/module/vfio/parameters/enable_unsafe_noiommu_mode" 2>/dev/null || true)
    if compgen -G "$SYSFS/kernel/iommu_groups/*" >/dev/null; then
        say "ok: the IOMMU is on"
    elif [[ $noiommu == Y ]]; then
        warn "no IOMMU: vfio is in no-IOMMU mode (no DMA isolation; rvsd needs CAP_SYS_RAWIO)"
    elif [[ -z $noiommu ]] && grep -qsE '^[^#]*enable_unsafe_noiommu_mode=(1|Y|y)' /etc/modprobe.d/*.conf; then
        warn "no IOMMU: vfio will load in no-IOMMU mode (/etc/modprobe.d; no DMA isolation)"
    else
        problem "no IOMMU groups: enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on iommu=pt (or amd_iommu=on); or, knowingly, options vfio enable_unsafe_noiommu_mode=1 (see README.md, Bare metal)"
    fi
    for dev in "${to_bind[@]}"; do
        group="$SYSFS/bus/pci/devices/$dev/iommu_group/devices"
        [[ -d $group ]] || continue
        for other in "$group"/*; do
            o=$(basename "$other")
            [[ " ${to_bind[*]} " == *" $o "* ]] && continue
            [[ -e $other/driver ]] || continue
            d=$(basename "$(readlink -f "$other/driver")")
            case "$d" in vfio-pci | pci-stub | pcieport) ;; *)
                warn "IOMMU group of $dev also holds $o (driver $d): vfio needs every device of a group on vfio-pci or none"
                ;;
            esac
        done
    done
    devbind="${RVS_DEVBIND:-}"
    if [[ -z $devbind ]]; then
        for candidate in "$(command -v dpdk-devbind.py || true)" /usr/sbin/dpdk-devbind.py \
            /usr/bin/dpdk-devbind.py /usr/share/dpdk/usertools/dpdk-devbind.py; do
            if [[ -n $candidate && -x $candidate ]]; then
                devbind=$candidate
                break
            fi
        done
    fi
    if [[ -z $devbind ]]; then
        problem "dpdk-devbind.py not found (apt-get install dpdk; or RVS_DEVBIND=PATH)"
    else
        for dev in "${to_bind[@]}"; do
            plan "bind $dev to vfio-pci" bind_vfio "$devbind" "$dev"
        done
    fi
elif ((${#pci[@]} == 0)); then
    say "no PCI device in the ports: nothing to bind"
fi

# --- the steps -----------------------------------------------------------------------------

set_hugepages() {
    local pool="$1" target="$2" need="$3" got free resv
    echo "$target" >"$pool/nr_hugepages"
    got=$(<"$pool/nr_hugepages")
    free=$(<"$pool/free_hugepages")
    resv=$(<"$pool/resv_hugepages")
    if ((free - resv < need)); then
        echo "$ME: asked for $target hugepages, the kernel gave $got ($((free - resv)) available, $need needed):" \
            "memory is short or fragmented; reserve them at boot (hugepages=$target on the kernel command line)" >&2
        return 1
    fi
    say "done: nr_hugepages $got"
}

mount_hugetlbfs() {
    mkdir -p "$1"
    mount -t hugetlbfs -o pagesize=2M nodev "$1"
    say "done: hugetlbfs mounted at $1"
}

bind_vfio() {
    local devbind="$1" dev="$2" driver
    "$devbind" --bind=vfio-pci "$dev"
    driver=$(basename "$(readlink -f "$SYSFS/bus/pci/devices/$dev/driver")")
    if [[ $driver != vfio-pci ]]; then
        echo "$ME: $dev is still on ${driver:-no driver} after dpdk-devbind.py (see its warnings above)" >&2
        return 1
    fi
    say "done: $dev bound to vfio-pci"
}

if ((${#problems[@]})); then
    echo "$ME: ${#problems[@]} problem(s): nothing changed" >&2
    exit 1
fi
if $dry_run; then
    say "dry run: ${#steps[@]} step(s) planned, nothing changed"
    exit 0
fi
for step in "${steps[@]}"; do
    eval "$step"
done
say "ready"
