//! The rvs dataplane: what a worker core touches per packet.
//!
//! - [`wire`]: zero-copy header views.
//! - [`engine`]: the sans-IO packet engine (bytes + snapshot + counters -> verdict).
//! - [`counters`]: per-worker, per-port counters with named drop reasons.
//! - [`dpdk`]: the safe DPDK layer (the only `unsafe` code outside `dpdk-sys`).
//! - [`worker`]: the run-to-completion loop on one pinned core.

pub mod counters;
pub mod dpdk;
pub mod engine;
pub mod wire;
pub mod worker;
