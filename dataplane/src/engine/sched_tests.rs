//! Scheduling through the engine: IPVS's active/inactive accounting as connections open,
//! close and expire; thresholds; persistence templates; hashing schedulers across reloads;
//! per-worker starting points.

use std::net::Ipv4Addr;

use super::tests::{from_client, snapshot, state, ACK, CLIENT, REALS, SYN, VIP};
use super::*;
use crate::conn::Timeouts;
use crate::forward::testing::{ep, frame, parsed};
use crate::frame::VecFrame;
use crate::sched::SchedulerKind;
use crate::snapshot::Persistence;
use crate::wire::ipv4::PROTO_TCP;

const RST: u8 = tcp::FLAG_RST;
const SECOND: u64 = 1000;

/// Which real server (0, 1, 2) a forwarded frame went to.
fn real_of(f: &VecFrame) -> usize {
    let dst = parsed(f.bytes()).dst.addr;
    REALS
        .iter()
        .position(|r| Ipv4Addr::from(*r) == dst)
        .expect("forwarded to a real server")
}

/// A TCP segment to the NAT service (VIP:80) from `client`:`sport`.
fn segment(client: [u8; 4], sport: u16, flags: u8) -> VecFrame {
    VecFrame::new(&frame(
        PROTO_TCP,
        ep(client, sport),
        ep(VIP, 80),
        64,
        flags,
        b"",
    ))
}

/// Opens a connection; returns the real server it went to.
fn open(snap: &Snapshot, st: &mut WorkerState, client: [u8; 4], sport: u16, now: u64) -> usize {
    let mut f = segment(client, sport, SYN);
    let v = process(&mut f, 0, snap, st, now);
    assert!(matches!(v, Verdict::Forward { created: true, .. }), "{v:?}");
    real_of(&f)
}

fn send(snap: &Snapshot, st: &mut WorkerState, client: [u8; 4], sport: u16, flags: u8, now: u64) {
    let mut f = segment(client, sport, flags);
    let v = process(&mut f, 0, snap, st, now);
    assert!(
        matches!(v, Verdict::Forward { created: false, .. }),
        "{v:?}"
    );
}

/// The client completes the handshake and then resets: ESTABLISHED, then CLOSE (10 s).
/// (IPVS ignores a client's RST in SYN_RECV.)
fn reset(snap: &Snapshot, st: &mut WorkerState, client: [u8; 4], sport: u16, now: u64) {
    send(snap, st, client, sport, ACK, now);
    send(snap, st, client, sport, RST, now);
}

fn with(kind: SchedulerKind) -> Snapshot {
    let mut snap = snapshot();
    snap.services[0].scheduler = kind;
    snap
}

/// IPVS counts a connection inactive when bound, active in SYN_RECV/ESTABLISHED, inactive
/// again once closing, and releases it when it expires; wlc follows those counts.
#[test]
fn wlc_follows_active_and_inactive_counts() {
    let snap = with(SchedulerKind::Wlc);
    let mut st = state();
    // wlc on an idle service: A, then B, then C (each new SYN_RECV is active, 256).
    assert_eq!(open(&snap, &mut st, CLIENT, 1, 0), 0);
    assert_eq!(open(&snap, &mut st, CLIENT, 2, 0), 1);
    assert_eq!(open(&snap, &mut st, CLIENT, 3, 0), 2);
    let load = |st: &WorkerState, r| st.load(0, r).unwrap();
    assert_eq!((load(&st, 0).active, load(&st, 0).inactive), (1, 0));
    // The client resets its connection to A: CLOSE, inactive (overhead 1 against 256).
    reset(&snap, &mut st, CLIENT, 1, SECOND);
    assert_eq!((load(&st, 0).active, load(&st, 0).inactive), (0, 1));
    assert_eq!(open(&snap, &mut st, CLIENT, 4, SECOND), 0);
    // ESTABLISHED stays active; A now has 1 active + 1 inactive (257): B (256) is lighter.
    send(&snap, &mut st, CLIENT, 4, ACK, SECOND);
    assert_eq!(open(&snap, &mut st, CLIENT, 5, SECOND), 1);
    // CLOSE lasts 10 s: after that the reset connection is gone from A's counts.
    for t in 2..=12 {
        st.expire(t * SECOND, 64);
    }
    assert_eq!((load(&st, 0).active, load(&st, 0).inactive), (1, 0));
    assert_eq!((load(&st, 1).active, load(&st, 2).active), (2, 1));
}

