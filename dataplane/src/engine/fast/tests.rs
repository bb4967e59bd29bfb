//! The fast path against the full path: the same random traffic (every mode, both
//! directions, new and established, mangled, across snapshot changes) through two worker
//! states, one by `process` (the full path only) and one by `stage` + `process_staged`, must
//! give the same verdicts, the same bytes and the same counters and connections.

use std::iter;

use super::super::tests::{real_mac, snapshot, CLIENT, MAC1, REALS, VIP};
use super::super::{process, Answer, Verdict, WorkerState};
use super::{process_staged, stage, Staged};
use crate::conn::{TcpState, Timeouts};
use crate::flow::Endpoint;
use crate::forward::testing::{ep, frame};
use crate::frame::{Frame, VecFrame};
use crate::snapshot::Snapshot;
use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};
use crate::wire::tcp;

const FLOWS: usize = 15;
/// Services of the engine tests' snapshot: (VIP port, protocol, sees replies).
const SERVICES: [(u16, u8, bool); 5] = [
    (80, PROTO_TCP, true),
    (81, PROTO_TCP, true),
    (82, PROTO_TCP, false),
    (83, PROTO_TCP, false),
    (9000, PROTO_UDP, true),
];

#[derive(Clone, Copy, Debug, Default)]
struct Flow {
    /// (real server, local endpoint) as the full path's first forwarded packet showed them.
    learnt: Option<(Endpoint, Endpoint)>,
}

fn flow_service(i: usize) -> (u16, u8, bool) {
    SERVICES[i % SERVICES.len()]
}

fn client_of(i: usize) -> Endpoint {
    ep(CLIENT, 40000 + i as u16)
}

fn endpoint_at(b: &[u8], addr: usize, port: usize) -> Endpoint {
    Endpoint::new(
        [b[addr], b[addr + 1], b[addr + 2], b[addr + 3]].into(),
        u16::from_be_bytes([b[port], b[port + 1]]),
    )
}

/// One packet of the test's traffic: its bytes and the port it arrives on.
fn packet(op: u8, i: usize, flows: &[Flow], payload: &[u8]) -> Option<(Vec<u8>, usize)> {
    let (vport, protocol, replies) = flow_service(i);
    let client = client_of(i);
    let flags = match op {
        0 => tcp::FLAG_SYN,
        1..=4 => tcp::FLAG_ACK,
        5 | 6 => tcp::FLAG_ACK | tcp::FLAG_PSH,
        7 => tcp::FLAG_FIN | tcp::FLAG_ACK,
        8 => tcp::FLAG_RST,
        9 => tcp::FLAG_ACK | tcp::FLAG_SYN,
        10..=12 => tcp::FLAG_ACK | tcp::FLAG_PSH,
        13 => tcp::FLAG_FIN | tcp::FLAG_ACK,
        _ => tcp::FLAG_ACK,
    };
    let flags = if protocol == PROTO_UDP { 0 } else { flags };
    match op {
        0..=8 => Some((
            frame(protocol, client, ep(VIP, vport), 64, flags, payload),
            0,
        )),
        9..=13 if replies => {
            let (real, local) = flows[i].learnt?;
            let mut f = frame(protocol, real, local, 64, flags, payload);
            f[0..6].copy_from_slice(&MAC1);
            let r = REALS
                .iter()
                .position(|r| *r == real.addr.octets())
                .unwrap_or(0);
            f[6..12].copy_from_slice(&real_mac(r));
            Some((f, 1))
        }
        // A client's packet on the other port, to that port's MAC: the fast path must not
        // take it under the ingress port it checked the direction on.
        14 => {
            let mut f = frame(protocol, client, ep(VIP, vport), 64, flags, payload);
            f[0..6].copy_from_slice(&MAC1);
            Some((f, 1))
        }
        // A UDP datagram without checksum (0 stays 0).
        15 if protocol == PROTO_UDP => {
            let mut f = frame(protocol, client, ep(VIP, vport), 64, 0, payload);
            f[40..42].fill(0);
            Some((f, 0))
        }
        _ => None,
    }
}

