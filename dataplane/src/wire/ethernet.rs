//! Ethernet II frames. One 802.1Q tag is understood ([`l3_offset`]); stacked tags (802.1ad
//! QinQ, or two 802.1Q tags) are reported by their EtherType for the caller to count as
//! unsupported.

use super::{read_u16, write_u16, Result, WireError};

pub const HEADER_LEN: usize = 14;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1ad service tag (QinQ outer tag).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

/// Length of an 802.1Q tag (TPID is the outer EtherType; then TCI and the inner EtherType).
const VLAN_TAG_LEN: usize = 4;

pub const BROADCAST: [u8; 6] = [0xff; 6];

pub(crate) mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// Where the L3 header starts: `(ethertype, offset, tci)`. For an untagged frame, its
/// EtherType, 14 and `None`. For one 802.1Q tag (0x8100), the inner EtherType, 18 and the full
/// TCI (PCP, DEI and VLAN ID; the VLAN ID is `tci & 0x0fff`). Stacked tags are not unwrapped:
/// an outer 802.1ad tag gives `(ETHERTYPE_QINQ, 14, None)`, and a second tag inside an 802.1Q
/// one gives its TPID (0x8100 or 0x88a8) as the inner EtherType, so the caller sees an
/// EtherType it does not handle. `Truncated` if the frame is shorter than the header(s).
pub fn l3_offset(frame: &[u8]) -> Result<(u16, usize, Option<u16>)> {
    if frame.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let ethertype = read_u16(frame, field::ETHERTYPE);
    if ethertype != ETHERTYPE_VLAN {
        return Ok((ethertype, HEADER_LEN, None));
    }
    let offset = HEADER_LEN + VLAN_TAG_LEN;
    if frame.len() < offset {
        return Err(WireError::Truncated);
    }
    let tci = read_u16(frame, field::PAYLOAD);
    let inner = read_u16(frame, field::PAYLOAD + 2);
    Ok((inner, offset, Some(tci)))
}

/// Whether `mac` is a group (multicast or broadcast) address.
#[inline]
pub fn is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 1
}

#[derive(Debug, Clone, Copy)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Frame { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst(&self) -> [u8; 6] {
        self.buffer.as_ref()[field::DST]
            .try_into()
            .expect("6 bytes")
    }

    #[inline]
    pub fn src(&self) -> [u8; 6] {
        self.buffer.as_ref()[field::SRC]
            .try_into()
            .expect("6 bytes")
    }

    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    #[inline]
    pub fn set_dst(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac);
    }

    #[inline]
    pub fn set_src(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac);
    }

    #[inline]
    pub fn set_ethertype(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, value);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// Parsed Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ethertype: u16,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Repr {
        Repr {
            dst: frame.dst(),
            src: frame.src(),
            ethertype: frame.ethertype(),
        }
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_dst(self.dst);
        frame.set_src(self.src);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    const BYTES: [u8; 16] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0xaa,
        0xbb,
    ];

    #[test]
    fn deconstruct() {
        let f = Frame::new_checked(&BYTES[..]).unwrap();
        assert_eq!(f.dst(), BROADCAST);
        assert_eq!(f.src(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.ethertype(), ETHERTYPE_ARP);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn construct_round_trip() {
        let mut buf = [0u8; 16];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        Repr::parse(&Frame::new_unchecked(&BYTES[..])).emit(&mut f);
        f.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(buf, BYTES);
    }

    // The same frame tagged 802.1Q: PCP 5, DEI 0, VLAN 100, carrying IPv4.
    const TAGGED: [u8; 20] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x81, 0x00, 0xa0,
        0x64, 0x08, 0x00, 0x45, 0x00,
    ];

    #[test]
    fn l3_offset_untagged_and_tagged() {
        assert_eq!(l3_offset(&BYTES), Ok((ETHERTYPE_ARP, 14, None)));
        assert_eq!(l3_offset(&BYTES[..14]), Ok((ETHERTYPE_ARP, 14, None)));
        let (ethertype, offset, tci) = l3_offset(&TAGGED).unwrap();
        assert_eq!((ethertype, offset, tci), (ETHERTYPE_IPV4, 18, Some(0xa064)));
        assert_eq!(tci.unwrap() & 0x0fff, 100);
        assert_eq!(&TAGGED[offset..], &[0x45, 0x00]);
        assert_eq!(
            l3_offset(&TAGGED[..18]),
            Ok((ETHERTYPE_IPV4, 18, Some(0xa064)))
        );
    }

    #[test]
    fn l3_offset_stacked_tags_are_reported_not_unwrapped() {
        let mut qinq = TAGGED;
        qinq[12..14].copy_from_slice(&ETHERTYPE_QINQ.to_be_bytes());
        assert_eq!(l3_offset(&qinq), Ok((ETHERTYPE_QINQ, 14, None)));
        let mut double = TAGGED;
        double[16..18].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        assert_eq!(l3_offset(&double), Ok((ETHERTYPE_VLAN, 18, Some(0xa064))));
        double[16..18].copy_from_slice(&ETHERTYPE_QINQ.to_be_bytes());
        assert_eq!(l3_offset(&double), Ok((ETHERTYPE_QINQ, 18, Some(0xa064))));
    }

    #[test]
    fn l3_offset_refuses_short() {
        for len in 0..14 {
            assert_eq!(l3_offset(&TAGGED[..len]), Err(WireError::Truncated));
        }
        for len in 14..18 {
            assert_eq!(l3_offset(&TAGGED[..len]), Err(WireError::Truncated));
        }
    }

    #[test]
    fn short_is_refused() {
        assert_eq!(
            Frame::new_checked(&BYTES[..13]).unwrap_err(),
            WireError::Truncated
        );
    }

    proptest! {
        /// Arbitrary bytes, with the EtherType often one of the interesting ones, so every
        /// branch of `l3_offset` is reached.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..40),
                                       pick in 0usize..5) {
            let mut bytes = bytes;
            let types = [ETHERTYPE_IPV4, ETHERTYPE_VLAN, ETHERTYPE_QINQ, ETHERTYPE_ARP];
            if bytes.len() >= 14 && pick < types.len() {
                bytes[12..14].copy_from_slice(&types[pick].to_be_bytes());
            }
            if let Ok(mut f) = Frame::new_checked(&mut bytes[..]) {
                let _ = (f.dst(), f.src(), f.ethertype(), f.payload().len());
                let _ = f.payload_mut().len();
                let _ = Repr::parse(&f);
            }
            match l3_offset(&bytes) {
                Ok((_, offset, tci)) => {
                    prop_assert!(offset <= bytes.len());
                    prop_assert_eq!(tci.is_some(), offset == 18);
                }
                Err(e) => prop_assert_eq!(e, WireError::Truncated),
            }
        }
    }
}
