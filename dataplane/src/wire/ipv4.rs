//! IPv4 headers (RFC 791): options are checked as Linux's receive path checks them
//! ([`check_options`]) and carried unchanged, fragments recognised.
//!
//! Two ways in: [`Packet::new_checked`] for a datagram received whole, whose `payload()` is
//! then exactly the datagram's payload, and [`Packet::new_quoted`] for the header an ICMP error
//! quotes, which is followed by only the start of its datagram (RFC 792: the header and 8 bytes;
//! RFC 1812 routers quote more), so its total length overstates what is there.

use std::net::Ipv4Addr;

use super::{checksum, read_u16, write_u16, Result, WireError};

pub const MIN_HEADER_LEN: usize = 20;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_VRRP: u8 = 112;

pub(crate) mod field {
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
    /// length announces (trailing link-layer padding is allowed and ignored). On such a view
    /// `payload()` and `payload_mut()` never go out of bounds.
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

    /// A view of the header quoted in an ICMP error, checking only what such a quote
    /// guarantees: a version 4 header of at least 20 bytes, all of it present. The total
    /// length is not checked against the buffer, since the quoted datagram is cut short.
    ///
    /// On such a view use [`quoted_payload`](Self::quoted_payload), never `payload()` or
    /// `payload_mut()`, which trust the total length and would panic on a truncated quote.
    pub fn new_quoted(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(WireError::Malformed);
        }
        let header_len = usize::from(b[field::VER_IHL] & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN {
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

    /// The datagram's payload, without link-layer padding. Only for a view made by
    /// `new_checked` (which guarantees header length <= total length <= buffer length); on a
    /// `new_quoted` view use [`quoted_payload`](Self::quoted_payload).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }

    /// What is present of the payload: from the end of the header to the total length or the
    /// end of the buffer, whichever comes first (empty if the total length is below the header
    /// length). Never panics on a view made by `new_checked` or `new_quoted`; for the quoted
    /// datagram of an ICMP error this is the start of its L4 header.
    #[inline]
    pub fn quoted_payload(&self) -> &[u8] {
        let (start, end) = self.quoted_range();
        &self.buffer.as_ref()[start..end]
    }

    #[inline]
    fn quoted_range(&self) -> (usize, usize) {
        let start = self.header_len();
        let end = self.total_len().min(self.buffer.as_ref().len()).max(start);
        (start, end)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the version (always 4) and the IHL for a header of `len` bytes. `len` is rounded
    /// down to a multiple of 4 and clamped to 20..=60, the only lengths the field can say. The
    /// caller keeps the header within the buffer and the total length.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let words = (len.clamp(MIN_HEADER_LEN, 60) / 4) as u8;
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | words;
    }

    #[inline]
    pub fn set_tos(&mut self, value: u8) {
        self.buffer.as_mut()[field::TOS] = value;
    }

    /// Writes the total length. The caller keeps it within header length..=buffer length, or
    /// `payload()` would go out of bounds.
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    /// Sets or clears DF, keeping MF and the fragment offset.
    #[inline]
    pub fn set_dont_fragment(&mut self, value: bool) {
        let b = self.buffer.as_mut();
        let word = read_u16(b, field::FLAGS_FRAG) & !FLAG_DF;
        write_u16(
            b,
            field::FLAGS_FRAG,
            if value { word | FLAG_DF } else { word },
        );
    }

    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    #[inline]
    pub fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = value;
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

    /// As [`payload`](Packet::payload): only for a view made by `new_checked`.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), self.total_len());
        &mut self.buffer.as_mut()[start..end]
    }

    /// As [`quoted_payload`](Packet::quoted_payload), writable: the NAT rewrites the quoted
    /// ports of an ICMP error through it.
    #[inline]
    pub fn quoted_payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = self.quoted_range();
        &mut self.buffer.as_mut()[start..end]
    }
}

/// IPv4 option types ([RFC 791], IANA's registry).
pub mod option {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const RECORD_ROUTE: u8 = 7;
    pub const TIMESTAMP: u8 = 68;
    pub const SECURITY: u8 = 130;
    pub const LOOSE_SOURCE_ROUTE: u8 = 131;
    pub const CIPSO: u8 = 134;
    pub const STREAM_ID: u8 = 136;
    pub const STRICT_SOURCE_ROUTE: u8 = 137;
    pub const ROUTER_ALERT: u8 = 148;
}

/// What [`check_options`] found wrong with an option list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionsError {
    /// The list does not parse: an option's length is below 2 or runs past the header, an
    /// option is cut off after its type byte, a pointer or length is below what its option
    /// needs, an option appears twice, a full timestamp's overflow counter is at its limit.
    Malformed,
    /// A loose or strict source route: a router that does not accept source routing drops it
    /// (Linux with `accept_source_route = 0`, its default for forwarded packets).
    SourceRoute,
}

