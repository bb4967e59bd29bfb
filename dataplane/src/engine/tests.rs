//! The engine on byte arrays: every mode in both directions it has, with every rewritten
//! field and checksum checked against a full recomputation; the appliance's own answers; ICMP
//! error translation; and each drop reason.

use std::net::Ipv4Addr;

use super::*;
use crate::conn::Timeouts;
use crate::flow::{Endpoint, ForwardMode};
use crate::forward::testing::{assert_checksums, ep, fix_checksums, frame, parsed, CLIENT_MAC};
use crate::frame::VecFrame;
use crate::sched::SchedulerKind;
use crate::snapshot::{PortAddrs, RealServer, Route, Service, Snapshot};
use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};

pub(super) const MAC0: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
pub(super) const MAC1: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 2];
pub(super) const OWN0: [u8; 4] = [198, 51, 100, 1];
pub(super) const OWN1: [u8; 4] = [203, 0, 113, 1];
pub(super) const CLIENT: [u8; 4] = [198, 51, 100, 10];
pub(super) const VIP: [u8; 4] = [198, 51, 100, 100];
pub(super) const LIP: [u8; 4] = [203, 0, 113, 201];
pub(super) const REALS: [[u8; 4]; 3] = [[203, 0, 113, 11], [203, 0, 113, 12], [203, 0, 113, 13]];
pub(super) const SYN: u8 = tcp::FLAG_SYN;
pub(super) const SYN_ACK: u8 = tcp::FLAG_SYN | tcp::FLAG_ACK;
pub(super) const ACK: u8 = tcp::FLAG_ACK;

pub(super) fn real_mac(i: usize) -> [u8; 6] {
    [0x02, 0x55, 0, 0, 0, 11 + i as u8]
}

/// Two ports, one service per mode on its own VIP port (80 NAT, 81 FULLNAT, 82 DR, 83 TUN,
/// 9000 UDP NAT), three real servers, all neighbours resolved.
pub(super) fn snapshot() -> Snapshot {
    let mut s = Snapshot::with_ports(vec![
        PortAddrs {
            mac: MAC0,
            ipv4: vec![OWN0.into(), VIP.into()],
            primary: Some(OWN0.into()),
            mtu: 1500,
            kernel: vec![],
        },
        PortAddrs {
            mac: MAC1,
            ipv4: vec![OWN1.into(), LIP.into()],
            primary: Some(OWN1.into()),
            mtu: 1500,
            kernel: vec![],
        },
    ]);
    s.generation = 1;
    s.add_route(Route {
        network: [198, 51, 100, 0].into(),
        prefix_len: 24,
        port: 0,
        gateway: None,
    });
    s.add_route(Route {
        network: [203, 0, 113, 0].into(),
        prefix_len: 24,
        port: 1,
        gateway: None,
    });
    for (i, r) in REALS.iter().enumerate() {
        s.neighbors.insert((1, (*r).into()), real_mac(i));
        s.next_hops.insert((1, (*r).into()));
    }
    let reals = |port: u16| -> Vec<RealServer> {
        REALS
            .iter()
            .map(|r| RealServer {
                addr: ep(*r, port),
                weight: 1,
                port: 1,
                next_hop_mac: None,
                upper_threshold: 0,
                lower_threshold: 0,
            })
            .collect()
    };
    for (vport, mode, protocol) in [
        (80, ForwardMode::Nat, PROTO_TCP),
        (81, ForwardMode::FullNat, PROTO_TCP),
        (82, ForwardMode::Dr, PROTO_TCP),
        (83, ForwardMode::Tun, PROTO_TCP),
        (9000, ForwardMode::Nat, PROTO_UDP),
    ] {
        s.add_service(Service {
            protocol,
            vip: ep(VIP, vport),
            mode,
            scheduler: SchedulerKind::Rr,
            flags: Default::default(),
            persistence: None,
            maglev: None,
            members: Vec::new(),
            sloppy_tcp: false,
            expire_nodest_conn: false,
            reals: reals(if mode == ForwardMode::Dr || mode == ForwardMode::Tun {
                vport
            } else {
                8080
            }),
            local_addrs: if mode == ForwardMode::FullNat {
                vec![LIP.into()]
            } else {
                vec![]
            },
        });
    }
    s
}

pub(super) fn state() -> WorkerState {
    WorkerState::new(0, 1, 1024, Timeouts::ipvs_defaults())
}

/// A client frame to the VIP, addressed to port 0's MAC.
pub(super) fn from_client(
    protocol: u8,
    sport: u16,
    vport: u16,
    flags: u8,
    payload: &[u8],
) -> VecFrame {
    VecFrame::new(&frame(
        protocol,
        ep(CLIENT, sport),
        ep(VIP, vport),
        64,
        flags,
        payload,
    ))
}

/// A real server's frame, addressed to port 1's MAC.
pub(super) fn from_real(
    protocol: u8,
    src: Endpoint,
    dst: Endpoint,
    flags: u8,
    payload: &[u8],
) -> VecFrame {
    let mut f = frame(protocol, src, dst, 64, flags, payload);
    f[0..6].copy_from_slice(&MAC1);
    f[6..12].copy_from_slice(&real_mac(0));
    VecFrame::new(&f)
}

