//! Which worker owns a packet, computed from the packet alone, so that workers share no table.
//!
//! Every connection has exactly one owner worker, and every packet of it, in either direction,
//! and every ICMP error about it, names that worker:
//!
//! - **NAT and FULLNAT, client side**: the client endpoint (source address and port) decides:
//!   `owner = reta(toeplitz(client address ‖ client port))`. A NAT reply names its client as
//!   destination, so it decides the same way.
//! - **FULLNAT, server side**: each worker owns a share of the (local address, local port)
//!   pairs and allocates only from its share, so a reply names its owner by its destination:
//!   by the same function as a client endpoint ([`FullnatShare::Hash`]), or, where the NICs
//!   take flow rules, by the port's low bits ([`FullnatShare::Modulo`], `(p - 1024) mod W`).
//! - **DR and TUN**: one direction only, the receiving worker owns the flow (the NIC spreads a
//!   flow's packets consistently).
//! - **ICMP errors**: the quoted header names the connection, and with it the owner, as above.
//!
//! The client-endpoint function is the NIC's own RSS function (Toeplitz with rvs's key, over the
//! source or destination address and port, through a redirection table of `i mod W`), so a NIC
//! configured with that key and those hash fields already puts packets on their owner's queue;
//! elsewhere (virtual devices, a port that faces clients and servers) the receiving worker hands
//! the packet to its owner. Either way the software function decides: the hardware only makes
//! the hand-off rare.

use std::net::Ipv4Addr;

use crate::flow::Endpoint;

/// FULLNAT local ports: each worker owns the ports `p` with `(p - LOCAL_PORT_FIRST) mod W ==
/// worker` from here to 65535.
pub const LOCAL_PORT_FIRST: u16 = 1024;

/// Entries of the redirection table the owner function uses (a power of two, as NICs have).
pub const RETA_SIZE: usize = 512;

/// Length of a Toeplitz key (the common 40 bytes: enough for IPv6 tuples too).
pub const KEY_LEN: usize = 40;

/// The Toeplitz hash (Microsoft's RSS hash, what NICs compute) with a fixed key, by table:
/// one 256-entry table per input byte, so a hash is one lookup and one XOR per byte.
#[derive(Clone)]
pub struct Toeplitz {
    key: [u8; KEY_LEN],
    /// `tables[i][b]`: the hash contribution of byte value `b` at input position `i`.
    tables: Box<[[u32; 256]; 12]>,
}

impl std::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toeplitz").finish_non_exhaustive()
    }
}

impl Toeplitz {
    pub fn new(key: [u8; KEY_LEN]) -> Self {
        // The 32-bit window of the key that starts at bit `bit` (MSB first).
        let window = |bit: usize| -> u32 {
            let mut w = 0u64;
            for byte in 0..5 {
                w = (w << 8) | u64::from(key.get(bit / 8 + byte).copied().unwrap_or(0));
            }
            (w >> (8 - bit % 8)) as u32
        };
        let mut tables = Box::new([[0u32; 256]; 12]);
        for (position, table) in tables.iter_mut().enumerate() {
            for (value, entry) in table.iter_mut().enumerate() {
                *entry = (0..8)
                    .filter(|b| value & (0x80 >> b) != 0)
                    .fold(0, |h, b| h ^ window(position * 8 + b));
            }
        }
        Toeplitz { key, tables }
    }

    pub fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// The hash of `input` (at most 12 bytes: an IPv4 4-tuple).
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        input
            .iter()
            .zip(self.tables.iter())
            .fold(0, |h, (&b, table)| h ^ table[usize::from(b)])
    }

    /// The hash of an endpoint (address, then port): what a NIC computes over the source (or
    /// destination) fields only.
    #[inline]
    pub fn endpoint(&self, ep: Endpoint) -> u32 {
        let a = ep.addr.octets();
        let p = ep.port.to_be_bytes();
        self.hash(&[a[0], a[1], a[2], a[3], p[0], p[1]])
    }

    /// The hash of an IPv4 TCP/UDP 4-tuple in RSS's order: source address, destination
    /// address, source port, destination port.
    #[inline]
    pub fn four_tuple(&self, src: Endpoint, dst: Endpoint) -> u32 {
        let (s, d) = (src.addr.octets(), dst.addr.octets());
        let (sp, dp) = (src.port.to_be_bytes(), dst.port.to_be_bytes());
        self.hash(&[
            s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3], sp[0], sp[1], dp[0], dp[1],
        ])
    }
}

