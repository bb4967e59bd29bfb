//! TCP headers (RFC 9293). The load balancer reads ports and flags to find and age flows, and
//! rewrites ports, addresses (through the pseudo-header) and the MSS option, so the checksum is
//! kept right incrementally (RFC 1624) rather than recomputed over the payload.

use std::net::Ipv4Addr;

use super::{checksum, read_u16, write_u16, Result, WireError};

/// Length of the fixed header (data offset 5); options may follow, up to 60 bytes in all.
pub const HEADER_LEN: usize = 20;
/// Longest header the 4-bit data offset can announce.
const MAX_HEADER_LEN: usize = 60;

pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_SYN: u8 = 0x02;
pub const FLAG_RST: u8 = 0x04;
pub const FLAG_PSH: u8 = 0x08;
pub const FLAG_ACK: u8 = 0x10;
pub const FLAG_URG: u8 = 0x20;

/// The six classic flags; the top two bits of byte 13 (CWR, ECE) belong to ECN.
pub const FLAGS_MASK: u8 = 0x3f;

const PROTO_TCP: u8 = 6;

const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_MSS_LEN: u8 = 4;

pub(crate) mod field {
    use std::ops::Range;
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// A TCP segment: the buffer is exactly the segment (the IPv4 payload), so the checksum and
/// `payload()` cover all of it.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks once that the buffer holds the whole header its data offset announces, so that
    /// `options()` and `payload()` never go out of bounds afterwards. A data offset below 5 is
    /// malformed (the fixed header would overlap the payload).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let header_len = usize::from(b[field::DATA_OFF] >> 4) * 4;
        if header_len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if b.len() < header_len {
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

    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ.start)
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK.start)
    }

    /// Header length in bytes (data offset * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The six classic flags (`FLAG_*`), without the ECN bits.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS] & FLAGS_MASK
    }

    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & FLAG_SYN != 0
    }

    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & FLAG_FIN != 0
    }

    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & FLAG_RST != 0
    }

    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & FLAG_ACK != 0
    }

    #[inline]
    pub fn window(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Options, between the fixed header and the payload (empty for data offset 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    /// Everything after the header: the buffer is the segment, so there is no padding to cut.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum over the pseudo-header and the whole segment is right.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_sum(src, dst, PROTO_TCP, b.len() as u16);
        checksum::combine(pseudo, checksum::sum(b)) == 0xffff
    }

    /// The MSS option's value, if the options carry a well-formed one (kind 2, length 4).
    #[inline]
    pub fn mss(&self) -> Option<u16> {
        let at = self.mss_offset()?;
        Some(read_u16(self.buffer.as_ref(), at))
    }

    /// Offset in the buffer of the MSS option's 16-bit value. The walk never trusts a length:
    /// EOL ends it, NOP is one byte, and a length below 2 or past the header stops it, as does
    /// an MSS option whose length is not 4 (a peer that sends one cannot be clamped safely).
    fn mss_offset(&self) -> Option<usize> {
        let options = self.options();
        let mut i = 0;
        while let Some(&kind) = options.get(i) {
            match kind {
                OPT_EOL => return None,
                OPT_NOP => i += 1,
                _ => {
                    let len = *options.get(i + 1)?;
                    let end = i + usize::from(len);
                    if len < 2 || end > options.len() {
                        return None;
                    }
                    if kind == OPT_MSS {
                        return (len == OPT_MSS_LEN).then_some(field::OPTIONS + i + 2);
                    }
                    i = end;
                }
            }
        }
        None
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

    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::ACK].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the six classic flags; the ECN bits (CWR, ECE) are kept, as a rewrite of the
    /// flags must not clear congestion signals it does not own.
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        let b = &mut self.buffer.as_mut()[field::FLAGS];
        *b = (*b & !FLAGS_MASK) | (flags & FLAGS_MASK);
    }

    /// Writes the data offset for a header of `len` bytes; the low nibble of byte 12 (reserved
    /// bits, AE) is kept. `len` is rounded down to a multiple of 4 and clamped to 20..=60, the
    /// only lengths the field can say. The caller keeps the header within the buffer, or
    /// `options()` and `payload()` would go out of bounds.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let words = (len.clamp(HEADER_LEN, MAX_HEADER_LEN) / 4) as u8;
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (words << 4) | (*b & 0x0f);
    }

    #[inline]
    pub fn set_window(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW, value);
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Recomputes the checksum in full over the pseudo-header and the whole segment; for the
    /// control plane and tests. The per-packet path updates it incrementally instead.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_sum(src, dst, PROTO_TCP, b.len() as u16);
        let value = !checksum::combine(pseudo, checksum::sum(b));
        self.set_checksum(value);
    }

    /// Rewrites the MSS option (MSS clamping) and updates the checksum incrementally. Returns
    /// false, leaving the segment untouched, when there is no well-formed MSS option.
    pub fn set_mss(&mut self, value: u16) -> bool {
        let Some(at) = self.mss_offset() else {
            return false;
        };
        let old = read_u16(self.buffer.as_ref(), at);
        write_u16(self.buffer.as_mut(), at, value);
        let check = checksum::update_word(self.checksum(), old, value);
        self.set_checksum(check);
        true
    }

    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

