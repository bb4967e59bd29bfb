//! VRRP adverts on the wire, IPv4: version 3 (RFC 5798) and version 2 (RFC 3768, as keepalived
//! speaks it, with its simple-password authentication). Frames are whole Ethernet frames, as
//! the slow-path ring carries them and the control thread's transmit path sends them.

use std::net::Ipv4Addr;

use dataplane::wire::checksum;

/// IP protocol number of VRRP.
pub const PROTO_VRRP: u8 = 112;
/// The VRRP multicast group and its Ethernet address.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
pub const GROUP_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
/// Adverts travel one hop: sent with TTL 255, and any other TTL is refused (RFC 5798 7.1).
pub const TTL: u8 = 255;
/// The only packet type VRRP has.
const TYPE_ADVERT: u8 = 1;
const ETH: usize = 14;
const IP: usize = 20;
/// The most addresses an advert carries (the count is one byte).
pub const MAX_ADDRESSES: usize = 255;

/// What an advert says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub version: u8,
    pub vrid: u8,
    pub priority: u8,
    /// Advert interval in hundredths of a second (v2 carries seconds; converted).
    pub interval: u16,
    pub addresses: Vec<Ipv4Addr>,
    /// v2 simple password (auth type 1), NUL-padded to 8 bytes; `None`: auth type 0.
    pub password: Option<[u8; 8]>,
}

/// An advert as received: who sent it, to whom, with what TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub ttl: u8,
    pub src_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub advert: Advert,
}

/// Why a frame was not a valid advert: each a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Too short for the headers it announces, or lengths that disagree.
    Short,
    /// Longer than its address count allows (trailing bytes beyond v2's auth data, or a
    /// total length past the frame).
    Oversized,
    /// TTL other than 255: it crossed a router.
    Ttl,
    /// Not version 2 or 3, or not the version this instance speaks.
    Version,
    /// A type other than advertisement.
    Type,
    /// IPv4 header or VRRP checksum wrong.
    Checksum,
    /// A fragment, IP options, or not IPv4/VRRP at all.
    NotVrrp,
    /// No instance with that virtual router id on this port.
    Vrid,
    /// Authentication type or password other than the instance's.
    Auth,
    /// Sent by this appliance.
    FromSelf,
    /// v2 with another advert interval (RFC 3768 7.1 drops it).
    Interval,
    /// Another count of addresses, or one of the instance's missing (keepalived 2.2.7 drops
    /// those).
    Addresses,
    /// Unicast mode, from an address that is not a configured peer.
    NotPeer,
}

impl Refusal {
    pub const ALL: [Refusal; 13] = [
        Refusal::Short,
        Refusal::Oversized,
        Refusal::Ttl,
        Refusal::Version,
        Refusal::Type,
        Refusal::Checksum,
        Refusal::NotVrrp,
        Refusal::Vrid,
        Refusal::Auth,
        Refusal::FromSelf,
        Refusal::Interval,
        Refusal::Addresses,
        Refusal::NotPeer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Refusal::Short => "short",
            Refusal::Oversized => "oversized",
            Refusal::Ttl => "ttl",
            Refusal::Version => "version",
            Refusal::Type => "type",
            Refusal::Checksum => "checksum",
            Refusal::NotVrrp => "not_vrrp",
            Refusal::Vrid => "vrid",
            Refusal::Auth => "auth",
            Refusal::FromSelf => "from_self",
            Refusal::Interval => "interval",
            Refusal::Addresses => "addresses",
            Refusal::NotPeer => "not_peer",
        }
    }
}

