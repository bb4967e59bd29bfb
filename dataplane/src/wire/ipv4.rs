//! IPv4 headers (RFC 791): options are carried (IHL > 5), fragments recognised.

use std::net::Ipv4Addr;

use super::{checksum, read_u16, write_u16, Result, WireError};

pub const MIN_HEADER_LEN: usize = 20;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_VRRP: u8 = 112;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: std::ops::Range<usize> = 12..16;
    pub const DST: std::ops::Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks once that the buffer holds the whole header and the whole datagram its total
    /// length announces (trailing link-layer padding is allowed and ignored).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(WireError::Malformed);
        }
        let header_len = usize::from(b[field::VER_IHL] & 0x0f) * 4;
        let total_len = usize::from(read_u16(b, field::LENGTH));
        if header_len < MIN_HEADER_LEN || total_len < header_len {
            return Err(WireError::Malformed);
        }
        if b.len() < header_len || b.len() < total_len {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH))
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    pub fn dont_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_DF != 0
    }

    #[inline]
    pub fn more_fragments(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FRAG_OFFSET_MASK) * 8
    }

    /// A fragment of a larger datagram (first or later).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_fragments() || self.frag_offset() != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        <[u8; 4]>::try_from(&self.buffer.as_ref()[field::SRC])
            .expect("4 bytes")
            .into()
    }

    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        <[u8; 4]>::try_from(&self.buffer.as_ref()[field::DST])
            .expect("4 bytes")
            .into()
    }

    /// Whether the header checksum (options included) is right.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(&self.buffer.as_ref()[..self.header_len()])
    }

    /// Options, between the fixed header and the payload.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// The datagram's payload, without link-layer padding.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    #[inline]
    pub fn set_src(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.octets());
    }

    #[inline]
    pub fn set_dst(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.octets());
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Recomputes the header checksum in full.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(value);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), self.total_len());
        &mut self.buffer.as_mut()[start..end]
    }
}

/// Parsed fixed header (options are not represented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub tos: u8,
    pub ident: u16,
    pub dont_fragment: bool,
    pub payload_len: usize,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        if !p.verify_checksum() {
            return Err(WireError::Malformed);
        }
        Ok(Repr {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            ttl: p.ttl(),
            tos: p.tos(),
            ident: p.ident(),
            dont_fragment: p.dont_fragment(),
            payload_len: p.total_len() - p.header_len(),
        })
    }

    /// Writes a 20-byte header with a correct checksum into the front of `buffer`.
    pub fn emit(&self, buffer: &mut [u8]) {
        let b = &mut buffer[..MIN_HEADER_LEN];
        b[field::VER_IHL] = 0x45;
        b[field::TOS] = self.tos;
        write_u16(b, field::LENGTH, (MIN_HEADER_LEN + self.payload_len) as u16);
        write_u16(b, field::IDENT, self.ident);
        write_u16(
            b,
            field::FLAGS_FRAG,
            if self.dont_fragment { FLAG_DF } else { 0 },
        );
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        b[field::SRC].copy_from_slice(&self.src.octets());
        b[field::DST].copy_from_slice(&self.dst.octets());
        write_u16(b, field::CHECKSUM, 0);
        let value = checksum::checksum(b);
        write_u16(b, field::CHECKSUM, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ICMP echo 198.51.100.10 -> 198.51.100.1, TTL 64, DF, 4 bytes of payload.
    const PACKET: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 198, 51, 100, 10,
        198, 51, 100, 1, 0xde, 0xad, 0xbe, 0xef,
    ];

    fn packet() -> [u8; 24] {
        let mut p = PACKET;
        Packet::new_unchecked(&mut p[..]).fill_checksum();
        p
    }

    #[test]
    fn deconstruct() {
        let bytes = packet();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_fragment() && !p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), PROTO_ICMP);
        assert_eq!(p.src(), Ipv4Addr::new(198, 51, 100, 10));
        assert_eq!(p.dst(), Ipv4Addr::new(198, 51, 100, 1));
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn round_trip() {
        let bytes = packet();
        let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        let mut out = [0u8; 24];
        repr.emit(&mut out);
        out[20..].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(out, bytes);
    }

    #[test]
    fn padding_is_not_payload() {
        let mut padded = [0u8; 46];
        padded[..24].copy_from_slice(&packet());
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 4);
    }

    #[test]
    fn refuses_bad_lengths() {
        let bytes = packet();
        assert_eq!(
            Packet::new_checked(&bytes[..19]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&bytes[..23]).unwrap_err(),
            WireError::Truncated
        );
        let mut bad = bytes;
        bad[0] = 0x44; // IHL 4
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut bad = bytes;
        bad[0] = 0x65; // version 6
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut bad = bytes;
        bad[0] = 0x4f; // IHL 15: 60 bytes, longer than the buffer
        bad[3] = 60;
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Truncated
        );
        let mut bad = bytes;
        bad[3] = 19; // total length below the header length
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
    }

    #[test]
    fn options_and_fragments() {
        let mut b = [0u8; 28];
        b[..20].copy_from_slice(&packet()[..20]);
        b[0] = 0x46; // 24-byte header: 4 bytes of options
        b[3] = 28;
        b[6] = 0x20; // MF
        b[20..24].copy_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 4);
        assert!(p.is_fragment() && p.more_fragments() && p.frag_offset() == 0);
    }
}