/// Who owns a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The worker that received it (DR/TUN flows, packets for rvs itself, ARP, ...).
    Receiver,
    Worker(usize),
}

/// How the FULLNAT (local address, local port) pairs are shared out among the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullnatShare {
    /// A pair belongs to the worker its endpoint hashes to, as a client endpoint does: a NIC
    /// hashing the destination address and port of the replies (RSS "destination only") puts
    /// them on their owner's queue. Each worker walks all pairs and takes its own.
    Hash,
    /// Port `p` belongs to worker `(p - 1024) mod W`, for every local address: with W a power
    /// of two, the port's low bits, which a flow rule (destination port under a mask) can steer.
    Modulo,
}

/// The owner function of one rvsd run: its workers, its RSS key and how FULLNAT pairs are
/// shared. Fixed at start (changing it would orphan every connection), shared read-only by all
/// workers through the snapshot.
#[derive(Debug, Clone)]
pub struct Steering {
    workers: usize,
    toeplitz: Toeplitz,
    fullnat: FullnatShare,
}

impl Steering {
    /// The owner function for `workers` workers with RSS key `key`.
    pub fn new(workers: usize, key: [u8; KEY_LEN], fullnat: FullnatShare) -> Self {
        Steering {
            workers: workers.max(1),
            toeplitz: Toeplitz::new(key),
            fullnat,
        }
    }

