//! UDP headers (RFC 768). The checksum is optional over IPv4: 0 means "not computed", so a
//! computed 0 is sent as 0xffff. Whoever rewrites ports or addresses must keep a 0 checksum 0
//! and, after an incremental update (RFC 1624) of a non-zero one, turn a resulting 0 into
//! 0xffff; that way the result equals a full recompute bit for bit.

use std::net::Ipv4Addr;

use super::{checksum, read_u16, write_u16, Result, WireError};

pub const HEADER_LEN: usize = 8;

const PROTO_UDP: u8 = 17;

pub(crate) mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// A UDP datagram: the buffer is exactly the datagram (the IPv4 payload). The length field
/// bounds the payload and the checksum, so bytes past it are ignored.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks once that the buffer holds the header and as many bytes as the length field
    /// says, so `payload()` and the checksum never go out of bounds afterwards. A length below
    /// the header's is malformed.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let length = usize::from(read_u16(b, field::LENGTH));
        if length < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if length > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header + payload, in bytes.
    #[inline]
    pub fn length(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The bytes the length field covers after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..usize::from(self.length())]
    }

    /// Whether the checksum over the pseudo-header and the datagram is right; a checksum of 0
    /// was not computed by the sender and is accepted.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let length = self.length();
        let datagram = &self.buffer.as_ref()[..usize::from(length)];
        let pseudo = checksum::pseudo_header_sum(src, dst, PROTO_UDP, length);
        checksum::combine(pseudo, checksum::sum(datagram)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Writes the length field. The caller keeps it within 8..=buffer length, or `payload()`
    /// and the checksum would go out of bounds.
    #[inline]
    pub fn set_length(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Recomputes the checksum in full over the pseudo-header and the datagram (as far as the
    /// length field says). A computed 0 is written as 0xffff, since 0 means "no checksum".
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let length = self.length();
        let datagram = &self.buffer.as_ref()[..usize::from(length)];
        let pseudo = checksum::pseudo_header_sum(src, dst, PROTO_UDP, length);
        let value = !checksum::combine(pseudo, checksum::sum(datagram));
        self.set_checksum(if value == 0 { 0xffff } else { value });
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length());
        &mut self.buffer.as_mut()[field::PAYLOAD..end]
    }
}

/// Parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

