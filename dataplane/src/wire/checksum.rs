//! The Internet checksum (RFC 1071) in full, and its incremental update (RFC 1624, eqn. 3:
//! `HC' = ~(~HC + ~m + m')`) so a rewrite touches only the words it changes. TCP and UDP
//! checksums also cover the IPv4 pseudo-header, whose sum is kept apart ([`pseudo_header_sum`])
//! so the segment's own sum can be added to it with [`combine`] without copying anything.

use std::net::Ipv4Addr;

/// One's-complement sum of `data` folded to 16 bits (not inverted). An odd trailing byte is
/// padded with zero, as RFC 1071 says.
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        acc += u64::from(u32::from_be_bytes([c[4], c[5], c[6], c[7]]));
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for w in &mut rest {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    fold(acc)
}

#[inline]
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for `data` (whose checksum field must be zero in the input).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// Whether `data`, including its checksum field, sums to all-ones.
#[inline]
pub fn verify(data: &[u8]) -> bool {
    sum(data) == 0xffff
}

/// One's-complement sum (folded, not inverted) of the IPv4 pseudo-header that TCP and UDP
/// checksums cover (RFC 793 section 3.1, RFC 768): source and destination addresses, a zero
/// byte, the protocol and the L4 length (header + payload). Add the segment's own [`sum`] with
/// [`combine`], then invert, to get the checksum field.
#[inline]
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let (s, d) = (u32::from(src), u32::from(dst));
    fold(
        u64::from(s >> 16)
            + u64::from(s & 0xffff)
            + u64::from(d >> 16)
            + u64::from(d & 0xffff)
            + u64::from(protocol)
            + u64::from(length),
    )
}

/// One's-complement addition of two folded sums (for instance [`pseudo_header_sum`] and the
/// [`sum`] of a segment). The result is zero only when both inputs are.
#[inline]
pub fn combine(a: u16, b: u16) -> u16 {
    fold(u64::from(a) + u64::from(b))
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word changes from `old` to `new`.
#[inline]
pub fn update_word(check: u16, old: u16, new: u16) -> u16 {
    let acc = u64::from(!check) + u64::from(!old) + u64::from(new);
    !fold(acc)
}

/// As [`update_word`] for a 32-bit field (an IPv4 address), as two 16-bit words.
#[inline]
pub fn update_u32(check: u16, old: u32, new: u32) -> u16 {
    let acc = u64::from(!check)
        + u64::from(!(old >> 16) as u16)
        + u64::from(!(old as u16))
        + u64::from((new >> 16) as u16)
        + u64::from(new as u16);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 section 3 example: 0001 f203 f4f5 f6f7 sums to ddf2.
    #[test]
    fn rfc1071_example() {
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn known_ipv4_header() {
        // A real header (Wikipedia's example); checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verify(&h));
    }

    #[test]
    fn pseudo_header_matches_its_bytes() {
        // 198.51.100.10 -> 203.0.113.1, TCP, 24 bytes, laid out as RFC 793 draws it.
        let bytes = [198, 51, 100, 10, 203, 0, 113, 1, 0, 6, 0, 24];
        assert_eq!(
            pseudo_header_sum(
                Ipv4Addr::new(198, 51, 100, 10),
                Ipv4Addr::new(203, 0, 113, 1),
                6,
                24
            ),
            sum(&bytes)
        );
        // By hand: c633 + 640a + cb00 + 7101 + 0006 + 0018 = 0x2_665c, folded 0x665e.
        assert_eq!(sum(&bytes), 0x665e);
    }

    #[test]
    fn combine_is_ones_complement_addition() {
        assert_eq!(combine(0x0001, 0x0002), 0x0003);
        assert_eq!(combine(0xffff, 0x0001), 0x0001); // end-around carry
        assert_eq!(combine(0xfffe, 0x0001), 0xffff);
        assert_eq!(combine(0, 0), 0);
        // Summing in two pieces equals summing at once (even-length split).
        let data = [0x12, 0x34, 0xff, 0xff, 0xab, 0xcd, 0x00, 0x01];
        assert_eq!(combine(sum(&data[..4]), sum(&data[4..])), sum(&data));
    }

    proptest::proptest! {
        #[test]
        fn incremental_equals_full(mut data in proptest::collection::vec(proptest::num::u8::ANY, 4..64),
                                   at in 0usize..30, new in proptest::num::u16::ANY) {
            let at = (at % (data.len() / 2)) * 2;
            let before = checksum(&data);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let full = checksum(&data);
            let inc = update_word(before, old, new);
            // 0x0000 and 0xffff are the same one's-complement number.
            proptest::prop_assert!(inc == full || (inc ^ full) == 0xffff && (inc == 0 || full == 0));
        }

        #[test]
        fn incremental_u32_equals_full(mut data in proptest::collection::vec(proptest::num::u8::ANY, 8..64),
                                       new in proptest::num::u32::ANY) {
            let before = checksum(&data);
            let old = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            data[0..4].copy_from_slice(&new.to_be_bytes());
            let full = checksum(&data);
            let inc = update_u32(before, old, new);
            proptest::prop_assert!(inc == full || (inc ^ full) == 0xffff && (inc == 0 || full == 0));
        }
    }
}