/// An ICMP error frame (`to_mac`, `from_mac`), (`from`, `to`) addresses, (type, code, rest of
/// header), quoting `quote`.
fn icmp_error_frame(
    macs: ([u8; 6], [u8; 6]),
    addrs: ([u8; 4], [u8; 4]),
    kind: (u8, u8, u32),
    quote: &[u8],
) -> Vec<u8> {
    let mut err = vec![0u8; 14 + 20 + 8 + quote.len()];
    err[0..6].copy_from_slice(&macs.0);
    err[6..12].copy_from_slice(&macs.1);
    err[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    ipv4::Repr {
        src: addrs.0.into(),
        dst: addrs.1.into(),
        protocol: ipv4::PROTO_ICMP,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_fragment: false,
        payload_len: 8 + quote.len(),
    }
    .emit(&mut err[14..]);
    icmp::emit_error(&mut err[34..], kind.0, kind.1, kind.2, quote);
    err
}

fn macs(f: &VecFrame) -> ([u8; 6], [u8; 6]) {
    let b = f.bytes();
    (b[6..12].try_into().unwrap(), b[0..6].try_into().unwrap())
}

#[test]
fn nat_both_directions() {
    let (snap, mut st) = (snapshot(), state());
    let mut syn = from_client(PROTO_TCP, 40000, 80, SYN, b"");
    assert_eq!(
        process(&mut syn, 0, &snap, &mut st, 0),
        Verdict::Forward {
            port: 1,
            created: true
        }
    );
    let p = parsed(syn.bytes());
    assert_eq!((p.src, p.dst), (ep(CLIENT, 40000), ep(REALS[0], 8080)));
    assert_eq!(macs(&syn), (MAC1, real_mac(0)));
    assert_eq!(syn.bytes()[22], 63, "TTL decremented");
    assert_checksums(syn.bytes(), 14);

    let mut syn_ack = from_real(
        PROTO_TCP,
        ep(REALS[0], 8080),
        ep(CLIENT, 40000),
        SYN_ACK,
        b"",
    );
    assert_eq!(
        process(&mut syn_ack, 1, &snap, &mut st, 1),
        Verdict::Forward {
            port: 0,
            created: false
        }
    );
    let p = parsed(syn_ack.bytes());
    assert_eq!((p.src, p.dst), (ep(VIP, 80), ep(CLIENT, 40000)));
    assert_eq!(
        macs(&syn_ack),
        (MAC0, CLIENT_MAC),
        "back to the client's MAC (auto last hop)"
    );
    assert_checksums(syn_ack.bytes(), 14);

    let mut ack = from_client(PROTO_TCP, 40000, 80, ACK, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(
        process(&mut ack, 0, &snap, &mut st, 2),
        Verdict::Forward {
            port: 1,
            created: false
        }
    );
    assert_eq!(
        parsed(ack.bytes()).dst,
        ep(REALS[0], 8080),
        "same server for the whole connection"
    );
    assert_eq!(st.conns.len(), 1);
    let (id, _) = st
        .conns
        .lookup(&FlowKey::new(PROTO_TCP, ep(CLIENT, 40000), ep(VIP, 80)))
        .unwrap();
    assert_eq!(st.conns.get(id).unwrap().state, TcpState::Established);
}

#[test]
fn fullnat_both_directions() {
    let (snap, mut st) = (snapshot(), state());
    let mut syn = from_client(PROTO_TCP, 40000, 81, SYN, b"");
    assert_eq!(
        process(&mut syn, 0, &snap, &mut st, 0),
        Verdict::Forward {
            port: 1,
            created: true
        }
    );
    let p = parsed(syn.bytes());
    assert_eq!(p.src.addr, Ipv4Addr::from(LIP));
    assert!(p.src.port >= 1024, "a local port from the worker's share");
    assert_eq!(p.dst, ep(REALS[0], 8080));
    assert_checksums(syn.bytes(), 14);
    let local = p.src;

    let mut reply = from_real(PROTO_TCP, ep(REALS[0], 8080), local, SYN_ACK, b"");
    assert_eq!(
        process(&mut reply, 1, &snap, &mut st, 1),
        Verdict::Forward {
            port: 0,
            created: false
        }
    );
    let p = parsed(reply.bytes());
    assert_eq!((p.src, p.dst), (ep(VIP, 81), ep(CLIENT, 40000)));
    assert_eq!(macs(&reply), (MAC0, CLIENT_MAC));
    assert_checksums(reply.bytes(), 14);
}

#[test]
fn fullnat_local_ports_are_unique_per_real_server() {
    let (snap, mut st) = (snapshot(), state());
    let mut seen = std::collections::HashSet::new();
    for sport in 0..300u16 {
        let mut syn = from_client(PROTO_TCP, 20000 + sport, 81, SYN, b"");
        assert!(matches!(
            process(&mut syn, 0, &snap, &mut st, 0),
            Verdict::Forward { .. }
        ));
        let p = parsed(syn.bytes());
        assert!(
            seen.insert((p.dst, p.src)),
            "local endpoint reused towards the same server"
        );
    }
}

#[test]
fn dr_rewrites_only_the_macs() {
    let (snap, mut st) = (snapshot(), state());
    let mut syn = from_client(PROTO_TCP, 40000, 82, SYN, b"");
    let before = syn.bytes().to_vec();
    assert_eq!(
        process(&mut syn, 0, &snap, &mut st, 0),
        Verdict::Forward {
            port: 1,
            created: true
        }
    );
    assert_eq!(macs(&syn), (MAC1, real_mac(0)));
    let after = syn.bytes();
    assert_eq!(after[22], 63);
    assert_eq!(
        &after[26..],
        &before[26..],
        "addresses, ports and payload unchanged"
    );
    assert_checksums(after, 14);
    // The real server answers the client directly: nothing is indexed for replies.
    let reply = FlowKey::new(PROTO_TCP, ep(REALS[0], 82), ep(CLIENT, 40000));
    assert!(st.conns.lookup(&reply).is_none());
}

#[test]
fn tun_wraps_and_answers_frag_needed_when_too_big() {
    let (snap, mut st) = (snapshot(), state());
    let mut syn = from_client(PROTO_TCP, 40000, 83, SYN, b"");
    let inner_len = syn.bytes().len() - 14;
    assert_eq!(
        process(&mut syn, 0, &snap, &mut st, 0),
        Verdict::Forward {
            port: 1,
            created: true
        }
    );
    let b = syn.bytes();
    assert_eq!(macs(&syn), (MAC1, real_mac(0)));
    let outer = ipv4::Packet::new_checked(&b[14..]).unwrap();
    assert!(outer.verify_checksum());
    assert_eq!(
        (outer.src(), outer.dst(), outer.protocol()),
        (OWN1.into(), REALS[0].into(), ipv4::PROTO_IPIP)
    );
    assert_eq!(outer.total_len(), inner_len + 20);
    let inner = ipv4::Packet::new_checked(outer.payload()).unwrap();
    assert_eq!(
        (inner.src(), inner.dst(), inner.ttl()),
        (CLIENT.into(), VIP.into(), 63)
    );
    assert!(inner.verify_checksum());

    // A full-size segment of the same connection no longer fits with DF set.
    let mut big = from_client(PROTO_TCP, 40000, 83, ACK, &[0x55; 1460]);
    assert_eq!(
        process(&mut big, 0, &snap, &mut st, 1),
        Verdict::Reply(Answer::FragNeeded)
    );
    let b = big.bytes();
    assert_eq!(macs(&big), (MAC0, CLIENT_MAC));
    let ip = ipv4::Packet::new_checked(&b[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst()), (OWN0.into(), CLIENT.into()));
    let msg = icmp::Packet::new_checked(ip.payload()).unwrap();
    assert!(msg.verify_checksum());
    assert_eq!(
        (msg.msg_type(), msg.code(), msg.next_hop_mtu()),
        (3, 4, 1480)
    );
}

#[test]
fn round_robin_spreads_new_connections_evenly() {
    let (snap, mut st) = (snapshot(), state());
    let mut counts = [0; 3];
    for sport in 0..300 {
        let mut syn = from_client(PROTO_TCP, 10000 + sport, 80, SYN, b"");
        process(&mut syn, 0, &snap, &mut st, 0);
        let dst = parsed(syn.bytes()).dst.addr;
        counts[REALS
            .iter()
            .position(|r| Ipv4Addr::from(*r) == dst)
            .unwrap()] += 1;
    }
    assert_eq!(counts, [100, 100, 100]);
}

#[test]
fn udp_nat_both_directions_and_checksumless_datagrams() {
    let (snap, mut st) = (snapshot(), state());
    let mut d = from_client(PROTO_UDP, 5000, 9000, 0, b"hello");
    assert_eq!(
        process(&mut d, 0, &snap, &mut st, 0),
        Verdict::Forward {
            port: 1,
            created: true
        }
    );
    assert_eq!(parsed(d.bytes()).dst, ep(REALS[0], 8080));
    assert_checksums(d.bytes(), 14);
    let mut r = from_real(
        PROTO_UDP,
        ep(REALS[0], 8080),
        ep(CLIENT, 5000),
        0,
        b"rs1:hello",
    );
    assert_eq!(
        process(&mut r, 1, &snap, &mut st, 1),
        Verdict::Forward {
            port: 0,
            created: false
        }
    );
    assert_eq!(parsed(r.bytes()).src, ep(VIP, 9000));
    assert_checksums(r.bytes(), 14);
    // A datagram without a checksum keeps none.
    let mut raw = frame(PROTO_UDP, ep(CLIENT, 5001), ep(VIP, 9000), 64, 0, b"x");
    raw[40..42].fill(0);
    let mut d = VecFrame::new(&raw);
    assert!(matches!(
        process(&mut d, 0, &snap, &mut st, 0),
        Verdict::Forward { .. }
    ));
    assert_eq!(&d.bytes()[40..42], &[0, 0]);
}

#[test]
fn icmp_port_unreachable_from_a_nat_real_server_is_translated() {
    let (snap, mut st) = (snapshot(), state());
    let mut d = from_client(PROTO_UDP, 5000, 9000, 0, b"ping");
    process(&mut d, 0, &snap, &mut st, 0);
    let sent = d.bytes().to_vec();
    // The real server's port-unreachable about what it got, to the client.
    let quote = &sent[14..14 + 28];
    let err = icmp_error_frame((MAC1, real_mac(0)), (REALS[0], CLIENT), (3, 3, 0), quote);
    let mut f = VecFrame::new(&err);
    assert_eq!(
        process(&mut f, 1, &snap, &mut st, 1),
        Verdict::Forward {
            port: 0,
            created: false
        }
    );
    let b = f.bytes();
    let ip = ipv4::Packet::new_checked(&b[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(
        (ip.src(), ip.dst(), ip.ttl()),
        (VIP.into(), CLIENT.into(), 63)
    );
    assert!(checksum::verify(ip.payload()), "ICMP checksum");
    let q = icmp_error::parse(b, 14, 34, b.len()).unwrap();
    assert_eq!(
        (q.src, q.dst),
        (ep(CLIENT, 5000), ep(VIP, 9000)),
        "the client sees its own datagram quoted"
    );
    assert_eq!(macs(&f), (MAC0, CLIENT_MAC));
}

#[test]
fn ttl_expiry_is_answered() {
    let (snap, mut st) = (snapshot(), state());
    let mut raw = frame(PROTO_TCP, ep(CLIENT, 40000), ep(VIP, 80), 1, SYN, b"");
    fix_checksums(&mut raw, 14);
    let mut f = VecFrame::new(&raw);
    assert_eq!(
        process(&mut f, 0, &snap, &mut st, 0),
        Verdict::Reply(Answer::TimeExceeded)
    );
    let ip = ipv4::Packet::new_checked(&f.bytes()[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst()), (OWN0.into(), CLIENT.into()));
    assert_eq!(
        icmp::Packet::new_checked(ip.payload()).unwrap().msg_type(),
        icmp::TYPE_TIME_EXCEEDED
    );
    assert_eq!(
        st.conns.len(),
        0,
        "no connection for a packet that could not be forwarded"
    );
}

#[test]
fn drop_reasons() {
    let snap = snapshot();
    let mut st = state();
    let cases: Vec<(VecFrame, usize, DropReason)> = vec![
        (
            from_client(PROTO_TCP, 40000, 80, ACK, b""),
            0,
            DropReason::NoConnection,
        ),
        (
            from_client(PROTO_TCP, 40000, 80, SYN_ACK, b""),
            0,
            DropReason::NoConnection,
        ),
        (
            from_client(PROTO_TCP, 40000, 99, SYN, b""),
            0,
            DropReason::NoService,
        ),
        (
            from_client(PROTO_TCP, 0, 80, SYN, b""),
            0,
            DropReason::Malformed,
        ),
        (
            VecFrame::new(&frame(
                PROTO_TCP,
                ep(CLIENT, 1),
                ep([198, 51, 100, 77], 80),
                64,
                SYN,
                b"",
            )),
            0,
            DropReason::NotForUs,
        ),
        (
            {
                let mut f = frame(PROTO_TCP, ep(CLIENT, 1), ep(VIP, 80), 64, SYN, b"");
                f[20] |= 0x20; // MF: a fragment
                fix_checksums(&mut f, 14);
                VecFrame::new(&f)
            },
            0,
            DropReason::Fragment,
        ),
        (
            {
                let mut f = frame(PROTO_TCP, ep(CLIENT, 1), ep(VIP, 80), 64, SYN, b"");
                f[46] = 0x40; // TCP data offset 4
                VecFrame::new(&f)
            },
            0,
            DropReason::Malformed,
        ),
        (
            {
                let mut f = frame(PROTO_UDP, ep(CLIENT, 1), ep(VIP, 9000), 64, 0, b"abc");
                f[38..40].copy_from_slice(&200u16.to_be_bytes()); // UDP length beyond the datagram
                VecFrame::new(&f)
            },
            0,
            DropReason::Malformed,
        ),
    ];
    for (i, (mut f, port, reason)) in cases.into_iter().enumerate() {
        let before = f.clone();
        assert_eq!(
            process(&mut f, port, &snap, &mut st, 0),
            Verdict::Drop(reason),
            "case {i}"
        );
        assert_eq!(f, before, "case {i}: a dropped frame is not modified");
    }
    assert_eq!(st.conns.len(), 0);
}

#[test]
fn unresolved_neighbour_quiesced_servers_and_a_full_table() {
    let mut snap = snapshot();
    snap.neighbors.clear();
    let mut st = state();
    let mut syn = from_client(PROTO_TCP, 1, 80, SYN, b"");
    assert_eq!(
        process(&mut syn, 0, &snap, &mut st, 0),
        Verdict::Drop(DropReason::NoNeighbor)
    );
    assert_eq!(st.conns.len(), 0);

    let mut snap = snapshot();
    snap.generation = 2;
    for r in &mut snap.services[0].reals {
        r.weight = 0;
    }
    let mut syn = from_client(PROTO_TCP, 1, 80, SYN, b"");
    assert_eq!(
        process(&mut syn, 0, &snap, &mut st, 0),
        Verdict::Drop(DropReason::NoRealServer)
    );

    let snap = snapshot();
    let mut st = WorkerState::new(0, 1, 1, Timeouts::ipvs_defaults());
    let mut first = from_client(PROTO_TCP, 1, 80, SYN, b"");
    assert!(matches!(
        process(&mut first, 0, &snap, &mut st, 0),
        Verdict::Forward { created: true, .. }
    ));
    let real = parsed(first.bytes()).dst;
    let mut syn_ack = from_real(PROTO_TCP, real, ep(CLIENT, 1), SYN_ACK, b"");
    process(&mut syn_ack, 1, &snap, &mut st, 0);
    let mut ack = from_client(PROTO_TCP, 1, 80, ACK, b"");
    process(&mut ack, 0, &snap, &mut st, 0);
    // Established: no SYN may take its slot, nor a UDP flow.
    let mut second = from_client(PROTO_TCP, 2, 80, SYN, b"");
    assert_eq!(
        process(&mut second, 0, &snap, &mut st, 0),
        Verdict::Drop(DropReason::TableFull)
    );
    let mut datagram = from_client(PROTO_UDP, 2, 9000, 0, b"x");
    assert_eq!(
        process(&mut datagram, 0, &snap, &mut st, 0),
        Verdict::Drop(DropReason::TableFull)
    );
    // The established one goes on.
    let mut more = from_client(PROTO_TCP, 1, 80, ACK, b"data");
    assert!(matches!(
        process(&mut more, 0, &snap, &mut st, 0),
        Verdict::Forward { .. }
    ));
}

#[test]
fn quiesced_server_keeps_its_connections() {
    let mut snap = snapshot();
    let mut st = state();
    let mut syn = from_client(PROTO_TCP, 1, 80, SYN, b"");
    process(&mut syn, 0, &snap, &mut st, 0);
    assert_eq!(parsed(syn.bytes()).dst.addr, Ipv4Addr::from(REALS[0]));
    snap.generation = 2;
    snap.services[0].reals[0].weight = 0;
    let mut more = from_client(PROTO_TCP, 1, 80, ACK, b"x");
    assert!(matches!(
        process(&mut more, 0, &snap, &mut st, 1),
        Verdict::Forward { .. }
    ));
    assert_eq!(parsed(more.bytes()).dst.addr, Ipv4Addr::from(REALS[0]));
    for sport in 2..20 {
        let mut syn = from_client(PROTO_TCP, sport, 80, SYN, b"");
        process(&mut syn, 0, &snap, &mut st, 1);
        assert_ne!(
            parsed(syn.bytes()).dst.addr,
            Ipv4Addr::from(REALS[0]),
            "no new connection to weight 0"
        );
    }
}

#[test]
fn arp_and_echo_for_vips_and_local_addresses() {
    let (snap, mut st) = (snapshot(), state());
    let mut req = VecFrame::new(&arp_request(CLIENT_MAC, CLIENT.into(), VIP.into()));
    assert_eq!(
        process(&mut req, 0, &snap, &mut st, 0),
        Verdict::Reply(Answer::Arp)
    );
    let a = arp::Packet::new_checked(&req.bytes()[14..]).unwrap();
    assert_eq!((a.sender_ip(), a.sender_mac()), (VIP.into(), MAC0));
    let mut req = VecFrame::new(&arp_request(real_mac(0), REALS[0].into(), LIP.into()));
    assert_eq!(
        process(&mut req, 1, &snap, &mut st, 0),
        Verdict::Reply(Answer::Arp)
    );
    // Replies and requests for others are for the control thread's neighbour table.
    let mut reply = arp_request(real_mac(0), REALS[0].into(), OWN1.into());
    reply[21] = 2;
    let mut reply = VecFrame::new(&reply);
    assert_eq!(process(&mut reply, 1, &snap, &mut st, 0), Verdict::SlowPath);
    let mut other = VecFrame::new(&arp_request(real_mac(0), REALS[0].into(), REALS[1].into()));
    assert_eq!(process(&mut other, 1, &snap, &mut st, 0), Verdict::SlowPath);
}

#[test]
fn echo_for_own_address_has_correct_checksums() {
    let (snap, mut st) = (snapshot(), state());
    let mut f = vec![0u8; 14 + 20 + 8 + 32];
    f[0..6].copy_from_slice(&MAC0);
    f[6..12].copy_from_slice(&CLIENT_MAC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    ipv4::Repr {
        src: CLIENT.into(),
        dst: OWN0.into(),
        protocol: ipv4::PROTO_ICMP,
        ttl: 9,
        tos: 0,
        ident: 3,
        dont_fragment: true,
        payload_len: 40,
    }
    .emit(&mut f[14..]);
    f[34] = icmp::TYPE_ECHO_REQUEST;
    icmp::Packet::new_unchecked(&mut f[34..]).fill_checksum();
    let mut frame = VecFrame::new(&f);
    assert_eq!(
        process(&mut frame, 0, &snap, &mut st, 0),
        Verdict::Reply(Answer::IcmpEcho)
    );
    let ip = ipv4::Packet::new_checked(&frame.bytes()[14..]).unwrap();
    let mut header = frame.bytes()[14..34].to_vec();
    header[10..12].fill(0);
    assert_eq!(ip.checksum(), checksum::checksum(&header));
    assert_eq!(
        (ip.src(), ip.dst(), ip.ttl()),
        (OWN0.into(), CLIENT.into(), REPLY_TTL)
    );
    assert!(checksum::verify(ip.payload()));
}

#[test]
fn connections_expire_like_ipvs() {
    let (snap, mut st) = (snapshot(), state());
    let mut d = from_client(PROTO_UDP, 5000, 9000, 0, b"x");
    process(&mut d, 0, &snap, &mut st, 0);
    assert_eq!(st.conns.len(), 1);
    let mut expired = 0;
    for second in 0..=301u64 {
        expired += st.conns.expire(second * 1000, 1024);
    }
    assert_eq!((expired, st.conns.len()), (1, 0), "UDP timeout 300 s");
    // A half-open TCP flow (SYN only) goes after SYN_RECV's 60 s.
    let mut syn = from_client(PROTO_TCP, 1, 80, SYN, b"");
    process(&mut syn, 0, &snap, &mut st, 400_000);
    for second in 400..=461u64 {
        st.conns.expire(second * 1000, 1024);
    }
    assert_eq!(st.conns.len(), 0);
}

proptest::proptest! {
    /// Arbitrary bytes never panic the engine, and a drop never modifies the frame.
    #[test]
    fn fuzz_arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                                   port in 0usize..3, kind in 0usize..4) {
        if bytes.len() >= 34 {
            bytes[0..6].copy_from_slice(&MAC0);
            bytes[6] &= 0xfe;
            let t = [ethernet::ETHERTYPE_ARP, ethernet::ETHERTYPE_IPV4, ethernet::ETHERTYPE_IPV4, 0x8100][kind];
            bytes[12..14].copy_from_slice(&t.to_be_bytes());
            if kind == 2 {
                // A valid IPv4 header to the VIP, so TCP/UDP/ICMP parsing is reached.
                bytes[14] = 0x45;
                let total = (bytes.len() - 14) as u16;
                bytes[16..18].copy_from_slice(&total.to_be_bytes());
                bytes[20] &= 0x40;
                bytes[21] = 0;
                bytes[23] = [PROTO_TCP, PROTO_UDP, ipv4::PROTO_ICMP][usize::from(bytes[23]) % 3];
                bytes[26..30].copy_from_slice(&CLIENT);
                bytes[30..34].copy_from_slice(&VIP);
                ipv4::Packet::new_unchecked(&mut bytes[14..]).fill_checksum();
            }
        }
        let (snap, mut st) = (snapshot(), state());
        let mut f = VecFrame::new(&bytes);
        let before = f.clone();
        // The worker's prefetch pass reads the same bytes unchecked first.
        super::prefetch(std::iter::once(&f), &st);
        match process(&mut f, port, &snap, &mut st, 0) {
            Verdict::Drop(_) | Verdict::SlowPath | Verdict::ToKernel { .. } => {
                proptest::prop_assert_eq!(f, before)
            }
            _ => {}
        }
    }
}

/// Recomputes only the IPv4 header checksum (for packets whose other fields are bogus).
fn fix_ip_header(f: &mut [u8]) {
    f[24..26].fill(0);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Issue's malformed-input list, each to its named counter (or forwarded where IPVS would).
#[test]
fn malformed_inputs_land_in_named_counters() {
    let snap = snapshot();
    let syn = || frame(PROTO_TCP, ep(CLIENT, 40000), ep(VIP, 80), 64, SYN, b"");
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut f = syn();
        edit(&mut f);
        f
    };
    let cases: Vec<(&str, Vec<u8>, Verdict)> = vec![
        (
            "truncated Ethernet",
            syn()[..10].to_vec(),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "truncated IPv4",
            syn()[..30].to_vec(),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "bad IHL",
            with(&|f| f[14] = 0x44),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "IHL beyond the frame",
            with(&|f| f[14] = 0x4f),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "total length larger than the frame",
            with(&|f| {
                f[16..18].copy_from_slice(&200u16.to_be_bytes());
                fix_ip_header(f);
            }),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "total length smaller than the headers",
            with(&|f| {
                f[16..18].copy_from_slice(&30u16.to_be_bytes());
                fix_ip_header(f);
            }),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "bad IPv4 checksum",
            with(&|f| f[24] ^= 0xff),
            Verdict::Drop(DropReason::IpChecksum),
        ),
        (
            "fragment",
            with(&|f| {
                f[20..22].copy_from_slice(&0x0001u16.to_be_bytes()); // offset 8, not first
                fix_checksums(f, 14);
            }),
            Verdict::Drop(DropReason::Fragment),
        ),
        (
            "zero destination port",
            frame(PROTO_TCP, ep(CLIENT, 40000), ep(VIP, 0), 64, SYN, b""),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "TTL 1",
            frame(PROTO_TCP, ep(CLIENT, 40000), ep(VIP, 80), 1, SYN, b""),
            Verdict::Reply(Answer::TimeExceeded),
        ),
        (
            "TTL 0",
            frame(PROTO_TCP, ep(CLIENT, 40000), ep(VIP, 80), 0, SYN, b""),
            Verdict::Reply(Answer::TimeExceeded),
        ),
        (
            "truncated TCP header",
            with(&|f| {
                f.truncate(14 + 20 + 10);
                f[16..18].copy_from_slice(&30u16.to_be_bytes());
                fix_ip_header(f);
            }),
            Verdict::Drop(DropReason::Malformed),
        ),
        (
            "multicast source MAC",
            with(&|f| f[6] |= 1),
            Verdict::Drop(DropReason::MartianSource),
        ),
        (
            "broadcast source address",
            with(&|f| {
                f[26..30].copy_from_slice(&[255; 4]);
                fix_checksums(f, 14);
            }),
            Verdict::Drop(DropReason::MartianSource),
        ),
        (
            "802.1Q tag",
            with(&|f| f[12..14].copy_from_slice(&0x8100u16.to_be_bytes())),
            Verdict::Drop(DropReason::UnsupportedEthertype),
        ),
        (
            "IPv6",
            with(&|f| f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes())),
            Verdict::Drop(DropReason::UnsupportedEthertype),
        ),
    ];
    for (name, bytes, want) in cases {
        let mut st = state();
        let mut f = VecFrame::new(&bytes);
        let before = f.clone();
        let got = process(&mut f, 0, &snap, &mut st, 0);
        assert_eq!(got, want, "{name}");
        if let Verdict::Drop(_) = got {
            assert_eq!(f, before, "{name}: a dropped frame is not modified");
        }
        assert_eq!(st.conns.len(), 0, "{name}: no connection");
    }

    // IP options: forwarded as IPVS would, options kept, checksums right.
    let plain = syn();
    let mut f = plain[..34].to_vec();
    f.extend_from_slice(&[1, 1, 1, 0]);
    f.extend_from_slice(&plain[34..]);
    f[14] = 0x46;
    let total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    fix_checksums(&mut f, 14);
    let mut st = state();
    let mut frame_ = VecFrame::new(&f);
    assert_eq!(
        process(&mut frame_, 0, &snap, &mut st, 0),
        Verdict::Forward {
            port: 1,
            created: true
        }
    );
    let b = frame_.bytes();
    assert_eq!(&b[34..38], &[1, 1, 1, 0], "options kept");
    assert!(ipv4::Packet::new_checked(&b[14..])
        .unwrap()
        .verify_checksum());
    let segment = &b[38..];
    assert!(tcp::Packet::new_checked(segment)
        .unwrap()
        .verify_checksum(CLIENT.into(), REALS[0].into()));
    // Link-layer padding after a short datagram is not part of it.
    let mut padded = syn();
    padded.resize(80, 0xee);
    let mut st = state();
    let mut frame_ = VecFrame::new(&padded);
    assert!(matches!(
        process(&mut frame_, 0, &snap, &mut st, 0),
        Verdict::Forward { .. }
    ));
    assert_checksums(frame_.bytes(), 14);
}

proptest::proptest! {
    /// Random sequences of client packets, real-server replies and ICMP errors, valid and
    /// mangled, through one worker state: no panic, drops leave frames untouched, and every
    /// forwarded packet has right checksums.
    #[test]
    fn fuzz_random_traffic_through_one_worker(steps in proptest::collection::vec(
        (0usize..6, 0u16..8, 0u8..64, 0usize..4, proptest::collection::vec(proptest::num::u8::ANY, 0..40),
         proptest::option::of((0usize..120, proptest::num::u8::ANY))), 1..60),
         sched in 0usize..SchedulerKind::ALL.len(), persist in proptest::bool::ANY) {
        let mut snap = snapshot();
        for svc in &mut snap.services {
            svc.scheduler = SchedulerKind::ALL[sched];
            // A small Maglev table: 65521 entries per case would dominate the run.
            let servers: Vec<_> = svc.reals.iter().map(|r| (r.addr, r.weight)).collect();
            svc.maglev = Some(std::sync::Arc::new(crate::sched::MaglevTable::build(&servers, 251)));
            svc.reals[0].upper_threshold = 3;
            svc.persistence = persist.then_some(crate::snapshot::Persistence {
                timeout_s: 5,
                netmask: [255, 255, 255, 0].into(),
            });
        }
        snap.tcp_resets_per_second = 1000;
        // A small table: SYNs fill it and evict each other.
        let mut st = WorkerState::new(0, 1, 64, Timeouts::ipvs_defaults());
        let mut now = 0u64;
        for (kind, sport, flags, service, payload, mangle) in steps {
            now += 1000;
            let vport = [80u16, 81, 82, 83][service];
            let (protocol, vport) = if kind == 5 { (PROTO_UDP, 9000) } else { (PROTO_TCP, vport) };
            let client = ep(CLIENT, 30000 + sport);
            let (mut bytes, port) = match kind {
                0 | 1 | 5 => (frame(protocol, client, ep(VIP, vport), 64, flags & 0x3f, &payload), 0),
                2 => {
                    let mut f = frame(PROTO_TCP, ep(REALS[usize::from(sport) % 3], 8080), client, 64, flags & 0x3f, &payload);
                    f[0..6].copy_from_slice(&MAC1);
                    (f, 1)
                }
                3 => {
                    let mut f = frame(PROTO_TCP, ep(REALS[0], 8080), ep(LIP, 1024 + sport), 64, flags & 0x3f, &payload);
                    f[0..6].copy_from_slice(&MAC1);
                    (f, 1)
                }
                _ => (payload.clone(), 0),
            };
            if let Some((at, value)) = mangle {
                if let Some(b) = bytes.get_mut(at) {
                    *b = value;
                }
            }
            let mut f = VecFrame::new(&bytes);
            let before = f.clone();
            super::prefetch(std::iter::once(&f), &st);
            match process(&mut f, port, &snap, &mut st, now) {
                Verdict::Drop(_) | Verdict::SlowPath | Verdict::ToKernel { .. } => {
                    proptest::prop_assert_eq!(&f, &before)
                }
                Verdict::Forward { .. } if mangle.is_none() && kind != 4 => {
                    let b = f.bytes();
                    let l3 = if b.get(23) == Some(&ipv4::PROTO_IPIP) { 34 } else { 14 };
                    assert_checksums(b, l3);
                }
                Verdict::Reply(Answer::Reset) => {
                    assert_checksums(f.bytes(), 14);
                    proptest::prop_assert_eq!(f.bytes()[47] & tcp::FLAG_RST, tcp::FLAG_RST);
                }
                _ => {}
            }
            st.expire(now, 8);
        }
        // IPVS's accounting holds: every connection counted once on its server, every
        // template once as persistent.
        let loads = st.dests.loads();
        let counted: u64 = loads.iter().map(|l| u64::from(l.active) + u64::from(l.inactive)).sum();
        let persistent: u64 = loads.iter().map(|l| u64::from(l.persistent)).sum();
        proptest::prop_assert_eq!(counted, st.conns.len() as u64);
        proptest::prop_assert_eq!(persistent, st.templates.len() as u64);
    }
}

#[test]
fn timeouts_follow_the_snapshot_like_ipvsadm_set() {
    let mut snap = snapshot();
    let mut st = state();
    snap.timeouts.set(0, 0, 30);
    snap.generation = 9;
    st.sync(&snap);
    let mut d = from_client(PROTO_UDP, 5000, 9000, 0, b"x");
    process(&mut d, 0, &snap, &mut st, 0);
    let mut expired = 0;
    for second in 0..=31u64 {
        expired += st.conns.expire(second * 1000, 1024);
    }
    assert_eq!(expired, 1, "UDP timeout 30 s from the snapshot");
}

/// Path-MTU discovery through FULLNAT: a router on the client's side sends
/// fragmentation-needed about a reply (VIP -> client); the real server must get it as about its
/// own packet (real -> local address), from the local address, with the MTU unchanged.
#[test]
fn fullnat_frag_needed_from_the_client_side_reaches_the_real_server() {
    let (snap, mut st) = (snapshot(), state());
    let mut syn = from_client(PROTO_TCP, 40000, 81, SYN, b"");
    process(&mut syn, 0, &snap, &mut st, 0);
    let local = parsed(syn.bytes()).src;
    // What the client side saw: a full-size reply from the VIP.
    let reply = frame(
        PROTO_TCP,
        ep(VIP, 81),
        ep(CLIENT, 40000),
        60,
        ACK,
        &[0u8; 1460],
    );
    let quote = &reply[14..14 + 28];
    let router: [u8; 4] = [198, 51, 100, 254];
    let err = icmp_error_frame((MAC0, CLIENT_MAC), (router, VIP), (3, 4, 1400), quote);
    let mut f = VecFrame::new(&err);
    assert_eq!(
        process(&mut f, 0, &snap, &mut st, 1),
        Verdict::Forward {
            port: 1,
            created: false
        }
    );
    let b = f.bytes();
    assert_eq!(macs(&f), (MAC1, real_mac(0)));
    let ip = ipv4::Packet::new_checked(&b[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src(), ip.dst()), (local.addr, REALS[0].into()));
    let msg = icmp::Packet::new_checked(ip.payload()).unwrap();
    assert!(msg.verify_checksum());
    assert_eq!(msg.next_hop_mtu(), 1400);
    let q = icmp_error::parse(b, 14, 34, b.len()).unwrap();
    assert_eq!(
        (q.src, q.dst),
        (ep(REALS[0], 8080), local),
        "quoted as the real server sent it"
    );
    assert!(
        checksum::verify(&b[q.q3..q.q4]),
        "quoted IPv4 header checksum"
    );
}

/// A client reusing the ports of a finished connection gets a newly scheduled one (IPVS
/// conn_reuse_mode); a SYN on a live connection does not move it.
#[test]
fn reused_ports_of_a_closed_connection_are_scheduled_afresh() {
    let (snap, mut st) = (snapshot(), state());
    let key = FlowKey::new(PROTO_TCP, ep(CLIENT, 40000), ep(VIP, 80));
    let real_of = |f: &VecFrame| parsed(f.bytes()).dst.addr;
    let mut syn = from_client(PROTO_TCP, 40000, 80, SYN, b"");
    process(&mut syn, 0, &snap, &mut st, 0);
    assert_eq!(real_of(&syn), Ipv4Addr::from(REALS[0]));
    // A retransmitted SYN of the live connection stays on its server.
    let mut again = from_client(PROTO_TCP, 40000, 80, SYN, b"");
    assert_eq!(
        process(&mut again, 0, &snap, &mut st, 1),
        Verdict::Forward {
            port: 1,
            created: false
        }
    );
    assert_eq!(real_of(&again), Ipv4Addr::from(REALS[0]));
    // Establish it, close it down (the client resets it), then open again on the same ports.
    let mut syn_ack = from_real(
        PROTO_TCP,
        ep(REALS[0], 8080),
        ep(CLIENT, 40000),
        SYN_ACK,
        b"",
    );
    process(&mut syn_ack, 1, &snap, &mut st, 1);
    let mut ack = from_client(PROTO_TCP, 40000, 80, ACK, b"");
    process(&mut ack, 0, &snap, &mut st, 1);
    let mut rst = from_client(PROTO_TCP, 40000, 80, tcp::FLAG_RST, b"");
    process(&mut rst, 0, &snap, &mut st, 2);
    let (id, _) = st.conns.lookup(&key).unwrap();
    assert_eq!(st.conns.get(id).unwrap().state, TcpState::Close);
    let mut reopen = from_client(PROTO_TCP, 40000, 80, SYN, b"");
    assert_eq!(
        process(&mut reopen, 0, &snap, &mut st, 3),
        Verdict::Forward {
            port: 1,
            created: true
        }
    );
    assert_eq!(
        real_of(&reopen),
        Ipv4Addr::from(REALS[1]),
        "scheduled afresh by rr"
    );
    assert_eq!(st.conns.len(), 1);
}

/// `frame` with `options` (a multiple of 4 bytes) inserted after its IPv4 header.
fn with_ip_options(frame: &[u8], options: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let mut f = frame[..34].to_vec();
    f.extend_from_slice(options);
    f.extend_from_slice(&frame[34..]);
    f[14] = 0x45 + (options.len() / 4) as u8;
    let total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    fix_checksums(&mut f, 14);
    f
}

/// Each IPv4 option class through the engine, to the exact counter: well-formed options are
/// forwarded unchanged, a list that does not parse is `ip_options`, a source route is
/// `source_route` (Linux, `accept_source_route = 0`); the same for packets to rvs itself.
#[test]
fn ip_options_are_checked_before_anything_else() {
    let snap = snapshot();
    let syn = frame(PROTO_TCP, ep(CLIENT, 40000), ep(VIP, 80), 64, SYN, b"");
    let forwarded = Verdict::Forward {
        port: 1,
        created: true,
    };
    let cases: [(&str, &[u8], Verdict); 11] = [
        ("NOP NOP NOP END", &[1, 1, 1, 0], forwarded),
        ("router alert", &[148, 4, 0, 0], forwarded),
        ("record route", &[7, 7, 4, 0, 0, 0, 0, 0], forwarded),
        ("timestamp", &[68, 8, 5, 0, 0, 0, 0, 0], forwarded),
        (
            "length 0",
            &[30, 0, 0, 0],
            Verdict::Drop(DropReason::IpOptions),
        ),
        (
            "length 1",
            &[30, 1, 0, 0],
            Verdict::Drop(DropReason::IpOptions),
        ),
        (
            "past the header",
            &[7, 9, 4, 0, 0, 0, 0, 0],
            Verdict::Drop(DropReason::IpOptions),
        ),
        (
            "truncated",
            &[1, 1, 1, 68],
            Verdict::Drop(DropReason::IpOptions),
        ),
        (
            "record route pointer 3",
            &[7, 7, 3, 0, 0, 0, 0, 0],
            Verdict::Drop(DropReason::IpOptions),
        ),
        (
            "loose source route",
            &[131, 7, 4, 203, 0, 113, 12, 0],
            Verdict::Drop(DropReason::SourceRoute),
        ),
        (
            "strict source route",
            &[137, 7, 4, 203, 0, 113, 12, 0],
            Verdict::Drop(DropReason::SourceRoute),
        ),
    ];
    for (name, options, want) in cases {
        let mut st = state();
        let bytes = with_ip_options(&syn, options);
        let mut f = VecFrame::new(&bytes);
        assert_eq!(process(&mut f, 0, &snap, &mut st, 0), want, "{name}");
        match want {
            Verdict::Drop(_) => {
                assert_eq!(f.bytes(), &bytes[..], "{name}: untouched");
                assert_eq!(st.conns.len(), 0, "{name}: no connection");
            }
            _ => {
                assert_eq!(&f.bytes()[34..34 + options.len()], options, "{name}: kept");
                assert_checksums(f.bytes(), 14);
            }
        }
    }
    // A ping to rvs's own address with a source route is not answered.
    let mut echo = vec![0u8; 14 + 20 + 8];
    echo[..14].copy_from_slice(&syn[..14]);
    ipv4::Repr {
        src: CLIENT.into(),
        dst: OWN0.into(),
        protocol: ipv4::PROTO_ICMP,
        ttl: 64,
        tos: 0,
        ident: 7,
        dont_fragment: false,
        payload_len: 8,
    }
    .emit(&mut echo[14..]);
    echo[34] = icmp::TYPE_ECHO_REQUEST;
    icmp::Packet::new_unchecked(&mut echo[34..]).fill_checksum();
    let mut st = state();
    let mut ping = VecFrame::new(&echo);
    assert_eq!(
        process(&mut ping, 0, &snap, &mut st, 0),
        Verdict::Reply(Answer::IcmpEcho)
    );
    let mut ping = VecFrame::new(&with_ip_options(&echo, &[131, 7, 4, 198, 51, 100, 2, 0]));
    assert_eq!(
        process(&mut ping, 0, &snap, &mut st, 0),
        Verdict::Drop(DropReason::SourceRoute)
    );
}

/// Every class of source Linux treats as a martian (`ip_route_input_slow`, plus the
/// connected subnets' network and broadcast addresses), counted as `martian_source`; an
/// ordinary neighbour on the client subnet is served.
#[test]
fn martian_sources_of_every_class() {
    let snap = snapshot();
    let martians: [[u8; 4]; 12] = [
        [0, 0, 0, 0],
        [0, 1, 2, 3],
        [127, 0, 0, 1],
        [127, 9, 9, 9],
        [224, 0, 0, 1],
        [239, 255, 255, 250],
        [240, 0, 0, 1],
        [255, 255, 255, 255],
        [198, 51, 100, 0],
        [198, 51, 100, 255],
        [203, 0, 113, 255],
        OWN0,
    ];
    for src in martians {
        let mut st = state();
        let bytes = frame(PROTO_TCP, ep(src, 40000), ep(VIP, 80), 64, SYN, b"");
        let mut f = VecFrame::new(&bytes);
        assert_eq!(
            process(&mut f, 0, &snap, &mut st, 0),
            Verdict::Drop(DropReason::MartianSource),
            "{src:?}"
        );
        assert_eq!(f.bytes(), &bytes[..]);
    }
    let mut st = state();
    let mut f = VecFrame::new(&frame(
        PROTO_TCP,
        ep([198, 51, 100, 254], 40000),
        ep(VIP, 80),
        64,
        SYN,
        b"",
    ));
    assert!(matches!(
        process(&mut f, 0, &snap, &mut st, 0),
        Verdict::Forward { created: true, .. }
    ));
    // A /31 has no network or broadcast address: both ends are hosts.
    let mut s = Snapshot::default();
    s.add_route(Route {
        network: [192, 0, 2, 0].into(),
        prefix_len: 31,
        port: 0,
        gateway: None,
    });
    s.add_route(Route {
        network: [192, 0, 2, 128].into(),
        prefix_len: 25,
        port: 0,
        gateway: None,
    });
    assert!(!s.is_subnet_edge([192, 0, 2, 0].into()));
    assert!(s.is_subnet_edge([192, 0, 2, 128].into()));
    assert!(s.is_subnet_edge([192, 0, 2, 255].into()));
    // A narrower subnet beside them: every edge still found, no host taken for one.
    s.add_route(Route {
        network: [192, 0, 2, 4].into(),
        prefix_len: 30,
        port: 0,
        gateway: None,
    });
    for (last, edge) in [
        (4, true),
        (5, false),
        (6, false),
        (7, true),
        (128, true),
        (255, true),
    ] {
        assert_eq!(
            s.is_subnet_edge([192, 0, 2, last].into()),
            edge,
            "192.0.2.{last}"
        );
    }
    for last in 129..255 {
        assert!(!s.is_subnet_edge([192, 0, 2, last].into()));
    }
}

/// ARP by Linux's `arp_process` rules, each class to its verdict and counter: answered here,
/// handed to the control thread (which learns next hops from it), or dropped as a martian.
#[test]
fn arp_classes_by_linux_rules() {
    let mut snap = snapshot();
    // A fourth next hop, not resolved yet.
    snap.next_hops.insert((1, [203, 0, 113, 14].into()));
    let request = |mac: [u8; 6], sender: [u8; 4], target: [u8; 4]| {
        arp_request(mac, sender.into(), target.into()).to_vec()
    };
    let reply = |mac: [u8; 6], sender: [u8; 4], target: [u8; 4]| {
        let mut f = request(mac, sender, target);
        f[21] = 2;
        f
    };
    let moved = [0x02, 0x55, 0, 0, 0, 0x99];
    let martian = Verdict::Drop(DropReason::MartianSource);
    let cases: Vec<(&str, Vec<u8>, usize, Verdict)> = vec![
        (
            "request for the VIP from a client",
            request(CLIENT_MAC, CLIENT, VIP),
            0,
            Verdict::Reply(Answer::Arp),
        ),
        (
            "request from a next hop at its known MAC",
            request(real_mac(0), REALS[0], LIP),
            1,
            Verdict::Reply(Answer::Arp),
        ),
        (
            "request from a next hop at a new MAC",
            request(moved, REALS[0], OWN1),
            1,
            Verdict::SlowPath,
        ),
        (
            "request from an unresolved next hop",
            request(real_mac(2), [203, 0, 113, 14], OWN1),
            1,
            Verdict::SlowPath,
        ),
        (
            "request from a host that is no next hop",
            request(real_mac(2), [203, 0, 113, 15], OWN1),
            1,
            Verdict::Reply(Answer::Arp),
        ),
        (
            "reply from a next hop",
            reply(real_mac(1), REALS[1], OWN1),
            1,
            Verdict::SlowPath,
        ),
        (
            "gratuitous ARP of a next hop",
            request(moved, REALS[1], REALS[1]),
            1,
            Verdict::SlowPath,
        ),
        (
            "request for another host",
            request(real_mac(0), REALS[0], REALS[1]),
            1,
            Verdict::SlowPath,
        ),
        (
            "duplicate-address probe for the VIP",
            request(CLIENT_MAC, [0; 4], VIP),
            0,
            Verdict::Reply(Answer::Arp),
        ),
        (
            "zero sender, for another host",
            request(CLIENT_MAC, [0; 4], [198, 51, 100, 7]),
            0,
            martian,
        ),
        (
            "zero sender, a reply",
            reply(CLIENT_MAC, [0; 4], VIP),
            0,
            martian,
        ),
        (
            "broadcast sender",
            request(CLIENT_MAC, [255; 4], VIP),
            0,
            martian,
        ),
        (
            "broadcast sender, a reply",
            reply(CLIENT_MAC, [255; 4], OWN0),
            0,
            martian,
        ),
        (
            "multicast sender",
            request(CLIENT_MAC, [224, 0, 0, 5], VIP),
            0,
            martian,
        ),
        (
            "class E sender",
            request(CLIENT_MAC, [240, 0, 0, 5], VIP),
            0,
            martian,
        ),
        (
            "loopback sender",
            request(CLIENT_MAC, [127, 0, 0, 1], VIP),
            0,
            martian,
        ),
        (
            "subnet broadcast sender",
            request(CLIENT_MAC, [198, 51, 100, 255], VIP),
            0,
            martian,
        ),
        (
            "subnet network sender",
            request(CLIENT_MAC, [198, 51, 100, 0], VIP),
            0,
            martian,
        ),
        (
            "subnet broadcast, gratuitous",
            request(CLIENT_MAC, [203, 0, 113, 255], [203, 0, 113, 255]),
            1,
            martian,
        ),
        (
            "rvs's own address claimed",
            request(CLIENT_MAC, VIP, VIP),
            0,
            martian,
        ),
        (
            "multicast sender MAC",
            request([0x03, 0, 0, 0, 0, 1], CLIENT, VIP),
            0,
            martian,
        ),
    ];
    for (name, bytes, port, want) in cases {
        let mut st = state();
        let mut f = VecFrame::new(&bytes);
        assert_eq!(process(&mut f, port, &snap, &mut st, 0), want, "{name}");
        if !matches!(want, Verdict::Reply(_)) {
            assert_eq!(f.bytes(), &bytes[..], "{name}: untouched");
        }
    }
    // The probe's answer goes back to the prober's MAC and says who holds the address.
    let mut probe = VecFrame::new(&request(CLIENT_MAC, [0; 4], VIP));
    process(&mut probe, 0, &snap, &mut state(), 0);
    let a = arp::Packet::new_checked(&probe.bytes()[14..]).unwrap();
    assert_eq!(
        (a.operation(), a.sender_ip(), a.sender_mac(), a.target_mac()),
        (arp::OP_REPLY, VIP.into(), MAC0, CLIENT_MAC)
    );
    assert_eq!(&probe.bytes()[0..6], &CLIENT_MAC);
}

/// FULLNAT's walk over a worker's (local address, port) pairs: within one run every pair of
/// the share is handed out once before any comes back, however fast connections come and go;
/// and each start of rvsd begins where the wall clock is, past what the previous run handed
/// out, so that right after a restart no real server is offered a pair it still holds in
/// TIME_WAIT.
#[test]
fn fullnat_walk_never_brings_a_pair_back_early() {
    let lips: [Ipv4Addr; 2] = [LIP.into(), [203, 0, 113, 202].into()];
    let real = ep(REALS[0], 8080);
    // Worker 3 of 1000: a share of 64 ports, 128 pairs with two addresses.
    let mut st = WorkerState::new(3, 1000, 1024, Timeouts::ipvs_defaults());
    let walk: Vec<Endpoint> = (0..128)
        .map(|_| st.local_endpoint(PROTO_TCP, &lips, real, 0, None).unwrap())
        .collect();
    let distinct: std::collections::HashSet<_> = walk.iter().collect();
    assert_eq!(distinct.len(), 128, "every pair once");
    assert!(walk.iter().all(|e| e.port % 1000 == 1024 % 1000 + 3));
    assert_eq!(
        st.local_endpoint(PROTO_TCP, &lips, real, 0, None),
        Some(walk[0]),
        "then the first again"
    );

    // Four runs of 300 connections, each started 2 s after the previous one began (a restart):
    // no pair twice.
    let t0 = 1_765_000_000_000u64;
    let mut used = std::collections::HashSet::new();
    for run in 0..4u64 {
        let mut st = state();
        st.set_wall_clock_origin(t0 + run * 2000);
        for i in 0..300 {
            let local = st.local_endpoint(PROTO_TCP, &lips, real, i, None).unwrap();
            assert!(used.insert(local), "run {run}: {local:?} handed out again");
        }
    }
    // The floor moves with the clock: a whole share per LOCAL_WALK_PERIOD_MS.
    let mut st = state();
    st.set_wall_clock_origin(t0);
    let a = st.local_endpoint(PROTO_TCP, &lips, real, 0, None).unwrap();
    let b = st
        .local_endpoint(PROTO_TCP, &lips, real, LOCAL_WALK_PERIOD_MS / 2, None)
        .unwrap();
    assert_eq!(a.addr, b.addr, "an even number of pairs later");
    assert_eq!(
        (i32::from(b.port) - i32::from(a.port)).rem_euclid(64512),
        64512 / 2,
        "half a period later, half the pairs further: 64512 pairs, 32256 ports"
    );
}

/// A SYN flood against a full table (capacity 16): each spoofed SYN takes the slot of the
/// oldest half-open connection, so a real client still gets in and completes its handshake,
/// the established connections go on, and the servers' counts stay those of the table.
#[test]
fn a_syn_flood_cannot_lock_new_clients_out() {
    let snap = snapshot();
    let mut st = WorkerState::new(0, 1, 16, Timeouts::ipvs_defaults());
    st.sync(&snap);
    let handshake = |st: &mut WorkerState, client: [u8; 4], sport: u16| {
        let syn = frame(PROTO_TCP, ep(client, sport), ep(VIP, 80), 64, SYN, b"");
        let mut syn = VecFrame::new(&syn);
        assert!(matches!(
            process(&mut syn, 0, &snap, st, 0),
            Verdict::Forward { created: true, .. }
        ));
        let real = parsed(syn.bytes()).dst;
        let mut syn_ack = from_real(PROTO_TCP, real, ep(client, sport), SYN_ACK, b"");
        assert!(matches!(
            process(&mut syn_ack, 1, &snap, st, 0),
            Verdict::Forward { port: 0, .. }
        ));
        let ack = frame(PROTO_TCP, ep(client, sport), ep(VIP, 80), 64, ACK, b"");
        assert!(matches!(
            process(&mut VecFrame::new(&ack), 0, &snap, st, 0),
            Verdict::Forward { created: false, .. }
        ));
    };
    for sport in 1..=4 {
        handshake(&mut st, CLIENT, sport);
    }
    for n in 0..40u16 {
        let spoofed = [198, 51, 100, 20 + (n % 200) as u8];
        let mut syn = VecFrame::new(&frame(
            PROTO_TCP,
            ep(spoofed, 1000 + n),
            ep(VIP, 80),
            64,
            SYN,
            b"",
        ));
        assert!(
            matches!(
                process(&mut syn, 0, &snap, &mut st, 0),
                Verdict::Forward { created: true, .. }
            ),
            "spoofed SYN {n}"
        );
    }
    assert_eq!(st.conns.len(), 16);
    assert_eq!(st.conns.evictions(), 40 - 12);
    handshake(&mut st, CLIENT, 5000);
    for sport in 1..=5 {
        let sport = if sport == 5 { 5000 } else { sport };
        let data = frame(PROTO_TCP, ep(CLIENT, sport), ep(VIP, 80), 64, ACK, b"x");
        assert!(
            matches!(
                process(&mut VecFrame::new(&data), 0, &snap, &mut st, 0),
                Verdict::Forward { created: false, .. }
            ),
            "established connection from port {sport}"
        );
    }
    // Each server counts exactly the table's connections to it (the evicted ones unbound).
    let counted: u32 = (0..3)
        .map(|i| {
            let load = st.load(0, i).unwrap();
            load.active + load.inactive
        })
        .sum();
    assert_eq!(counted as usize, st.conns.len());
}

/// A TCP segment to a virtual service that has no connection (not a SYN) is answered with a
/// reset from the VIP, rate-limited per worker; a RST is never answered; with resets off
/// (rate 0) it is dropped as `no_connection`, as before.
#[test]
fn segments_of_no_connection_are_reset() {
    let mut snap = snapshot();
    let mut st = state();
    let ack = |sport: u16| from_client(PROTO_TCP, sport, 80, ACK, b"data");
    assert_eq!(
        process(&mut ack(1), 0, &snap, &mut st, 0),
        Verdict::Drop(DropReason::NoConnection),
        "resets off"
    );
    snap.tcp_resets_per_second = 2;
    let mut f = ack(40000);
    assert_eq!(
        process(&mut f, 0, &snap, &mut st, 10),
        Verdict::Reply(Answer::Reset)
    );
    let b = f.bytes();
    assert_eq!((&b[0..6], &b[6..12]), (&CLIENT_MAC[..], &MAC0[..]));
    let p = parsed(b);
    assert_eq!((p.src, p.dst), (ep(VIP, 80), ep(CLIENT, 40000)));
    assert_eq!(p.tcp_flags, tcp::FLAG_RST);
    assert_checksums(b, 14);
    assert_eq!(st.conns.len(), 0, "a reset creates nothing");
    assert_eq!(
        process(&mut ack(2), 0, &snap, &mut st, 500),
        Verdict::Reply(Answer::Reset)
    );
    assert_eq!(
        process(&mut ack(3), 0, &snap, &mut st, 900),
        Verdict::Drop(DropReason::NoConnection),
        "two per second"
    );
    assert_eq!(
        process(&mut ack(4), 0, &snap, &mut st, 1010),
        Verdict::Reply(Answer::Reset),
        "the next second"
    );
    let mut rst = from_client(PROTO_TCP, 5, 80, tcp::FLAG_RST | ACK, b"");
    assert_eq!(
        process(&mut rst, 0, &snap, &mut st, 5000),
        Verdict::Drop(DropReason::NoConnection),
        "never a reset for a reset"
    );
    // Not to a virtual service: no reset.
    let mut other = from_client(PROTO_TCP, 6, 99, ACK, b"");
    assert_eq!(
        process(&mut other, 0, &snap, &mut st, 5000),
        Verdict::Drop(DropReason::NoService)
    );
    // A connection that exists is forwarded, not reset.
    let mut syn = from_client(PROTO_TCP, 7, 80, SYN, b"");
    assert!(matches!(
        process(&mut syn, 0, &snap, &mut st, 5000),
        Verdict::Forward { created: true, .. }
    ));
    assert!(matches!(
        process(&mut ack(7), 0, &snap, &mut st, 5000),
        Verdict::Forward { created: false, .. }
    ));
}

/// The owner checks of the multi-worker fuzz: no flow key in two workers' tables, and every
/// NAT/FULLNAT connection in the table of the worker the owner function names (by its client,
/// and for FULLNAT by its local port too).
fn assert_one_owner(workers: &[WorkerState], steering: &crate::steer::Steering) {
    let mut seen = std::collections::HashMap::new();
    for (w, st) in workers.iter().enumerate() {
        for (_, conn) in st.conns.iter() {
            let keys = [
                Some(FlowKey::new(conn.protocol, conn.client, conn.vip)),
                conn.mode
                    .sees_replies()
                    .then(|| FlowKey::new(conn.protocol, conn.real, conn.local)),
            ];
            for key in keys.into_iter().flatten() {
                if let Some(other) = seen.insert(key, w) {
                    panic!("{key:?} in the tables of workers {other} and {w}");
                }
            }
            if conn.mode.sees_replies() {
                assert_eq!(steering.client_owner(conn.client), w, "{conn:?}");
            }
            if conn.mode == ForwardMode::FullNat {
                assert_eq!(steering.local_owner(conn.local), Some(w), "{conn:?}");
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256) / 4
    ))]
    /// Random traffic (clients, real servers' replies, ICMP errors, mangled bytes) through 2
    /// to 4 workers whose "NIC" spreads packets by a hash of their own that disagrees with the
    /// owner function (consistent per direction of a flow, as RSS is): a packet handed over is
    /// never handed again, a connection is only ever in its owner's table, and every worker's
    /// accounting holds.
    #[test]
    fn fuzz_random_traffic_across_workers(steps in proptest::collection::vec(
        (0usize..5, 0u16..16, 0u8..64, 0usize..4, proptest::collection::vec(proptest::num::u8::ANY, 0..24),
         proptest::option::of((0usize..80, proptest::num::u8::ANY))), 1..80),
         n in 2usize..=4, nic_seed in proptest::num::u64::ANY, by_hash in proptest::bool::ANY) {
        let share = if by_hash { FullnatShare::Hash } else { FullnatShare::Modulo };
        let steering = std::sync::Arc::new(crate::steer::Steering::new(n, [0x6d; 40], share));
        let mut snap = snapshot();
        snap.steering = Some(steering.clone());
        snap.tcp_resets_per_second = 1000;
        for svc in &mut snap.services {
            svc.reals[0].upper_threshold = 4;
        }
        let mut workers: Vec<WorkerState> = (0..n)
            .map(|w| WorkerState::new(w, n, 64, Timeouts::ipvs_defaults()))
            .collect();
        let mut now = 0u64;
        let mut handed = 0;
        for (kind, sport, flags, service, payload, mangle) in steps {
            now += 500;
            let vport = [80u16, 81, 82, 83][service];
            let (protocol, vport) = if kind == 4 { (PROTO_UDP, 9000) } else { (PROTO_TCP, vport) };
            let client = ep(CLIENT, 30000 + sport);
            let (mut bytes, port) = match kind {
                0 | 1 | 4 => (frame(protocol, client, ep(VIP, vport), 64, flags & 0x3f, &payload), 0),
                2 => {
                    let mut f = frame(PROTO_TCP, ep(REALS[usize::from(sport) % 3], 8080), client, 64, flags & 0x3f, &payload);
                    f[0..6].copy_from_slice(&MAC1);
                    (f, 1)
                }
                _ => {
                    // A FULLNAT reply to a local port of any worker's share.
                    let lport = 1024 + sport * 7;
                    let mut f = frame(PROTO_TCP, ep(REALS[usize::from(sport) % 3], 8080), ep(LIP, lport), 64, flags & 0x3f, &payload);
                    f[0..6].copy_from_slice(&MAC1);
                    (f, 1)
                }
            };
            if let Some((at, value)) = mangle {
                if let Some(b) = bytes.get_mut(at) {
                    *b = value;
                }
            }
            // The NIC's own spread: a hash of the bytes where a flow's 4-tuple sits.
            let tuple = bytes.get(26..38).unwrap_or(&[]);
            let receiver = (tuple.iter().fold(nic_seed, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)) % n as u64) as usize;
            let mut f = VecFrame::new(&bytes);
            let before = f.clone();
            let verdict = process(&mut f, port, &snap, &mut workers[receiver], now);
            let verdict = match verdict {
                Verdict::HandOff(owner) => {
                    proptest::prop_assert_ne!(owner, receiver);
                    proptest::prop_assert_eq!(&f, &before, "handed over untouched");
                    handed += 1;
                    let again = process_handed_in(&mut f, port, &snap, &mut workers[owner], now);
                    proptest::prop_assert!(!matches!(again, Verdict::HandOff(_)), "handed on");
                    again
                }
                v => v,
            };
            if let Verdict::Drop(_) | Verdict::SlowPath | Verdict::ToKernel { .. } = verdict {
                proptest::prop_assert_eq!(&f, &before);
            }
            for st in &mut workers {
                st.expire(now, 8);
            }
            assert_one_owner(&workers, &steering);
        }
        for st in &workers {
            let loads = st.dests.loads();
            let counted: u64 = loads.iter().map(|l| u64::from(l.active) + u64::from(l.inactive)).sum();
            proptest::prop_assert_eq!(counted, st.conns.len() as u64);
        }
        let _ = handed;
    }
}

/// With several workers, every kind of packet of a NAT and a FULLNAT connection names the same
/// owner: the client's packets, the real server's replies, and ICMP errors in both directions;
/// a DR packet stays with the worker that received it.
#[test]
fn every_packet_of_a_connection_names_one_owner() {
    for share in [FullnatShare::Hash, FullnatShare::Modulo] {
        every_packet_names_one_owner(share);
    }
}

fn every_packet_names_one_owner(share: FullnatShare) {
    let steering = std::sync::Arc::new(crate::steer::Steering::new(3, [0x5a; 40], share));
    let mut snap = snapshot();
    snap.steering = Some(steering.clone());
    let mut workers: Vec<WorkerState> = (0..3)
        .map(|w| WorkerState::new(w, 3, 1024, Timeouts::ipvs_defaults()))
        .collect();
    // Delivers `bytes` on `port` to worker `at`, follows a hand-off, returns the final verdict,
    // the worker that decided and the frame.
    let mut deliver = |bytes: &[u8], port: usize, at: usize| -> (Verdict, usize, VecFrame) {
        let mut f = VecFrame::new(bytes);
        match process(&mut f, port, &snap, &mut workers[at], 0) {
            Verdict::HandOff(owner) => {
                let v = process_handed_in(&mut f, port, &snap, &mut workers[owner], 0);
                (v, owner, f)
            }
            v => (v, at, f),
        }
    };
    for (vport, sport) in [(80u16, 40000u16), (81, 40001), (80, 40002), (81, 40003)] {
        let client = ep(CLIENT, sport);
        let owner = steering.client_owner(client);
        let wrong = (owner + 1) % 3;
        let syn = frame(PROTO_TCP, client, ep(VIP, vport), 64, SYN, b"");
        let (v, decided, f) = deliver(&syn, 0, wrong);
        assert_eq!(
            (v, decided),
            (
                Verdict::Forward {
                    port: 1,
                    created: true
                },
                owner
            )
        );
        let sent = parsed(f.bytes());
        // The real server answers what it got: its reply reaches the same owner from any worker.
        let mut reply = frame(PROTO_TCP, sent.dst, sent.src, 64, SYN_ACK, b"");
        reply[0..6].copy_from_slice(&MAC1);
        for at in 0..3 {
            let (v, decided, _) = deliver(&reply, 1, at);
            assert_eq!(decided, owner, "reply received by worker {at}");
            assert!(matches!(v, Verdict::Forward { port: 0, .. }), "{v:?}");
        }
        // The real server's ICMP error about what rvs sent it.
        let unreachable = icmp_error_frame(
            (MAC1, real_mac(0)),
            (sent.dst.addr.octets(), sent.src.addr.octets()),
            (3, 3, 0),
            &f.bytes()[14..14 + 28],
        );
        let (v, decided, _) = deliver(&unreachable, 1, (owner + 2) % 3);
        assert_eq!(decided, owner);
        assert!(matches!(v, Verdict::Forward { port: 0, .. }), "{v:?}");
        // The client side's ICMP error about a reply (quoting VIP -> client).
        let quoted_reply = frame(PROTO_TCP, ep(VIP, vport), client, 63, ACK, b"");
        let frag_needed = icmp_error_frame(
            (MAC0, CLIENT_MAC),
            (CLIENT, VIP),
            (3, 4, 1400),
            &quoted_reply[14..14 + 28],
        );
        let (v, decided, _) = deliver(&frag_needed, 0, wrong);
        assert_eq!(decided, owner);
        assert!(matches!(v, Verdict::Forward { port: 1, .. }), "{v:?}");
        // Its next segment, and the reset when there is no connection, on the owner only.
        let ack = frame(PROTO_TCP, client, ep(VIP, vport), 64, ACK, b"x");
        let (v, decided, _) = deliver(&ack, 0, wrong);
        assert_eq!(
            (decided, matches!(v, Verdict::Forward { .. })),
            (owner, true)
        );
    }
    // DR: the receiving worker owns the flow, no hand-off.
    let client = ep(CLIENT, 50000);
    let syn = frame(PROTO_TCP, client, ep(VIP, 82), 64, SYN, b"");
    for at in 0..3 {
        let mut f = VecFrame::new(&syn);
        let mut st = WorkerState::new(at, 3, 16, Timeouts::ipvs_defaults());
        assert!(matches!(
            process(&mut f, 0, &snap, &mut st, 0),
            Verdict::Forward { created: true, .. }
        ));
    }
    assert_one_owner(&workers, &steering);
}

/// FULLNAT pairs shared by hash: each worker hands out only pairs whose endpoint hashes to it
/// (so a NIC hashing the replies' destination puts them on its queue), the shares are
/// disjoint, and within a share the walk still goes round before coming back.
#[test]
fn fullnat_pairs_shared_by_hash_are_each_workers_own() {
    let steering = crate::steer::Steering::new(3, [0x77; 40], FullnatShare::Hash);
    let lips: [Ipv4Addr; 2] = [LIP.into(), [203, 0, 113, 202].into()];
    let real = ep(REALS[0], 8080);
    let mut all = std::collections::HashSet::new();
    for w in 0..3 {
        let mut st = WorkerState::new(w, 3, 1024, Timeouts::ipvs_defaults());
        let first = st
            .local_endpoint(PROTO_TCP, &lips, real, 0, Some(&steering))
            .unwrap();
        assert!(all.insert(first));
        for _ in 0..500 {
            let local = st
                .local_endpoint(PROTO_TCP, &lips, real, 0, Some(&steering))
                .unwrap();
            assert_eq!(steering.local_owner(local), Some(w));
            assert!(all.insert(local), "{local:?} handed out twice");
        }
    }
}

/// An ICMP message of `msg_type` (code 0, 8 bytes of data) from `src` to `dst`, sent to `mac`.
fn icmp_frame(mac: [u8; 6], src: [u8; 4], dst: [u8; 4], msg_type: u8) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 16];
    f[0..6].copy_from_slice(&mac);
    f[6..12].copy_from_slice(&CLIENT_MAC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    ipv4::Repr {
        src: src.into(),
        dst: dst.into(),
        protocol: ipv4::PROTO_ICMP,
        ttl: 64,
        tos: 0,
        ident: 7,
        dont_fragment: true,
        payload_len: 16,
    }
    .emit(&mut f[14..]);
    f[34] = msg_type;
    f[38..42].copy_from_slice(&[0x12, 0x34, 0, 1]);
    icmp::Packet::new_unchecked(&mut f[34..]).fill_checksum();
    f
}