impl Repr {
    /// Parses a datagram whose checksum (over the pseudo-header of `src`/`dst`) is right or
    /// absent (0); a wrong checksum is `Malformed`, as for [`super::ipv4::Repr::parse`].
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, src: Ipv4Addr, dst: Ipv4Addr) -> Result<Repr> {
        if !p.verify_checksum(src, dst) {
            return Err(WireError::Malformed);
        }
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: p.payload().len(),
        })
    }

    /// Writes the 8-byte header into the front of `buffer` and a checksum over it and the
    /// `payload_len` bytes that follow, which the caller has already written. `buffer` must
    /// hold `HEADER_LEN + payload_len` bytes, at most 65535 (slicing panics otherwise).
    pub fn emit(&self, buffer: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
        let length = HEADER_LEN + self.payload_len;
        let b = &mut buffer[..length];
        write_u16(b, field::SRC_PORT, self.src_port);
        write_u16(b, field::DST_PORT, self.dst_port);
        write_u16(b, field::LENGTH, length as u16);
        Packet::new_unchecked(b).fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

    // 198.51.100.10:5353 -> 203.0.113.1:53, payload "rvs!", checksum 0x9ee0.
    const DATAGRAM: [u8; 12] = [
        0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0x9e, 0xe0, b'r', b'v', b's', b'!',
    ];

    /// An independent checksum: plain RFC 1071 over the pseudo-header and datagram laid out
    /// as bytes, with a checksum field of zero; not yet mapped 0 -> 0xffff.
    fn reference_checksum(src: Ipv4Addr, dst: Ipv4Addr, datagram: &[u8]) -> u16 {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&[0, 17]);
        bytes.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
        bytes.extend_from_slice(datagram);
        bytes[12 + 6] = 0;
        bytes[12 + 7] = 0;
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        let mut acc: u32 = 0;
        for w in bytes.chunks(2) {
            acc += u32::from(w[0]) << 8 | u32::from(w[1]);
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn deconstruct() {
        assert_eq!(reference_checksum(SRC, DST, &DATAGRAM), 0x9ee0);
        let p = Packet::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 5353);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.length(), 12);
        assert_eq!(p.checksum(), 0x9ee0);
        assert_eq!(p.payload(), b"rvs!");
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(203, 0, 113, 2)));
    }

    #[test]
    fn construct() {
        let mut buf = [0u8; 12];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(5353);
        p.set_dst_port(53);
        p.set_length(12);
        p.payload_mut().copy_from_slice(b"rvs!");
        p.fill_checksum(SRC, DST);
        assert_eq!(buf, DATAGRAM);
    }

    #[test]
    fn round_trip() {
        let p = Packet::new_checked(&DATAGRAM[..]).unwrap();
        let repr = Repr::parse(&p, SRC, DST).unwrap();
        assert_eq!(
            repr,
            Repr {
                src_port: 5353,
                dst_port: 53,
                payload_len: 4
            }
        );
        let mut buf = [0xeeu8; 12];
        buf[8..].copy_from_slice(b"rvs!");
        repr.emit(&mut buf, SRC, DST);
        assert_eq!(buf, DATAGRAM);
        let mut bad = DATAGRAM;
        bad[11] ^= 1;
        let bad = Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(Repr::parse(&bad, SRC, DST), Err(WireError::Malformed));
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut buf = DATAGRAM;
        buf[6..8].copy_from_slice(&[0, 0]);
        buf[11] ^= 0x55; // the payload no longer matches any checksum
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        assert!(Repr::parse(&p, SRC, DST).is_ok());
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // 198.51.100.10:5353 -> 203.0.113.1:53 with payload 84 7c: the sum is 0xffff, so the
        // checksum computes to 0 and must be sent as 0xffff (RFC 768).
        let mut buf = [0x14, 0xe9, 0x00, 0x35, 0x00, 0x0a, 0x12, 0x34, 0x84, 0x7c];
        assert_eq!(reference_checksum(SRC, DST, &buf), 0);
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum(SRC, DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(SRC, DST));
        let mut emitted = [0u8; 10];
        emitted[8..].copy_from_slice(&[0x84, 0x7c]);
        Repr {
            src_port: 5353,
            dst_port: 53,
            payload_len: 2,
        }
        .emit(&mut emitted, SRC, DST);
        assert_eq!(emitted, buf);
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        let mut padded = [0u8; 20];
        padded[..12].copy_from_slice(&DATAGRAM);
        padded[12..].fill(0xaa);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), b"rvs!");
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn refuses_short_and_malformed() {
        for len in 0..12 {
            assert_eq!(
                Packet::new_checked(&DATAGRAM[..len]).unwrap_err(),
                WireError::Truncated
            );
        }
        let mut bad = DATAGRAM;
        bad[5] = 7; // length below the header
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
        bad[5] = 13; // one byte past the buffer
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Truncated
        );
        bad[5] = 8; // header only
        assert!(Packet::new_checked(&bad[..]).unwrap().payload().is_empty());
    }

    fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>().prop_map(Ipv4Addr::from)
    }

    proptest! {
        /// Arbitrary bytes, half of them shaped (a length field near the buffer's) so the view
        /// is actually made and its getters reached.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                       shape in any::<bool>(), pick in any::<u16>(),
                                       src in ipv4(), dst in ipv4()) {
            let mut bytes = bytes;
            if shape && bytes.len() >= 6 {
                let length = pick % (bytes.len() as u16 + 4);
                bytes[4..6].copy_from_slice(&length.to_be_bytes());
            }
            if let Ok(mut p) = Packet::new_checked(&mut bytes[..]) {
                let _ = (p.src_port(), p.dst_port(), p.checksum());
                prop_assert_eq!(p.payload().len() + HEADER_LEN, usize::from(p.length()));
                let _ = p.verify_checksum(src, dst);
                let _ = Repr::parse(&p, src, dst);
                let _ = p.payload_mut().len();
                p.fill_checksum(src, dst);
                prop_assert!(p.verify_checksum(src, dst));
                prop_assert_ne!(p.checksum(), 0);
            }
        }

        /// What the NAT does: rewrite ports and addresses, update a non-zero checksum by
        /// RFC 1624 (the addresses through the pseudo-header) and send a resulting 0 as 0xffff;
        /// leave a 0 checksum alone. The result equals a full recompute bit for bit.
        #[test]
        fn incremental_rewrite_equals_full(payload in proptest::collection::vec(any::<u8>(), 0..64),
                                           ports in any::<(u16, u16, u16, u16)>(),
                                           src in ipv4(), dst in ipv4(),
                                           new_src in ipv4(), new_dst in ipv4(),
                                           with_checksum in any::<bool>()) {
            let (sport, dport, new_sport, new_dport) = ports;
            let mut buf = vec![0u8; HEADER_LEN + payload.len()];
            buf[HEADER_LEN..].copy_from_slice(&payload);
            Repr { src_port: sport, dst_port: dport, payload_len: payload.len() }
                .emit(&mut buf, src, dst);
            let mut p = Packet::new_checked(&mut buf[..]).unwrap();
            if !with_checksum {
                p.set_checksum(0);
            }

            let mut c = p.checksum();
            if c != 0 {
                c = checksum::update_word(c, p.src_port(), new_sport);
                c = checksum::update_word(c, p.dst_port(), new_dport);
                c = checksum::update_u32(c, src.to_bits(), new_src.to_bits());
                c = checksum::update_u32(c, dst.to_bits(), new_dst.to_bits());
                if c == 0 {
                    c = 0xffff;
                }
            }
            p.set_src_port(new_sport);
            p.set_dst_port(new_dport);
            p.set_checksum(c);
            prop_assert!(p.verify_checksum(new_src, new_dst));

            if with_checksum {
                let incremental = p.checksum();
                p.fill_checksum(new_src, new_dst);
                prop_assert_eq!(incremental, p.checksum());
            } else {
                prop_assert_eq!(p.checksum(), 0);
            }
        }

        /// The 0 -> 0xffff rule survives incremental updates: rewriting the one word that makes
        /// a datagram's checksum compute to 0 gives 0xffff, like a full recompute.
        #[test]
        fn incremental_hits_zero_rule(sport in any::<u16>(), src in ipv4(), dst in ipv4()) {
            // Choose the payload word so that the checksum computes to exactly 0.
            let mut buf = [0u8; 10];
            let mut p = Packet::new_unchecked(&mut buf[..]);
            p.set_src_port(sport);
            p.set_dst_port(53);
            p.set_length(10);
            let pseudo = checksum::pseudo_header_sum(src, dst, PROTO_UDP, 10);
            let partial = checksum::combine(pseudo, checksum::sum(&p.buffer[..8]));
            let word = 0xffff - partial; // partial + word == 0xffff
            p.payload_mut().copy_from_slice(&word.to_be_bytes());
            p.fill_checksum(src, dst);
            prop_assert_eq!(p.checksum(), 0xffff);

            // Now perturb the payload word and bring it back incrementally.
            let mut q = Packet::new_unchecked(buf);
            let other = word.wrapping_add(1);
            q.payload_mut().copy_from_slice(&other.to_be_bytes());
            q.fill_checksum(src, dst);
            let mut c = checksum::update_word(q.checksum(), other, word);
            if c == 0 {
                c = 0xffff;
            }
            prop_assert_eq!(c, 0xffff);
        }
    }
}