/// What changes between bursts: a new snapshot generation (same content), a real server's
/// MAC (the cached next hop must follow), a shorter ESTABLISHED timeout, time.
fn event(kind: u8, value: u8, snap: &mut Snapshot, now: &mut u64) {
    match kind % 5 {
        0 => snap.generation += 1,
        1 => {
            let r = usize::from(value) % REALS.len();
            let mut mac = real_mac(r);
            mac[4] = value;
            snap.neighbors.insert((1, REALS[r].into()), mac);
            snap.generation += 1;
        }
        2 => {
            snap.timeouts.set(u32::from(value % 4) * 100 + 10, 0, 0);
            snap.generation += 1;
        }
        3 => {
            // A real server leaves every service (expire_nodest_conn ends its connections
            // where the service says so; the others keep forwarding to it).
            let gone = REALS[usize::from(value) % REALS.len()];
            for svc in &mut snap.services {
                if svc.reals.len() > 1 {
                    svc.reals.retain(|r| r.addr.addr.octets() != gone);
                    let servers: Vec<_> = svc.reals.iter().map(|r| (r.addr, r.weight)).collect();
                    svc.maglev = Some(std::sync::Arc::new(crate::sched::MaglevTable::build(
                        &servers, 251,
                    )));
                }
            }
            snap.generation += 1;
        }
        _ => *now += u64::from(value) * 1000,
    }
}

type Step = (u8, usize, u8, Vec<u8>, Option<(usize, u8)>);

/// The two worker states fed the same traffic, and what the traffic learnt so far.
struct Pair {
    /// Only ever given packets by `process` (the full path).
    full: WorkerState,
    /// Given them by `stage` + `process_staged`.
    fast: WorkerState,
    flows: [Flow; FLOWS],
    staged: Staged,
    /// The burst being gathered: (bytes, ingress port, flow).
    pending: Vec<(Vec<u8>, usize, usize)>,
}

impl Pair {
    /// Runs the gathered packets through both, a burst per ingress port (as from one RX
    /// queue), and compares every verdict and every byte.
    fn flush(&mut self, snap: &Snapshot, now: u64) {
        for port in [0usize, 1] {
            let burst: Vec<_> = self.pending.iter().filter(|p| p.1 == port).collect();
            if burst.is_empty() {
                continue;
            }
            let mut frames: Vec<VecFrame> = burst.iter().map(|p| VecFrame::new(&p.0)).collect();
            stage(frames.iter(), port, snap, &self.fast, &mut self.staged);
            for (k, (bytes, _, flow)) in burst.iter().enumerate() {
                let mut by_full = VecFrame::new(bytes);
                let want = process(&mut by_full, port, snap, &mut self.full, now);
                let desc = self.staged.get(k);
                let got =
                    process_staged(&mut frames[k], desc, port, snap, &mut self.fast, now, true);
                assert_eq!(got, want, "verdict of packet {k} of the burst");
                assert_eq!(frames[k].bytes(), by_full.bytes(), "bytes ({want:?})");
                let b = by_full.bytes();
                let learnt = &mut self.flows[*flow].learnt;
                // A client's packet forwarded, not tunnelled: its real server and local end.
                if matches!(want, Verdict::Forward { .. })
                    && port == 0
                    && b.len() >= 38
                    && b[23] != 4
                    && learnt.is_none()
                {
                    *learnt = Some((endpoint_at(b, 30, 36), endpoint_at(b, 26, 34)));
                }
                if let Verdict::Reply(Answer::Reset) = want {
                    assert_eq!(frames[k].bytes()[47] & tcp::FLAG_RST, tcp::FLAG_RST);
                }
            }
        }
        self.pending.clear();
    }
}