/// The snapshot with the kernel holding each port's own address, and a NAT service on port
/// 0's own address (TCP 443): what rvs does not handle there goes up, untouched.
fn kernel_snapshot() -> Snapshot {
    let mut s = snapshot();
    s.ports[0].kernel = vec![OWN0.into()];
    s.ports[1].kernel = vec![OWN1.into()];
    let mut own = s.services[0].clone();
    own.vip = ep(OWN0, 443);
    s.add_service(own);
    s.tcp_resets_per_second = 1000;
    s
}

#[test]
fn what_rvs_does_not_handle_on_its_own_addresses_goes_to_the_kernel() {
    let snap = kernel_snapshot();
    let mut st = state();
    let to_own0 = |protocol, sport, dport, flags| {
        VecFrame::new(&frame(
            protocol,
            ep(CLIENT, sport),
            ep(OWN0, dport),
            64,
            flags,
            b"x",
        ))
    };
    let general = Verdict::ToKernel { urgent: false };
    let urgent = Verdict::ToKernel { urgent: true };
    let mut fragment = frame(PROTO_TCP, ep(CLIENT, 1), ep(OWN0, 22), 64, SYN, b"");
    fragment[20] |= 0x20;
    fix_checksums(&mut fragment, 14);
    let mut ospf = frame(PROTO_UDP, ep(CLIENT, 1), ep(OWN0, 2), 64, 0, b"");
    ospf[23] = 89;
    fix_ip_header(&mut ospf);
    let mut ospf_to_vip = frame(PROTO_UDP, ep(CLIENT, 1), ep(VIP, 2), 64, 0, b"");
    ospf_to_vip[23] = 89;
    fix_ip_header(&mut ospf_to_vip);
    // The real server's answers to the kernel's own connections and pings.
    let synack = from_real(PROTO_TCP, ep(REALS[0], 80), ep(OWN1, 40000), SYN_ACK, b"");
    let echo_reply = icmp_frame(MAC1, REALS[0], OWN1, icmp::TYPE_ECHO_REPLY);
    let quote = frame(
        PROTO_UDP,
        ep(OWN1, 40000),
        ep(REALS[0], 9999),
        64,
        0,
        b"probe",
    );
    let unreachable = icmp_error_frame(
        (MAC1, real_mac(0)),
        (REALS[0], OWN1),
        (3, 3, 0),
        &quote[14..],
    );
    let cases: Vec<(VecFrame, usize, Verdict)> = vec![
        (to_own0(PROTO_TCP, 40000, 22, SYN), 0, general),
        (to_own0(PROTO_TCP, 40000, 22, ACK), 0, general),
        (to_own0(PROTO_UDP, 40000, 53, 0), 0, general),
        (to_own0(PROTO_TCP, 40000, 179, SYN), 0, urgent),
        (to_own0(PROTO_TCP, 179, 40000, ACK), 0, urgent),
        (to_own0(PROTO_UDP, 49152, 3784, 0), 0, urgent),
        (to_own0(PROTO_UDP, 49152, 3785, 0), 0, urgent),
        (VecFrame::new(&fragment), 0, general),
        (VecFrame::new(&ospf), 0, general),
        (synack, 1, general),
        (VecFrame::new(&echo_reply), 1, general),
        (VecFrame::new(&unreachable), 1, general),
        // Not the kernel's: a VIP, and what rvs serves on its own address.
        (
            from_client(PROTO_TCP, 40000, 99, SYN, b""),
            0,
            Verdict::Drop(DropReason::NoService),
        ),
        (
            VecFrame::new(&ospf_to_vip),
            0,
            Verdict::Drop(DropReason::UnsupportedProtocol),
        ),
        (
            to_own0(PROTO_TCP, 40000, 443, ACK),
            0,
            Verdict::Reply(Answer::Reset),
        ),
    ];
    for (i, (mut f, port, want)) in cases.into_iter().enumerate() {
        let before = f.clone();
        assert_eq!(process(&mut f, port, &snap, &mut st, 0), want, "case {i}");
        if matches!(want, Verdict::ToKernel { .. }) {
            assert_eq!(f, before, "case {i}: the kernel gets the frame as it came");
        }
    }
    assert_eq!(st.conns.len(), 0);
    // A service on the appliance's own address is still rvs's; rvs still answers pings.
    let mut syn = to_own0(PROTO_TCP, 40001, 443, SYN);
    assert!(matches!(
        process(&mut syn, 0, &snap, &mut st, 0),
        Verdict::Forward { created: true, .. }
    ));
    let mut ping = VecFrame::new(&icmp_frame(MAC0, CLIENT, OWN0, icmp::TYPE_ECHO_REQUEST));
    assert_eq!(
        process(&mut ping, 0, &snap, &mut st, 0),
        Verdict::Reply(Answer::IcmpEcho)
    );
    // Without a kernel interface, none of it goes up.
    let plain = snapshot();
    let mut ssh = to_own0(PROTO_TCP, 40000, 22, SYN);
    assert_eq!(
        process(&mut ssh, 0, &plain, &mut st, 0),
        Verdict::Drop(DropReason::NoService)
    );
}

