# shellcheck shell=bash
# Shared helpers for rvs scripts. Source it; do not execute it.

RVS_PROG=${RVS_PROG:-$(basename "${0:-rvs}")}

# die MSG... : print "PROG: error: MSG" on stderr and exit 1.
die() {
    printf '%s: error: %s\n' "$RVS_PROG" "$*" >&2
    exit 1
}

# warn MSG... : print "PROG: warning: MSG" on stderr.
warn() {
    printf '%s: warning: %s\n' "$RVS_PROG" "$*" >&2
}

# note MSG... : print "PROG: MSG" on stderr.
note() {
    printf '%s: %s\n' "$RVS_PROG" "$*" >&2
}

# require_root : exit with a clear message unless running as root.
require_root() {
    if [[ ${EUID:-$(id -u)} -ne 0 ]]; then
        die "must be run as root"
    fi
}

# have CMD : true if CMD is on PATH.
have() {
    command -v "$1" >/dev/null 2>&1
}