/// `upper_threshold` 2, `lower_threshold` 1 on A with rr: A takes two connections, is
/// skipped while it has two, and comes back once they are gone.
#[test]
fn thresholds_overload_and_recover() {
    let mut snap = snapshot();
    snap.services[0].reals[0].upper_threshold = 2;
    snap.services[0].reals[0].lower_threshold = 1;
    let mut st = state();
    let picks: Vec<usize> = (1..=8)
        .map(|p| open(&snap, &mut st, CLIENT, p, 0))
        .collect();
    assert_eq!(picks, vec![0, 1, 2, 0, 1, 2, 1, 2]);
    assert!(st.load(0, 0).unwrap().overloaded);
    // Both of A's connections reset and expire: 0 < lower 1, A is back.
    reset(&snap, &mut st, CLIENT, 1, SECOND);
    reset(&snap, &mut st, CLIENT, 4, SECOND);
    for t in 2..=12 {
        st.expire(t * SECOND, 64);
    }
    assert!(!st.load(0, 0).unwrap().overloaded);
    let next: Vec<usize> = (9..=11)
        .map(|p| open(&snap, &mut st, CLIENT, p, 12 * SECOND))
        .collect();
    assert!(next.contains(&0), "{next:?}");
}

fn persistent(timeout_s: u32) -> Snapshot {
    let mut snap = snapshot();
    snap.services[0].persistence = Some(Persistence {
        timeout_s,
        netmask: [255, 255, 255, 0].into(),
    });
    snap
}

/// `-p 60 -M 255.255.255.0`: 100 connections from two clients of one /24 all go to one
/// server while the template lives; once it expired (60 s after its last connection, and
/// not before the connections it started are gone) rr decides again.
#[test]
fn persistence_keeps_a_client_network_on_one_server() {
    let snap = persistent(60);
    let mut st = state();
    let other: [u8; 4] = [198, 51, 100, 20];
    let mut servers = Vec::new();
    for p in 1..=100u16 {
        let client = if p % 2 == 0 { CLIENT } else { other };
        servers.push(open(&snap, &mut st, client, p, 0));
    }
    assert!(servers.iter().all(|s| *s == servers[0]), "{servers:?}");
    assert_eq!(st.templates.len(), 1);
    assert_eq!(st.load(0, servers[0]).unwrap().persistent, 1);
    // A client of another network starts its own template (rr's next server).
    let elsewhere = open(&snap, &mut st, [203, 0, 113, 50], 1, 0);
    assert_ne!(elsewhere, servers[0]);
    assert_eq!(st.templates.len(), 2);
    // All connections reset at 1 s (gone at 11 s); one more at 30 s renews the template.
    for p in 1..=100u16 {
        let client = if p % 2 == 0 { CLIENT } else { other };
        reset(&snap, &mut st, client, p, SECOND);
    }
    assert_eq!(open(&snap, &mut st, CLIENT, 1000, 30 * SECOND), servers[0]);
    reset(&snap, &mut st, CLIENT, 1000, 30 * SECOND);
    for t in 1..=89 {
        st.expire(t * SECOND, 1024);
    }
    assert_eq!(
        open(&snap, &mut st, CLIENT, 1001, 89 * SECOND),
        servers[0],
        "still pinned"
    );
    reset(&snap, &mut st, CLIENT, 1001, 89 * SECOND);
    // That connection is gone at 99 s and the template at 149 s.
    for t in 90..=150 {
        st.expire(t * SECOND, 1024);
    }
    assert_eq!(st.templates.len(), 0);
    assert_eq!(st.load(0, servers[0]).unwrap().persistent, 0);
    let again: Vec<usize> = (2000..2003)
        .map(|p| open(&snap, &mut st, CLIENT, p, 150 * SECOND))
        .collect();
    assert_eq!(
        again.iter().filter(|s| **s == again[0]).count(),
        3,
        "re-pinned"
    );
    assert_eq!(st.templates.len(), 1);
}

/// As IPVS by default: a quiesced server (weight 0) keeps its persistent clients; a removed
/// one loses them, and the template follows the scheduler's new pick.
#[test]
fn persistence_survives_quiescing_not_removal() {
    let mut snap = persistent(300);
    let mut st = state();
    let first = open(&snap, &mut st, CLIENT, 1, 0);
    snap.generation += 1;
    snap.services[0].reals[first].weight = 0;
    assert_eq!(open(&snap, &mut st, CLIENT, 2, SECOND), first);
    snap.generation += 1;
    let gone = snap.services[0].reals.remove(first).addr.addr;
    let mut f = segment(CLIENT, 3, SYN);
    process(&mut f, 0, &snap, &mut st, 2 * SECOND);
    assert_ne!(parsed(f.bytes()).dst.addr, gone);
    assert_eq!(st.templates.len(), 1);
    // The old connections still reach the removed server.
    let mut old = segment(CLIENT, 1, ACK);
    process(&mut old, 0, &snap, &mut st, 2 * SECOND);
    assert_eq!(parsed(old.bytes()).dst.addr, gone);
}

