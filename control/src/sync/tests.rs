//! A master's sync daemon to a backup's, on frames: what the workers note arrives at the
//! backup's owning workers; foreign, malformed and unknown messages are counted and ignored.

use std::net::Ipv4Addr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use super::wire::{self, flags, tcp_state, SyncConn};
use super::Sync;
use crate::config::SyncDaemon;
use dataplane::conn::TcpState;
use dataplane::flow::{Endpoint, ForwardMode};
use dataplane::snapshot::{Service, Snapshot};
use dataplane::steer::{FullnatShare, Steering};
use dataplane::sync::SyncRecord;

const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
const MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn daemon(id: u8) -> SyncDaemon {
    ron::from_str(&format!(
        "(interface: \"servers\", vrrp_instance: \"VI_1\", id: {id})"
    ))
    .unwrap()
}

/// A sync daemon with `workers` queues to workers and the master-side channel's sender.
fn sync(id: u8, workers: usize) -> (Sync, SyncSender<SyncRecord>, Vec<Receiver<SyncRecord>>) {
    let (to_control, from_workers) = sync_channel(64);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers).map(|_| sync_channel(4)).unzip();
    (
        Sync::new(
            daemon(id),
            1,
            MAC,
            Ipv4Addr::new(203, 0, 113, 2),
            from_workers,
            senders,
        ),
        to_control,
        receivers,
    )
}

fn snapshot(workers: usize) -> Snapshot {
    let mut s = Snapshot::default();
    for (port, mode) in [
        (80, ForwardMode::Nat),
        (81, ForwardMode::FullNat),
        (82, ForwardMode::Dr),
    ] {
        s.add_service(Service {
            protocol: 6,
            vip: Endpoint::new(VIP, port),
            mode,
            scheduler: dataplane::sched::SchedulerKind::Rr,
            flags: Default::default(),
            persistence: None,
            maglev: None,
            members: Vec::new(),
            sloppy_tcp: false,
            expire_nodest_conn: false,
            reals: Vec::new(),
            local_addrs: Vec::new(),
        });
    }
    if workers > 1 {
        s.steering = Some(Arc::new(Steering::new(
            workers,
            [7; 40],
            FullnatShare::Modulo,
        )));
    }
    s
}

fn record(client_port: u16, vport: u16, mode: ForwardMode) -> SyncRecord {
    SyncRecord {
        protocol: 6,
        client: Endpoint::new(Ipv4Addr::new(198, 51, 100, 10), client_port),
        vip: Endpoint::new(VIP, vport),
        real: Endpoint::new(Ipv4Addr::new(203, 0, 113, 11), 8080),
        local: (mode == ForwardMode::FullNat).then_some(Endpoint::new(
            Ipv4Addr::new(203, 0, 113, 201),
            1024 + client_port,
        )),
        mode,
        state: TcpState::Established,
        timeout_s: 900,
        client_mac: [2, 0, 0, 0, 0, 0x10],
        template: false,
    }
}

#[test]
fn what_the_master_notes_reaches_the_owning_worker_of_the_backup() {
    let (mut master, workers_out, _) = sync(5, 1);
    let (mut backup, _, inbox) = sync(0, 2);
    let snap = snapshot(2);
    let sent: Vec<SyncRecord> = (0..4)
        .map(|i| {
            record(
                40000 + i,
                [80, 81, 82, 80][usize::from(i)],
                [
                    ForwardMode::Nat,
                    ForwardMode::FullNat,
                    ForwardMode::Dr,
                    ForwardMode::Nat,
                ][usize::from(i)],
            )
        })
        .collect();
    for r in &sent {
        workers_out.send(*r).unwrap();
    }
    let frames = master.frames_to_send();
    assert_eq!(frames.len(), 1, "four connections fit one message");
    let f = &frames[0];
    assert_eq!(&f[0..6], &wire::GROUP_MAC);
    assert_eq!(f[14 + 8], 1, "TTL 1");
    assert_eq!(f[14 + 16..14 + 20], [224, 0, 0, 81]);
    assert_eq!(u16::from_be_bytes([f[36], f[37]]), 8848);
    assert!(master.frames_to_send().is_empty(), "nothing twice");
    assert!(backup.receive(f, &snap));
    let mut got: Vec<(usize, SyncRecord)> = Vec::new();
    for (w, rx) in inbox.iter().enumerate() {
        got.extend(rx.try_iter().map(|r| (w, r)));
    }
    assert_eq!(got.len(), 4);
    let steering = snap.steering.as_deref().unwrap();
    for (w, r) in &got {
        assert!(sent.contains(r), "{r:?}");
        let owner = match r.mode {
            ForwardMode::FullNat => steering.local_owner(r.local.unwrap()).unwrap(),
            _ => steering.client_owner(r.client),
        };
        assert_eq!(*w, owner);
    }
    assert_eq!(backup.counters().conns_received, 4);
    assert_eq!(master.counters().conns_sent, 4);
}

