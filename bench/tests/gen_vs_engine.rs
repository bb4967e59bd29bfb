//! rvs-gen's packets through rvs's own engine (sans-IO, no DPDK), with the very configurations
//! scripts/bench.sh gives rvsd: every mode's rewrite passes rvs-gen's arrival checks, the real
//! servers' answers cross back where the mode says they must, and a damaged packet is caught.

use std::path::Path;

use bench::gen::packet::{Addressing, Arrival, Bad, Dut, Received, FRAME_LEN};
use dataplane::conn::Timeouts;
use dataplane::engine::{self, Verdict, WorkerState};
use dataplane::frame::{Frame, VecFrame};
use dataplane::snapshot::Snapshot;
use dataplane::wire::tcp::{FLAG_ACK, FLAG_PSH, FLAG_SYN};

fn snapshot(mode: &str) -> Snapshot {
    let file = format!("{}/configs/bench-{mode}.ron", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&file).unwrap();
    let loaded = control::config::parse(Path::new(&file), source).unwrap();
    let c = &loaded.config;
    // Collected into whatever map `build` takes.
    let neighbors = c
        .neighbors
        .iter()
        .map(|n| {
            let port = c.ports.iter().position(|p| p.name == n.port).unwrap();
            ((port, n.address), n.mac.0)
        })
        .collect();
    let a = Addressing::bench_defaults(Dut::Nat, false);
    control::snapshot::build(
        c,
        &[a.dut_client_mac, a.dut_server_mac],
        &neighbors,
        1,
        None,
    )
}

/// One client packet through the engine and, where replies cross, the answer back.
fn round_trip(
    a: &Addressing,
    snap: &Snapshot,
    state: &mut WorkerState,
    (flow, step, flags): (u32, u8, u8),
) -> (Arrival, Option<Arrival>) {
    let mut buf = [0u8; FRAME_LEN];
    a.write_client(&mut buf, flow, step, flags, 1_000 + u64::from(step));
    let mut frame = VecFrame::with_room(&buf, 64, 64);
    let v = engine::process(&mut frame, 0, snap, state, 0);
    assert!(matches!(v, Verdict::Forward { port: 1, .. }), "{v:?}");
    let Received::Packet(at_server) = a.check_at_server(frame.bytes()) else {
        panic!(
            "{:?} at the server: {:?}",
            a.dut,
            a.check_at_server(frame.bytes())
        );
    };
    if !a.dut.replies_cross_by_default() {
        return (at_server, None);
    }
    a.write_reply(frame.bytes_mut(), 2_000);
    let v = engine::process(&mut frame, 1, snap, state, 0);
    assert!(matches!(v, Verdict::Forward { port: 0, .. }), "{v:?}");
    let Received::Packet(at_client) = a.check_at_client(frame.bytes()) else {
        panic!("{:?} reply: {:?}", a.dut, a.check_at_client(frame.bytes()));
    };
    (at_server, Some(at_client))
}

#[test]
fn every_mode_passes_the_checks_both_ways() {
    let modes = [
        ("nat", Dut::Nat),
        ("fullnat", Dut::FullNat),
        ("dr", Dut::Dr),
        ("tun", Dut::Tun),
    ];
    for (mode, dut) in modes {
        for udp in [false, true] {
            let snap = snapshot(mode);
            let mut state = WorkerState::new(0, 1, 4096, Timeouts::default());
            let a = Addressing::bench_defaults(dut, udp);
            for flow in [0, 1, 64511, 64512, 1_000_000] {
                let (first, reply) = round_trip(&a, &snap, &mut state, (flow, 0, FLAG_SYN));
                assert_eq!(
                    first,
                    Arrival {
                        flow,
                        step: 0,
                        stamp: 1_000
                    },
                    "{mode}"
                );
                if let Some(r) = reply {
                    assert_eq!(
                        r,
                        Arrival {
                            flow,
                            step: 0,
                            stamp: 2_000
                        },
                        "{mode}"
                    );
                }
                let data = (flow, 255, FLAG_PSH | FLAG_ACK);
                let (data, _) = round_trip(&a, &snap, &mut state, data);
                assert_eq!((data.flow, data.step), (flow, 255));
            }
            assert_eq!(state.conns.len(), 5, "{mode}: one connection per flow");
        }
    }
}

#[test]
fn damage_is_caught_where_it_arrives() {
    let snap = snapshot("nat");
    let mut state = WorkerState::new(0, 1, 4096, Timeouts::default());
    let a = Addressing::bench_defaults(Dut::Nat, false);
    let mut buf = [0u8; FRAME_LEN];
    a.write_client(&mut buf, 7, 0, FLAG_SYN, 5);
    let mut frame = VecFrame::with_room(&buf, 64, 64);
    engine::process(&mut frame, 0, &snap, &mut state, 0);
    let good = frame.bytes().to_vec();
    assert!(matches!(a.check_at_server(&good), Received::Packet(_)));
    let cases = [
        (30, Bad::IpChecksum), // destination address, IP checksum not updated
        (60, Bad::L4Checksum), // payload
        (0, Bad::Mac),         // destination MAC
    ];
    for (at, want) in cases {
        let mut bad = good.clone();
        bad[at] ^= 1;
        assert_eq!(a.check_at_server(&bad), Received::Bad(want), "byte {at}");
    }
    assert_eq!(a.check_at_server(&good[..40]), Received::Bad(Bad::Short));
    // The client's packet as it was sent: the device did not rewrite it.
    assert_eq!(a.check_at_server(&buf), Received::Bad(Bad::Mac));
    let mut unrewritten = buf;
    unrewritten[0..6].copy_from_slice(&a.server_mac);
    assert_eq!(a.check_at_server(&unrewritten), Received::Bad(Bad::Ttl));
}

#[test]
fn passthrough_expects_nothing_rewritten() {
    let a = Addressing::bench_defaults(Dut::Passthrough, false);
    let mut buf = [0u8; FRAME_LEN];
    a.write_client(&mut buf, 3, 0, FLAG_SYN, 9);
    assert_eq!(
        a.check_at_server(&buf),
        Received::Packet(Arrival {
            flow: 3,
            step: 0,
            stamp: 9
        })
    );
    a.write_reply(&mut buf, 11);
    assert_eq!(
        a.check_at_client(&buf),
        Received::Packet(Arrival {
            flow: 3,
            step: 0,
            stamp: 11
        })
    );
}