#[test]
fn the_kernel_traffic_of_a_port_stays_with_the_worker_that_receives_it() {
    let mut snap = kernel_snapshot();
    let steering = std::sync::Arc::new(crate::steer::Steering::new(
        4,
        [0x6d; 40],
        FullnatShare::Hash,
    ));
    snap.steering = Some(steering);
    for w in 0..4 {
        let mut st = WorkerState::new(w, 4, 1024, Timeouts::ipvs_defaults());
        for sport in 40000..40064 {
            let mut f = VecFrame::new(&frame(
                PROTO_TCP,
                ep(REALS[1], 80),
                ep(OWN1, sport),
                64,
                SYN_ACK,
                b"",
            ));
            f.bytes_mut()[0..6].copy_from_slice(&MAC1);
            assert_eq!(
                process(&mut f, 1, &snap, &mut st, 0),
                Verdict::ToKernel { urgent: false }
            );
        }
    }
}

/// IPVS's expire_nodest_conn, per service: once a connection's real server has left the
/// service, the connection's next packet ends it; the client's segment is answered with a
/// reset, its new SYN goes to a server still there. Without it, the connection drains.
#[test]
fn expire_nodest_conn_ends_the_connections_of_a_server_that_left() {
    for expire in [false, true] {
        let mut snap = snapshot();
        snap.tcp_resets_per_second = 1000;
        let mut st = state();
        let mut syn = from_client(PROTO_TCP, 1, 80, SYN, b"");
        process(&mut syn, 0, &snap, &mut st, 0);
        assert_eq!(parsed(syn.bytes()).dst.addr, Ipv4Addr::from(REALS[0]));
        // The checker took REALS[0] out of the service.
        snap.generation = 2;
        snap.services[0].reals.remove(0);
        snap.services[0].expire_nodest_conn = expire;
        snap.expire_nodest_conn = expire;
        let mut more = from_client(PROTO_TCP, 1, 80, ACK, b"x");
        let verdict = process(&mut more, 0, &snap, &mut st, 1);
        if !expire {
            assert!(matches!(verdict, Verdict::Forward { .. }), "drains");
            assert_eq!(parsed(more.bytes()).dst.addr, Ipv4Addr::from(REALS[0]));
            assert_eq!(st.nodest_expired(), 0);
            continue;
        }
        assert_eq!(verdict, Verdict::Reply(Answer::Reset));
        assert_eq!(st.conns.len(), 0);
        assert_eq!(st.nodest_expired(), 1);
        let b = more.bytes();
        assert_eq!(
            &b[0..6],
            &CLIENT_MAC[..],
            "the reset goes back to the client"
        );
        // Its answer to the old connection finds nothing (and the client is not rvs).
        let mut late = from_real(PROTO_TCP, ep(REALS[0], 8080), ep(CLIENT, 1), ACK, b"late");
        assert_eq!(
            process(&mut late, 1, &snap, &mut st, 2),
            Verdict::Drop(DropReason::NotForUs)
        );
        // The client starts over on a server that is there.
        let mut again = from_client(PROTO_TCP, 1, 80, SYN, b"");
        assert!(matches!(
            process(&mut again, 0, &snap, &mut st, 3),
            Verdict::Forward { created: true, .. }
        ));
        assert_ne!(parsed(again.bytes()).dst.addr, Ipv4Addr::from(REALS[0]));
    }
}

