//! TUN (LVS `-i`, IP-in-IP, RFC 2003): the packet is wrapped in an outer IPv4 header to the
//! real server, which unwraps it and answers the client directly from the VIP.
//! IPVS counterpart: `ip_vs_tunnel_xmit`. As IPVS does, a packet that would no longer fit the
//! MTU once wrapped is answered with ICMP fragmentation-needed when it has DF set, so that
//! path-MTU discovery lowers the client's segment size.

use std::net::Ipv4Addr;

use crate::frame::Frame;
use crate::wire::checksum;
use crate::wire::ipv4::PROTO_IPIP;

pub const OUTER_HEADER_LEN: usize = 20;
/// TTL of the outer header (a fresh hop count for the tunnel).
pub const OUTER_TTL: u8 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunError {
    /// Too big once wrapped, DF set: answer fragmentation-needed with this next-hop MTU.
    NeedsFragNeeded { mtu: u16 },
    /// Too big once wrapped, DF clear: rvs does not fragment; dropped and counted.
    TooBig,
    /// The buffer has no headroom for the outer header.
    NoHeadroom,
}

/// Wraps the IPv4 datagram that starts at `l2_len` (after an Ethernet header of that length)
/// in an outer header `outer_src -> outer_dst`; the Ethernet header moves to the front,
/// unchanged (the caller sets the MACs). `mtu` bounds the outer datagram.
pub fn encapsulate(
    frame: &mut impl Frame,
    l2_len: usize,
    ip_len: usize,
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    mtu: u16,
) -> Result<(), TunError> {
    let inner = frame.bytes();
    let dont_fragment = inner[l2_len + 6] & 0x40 != 0;
    if ip_len + OUTER_HEADER_LEN > usize::from(mtu) {
        return Err(if dont_fragment {
            TunError::NeedsFragNeeded {
                mtu: mtu - OUTER_HEADER_LEN as u16,
            }
        } else {
            TunError::TooBig
        });
    }
    let tos = inner[l2_len + 1];
    let ident = [inner[l2_len + 4], inner[l2_len + 5]];
    // Drop link-layer padding first: the outer length must cover the datagram only.
    if !frame.set_len(l2_len + ip_len) || !frame.prepend(OUTER_HEADER_LEN) {
        return Err(TunError::NoHeadroom);
    }
    let buf = frame.bytes_mut();
    buf.copy_within(OUTER_HEADER_LEN..OUTER_HEADER_LEN + l2_len, 0);
    let outer = &mut buf[l2_len..l2_len + OUTER_HEADER_LEN];
    outer[0] = 0x45;
    outer[1] = tos;
    outer[2..4].copy_from_slice(&((ip_len + OUTER_HEADER_LEN) as u16).to_be_bytes());
    outer[4..6].copy_from_slice(&ident);
    outer[6] = if dont_fragment { 0x40 } else { 0 };
    outer[7] = 0;
    outer[8] = OUTER_TTL;
    outer[9] = PROTO_IPIP;
    outer[10..12].fill(0);
    outer[12..16].copy_from_slice(&outer_src.octets());
    outer[16..20].copy_from_slice(&outer_dst.octets());
    let sum = checksum::checksum(outer);
    outer[10..12].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::frame::VecFrame;
    use crate::wire::ipv4::{self, PROTO_TCP};

    #[test]
    fn wraps_with_a_correct_outer_header() {
        let inner = frame(
            PROTO_TCP,
            ep([198, 51, 100, 10], 40000),
            ep([198, 51, 100, 100], 80),
            63,
            0x02,
            b"abc",
        );
        let mut padded = inner.clone();
        padded.resize(80, 0); // link-layer padding must not be carried into the tunnel
        let mut f = VecFrame::new(&padded);
        let ip_len = inner.len() - 14;
        encapsulate(
            &mut f,
            14,
            ip_len,
            [203, 0, 113, 1].into(),
            [203, 0, 113, 13].into(),
            1500,
        )
        .unwrap();
        let out = f.bytes();
        assert_eq!(out.len(), inner.len() + 20);
        assert_eq!(
            &out[..14],
            &inner[..14],
            "Ethernet header moved to the front"
        );
        let outer = ipv4::Packet::new_checked(&out[14..]).unwrap();
        assert!(outer.verify_checksum());
        assert_eq!(
            (outer.src(), outer.dst()),
            ([203, 0, 113, 1].into(), [203, 0, 113, 13].into())
        );
        assert_eq!(
            (outer.protocol(), outer.ttl(), outer.total_len()),
            (PROTO_IPIP, OUTER_TTL, ip_len + 20)
        );
        assert!(outer.dont_fragment(), "DF copied from the inner header");
        assert_eq!(outer.payload(), &inner[14..], "inner datagram unchanged");
    }

    #[test]
    fn too_big_asks_for_fragmentation_needed() {
        let inner = frame(
            PROTO_TCP,
            ep([198, 51, 100, 10], 1),
            ep([198, 51, 100, 100], 80),
            64,
            0x10,
            &[0; 1460],
        );
        let mut f = VecFrame::new(&inner);
        let before = f.clone();
        let r = encapsulate(
            &mut f,
            14,
            inner.len() - 14,
            [1, 1, 1, 1].into(),
            [2, 2, 2, 2].into(),
            1500,
        );
        assert_eq!(r, Err(TunError::NeedsFragNeeded { mtu: 1480 }));
        assert_eq!(f, before, "untouched when refused");
        let mut no_df = inner.clone();
        no_df[20] = 0;
        fix_checksums(&mut no_df, 14);
        let mut f = VecFrame::new(&no_df);
        let r = encapsulate(
            &mut f,
            14,
            inner.len() - 14,
            [1, 1, 1, 1].into(),
            [2, 2, 2, 2].into(),
            1500,
        );
        assert_eq!(r, Err(TunError::TooBig));
    }

    #[test]
    fn no_headroom_is_an_error_not_a_panic() {
        let inner = frame(
            PROTO_TCP,
            ep([198, 51, 100, 10], 1),
            ep([198, 51, 100, 100], 80),
            64,
            0x10,
            b"",
        );
        let mut f = VecFrame::with_room(&inner, 4, 0);
        let r = encapsulate(
            &mut f,
            14,
            inner.len() - 14,
            [1, 1, 1, 1].into(),
            [2, 2, 2, 2].into(),
            1500,
        );
        assert_eq!(r, Err(TunError::NoHeadroom));
    }
}
