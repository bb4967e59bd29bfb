//! Per-worker, per-port counters. Each worker owns its own cache-aligned block and is the only
//! writer of it, so an increment is a plain load and store (no atomic read-modify-write, no
//! shared cache line); the control thread reads them with relaxed loads and sums over workers.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a packet was dropped. Every drop has exactly one reason; names are what operators see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// A header that does not parse: short, bad version or header length, bad total length.
    Malformed,
    /// IPv4 header checksum wrong.
    IpChecksum,
    /// ICMP checksum wrong.
    IcmpChecksum,
    /// An IPv4 fragment addressed to the appliance itself (it reassembles nothing).
    Fragment,
    /// Neither for one of this port's addresses nor for its MAC.
    NotForUs,
    /// A source that cannot be real: multicast/broadcast MAC or IP, 0.0.0.0, our own address.
    MartianSource,
    /// An EtherType rvs does not handle here (IPv6, 802.1Q until the VLAN path, ...).
    UnsupportedEthertype,
    /// An IPv4 protocol or ICMP type the appliance does not answer itself.
    UnsupportedProtocol,
    /// A chained (multi-segment) mbuf; rvs handles single-segment packets.
    MultiSegment,
    /// The TX queue refused the packet (device ring full).
    TxFull,
    /// A TCP/UDP packet (or an ICMP error) of no known connection that cannot start one
    /// (TCP without a lone SYN).
    NoConnection,
    /// For one of our addresses, but no virtual service on that protocol and port.
    NoService,
    /// The service has no real server that may take a connection (all weights 0, none).
    NoRealServer,
    /// The connection table is full: new flows are refused, established ones go on.
    TableFull,
    /// The next hop's MAC is not resolved (yet), or no route leads there.
    NoNeighbor,
    /// FULLNAT: no free local address and port towards that real server.
    NoLocalPort,
    /// Too big for the tunnel with DF clear (rvs does not fragment), or no headroom.
    TooBig,
    /// TTL ran out and no ICMP error could be sent (e.g. no address on the port).
    TtlExceeded,
    /// The ring to the control thread was full.
    SlowPathFull,
    /// Another worker owns the packet and the ring to it was full (it is that far behind).
    HandoffFull,
    /// A persistent service could not record the client's template (the worker's template
    /// table is full): as IPVS, the connection is refused rather than served unpinned.
    TemplatesFull,
    /// An IPv4 option list that does not parse (Linux's `ip_options_compile` rules).
    IpOptions,
    /// A loose or strict source route option: dropped, as Linux does with
    /// `accept_source_route = 0`.
    SourceRoute,
    /// For the kernel, and its ring was full (or, for all but BGP and BFD, past the room
    /// they keep): the appliance's own traffic is flooded or the kernel path is behind.
    KernelFull,
    /// For an address whose VRRP instance is BACKUP or FAULT on this appliance.
    NotMaster,
}

impl DropReason {
    pub const COUNT: usize = 25;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Malformed,
        DropReason::IpChecksum,
        DropReason::IcmpChecksum,
        DropReason::Fragment,
        DropReason::NotForUs,
        DropReason::MartianSource,
        DropReason::UnsupportedEthertype,
        DropReason::UnsupportedProtocol,
        DropReason::MultiSegment,
        DropReason::TxFull,
        DropReason::NoConnection,
        DropReason::NoService,
        DropReason::NoRealServer,
        DropReason::TableFull,
        DropReason::NoNeighbor,
        DropReason::NoLocalPort,
        DropReason::TooBig,
        DropReason::TtlExceeded,
        DropReason::SlowPathFull,
        DropReason::HandoffFull,
        DropReason::TemplatesFull,
        DropReason::IpOptions,
        DropReason::SourceRoute,
        DropReason::KernelFull,
        DropReason::NotMaster,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::IpChecksum => "ip_checksum",
            DropReason::IcmpChecksum => "icmp_checksum",
            DropReason::Fragment => "fragment",
            DropReason::NotForUs => "not_for_us",
            DropReason::MartianSource => "martian_source",
            DropReason::UnsupportedEthertype => "unsupported_ethertype",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::MultiSegment => "multi_segment",
            DropReason::TxFull => "tx_full",
            DropReason::NoConnection => "no_connection",
            DropReason::NoService => "no_service",
            DropReason::NoRealServer => "no_real_server",
            DropReason::TableFull => "table_full",
            DropReason::NoNeighbor => "no_neighbor",
            DropReason::NoLocalPort => "no_local_port",
            DropReason::TooBig => "too_big",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::SlowPathFull => "slow_path_full",
            DropReason::HandoffFull => "handoff_full",
            DropReason::TemplatesFull => "templates_full",
            DropReason::IpOptions => "ip_options",
            DropReason::SourceRoute => "source_route",
            DropReason::KernelFull => "kernel_full",
            DropReason::NotMaster => "not_master",
        }
    }
}

/// A counter with one writer. `add` is a relaxed load and store: correct only because the
/// owning worker is the sole writer; readers may see a value one burst old.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Stores a gauge value (single writer).
    #[inline]
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One worker's counters for one port, on their own cache lines.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct PortCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    pub arp_replies: Counter,
    pub icmp_echo_replies: Counter,
    /// ICMP errors rvs originated (time exceeded, fragmentation needed).
    pub icmp_errors_sent: Counter,
    /// TCP resets rvs sent for segments to a virtual service of no connection.
    pub resets_sent: Counter,
    /// Packets of connections forwarded (counted on the ingress port).
    pub forwarded: Counter,
    /// Connections created by packets arriving on this port.
    pub connections_created: Counter,
    /// Packets handed to the control thread (ARP it learns neighbours from).
    pub to_control: Counter,
    /// Packets handed to the kernel (its interface for this port).
    pub to_kernel: Counter,
    pub drops: [Counter; DropReason::COUNT],
}

