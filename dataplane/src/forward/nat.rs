//! NAT (LVS `-m`, masquerading): the destination is rewritten to the real server; its replies
//! come back through rvs and get the VIP as their source again.
//! IPVS counterpart: `ip_vs_nat_xmit` and the `snat_handler`/`dnat_handler` of each protocol.

use super::{set_dst, set_src, Parsed};
use crate::flow::Endpoint;

/// Client -> real server: destination VIP:port becomes the real server's address and port.
#[inline]
pub fn to_real(buf: &mut [u8], p: &Parsed, real: Endpoint) {
    set_dst(buf, p, real);
}

/// Real server -> client: source becomes the VIP:port again.
#[inline]
pub fn to_client(buf: &mut [u8], p: &Parsed, vip: Endpoint) {
    set_src(buf, p, vip);
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};

    const CLIENT: [u8; 4] = [198, 51, 100, 10];
    const VIP: [u8; 4] = [198, 51, 100, 100];
    const REAL: [u8; 4] = [203, 0, 113, 11];

    #[test]
    fn both_directions_tcp_and_udp() {
        for protocol in [PROTO_TCP, PROTO_UDP] {
            let mut f = frame(
                protocol,
                ep(CLIENT, 40000),
                ep(VIP, 80),
                64,
                0x02,
                b"GET / HTTP/1.1\r\n",
            );
            let p = parsed(&f);
            to_real(&mut f, &p, ep(REAL, 8080));
            let q = parsed(&f);
            assert_eq!((q.src, q.dst), (ep(CLIENT, 40000), ep(REAL, 8080)));
            assert_checksums(&f, 14);

            let mut r = frame(
                protocol,
                ep(REAL, 8080),
                ep(CLIENT, 40000),
                64,
                0x12,
                b"HTTP/1.1 200 OK\r\n",
            );
            let p = parsed(&r);
            to_client(&mut r, &p, ep(VIP, 80));
            let q = parsed(&r);
            assert_eq!((q.src, q.dst), (ep(VIP, 80), ep(CLIENT, 40000)));
            assert_checksums(&r, 14);
        }
    }
}
