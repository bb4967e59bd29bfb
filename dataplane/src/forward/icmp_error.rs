//! ICMP errors: the ones rvs sends itself (time exceeded, fragmentation needed), and the
//! translation of errors about a connection (port unreachable, fragmentation needed, ...) so
//! that they reach the other side with the addresses that side knows — path-MTU discovery
//! through NAT and FULLNAT depends on it.

use std::net::Ipv4Addr;

use super::{read_addr, read_u16, rewrite_addr, rewrite_port, write_u16, IP_DST, IP_SRC};
use crate::flow::Endpoint;
use crate::frame::Frame;
use crate::wire::checksum;
use crate::wire::icmp;
use crate::wire::ipv4::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};

/// RFC 1812 4.3.2.3: an error quotes as much of the offending datagram as fits in 576 bytes.
const MAX_QUOTE: usize = 576 - 20 - icmp::HEADER_LEN;
/// TTL of packets rvs originates.
const TTL: u8 = 64;

/// Which ICMP error to send: type, code and the 4 bytes after the checksum (the next-hop MTU
/// for fragmentation-needed, 0 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorKind {
    pub msg_type: u8,
    pub code: u8,
    pub rest_of_header: u32,
}

impl ErrorKind {
    pub const TIME_EXCEEDED: ErrorKind = ErrorKind {
        msg_type: icmp::TYPE_TIME_EXCEEDED,
        code: icmp::CODE_TTL_EXCEEDED,
        rest_of_header: 0,
    };

    pub fn frag_needed(mtu: u16) -> ErrorKind {
        ErrorKind {
            msg_type: icmp::TYPE_DEST_UNREACHABLE,
            code: icmp::CODE_FRAG_NEEDED,
            rest_of_header: u32::from(mtu),
        }
    }
}

/// Rewrites `frame` in place into an ICMP error about the IPv4 datagram at `l3` (of `ip_len`
/// bytes), sent back to its source through the port it came from: Ethernet addresses swapped
/// (to `our_mac`), IPv4 from `src`, quoting the datagram. `false` if the frame has no room.
pub fn answer_with_error(
    frame: &mut impl Frame,
    l3: usize,
    ip_len: usize,
    kind: ErrorKind,
    src: Ipv4Addr,
    our_mac: [u8; 6],
) -> bool {
    let ErrorKind {
        msg_type,
        code,
        rest_of_header,
    } = kind;
    let mut quote = [0u8; MAX_QUOTE];
    let quoted = ip_len.min(MAX_QUOTE);
    let (peer_mac, peer_ip, tos) = {
        let b = frame.bytes();
        quote[..quoted].copy_from_slice(&b[l3..l3 + quoted]);
        let mac: [u8; 6] = b[6..12].try_into().expect("Ethernet source");
        (mac, read_addr(b, l3 + IP_SRC), b[l3 + 1])
    };
    let icmp_len = icmp::HEADER_LEN + quoted;
    let total = 20 + icmp_len;
    if !frame.set_len(l3 + total) {
        return false;
    }
    let b = frame.bytes_mut();
    b[0..6].copy_from_slice(&peer_mac);
    b[6..12].copy_from_slice(&our_mac);
    let ip = &mut b[l3..l3 + 20];
    ip[0] = 0x45;
    ip[1] = tos & 0xfc | 0xc0; // internetwork control precedence, as Linux sends errors
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[4..6].fill(0);
    ip[6..8].fill(0);
    ip[8] = TTL;
    ip[9] = PROTO_ICMP;
    ip[10..12].fill(0);
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&peer_ip.octets());
    let sum = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let msg = &mut b[l3 + 20..l3 + total];
    msg[0] = msg_type;
    msg[1] = code;
    msg[2..4].fill(0);
    msg[4..8].copy_from_slice(&rest_of_header.to_be_bytes());
    msg[8..].copy_from_slice(&quote[..quoted]);
    let sum = checksum::checksum(msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    true
}

/// An ICMP error and the TCP/UDP flow its quote names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedFlow {
    /// Outer IPv4 header.
    pub l3: usize,
    /// ICMP header.
    pub icmp: usize,
    /// End of the outer datagram.
    pub end: usize,
    /// Quoted IPv4 header and its L4 header.
    pub q3: usize,
    pub q4: usize,
    pub protocol: u8,
    /// Source and destination of the quoted (offending) packet.
    pub src: Endpoint,
    pub dst: Endpoint,
}

