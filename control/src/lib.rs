//! rvs control plane: everything that is not per packet.
//!
//! - [`answer`]: what the control thread answers rvsadm and publishes (state, rates, status,
//!   reloads, telemetry).
//! - [`api`]: the control socket's messages and the running state `rvsadm` renders.
//! - [`check`]: keepalived's health checkers (TCP, HTTP/SSL, MISC, UDP, PING) as async probes.
//! - [`config`]: the RON file: schema, validation, errors placed at FILE:LINE:COLUMN.
//! - [`control`]: the control thread's running state and the one place snapshots are built.
//! - [`edit`]: rvsadm's runtime edits (ipvsadm's verbs) as changes to the running configuration.
//! - [`health`]: what the checkers' verdicts do to the services (keepalived's semantics).
//! - [`kernel`]: the exception path, a TAP interface per port for the kernel's own traffic.
//! - [`neigh`]: ARP resolution of next hops.
//! - [`notify`]: systemd's readiness protocol (`READY=1`, `RELOADING=1`), without libsystemd.
//! - [`script`]: the notify scripts, run without a shell, reaped, killed past a timeout.
//! - [`snapshot`]: builds the immutable state workers read.
//! - [`stats`]: gathers workers' and devices' counters for the stats file and the log.
//! - [`steering`]: how each port gets packets to the worker that owns them.
//! - [`sync`]: connection sync to the backups, IPVS's protocol version 1.
//! - [`vrrp`]: failover with VRRP v2/v3 as keepalived speaks it.

pub mod announce;
pub mod answer;
pub mod api;
pub mod check;
pub mod config;
pub mod control;
pub mod edit;
pub mod health;
pub mod kernel;
pub mod neigh;
pub mod notify;
pub mod script;
pub mod snapshot;
pub mod stats;
pub mod steering;
pub mod sync;
pub mod vrrp;

/// `02:aa:00:00:00:01`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
