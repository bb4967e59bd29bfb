//! The rvs dataplane: what a worker core touches per packet.
//!
//! - [`wire`]: zero-copy header views.
//! - [`engine`]: the sans-IO packet engine (bytes + snapshot + counters -> verdict).
//! - [`flow`]: endpoints, flow keys, forwarding modes.
//! - [`conn`]: the per-worker connection table (IPVS states, timeouts, expiry).
//! - [`counters`]: per-worker, per-port counters with named drop reasons.
//! - [`dpdk`]: the safe DPDK layer (the only `unsafe` code outside `dpdk-sys`).
//! - [`sync`]: which packets make a master send a connection to its backups, the record.
//! - [`worker`]: the run-to-completion loop on one pinned core.

pub mod conn;
pub mod counters;
pub mod dpdk;
pub mod engine;
pub mod flow;
pub mod forward;
pub mod frame;
pub mod sched;
pub mod snapshot;
pub mod steer;
pub mod sync;
pub mod wire;
pub mod worker;
