//! The rvs dataplane: what a worker core touches per packet.
//!
//! - [`wire`]: zero-copy header views.
//! - [`engine`]: the sans-IO packet engine (bytes + snapshot + counters -> verdict).
//! - [`flow`]: endpoints, flow keys, forwarding modes.
//! - [`conn`]: the per-worker connection table (IPVS states, timeouts, expiry).
//! - [`counters`]: per-worker, per-port counters with named drop reasons.
//! - [`sync`]: which packets make a master send a connection to its backups, the record.
//! - [`prefetch`]: the cache hint the engine gives for a burst's connections.
//!
//! No DPDK here: the wrappers, `impl Frame for Mbuf` and the worker loop are the `dpdk` crate's,
//! as quinn-proto is to quinn. `cargo test -p dataplane` needs neither DPDK nor clang.

#![deny(unsafe_code)]

pub mod conn;
pub mod counters;
pub mod engine;
pub mod flow;
pub mod forward;
pub mod frame;
pub mod prefetch;
pub mod sched;
pub mod snapshot;
pub mod steer;
pub mod sync;
pub mod wire;
