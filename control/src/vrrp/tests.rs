//! Two appliances' VRRP on bytes: the frames one sends are the frames the other receives, the
//! clock is the test's.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::wire::{self, Advert, Refusal};
use super::{Frame, Vrrp};
use crate::config::{self, Config};
use dataplane::snapshot::{PortAddrs, Snapshot};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];
const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// An appliance with ports client (198.51.100.`me`) and servers (203.0.113.`me`), VI_1
/// holding the VIP and the client gateway, VI_2 the servers' gateway, in one sync group.
fn config(me: u8, priority: u8, extra: &str) -> Config {
    let text = format!(
        r#"(
    eal: (memory_mb: 256, hugepages: false),
    workers: [0],
    ports: [
        (name: "client", device: "net_ring0", addresses: ["198.51.100.{me}/24"]),
        (name: "servers", device: "net_ring1", addresses: ["203.0.113.{me}/24"]),
    ],
    services: [(protocol: TCP, vip: "198.51.100.100", port: 80, lb_kind: NAT,
                real_servers: [(address: "203.0.113.11")])],
    vrrp_instances: [
        (name: "VI_1", interface: "client", virtual_router_id: 51, priority: {priority},
         version: 3, virtual_ipaddress: ["198.51.100.100", "198.51.100.1/24"],
         garp_master_repeat: 2, garp_master_delay: 5 {extra}),
        (name: "VI_2", interface: "servers", virtual_router_id: 52, priority: {priority},
         version: 3, virtual_ipaddress: ["203.0.113.1/24"], track_interface: ["servers"]),
    ],
    vrrp_sync_groups: [(name: "G", group: ["VI_1", "VI_2"])],
)"#
    );
    config::parse_with_cores(std::path::Path::new("t.ron"), text, &[0])
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

fn snapshot(c: &Config, mac: [u8; 6]) -> Snapshot {
    Snapshot::with_ports(
        c.ports
            .iter()
            .map(|p| PortAddrs {
                mac,
                ipv4: p.addresses.iter().map(|a| a.addr).collect(),
                primary: p.addresses.first().map(|a| a.addr),
                mtu: 1500,
                kernel: Vec::new(),
            })
            .collect(),
    )
}

fn states(v: &Vrrp) -> Vec<&'static str> {
    v.report().iter().map(|r| r.state).collect()
}

fn adverts(frames: &[Frame]) -> Vec<(usize, Advert)> {
    frames
        .iter()
        .filter_map(|f| wire::parse(&f.bytes).ok().map(|r| (f.port, r.advert)))
        .collect()
}

fn garps(frames: &[Frame]) -> Vec<Ipv4Addr> {
    frames
        .iter()
        .filter(|f| f.bytes[12..14] == [0x08, 0x06])
        .map(|f| Ipv4Addr::new(f.bytes[28], f.bytes[29], f.bytes[30], f.bytes[31]))
        .collect()
}

/// Runs both appliances for `span` in steps of 10 ms, each hearing what the other sends.
fn run(
    a: &mut Option<&mut Vrrp>,
    b: &mut Vrrp,
    t: &mut Instant,
    span: Duration,
    log: &mut Vec<(Duration, char, Frame)>,
    t0: Instant,
) {
    let end = *t + span;
    while *t < end {
        *t += Duration::from_millis(10);
        let from_a = a.as_mut().map(|a| a.tick(*t)).unwrap_or_default();
        let from_b = b.tick(*t);
        for f in &from_a {
            log.push((*t - t0, 'a', f.clone()));
            let out = b.receive(f.port, &f.bytes, *t);
            log.extend(out.into_iter().map(|f| (*t - t0, 'b', f)));
        }
        for f in &from_b {
            log.push((*t - t0, 'b', f.clone()));
            if let Some(a) = a.as_mut() {
                let out = a.receive(f.port, &f.bytes, *t);
                log.extend(out.into_iter().map(|f| (*t - t0, 'a', f)));
            }
        }
    }
}

