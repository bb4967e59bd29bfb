//! rvs control plane: everything that is not per packet.
//!
//! - [`check`]: keepalived's health checkers (TCP, HTTP/SSL, MISC, UDP, PING) as async probes.
//! - [`config`]: the RON file: schema, validation, errors placed at FILE:LINE:COLUMN.
//! - [`neigh`]: ARP resolution of next hops.
//! - [`snapshot`]: builds the immutable state workers read.
//! - [`stats`]: gathers workers' and devices' counters for the stats file and the log.
//! - [`steering`]: how each port gets packets to the worker that owns them.

pub mod check;
pub mod config;
pub mod neigh;
pub mod snapshot;
pub mod stats;
pub mod steering;