#[inline]
fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parsed fixed header (options are not represented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    pub ack_number: u32,
    /// The six classic flags (`FLAG_*`).
    pub flags: u8,
    pub window: u16,
    pub payload_len: usize,
}

impl Repr {
    /// Parses a segment whose checksum (over the pseudo-header of `src`/`dst`) is right;
    /// a wrong checksum is `Malformed`, as for [`super::ipv4::Repr::parse`].
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, src: Ipv4Addr, dst: Ipv4Addr) -> Result<Repr> {
        if !p.verify_checksum(src, dst) {
            return Err(WireError::Malformed);
        }
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq_number: p.seq_number(),
            ack_number: p.ack_number(),
            flags: p.flags(),
            window: p.window(),
            payload_len: p.payload().len(),
        })
    }

    /// Writes a 20-byte header (no options, urgent pointer 0) into the front of `buffer` and a
    /// checksum over it and the `payload_len` bytes that follow, which the caller has already
    /// written. `buffer` must hold `HEADER_LEN + payload_len` bytes (slicing panics otherwise).
    pub fn emit(&self, buffer: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
        let b = &mut buffer[..HEADER_LEN + self.payload_len];
        write_u16(b, field::SRC_PORT, self.src_port);
        write_u16(b, field::DST_PORT, self.dst_port);
        b[field::SEQ].copy_from_slice(&self.seq_number.to_be_bytes());
        b[field::ACK].copy_from_slice(&self.ack_number.to_be_bytes());
        b[field::DATA_OFF] = ((HEADER_LEN / 4) as u8) << 4;
        b[field::FLAGS] = self.flags & FLAGS_MASK;
        write_u16(b, field::WINDOW, self.window);
        write_u16(b, field::URGENT, 0);
        Packet::new_unchecked(b).fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

    // A Linux SYN 198.51.100.10:40000 -> 203.0.113.1:80, seq 0x1a2b3c4d, window 64240, with
    // MSS 1460, SACK permitted, timestamps, NOP, window scale 7 (a 40-byte header).
    const SYN: [u8; 40] = [
        0x9c, 0x40, 0x00, 0x50, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0x11, 0x85, 0x00, 0x00, // fixed header, checksum 0x1185
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, // SACK permitted
        0x08, 0x0a, 0x00, 0x01, 0xe2, 0x40, 0x00, 0x00, 0x00, 0x00, // timestamps
        0x01, // NOP
        0x03, 0x03, 0x07, // window scale 7
    ];

    /// An independent checksum: plain RFC 1071 over the pseudo-header and segment laid out as
    /// bytes, with a checksum field of zero.
    fn reference_checksum(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&[0, 6]);
        bytes.extend_from_slice(&(segment.len() as u16).to_be_bytes());
        bytes.extend_from_slice(segment);
        bytes[12 + 16] = 0;
        bytes[12 + 17] = 0;
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
    fn syn_checksum_is_independently_right() {
        assert_eq!(reference_checksum(SRC, DST, &SYN), 0x1185);
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 0x1a2b_3c4d);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), FLAG_SYN);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst());
        assert_eq!(p.window(), 64240);
        assert_eq!(p.checksum(), 0x1185);
        assert_eq!(p.options(), &SYN[20..]);
        assert!(p.payload().is_empty());
        assert_eq!(p.mss(), Some(1460));
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(203, 0, 113, 2)));
    }

    #[test]
    fn construct() {
        let mut buf = [0u8; 40];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(40000);
        p.set_dst_port(80);
        p.set_seq_number(0x1a2b_3c4d);
        p.set_ack_number(0);
        p.set_header_len(40);
        p.set_flags(FLAG_SYN);
        p.set_window(64240);
        p.options_mut().copy_from_slice(&SYN[20..]);
        p.fill_checksum(SRC, DST);
        assert_eq!(buf, SYN);
    }

    #[test]
    fn round_trip_with_payload() {
        // An ACK|PSH with 5 bytes of data; the reference checksum covers the odd-length tail.
        let mut buf = [0u8; 25];
        buf[20..].copy_from_slice(b"hello");
        let repr = Repr {
            src_port: 40000,
            dst_port: 80,
            seq_number: 0x1a2b_3c4e,
            ack_number: 0x0bad_cafe,
            flags: FLAG_ACK | FLAG_PSH,
            window: 502,
            payload_len: 5,
        };
        repr.emit(&mut buf, SRC, DST);
        assert_eq!(
            buf[..16],
            [
                0x9c, 0x40, 0x00, 0x50, 0x1a, 0x2b, 0x3c, 0x4e, 0x0b, 0xad, 0xca, 0xfe, 0x50, 0x18,
                0x01, 0xf6
            ]
        );
        assert_eq!(buf[18..20], [0, 0]); // urgent pointer
        assert_eq!(
            u16::from_be_bytes([buf[16], buf[17]]),
            reference_checksum(SRC, DST, &buf)
        );
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload(), b"hello");
        assert_eq!(Repr::parse(&p, SRC, DST), Ok(repr));
        // Swapping the addresses keeps the pseudo-header sum; another address does not.
        let other = Ipv4Addr::new(203, 0, 113, 2);
        assert_eq!(Repr::parse(&p, SRC, other), Err(WireError::Malformed));

        let syn = Repr::parse(&Packet::new_checked(&SYN[..]).unwrap(), SRC, DST).unwrap();
        assert_eq!(syn.flags, FLAG_SYN);
        assert_eq!(syn.payload_len, 0);
    }

    #[test]
    fn flags_keep_ecn_bits() {
        let mut buf = SYN;
        buf[13] = 0xc2; // CWR | ECE | SYN
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        assert_eq!(p.flags(), FLAG_SYN);
        p.set_flags(FLAG_SYN | FLAG_ACK);
        assert_eq!(buf[13], 0xd2);
    }

    #[test]
    fn set_mss_clamps_and_keeps_checksum() {
        let mut buf = SYN;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        assert!(p.set_mss(1400));
        assert_eq!(p.mss(), Some(1400));
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(p.checksum(), reference_checksum(SRC, DST, &buf));
        assert_eq!(buf[20..24], [0x02, 0x04, 0x05, 0x78]);
    }

    fn with_options(options: &[u8]) -> Vec<u8> {
        let mut b = SYN[..20].to_vec();
        b.extend_from_slice(options);
        b[12] = ((b.len() / 4) as u8) << 4;
        b
    }

    #[test]
    fn mss_walk() {
        let mss = |options: &[u8]| {
            let mut b = with_options(options);
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            let found = p.mss();
            let before = p.checksum();
            let set = p.set_mss(1200);
            assert_eq!(set, found.is_some());
            if !set {
                assert_eq!(p.checksum(), before);
            }
            found
        };
        assert_eq!(mss(&[]), None);
        assert_eq!(mss(&[1, 1, 2, 4, 0x05, 0xb4, 0, 0]), Some(1460));
        assert_eq!(mss(&[4, 2, 1, 1, 2, 4, 0x02, 0x18]), Some(536));
        assert_eq!(mss(&[0, 0, 2, 4, 0x05, 0xb4, 0, 0]), None); // after EOL
        assert_eq!(mss(&[1, 1, 2, 3, 0x05, 0xb4, 0, 0]), None); // MSS of length 3
        assert_eq!(mss(&[1, 8, 0, 2, 4, 5, 0xb4, 0]), None); // length 0 stops the walk
        assert_eq!(mss(&[4, 1, 2, 4, 5, 0xb4, 0, 0]), None); // length 1 stops the walk
        assert_eq!(mss(&[1, 1, 1, 1, 1, 1, 8, 10]), None); // runs past the header
        assert_eq!(mss(&[1, 1, 1, 1, 1, 1, 1, 2]), None); // kind with no length byte
        assert_eq!(mss(&[1, 1, 1, 1, 2, 4, 5, 0xb4]), Some(1460)); // ends at the header end
    }

    #[test]
    fn refuses_short_and_malformed() {
        for len in 0..20 {
            assert_eq!(
                Packet::new_checked(&SYN[..len]).unwrap_err(),
                WireError::Truncated
            );
        }
        for len in 20..40 {
            assert_eq!(
                Packet::new_checked(&SYN[..len]).unwrap_err(),
                WireError::Truncated
            );
        }
        let mut bad = SYN;
        bad[12] = 0x40; // data offset 4
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
        bad[12] = 0x00;
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
        bad[12] = 0xf0; // 60 bytes announced, 40 present
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn set_header_len_clamps() {
        let mut buf = [0u8; 60];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        for (asked, got) in [(0, 20), (20, 20), (23, 20), (24, 24), (60, 60), (1000, 60)] {
            p.set_header_len(asked);
            assert_eq!(p.header_len(), got);
        }
    }

    fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>().prop_map(Ipv4Addr::from)
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100),
                                       src in ipv4(), dst in ipv4(), mss in any::<u16>()) {
            let mut bytes = bytes;
            if let Ok(mut p) = Packet::new_checked(&mut bytes[..]) {
                let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number());
                let _ = (p.flags(), p.syn(), p.fin(), p.rst(), p.ack(), p.window(), p.checksum());
                prop_assert!(p.header_len() >= HEADER_LEN);
                prop_assert_eq!(HEADER_LEN + p.options().len(), p.header_len());
                let _ = p.verify_checksum(src, dst);
                let had = p.mss().is_some();
                prop_assert_eq!(p.set_mss(mss), had);
                let _ = (p.options_mut().len(), p.payload_mut().len());
                let _ = Repr::parse(&p, src, dst);
                p.fill_checksum(src, dst);
                prop_assert!(p.verify_checksum(src, dst));
            }
        }

        /// What the NAT does: rewrite ports and addresses, update the checksum by RFC 1624 for
        /// each changed word (the addresses through the pseudo-header), and agree with a full
        /// recompute bit for bit.
        #[test]
        fn incremental_rewrite_equals_full(payload in proptest::collection::vec(any::<u8>(), 0..64),
                                           header in proptest::collection::vec(any::<u8>(), 20),
                                           src in ipv4(), dst in ipv4(),
                                           new_src in ipv4(), new_dst in ipv4(),
                                           new_sport in any::<u16>(), new_dport in any::<u16>(),
                                           mss in any::<u16>()) {
            let mut buf = header;
            buf[12] = 0x60; // data offset 6: one MSS option
            buf.extend_from_slice(&[2, 4, 0x05, 0xb4]);
            buf.extend_from_slice(&payload);
            let mut p = Packet::new_checked(&mut buf[..]).unwrap();
            p.fill_checksum(src, dst);

            let mut c = p.checksum();
            c = checksum::update_word(c, p.src_port(), new_sport);
            p.set_src_port(new_sport);
            c = checksum::update_word(c, p.dst_port(), new_dport);
            p.set_dst_port(new_dport);
            c = checksum::update_u32(c, src.to_bits(), new_src.to_bits());
            c = checksum::update_u32(c, dst.to_bits(), new_dst.to_bits());
            p.set_checksum(c);
            prop_assert!(p.set_mss(mss));
            let incremental = p.checksum();

            p.fill_checksum(new_src, new_dst);
            prop_assert_eq!(incremental, p.checksum());
            prop_assert!(p.verify_checksum(new_src, new_dst));
        }
    }
}