#[test]
fn election_failover_and_the_data_plane_follow_the_states() {
    let (ca, cb) = (config(2, 150, ""), config(3, 100, ""));
    let t0 = Instant::now();
    let mut a = Vrrp::new(&ca, &[MAC_A, MAC_A], t0);
    let mut b = Vrrp::new(&cb, &[MAC_B, MAC_B], t0);
    let mut log = Vec::new();
    b.start(&[true, true], t0);
    let first = a.start(&[true, true], t0);
    assert!(first.is_empty(), "both start BACKUP and silent");
    assert_eq!(states(&a), ["BACKUP", "BACKUP"]);
    let mut t = t0;
    run(
        &mut Some(&mut a),
        &mut b,
        &mut t,
        Duration::from_secs(9),
        &mut log,
        t0,
    );
    // A (150) is due first: 3 s + 106/256 s; its group moves together.
    assert_eq!(states(&a), ["MASTER", "MASTER"]);
    assert_eq!(states(&b), ["BACKUP", "BACKUP"]);
    let first_advert = log.iter().find(|(_, who, _)| *who == 'a').unwrap();
    assert_eq!(first_advert.0, Duration::from_millis(3_420));
    // Gratuitous ARPs: garp_master_repeat (2) rounds for each address of each instance.
    let sent: Vec<Ipv4Addr> = garps(&log.iter().map(|(_, _, f)| f.clone()).collect::<Vec<_>>());
    assert_eq!(
        sent.iter().filter(|a| **a == VIP).count(),
        4,
        "2 at once and 2 after garp_master_delay (5 s)"
    );
    assert_eq!(
        sent.iter().filter(|a| **a == GATEWAY).count(),
        10,
        "VI_2: keepalived's default 5, twice"
    );

    // The data plane: A answers for the VIP and both gateways; B drops their traffic.
    let mut sa = snapshot(&ca, MAC_A);
    a.apply(&mut sa);
    assert!(sa.ports[0].owns(VIP) && sa.ports[1].owns(GATEWAY) && sa.standby.is_empty());
    let mut sb = snapshot(&cb, MAC_B);
    b.apply(&mut sb);
    assert!(!sb.ports[0].owns(VIP) && !sb.ports[1].owns(GATEWAY));
    assert!(sb.standby.contains(&VIP) && sb.standby.contains(&GATEWAY));
    assert!(sb.vrrp && sb.ports[0].owns(Ipv4Addr::new(198, 51, 100, 3)));

    // A stops cleanly: priority 0, B takes over after its skew (156/256 s).
    let bye = a.stop();
    let zeros = adverts(&bye);
    assert_eq!(zeros.len(), 2, "one per master instance");
    assert!(zeros.iter().all(|(_, a)| a.priority == 0));
    let stopped_at = t;
    for f in &bye {
        b.receive(f.port, &f.bytes, t);
    }
    log.clear();
    run(
        &mut None,
        &mut b,
        &mut t,
        Duration::from_secs(2),
        &mut log,
        t0,
    );
    let takeover = log.iter().find(|(_, who, _)| *who == 'b').unwrap().0 - (stopped_at - t0);
    assert!(
        (Duration::from_millis(600)..=Duration::from_millis(620)).contains(&takeover),
        "{takeover:?}"
    );
    assert_eq!(states(&b), ["MASTER", "MASTER"]);
    assert_eq!(states(&a), ["STOP", "STOP"]);
}

#[test]
fn a_crashed_master_is_replaced_after_the_down_interval() {
    let (ca, cb) = (config(2, 150, ""), config(3, 100, ""));
    let t0 = Instant::now();
    let mut a = Vrrp::new(&ca, &[MAC_A, MAC_A], t0);
    let mut b = Vrrp::new(&cb, &[MAC_B, MAC_B], t0);
    a.start(&[true, true], t0);
    b.start(&[true, true], t0);
    let (mut t, mut log) = (t0, Vec::new());
    run(
        &mut Some(&mut a),
        &mut b,
        &mut t,
        Duration::from_secs(8),
        &mut log,
        t0,
    );
    assert_eq!(states(&a), ["MASTER", "MASTER"]);
    let last = log.iter().rev().find(|(_, w, _)| *w == 'a').unwrap().0;
    // A vanishes (kill -9): nothing more from it.
    log.clear();
    run(
        &mut None,
        &mut b,
        &mut t,
        Duration::from_secs(5),
        &mut log,
        t0,
    );
    let first = log.iter().find(|(_, w, _)| *w == 'b').unwrap().0;
    let gap = first - last;
    // 3 x 1 s + (256 - 100)/256 s = 3.609 s, on a 10 ms clock.
    assert!(
        (Duration::from_millis(3_600)..=Duration::from_millis(3_620)).contains(&gap),
        "{gap:?}"
    );
}