fn run(steps: &[Step], burst: usize, capacity: usize, variant: usize) -> (u64, u64) {
    let mut snap = snapshot();
    snap.tcp_resets_per_second = 1000;
    // Schedulers, persistence, thresholds and expire_nodest_conn as the full path's fuzz
    // varies them: none of it may change what the fast path does.
    let kinds = crate::sched::SchedulerKind::ALL;
    for svc in &mut snap.services {
        svc.scheduler = kinds[variant % kinds.len()];
        let servers: Vec<_> = svc.reals.iter().map(|r| (r.addr, r.weight)).collect();
        svc.maglev = Some(std::sync::Arc::new(crate::sched::MaglevTable::build(
            &servers, 251,
        )));
        if variant & 1 == 1 {
            svc.persistence = Some(crate::snapshot::Persistence {
                timeout_s: 5,
                netmask: [255, 255, 255, 0].into(),
            });
        }
        if variant & 2 == 2 {
            svc.reals[0].upper_threshold = 3;
            svc.expire_nodest_conn = true;
        }
        // sloppy_tcp (DR, TUN): mid-flow segments of no connection create one.
        svc.sloppy_tcp = variant & 4 == 4 && !svc.mode.sees_replies();
    }
    snap.expire_nodest_conn = variant & 2 == 2;
    let mut pair = Pair {
        full: WorkerState::new(0, 1, capacity, Timeouts::ipvs_defaults()),
        fast: WorkerState::new(0, 1, capacity, Timeouts::ipvs_defaults()),
        flows: [Flow::default(); FLOWS],
        staged: Staged::default(),
        pending: Vec::new(),
    };
    let mut now = 1_000u64;
    let mut packets = 0u64;
    for (op, flow, value, payload, mangle) in steps {
        let i = flow % FLOWS;
        if *op >= 16 {
            pair.flush(&snap, now);
            event(*op, *value, &mut snap, &mut now);
            pair.full.sync(&snap);
            pair.fast.sync(&snap);
            assert_eq!(
                pair.full.expire(now, 64),
                pair.fast.expire(now, 64),
                "expired"
            );
            continue;
        }
        let Some((mut bytes, port)) = packet(*op, i, &pair.flows, payload) else {
            continue;
        };
        if let Some((at, value)) = mangle {
            if let Some(b) = bytes.get_mut(*at) {
                *b = *value;
            }
            // A mangled IPv4 header field keeps a right checksum (else the packet would only
            // ever test the checksum check), unless the checksum itself was mangled.
            if (14..34).contains(at) && !(24..26).contains(at) {
                bytes[24..26].fill(0);
                let sum = crate::wire::checksum::checksum(&bytes[14..34]);
                bytes[24..26].copy_from_slice(&sum.to_be_bytes());
            }
        }
        packets += 1;
        pair.pending.push((bytes, port, i));
        if pair.pending.len() >= burst {
            pair.flush(&snap, now);
            now += 7;
        }
    }
    pair.flush(&snap, now);
    let Pair { full, fast, .. } = pair;
    // The same connections with the same states and deadlines, the same loads and totals.
    assert_eq!(
        full.export(1, Some(10_000), now),
        fast.export(1, Some(10_000), now)
    );
    assert_eq!(full.conns.len(), fast.conns.len());
    (packets, fast.fast_path_packets())
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    (
        // 0..16 packets (mostly ACKs), 16..20 events.
        prop_oneof![8 => 0u8..16, 1 => 16u8..21],
        0usize..FLOWS,
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..24),
        prop_oneof![6 => Just(None), 1 => (0usize..60, any::<u8>()).prop_map(Some)],
    )
}

proptest::proptest! {
    /// Random traffic through both paths: same verdicts, bytes, counters, connections.
    #[test]
    fn fuzz_fast_path_equals_full_path(
        steps in proptest::collection::vec(step(), 1..300),
        burst in 1usize..9,
        small in proptest::bool::ANY,
        variant in 0usize..64,
    ) {
        run(&steps, burst, if small { 8 } else { 1024 }, variant);
    }
}