impl QuotedFlow {
    /// The flow key of a packet travelling opposite to the quoted one: the quoted packet is
    /// one that the error's sender received, so its reverse is what the sender sends.
    pub fn reply_key(&self) -> crate::flow::FlowKey {
        crate::flow::FlowKey::new(self.protocol, self.dst, self.src)
    }
}

/// Parses an ICMP error (`icmp` = offset of the ICMP header, `end` = end of the datagram)
/// quoting a TCP or UDP packet with at least its ports. `None` for anything else.
pub fn parse(buf: &[u8], l3: usize, icmp_at: usize, end: usize) -> Option<QuotedFlow> {
    let message = icmp::Packet::new_checked(buf.get(icmp_at..end)?).ok()?;
    if !message.is_error() {
        return None;
    }
    let q3 = icmp_at + icmp::HEADER_LEN;
    let quoted = buf.get(q3..end)?;
    if quoted.len() < 20 || quoted[0] >> 4 != 4 {
        return None;
    }
    let q_ihl = usize::from(quoted[0] & 0x0f) * 4;
    let protocol = quoted[9];
    if q_ihl < 20 || quoted.len() < q_ihl + 8 || !matches!(protocol, PROTO_TCP | PROTO_UDP) {
        return None;
    }
    // A quote of a non-first fragment has no ports.
    if read_u16(quoted, 6) & 0x1fff != 0 {
        return None;
    }
    let q4 = q3 + q_ihl;
    Some(QuotedFlow {
        l3,
        icmp: icmp_at,
        end,
        q3,
        q4,
        protocol,
        src: Endpoint::new(read_addr(buf, q3 + IP_SRC), read_u16(buf, q4)),
        dst: Endpoint::new(read_addr(buf, q3 + IP_DST), read_u16(buf, q4 + 2)),
    })
}

/// What to rewrite in an error being passed on: its own (outer) addresses and the quoted
/// packet's endpoints. `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Translation {
    pub outer_src: Option<Ipv4Addr>,
    pub outer_dst: Option<Ipv4Addr>,
    pub quoted_src: Option<Endpoint>,
    pub quoted_dst: Option<Endpoint>,
}

