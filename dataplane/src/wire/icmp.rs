//! ICMPv4 (RFC 792). Echo is what the appliance answers itself; error messages that quote an
//! inner header are translated on the load-balancing path.

use super::{checksum, read_u16, write_u16, Result, WireError};

pub const HEADER_LEN: usize = 8;

pub const TYPE_ECHO_REPLY: u8 = 0;
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
pub const TYPE_ECHO_REQUEST: u8 = 8;
pub const TYPE_TIME_EXCEEDED: u8 = 11;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