/// Established traffic in every mode takes the fast path, and a neighbour change reaches it at
/// once: the next packet leaves with the new MAC.
#[test]
fn established_packets_take_the_fast_path_and_follow_a_new_hop() {
    let mut steps: Vec<Step> = Vec::new();
    for round in 0..40u8 {
        for flow in 0..FLOWS {
            let op = match round {
                0 => 0,
                1 => 9,
                _ if round % 2 == 0 => 1,
                _ => 10,
            };
            steps.push((op, flow, 0, vec![round; 10], None));
        }
        if round == 20 {
            // Every real server moves to a new MAC.
            for r in 0..REALS.len() as u8 {
                steps.push((16, 0, r, vec![], None));
            }
        }
    }
    let (packets, fast) = run(&steps, 8, 1024, 0);
    // SYN, SYN-ACK and the first packet each way (and each way's first after a snapshot
    // change) take the full path; the rest is fast.
    assert!(fast * 10 >= packets * 7, "{fast} of {packets} fast");

    let mut snap = snapshot();
    let mut st = WorkerState::new(0, 1, 64, Timeouts::ipvs_defaults());
    let mut staged = Staged::default();
    let client = client_of(2); // DR
    let send = |st: &mut WorkerState, staged: &mut Staged, snap: &Snapshot, flags: u8| {
        let mut f = VecFrame::new(&frame(PROTO_TCP, client, ep(VIP, 82), 64, flags, b"x"));
        stage(iter::once(&f), 0, snap, st, staged);
        let v = process_staged(&mut f, staged.get(0), 0, snap, st, 0, true);
        assert!(matches!(v, Verdict::Forward { port: 1, .. }), "{v:?}");
        f.bytes()[0..6].to_vec()
    };
    let first = send(&mut st, &mut staged, &snap, tcp::FLAG_SYN);
    // The handshake's ACK establishes it; the next packet, the first of an established
    // connection, writes the rewrite; then the fast path.
    send(&mut st, &mut staged, &snap, tcp::FLAG_ACK);
    send(&mut st, &mut staged, &snap, tcp::FLAG_ACK);
    assert_eq!(st.fast_path_packets(), 0);
    let before = st.fast_path_packets();
    assert_eq!(send(&mut st, &mut staged, &snap, tcp::FLAG_ACK), first);
    assert_eq!(
        st.fast_path_packets(),
        before + 1,
        "established ACK took the fast path"
    );
    let real = REALS
        .iter()
        .position(|r| real_mac(REALS.iter().position(|x| x == r).unwrap())[..] == first[..])
        .expect("a real server's MAC");
    snap.neighbors
        .insert((1, REALS[real].into()), [2, 9, 9, 9, 9, 9]);
    snap.generation += 1;
    st.sync(&snap);
    assert_eq!(
        send(&mut st, &mut staged, &snap, tcp::FLAG_ACK),
        [2, 9, 9, 9, 9, 9]
    );
    assert_eq!(
        send(&mut st, &mut staged, &snap, tcp::FLAG_ACK),
        [2, 9, 9, 9, 9, 9]
    );
    assert_eq!(
        st.fast_path_packets(),
        before + 2,
        "fast again after one full-path packet"
    );
    assert_eq!(
        st.conns.iter().next().map(|(_, c)| c.state),
        Some(TcpState::Established)
    );
}

/// Every IPv4 total length and TCP data offset (and UDP length) a packet of an established
/// connection can carry, one at a time: the fast path refuses what the full path refuses and
/// forwards what it forwards, byte for byte.
#[test]
fn mangled_lengths_of_established_connections() {
    for (flow, at, values) in [
        // TCP: the total length's low byte (high byte 0), then the data offset.
        (0usize, 17usize, 0u8..=255),
        (1, 16, 0..=255),
        (0, 46, 0..=255),
        (2, 46, 0..=255),
        // UDP: the total length, the UDP length.
        (4, 17, 0..=255),
        (4, 39, 0..=255),
    ] {
        for value in values {
            let mut steps: Vec<Step> = vec![
                (0, flow, 0, vec![1; 40], None),
                (9, flow, 0, vec![2; 40], None),
                (1, flow, 0, vec![3; 40], None),
                (10, flow, 0, vec![4; 40], None),
            ];
            steps.push((5, flow, 0, vec![5; 40], Some((at, value))));
            steps.push((10, flow, 0, vec![6; 40], Some((at, value))));
            steps.push((1, flow, 0, vec![7; 40], None));
            run(&steps, 1, 64, 0);
        }
    }
}