#[test]
fn a_sync_group_moves_together_and_faults_together() {
    let cb = config(3, 100, "");
    let t0 = Instant::now();
    let mut b = Vrrp::new(&cb, &[MAC_B, MAC_B], t0);
    b.start(&[true, true], t0);
    // A master (priority 200) is heard on the client side only: VI_2's timer runs out, but
    // the group waits for VI_1, which still hears its master.
    let peer = Ipv4Addr::new(198, 51, 100, 9);
    let advert = Advert {
        version: 3,
        vrid: 51,
        priority: 200,
        interval: 100,
        addresses: vec![VIP, Ipv4Addr::new(198, 51, 100, 1)],
        password: None,
    };
    let frame = wire::build(
        &advert,
        [2, 0, 0, 0, 0, 9],
        wire::GROUP_MAC,
        peer,
        wire::GROUP,
        1,
    );
    let mut t = t0;
    for _ in 0..1000 {
        t += Duration::from_millis(10);
        if (t - t0).as_millis().is_multiple_of(1000) {
            b.receive(0, &frame, t);
        }
        b.tick(t);
    }
    assert_eq!(
        states(&b),
        ["BACKUP", "BACKUP"],
        "VI_2 is held back by VI_1"
    );
    // The master goes silent: both move, together.
    for _ in 0..500 {
        t += Duration::from_millis(10);
        b.tick(t);
    }
    assert_eq!(states(&b), ["MASTER", "MASTER"]);
    // VI_2 tracks the servers' link: down puts the whole group in FAULT, with farewells.
    let out = b.set_links(&[true, false], t);
    assert_eq!(states(&b), ["FAULT", "FAULT"]);
    let bye = adverts(&out);
    assert!(bye.len() >= 2 && bye.iter().all(|(_, a)| a.priority == 0));
    let mut s = snapshot(&cb, MAC_B);
    b.apply(&mut s);
    assert!(s.standby.contains(&VIP) && s.standby.contains(&GATEWAY));
    // Link back: BACKUP, then MASTER again after the down interval (no one else is there).
    b.set_links(&[true, true], t);
    assert_eq!(states(&b), ["BACKUP", "BACKUP"]);
    for _ in 0..400 {
        t += Duration::from_millis(10);
        b.tick(t);
    }
    assert_eq!(states(&b), ["MASTER", "MASTER"]);
}

/// Every refusal is counted under its reason and changes nothing.
#[test]
fn bad_adverts_are_counted_by_reason_and_change_nothing() {
    let c = config(
        3,
        100,
        r#"), (name: "V2", interface: "client", virtual_router_id: 60, version: 2,
              virtual_ipaddress: ["198.51.100.60"],
              authentication: (auth_type: PASS, auth_pass: "secret")"#,
    );
    let t0 = Instant::now();
    let mut b = Vrrp::new(&c, &[MAC_B, MAC_B], t0);
    b.start(&[true, true], t0);
    let peer = Ipv4Addr::new(198, 51, 100, 9);
    let good = Advert {
        version: 3,
        vrid: 51,
        priority: 200,
        interval: 100,
        addresses: vec![VIP, Ipv4Addr::new(198, 51, 100, 1)],
        password: None,
    };
    let v2 = Advert {
        version: 2,
        vrid: 60,
        priority: 200,
        interval: 100,
        addresses: vec![Ipv4Addr::new(198, 51, 100, 60)],
        password: Some(wire::password("secret")),
    };
    let build = |a: &Advert, src: Ipv4Addr| {
        wire::build(a, [2, 0, 0, 0, 0, 9], wire::GROUP_MAC, src, wire::GROUP, 1)
    };
    let edit = |a: &Advert, f: &dyn Fn(&mut Advert)| {
        let mut a = a.clone();
        f(&mut a);
        build(&a, peer)
    };
    let mut ttl = build(&good, peer);
    ttl[22] = 64;
    ttl[24..26].fill(0);
    let sum = dataplane::wire::checksum::checksum(&ttl[14..34]);
    ttl[24..26].copy_from_slice(&sum.to_be_bytes());
    let mut checksum = build(&good, peer);
    checksum[40] ^= 0xff;
    let good_frame = build(&good, peer);
    let cases: Vec<(Vec<u8>, Refusal)> = vec![
        (ttl, Refusal::Ttl),
        (checksum, Refusal::Checksum),
        (good_frame[..good_frame.len() - 4].to_vec(), Refusal::Short),
        (edit(&good, &|a| a.vrid = 99), Refusal::Vrid),
        (edit(&good, &|a| a.version = 2), Refusal::Version),
        (
            build(&good, Ipv4Addr::new(198, 51, 100, 3)),
            Refusal::FromSelf,
        ),
        (
            edit(&good, &|a| {
                a.addresses.pop();
            }),
            Refusal::Addresses,
        ),
        (
            edit(&v2, &|a| a.password = Some(wire::password("guess"))),
            Refusal::Auth,
        ),
        (edit(&v2, &|a| a.password = None), Refusal::Auth),
        (edit(&v2, &|a| a.interval = 200), Refusal::Interval),
    ];
    for (frame, why) in &cases {
        let out = b.receive(0, frame, t0 + Duration::from_millis(100));
        assert!(out.is_empty());
        let counted = b
            .counters()
            .refused
            .iter()
            .find(|(n, _)| *n == why.name())
            .unwrap()
            .1;
        assert!(counted >= 1, "{why:?} not counted");
    }
    let refused: u64 = b.counters().refused.iter().map(|(_, n)| n).sum();
    assert_eq!(refused, cases.len() as u64);
    assert_eq!(b.counters().adverts_received, 0);
    // None of them was taken for a master: the down timer still runs from the start.
    let mut t = t0;
    for _ in 0..362 {
        t += Duration::from_millis(10);
        b.tick(t);
    }
    assert_eq!(states(&b)[0], "MASTER");
    // The good ones are heard.
    b.receive(0, &build(&good, peer), t);
    b.receive(0, &build(&v2, peer), t);
    assert_eq!(b.counters().adverts_received, 2);
    assert_eq!(states(&b)[0], "BACKUP", "yields to 200");
}

