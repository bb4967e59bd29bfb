//! The fast path's view of a frame: the first [`LEN`] bytes of an untagged Ethernet frame
//! carrying IPv4 without options and TCP or UDP (Ethernet, the 20-byte IPv4 header, the ports
//! and UDP's length and checksum), over a fixed-size array. Every field sits at a constant
//! offset of that array, so no accessor is bounds-checked: the view costs nothing over
//! hand-written offsets, and the offsets are the header modules' own (`field`).
//!
//! What the view does not check is the caller's to know (the staged burst's parse): that the
//! frame is IPv4 with a 20-byte header, that the L4 header is there.

use std::borrow::{Borrow, BorrowMut};
use std::net::Ipv4Addr;

use super::{ethernet, ipv4, tcp, udp};

/// Bytes the view covers.
pub const LEN: usize = L4 + 8;
const L3: usize = ethernet::HEADER_LEN;
const L4: usize = L3 + ipv4::MIN_HEADER_LEN;

/// The view; `T` is `&[u8; LEN]` to read, `&mut [u8; LEN]` to write.
#[derive(Debug)]
pub struct Front<T>(T);

impl<'a> Front<&'a [u8; LEN]> {
    /// The view over the start of `frame`; `None` if it is shorter than [`LEN`].
    #[inline(always)]
    pub fn new(frame: &'a [u8]) -> Option<Self> {
        frame.first_chunk().map(Front)
    }
}

impl<'a> Front<&'a mut [u8; LEN]> {
    /// The writable view over the start of `frame`, and the bytes after it; `None` if it is
    /// shorter than [`LEN`].
    #[inline(always)]
    pub fn new_mut(frame: &'a mut [u8]) -> Option<(Self, &'a mut [u8])> {
        frame
            .split_first_chunk_mut()
            .map(|(front, rest)| (Front(front), rest))
    }
}

impl<T: Borrow<[u8; LEN]>> Front<T> {
    #[inline(always)]
    fn b(&self) -> &[u8; LEN] {
        self.0.borrow()
    }

    #[inline(always)]
    fn u16_at(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.b()[at], self.b()[at + 1]])
    }

    #[inline(always)]
    fn addr_at(&self, at: usize) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
    }

    #[inline(always)]
    pub fn dst_mac(&self) -> &[u8; 6] {
        self.b()[ethernet::field::DST].try_into().expect("6 bytes")
    }

    /// Whether the source MAC is a group address (no host sends from one).
    #[inline(always)]
    pub fn src_mac_is_multicast(&self) -> bool {
        self.b()[ethernet::field::SRC.start] & 1 != 0
    }

    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        self.u16_at(ethernet::field::ETHERTYPE)
    }

    /// Version and header length (0x45: IPv4, 20 bytes).
    #[inline(always)]
    pub fn ver_ihl(&self) -> u8 {
        self.b()[L3 + ipv4::field::VER_IHL]
    }

    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        self.u16_at(L3 + ipv4::field::LENGTH)
    }

    /// Whether the datagram is a fragment (MF set or an offset).
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.u16_at(L3 + ipv4::field::FLAGS_FRAG) & 0x3fff != 0
    }

    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.b()[L3 + ipv4::field::TTL]
    }

    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.b()[L3 + ipv4::field::PROTOCOL]
    }

    #[inline(always)]
    pub fn ip_checksum(&self) -> u16 {
        self.u16_at(L3 + ipv4::field::CHECKSUM)
    }

    /// The IPv4 header's 20 bytes.
    #[inline(always)]
    pub fn ip_header(&self) -> &[u8; ipv4::MIN_HEADER_LEN] {
        self.b()[L3..L4].try_into().expect("20 bytes")
    }

    #[inline(always)]
    pub fn src_addr(&self) -> Ipv4Addr {
        self.addr_at(L3 + ipv4::field::SRC.start)
    }

    #[inline(always)]
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.addr_at(L3 + ipv4::field::DST.start)
    }

    /// TCP's or UDP's (at the same place in both).
    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        self.u16_at(L4 + tcp::field::SRC_PORT)
    }

    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        self.u16_at(L4 + tcp::field::DST_PORT)
    }

    #[inline(always)]
    pub fn udp_len(&self) -> u16 {
        self.u16_at(L4 + udp::field::LENGTH)
    }

    #[inline(always)]
    pub fn udp_checksum(&self) -> u16 {
        self.u16_at(L4 + udp::field::CHECKSUM)
    }
}

