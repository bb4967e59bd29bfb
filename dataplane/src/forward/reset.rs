//! The reset a TCP stack sends for a segment of no connection (RFC 793, "Reset Generation"),
//! written in place of that segment: behind IPVS the director's own kernel answers a packet to
//! the VIP that no connection owns this way, so a client whose connection rvs no longer has
//! (after a restart, an eviction) learns it at its next packet instead of waiting for its own
//! timeouts.
//!
//! - The segment carries ACK: `<SEQ = SEG.ACK><CTL = RST>`.
//! - It does not: `<SEQ = 0><ACK = SEG.SEQ + SEG.LEN><CTL = RST, ACK>`, where SYN and FIN
//!   count one each in SEG.LEN.

use super::Parsed;
use crate::frame::Frame;
use crate::wire::{ethernet, ipv4, tcp};

/// TTL of the resets rvs sends (Linux's default).
const TTL: u8 = 64;

/// Turns the TCP segment `p` of `frame` into the reset that answers it, from its destination
/// to its source, Ethernet addresses swapped (`our_mac` as the source). `false`, with the frame
/// unchanged, for a RST (never answered) or a segment that does not parse.
pub fn answer_with_reset(frame: &mut impl Frame, p: &Parsed, our_mac: [u8; 6]) -> bool {
    let (peer_mac, flags, seq, ack, len) = {
        let b = frame.bytes();
        let Ok(segment) = tcp::Packet::new_checked(&b[p.l4..p.end]) else {
            return false;
        };
        let eth = ethernet::Frame::new_unchecked(b);
        let flags = segment.flags();
        let len = segment.payload().len() as u32
            + u32::from(flags & tcp::FLAG_SYN != 0)
            + u32::from(flags & tcp::FLAG_FIN != 0);
        (
            eth.src(),
            flags,
            segment.seq_number(),
            segment.ack_number(),
            len,
        )
    };
    if flags & tcp::FLAG_RST != 0 {
        return false;
    }
    let (seq_number, ack_number, flags) = if flags & tcp::FLAG_ACK != 0 {
        (ack, 0, tcp::FLAG_RST)
    } else {
        (0, seq.wrapping_add(len), tcp::FLAG_RST | tcp::FLAG_ACK)
    };
    if !frame.set_len(p.l3 + ipv4::MIN_HEADER_LEN + tcp::HEADER_LEN) {
        return false;
    }
    let b = frame.bytes_mut();
    let mut eth = ethernet::Frame::new_unchecked(&mut b[..]);
    eth.set_dst(peer_mac);
    eth.set_src(our_mac);
    ipv4::Repr {
        src: p.dst.addr,
        dst: p.src.addr,
        protocol: ipv4::PROTO_TCP,
        ttl: TTL,
        tos: 0,
        ident: 0,
        dont_fragment: true,
        payload_len: tcp::HEADER_LEN,
    }
    .emit(&mut b[p.l3..]);
    tcp::Repr {
        src_port: p.dst.port,
        dst_port: p.src.port,
        seq_number,
        ack_number,
        flags,
        window: 0,
        payload_len: 0,
    }
    .emit(
        &mut b[p.l3 + ipv4::MIN_HEADER_LEN..],
        p.dst.addr,
        p.src.addr,
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::testing::{ep, frame, parsed, CLIENT_MAC, LB_MAC};
    use crate::frame::VecFrame;
    use crate::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_PSH, FLAG_RST, FLAG_SYN};

    const CLIENT: [u8; 4] = [198, 51, 100, 10];
    const VIP: [u8; 4] = [198, 51, 100, 100];

    fn answer(flags: u8, payload: &[u8], ip_options: bool) -> Option<VecFrame> {
        let mut bytes = frame(
            ipv4::PROTO_TCP,
            ep(CLIENT, 40000),
            ep(VIP, 80),
            64,
            flags,
            payload,
        );
        // seq 1000 (the test frame's), ack 5000.
        bytes[42..46].copy_from_slice(&5000u32.to_be_bytes());
        if ip_options {
            bytes.splice(34..34, [1, 1, 1, 0]);
            bytes[14] = 0x46;
            let total = (bytes.len() - 14) as u16;
            bytes[16..18].copy_from_slice(&total.to_be_bytes());
        }
        crate::forward::testing::fix_checksums(&mut bytes, 14);
        let p = parsed(&bytes);
        let mut f = VecFrame::new(&bytes);
        answer_with_reset(&mut f, &p, LB_MAC).then_some(f)
    }

    fn reset_of(f: &VecFrame) -> (tcp::Repr, ipv4::Repr) {
        let b = f.bytes();
        assert_eq!(b.len(), 54);
        assert_eq!((&b[0..6], &b[6..12]), (&CLIENT_MAC[..], &LB_MAC[..]));
        let ip = ipv4::Packet::new_checked(&b[14..]).unwrap();
        let ip = ipv4::Repr::parse(&ip).unwrap();
        assert_eq!((ip.src, ip.dst), (VIP.into(), CLIENT.into()));
        let segment = tcp::Packet::new_checked(&b[34..]).unwrap();
        (
            tcp::Repr::parse(&segment, VIP.into(), CLIENT.into()).expect("TCP checksum"),
            ip,
        )
    }

    #[test]
    fn as_rfc_793_says() {
        // An ACK with data: RST with the sequence number it acknowledged.
        let (rst, ip) = reset_of(&answer(FLAG_ACK | FLAG_PSH, b"hello", false).unwrap());
        assert_eq!(
            (rst.src_port, rst.dst_port, rst.seq_number, rst.flags),
            (80, 40000, 5000, FLAG_RST)
        );
        assert_eq!((ip.ttl, ip.payload_len, ip.protocol), (64, 20, 6));
        // No ACK (a FIN alone, 3 bytes of data): RST+ACK acknowledging data and FIN.
        let (rst, _) = reset_of(&answer(FLAG_FIN, b"abc", false).unwrap());
        assert_eq!(
            (rst.seq_number, rst.ack_number, rst.flags),
            (0, 1000 + 3 + 1, FLAG_RST | FLAG_ACK)
        );
        // IP options are not echoed: a plain 20-byte header.
        let (rst, _) = reset_of(&answer(FLAG_ACK, b"", true).unwrap());
        assert_eq!(rst.seq_number, 5000);
        // A RST is never answered.
        assert!(answer(FLAG_RST, b"", false).is_none());
        assert!(answer(FLAG_RST | FLAG_ACK, b"", false).is_none());
        // A SYN-ACK (it acknowledges something) gets a plain RST too.
        let (rst, _) = reset_of(&answer(FLAG_SYN | FLAG_ACK, b"", false).unwrap());
        assert_eq!((rst.seq_number, rst.flags), (5000, FLAG_RST));
    }
}