#[test]
fn unicast_adverts_go_to_each_peer_and_only_peers_are_heard() {
    let c = config(
        3,
        100,
        r#", unicast_peer: ["198.51.100.4", "198.51.100.5"]"#,
    );
    let t0 = Instant::now();
    let mut b = Vrrp::new(&c, &[MAC_B, MAC_B], t0);
    b.start(&[true, true], t0);
    let mut out = Vec::new();
    let mut t = t0;
    for _ in 0..400 {
        t += Duration::from_millis(10);
        out.extend(b.tick(t));
    }
    let to_peers: Vec<_> = out
        .iter()
        .filter(|f| f.port == 0 && f.bytes[12..14] == [0x08, 0x00])
        .map(|f| (f.to, wire::parse(&f.bytes).unwrap().dst))
        .collect();
    assert_eq!(
        to_peers,
        [
            (
                Some(Ipv4Addr::new(198, 51, 100, 4)),
                Ipv4Addr::new(198, 51, 100, 4)
            ),
            (
                Some(Ipv4Addr::new(198, 51, 100, 5)),
                Ipv4Addr::new(198, 51, 100, 5)
            ),
        ]
    );
    assert_eq!(
        b.peers(),
        [
            (0, Ipv4Addr::new(198, 51, 100, 4)),
            (0, Ipv4Addr::new(198, 51, 100, 5))
        ]
    );
    let advert = Advert {
        version: 3,
        vrid: 51,
        priority: 200,
        interval: 100,
        addresses: vec![VIP, Ipv4Addr::new(198, 51, 100, 1)],
        password: None,
    };
    let stranger = Ipv4Addr::new(198, 51, 100, 9);
    let frame = wire::build(
        &advert,
        [2, 0, 0, 0, 0, 9],
        MAC_B,
        stranger,
        Ipv4Addr::new(198, 51, 100, 3),
        1,
    );
    b.receive(0, &frame, t);
    assert_eq!(
        states(&b)[0],
        "MASTER",
        "a stranger's advert changes nothing"
    );
    let peer = Ipv4Addr::new(198, 51, 100, 4);
    // A peer's, with a TTL other than 255: keepalived checks TTL on the group only.
    let mut frame = wire::build(
        &advert,
        [2, 0, 0, 0, 0, 4],
        MAC_B,
        peer,
        Ipv4Addr::new(198, 51, 100, 3),
        1,
    );
    frame[22] = 64;
    frame[24..26].fill(0);
    let sum = dataplane::wire::checksum::checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    b.receive(0, &frame, t);
    assert_eq!(states(&b)[0], "BACKUP");
}

/// `track_service`: a tracked service that loses its checkers' quorum faults the instance
/// (and its sync group), which comes back when the quorum does.
#[test]
fn a_tracked_service_without_quorum_faults_the_instance() {
    let c = config(3, 100, r#", track_service: ["TCP 198.51.100.100:80"]"#);
    let t0 = Instant::now();
    let mut v = Vrrp::new(&c, &[MAC_B, MAC_B], t0);
    v.start(&[true, true], t0);
    let key = (crate::config::Protocol::TCP, VIP, 80);
    v.set_quorums([(key, true)], t0);
    assert_eq!(states(&v), ["BACKUP", "BACKUP"]);
    v.set_quorums([(key, false)], t0);
    assert_eq!(states(&v), ["FAULT", "FAULT"], "the group faults with it");
    // Another service's quorum is not tracked.
    let other = (crate::config::Protocol::UDP, VIP, 9000);
    v.set_quorums([(key, true), (other, false)], t0);
    assert_eq!(states(&v), ["BACKUP", "BACKUP"]);
}
