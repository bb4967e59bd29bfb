//! ICMPv4 (RFC 792). Echo is what the appliance answers itself; error messages that quote an
//! inner header are translated on the load-balancing path, and the appliance emits some itself
//! (fragmentation needed, TTL exceeded) with [`emit_error`].
//!
//! An error quotes the offending datagram's IPv4 header and at least 8 bytes of what follows,
//! usually not the whole datagram: read the quote with [`super::ipv4::Packet::new_quoted`],
//! not `new_checked`, which would refuse it as truncated.

use super::{checksum, read_u16, write_u16, Result, WireError};

pub const HEADER_LEN: usize = 8;

pub const TYPE_ECHO_REPLY: u8 = 0;
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
pub const TYPE_SOURCE_QUENCH: u8 = 4;
pub const TYPE_REDIRECT: u8 = 5;
pub const TYPE_ECHO_REQUEST: u8 = 8;
pub const TYPE_TIME_EXCEEDED: u8 = 11;
pub const TYPE_PARAMETER_PROBLEM: u8 = 12;

/// Destination unreachable codes.
pub const CODE_NET_UNREACHABLE: u8 = 0;
pub const CODE_HOST_UNREACHABLE: u8 = 1;
pub const CODE_PORT_UNREACHABLE: u8 = 3;
/// Fragmentation needed and DF set; the next-hop MTU is in bytes 6..8 (RFC 1191).
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Time exceeded code: TTL exceeded in transit.
pub const CODE_TTL_EXCEEDED: u8 = 0;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const REST: std::ops::Range<usize> = 4..8;
    pub const NEXT_HOP_MTU: usize = 6;
    pub const QUOTED: usize = 8;
}

/// An ICMP message: the buffer is exactly the message (the IPv4 payload).
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Whether this is an error message (destination unreachable, source quench, redirect,
    /// time exceeded, parameter problem), which quotes an offending datagram and must never be
    /// answered with another error (RFC 1122 3.2.2).
    #[inline]
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            TYPE_DEST_UNREACHABLE
                | TYPE_SOURCE_QUENCH
                | TYPE_REDIRECT
                | TYPE_TIME_EXCEEDED
                | TYPE_PARAMETER_PROBLEM
        )
    }

    /// Next-hop MTU (bytes 6..8, RFC 1191); meaningful only for destination unreachable with
    /// code `CODE_FRAG_NEEDED` (0 from routers older than RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// The bytes after the 8-byte header; for an error, the offending IPv4 header and at least
    /// 8 bytes of its payload (read them with `ipv4::Packet::new_quoted`). Same bytes as
    /// [`data`](Self::data), named for errors.
    #[inline]
    pub fn quoted(&self) -> &[u8] {
        &self.buffer.as_ref()[field::QUOTED..]
    }

    /// Echo identifier.
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Echo sequence number.
    #[inline]
    pub fn seq(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SEQ)
    }

    /// Whether the checksum over the whole message is right.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }

    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    #[inline]
    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    #[inline]
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, value);
    }

    /// The quoted datagram, writable: the NAT rewrites its addresses and ports, then fixes
    /// this message's checksum.
    #[inline]
    pub fn quoted_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::QUOTED..]
    }

    pub fn set_echo(&mut self, ident: u16, seq: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, ident);
        write_u16(self.buffer.as_mut(), field::SEQ, seq);
    }

    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(value);
    }
}