/// Applies `t` to the error `q`: outer header (IPv4 checksum updated), quoted IPv4 header
/// and ports (their checksums updated as far as the quote holds them), then the ICMP checksum
/// recomputed over the whole message (errors are rare; a full sum is the simple right thing).
pub fn translate(buf: &mut [u8], q: &QuotedFlow, t: Translation) {
    if let Some(a) = t.outer_src {
        rewrite_addr(buf, q.l3, None, IP_SRC, a);
    }
    if let Some(a) = t.outer_dst {
        rewrite_addr(buf, q.l3, None, IP_DST, a);
    }
    // Only the quoted bytes may be touched: a checksum field beyond the quote is not there.
    let quote = &mut buf[..q.end];
    if let Some(e) = t.quoted_src {
        rewrite_addr(quote, q.q3, Some((q.q4, q.protocol)), IP_SRC, e.addr);
        rewrite_port(quote, q.q4, q.protocol, 0, e.port);
    }
    if let Some(e) = t.quoted_dst {
        rewrite_addr(quote, q.q3, Some((q.q4, q.protocol)), IP_DST, e.addr);
        rewrite_port(quote, q.q4, q.protocol, 2, e.port);
    }
    write_u16(buf, q.icmp + 2, 0);
    let sum = checksum::checksum(&buf[q.icmp..q.end]);
    write_u16(buf, q.icmp + 2, sum);
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::frame::VecFrame;
    use crate::wire::ipv4;

    /// An ICMP error from `from` to `to` quoting `offending` (an Ethernet frame).
    fn error_about(
        offending: &[u8],
        from: [u8; 4],
        to: [u8; 4],
        msg_type: u8,
        code: u8,
        rest: u32,
    ) -> Vec<u8> {
        let quote = &offending[14..14 + 28];
        let mut f = vec![0u8; 14 + 20 + 8 + quote.len()];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        ipv4::Repr {
            src: from.into(),
            dst: to.into(),
            protocol: PROTO_ICMP,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_fragment: false,
            payload_len: 8 + quote.len(),
        }
        .emit(&mut f[14..]);
        icmp::emit_error(&mut f[34..], msg_type, code, rest, quote);
        f
    }

    fn icmp_ok(f: &[u8]) -> bool {
        checksum::verify(&f[34..])
    }

    #[test]
    fn time_exceeded_back_to_the_sender() {
        let offending = frame(
            PROTO_TCP,
            ep([198, 51, 100, 10], 40000),
            ep([198, 51, 100, 100], 80),
            1,
            0x02,
            b"",
        );
        let mut f = VecFrame::new(&offending);
        let ip_len = offending.len() - 14;
        assert!(answer_with_error(
            &mut f,
            14,
            ip_len,
            ErrorKind::TIME_EXCEEDED,
            [198, 51, 100, 1].into(),
            LB_MAC
        ));
        let b = f.bytes();
        assert_eq!((&b[0..6], &b[6..12]), (&CLIENT_MAC[..], &LB_MAC[..]));
        let ip = ipv4::Packet::new_checked(&b[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.src(), ip.dst(), ip.protocol()),
            (
                [198, 51, 100, 1].into(),
                [198, 51, 100, 10].into(),
                PROTO_ICMP
            )
        );
        let msg = icmp::Packet::new_checked(ip.payload()).unwrap();
        assert!(msg.verify_checksum());
        assert_eq!((msg.msg_type(), msg.code()), (icmp::TYPE_TIME_EXCEEDED, 0));
        assert_eq!(
            msg.data(),
            &offending[14..],
            "the whole small datagram is quoted"
        );
    }

    #[test]
    fn frag_needed_carries_the_mtu_and_a_bounded_quote() {
        let offending = frame(
            PROTO_TCP,
            ep([198, 51, 100, 10], 1),
            ep([198, 51, 100, 100], 80),
            64,
            0x10,
            &[7; 1460],
        );
        let mut f = VecFrame::new(&offending);
        assert!(answer_with_error(
            &mut f,
            14,
            offending.len() - 14,
            ErrorKind::frag_needed(1480),
            [198, 51, 100, 1].into(),
            LB_MAC
        ));
        let b = f.bytes();
        assert_eq!(b.len(), 14 + 576);
        let msg = icmp::Packet::new_checked(&b[34..]).unwrap();
        assert!(msg.verify_checksum());
        assert_eq!(msg.next_hop_mtu(), 1480);
    }

    #[test]
    fn port_unreachable_from_a_nat_real_server_reaches_the_client_as_from_the_vip() {
        let (client, vip, real) = (
            ep([198, 51, 100, 10], 5000),
            ep([198, 51, 100, 100], 9000),
            ep([203, 0, 113, 11], 9000),
        );
        // What rvs sent the real server (after NAT), and the server's error about it.
        let sent = frame(PROTO_UDP, client, real, 63, 0, b"ping");
        let mut err = error_about(&sent, [203, 0, 113, 11], [198, 51, 100, 10], 3, 3, 0);
        let q = parse(&err, 14, 34, err.len()).expect("an error quoting UDP");
        assert_eq!(
            q.reply_key(),
            crate::flow::FlowKey::new(PROTO_UDP, real, client)
        );
        translate(
            &mut err,
            &q,
            Translation {
                outer_src: Some(vip.addr),
                quoted_dst: Some(vip),
                ..Default::default()
            },
        );
        let ip = ipv4::Packet::new_checked(&err[14..]).unwrap();
        assert!(ip.verify_checksum() && icmp_ok(&err));
        assert_eq!((ip.src(), ip.dst()), (vip.addr, client.addr));
        let q2 = parse(&err, 14, 34, err.len()).unwrap();
        assert_eq!((q2.src, q2.dst), (client, vip));
        // The quoted IPv4 header's checksum is right again.
        assert!(checksum::verify(&err[q2.q3..q2.q4]));
        // The quoted UDP checksum equals what the client's own datagram carried.
        let original = frame(PROTO_UDP, client, vip, 63, 0, b"ping");
        assert_eq!(&err[q2.q4 + 6..q2.q4 + 8], &original[34 + 6..34 + 8]);
    }

    #[test]
    fn not_errors_and_short_quotes_are_refused() {
        let echo = frame(
            PROTO_UDP,
            ep([1, 1, 1, 1], 1),
            ep([2, 2, 2, 2], 2),
            64,
            0,
            b"",
        );
        assert_eq!(parse(&echo, 14, 34, echo.len()), None);
        let sent = frame(
            PROTO_TCP,
            ep([1, 1, 1, 1], 1),
            ep([2, 2, 2, 2], 2),
            64,
            0x02,
            b"",
        );
        let err = error_about(&sent, [2, 2, 2, 2], [1, 1, 1, 1], 3, 3, 0);
        assert_eq!(
            parse(&err[..err.len() - 1], 14, 34, err.len() - 1),
            None,
            "needs 8 quoted L4 bytes"
        );
        assert_eq!(
            parse(&err, 14, 34, err.len() + 5),
            None,
            "end beyond the buffer"
        );
    }
}
