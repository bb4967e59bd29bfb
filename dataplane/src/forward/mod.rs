//! Forwarding: one file per LVS mode with the rewrite for each direction it has, on top of the
//! shared primitives here. Every address or port change updates the IPv4 and TCP/UDP
//! checksums incrementally (RFC 1624), touching only the words it changes.
//!
//! The functions take the frame's bytes and a [`Parsed`] that the engine validated once; they
//! never re-check lengths beyond what slicing needs, and never panic on a validated packet.

pub mod dr;
pub mod fullnat;
pub mod icmp_error;
pub mod nat;
pub mod reset;
pub mod tun;

use std::net::Ipv4Addr;

use crate::flow::{Endpoint, FlowKey};
use crate::wire::checksum;
use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};
pub(crate) use crate::wire::{read_u16, write_u16};

/// Offsets and values of a validated IPv4 TCP/UDP packet in an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Offset of the IPv4 header.
    pub l3: usize,
    /// Offset of the TCP/UDP header.
    pub l4: usize,
    /// End of the IPv4 datagram (link-layer padding after it is not part of the packet).
    pub end: usize,
    pub protocol: u8,
    pub src: Endpoint,
    pub dst: Endpoint,
    /// TCP flags (0 for UDP).
    pub tcp_flags: u8,
}

impl Parsed {
    pub fn key(&self) -> FlowKey {
        FlowKey::new(self.protocol, self.src, self.dst)
    }

    /// Length of the IPv4 datagram.
    pub fn ip_len(&self) -> usize {
        self.end - self.l3
    }
}

const IP_TTL: usize = 8;
const IP_CHECKSUM: usize = 10;
const IP_SRC: usize = 12;
const IP_DST: usize = 16;

/// Offset of the L4 checksum in the TCP or UDP header, if the protocol has one we maintain.
#[inline]
fn l4_checksum_offset(protocol: u8) -> Option<usize> {
    match protocol {
        PROTO_TCP => Some(16),
        PROTO_UDP => Some(6),
        _ => None,
    }
}