/// sh: the same client goes to the same server on every worker and across reloads that
/// leave the server list alone (a neighbour learnt, another service added, a timeout
/// changed); a reload that changes the list moves only what it must.
#[test]
fn sh_and_dh_stable_across_reloads() {
    for kind in [SchedulerKind::Sh, SchedulerKind::Dh] {
        let mut snap = with(kind);
        let clients: Vec<[u8; 4]> = (111..=170).map(|i| [198, 51, 100, i]).collect();
        let picks = |snap: &Snapshot, st: &mut WorkerState, sport: u16| -> Vec<usize> {
            clients
                .iter()
                .map(|c| open(snap, st, *c, sport, 0))
                .collect()
        };
        let mut st = state();
        let before = picks(&snap, &mut st, 1);
        if kind == SchedulerKind::Sh {
            assert!(
                before.iter().any(|p| *p != before[0]),
                "spreads: {before:?}"
            );
        }
        let mut other = WorkerState::new(1, 2, 1024, Timeouts::ipvs_defaults());
        assert_eq!(
            picks(&snap, &mut other, 1),
            before,
            "{kind:?}: another worker"
        );
        snap.generation += 1;
        snap.neighbors
            .insert((1, [203, 0, 113, 99].into()), [2, 0, 0, 0, 0, 99]);
        let mut extra = snap.services[0].clone();
        extra.vip.port = 8443;
        snap.add_service(extra);
        snap.timeouts.set(100, 0, 0);
        assert_eq!(picks(&snap, &mut st, 2), before, "{kind:?}: after a reload");
    }
}

/// wlc, lc, sed and nq on several workers: each worker's first connection goes to another
/// server (IPVS's list order for worker 0).
#[test]
fn workers_start_on_different_servers() {
    for kind in [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
    ] {
        let snap = with(kind);
        let firsts: Vec<usize> = (0..3)
            .map(|w| {
                let mut st = WorkerState::new(w, 3, 1024, Timeouts::ipvs_defaults());
                open(&snap, &mut st, CLIENT, 1, 0)
            })
            .collect();
        assert_eq!(firsts, vec![0, 1, 2], "{kind:?}");
    }
}

/// Every scheduler by name through the engine: it picks a configured server, and a service
/// whose servers are all quiesced refuses the connection (`no_real_server`).
#[test]
fn every_scheduler_schedules_and_respects_weight_zero() {
    for kind in SchedulerKind::ALL {
        let mut snap = with(kind);
        // (mh without a table from the control thread builds one from the weights.)
        let mut st = state();
        let mut f = from_client(PROTO_TCP, 7, 80, SYN, b"");
        assert!(
            matches!(
                process(&mut f, 0, &snap, &mut st, 0),
                Verdict::Forward { .. }
            ),
            "{}",
            kind.name()
        );
        snap.generation += 1;
        for r in &mut snap.services[0].reals {
            r.weight = 0;
        }
        let mut f = from_client(PROTO_TCP, 8, 80, SYN, b"");
        assert_eq!(
            process(&mut f, 0, &snap, &mut st, 0),
            Verdict::Drop(DropReason::NoRealServer),
            "{}",
            kind.name()
        );
    }
}

/// A snapshot that changes nothing a scheduler sees (a next hop resolved, a threshold set)
/// leaves its state alone: wrr 3:2:1 goes on with its sequence (A A B A B C).
#[test]
fn neighbour_updates_do_not_restart_the_sequence() {
    let mut snap = with(SchedulerKind::Wrr);
    for (r, w) in snap.services[0].reals.iter_mut().zip([3, 2, 1]) {
        r.weight = w;
    }
    let mut st = state();
    let mut picks: Vec<usize> = (1..=3)
        .map(|p| open(&snap, &mut st, CLIENT, p, 0))
        .collect();
    snap.generation += 1;
    snap.services[0].reals[1].next_hop_mac = Some([2, 0, 0, 0, 0, 12]);
    snap.services[0].reals[2].upper_threshold = 1000;
    picks.extend((4..=6).map(|p| open(&snap, &mut st, CLIENT, p, 0)));
    assert_eq!(picks, vec![0, 0, 1, 0, 1, 2]);
}

/// FULLNAT with two local addresses towards one real server: twice one address's ports.
/// (Found by the engine benchmark: stepping address and port together reached only
/// lcm(addresses, ports) pairs, i.e. one address's worth whenever the count divides 64512.)
#[test]
fn fullnat_local_addresses_multiply_the_ports() {
    let mut snap = snapshot();
    let fullnat = snap
        .services
        .iter()
        .position(|s| s.mode == ForwardMode::FullNat)
        .unwrap();
    let lip2: Ipv4Addr = [203, 0, 113, 202].into();
    snap.ports[1].ipv4.push(lip2);
    let svc = &mut snap.services[fullnat];
    svc.reals.truncate(1);
    svc.local_addrs.push(lip2);
    let vport = svc.vip.port;
    let per_address = 65536 - 1024;
    let mut st = WorkerState::new(0, 1, 2 * per_address + 16, Timeouts::ipvs_defaults());
    let mut created = 0;
    for i in 0..(per_address + 100) as u32 {
        let client = Ipv4Addr::from(0x0a00_0000 + i);
        let mut f = VecFrame::new(&frame(
            PROTO_TCP,
            Endpoint::new(client, 40000),
            ep(VIP, vport),
            64,
            SYN,
            b"",
        ));
        match process(&mut f, 0, &snap, &mut st, 0) {
            Verdict::Forward { created: true, .. } => created += 1,
            v => panic!("SYN {i}: {v:?}"),
        }
    }
    assert_eq!(created, per_address + 100);
}
