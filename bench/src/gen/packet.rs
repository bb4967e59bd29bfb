//! rvs-gen's packets, on byte slices (sans-IO): the clients' packets toward the VIP, the checks
//! a packet must pass where it arrives (servers' side after the device under test, clients'
//! side for replies), and the real servers' answer written over the packet they received.
//!
//! Layout of every packet the clients send (64 bytes for TCP and UDP alike):
//! Ethernet (14) | IPv4 (20, DF, TTL 64) | TCP (20) or UDP (8) | payload: stamp (5 bytes,
//! nanoseconds since the generator started, modulo 2^40), step (1), flow (4), zero padding.
//! The payload travels unchanged through every mode, so whoever receives a packet knows which
//! flow and which step of it this is, and when it left.

use std::net::Ipv4Addr;

use dataplane::wire::checksum;
use dataplane::wire::ipv4::{PROTO_TCP, PROTO_UDP};
use dataplane::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_SYN};

pub const FRAME_LEN: usize = 64;
const ETH: usize = 14;
const IP_LEN: usize = 20;
const TCP_LEN: usize = 20;
const UDP_LEN: usize = 8;
const PROTO_IPIP: u8 = 4;
/// Bytes of the payload that carry the stamp, the step and the flow.
const TAG_LEN: usize = 10;
/// The stamp wraps every 2^40 ns (18 minutes); latencies are taken modulo that.
pub const STAMP_MASK: u64 = (1 << 40) - 1;
const TTL: u8 = 64;

/// What the device under test does to a client's packet on its way to a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dut {
    /// Destination rewritten to a real server; replies come back through the device.
    Nat,
    /// Source rewritten to a local address too.
    FullNat,
    /// Only the destination MAC; real servers answer the clients directly.
    Dr,
    /// IP-in-IP to the real server.
    Tun,
    /// Nothing but the MACs (dpdk-testpmd io or macswap: the ceiling).
    Passthrough,
}

impl Dut {
    pub fn from_name(name: &str) -> Option<Dut> {
        Some(match name {
            "nat" => Dut::Nat,
            "fullnat" => Dut::FullNat,
            "dr" => Dut::Dr,
            "tun" => Dut::Tun,
            "passthrough" => Dut::Passthrough,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Dut::Nat => "nat",
            Dut::FullNat => "fullnat",
            Dut::Dr => "dr",
            Dut::Tun => "tun",
            Dut::Passthrough => "passthrough",
        }
    }

    /// Whether replies cross the device too (NAT and FULLNAT must; DR and TUN cannot).
    pub fn replies_cross_by_default(self) -> bool {
        matches!(self, Dut::Nat | Dut::FullNat)
    }

    /// The TTL a packet has after one crossing.
    fn ttl_after(self) -> u8 {
        match self {
            Dut::Passthrough => TTL,
            _ => TTL - 1,
        }
    }
}

/// An inclusive run of consecutive IPv4 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    pub first: Ipv4Addr,
    pub count: u32,
}

impl AddrRange {
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr).wrapping_sub(u32::from(self.first)) < self.count
    }
}

/// Who is who on the two links.
#[derive(Debug, Clone)]
pub struct Addressing {
    pub dut: Dut,
    pub proto_udp: bool,
    /// The generator's MAC on the clients' link, and the device's there.
    pub client_mac: [u8; 6],
    pub dut_client_mac: [u8; 6],
    /// The generator's MAC on the servers' link (every real server's, for the device's
    /// neighbour table), and the device's there.
    pub server_mac: [u8; 6],
    pub dut_server_mac: [u8; 6],
    /// Client addresses; each carries `ports_per_client` flows from `first_port` up.
    pub clients: AddrRange,
    pub first_port: u16,
    pub ports_per_client: u32,
    pub vip: Ipv4Addr,
    pub vport: u16,
    pub reals: AddrRange,
    /// NAT and FULLNAT: the real servers' port.
    pub rport: u16,
    /// FULLNAT: the device's local addresses (the source the real servers see).
    pub local: AddrRange,
    /// TUN: the tunnel's outer source (the device's address on the servers' link).
    pub tunnel_src: Ipv4Addr,
}

/// A packet that passed its checks: which flow and step it is and when it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub flow: u32,
    pub step: u8,
    pub stamp: u64,
}