/// A reply of a connection whose server left a service with expire_nodest_conn ends it too.
#[test]
fn expire_nodest_conn_on_a_reply() {
    let mut snap = snapshot();
    let mut st = state();
    let mut syn = from_client(PROTO_TCP, 1, 80, SYN, b"");
    process(&mut syn, 0, &snap, &mut st, 0);
    snap.generation = 2;
    snap.services[0].reals.remove(0);
    snap.services[0].expire_nodest_conn = true;
    snap.expire_nodest_conn = true;
    let mut reply = from_real(PROTO_TCP, ep(REALS[0], 8080), ep(CLIENT, 1), SYN_ACK, b"");
    assert_eq!(
        process(&mut reply, 1, &snap, &mut st, 1),
        Verdict::Drop(DropReason::NoConnection)
    );
    assert_eq!((st.conns.len(), st.nodest_expired()), (0, 1));
}

/// A VRRP advert (IP protocol 112) from a peer on port 0 to `dst`/`dst_mac`.
fn vrrp_frame(dst_mac: [u8; 6], dst: [u8; 4]) -> Vec<u8> {
    let mut f = frame(PROTO_UDP, ep(CLIENT, 1), ep(dst, 2), 255, 0, b"12345678");
    f[0..6].copy_from_slice(&dst_mac);
    f[23] = 112;
    fix_ip_header(&mut f);
    f
}