/// Checks an IPv4 option list (the bytes between the fixed header and the payload) with the
/// rules of Linux's receive path (`ip_options_compile` called with a packet): END ends the
/// list (what follows is padding), NOP is one byte, any other option has a length byte of at
/// least 2 that stays within the list; record route, timestamp, router alert and CIPSO have
/// their own minimum lengths and pointers; source routes are refused. The options that pass
/// (NOP, END, record route, timestamp, router alert, security, stream id, unknown types) are
/// forwarded unchanged: rvs does not record its address in them.
pub fn check_options(options: &[u8]) -> std::result::Result<(), OptionsError> {
    use OptionsError::{Malformed, SourceRoute};
    let (mut at, mut seen_rr, mut seen_ts, mut seen_cipso, mut source_route) =
        (0, false, false, false, false);
    while at < options.len() {
        let kind = options[at];
        match kind {
            option::END => break,
            option::NOP => {
                at += 1;
                continue;
            }
            _ => {}
        }
        let rest = &options[at..];
        let len = usize::from(*rest.get(1).ok_or(Malformed)?);
        if len < 2 || len > rest.len() {
            return Err(Malformed);
        }
        let opt = &rest[..len];
        // The pointer (third byte) of the options that record into themselves, 1-based.
        let pointer = || usize::from(opt[2]);
        match kind {
            option::LOOSE_SOURCE_ROUTE | option::STRICT_SOURCE_ROUTE => {
                if len < 3 || pointer() < 4 || source_route {
                    return Err(Malformed);
                }
                source_route = true;
            }
            option::RECORD_ROUTE => {
                if seen_rr || len < 3 || pointer() < 4 {
                    return Err(Malformed);
                }
                // Not full yet: the next slot must fit.
                if pointer() <= len && pointer() + 3 > len {
                    return Err(Malformed);
                }
                seen_rr = true;
            }
            option::TIMESTAMP => {
                if seen_ts || len < 4 || pointer() < 5 {
                    return Err(Malformed);
                }
                let flags = opt[3] & 0x0f;
                const TS_AND_ADDRESS: u8 = 1;
                const PRESPECIFIED: u8 = 3;
                if pointer() <= len {
                    let slot = if matches!(flags, TS_AND_ADDRESS | PRESPECIFIED) {
                        8
                    } else {
                        4
                    };
                    if pointer() + slot - 1 > len {
                        return Err(Malformed);
                    }
                } else if flags != PRESPECIFIED && opt[3] >> 4 == 15 {
                    // Full, and its overflow counter cannot count one more hop.
                    return Err(Malformed);
                }
                seen_ts = true;
            }
            option::ROUTER_ALERT if len < 4 => return Err(Malformed),
            option::CIPSO => {
                if seen_cipso || !cipso_well_formed(opt) {
                    return Err(Malformed);
                }
                seen_cipso = true;
            }
            _ => {}
        }
        at += len;
    }
    if source_route {
        Err(SourceRoute)
    } else {
        Ok(())
    }
}