impl<T: Borrow<[u8; LEN]> + BorrowMut<[u8; LEN]>> Front<T> {
    #[inline(always)]
    fn b_mut(&mut self) -> &mut [u8; LEN] {
        self.0.borrow_mut()
    }

    #[inline(always)]
    fn set_u16_at(&mut self, at: usize, v: u16) {
        self.b_mut()[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// The destination MAC then the source MAC: the Ethernet header's first 12 bytes.
    #[inline(always)]
    pub fn set_macs(&mut self, macs: &[u8; 12]) {
        self.b_mut()[ethernet::field::DST.start..ethernet::field::SRC.end].copy_from_slice(macs);
    }

    #[inline(always)]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.b_mut()[L3 + ipv4::field::TTL] = ttl;
    }

    #[inline(always)]
    pub fn set_ip_checksum(&mut self, sum: u16) {
        self.set_u16_at(L3 + ipv4::field::CHECKSUM, sum);
    }

    /// Source and destination address (adjacent in the header: one 8-byte store).
    #[inline(always)]
    pub fn set_addrs(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let both = (u64::from(u32::from(src)) << 32) | u64::from(u32::from(dst));
        let at = L3 + ipv4::field::SRC.start;
        self.b_mut()[at..at + 8].copy_from_slice(&both.to_be_bytes());
    }

    /// TCP's or UDP's source and destination port (one 4-byte store).
    #[inline(always)]
    pub fn set_ports(&mut self, src: u16, dst: u16) {
        let both = (u32::from(src) << 16) | u32::from(dst);
        let at = L4 + tcp::field::SRC_PORT;
        self.b_mut()[at..at + 4].copy_from_slice(&both.to_be_bytes());
    }

    #[inline(always)]
    pub fn set_udp_checksum(&mut self, sum: u16) {
        self.set_u16_at(L4 + udp::field::CHECKSUM, sum);
    }
}

/// Where TCP's checksum sits in the bytes after the view (`Front::new_mut`'s second half),
/// for a TCP header of 20 bytes or more.
pub const TCP_CHECKSUM_AFTER: usize = tcp::field::CHECKSUM - 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::testing::{ep, frame};

    #[test]
    fn fields_where_the_header_modules_put_them() {
        let f = frame(
            ipv4::PROTO_UDP,
            ep([198, 51, 100, 10], 40000),
            ep([198, 51, 100, 100], 53),
            64,
            0,
            b"abcd",
        );
        let v = Front::new(&f).unwrap();
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(v.dst_mac(), &f[0..6]);
        assert!(!v.src_mac_is_multicast());
        assert_eq!(v.ethertype(), 0x0800);
        assert_eq!(v.ver_ihl(), 0x45);
        assert_eq!(usize::from(v.total_len()), f.len() - 14);
        assert!(!v.is_fragment());
        assert_eq!((v.ttl(), v.protocol()), (64, ipv4::PROTO_UDP));
        assert_eq!(v.ip_checksum(), ip.checksum());
        assert_eq!((v.src_addr(), v.dst_addr()), (ip.src(), ip.dst()));
        assert_eq!((v.src_port(), v.dst_port(), v.udp_len()), (40000, 53, 12));
        let udp_sum = v.udp_checksum();

        let mut g = f.clone();
        let (mut w, rest) = Front::new_mut(&mut g).unwrap();
        assert_eq!(rest.len(), f.len() - LEN);
        w.set_macs(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        w.set_ttl(9);
        w.set_ip_checksum(0xabcd);
        w.set_addrs([1, 2, 3, 4].into(), [5, 6, 7, 8].into());
        w.set_ports(7, 8);
        w.set_udp_checksum(udp_sum ^ 1);
        assert_eq!(&g[..12], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let ip = ipv4::Packet::new_checked(&g[14..]).unwrap();
        assert_eq!((ip.ttl(), ip.checksum()), (9, 0xabcd));
        assert_eq!(
            (ip.src(), ip.dst()),
            ([1, 2, 3, 4].into(), [5, 6, 7, 8].into())
        );
        let u = udp::Packet::new_checked(&g[34..]).unwrap();
        assert_eq!(
            (u.src_port(), u.dst_port(), u.checksum()),
            (7, 8, udp_sum ^ 1)
        );
    }
}