#[test]
fn vrrp_adverts_go_to_the_control_thread_and_standby_addresses_are_nobodys() {
    let group_mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
    let mut snap = snapshot();
    let mut st = state();
    // Without VRRP: the group's frames are not ours, protocol 112 to us is not handled.
    let mut advert = VecFrame::new(&vrrp_frame(group_mac, [224, 0, 0, 18]));
    assert_eq!(
        process(&mut advert, 0, &snap, &mut st, 0),
        Verdict::Drop(DropReason::NotForUs)
    );
    let mut unicast = VecFrame::new(&vrrp_frame(MAC0, OWN0));
    assert_eq!(
        process(&mut unicast, 0, &snap, &mut st, 0),
        Verdict::Drop(DropReason::UnsupportedProtocol)
    );
    snap.vrrp = true;
    for f in [
        vrrp_frame(group_mac, [224, 0, 0, 18]),
        vrrp_frame(MAC0, OWN0),
    ] {
        let mut f = VecFrame::new(&f);
        assert_eq!(process(&mut f, 0, &snap, &mut st, 0), Verdict::SlowPath);
    }
    // Other multicast groups stay out; so does the group's MAC with another protocol.
    let mut other = vrrp_frame([0x01, 0x00, 0x5e, 0, 0, 0x13], [224, 0, 0, 19]);
    let mut f = VecFrame::new(&other);
    assert_eq!(
        process(&mut f, 0, &snap, &mut st, 0),
        Verdict::Drop(DropReason::NotForUs)
    );
    other[0..6].copy_from_slice(&group_mac);
    other[23] = 17;
    fix_ip_header(&mut other);
    let mut f = VecFrame::new(&other);
    assert_eq!(
        process(&mut f, 0, &snap, &mut st, 0),
        Verdict::Drop(DropReason::NotForUs)
    );

    // A BACKUP's VIP: new connections, established ones and pings are dropped as not_master.
    let mut syn = from_client(PROTO_TCP, 40000, 80, SYN, b"");
    assert!(matches!(
        process(&mut syn, 0, &snap, &mut st, 0),
        Verdict::Forward { created: true, .. }
    ));
    snap.standby = vec![VIP.into()];
    snap.ports[0].ipv4.retain(|a| *a != Ipv4Addr::from(VIP));
    for mut f in [
        from_client(PROTO_TCP, 40001, 80, SYN, b""),
        from_client(PROTO_TCP, 40000, 80, ACK, b"data"),
        VecFrame::new(&icmp_frame(MAC0, CLIENT, VIP, icmp::TYPE_ECHO_REQUEST)),
    ] {
        assert_eq!(
            process(&mut f, 0, &snap, &mut st, 0),
            Verdict::Drop(DropReason::NotMaster)
        );
    }
    // Its ARP requests are not answered (the control thread only learns from them).
    let mut arp = VecFrame::new(&{
        let mut f = arp_request(CLIENT_MAC, CLIENT.into(), VIP.into()).to_vec();
        f[6..12].copy_from_slice(&CLIENT_MAC);
        f
    });
    assert_eq!(process(&mut arp, 0, &snap, &mut st, 0), Verdict::SlowPath);
    // MASTER again: the established connection goes on.
    snap.standby.clear();
    snap.ports[0].ipv4.push(VIP.into());
    let mut data = from_client(PROTO_TCP, 40000, 80, ACK, b"data");
    assert!(matches!(
        process(&mut data, 0, &snap, &mut st, 0),
        Verdict::Forward { created: false, .. }
    ));
}

