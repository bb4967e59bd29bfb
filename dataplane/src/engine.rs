//! The sans-IO packet engine: (frame bytes, ingress port, snapshot) -> verdict. It performs no
//! I/O, allocates nothing and reads no clock; the worker loop only moves mbufs around it, and
//! every rule here is tested on byte arrays.
//!
//! What it does so far: answer ARP requests and ICMP echo requests for the appliance's own
//! addresses, rewriting the frame in place into the reply; everything else is dropped with a
//! named reason. The load-balancing path joins here.

use std::net::Ipv4Addr;

use crate::counters::DropReason;
use crate::wire::{arp, checksum, ethernet, icmp, ipv4};

/// TTL of the packets the appliance originates (replies), as Linux's default.
pub const REPLY_TTL: u8 = 64;

/// What one port is: its MAC and the IPv4 addresses the appliance owns on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortAddrs {
    pub mac: [u8; 6],
    pub ipv4: Vec<Ipv4Addr>,
}

impl PortAddrs {
    #[inline]
    fn owns(&self, addr: Ipv4Addr) -> bool {
        self.ipv4.contains(&addr)
    }
}

/// The immutable state workers read: built by the control thread, shared read-only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Indexed like the config's ports (and the workers' queue tables).
    pub ports: Vec<PortAddrs>,
}

/// What the appliance answered itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Arp,
    IcmpEcho,
}

/// The engine's decision for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame was rewritten in place into a reply: send it back out of the ingress port.
    Reply(Answer),
    Drop(DropReason),
}

/// Decides what to do with `frame`, received on port `in_port` of `snapshot`, rewriting it
/// in place when the verdict is a reply.
#[inline]
pub fn process(frame: &mut [u8], in_port: usize, snapshot: &Snapshot) -> Verdict {
    let Some(port) = snapshot.ports.get(in_port) else {
        return Verdict::Drop(DropReason::NotForUs);
    };
    match handle(frame, port) {
        Ok(answer) => Verdict::Reply(answer),
        Err(reason) => Verdict::Drop(reason),
    }
}

fn handle(frame: &mut [u8], port: &PortAddrs) -> Result<Answer, DropReason> {
    let eth = ethernet::Frame::new_checked(&*frame).map_err(|_| DropReason::Malformed)?;
    let dst = eth.dst();
    if dst != port.mac && dst != ethernet::BROADCAST {
        return Err(DropReason::NotForUs);
    }
    if ethernet::is_multicast(&eth.src()) {
        return Err(DropReason::MartianSource);
    }
    match eth.ethertype() {
        ethernet::ETHERTYPE_ARP => answer_arp(frame, port),
        ethernet::ETHERTYPE_IPV4 if dst == port.mac => answer_ipv4(frame, port),
        // A broadcast IPv4 frame is never an echo for one of our unicast addresses.
        ethernet::ETHERTYPE_IPV4 => Err(DropReason::NotForUs),
        _ => Err(DropReason::UnsupportedEthertype),
    }
}

fn answer_arp(frame: &mut [u8], port: &PortAddrs) -> Result<Answer, DropReason> {
    let mut eth = ethernet::Frame::new_unchecked(frame);
    let requester = eth.src();
    let mut packet =
        arp::Packet::new_checked(eth.payload_mut()).map_err(|_| DropReason::Malformed)?;
    let (target, sender) = (packet.target_ip(), packet.sender_ip());
    if packet.operation() != arp::OP_REQUEST || sender == target {
        // Replies and gratuitous announcements: nothing to answer (neighbours learn later).
        return Err(DropReason::ArpNotRequest);
    }
    if !port.owns(target) {
        return Err(DropReason::NotForUs);
    }
    if ethernet::is_multicast(&packet.sender_mac()) || port.owns(sender) {
        return Err(DropReason::MartianSource);
    }
    packet.set_operation(arp::OP_REPLY);
    packet.set_target(packet.sender_mac(), sender);
    packet.set_sender(port.mac, target);
    eth.set_dst(requester);
    eth.set_src(port.mac);
    Ok(Answer::Arp)
}