#[inline]
fn read_addr(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Replaces the IPv4 address at `at` (source or destination), fixing the IPv4 header
/// checksum and, where the L4 header follows at `l4`, the pseudo-header part of its checksum.
#[inline]
fn rewrite_addr(buf: &mut [u8], l3: usize, l4: Option<(usize, u8)>, at: usize, new: Ipv4Addr) {
    let old = u32::from(read_addr(buf, l3 + at));
    let new = u32::from(new);
    if old == new {
        return;
    }
    buf[l3 + at..l3 + at + 4].copy_from_slice(&new.to_be_bytes());
    let ip_sum = read_u16(buf, l3 + IP_CHECKSUM);
    write_u16(
        buf,
        l3 + IP_CHECKSUM,
        checksum::update_u32(ip_sum, old, new),
    );
    if let Some((l4, protocol)) = l4 {
        update_l4_checksum(buf, l4, protocol, |sum| checksum::update_u32(sum, old, new));
    }
}

/// Replaces the TCP/UDP port at `l4 + at` (0 source, 2 destination), fixing the checksum.
#[inline]
fn rewrite_port(buf: &mut [u8], l4: usize, protocol: u8, at: usize, new: u16) {
    let old = read_u16(buf, l4 + at);
    if old == new {
        return;
    }
    write_u16(buf, l4 + at, new);
    update_l4_checksum(buf, l4, protocol, |sum| {
        checksum::update_word(sum, old, new)
    });
}

/// Applies `update` to the L4 checksum. A UDP checksum of 0 means "none" and stays 0; a
/// computed UDP 0 is sent as 0xffff (RFC 768).
#[inline]
fn update_l4_checksum(buf: &mut [u8], l4: usize, protocol: u8, update: impl Fn(u16) -> u16) {
    let Some(off) = l4_checksum_offset(protocol) else {
        return;
    };
    let at = l4 + off;
    if at + 2 > buf.len() {
        return;
    }
    let sum = read_u16(buf, at);
    if protocol == PROTO_UDP && sum == 0 {
        return;
    }
    let mut new = update(sum);
    if protocol == PROTO_UDP && new == 0 {
        new = 0xffff;
    }
    write_u16(buf, at, new);
}

/// Rewrites source address and port of the packet `p`.
#[inline]
pub fn set_src(buf: &mut [u8], p: &Parsed, new: Endpoint) {
    rewrite_addr(buf, p.l3, Some((p.l4, p.protocol)), IP_SRC, new.addr);
    rewrite_port(buf, p.l4, p.protocol, 0, new.port);
}

/// Rewrites destination address and port of the packet `p`.
#[inline]
pub fn set_dst(buf: &mut [u8], p: &Parsed, new: Endpoint) {
    rewrite_addr(buf, p.l3, Some((p.l4, p.protocol)), IP_DST, new.addr);
    rewrite_port(buf, p.l4, p.protocol, 2, new.port);
}

/// Decrements the TTL of the IPv4 header at `l3` (checksum updated); `false` if the packet
/// must not be forwarded (TTL was 0 or 1: the caller answers ICMP time exceeded).
#[inline]
pub fn decrement_ttl(buf: &mut [u8], l3: usize) -> bool {
    let ttl = buf[l3 + IP_TTL];
    if ttl <= 1 {
        return false;
    }
    let protocol = buf[l3 + IP_TTL + 1];
    buf[l3 + IP_TTL] = ttl - 1;
    let sum = read_u16(buf, l3 + IP_CHECKSUM);
    let old = u16::from_be_bytes([ttl, protocol]);
    let new = u16::from_be_bytes([ttl - 1, protocol]);
    write_u16(buf, l3 + IP_CHECKSUM, checksum::update_word(sum, old, new));
    true
}

/// Sets the Ethernet addresses for the next hop.
#[inline]
pub fn set_macs(buf: &mut [u8], src: [u8; 6], dst: [u8; 6]) {
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
}

#[cfg(test)]
pub(crate) mod testing {
    //! Packet builders and independent checksum recomputation for the mode tests.

    use super::Parsed;
    use crate::flow::Endpoint;
    use crate::wire::checksum;
    use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};
    use std::net::Ipv4Addr;

    pub const CLIENT_MAC: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 0x0a];
    pub const LB_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];

    /// An Ethernet + IPv4 + TCP/UDP frame with correct checksums and `payload` bytes.
    pub fn frame(
        protocol: u8,
        src: Endpoint,
        dst: Endpoint,
        ttl: u8,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let l4_len = if protocol == PROTO_TCP { 20 } else { 8 } + payload.len();
        let mut f = vec![0u8; 14 + 20 + l4_len];
        f[0..6].copy_from_slice(&LB_MAC);
        f[6..12].copy_from_slice(&CLIENT_MAC);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = ttl;
        ip[9] = protocol;
        ip[12..16].copy_from_slice(&src.addr.octets());
        ip[16..20].copy_from_slice(&dst.addr.octets());
        let l4 = &mut f[34..];
        l4[0..2].copy_from_slice(&src.port.to_be_bytes());
        l4[2..4].copy_from_slice(&dst.port.to_be_bytes());
        if protocol == PROTO_TCP {
            l4[4..8].copy_from_slice(&1000u32.to_be_bytes());
            l4[12] = 5 << 4;
            l4[13] = flags;
            l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
            l4[20..].copy_from_slice(payload);
        } else {
            l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            l4[8..].copy_from_slice(payload);
        }
        fix_checksums(&mut f, 14);
        f
    }

    /// Recomputes every checksum from scratch (independently of the incremental code).
    pub fn fix_checksums(f: &mut [u8], l3: usize) {
        let ihl = usize::from(f[l3] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]));
        f[l3 + 10..l3 + 12].fill(0);
        let c = checksum::checksum(&f[l3..l3 + ihl]);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        let protocol = f[l3 + 9];
        let l4 = l3 + ihl;
        let at = match protocol {
            PROTO_TCP => 16,
            PROTO_UDP => 6,
            _ => return,
        };
        f[l4 + at..l4 + at + 2].fill(0);
        let c = l4_checksum(f, l3, l4, l3 + total);
        let c = if protocol == PROTO_UDP && c == 0 {
            0xffff
        } else {
            c
        };
        f[l4 + at..l4 + at + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// The L4 checksum over pseudo-header and segment, computed byte by byte (field zeroed).
    pub fn l4_checksum(f: &[u8], l3: usize, l4: usize, end: usize) -> u16 {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&f[l3 + 12..l3 + 20]);
        pseudo.extend_from_slice(&[0, f[l3 + 9]]);
        pseudo.extend_from_slice(&((end - l4) as u16).to_be_bytes());
        pseudo.extend_from_slice(&f[l4..end]);
        checksum::checksum(&pseudo)
    }

    /// Asserts that the IPv4 header and the L4 checksums of `f` are right (recomputed).
    pub fn assert_checksums(f: &[u8], l3: usize) {
        let mut copy = f.to_vec();
        fix_checksums(&mut copy, l3);
        assert_eq!(
            &copy[l3..],
            &f[l3..],
            "checksums differ from a full recomputation"
        );
    }

    pub fn parsed(f: &[u8]) -> Parsed {
        let l3 = 14;
        let protocol = f[l3 + 9];
        let l4 = l3 + usize::from(f[l3] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]));
        let ip = |at: usize| Ipv4Addr::new(f[at], f[at + 1], f[at + 2], f[at + 3]);
        let port = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
        Parsed {
            l3,
            l4,
            end: l3 + total,
            protocol,
            src: Endpoint::new(ip(l3 + 12), port(l4)),
            dst: Endpoint::new(ip(l3 + 16), port(l4 + 2)),
            tcp_flags: if protocol == PROTO_TCP { f[l4 + 13] } else { 0 },
        }
    }

    pub fn ep(a: [u8; 4], port: u16) -> Endpoint {
        Endpoint::new(a.into(), port)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn ttl_decrement_keeps_checksum_right() {
        let mut f = frame(
            PROTO_TCP,
            ep([198, 51, 100, 10], 40000),
            ep([198, 51, 100, 100], 80),
            64,
            0x02,
            b"",
        );
        assert!(decrement_ttl(&mut f, 14));
        assert_eq!(f[22], 63);
        assert_checksums(&f, 14);
        f[22] = 1;
        fix_checksums(&mut f, 14);
        let before = f.clone();
        assert!(!decrement_ttl(&mut f, 14));
        assert_eq!(f, before);
    }

    #[test]
    fn udp_without_checksum_stays_without() {
        let mut f = frame(
            PROTO_UDP,
            ep([198, 51, 100, 10], 5000),
            ep([198, 51, 100, 100], 9000),
            64,
            0,
            b"hi",
        );
        f[40..42].fill(0);
        let p = testing::parsed(&f);
        set_dst(&mut f, &p, ep([203, 0, 113, 11], 9001));
        assert_eq!(&f[40..42], &[0, 0]);
        assert_eq!(&f[30..34], &[203, 0, 113, 11]);
    }

    proptest::proptest! {
        /// Any source/destination rewrite leaves every checksum equal to a full recomputation.
        #[test]
        fn rewrites_match_full_recomputation(
            tcp in proptest::bool::ANY,
            src in proptest::array::uniform4(proptest::num::u8::ANY), sport in 1u16..,
            dst in proptest::array::uniform4(proptest::num::u8::ANY), dport in 1u16..,
            new_src in proptest::array::uniform4(proptest::num::u8::ANY), new_sport in 1u16..,
            new_dst in proptest::array::uniform4(proptest::num::u8::ANY), new_dport in 1u16..,
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
        ) {
            let protocol = if tcp { PROTO_TCP } else { PROTO_UDP };
            let mut f = frame(protocol, ep(src, sport), ep(dst, dport), 64, 0x10, &payload);
            let p = testing::parsed(&f);
            set_src(&mut f, &p, ep(new_src, new_sport));
            set_dst(&mut f, &p, ep(new_dst, new_dport));
            let mut fixed = f.clone();
            fix_checksums(&mut fixed, 14);
            proptest::prop_assert_eq!(&f[14..34], &fixed[14..34]);
            let at = if tcp { 34 + 16 } else { 34 + 6 };
            let (got, want) = (read_u16(&f, at), read_u16(&fixed, at));
            // 0x0000 and 0xffff are one number in one's complement (TCP may carry either).
            proptest::prop_assert!(got == want || (tcp && got ^ want == 0xffff && (got == 0 || want == 0)));
        }
    }
}
