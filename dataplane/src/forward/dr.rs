//! DR (LVS `-g`, direct routing): only the Ethernet destination changes, to the real server's
//! MAC; the real server owns the VIP too (on a loopback, not answering ARP for it) and answers
//! the client directly. rvs sees one direction only.
//! IPVS counterpart: `ip_vs_dr_xmit`.

use super::set_macs;

/// Client -> real server: re-addressed at layer 2 only.
#[inline]
pub fn to_real(buf: &mut [u8], our_mac: [u8; 6], real_mac: [u8; 6]) {
    set_macs(buf, our_mac, real_mac);
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::wire::ipv4::PROTO_TCP;

    #[test]
    fn only_the_macs_change() {
        let mut f = frame(
            PROTO_TCP,
            ep([198, 51, 100, 10], 1),
            ep([198, 51, 100, 100], 80),
            64,
            0x02,
            b"x",
        );
        let before = f.clone();
        to_real(&mut f, [2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 0x11]);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 0x11]);
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 0xaa]);
        assert_eq!(&f[12..], &before[12..]);
    }
}