#[test]
fn foreign_malformed_and_unknown_messages_are_counted_and_ignored() {
    let (mut backup, _, inbox) = sync(9, 1);
    let snap = snapshot(1);
    let (mut other_master, out, _) = sync(8, 1);
    out.send(record(1, 80, ForwardMode::Nat)).unwrap();
    let foreign = other_master.frames_to_send().remove(0);
    assert!(backup.receive(&foreign, &snap));
    let (mut master, out, _) = sync(9, 1);
    out.send(record(2, 99, ForwardMode::Nat)).unwrap();
    let unknown = master.frames_to_send().remove(0);
    assert!(backup.receive(&unknown, &snap));
    // A template and an IPv6-typed record from a kernel master.
    let template = SyncConn {
        protocol: 6,
        flags: flags::TEMPLATE | flags::NO_CPORT,
        state: 0,
        client: (Ipv4Addr::new(198, 51, 100, 0), 0),
        vip: (VIP, 80),
        real: (Ipv4Addr::new(203, 0, 113, 11), 8080),
        fwmark: 0,
        timeout: 360,
        local: None,
        client_mac: None,
    };
    let mut msg = wire::encode(9, &[template], wire::MAX_LEN).remove(0);
    let f = master.frame(&msg);
    assert!(backup.receive(&f, &snap));
    let t = inbox[0].try_recv().expect("a template is taken");
    assert!(t.template);
    assert_eq!(
        (t.client.addr, t.client.port, t.timeout_s),
        (Ipv4Addr::new(198, 51, 100, 0), 0, 360)
    );
    msg[8] = 1;
    let f = master.frame(&msg);
    assert!(backup.receive(&f, &snap));
    // Broken ones: short, a bad size, version 0; a bad UDP checksum is not even a datagram.
    for broken in [&msg[..6], &msg[..msg.len() - 1]] {
        let f = master.frame(broken);
        assert!(backup.receive(&f, &snap));
    }
    let mut v0 = msg.clone();
    v0[5] = 0;
    assert!(backup.receive(&master.frame(&v0), &snap));
    let mut bad_sum = master.frame(&v0);
    let last = bad_sum.len() - 1;
    bad_sum[last] ^= 1;
    assert!(!backup.receive(&bad_sum, &snap));
    assert!(inbox[0].try_recv().is_err(), "nothing reached a worker");
    let refused = backup.counters().refused;
    let count = |why: &str| refused.iter().find(|(w, _)| *w == why).map_or(0, |x| x.1);
    assert_eq!(count("sync_id"), 1);
    assert_eq!(count("unknown_service"), 1);
    assert_eq!(count("skipped"), 1);
    assert_eq!(count("length"), 2);
    assert_eq!(count("version"), 1);
    assert_eq!(backup.counters().conns_received, 1, "the template");
    // A kernel master's connection with its state number is taken as it is.
    let kernel = SyncConn {
        flags: flags::MASQ,
        state: tcp_state::FIN_WAIT,
        client: (Ipv4Addr::new(198, 51, 100, 10), 40000),
        ..template
    };
    let msg = wire::encode(9, &[kernel], wire::MAX_LEN).remove(0);
    assert!(backup.receive(&master.frame(&msg), &snap));
    let r = inbox[0].try_recv().unwrap();
    assert_eq!(
        (r.mode, r.state, r.timeout_s),
        (ForwardMode::Nat, TcpState::FinWait, 360)
    );
}