/// Connection sync on bytes: the master's worker notes a NAT connection at the client's 3rd
/// packet and at its FIN (IPVS's rule); the backup's worker installs it, forwards the client's
/// packets to the same real server, and answers the real server's once it knows the client's
/// last hop.
#[test]
fn a_synced_connection_forwards_on_the_backup_as_on_the_master() {
    let mut snap = snapshot();
    snap.sync_master = true;
    let mut master = state();
    let mut f = from_client(PROTO_TCP, 40000, 80, SYN, b"");
    assert!(matches!(
        process(&mut f, 0, &snap, &mut master, 0),
        Verdict::Forward { created: true, .. }
    ));
    let real = ep(REALS[0], 8080);
    let mut synack = from_real(PROTO_TCP, real, ep(CLIENT, 40000), SYN_ACK, b"");
    process(&mut synack, 1, &snap, &mut master, 1);
    let mut ack = from_client(PROTO_TCP, 40000, 80, ACK, b"");
    process(&mut ack, 0, &snap, &mut master, 2);
    assert_eq!(
        master.take_sync_records().count(),
        0,
        "2 client packets: not yet"
    );
    let mut data = from_client(PROTO_TCP, 40000, 80, ACK, b"data");
    process(&mut data, 0, &snap, &mut master, 3);
    let records: Vec<SyncRecord> = master.take_sync_records().collect();
    assert_eq!(records.len(), 1, "the 3rd");
    let r = records[0];
    assert_eq!(
        (r.client, r.vip, r.real),
        (ep(CLIENT, 40000), ep(VIP, 80), real)
    );
    assert_eq!((r.state, r.timeout_s), (TcpState::Established, 900));
    for i in 0..50 {
        let mut more = from_client(PROTO_TCP, 40000, 80, ACK, b"data");
        process(&mut more, 0, &snap, &mut master, 4 + i);
    }
    assert_eq!(master.take_sync_records().count(), 1, "the 53rd");
    let mut fin = from_client(PROTO_TCP, 40000, 80, tcp::FLAG_FIN | ACK, b"");
    process(&mut fin, 0, &snap, &mut master, 70);
    let fin_records: Vec<SyncRecord> = master.take_sync_records().collect();
    assert_eq!(fin_records.len(), 1, "a closing state at once");
    assert_eq!(
        fin_records[0].state,
        TcpState::CloseWait,
        "IPVS: a client FIN"
    );
    // Not a master: nothing noted.
    let mut quiet = state();
    snap.sync_master = false;
    for i in 0..5 {
        let mut f = from_client(PROTO_TCP, 41000, 80, if i == 0 { SYN } else { ACK }, b"");
        process(&mut f, 0, &snap, &mut quiet, i);
    }
    assert_eq!(quiet.take_sync_records().count(), 0);

    assert_eq!(
        r.client_mac, CLIENT_MAC,
        "the master's last hop travels with it"
    );
    // The backup, with the master's last hop: the real server's packet goes at once.
    let mut snap = snapshot();
    snap.sync_backup = true;
    let mut with_mac = state();
    assert_eq!(with_mac.install_synced(&snap, &r, 0), Ok(true));
    let mut reply = from_real(PROTO_TCP, real, ep(CLIENT, 40000), ACK, b"late");
    assert!(matches!(
        process(&mut reply, 1, &snap, &mut with_mac, 1),
        Verdict::Forward { port: 0, .. }
    ));
    assert_eq!(&reply.bytes()[0..6], &CLIENT_MAC);
    // Without it (a kernel master's record): a reply waits for the client's last hop.
    let mut backup = state();
    let r = SyncRecord {
        client_mac: [0; 6],
        ..r
    };
    assert_eq!(backup.install_synced(&snap, &r, 0), Ok(true));
    assert_eq!(backup.install_synced(&snap, &r, 1), Ok(false), "an update");
    assert_eq!(backup.conns.len(), 1);
    let mut reply = from_real(PROTO_TCP, real, ep(CLIENT, 40000), ACK, b"late");
    assert_eq!(
        process(&mut reply, 1, &snap, &mut backup, 2),
        Verdict::Drop(DropReason::NoNeighbor)
    );
    let mut client = from_client(PROTO_TCP, 40000, 80, ACK, b"more");
    assert_eq!(
        process(&mut client, 0, &snap, &mut backup, 3),
        Verdict::Forward {
            port: 1,
            created: false
        }
    );
    assert_eq!(&client.bytes()[0..6], &real_mac(0), "the same real server");
    let mut reply = from_real(PROTO_TCP, real, ep(CLIENT, 40000), ACK, b"late");
    assert!(matches!(
        process(&mut reply, 1, &snap, &mut backup, 4),
        Verdict::Forward { port: 0, .. }
    ));
    assert_eq!(&reply.bytes()[0..6], &CLIENT_MAC);
    // What this appliance does not serve is refused.
    let mut unknown = r;
    unknown.vip = ep(VIP, 99);
    assert_eq!(
        backup.install_synced(&snap, &unknown, 5),
        Err(InstallError::NoService)
    );
    let mut gone = r;
    gone.real = ep([203, 0, 113, 99], 8080);
    assert_eq!(
        backup.install_synced(&snap, &gone, 5),
        Err(InstallError::NoRealServer)
    );
}

