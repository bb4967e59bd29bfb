//! The per-worker connection table: which real server each connection goes to, its IPVS TCP
//! state and idle timeout, and its expiry. One table per worker, touched by that worker only.
//!
//! - `tcp_state`: IPVS's TCP states, transition tables (data, indexed by side, event and
//!   state) and per-state timeouts (`ipvsadm --set`).
//! - `timer`: the one-second timer wheel threaded through the slab.
//! - `table`: [`ConnTable`], slab + index of both directions' keys + the wheel;
//!   `index`: that index, in cache-line buckets a burst can prefetch from the keys' hashes.
//!
//! Per packet the table allocates nothing, takes no lock, makes no syscall and reads no
//! clock: time comes in as `now_ms`. Counterpart of IPVS's `ip_vs_conn.c` and
//! `ip_vs_proto_tcp.c`.

mod index;
mod table;
mod tcp_state;
mod template;
mod timer;

#[cfg(test)]
mod tests;

pub use crate::flow::{Endpoint, FlowKey, ForwardMode};
pub use table::{ConnTable, FastState};
pub use tcp_state::{TcpState, Timeouts};
pub use template::{Template, TemplateKey, TemplateTable, TemplatesFull};
pub use timer::TICK_MS;

/// A handle on a connection of one [`ConnTable`]. It goes stale when the connection is
/// removed or expires; the table then answers `None` for it, even once the slot is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

/// Which way a packet travels relative to its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// client -> VIP (as received)
    Original,
    /// real server -> client (NAT) or -> local address (FULLNAT)
    Reply,
}

/// What the engine stores per connection. Plain data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conn {
    /// 6 or 17.
    pub protocol: u8,
    /// Source of the original direction.
    pub client: Endpoint,
    /// Destination of the original direction.
    pub vip: Endpoint,
    /// FULLNAT: the local address and port rvs uses towards the real server; other modes: the
    /// client.
    pub local: Endpoint,
    /// The real server.
    pub real: Endpoint,
    pub mode: ForwardMode,
    /// The worker's dest slot of the real server (its load counters; `sched::DestTable`).
    pub dest: u32,
    /// The persistence template that started it (`TemplateTable` id), or `NO_TEMPLATE`.
    pub template: u32,
    /// Ingress port index (DPDK port position) of the original direction.
    pub client_port: u8,
    /// L2 source of the original direction ("auto last hop": replies go back to it). All
    /// zeros for a connection synced from another appliance until its client's first packet.
    pub client_mac: [u8; 6],
    /// For UDP: `Established` while alive.
    pub state: TcpState,
    /// The clients' packets since the last sync, modulo the sync period (IPVS's `in_pkts`,
    /// counted only while this appliance sends its connections to a backup).
    pub in_pkts: u8,
    /// Installed from another appliance's sync message (IPVS's `IP_VS_CONN_F_SYNC`).
    pub synced: bool,
}

/// `Conn::template` of a connection without persistence.
pub const NO_TEMPLATE: u32 = u32::MAX;

impl Conn {
    /// Whether IPVS counts it as active (`tcp_state_active`): TCP in ESTABLISHED or one of
    /// the opening states. UDP connections are always inactive.
    #[inline]
    pub fn is_active(&self) -> bool {
        counts_active(self.protocol, self.state)
    }
}

/// [`Conn::is_active`] for a connection of `protocol` in `state`.
#[inline]
pub fn counts_active(protocol: u8, state: TcpState) -> bool {
    protocol == 6
        && matches!(
            state,
            TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )
}

/// Why a connection was not inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// The table holds `capacity` connections.
    Full,
    /// One of the connection's keys already belongs to a connection.
    Exists,
}