/// Writes an ICMP error message into the front of `buf`: type, code, checksum, the 4-byte
/// rest of the header (for `CODE_FRAG_NEEDED`, the next-hop MTU in the low 16 bits; otherwise
/// usually 0), then `quoted` (the offending IPv4 header and at least 8 bytes of its payload,
/// RFC 792; at most 576 bytes of IP in all, RFC 1812 4.3.2.3, is the caller's choice). Computes
/// the checksum and returns the bytes written, `8 + quoted.len()`, or 0 without writing
/// anything if `buf` is too small.
pub fn emit_error(
    buf: &mut [u8],
    msg_type: u8,
    code: u8,
    rest_of_header: u32,
    quoted: &[u8],
) -> usize {
    let len = HEADER_LEN + quoted.len();
    let Some(b) = buf.get_mut(..len) else {
        return 0;
    };
    b[field::TYPE] = msg_type;
    b[field::CODE] = code;
    write_u16(b, field::CHECKSUM, 0);
    b[field::REST].copy_from_slice(&rest_of_header.to_be_bytes());
    b[field::QUOTED..].copy_from_slice(quoted);
    let value = checksum::checksum(b);
    write_u16(b, field::CHECKSUM, value);
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ipv4, tcp, udp};
    use proptest::collection::vec;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    // Port unreachable from 203.0.113.1, quoting the datagram 198.51.100.10:5353 ->
    // 203.0.113.1:53 (UDP, total length 40): its IPv4 header and the 8-byte UDP header only.
    const PORT_UNREACHABLE: [u8; 36] = [
        0x03, 0x03, 0xd5, 0x96, 0x00, 0x00, 0x00, 0x00, // ICMP header
        0x45, 0x00, 0x00, 0x28, 0xab, 0xcd, 0x40, 0x00, 0x40, 0x11, 0x28, 0xb8, 0xc6, 0x33, 0x64,
        0x0a, 0xcb, 0x00, 0x71, 0x01, // quoted IPv4 header
        0x14, 0xe9, 0x00, 0x35, 0x00, 0x14, 0x12, 0x34, // quoted UDP header
    ];

    // Fragmentation needed, next-hop MTU 1400, quoting a 1500-byte TCP datagram
    // 198.51.100.10:40000 -> 203.0.113.1:80: its IPv4 header and the first 8 TCP bytes.
    const FRAG_NEEDED: [u8; 36] = [
        0x03, 0x04, 0x04, 0x7b, 0x00, 0x00, 0x05, 0x78, // ICMP header, MTU 0x0578
        0x45, 0x00, 0x05, 0xdc, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0xbc, 0xa8, 0xc6, 0x33, 0x64,
        0x0a, 0xcb, 0x00, 0x71, 0x01, // quoted IPv4 header
        0x9c, 0x40, 0x00, 0x50, 0x1a, 0x2b, 0x3c, 0x4d, // ports and sequence number
    ];

    #[test]
    fn port_unreachable_deconstruct() {
        let p = Packet::new_checked(&PORT_UNREACHABLE[..]).unwrap();
        assert_eq!(p.msg_type(), TYPE_DEST_UNREACHABLE);
        assert_eq!(p.code(), CODE_PORT_UNREACHABLE);
        assert!(p.is_error());
        assert!(p.verify_checksum());
        assert_eq!(p.quoted(), &PORT_UNREACHABLE[8..]);

        assert_eq!(
            ipv4::Packet::new_checked(p.quoted()).unwrap_err(),
            WireError::Truncated
        );
        let inner = ipv4::Packet::new_quoted(p.quoted()).unwrap();
        assert!(inner.verify_checksum());
        assert_eq!(inner.protocol(), ipv4::PROTO_UDP);
        assert_eq!(inner.src(), Ipv4Addr::new(198, 51, 100, 10));
        assert_eq!(inner.dst(), Ipv4Addr::new(203, 0, 113, 1));
        assert_eq!(inner.total_len(), 40);
        let l4 = inner.quoted_payload();
        assert_eq!(l4.len(), 8);
        // The quoted UDP header is cut short of its length field, so only the ports are read.
        assert_eq!(
            udp::Packet::new_checked(l4).unwrap_err(),
            WireError::Truncated
        );
        let quoted_udp = udp::Packet::new_unchecked(l4);
        assert_eq!((quoted_udp.src_port(), quoted_udp.dst_port()), (5353, 53));
    }

    #[test]
    fn port_unreachable_construct() {
        let mut buf = [0xeeu8; 64];
        let n = emit_error(
            &mut buf,
            TYPE_DEST_UNREACHABLE,
            CODE_PORT_UNREACHABLE,
            0,
            &PORT_UNREACHABLE[8..],
        );
        assert_eq!(n, 36);
        assert_eq!(buf[..n], PORT_UNREACHABLE);
        assert!(buf[n..].iter().all(|&b| b == 0xee));
    }

    #[test]
    fn frag_needed_round_trip() {
        let p = Packet::new_checked(&FRAG_NEEDED[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.code()),
            (TYPE_DEST_UNREACHABLE, CODE_FRAG_NEEDED)
        );
        assert_eq!(p.next_hop_mtu(), 1400);
        assert!(p.verify_checksum());
        let inner = ipv4::Packet::new_quoted(p.quoted()).unwrap();
        assert_eq!(
            (inner.protocol(), inner.total_len()),
            (ipv4::PROTO_TCP, 1500)
        );
        let l4 = inner.quoted_payload();
        assert_eq!(l4, &[0x9c, 0x40, 0x00, 0x50, 0x1a, 0x2b, 0x3c, 0x4d]);
        assert_eq!(
            tcp::Packet::new_checked(l4).unwrap_err(),
            WireError::Truncated
        );

        let mut buf = [0u8; 36];
        let n = emit_error(
            &mut buf,
            TYPE_DEST_UNREACHABLE,
            CODE_FRAG_NEEDED,
            1400,
            &FRAG_NEEDED[8..],
        );
        assert_eq!((n, buf), (36, FRAG_NEEDED));

        // The setters build the same message.
        let mut built = [0u8; 36];
        let mut q = Packet::new_checked(&mut built[..]).unwrap();
        q.set_msg_type(TYPE_DEST_UNREACHABLE);
        q.set_code(CODE_FRAG_NEEDED);
        q.set_next_hop_mtu(1400);
        q.quoted_mut().copy_from_slice(&FRAG_NEEDED[8..]);
        q.fill_checksum();
        assert_eq!(built, FRAG_NEEDED);
    }

    #[test]
    fn emit_error_refuses_small_buffer() {
        let mut buf = [0xeeu8; 35];
        assert_eq!(emit_error(&mut buf, 11, 0, 0, &FRAG_NEEDED[8..]), 0);
        assert!(buf.iter().all(|&b| b == 0xee));
        let mut header_only = [0u8; 8];
        assert_eq!(emit_error(&mut header_only, 11, 0, 0, &[]), 8);
        assert!(checksum::verify(&header_only));
    }

    #[test]
    fn error_types() {
        let mut buf = [0u8; 8];
        for t in 0..=255u8 {
            buf[0] = t;
            let p = Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(p.is_error(), [3, 4, 5, 11, 12].contains(&t), "type {t}");
        }
    }

    #[test]
    fn echo_construct_and_verify() {
        let mut buf = [0u8; 12];
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.set_msg_type(TYPE_ECHO_REQUEST);
        p.set_code(0);
        p.set_echo(0x0102, 7);
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!((p.ident(), p.seq()), (0x0102, 7));
        assert_eq!(buf[..8], [8, 0, 0xf6, 0xf6, 1, 2, 0, 7]);
    }

    #[test]
    fn short_is_refused() {
        assert_eq!(
            Packet::new_checked(&[8u8, 0, 0][..]).unwrap_err(),
            WireError::Truncated
        );
    }

    proptest! {
        /// Arbitrary bytes, half of them shaped into an error quoting an IPv4 header with a
        /// total length near what is quoted, so the quoted view is actually made.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..80),
                                       shape in any::<bool>(),
                                       pick in any::<u16>()) {
            let mut bytes = bytes;
            if shape && bytes.len() >= 12 {
                bytes[0] = TYPE_DEST_UNREACHABLE;
                bytes[8] = 0x40 | (bytes[8] & 0x0f);
                let total = pick % (bytes.len() as u16);
                bytes[10..12].copy_from_slice(&total.to_be_bytes());
            }
            if let Ok(mut p) = Packet::new_checked(&mut bytes[..]) {
                let _ = (p.msg_type(), p.code(), p.checksum(), p.ident(), p.seq());
                let _ = (p.is_error(), p.next_hop_mtu(), p.verify_checksum(), p.data().len());
                prop_assert_eq!(p.quoted().len() + HEADER_LEN, p.buffer.len());
                if let Ok(mut inner) = ipv4::Packet::new_quoted(p.quoted_mut()) {
                    let _ = (inner.src(), inner.dst(), inner.protocol(), inner.quoted_payload());
                    let _ = inner.quoted_payload_mut().len();
                }
                p.fill_checksum();
                prop_assert!(p.verify_checksum());
            }
        }

        #[test]
        fn emit_error_never_panics(buf_len in 0usize..80,
                                   quoted in vec(any::<u8>(), 0..80),
                                   msg_type in any::<u8>(), rest in any::<u32>()) {
            let mut buf = vec![0u8; buf_len];
            let n = emit_error(&mut buf, msg_type, 0, rest, &quoted);
            if buf_len < HEADER_LEN + quoted.len() {
                prop_assert_eq!(n, 0);
            } else {
                prop_assert_eq!(n, HEADER_LEN + quoted.len());
                let p = Packet::new_checked(&buf[..n]).unwrap();
                prop_assert!(p.verify_checksum());
                prop_assert_eq!(p.quoted(), &quoted[..]);
            }
        }
    }
}
