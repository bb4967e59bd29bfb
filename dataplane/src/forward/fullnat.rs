//! FULLNAT (DPVS's mode): source and destination are both rewritten — the client's address
//! becomes a local address (LIP) of rvs and the VIP the real server — so the real server
//! answers rvs wherever it sits, and rvs restores both on the way back.
//! IPVS counterpart: none in mainline; DPVS `dp_vs_xmit_fnat`.

use super::{set_dst, set_src, Parsed};
use crate::flow::Endpoint;

/// Client -> real server: source client becomes `local`, destination VIP becomes `real`.
#[inline]
pub fn to_real(buf: &mut [u8], p: &Parsed, local: Endpoint, real: Endpoint) {
    set_src(buf, p, local);
    set_dst(buf, p, real);
}

/// Real server -> local address: source becomes the VIP, destination the client.
#[inline]
pub fn to_client(buf: &mut [u8], p: &Parsed, vip: Endpoint, client: Endpoint) {
    set_src(buf, p, vip);
    set_dst(buf, p, client);
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};

    #[test]
    fn both_directions_tcp_and_udp() {
        let (client, vip) = (ep([198, 51, 100, 10], 40000), ep([198, 51, 100, 100], 80));
        let (local, real) = (ep([203, 0, 113, 201], 1025), ep([203, 0, 113, 12], 80));
        for protocol in [PROTO_TCP, PROTO_UDP] {
            let mut f = frame(protocol, client, vip, 64, 0x02, b"payload");
            let p = parsed(&f);
            to_real(&mut f, &p, local, real);
            let q = parsed(&f);
            assert_eq!((q.src, q.dst), (local, real));
            assert_checksums(&f, 14);

            let mut r = frame(protocol, real, local, 64, 0x12, b"answer");
            let p = parsed(&r);
            to_client(&mut r, &p, vip, client);
            let q = parsed(&r);
            assert_eq!((q.src, q.dst), (vip, client));
            assert_checksums(&r, 14);
        }
    }
}