/// Why an arriving packet failed its checks. Each is a defect of the device under test (or of
/// the generator): the report is refused when any was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    Short,
    NotIpv4,
    IpChecksum,
    L4Checksum,
    Ttl,
    Protocol,
    Source,
    Destination,
    Mac,
    Tunnel,
    Flow,
}

impl Bad {
    pub const ALL: [Bad; 11] = [
        Bad::Short,
        Bad::NotIpv4,
        Bad::IpChecksum,
        Bad::L4Checksum,
        Bad::Ttl,
        Bad::Protocol,
        Bad::Source,
        Bad::Destination,
        Bad::Mac,
        Bad::Tunnel,
        Bad::Flow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bad::Short => "short",
            Bad::NotIpv4 => "not_ipv4",
            Bad::IpChecksum => "ip_checksum",
            Bad::L4Checksum => "l4_checksum",
            Bad::Ttl => "ttl",
            Bad::Protocol => "protocol",
            Bad::Source => "source",
            Bad::Destination => "destination",
            Bad::Mac => "mac",
            Bad::Tunnel => "tunnel",
            Bad::Flow => "flow",
        }
    }
}

/// What arrived on a link: a checked packet, something to ignore (ARP: the device may resolve
/// neighbours), or a defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Packet(Arrival),
    Ignored,
    Bad(Bad),
}

fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn addr(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

impl Addressing {
    /// The addresses of `bench/configs/bench-*.ron` (scripts/bench.sh's rvsd): clients
    /// 198.51.100.10-73 with ports 1024-65535 (4.1M tuples), VIP 198.51.100.100:80, real
    /// servers 203.0.113.11-14 (port 8080 behind NAT/FULLNAT, 80 for DR/TUN), local addresses
    /// 203.0.113.200-216, rvsd at 198.51.100.1 and 203.0.113.1; locally administered MACs,
    /// 02:00:00:00:00:0x for the device and 02:00:00:00:01:0x for the generator.
    pub fn bench_defaults(dut: Dut, proto_udp: bool) -> Addressing {
        Addressing {
            dut,
            proto_udp,
            client_mac: [2, 0, 0, 0, 1, 1],
            dut_client_mac: [2, 0, 0, 0, 0, 1],
            server_mac: [2, 0, 0, 0, 1, 2],
            dut_server_mac: [2, 0, 0, 0, 0, 2],
            clients: AddrRange {
                first: Ipv4Addr::new(198, 51, 100, 10),
                count: 64,
            },
            first_port: 1024,
            ports_per_client: 64512,
            vip: Ipv4Addr::new(198, 51, 100, 100),
            vport: 80,
            reals: AddrRange {
                first: Ipv4Addr::new(203, 0, 113, 11),
                count: 4,
            },
            rport: if matches!(dut, Dut::Nat | Dut::FullNat) {
                8080
            } else {
                80
            },
            local: AddrRange {
                first: Ipv4Addr::new(203, 0, 113, 200),
                count: 17,
            },
            tunnel_src: Ipv4Addr::new(203, 0, 113, 1),
        }
    }

    /// How many distinct flows the client ranges hold.
    pub fn max_flows(&self) -> u64 {
        u64::from(self.clients.count) * u64::from(self.ports_per_client)
    }

    /// The client address and port of a flow.
    pub fn client_of(&self, flow: u32) -> (Ipv4Addr, u16) {
        let host = flow / self.ports_per_client;
        let port = self.first_port as u32 + flow % self.ports_per_client;
        (
            Ipv4Addr::from(u32::from(self.clients.first) + host),
            port as u16,
        )
    }

    fn l4_len(&self) -> usize {
        FRAME_LEN - ETH - IP_LEN
    }

    fn proto(&self) -> u8 {
        if self.proto_udp {
            PROTO_UDP
        } else {
            PROTO_TCP
        }
    }

    fn tag_at(&self) -> usize {
        ETH + IP_LEN + if self.proto_udp { UDP_LEN } else { TCP_LEN }
    }

    /// Writes a client's packet of `flow` at `step` into `buf` (at least [`FRAME_LEN`] long)
    /// with TCP `flags` (ignored for UDP), stamped `stamp`.
    pub fn write_client(&self, buf: &mut [u8], flow: u32, step: u8, flags: u8, stamp: u64) {
        let (src, sport) = self.client_of(flow);
        let buf = &mut buf[..FRAME_LEN];
        buf[0..6].copy_from_slice(&self.dut_client_mac);
        buf[6..12].copy_from_slice(&self.client_mac);
        put16(buf, 12, 0x0800);
        self.write_ip_l4(
            buf, src, sport, self.vip, self.vport, flags, step, flow, stamp,
        );
    }

    /// IPv4 and L4 headers, tag and checksums from the IP header on (Ethernet left alone).
    #[allow(clippy::too_many_arguments)]
    fn write_ip_l4(
        &self,
        buf: &mut [u8],
        src: Ipv4Addr,
        sport: u16,
        dst: Ipv4Addr,
        dport: u16,
        flags: u8,
        step: u8,
        flow: u32,
        stamp: u64,
    ) {
        let ip = &mut buf[ETH..ETH + IP_LEN];
        ip[0] = 0x45;
        ip[1] = 0;
        put16(ip, 2, (FRAME_LEN - ETH) as u16);
        put16(ip, 4, 0);
        put16(ip, 6, 0x4000);
        ip[8] = TTL;
        ip[9] = self.proto();
        put16(ip, 10, 0);
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        let c = checksum::checksum(ip);
        put16(ip, 10, c);

        let l4_at = ETH + IP_LEN;
        let tag_at = self.tag_at();
        let l4 = &mut buf[l4_at..];
        put16(l4, 0, sport);
        put16(l4, 2, dport);
        if self.proto_udp {
            put16(l4, 4, self.l4_len() as u16);
            put16(l4, 6, 0);
        } else {
            l4[4..8].copy_from_slice(&u32::from(step).to_be_bytes());
            l4[8..12].copy_from_slice(&[0; 4]);
            l4[12] = 0x50;
            l4[13] = flags;
            put16(l4, 14, 0xffff);
            put16(l4, 16, 0);
            put16(l4, 18, 0);
        }
        let tag = &mut buf[tag_at..];
        tag[0..5].copy_from_slice(&(stamp & STAMP_MASK).to_be_bytes()[3..8]);
        tag[5] = step;
        tag[6..10].copy_from_slice(&flow.to_be_bytes());
        tag[TAG_LEN..].fill(0);
        let l4 = &mut buf[l4_at..];
        let pseudo = checksum::pseudo_header_sum(src, dst, self.proto(), l4.len() as u16);
        let mut c = !checksum::combine(pseudo, checksum::sum(l4));
        if self.proto_udp && c == 0 {
            c = 0xffff;
        }
        put16(l4, if self.proto_udp { 6 } else { 16 }, c);
    }

    /// Checks an IPv4 packet at `ip` (the inner one for TUN) against the flow in its tag.
    /// `reply`: it is a real server's answer arriving at the clients' side.
    fn check_ip(&self, frame: &[u8], ip: usize, reply: bool) -> Result<Arrival, Bad> {
        if frame.len() < ip + (FRAME_LEN - ETH) {
            return Err(Bad::Short);
        }
        let h = &frame[ip..ip + IP_LEN];
        if h[0] != 0x45 {
            return Err(Bad::NotIpv4);
        }
        if !checksum::verify(h) {
            return Err(Bad::IpChecksum);
        }
        if h[9] != self.proto() {
            return Err(Bad::Protocol);
        }
        if h[8] != self.dut.ttl_after() {
            return Err(Bad::Ttl);
        }
        let total = get16(h, 2) as usize;
        if total != FRAME_LEN - ETH || frame.len() < ip + total {
            return Err(Bad::Short);
        }
        let (src, dst) = (addr(h, 12), addr(h, 16));
        let l4 = &frame[ip + IP_LEN..ip + total];
        let pseudo = checksum::pseudo_header_sum(src, dst, self.proto(), l4.len() as u16);
        let udp_unset = self.proto_udp && get16(l4, 6) == 0;
        if !udp_unset && checksum::combine(pseudo, checksum::sum(l4)) != 0xffff {
            return Err(Bad::L4Checksum);
        }
        let tag_at = if self.proto_udp { UDP_LEN } else { TCP_LEN };
        let tag = &l4[tag_at..tag_at + TAG_LEN];
        let mut stamp = [0u8; 8];
        stamp[3..8].copy_from_slice(&tag[0..5]);
        let arrival = Arrival {
            stamp: u64::from_be_bytes(stamp),
            step: tag[5],
            flow: u32::from_be_bytes([tag[6], tag[7], tag[8], tag[9]]),
        };
        if u64::from(arrival.flow) >= self.max_flows() {
            return Err(Bad::Flow);
        }
        let (client, cport) = self.client_of(arrival.flow);
        let (sport, dport) = (get16(l4, 0), get16(l4, 2));
        if reply {
            if (src, sport) != (self.vip, self.vport) {
                return Err(Bad::Source);
            }
            if (dst, dport) != (client, cport) {
                return Err(Bad::Destination);
            }
            return Ok(arrival);
        }
        let source_ok = match self.dut {
            Dut::FullNat => self.local.contains(src),
            _ => (src, sport) == (client, cport),
        };
        if !source_ok {
            return Err(Bad::Source);
        }
        let destination_ok = match self.dut {
            Dut::Nat | Dut::FullNat => self.reals.contains(dst) && dport == self.rport,
            _ => (dst, dport) == (self.vip, self.vport),
        };
        if !destination_ok {
            return Err(Bad::Destination);
        }
        Ok(arrival)
    }

    fn is_arp(frame: &[u8]) -> bool {
        frame.len() >= ETH && get16(frame, 12) == 0x0806
    }

    /// A packet arriving on the servers' link, sent there by the device for a real server.
    pub fn check_at_server(&self, frame: &[u8]) -> Received {
        if Self::is_arp(frame) {
            return Received::Ignored;
        }
        if frame.len() < ETH + IP_LEN || get16(frame, 12) != 0x0800 {
            return Received::Bad(Bad::NotIpv4);
        }
        if self.dut != Dut::Passthrough && frame[0..6] != self.server_mac {
            return Received::Bad(Bad::Mac);
        }
        let inner = if self.dut == Dut::Tun {
            let outer = &frame[ETH..ETH + IP_LEN];
            if outer[0] != 0x45 || !checksum::verify(outer) {
                return Received::Bad(Bad::Tunnel);
            }
            let ok = outer[9] == PROTO_IPIP
                && addr(outer, 12) == self.tunnel_src
                && self.reals.contains(addr(outer, 16))
                && get16(outer, 2) as usize == FRAME_LEN - ETH + IP_LEN;
            if !ok {
                return Received::Bad(Bad::Tunnel);
            }
            ETH + IP_LEN
        } else {
            ETH
        };
        match self.check_ip(frame, inner, false) {
            Ok(a) => Received::Packet(a),
            Err(b) => Received::Bad(b),
        }
    }

    /// A real server's answer arriving back on the clients' link.
    pub fn check_at_client(&self, frame: &[u8]) -> Received {
        if Self::is_arp(frame) {
            return Received::Ignored;
        }
        if frame.len() < ETH + IP_LEN || get16(frame, 12) != 0x0800 {
            return Received::Bad(Bad::NotIpv4);
        }
        if self.dut != Dut::Passthrough && frame[0..6] != self.client_mac {
            return Received::Bad(Bad::Mac);
        }
        match self.check_ip(frame, ETH, true) {
            Ok(a) => Received::Packet(a),
            Err(b) => Received::Bad(b),
        }
    }

    /// Turns a packet that passed [`check_at_server`](Self::check_at_server) into the real
    /// server's answer, in place: addresses and ports swapped, TCP flags answered (SYN with
    /// SYN-ACK, FIN with FIN-ACK, anything else with ACK), TTL 64, stamped afresh, sent to
    /// the device's MAC on the servers' link. Not for TUN (its answers do not cross back).
    pub fn write_reply(&self, frame: &mut [u8], stamp: u64) {
        let h = &frame[ETH..ETH + IP_LEN];
        let (src, dst) = (addr(h, 12), addr(h, 16));
        let l4 = ETH + IP_LEN;
        let (sport, dport) = (get16(frame, l4), get16(frame, l4 + 2));
        let flags = if self.proto_udp {
            0
        } else {
            match frame[l4 + 13] {
                f if f & FLAG_SYN != 0 => FLAG_SYN | FLAG_ACK,
                f if f & FLAG_FIN != 0 => FLAG_FIN | FLAG_ACK,
                _ => FLAG_ACK,
            }
        };
        let tag = self.tag_at();
        let step = frame[tag + 5];
        let flow = u32::from_be_bytes([
            frame[tag + 6],
            frame[tag + 7],
            frame[tag + 8],
            frame[tag + 9],
        ]);
        frame[0..6].copy_from_slice(&self.dut_server_mac);
        frame[6..12].copy_from_slice(&self.server_mac);
        self.write_ip_l4(frame, dst, dport, src, sport, flags, step, flow, stamp);
    }
}