/// A persistent service's template travels with its connection: on the backup the client's
/// next connection goes to the same real server, as it would have on the master.
#[test]
fn a_persistence_template_is_synced_with_its_connection() {
    let mut snap = snapshot();
    let mut persistent = snap.services[0].clone();
    persistent.vip = ep(VIP, 84);
    persistent.persistence = Some(crate::snapshot::Persistence {
        timeout_s: 300,
        netmask: [255, 255, 255, 128].into(),
    });
    snap.add_service(persistent);
    snap.sync_master = true;
    let mut master = state();
    // rr's first pick is REALS[0]; a second client takes REALS[1] first so the synced
    // client is pinned to another server than the backup's rr would give next.
    let mut other = VecFrame::new(&frame(
        PROTO_TCP,
        ep([198, 51, 100, 200], 1),
        ep(VIP, 84),
        64,
        SYN,
        b"",
    ));
    process(&mut other, 0, &snap, &mut master, 0);
    for (i, flags) in [SYN, ACK, ACK].into_iter().enumerate() {
        let mut f = from_client(PROTO_TCP, 40000, 84, flags, b"x");
        process(&mut f, 0, &snap, &mut master, 1 + i as u64);
    }
    let records: Vec<SyncRecord> = master.take_sync_records().collect();
    assert_eq!(records.len(), 2, "{records:?}");
    let (conn, template) = (records[0], records[1]);
    assert!(!conn.template && template.template);
    assert_eq!(
        template.client,
        ep([198, 51, 100, 0], 0),
        "the client network"
    );
    assert_eq!((template.real, template.timeout_s), (conn.real, 300));
    assert_eq!(conn.real, ep(REALS[1], 8080));

    let mut backup = state();
    snap.sync_master = false;
    assert_eq!(backup.install_synced(&snap, &template, 0), Ok(true));
    assert_eq!(backup.install_synced(&snap, &conn, 0), Ok(true));
    assert_eq!(backup.templates.len(), 1);
    // The client's next connection, another port: pinned to REALS[1], not rr's REALS[0].
    let mut next = from_client(PROTO_TCP, 40001, 84, SYN, b"");
    assert!(matches!(
        process(&mut next, 0, &snap, &mut backup, 10),
        Verdict::Forward { created: true, .. }
    ));
    assert_eq!(&next.bytes()[0..6], &real_mac(1));
}

/// IPVS's per-server totals, as `ipvsadm -L --stats` shows them: a connection counted once,
/// packets and IP bytes each way; the export lists connections with their expiry; `-Z`
/// zeroes the totals and leaves the connections.
#[test]
fn real_server_totals_and_the_export() {
    let (snap, mut st) = (snapshot(), state());
    let mut syn = from_client(PROTO_TCP, 40000, 80, SYN, b"");
    let syn_len = syn.bytes().len() as u64 - 14;
    process(&mut syn, 0, &snap, &mut st, 0);
    let mut syn_ack = from_real(
        PROTO_TCP,
        ep(REALS[0], 8080),
        ep(CLIENT, 40000),
        SYN_ACK,
        b"",
    );
    let reply_len = syn_ack.bytes().len() as u64 - 14;
    process(&mut syn_ack, 1, &snap, &mut st, 1);
    let mut ack = from_client(PROTO_TCP, 40000, 80, ACK, b"GET / HTTP/1.0\r\n\r\n");
    let ack_len = ack.bytes().len() as u64 - 14;
    process(&mut ack, 0, &snap, &mut st, 2);

    let export = st.export(7, Some(10), 2);
    assert_eq!(export.request, 7);
    let rs = export
        .dests
        .iter()
        .find(|d| d.key.2 == ep(REALS[0], 8080) && d.key.1 == ep(VIP, 80))
        .expect("the NAT service's first server");
    assert_eq!(
        rs.stats,
        crate::sched::DestStats {
            conns: 1,
            inpkts: 2,
            outpkts: 1,
            inbytes: syn_len + ack_len,
            outbytes: reply_len,
        }
    );
    assert_eq!((rs.load.active, rs.load.inactive), (1, 0));
    let others: u64 = export
        .dests
        .iter()
        .filter(|d| d.key.2 != ep(REALS[0], 8080) || d.key.1 != ep(VIP, 80))
        .map(|d| d.stats.conns + d.stats.inpkts)
        .sum();
    assert_eq!(others, 0, "nothing counted for the others");
    let conns = export.conns.unwrap();
    assert_eq!(conns.len(), 1);
    let c = conns[0];
    assert_eq!(
        (c.client, c.vip, c.real),
        (ep(CLIENT, 40000), ep(VIP, 80), ep(REALS[0], 8080))
    );
    assert_eq!(c.state, TcpState::Established);
    assert_eq!(
        c.expires_in_ms, 900_000,
        "ESTABLISHED's 900 s from the last packet"
    );
    assert!(st.export(8, None, 2).conns.is_none());

    st.dests.zero(|p, vip| (p, vip) == (PROTO_TCP, ep(VIP, 80)));
    let export = st.export(9, Some(10), 2);
    assert!(export.dests.iter().all(|d| d.stats == Default::default()));
    assert_eq!(export.conns.unwrap().len(), 1, "-Z keeps the connections");
    assert_eq!(export.dests.iter().map(|d| d.load.active).sum::<u32>(), 1);
}

/// The DR and TUN services of [`snapshot`] with `mh` (the port in the hash) and, if asked,
/// `sloppy_tcp`: what every node of an ECMP cluster runs.
fn cluster_snapshot(sloppy: bool) -> Snapshot {
    let mut s = snapshot();
    for svc in s.services.iter_mut().filter(|s| !s.mode.sees_replies()) {
        svc.scheduler = SchedulerKind::Mh;
        svc.flags.port = true;
        svc.sloppy_tcp = sloppy;
        svc.maglev = Some(std::sync::Arc::new(crate::sched::MaglevTable::build(
            &svc.members(),
            251,
        )));
    }
    s
}

/// `sloppy_tcp`: a flow that began on node A and that the routers move to node B (which has
/// never seen it) goes on from B to the same real server, in the same bytes as from A, as an
/// ESTABLISHED connection of B's (DR and TUN, 40 flows each); a FIN creates one too (CLOSE), a
/// reset never. Without the option B resets the flow.
#[test]
fn sloppy_tcp_takes_over_a_flow_from_another_node() {
    let snap = cluster_snapshot(true);
    let (mut a, mut b) = (state(), state());
    let mut servers = std::collections::HashSet::new();
    for vport in [82u16, 83] {
        for sport in 40000..40040u16 {
            let mut syn = from_client(PROTO_TCP, sport, vport, SYN, b"");
            assert!(matches!(
                process(&mut syn, 0, &snap, &mut a, 0),
                Verdict::Forward { created: true, .. }
            ));
            let mut on_a = from_client(PROTO_TCP, sport, vport, ACK, b"mid-flow");
            let mut on_b = on_a.clone();
            assert!(matches!(
                process(&mut on_a, 0, &snap, &mut a, 10),
                Verdict::Forward { created: false, .. }
            ));
            assert_eq!(
                process(&mut on_b, 0, &snap, &mut b, 10),
                Verdict::Forward {
                    port: 1,
                    created: true
                },
                "{vport}/{sport}"
            );
            assert_eq!(
                on_a.bytes(),
                on_b.bytes(),
                "{vport}/{sport}: the same frame out"
            );
            servers.insert(on_b.bytes()[0..6].to_vec());
            let key = FlowKey::new(PROTO_TCP, ep(CLIENT, sport), ep(VIP, vport));
            let (id, _) = b.conns.lookup(&key).expect("B has the connection");
            assert_eq!(b.conns.get(id).unwrap().state, TcpState::Established);
            // And keeps it: the next segment is B's own.
            let mut next = from_client(PROTO_TCP, sport, vport, ACK, b"more");
            assert!(matches!(
                process(&mut next, 0, &snap, &mut b, 20),
                Verdict::Forward { created: false, .. }
            ));
        }
    }
    assert_eq!(b.sloppy_created(), 80);
    assert_eq!(a.sloppy_created(), 0, "A saw the SYNs");
    assert!(servers.len() >= 2, "mh-port spreads the flows");
    let mut fin = from_client(PROTO_TCP, 50000, 82, tcp::FLAG_FIN | ACK, b"");
    assert!(matches!(
        process(&mut fin, 0, &snap, &mut b, 30),
        Verdict::Forward { created: true, .. }
    ));
    let key = FlowKey::new(PROTO_TCP, ep(CLIENT, 50000), ep(VIP, 82));
    let (id, _) = b.conns.lookup(&key).unwrap();
    assert_eq!(b.conns.get(id).unwrap().state, TcpState::Close);
    let mut rst = from_client(PROTO_TCP, 50001, 82, tcp::FLAG_RST | ACK, b"");
    assert_eq!(
        process(&mut rst, 0, &snap, &mut b, 30),
        Verdict::Drop(DropReason::NoConnection)
    );
    assert_eq!(b.sloppy_created(), 81);
    // Without the option: the flow is reset on B.
    let mut plain = cluster_snapshot(false);
    plain.tcp_resets_per_second = 10;
    let mut c = state();
    let mut ack = from_client(PROTO_TCP, 40000, 82, ACK, b"mid-flow");
    assert_eq!(
        process(&mut ack, 0, &plain, &mut c, 0),
        Verdict::Reply(Answer::Reset)
    );
    assert_eq!((c.conns.len(), c.sloppy_created()), (0, 0));
}

/// A VIP routed to the appliance (`announce`, on no port's subnet): its traffic is served and
/// its ping answered though no port answers ARP for it; without being routed, `not_for_us`.
#[test]
fn a_routed_vip_is_served_without_arp() {
    let mut snap = cluster_snapshot(true);
    for port in &mut snap.ports {
        port.ipv4.retain(|a| *a != Ipv4Addr::from(VIP));
    }
    let mut st = state();
    let mut syn = from_client(PROTO_TCP, 40000, 82, SYN, b"");
    assert_eq!(
        process(&mut syn, 0, &snap, &mut st, 0),
        Verdict::Drop(DropReason::NotForUs)
    );
    snap.routed.push(VIP.into());
    let mut syn = from_client(PROTO_TCP, 40000, 82, SYN, b"");
    assert!(matches!(
        process(&mut syn, 0, &snap, &mut st, 0),
        Verdict::Forward { created: true, .. }
    ));
    let mut ping = VecFrame::new(&icmp_frame(MAC0, CLIENT, VIP, icmp::TYPE_ECHO_REQUEST));
    assert!(matches!(
        process(&mut ping, 0, &snap, &mut st, 0),
        Verdict::Reply(_)
    ));
    let mut arp = VecFrame::new(&crate::engine::arp_request(
        CLIENT_MAC,
        CLIENT.into(),
        VIP.into(),
    ));
    assert!(!matches!(
        process(&mut arp, 0, &snap, &mut st, 0),
        Verdict::Reply(_)
    ));
}
