//! Frames for the harnesses and benchmarks that feed rvs's engine or worker directly.

use dataplane::flow::Endpoint;
use dataplane::wire::tcp::FLAG_ACK;
use dataplane::wire::{ethernet, ipv4, tcp};

/// Ethernet + IPv4 (DF, TTL 64) + TCP (20 bytes) + `payload`, both checksums right.
pub fn tcp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Endpoint,
    dst: Endpoint,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let l4_len = tcp::HEADER_LEN + payload.len();
    let mut f = vec![0u8; ethernet::HEADER_LEN + 20 + l4_len];
    ethernet::Repr {
        dst: dst_mac,
        src: src_mac,
        ethertype: ethernet::ETHERTYPE_IPV4,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
    ipv4::Repr {
        src: src.addr,
        dst: dst.addr,
        protocol: ipv4::PROTO_TCP,
        ttl: 64,
        tos: 0,
        ident: 0x1234,
        dont_fragment: true,
        payload_len: l4_len,
    }
    .emit(&mut f[ethernet::HEADER_LEN..]);
    let l4 = &mut f[ethernet::HEADER_LEN + 20..];
    l4[tcp::HEADER_LEN..].copy_from_slice(payload);
    tcp::Repr {
        src_port: src.port,
        dst_port: dst.port,
        seq_number: 1000,
        ack_number: if flags & FLAG_ACK != 0 { 2000 } else { 0 },
        flags,
        window: 65535,
        payload_len: payload.len(),
    }
    .emit(l4, src.addr, dst.addr);
    f
}
