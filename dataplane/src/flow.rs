//! Types every part of the load-balancing path shares: endpoints, flow keys as seen on the
//! wire, and the forwarding modes.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

/// An IPv4 address and a port (the port is 0 where the protocol has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: Ipv4Addr,
    pub port: u16,
}

impl Endpoint {
    pub const fn new(addr: Ipv4Addr, port: u16) -> Self {
        Endpoint { addr, port }
    }
}

/// One word per endpoint: the derived hash writes an `Ipv4Addr` as a length-prefixed byte
/// slice, several hasher calls where one does.
impl Hash for Endpoint {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(u32::from(self.addr)) << 16 | u64::from(self.port));
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

/// A flow as one packet shows it: protocol, source, destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    /// IP protocol number (6 TCP, 17 UDP).
    pub protocol: u8,
    pub src: Endpoint,
    pub dst: Endpoint,
}

/// Two words: the connection table hashes every packet's key (twice, with the burst's
/// prefetch pass), so the key goes to the hasher whole rather than field by field.
impl Hash for FlowKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let addrs = u64::from(u32::from(self.src.addr)) << 32 | u64::from(u32::from(self.dst.addr));
        let rest = u64::from(self.src.port) << 32
            | u64::from(self.dst.port) << 16
            | u64::from(self.protocol);
        state.write_u64(addrs);
        state.write_u64(rest);
    }
}

impl FlowKey {
    pub const fn new(protocol: u8, src: Endpoint, dst: Endpoint) -> Self {
        FlowKey { protocol, src, dst }
    }
}

/// How a connection reaches its real server (LVS's four forwarding methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardMode {
    /// Destination rewritten to the real server; replies come back through rvs.
    Nat,
    /// Source rewritten to a local address too; the real server may sit anywhere routable.
    FullNat,
    /// Only the MAC rewritten; the real server answers the client directly.
    Dr,
    /// IP-in-IP to the real server, which answers the client directly.
    Tun,
}

impl ForwardMode {
    /// Whether replies pass through rvs (and so are indexed in the connection table).
    pub const fn sees_replies(self) -> bool {
        matches!(self, ForwardMode::Nat | ForwardMode::FullNat)
    }
}