fn is_martian(addr: Ipv4Addr) -> bool {
    addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() || addr.is_loopback()
}

fn answer_ipv4(frame: &mut [u8], port: &PortAddrs) -> Result<Answer, DropReason> {
    let mut eth = ethernet::Frame::new_unchecked(frame);
    let requester = eth.src();
    let mut ip = ipv4::Packet::new_checked(eth.payload_mut()).map_err(|_| DropReason::Malformed)?;
    if !ip.verify_checksum() {
        return Err(DropReason::IpChecksum);
    }
    let (src, dst) = (ip.src(), ip.dst());
    if !port.owns(dst) {
        return Err(DropReason::NotForUs);
    }
    if is_martian(src) || port.owns(src) {
        return Err(DropReason::MartianSource);
    }
    if ip.is_fragment() {
        return Err(DropReason::Fragment);
    }
    if ip.protocol() != ipv4::PROTO_ICMP {
        return Err(DropReason::UnsupportedProtocol);
    }
    {
        let mut echo =
            icmp::Packet::new_checked(ip.payload_mut()).map_err(|_| DropReason::Malformed)?;
        if echo.msg_type() != icmp::TYPE_ECHO_REQUEST || echo.code() != 0 {
            return Err(DropReason::UnsupportedProtocol);
        }
        if !echo.verify_checksum() {
            return Err(DropReason::IcmpChecksum);
        }
        let old = u16::from(icmp::TYPE_ECHO_REQUEST) << 8;
        echo.set_msg_type(icmp::TYPE_ECHO_REPLY);
        let new = u16::from(icmp::TYPE_ECHO_REPLY) << 8;
        echo.set_checksum(checksum::update_word(echo.checksum(), old, new));
    }
    // Swapping the addresses leaves the header sum as it was; only the TTL word changes.
    let old = u16::from_be_bytes([ip.ttl(), ipv4::PROTO_ICMP]);
    ip.set_src(dst);
    ip.set_dst(src);
    ip.set_ttl(REPLY_TTL);
    let new = u16::from_be_bytes([REPLY_TTL, ipv4::PROTO_ICMP]);
    ip.set_checksum(checksum::update_word(ip.checksum(), old, new));
    eth.set_dst(requester);
    eth.set_src(port.mac);
    Ok(Answer::IcmpEcho)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUR_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
    const CLIENT_MAC: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 0x0a];
    const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

    fn snapshot() -> Snapshot {
        Snapshot {
            ports: vec![
                PortAddrs {
                    mac: OUR_MAC,
                    ipv4: vec![OUR_IP],
                },
                PortAddrs {
                    mac: [0x02, 0xaa, 0, 0, 0, 2],
                    ipv4: vec![Ipv4Addr::new(203, 0, 113, 1)],
                },
            ],
        }
    }

    /// Broadcast who-has `target` from the client, padded to the 60-byte minimum.
    fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        ethernet::Repr {
            dst: ethernet::BROADCAST,
            src: CLIENT_MAC,
            ethertype: ethernet::ETHERTYPE_ARP,
        }
        .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
        arp::Repr {
            operation: arp::OP_REQUEST,
            sender_mac: CLIENT_MAC,
            sender_ip: CLIENT_IP,
            target_mac: [0; 6],
            target_ip: target,
        }
        .emit(&mut arp::Packet::new_unchecked(&mut f[14..42]));
        f
    }

    fn echo_request(dst: Ipv4Addr, ttl: u8, data_len: usize) -> Vec<u8> {
        let icmp_len = icmp::HEADER_LEN + data_len;
        let mut f = vec![0u8; 14 + 20 + icmp_len];
        ethernet::Repr {
            dst: OUR_MAC,
            src: CLIENT_MAC,
            ethertype: ethernet::ETHERTYPE_IPV4,
        }
        .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
        ipv4::Repr {
            src: CLIENT_IP,
            dst,
            protocol: ipv4::PROTO_ICMP,
            ttl,
            tos: 0,
            ident: 0x4242,
            dont_fragment: true,
            payload_len: icmp_len,
        }
        .emit(&mut f[14..]);
        let mut echo = icmp::Packet::new_unchecked(&mut f[34..]);
        echo.set_msg_type(icmp::TYPE_ECHO_REQUEST);
        echo.set_echo(0x77, 3);
        for (i, b) in f[42..].iter_mut().enumerate() {
            *b = i as u8;
        }
        icmp::Packet::new_unchecked(&mut f[34..]).fill_checksum();
        f
    }

    #[test]
    fn answers_arp_request_for_own_address() {
        let mut f = arp_request(OUR_IP);
        assert_eq!(process(&mut f, 0, &snapshot()), Verdict::Reply(Answer::Arp));
        let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!(
            ethernet::Repr::parse(&eth),
            ethernet::Repr {
                dst: CLIENT_MAC,
                src: OUR_MAC,
                ethertype: ethernet::ETHERTYPE_ARP
            }
        );
        let reply = arp::Repr::parse(&arp::Packet::new_checked(eth.payload()).unwrap());
        assert_eq!(
            reply,
            arp::Repr {
                operation: arp::OP_REPLY,
                sender_mac: OUR_MAC,
                sender_ip: OUR_IP,
                target_mac: CLIENT_MAC,
                target_ip: CLIENT_IP,
            }
        );
        assert_eq!(f.len(), 60, "reply keeps the frame's size");
    }

    #[test]
    fn arp_only_for_the_ingress_ports_addresses() {
        // 203.0.113.1 belongs to port 1, not to port 0 where the request came in.
        let mut f = arp_request(Ipv4Addr::new(203, 0, 113, 1));
        let before = f.clone();
        assert_eq!(
            process(&mut f, 0, &snapshot()),
            Verdict::Drop(DropReason::NotForUs)
        );
        assert_eq!(f, before, "a dropped frame is not modified");
    }

    #[test]
    fn arp_replies_and_gratuitous_are_not_answered() {
        let mut f = arp_request(OUR_IP);
        f[21] = 2; // operation reply
        assert_eq!(
            process(&mut f, 0, &snapshot()),
            Verdict::Drop(DropReason::ArpNotRequest)
        );
        let mut f = arp_request(OUR_IP);
        f[28..32].copy_from_slice(&OUR_IP.octets()); // sender == target
        assert_eq!(
            process(&mut f, 0, &snapshot()),
            Verdict::Drop(DropReason::ArpNotRequest)
        );
    }

    #[test]
    fn answers_echo_with_correct_checksums() {
        let mut f = echo_request(OUR_IP, 17, 56);
        let request = f.clone();
        assert_eq!(
            process(&mut f, 0, &snapshot()),
            Verdict::Reply(Answer::IcmpEcho)
        );
        let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.dst(), eth.src()), (CLIENT_MAC, OUR_MAC));
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.ttl()),
            (OUR_IP, CLIENT_IP, REPLY_TTL)
        );
        // Incremental updates must equal a full recomputation.
        let mut recomputed = f[14..34].to_vec();
        recomputed[10..12].fill(0);
        assert_eq!(ip.checksum(), checksum::checksum(&recomputed));
        let echo = icmp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(
            (echo.msg_type(), echo.code(), echo.ident(), echo.seq()),
            (0, 0, 0x77, 3)
        );
        let mut message = ip.payload().to_vec();
        message[2..4].fill(0);
        assert_eq!(echo.checksum(), checksum::checksum(&message));
        assert_eq!(echo.data(), &request[42..], "data echoed unchanged");
    }

    #[test]
    fn echo_drop_reasons() {
        let snap = snapshot();
        let cases: Vec<(Vec<u8>, DropReason)> = vec![
            (
                echo_request(Ipv4Addr::new(198, 51, 100, 99), 64, 8),
                DropReason::NotForUs,
            ),
            (
                {
                    let mut f = echo_request(OUR_IP, 64, 8);
                    f[24] ^= 0xff; // corrupt the TTL without fixing the checksum
                    f
                },
                DropReason::IpChecksum,
            ),
            (
                {
                    let mut f = echo_request(OUR_IP, 64, 8);
                    f[45] ^= 0xff;
                    f
                },
                DropReason::IcmpChecksum,
            ),
            (
                {
                    let mut f = echo_request(OUR_IP, 64, 8);
                    f[34] = icmp::TYPE_TIME_EXCEEDED;
                    icmp::Packet::new_unchecked(&mut f[34..]).fill_checksum();
                    f
                },
                DropReason::UnsupportedProtocol,
            ),
            (
                {
                    let mut f = echo_request(OUR_IP, 64, 8);
                    f[23] = ipv4::PROTO_TCP;
                    ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
                    f
                },
                DropReason::UnsupportedProtocol,
            ),
            (
                {
                    let mut f = echo_request(OUR_IP, 64, 8);
                    f[20] |= 0x20; // MF
                    ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
                    f
                },
                DropReason::Fragment,
            ),
            (
                {
                    let mut f = echo_request(OUR_IP, 64, 8);
                    f[26..30].copy_from_slice(&[224, 0, 0, 1]);
                    ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
                    f
                },
                DropReason::MartianSource,
            ),
            (
                {
                    let mut f = echo_request(OUR_IP, 64, 8);
                    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
                    f
                },
                DropReason::NotForUs,
            ),
            (
                {
                    let mut f = echo_request(OUR_IP, 64, 8);
                    f[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
                    f
                },
                DropReason::UnsupportedEthertype,
            ),
            (
                echo_request(OUR_IP, 64, 8)[..40].to_vec(),
                DropReason::Malformed,
            ),
            (
                {
                    let mut f = echo_request(OUR_IP, 64, 8);
                    f[14] = 0x44; // IHL 4
                    f
                },
                DropReason::Malformed,
            ),
            (
                {
                    let mut f = echo_request(OUR_IP, 64, 8);
                    f[17] = 200; // total length beyond the frame
                    f
                },
                DropReason::Malformed,
            ),
            (vec![0xff; 10], DropReason::Malformed),
        ];
        for (i, (mut frame, reason)) in cases.into_iter().enumerate() {
            let before = frame.clone();
            assert_eq!(
                process(&mut frame, 0, &snap),
                Verdict::Drop(reason),
                "case {i}"
            );
            assert_eq!(frame, before, "case {i}: a dropped frame is not modified");
        }
    }

    #[test]
    fn echo_with_ip_options_is_answered() {
        // 24-byte header (NOP NOP NOP EOL) before the ICMP message.
        let plain = echo_request(OUR_IP, 64, 8);
        let mut f = plain[..34].to_vec();
        f.extend_from_slice(&[1, 1, 1, 0]);
        f.extend_from_slice(&plain[34..]);
        f[14] = 0x46;
        f[17] += 4;
        ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
        assert_eq!(
            process(&mut f, 0, &snapshot()),
            Verdict::Reply(Answer::IcmpEcho)
        );
        assert!(ipv4::Packet::new_checked(&f[14..])
            .unwrap()
            .verify_checksum());
        assert!(icmp::Packet::new_checked(&f[38..])
            .unwrap()
            .verify_checksum());
    }

    #[test]
    fn unknown_port_is_dropped() {
        let mut f = arp_request(OUR_IP);
        assert_eq!(
            process(&mut f, 7, &snapshot()),
            Verdict::Drop(DropReason::NotForUs)
        );
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic, and a drop never modifies the frame.
        #[test]
        fn arbitrary_bytes_never_panic(mut frame in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                                       broadcast in proptest::bool::ANY, ethertype in 0usize..3) {
            if frame.len() >= 14 {
                frame[0..6].copy_from_slice(if broadcast { &ethernet::BROADCAST } else { &OUR_MAC });
                frame[6] &= 0xfe;
                let t = [ethernet::ETHERTYPE_ARP, ethernet::ETHERTYPE_IPV4, 0x1234][ethertype];
                frame[12..14].copy_from_slice(&t.to_be_bytes());
            }
            let before = frame.clone();
            if let Verdict::Drop(_) = process(&mut frame, 0, &snapshot()) {
                proptest::prop_assert_eq!(frame, before);
            }
        }
    }
}