impl PortCounters {
    #[inline]
    pub fn drop(&self, reason: DropReason) {
        self.drops[reason as usize].add(1);
    }

    pub fn read(&self) -> PortTotals {
        let mut drops = [0; DropReason::COUNT];
        for (out, c) in drops.iter_mut().zip(&self.drops) {
            *out = c.get();
        }
        PortTotals {
            rx_packets: self.rx_packets.get(),
            rx_bytes: self.rx_bytes.get(),
            tx_packets: self.tx_packets.get(),
            tx_bytes: self.tx_bytes.get(),
            arp_replies: self.arp_replies.get(),
            icmp_echo_replies: self.icmp_echo_replies.get(),
            icmp_errors_sent: self.icmp_errors_sent.get(),
            resets_sent: self.resets_sent.get(),
            forwarded: self.forwarded.get(),
            connections_created: self.connections_created.get(),
            to_control: self.to_control.get(),
            to_kernel: self.to_kernel.get(),
            drops,
        }
    }
}

/// One worker's counters: one block per port, indexed by the port's position in the config.
#[derive(Debug)]
pub struct WorkerCounters {
    pub ports: Box<[PortCounters]>,
    /// Connections in this worker's table (a gauge the worker stores once per loop).
    pub connections: Counter,
    /// Connections expired by the timer wheel.
    pub connections_expired: Counter,
    /// Embryonic connections (SYN_RECV) whose slot a new SYN took in a full table.
    pub connections_evicted: Counter,
    /// Connections ended because their real server left a service with expire_nodest_conn.
    pub connections_expired_nodest: Counter,
    /// Packets the established fast path forwarded (the rest took the full path).
    pub fast_path: Counter,
    /// Connections created from a segment without SYN (`sloppy_tcp`): flows another node of
    /// an ECMP cluster had.
    pub connections_sloppy: Counter,
    /// Packets this worker received and handed to the worker that owns them.
    pub handed_out: Counter,
    /// Packets other workers handed to this one (it owns them).
    pub handed_in: Counter,
    /// The connection table's memory divided by its capacity, both directions' index
    /// included (set once at start: the table is allocated whole).
    pub bytes_per_connection: Counter,
    /// Connection sync, master side: connections handed to the control thread for the
    /// backups, and those lost for want of room (in the worker's own buffer between two
    /// drains, or refused by the channel to the control thread).
    pub sync_sent: Counter,
    pub sync_lost: Counter,
    /// Backup side: synced connections installed (new ones), and refused (no such service
    /// or real server here, table full, a conflicting FULLNAT entry).
    pub synced_in: Counter,
    pub sync_refused: Counter,
}

impl WorkerCounters {
    pub fn new(ports: usize) -> Self {
        WorkerCounters {
            ports: (0..ports).map(|_| PortCounters::default()).collect(),
            connections: Counter::default(),
            connections_expired: Counter::default(),
            connections_evicted: Counter::default(),
            connections_expired_nodest: Counter::default(),
            fast_path: Counter::default(),
            connections_sloppy: Counter::default(),
            handed_out: Counter::default(),
            handed_in: Counter::default(),
            bytes_per_connection: Counter::default(),
            sync_sent: Counter::default(),
            sync_lost: Counter::default(),
            synced_in: Counter::default(),
            sync_refused: Counter::default(),
        }
    }
}

/// Plain values read from counters; adds up over workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortTotals {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub arp_replies: u64,
    pub icmp_echo_replies: u64,
    pub icmp_errors_sent: u64,
    pub resets_sent: u64,
    pub forwarded: u64,
    pub connections_created: u64,
    pub to_control: u64,
    pub to_kernel: u64,
    pub drops: [u64; DropReason::COUNT],
}

impl PortTotals {
    pub fn add(&mut self, other: &PortTotals) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.arp_replies += other.arp_replies;
        self.icmp_echo_replies += other.icmp_echo_replies;
        self.icmp_errors_sent += other.icmp_errors_sent;
        self.resets_sent += other.resets_sent;
        self.forwarded += other.forwarded;
        self.connections_created += other.connections_created;
        self.to_control += other.to_control;
        self.to_kernel += other.to_kernel;
        for (a, b) in self.drops.iter_mut().zip(other.drops) {
            *a += b;
        }
    }

    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// `(name, count)` for every reason with a non-zero count.
    pub fn nonzero_drops(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (r.name(), self.drops[*r as usize]))
            .filter(|(_, n)| *n != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_dense_and_named_once() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn totals_add_up() {
        let c = PortCounters::default();
        c.rx_packets.add(3);
        c.drop(DropReason::TxFull);
        c.drop(DropReason::TxFull);
        let mut t = c.read();
        t.add(&c.read());
        assert_eq!(t.rx_packets, 6);
        assert_eq!(t.drop_count(DropReason::TxFull), 4);
        assert_eq!(t.nonzero_drops().collect::<Vec<_>>(), vec![("tx_full", 4)]);
        assert_eq!(std::mem::align_of::<PortCounters>(), 64);
    }
}