/// RFC draft CIPSO (Linux's check without a NetLabel policy): at least 8 bytes, a non-zero
/// domain of interpretation, and tags (type, length) that tile the rest exactly.
fn cipso_well_formed(opt: &[u8]) -> bool {
    if opt.len() < 8 || opt[2..6] == [0, 0, 0, 0] {
        return false;
    }
    let mut at = 6;
    while at < opt.len() {
        match opt.get(at + 1) {
            Some(&tag_len) if tag_len != 0 && usize::from(tag_len) <= opt.len() - at => {
                at += usize::from(tag_len)
            }
            _ => return false,
        }
    }
    true
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
            // Saturating so that a `new_quoted` view (total length unchecked) cannot panic.
            payload_len: p.total_len().saturating_sub(p.header_len()),
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
    use proptest::collection::vec;
    use proptest::prelude::*;

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
    fn construct_with_setters() {
        let mut b = [0u8; 24];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_header_len(20);
        p.set_tos(0);
        p.set_total_len(24);
        p.set_ident(0x1234);
        p.set_dont_fragment(true);
        p.set_ttl(64);
        p.set_protocol(PROTO_ICMP);
        p.set_src(Ipv4Addr::new(198, 51, 100, 10));
        p.set_dst(Ipv4Addr::new(198, 51, 100, 1));
        p.fill_checksum();
        p.payload_mut().copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(b, packet());
    }

    #[test]
    fn setters_keep_neighbouring_bits() {
        let mut b = packet();
        b[6] = 0x20 | 0x01; // MF, offset 256 * 8
        b[7] = 0x00;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_dont_fragment(true);
        assert!(p.dont_fragment() && p.more_fragments() && p.frag_offset() == 2048);
        p.set_dont_fragment(false);
        assert!(!p.dont_fragment() && p.more_fragments() && p.frag_offset() == 2048);
        p.set_tos(0xb8);
        assert_eq!(p.tos(), 0xb8);
        for (asked, got) in [(0, 20), (21, 20), (24, 24), (60, 60), (64, 60)] {
            p.set_header_len(asked);
            assert_eq!((p.version(), p.header_len()), (4, got));
        }
    }

    // An IPv4+UDP header as an ICMP error quotes it: 203.0.113.1:53 -> 198.51.100.10:5353,
    // total length 60, but only the header and the 8-byte UDP header are present.
    const QUOTED: [u8; 28] = [
        0x45, 0x00, 0x00, 0x3c, 0xab, 0xcd, 0x00, 0x00, 0x3f, 0x11, 0x00, 0x00, 203, 0, 113, 1,
        198, 51, 100, 10, 0x00, 0x35, 0x14, 0xe9, 0x00, 0x28, 0x12, 0x34,
    ];

    #[test]
    fn quoted_header() {
        assert_eq!(
            Packet::new_checked(&QUOTED[..]).unwrap_err(),
            WireError::Truncated
        );
        let mut q = QUOTED;
        let mut p = Packet::new_quoted(&mut q[..]).unwrap();
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.protocol(), PROTO_UDP);
        assert_eq!(p.src(), Ipv4Addr::new(203, 0, 113, 1));
        assert_eq!(p.quoted_payload(), &QUOTED[20..]);
        p.quoted_payload_mut()[..2].copy_from_slice(&80u16.to_be_bytes());
        assert_eq!(q[20..22], [0x00, 0x50]);

        // The total length bounds the quoted payload when it is the shorter.
        let mut short = QUOTED;
        short[3] = 24;
        let p = Packet::new_quoted(&short[..]).unwrap();
        assert_eq!(p.quoted_payload(), &QUOTED[20..24]);
        // A total length below the header length leaves nothing, and does not panic.
        short[3] = 10;
        let p = Packet::new_quoted(&short[..]).unwrap();
        assert!(p.quoted_payload().is_empty());

        // On a whole datagram the quoted payload is the payload.
        let whole = packet();
        let p = Packet::new_checked(&whole[..]).unwrap();
        assert_eq!(p.quoted_payload(), p.payload());
    }

    #[test]
    fn quoted_refuses_what_it_must() {
        assert_eq!(
            Packet::new_quoted(&QUOTED[..19]).unwrap_err(),
            WireError::Truncated
        );
        let mut bad = QUOTED;
        bad[0] = 0x65;
        assert_eq!(
            Packet::new_quoted(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
        bad[0] = 0x44;
        assert_eq!(
            Packet::new_quoted(&bad[..]).unwrap_err(),
            WireError::Malformed
        );
        bad[0] = 0x48; // 32-byte header, 28 bytes present
        assert_eq!(
            Packet::new_quoted(&bad[..]).unwrap_err(),
            WireError::Truncated
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

    /// Each option class as Linux's receive path judges it (`ip_options_compile` with a
    /// packet, `accept_source_route = 0`).
    #[test]
    fn options_are_checked_like_linux() {
        use OptionsError::{Malformed, SourceRoute};
        let rr = |len: u8, ptr: u8| {
            let mut o = vec![option::RECORD_ROUTE, len, ptr];
            o.resize(usize::from(len), 0);
            o
        };
        let ts = |len: u8, ptr: u8, flags: u8| {
            let mut o = vec![option::TIMESTAMP, len, ptr, flags];
            o.resize(usize::from(len), 0);
            o
        };
        let cases: Vec<(&str, Vec<u8>, std::result::Result<(), OptionsError>)> = vec![
            ("empty", vec![], Ok(())),
            ("NOPs then END", vec![1, 1, 1, 0], Ok(())),
            (
                "padding after END is not parsed",
                vec![0, 0xff, 0x00, 0x07],
                Ok(()),
            ),
            ("record route, empty", rr(39, 4), Ok(())),
            ("record route, full", rr(39, 40), Ok(())),
            ("record route, pointer below 4", rr(7, 3), Err(Malformed)),
            ("record route, next slot cut off", rr(9, 8), Err(Malformed)),
            ("record route, too short", vec![7, 2, 1, 0], Err(Malformed)),
            (
                "record route twice",
                [rr(7, 4), rr(7, 4)].concat(),
                Err(Malformed),
            ),
            ("timestamp only", ts(12, 5, 0), Ok(())),
            ("timestamp and address", ts(12, 5, 1), Ok(())),
            (
                "timestamp and address, slot cut off",
                ts(12, 9, 1),
                Err(Malformed),
            ),
            ("timestamp, pointer below 5", ts(8, 4, 0), Err(Malformed)),
            ("timestamp, too short", vec![68, 3, 5, 0], Err(Malformed)),
            ("timestamp full, overflow 14", ts(8, 9, 0xe0), Ok(())),
            (
                "timestamp full, overflow 15",
                ts(8, 9, 0xf0),
                Err(Malformed),
            ),
            ("prespecified full, overflow 15", ts(12, 13, 0xf3), Ok(())),
            ("router alert", vec![148, 4, 0, 0], Ok(())),
            (
                "router alert, too short",
                vec![148, 2, 1, 0],
                Err(Malformed),
            ),
            ("security (carried)", vec![130, 3, 0, 1], Ok(())),
            ("stream id (carried)", vec![136, 4, 0, 1], Ok(())),
            ("unknown type (carried)", vec![30, 4, 9, 9], Ok(())),
            ("length 0", vec![30, 0, 0, 0], Err(Malformed)),
            ("length 1", vec![30, 1, 0, 0], Err(Malformed)),
            ("runs past the header", vec![30, 5, 0, 0], Err(Malformed)),
            ("cut off after its type", vec![1, 1, 1, 30], Err(Malformed)),
            (
                "CIPSO with one tag",
                vec![134, 10, 0, 0, 0, 3, 1, 4, 0, 0],
                Ok(()),
            ),
            (
                "CIPSO, domain 0",
                vec![134, 8, 0, 0, 0, 0, 1, 2],
                Err(Malformed),
            ),
            (
                "CIPSO, tag past the end",
                vec![134, 8, 0, 0, 0, 3, 1, 4],
                Err(Malformed),
            ),
            ("CIPSO, too short", vec![134, 6, 0, 0, 0, 3], Err(Malformed)),
            (
                "loose source route",
                vec![131, 7, 4, 203, 0, 113, 9, 0],
                Err(SourceRoute),
            ),
            (
                "strict source route",
                vec![137, 7, 4, 203, 0, 113, 9, 0],
                Err(SourceRoute),
            ),
            (
                "source route, pointer below 4",
                vec![131, 7, 3, 1, 2, 3, 4, 0],
                Err(Malformed),
            ),
            (
                "two source routes",
                vec![131, 3, 4, 137, 3, 4, 0, 0],
                Err(Malformed),
            ),
        ];
        for (name, options, want) in cases {
            assert_eq!(check_options(&options), want, "{name}: {options:?}");
        }
    }

    proptest! {
        /// Arbitrary bytes, half of them shaped (version 4, a total length near the buffer's)
        /// so the views are actually made and their getters reached.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..80),
                                       shape in any::<bool>(),
                                       pick in any::<u16>()) {
            let mut bytes = bytes;
            if shape && bytes.len() >= 4 {
                bytes[0] = 0x40 | (bytes[0] & 0x0f);
                let total = pick % (bytes.len() as u16 + 8);
                bytes[2..4].copy_from_slice(&total.to_be_bytes());
            }
            if let Ok(mut p) = Packet::new_checked(&mut bytes[..]) {
                let _ = (p.version(), p.header_len(), p.tos(), p.total_len(), p.ident());
                let _ = (p.dont_fragment(), p.more_fragments(), p.frag_offset(), p.is_fragment());
                let _ = (p.ttl(), p.protocol(), p.checksum(), p.src(), p.dst());
                let _ = (p.verify_checksum(), check_options(p.options()), p.quoted_payload().len());
                prop_assert_eq!(p.payload().len(), p.total_len() - p.header_len());
                prop_assert_eq!(p.quoted_payload(), p.payload());
                let _ = (p.payload_mut().len(), p.quoted_payload_mut().len());
                p.fill_checksum();
                prop_assert!(p.verify_checksum());
                prop_assert!(Repr::parse(&p).is_ok());
            }
            if let Ok(mut p) = Packet::new_quoted(&mut bytes[..]) {
                let _ = (p.version(), p.header_len(), p.tos(), p.total_len(), p.ident());
                let _ = (p.frag_offset(), p.is_fragment(), p.ttl(), p.protocol(), p.src(), p.dst());
                let _ = (p.verify_checksum(), p.options().len());
                let n = p.quoted_payload().len();
                prop_assert_eq!(p.quoted_payload_mut().len(), n);
                prop_assert!(p.header_len() + n <= p.total_len().max(p.header_len()));
                p.fill_checksum();
                prop_assert!(Repr::parse(&p).is_ok());
            }
        }
    }
}
