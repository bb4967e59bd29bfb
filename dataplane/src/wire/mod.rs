//! Zero-copy header views in the smoltcp style: a `Packet<T: AsRef<[u8]>>` wraps a buffer,
//! `new_checked` refuses a short buffer once, and the accessors then never re-check. Writers
//! exist where `T: AsMut<[u8]>`. A plain `Repr` holds parsed values for tests and the control
//! plane; the hot path stays on the views.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod front;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod udp;

use std::fmt;

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The buffer is shorter than the header (or than a length field says).
    Truncated,
    /// A field holds a value the header cannot have (version, header length, ...).
    Malformed,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "truncated",
            WireError::Malformed => "malformed",
        })
    }
}

impl std::error::Error for WireError {}

pub type Result<T> = std::result::Result<T, WireError>;

#[inline]
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