    pub fn fullnat_share(&self) -> FullnatShare {
        self.fullnat
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn toeplitz(&self) -> &Toeplitz {
        &self.toeplitz
    }

    /// The worker a redirection-table slot names: `slot mod W` (as rvs programs a NIC's table).
    #[inline]
    pub fn reta(&self, hash: u32) -> usize {
        (hash as usize & (RETA_SIZE - 1)) % self.workers
    }

    /// The owner of a NAT or FULLNAT connection whose client is `client`.
    #[inline]
    pub fn client_owner(&self, client: Endpoint) -> usize {
        self.reta(self.toeplitz.endpoint(client))
    }

    /// The owner of FULLNAT local endpoint `local` (`None` below the local port range: no
    /// connection of rvs's uses it).
    #[inline]
    pub fn local_owner(&self, local: Endpoint) -> Option<usize> {
        let index = local.port.checked_sub(LOCAL_PORT_FIRST)?;
        Some(match self.fullnat {
            FullnatShare::Hash => self.client_owner(local),
            FullnatShare::Modulo => usize::from(index) % self.workers,
        })
    }
}

/// What the engine knows of a TCP/UDP packet when it asks who owns it.
#[derive(Debug, Clone, Copy)]
pub enum FlowKind {
    /// To a FULLNAT local address: a real server's reply.
    ToLocalAddress,
    /// To a virtual service whose replies pass through rvs (NAT, FULLNAT).
    ToService,
    /// To a DR or TUN service, or to one of rvs's own addresses.
    ToReceiver,
    /// To none of rvs's addresses: a NAT real server's reply to a client.
    ToElsewhere,
}

impl Steering {
    /// The owner of a TCP/UDP packet `src -> dst` of kind `kind`.
    #[inline]
    pub fn flow_owner(&self, kind: FlowKind, src: Endpoint, dst: Endpoint) -> Owner {
        match kind {
            FlowKind::ToLocalAddress => {
                self.local_owner(dst).map_or(Owner::Receiver, Owner::Worker)
            }
            FlowKind::ToService => Owner::Worker(self.client_owner(src)),
            FlowKind::ToReceiver => Owner::Receiver,
            FlowKind::ToElsewhere => Owner::Worker(self.client_owner(dst)),
        }
    }
}

/// A random RSS key from the kernel's generator (`/dev/urandom`), so that no one outside can
/// aim traffic at one worker; `None` if it cannot be read.
pub fn random_key() -> Option<[u8; KEY_LEN]> {
    use std::io::Read;
    let mut key = [0u8; KEY_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .ok()?;
    Some(key)
}

/// Whether `addr` is one of `addrs` (a handful: FULLNAT local addresses).
#[inline]
pub fn is_one_of(addrs: &[Ipv4Addr], addr: Ipv4Addr) -> bool {
    addrs.contains(&addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of Microsoft's RSS verification suite, and its published IPv4 results
    /// ("Verifying the RSS Hash Calculation").
    const MS_KEY: [u8; KEY_LEN] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    fn ep(a: [u8; 4], port: u16) -> Endpoint {
        Endpoint::new(a.into(), port)
    }

    #[test]
    fn toeplitz_matches_the_published_vectors() {
        let t = Toeplitz::new(MS_KEY);
        // (destination, source) as the document lists them, with the IPv4-only and the
        // IPv4+TCP hashes.
        let vectors = [
            (
                ep([161, 142, 100, 80], 1766),
                ep([66, 9, 149, 187], 2794),
                0x323e8fc2,
                0x51ccc178,
            ),
            (
                ep([65, 69, 140, 83], 4739),
                ep([199, 92, 111, 2], 14230),
                0xd718262a,
                0xc626b0ea,
            ),
            (
                ep([12, 22, 207, 184], 38024),
                ep([24, 19, 198, 95], 12898),
                0xd2d0a5de,
                0x5c2b394a,
            ),
            (
                ep([209, 142, 163, 6], 2217),
                ep([38, 27, 205, 30], 48228),
                0x82989176,
                0xafc7327f,
            ),
            (
                ep([202, 188, 127, 2], 1303),
                ep([153, 39, 163, 191], 44251),
                0x5d1809c5,
                0x10e828a2,
            ),
        ];
        for (dst, src, ip_only, with_ports) in vectors {
            let (s, d) = (src.addr.octets(), dst.addr.octets());
            let ip = [s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3]];
            assert_eq!(t.hash(&ip), ip_only, "{src} -> {dst}");
            assert_eq!(t.four_tuple(src, dst), with_ports, "{src} -> {dst}");
        }
    }

    #[test]
    fn owners_cover_every_worker_and_agree_with_the_local_share() {
        let s = Steering::new(3, MS_KEY, FullnatShare::Modulo);
        let mut seen = [0usize; 3];
        for port in 1024..4096 {
            let owner = s.client_owner(ep([198, 51, 100, 10], port));
            seen[owner] += 1;
        }
        assert!(seen.iter().all(|n| *n > 800), "spread: {seen:?}");
        let lip = |port| ep([203, 0, 113, 201], port);
        assert_eq!(s.local_owner(lip(1024)), Some(0));
        assert_eq!(s.local_owner(lip(1025 + 3 * 100)), Some(1));
        assert_eq!(s.local_owner(lip(1023)), None);
        // Shared by hash, a local endpoint's owner is a client endpoint's.
        let h = Steering::new(3, MS_KEY, FullnatShare::Hash);
        for port in 1024..1100 {
            assert_eq!(h.local_owner(lip(port)), Some(h.client_owner(lip(port))));
        }
        // A NAT reply names its client as destination: the same owner as its request.
        let (client, vip, real) = (
            ep([198, 51, 100, 10], 40000),
            ep([198, 51, 100, 100], 80),
            ep([203, 0, 113, 11], 8080),
        );
        assert_eq!(
            s.flow_owner(FlowKind::ToService, client, vip),
            s.flow_owner(FlowKind::ToElsewhere, real, client)
        );
        assert_eq!(
            s.flow_owner(FlowKind::ToReceiver, client, vip),
            Owner::Receiver
        );
        // With W a power of two the table reduces to the hash's low bits, whatever its size.
        let four = Steering::new(4, MS_KEY, FullnatShare::Hash);
        let h = four.toeplitz().endpoint(client);
        assert_eq!(four.client_owner(client), (h & 3) as usize);
    }
}
