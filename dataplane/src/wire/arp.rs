//! ARP for IPv4 over Ethernet (RFC 826). Other hardware or protocol types are refused.

use std::net::Ipv4Addr;

use super::{read_u16, write_u16, Result, WireError};

pub const PACKET_LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

mod field {
    use std::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Refuses a short buffer and anything but Ethernet (1) / IPv4 (0x0800) with 6/4 lengths.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if read_u16(b, field::HTYPE) != 1
            || read_u16(b, field::PTYPE) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(WireError::Malformed);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn operation(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OPER)
    }

    #[inline]
    pub fn sender_mac(&self) -> [u8; 6] {
        self.buffer.as_ref()[field::SHA]
            .try_into()
            .expect("6 bytes")
    }

    #[inline]
    pub fn sender_ip(&self) -> Ipv4Addr {
        <[u8; 4]>::try_from(&self.buffer.as_ref()[field::SPA])
            .expect("4 bytes")
            .into()
    }

    #[inline]
    pub fn target_mac(&self) -> [u8; 6] {
        self.buffer.as_ref()[field::THA]
            .try_into()
            .expect("6 bytes")
    }

    #[inline]
    pub fn target_ip(&self) -> Ipv4Addr {
        <[u8; 4]>::try_from(&self.buffer.as_ref()[field::TPA])
            .expect("4 bytes")
            .into()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_operation(&mut self, op: u16) {
        write_u16(self.buffer.as_mut(), field::OPER, op);
    }

    #[inline]
    pub fn set_sender(&mut self, mac: [u8; 6], ip: Ipv4Addr) {
        let b = self.buffer.as_mut();
        b[field::SHA].copy_from_slice(&mac);
        b[field::SPA].copy_from_slice(&ip.octets());
    }

    #[inline]
    pub fn set_target(&mut self, mac: [u8; 6], ip: Ipv4Addr) {
        let b = self.buffer.as_mut();
        b[field::THA].copy_from_slice(&mac);
        b[field::TPA].copy_from_slice(&ip.octets());
    }

    /// Writes the fixed part: Ethernet/IPv4, lengths 6 and 4.
    pub fn set_fixed(&mut self) {
        let b = self.buffer.as_mut();
        write_u16(b, field::HTYPE, 1);
        write_u16(b, field::PTYPE, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }
}

/// Parsed ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub operation: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr {
            operation: p.operation(),
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        }
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_fixed();
        p.set_operation(self.operation);
        p.set_sender(self.sender_mac, self.sender_ip);
        p.set_target(self.target_mac, self.target_ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // who-has 198.51.100.1 tell 198.51.100.10, from 02:00:00:00:00:0a.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 198,
        51, 100, 10, 0, 0, 0, 0, 0, 0, 198, 51, 100, 1,
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sender_mac(), [2, 0, 0, 0, 0, 0x0a]);
        assert_eq!(p.sender_ip(), Ipv4Addr::new(198, 51, 100, 10));
        assert_eq!(p.target_ip(), Ipv4Addr::new(198, 51, 100, 1));
    }

    #[test]
    fn round_trip() {
        let repr = Repr::parse(&Packet::new_checked(&REQUEST[..]).unwrap());
        let mut buf = [0xeeu8; 28];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn refuses_short_and_foreign() {
        assert_eq!(
            Packet::new_checked(&REQUEST[..27]).unwrap_err(),
            WireError::Truncated
        );
        let mut ipv6 = REQUEST;
        ipv6[2] = 0x86;
        ipv6[3] = 0xdd;
        assert_eq!(
            Packet::new_checked(&ipv6[..]).unwrap_err(),
            WireError::Malformed
        );
    }
}
