#!/usr/bin/env bash
# Every rvs test, from a fresh machine: set-up (packages, hugepages), formatting and lints,
# unit tests, the in-process DPDK test, the rvsd CLI tests, the end-to-end lab, and the
# release (static) build with its own smoke test. Run as root (namespaces, hugepages).
#
# Usage: scripts/test.sh
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"
cd "$ROOT"

require_root
"$SCRIPT_DIR/setup.sh"

# A test process killed outright cannot run its own clean-up: whatever it left in the
# namespaces and DPDK directories named after this run is removed here.
export RVS_TEST_RUN="t$$"
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^e2e${RVS_TEST_RUN}-" || true); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -TERM "$pid" 2>/dev/null || true
        done
    done
    if ip netns list 2>/dev/null | grep -q "^e2e${RVS_TEST_RUN}-"; then
        sleep 1
        "$SCRIPT_DIR/lab.sh" down "e2e${RVS_TEST_RUN}" >/dev/null || true
    fi
    rm -rf /var/run/dpdk/rvs-*"${RVS_TEST_RUN}"* /dev/hugepages/rvs-*"${RVS_TEST_RUN}"* 2>/dev/null || true
    rm -f -- "${LOG:-}"
}
trap cleanup EXIT INT TERM

step() { printf '\n== %s\n' "$*"; }

# Every cargo test run is logged so the closing line can add up all of them.
LOG=$(mktemp /tmp/rvs-test.XXXXXX.log)
tests() {
    set +e
    cargo test "$@" 2>&1 | tee -a "$LOG"
    local status=${PIPESTATUS[0]}
    set -e
    return "$status"
}

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "the engine crate builds without DPDK: nothing under dataplane depends on dpdk-sys, bindgen or clang"
if cargo tree -p dataplane -e normal,build,dev --prefix none | grep -E '^(dpdk|bindgen|clang-sys)'; then
    echo "dataplane depends on DPDK (above): it must build and test with plain cargo" >&2
    exit 1
fi

step "release build (DPDK linked statically)"
cargo build --release --workspace --quiet
echo "rvsd release binary: $(stat -c %s target/release/rvsd) bytes"

step "release binary (static DPDK): CLI, lab and the hardening labs again, with its own drivers"
status=0
RVS_BIN="$ROOT/target/release/rvsd" tests -p control --test rvsd_cli --test e2e_lab \
    --test e2e_hardening || status=1

step "tests (unit, DPDK in-process, rvsd CLI, end-to-end lab and modes)"
tests --workspace --no-fail-fast || status=1

step "fuzz: the engine on arbitrary bytes and random traffic, 200000 cases each, bounded in time"
PROPTEST_CASES=200000 timeout 600 cargo test --release -p dataplane --lib fuzz_ 2>&1 | tee -a "$LOG" ||
    status=1

step "ECMP cluster lab, quick form: scripts/cluster-lab.sh --quick (BGP, 3 nodes, a router)"
scripts/cluster-lab.sh --quick --no-build || status=1

step "benchmark smoke: scripts/bench.sh --smoke (every point for 1 s, tiny counts; measures nothing)"
scripts/bench.sh --smoke || status=1

step "benchmark smoke with 2 workers (sharing core 1 here) and 2 queue pairs per link"
scripts/bench.sh --smoke --workers 2 || status=1

step "health-check benchmark, quick form: scripts/bench-health.sh --quick (1,000 servers, 5 s)"
scripts/bench-health.sh --quick || status=1

step "reload and edit benchmark, quick form: scripts/bench-reload.sh --quick (100 x 100 real servers)"
scripts/bench-reload.sh --quick || status=1

step "instructions per packet smoke: scripts/instructions.sh --quick (callgrind; small counts)"
scripts/instructions.sh --quick || status=1

# One closing line over every run above.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "\nrvs: %d passed, %d failed\n", p, f }' "$LOG"
exit "$status"