/// Parses an Ethernet frame holding an IPv4 VRRP advert, checking what the packet alone
/// decides (RFC 5798 7.1: version, type, checksums, lengths); the instance checks the rest
/// (TTL 255 on the multicast group, its VRID, authentication, interval, addresses, peers).
pub fn parse(frame: &[u8]) -> Result<Received, Refusal> {
    if frame.len() < ETH + IP {
        return Err(Refusal::Short);
    }
    if frame[12..14] != [0x08, 0x00] {
        return Err(Refusal::NotVrrp);
    }
    let ip = &frame[ETH..];
    if ip[0] >> 4 != 4 || ip[9] != PROTO_VRRP {
        return Err(Refusal::NotVrrp);
    }
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    if header_len != IP {
        // keepalived builds no options and Linux's VRRP peers neither.
        return Err(Refusal::NotVrrp);
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total < IP || total > ip.len() {
        return Err(Refusal::Short);
    }
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    if fragment {
        return Err(Refusal::NotVrrp);
    }
    if !checksum::verify(&ip[..IP]) {
        return Err(Refusal::Checksum);
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let v = &ip[IP..total];
    if v.len() < 8 {
        return Err(Refusal::Short);
    }
    let (version, kind) = (v[0] >> 4, v[0] & 0x0f);
    if version != 2 && version != 3 {
        return Err(Refusal::Version);
    }
    if kind != TYPE_ADVERT {
        return Err(Refusal::Type);
    }
    let count = usize::from(v[3]);
    let wanted = 8 + 4 * count + if version == 2 { 8 } else { 0 };
    if v.len() < wanted {
        return Err(Refusal::Short);
    }
    if v.len() > wanted {
        return Err(Refusal::Oversized);
    }
    let sum_ok = if version == 3 {
        let pseudo = checksum::pseudo_header_sum(src, dst, PROTO_VRRP, v.len() as u16);
        checksum::combine(pseudo, checksum::sum(v)) == 0xffff
    } else {
        checksum::verify(v)
    };
    if !sum_ok {
        return Err(Refusal::Checksum);
    }
    let addresses = v[8..8 + 4 * count]
        .chunks_exact(4)
        .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        .collect();
    let (interval, password) = if version == 3 {
        (u16::from_be_bytes([v[4], v[5]]) & 0x0fff, None)
    } else {
        let password = match v[4] {
            0 => None,
            1 => {
                let mut p = [0u8; 8];
                p.copy_from_slice(&v[8 + 4 * count..wanted]);
                Some(p)
            }
            // Type 2 (IP authentication header) is long gone; keepalived refuses it too.
            _ => return Err(Refusal::Auth),
        };
        (u16::from(v[5]) * 100, password)
    };
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(&frame[6..12]);
    Ok(Received {
        ttl: ip[8],
        src_mac,
        src,
        dst,
        advert: Advert {
            version,
            vrid: v[1],
            priority: v[2],
            interval,
            addresses,
            password,
        },
    })
}

/// Writes `advert` as an Ethernet frame from `src_mac`/`src` to `dst_mac`/`dst` (the group,
/// or a unicast peer), IP id `id`, TTL 255, TOS 0xc0 (internetwork control, as keepalived).
pub fn build(
    advert: &Advert,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
) -> Vec<u8> {
    let count = advert.addresses.len().min(MAX_ADDRESSES);
    let vrrp_len = 8 + 4 * count + if advert.version == 2 { 8 } else { 0 };
    let total = IP + vrrp_len;
    let mut f = vec![0u8; ETH + total];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    {
        let ip = &mut f[ETH..ETH + IP];
        ip[0] = 0x45;
        ip[1] = 0xc0;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[8] = TTL;
        ip[9] = PROTO_VRRP;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        let sum = checksum::checksum(ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
    }
    let v = &mut f[ETH + IP..];
    v[0] = (advert.version << 4) | TYPE_ADVERT;
    v[1] = advert.vrid;
    v[2] = advert.priority;
    v[3] = count as u8;
    if advert.version == 3 {
        v[4..6].copy_from_slice(&(advert.interval & 0x0fff).to_be_bytes());
    } else {
        v[4] = u8::from(advert.password.is_some());
        v[5] = (advert.interval / 100) as u8;
    }
    for (k, a) in advert.addresses.iter().take(count).enumerate() {
        v[8 + 4 * k..12 + 4 * k].copy_from_slice(&a.octets());
    }
    if advert.version == 2 {
        if let Some(p) = advert.password {
            v[8 + 4 * count..].copy_from_slice(&p);
        }
    }
    let sum = if advert.version == 3 {
        let pseudo = checksum::pseudo_header_sum(src, dst, PROTO_VRRP, vrrp_len as u16);
        !checksum::combine(pseudo, checksum::sum(v))
    } else {
        checksum::checksum(v)
    };
    v[6..8].copy_from_slice(&sum.to_be_bytes());
    f
}

/// A gratuitous ARP for `addr` from `mac`, as keepalived sends them: a broadcast request
/// whose sender and target are both the address, target MAC all ones.
pub fn gratuitous_arp(mac: [u8; 6], addr: Ipv4Addr) -> [u8; 60] {
    let mut f = dataplane::engine::arp_request(mac, addr, addr);
    f[32..38].fill(0xff);
    f
}

/// The password field of a v2 advert: the configured text, NUL-padded.
pub fn password(text: &str) -> [u8; 8] {
    let mut p = [0u8; 8];
    let bytes = text.as_bytes();
    let n = bytes.len().min(8);
    p[..n].copy_from_slice(&bytes[..n]);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

    fn advert(version: u8) -> Advert {
        Advert {
            version,
            vrid: 51,
            priority: 100,
            interval: 100,
            addresses: vec![
                Ipv4Addr::new(198, 51, 100, 100),
                Ipv4Addr::new(198, 51, 100, 1),
            ],
            password: (version == 2).then(|| password("secret")),
        }
    }

    fn frame(version: u8) -> Vec<u8> {
        build(
            &advert(version),
            MAC,
            GROUP_MAC,
            Ipv4Addr::new(198, 51, 100, 2),
            GROUP,
            7,
        )
    }

    /// A v3 advert written by hand from RFC 5798 section 5.1 and checked against a sum done
    /// the long way (pseudo-header words added one by one).
    #[test]
    fn v3_bytes_as_the_rfc_lays_them_out() {
        let f = frame(3);
        assert_eq!(f.len(), 14 + 20 + 8 + 8);
        assert_eq!(&f[0..6], &GROUP_MAC);
        let ip = &f[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(ip[8], 255, "TTL");
        assert_eq!(ip[9], 112);
        let v = &f[34..];
        assert_eq!(v[0], 0x31, "version 3, type 1");
        assert_eq!(v[1..4], [51, 100, 2]);
        assert_eq!(u16::from_be_bytes([v[4], v[5]]), 100, "centiseconds");
        assert_eq!(v[8..12], [198, 51, 100, 100]);
        // The checksum by hand: pseudo-header (src, dst, 0, 112, length) plus the packet.
        let mut acc: u32 = 0;
        for w in [198u32 << 8 | 51, 100 << 8 | 2, 224 << 8, 18, 112, 16] {
            acc += w;
        }
        for w in v.chunks(2) {
            acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        assert_eq!(
            acc, 0xffff,
            "the sum over pseudo-header and packet is all ones"
        );
    }

    #[test]
    fn v2_bytes_with_the_password() {
        let f = frame(2);
        let v = &f[34..];
        assert_eq!(v.len(), 8 + 8 + 8);
        assert_eq!(v[0], 0x21);
        assert_eq!(v[4], 1, "auth type PASS");
        assert_eq!(v[5], 1, "seconds");
        assert_eq!(&v[16..24], b"secret\0\0");
        assert!(checksum::verify(v), "v2 sums the VRRP packet alone");
    }

    #[test]
    fn what_is_built_parses_back() {
        for version in [2, 3] {
            let got = parse(&frame(version)).unwrap();
            assert_eq!(got.advert, advert(version));
            assert_eq!(got.src, Ipv4Addr::new(198, 51, 100, 2));
            assert_eq!(got.dst, GROUP);
            assert_eq!(got.src_mac, MAC);
        }
    }

    fn refit_ip_checksum(f: &mut [u8]) {
        f[24..26].fill(0);
        let sum = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&sum.to_be_bytes());
    }

    #[test]
    fn bad_adverts_are_refused_by_reason() {
        for version in [2u8, 3] {
            let good = frame(version);
            let mut ttl = good.clone();
            ttl[22] = 254;
            refit_ip_checksum(&mut ttl);
            assert_eq!(parse(&ttl).unwrap().ttl, 254, "the instance judges the TTL");

            let mut sum = good.clone();
            sum[40] ^= 1;
            assert_eq!(parse(&sum), Err(Refusal::Checksum));

            let mut ipsum = good.clone();
            ipsum[24] ^= 1;
            assert_eq!(parse(&ipsum), Err(Refusal::Checksum));

            let mut ver = good.clone();
            ver[34] = 0x41;
            assert_eq!(parse(&ver), Err(Refusal::Version));

            let mut kind = good.clone();
            kind[34] = (version << 4) | 2;
            assert_eq!(parse(&kind), Err(Refusal::Type));

            assert_eq!(parse(&good[..40]), Err(Refusal::Short));
            // One address more announced than carried.
            let mut count = good.clone();
            count[37] = 3;
            assert_eq!(parse(&count), Err(Refusal::Short));
            // Bytes beyond what the count allows, counted in the IP length.
            let mut long = good.clone();
            long.extend_from_slice(&[0; 4]);
            let total = (long.len() - 14) as u16;
            long[16..18].copy_from_slice(&total.to_be_bytes());
            refit_ip_checksum(&mut long);
            assert_eq!(parse(&long), Err(Refusal::Oversized));
            // Ethernet padding past the IP length is not the packet's.
            let mut padded = good.clone();
            padded.extend_from_slice(&[0; 10]);
            assert!(parse(&padded).is_ok());
        }
        let mut tcp = frame(3);
        tcp[23] = 6;
        assert_eq!(parse(&tcp), Err(Refusal::NotVrrp));
    }

    #[test]
    fn gratuitous_arp_names_the_address_twice() {
        let f = gratuitous_arp(MAC, Ipv4Addr::new(198, 51, 100, 100));
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(f[20..22], [0, 1], "request");
        assert_eq!(&f[22..28], &MAC);
        assert_eq!(f[28..32], [198, 51, 100, 100]);
        assert_eq!(f[38..42], [198, 51, 100, 100]);
    }
}
