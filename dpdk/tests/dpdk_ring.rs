//! DPDK in-process: two `net_ring` ports carry packets through a pinned worker, and mbuf
//! ownership is checked against the mempool's own accounting (nothing leaked, nothing freed
//! twice).
//!
//! EAL can be initialised once per process, so the cases run in one test, in order, under one
//! EAL that is cleaned up at the end (also when a case fails: the `Eal` is dropped while
//! unwinding). Hugepages are used when the machine has them free, else `--no-huge`;
//! `RVS_TEST_HUGEPAGES=0|1` forces the choice.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dataplane::counters::{DropReason, WorkerCounters};
use dpdk::{Burst, Eal, EalArgs, FlowRule, Mbuf, MbufRing, Mempool, Port, PortSettings, QueueRule};
use std::sync::Arc;

use arc_swap::ArcSwap;
use dataplane::flow::{Endpoint, ForwardMode};
use dataplane::sched::SchedulerKind;
use dataplane::snapshot::{PortAddrs, Snapshot};
use dataplane::snapshot::{RealServer, Route, Service};
use dataplane::steer::{FullnatShare, Steering};
use dataplane::wire::{arp, ethernet, icmp, ipv4, tcp};
use dpdk::worker::{self, WorkerIo, WorkerSetup};

const MAC: [[u8; 6]; 2] = [[0x02, 0xaa, 0, 0, 0, 1], [0x02, 0xaa, 0, 0, 0, 2]];
const PEER_MAC: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 0x0a];
const OWN: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 51, 100, 1),
    Ipv4Addr::new(203, 0, 113, 1),
];
const PEER: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 51, 100, 10),
    Ipv4Addr::new(203, 0, 113, 11),
];

fn hugepages_free() -> bool {
    match std::env::var("RVS_TEST_HUGEPAGES").as_deref() {
        Ok("0") => false,
        Ok("1") => true,
        _ => dpdk::eal::free_hugepages() >= 128,
    }
}

fn arp_request(port: usize) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    ethernet::Repr {
        dst: ethernet::BROADCAST,
        src: PEER_MAC,
        ethertype: ethernet::ETHERTYPE_ARP,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
    arp::Repr {
        operation: arp::OP_REQUEST,
        sender_mac: PEER_MAC,
        sender_ip: PEER[port],
        target_mac: [0; 6],
        target_ip: OWN[port],
    }
    .emit(&mut arp::Packet::new_unchecked(&mut f[14..42]));
    f
}

fn echo_request(port: usize, dst: Ipv4Addr, seq: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + 56];
    ethernet::Repr {
        dst: MAC[port],
        src: PEER_MAC,
        ethertype: ethernet::ETHERTYPE_IPV4,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
    ipv4::Repr {
        src: PEER[port],
        dst,
        protocol: ipv4::PROTO_ICMP,
        ttl: 64,
        tos: 0,
        ident: seq,
        dont_fragment: true,
        payload_len: 64,
    }
    .emit(&mut f[14..]);
    let mut echo = icmp::Packet::new_unchecked(&mut f[34..]);
    echo.set_msg_type(icmp::TYPE_ECHO_REQUEST);
    echo.set_echo(0x1234, seq);
    echo.fill_checksum();
    f
}

fn inject(pool: &Mempool, ring: &MbufRing, frame: &[u8]) {
    let mbuf = pool.alloc_with(frame).expect("mbuf for an injected frame");
    ring.enqueue(mbuf).expect("room in the injection ring");
}

/// Drains `ring` until `want` frames came out or 10 s passed.
fn collect(ring: &MbufRing, want: usize) -> Vec<Mbuf> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    let mut burst = Burst::new();
    while out.len() < want && Instant::now() < deadline {
        if ring.dequeue_burst(&mut burst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        out.extend(burst.drain());
    }
    out
}

#[test]
fn dpdk_in_process() {
    let mut args = EalArgs::new(format!("rvs-test-{}", std::process::id()));
    args.memory_mb = 256;
    args.hugepages = hugepages_free();
    let eal = Eal::init(&args).unwrap_or_else(|e| panic!("EAL init ({:?}): {e}", args.to_args()));
    let pool = Mempool::new("test_pool", 2047, 32, 2048, -1).expect("mempool");

    mbuf_ownership(&pool);
    two_ring_ports_through_a_worker(&pool);
    every_packet_on_the_wrong_queue_is_handed_over(&pool);
    the_kernel_path_is_bounded_and_keeps_room_for_bgp(&pool);

    assert_eq!(pool.in_use(), 0, "every mbuf returned to the pool");
    drop(pool);
    let runtime_dir = eal.runtime_dir().map(ToOwned::to_owned);
    drop(eal);
    if let Some(dir) = runtime_dir {
        assert!(!dir.exists(), "runtime directory {} removed", dir.display());
    }
}

/// Mbufs come back to the pool exactly once, whatever path they take.
fn mbuf_ownership(pool: &Mempool) {
    let total = pool.size();
    let start = pool.available();
    {
        let held: Vec<Mbuf> = (0..100).map(|_| pool.alloc().expect("alloc")).collect();
        assert_eq!(pool.in_use(), 100);
        drop(held);
    }
    assert_eq!(pool.available(), start);

    // A burst frees what it still holds, also after a partial drain.
    let mut burst = Burst::new();
    for _ in 0..10 {
        burst.push(pool.alloc().unwrap()).unwrap();
    }
    let first: Vec<Mbuf> = burst.drain().take(3).collect();
    assert_eq!(pool.in_use(), 3, "the rest of a dropped drain is freed");
    drop(first);
    for _ in 0..dpdk::BURST_SIZE {
        burst.push(pool.alloc().unwrap()).unwrap();
    }
    assert!(
        burst.push(pool.alloc().unwrap()).is_err(),
        "a full burst gives the mbuf back"
    );
    assert_eq!(
        pool.in_use(),
        32,
        "the refused mbuf was freed with the Err, the burst holds 32"
    );
    drop(burst);
    assert_eq!(pool.in_use(), 0);

    // Through a ring and back; what is left in a ring is freed with it.
    let ring = MbufRing::new("test_own", 64).unwrap();
    let mbuf = pool.alloc_with(&[1, 2, 3]).unwrap();
    assert_eq!(mbuf.data(), &[1, 2, 3]);
    ring.enqueue(mbuf).unwrap();
    ring.enqueue(pool.alloc().unwrap()).unwrap();
    let mut out = Burst::new();
    assert_eq!(ring.dequeue_burst(&mut out), 2);
    assert_eq!(out.iter().next().unwrap().data(), &[1, 2, 3]);
    drop(out);
    ring.enqueue(pool.alloc().unwrap()).unwrap();
    drop(ring);
    assert_eq!(pool.in_use(), 0);
    assert_eq!(pool.available(), total);
}

fn two_ring_ports_through_a_worker(pool: &Mempool) {
    let to_rvs = [
        MbufRing::new("p0_in", 256).unwrap(),
        MbufRing::new("p1_in", 256).unwrap(),
    ];
    let from_rvs = [
        MbufRing::new("p0_out", 256).unwrap(),
        MbufRing::new("p1_out", 256).unwrap(),
    ];
    let settings = PortSettings {
        rx_queues: 1,
        tx_queues: 1,
        rx_descriptors: 256,
        tx_descriptors: 256,
        promiscuous: false,
        rss: None,
    };
    let mut ports: Vec<Port> = (0..2)
        .map(|i| {
            let id = Port::from_rings(&format!("net_ring_test{i}"), &[&to_rvs[i]], &[&from_rvs[i]])
                .unwrap();
            let mut port = Port::configure(id, &settings, pool).unwrap();
            port.start().unwrap();
            port
        })
        .collect();
    assert!(
        ports.iter().all(|p| p.link().up),
        "ring ports report link up"
    );
    assert_eq!(ports[0].device_info().driver, "net_ring");

    let snapshot = ArcSwap::new(Arc::new(Snapshot::with_ports(
        (0..2)
            .map(|i| PortAddrs {
                mac: MAC[i],
                ipv4: vec![OWN[i]],
                primary: Some(OWN[i]),
                mtu: 1500,
                kernel: vec![],
            })
            .collect(),
    )));
    let counters = WorkerCounters::new(2);
    let stop = AtomicBool::new(false);
    let core = core_affinity::get_core_ids()
        .and_then(|c| c.last().map(|c| c.id))
        .unwrap_or(0);

    std::thread::scope(|scope| {
        let (mut rx, mut tx) = (Vec::new(), Vec::new());
        for port in &ports {
            let (r, t) = port.take_queues().expect("queues taken once");
            rx.extend(r);
            tx.extend(t);
        }
        assert!(ports[0].take_queues().is_none(), "a queue has one owner");
        let setup = WorkerSetup {
            core,
            index: 0,
            workers: 1,
            connections: 1024,
        };
        let io = WorkerIo {
            rx,
            tx,
            to_control: None,
            from_control: None,
            to_kernel: None,
            from_kernel: None,
            handoff_out: Vec::new(),
            handoff_in: Vec::new(),
            sync_out: None,
            sync_in: None,
            exports: None,
        };
        let (snapshot, counters, stop) = (&snapshot, &counters, &stop);
        let worker = scope.spawn(move || worker::run_pinned(&setup, io, snapshot, counters, stop));

        // Port 0: an ARP request, 5 echoes, and 3 frames that must be dropped.
        inject(pool, &to_rvs[0], &arp_request(0));
        for seq in 0..5 {
            inject(pool, &to_rvs[0], &echo_request(0, OWN[0], seq));
        }
        inject(
            pool,
            &to_rvs[0],
            &echo_request(0, Ipv4Addr::new(198, 51, 100, 77), 9),
        );
        inject(pool, &to_rvs[0], &arp_request(0)[..30]);
        inject(pool, &to_rvs[0], &echo_request(0, OWN[1], 10));
        // Port 1: an ARP request and an echo for its own address.
        inject(pool, &to_rvs[1], &arp_request(1));
        inject(pool, &to_rvs[1], &echo_request(1, OWN[1], 1));

        let out0 = collect(&from_rvs[0], 6);
        let out1 = collect(&from_rvs[1], 2);
        // Give a wrongly forwarded frame time to show up before we stop.
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        worker
            .join()
            .expect("worker thread")
            .expect("worker registered with EAL");

        assert_eq!(out0.len(), 6, "ARP reply + 5 echo replies on port 0");
        assert_eq!(out1.len(), 2, "ARP reply + echo reply on port 1");
        assert!(
            from_rvs[0].is_empty() && from_rvs[1].is_empty(),
            "nothing else was sent"
        );

        let reply = arp::Packet::new_checked(&out0[0].data()[14..]).unwrap();
        assert_eq!(reply.operation(), arp::OP_REPLY);
        assert_eq!((reply.sender_mac(), reply.sender_ip()), (MAC[0], OWN[0]));
        for (seq, mbuf) in out0[1..].iter().enumerate() {
            let eth = ethernet::Frame::new_checked(mbuf.data()).unwrap();
            assert_eq!((eth.dst(), eth.src()), (PEER_MAC, MAC[0]));
            let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!((ip.src(), ip.dst()), (OWN[0], PEER[0]));
            let echo = icmp::Packet::new_checked(ip.payload()).unwrap();
            assert!(echo.verify_checksum());
            assert_eq!(
                (echo.msg_type(), echo.seq()),
                (icmp::TYPE_ECHO_REPLY, seq as u16),
                "in order"
            );
        }
        let reply = arp::Packet::new_checked(&out1[0].data()[14..]).unwrap();
        assert_eq!((reply.sender_mac(), reply.sender_ip()), (MAC[1], OWN[1]));
        drop(out0);
        drop(out1);
    });

    let p0 = counters.ports[0].read();
    let p1 = counters.ports[1].read();
    assert_eq!(
        (
            p0.rx_packets,
            p0.tx_packets,
            p0.arp_replies,
            p0.icmp_echo_replies
        ),
        (9, 6, 1, 5)
    );
    assert_eq!(
        p0.drop_count(DropReason::NotForUs),
        2,
        "echo to a foreign address and to port 1's"
    );
    assert_eq!(p0.drop_count(DropReason::Malformed), 1, "truncated ARP");
    assert_eq!(p0.dropped(), 3);
    assert_eq!(
        (
            p1.rx_packets,
            p1.tx_packets,
            p1.arp_replies,
            p1.icmp_echo_replies,
            p1.dropped()
        ),
        (2, 2, 1, 1, 0)
    );
    assert_eq!(p0.rx_bytes, 60 * 2 + 98 * 7 - 30, "bytes as received");
    assert_eq!(p0.tx_bytes, 60 + 98 * 5);

    // The device's own counters agree with the worker's.
    let dev0 = ports[0].stats();
    assert_eq!((dev0.rx_packets, dev0.tx_packets), (9, 6));
    for port in &mut ports {
        port.stop();
    }
    drop(ports);
    drop(to_rvs);
    drop(from_rvs);
}

/// An Ethernet + IPv4 + TCP frame `src -> dst` to `to_mac`, checksums right.
fn tcp_frame(to_mac: [u8; 6], src: Endpoint, dst: Endpoint, flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20];
    ethernet::Repr {
        dst: to_mac,
        src: PEER_MAC,
        ethertype: ethernet::ETHERTYPE_IPV4,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
    ipv4::Repr {
        src: src.addr,
        dst: dst.addr,
        protocol: ipv4::PROTO_TCP,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_fragment: true,
        payload_len: 20,
    }
    .emit(&mut f[14..]);
    tcp::Repr {
        src_port: src.port,
        dst_port: dst.port,
        seq_number: 1,
        ack_number: 0,
        flags,
        window: 1000,
        payload_len: 0,
    }
    .emit(&mut f[34..], src.addr, dst.addr);
    f
}

fn endpoints(frame: &[u8]) -> (Endpoint, Endpoint) {
    let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    assert!(ip.verify_checksum());
    let segment = tcp::Packet::new_checked(ip.payload()).unwrap();
    assert!(segment.verify_checksum(ip.src(), ip.dst()));
    (
        Endpoint::new(ip.src(), segment.src_port()),
        Endpoint::new(ip.dst(), segment.dst_port()),
    )
}

/// Two workers behind two `net_ring` ports of two queues each, and a "NIC" that puts every
/// packet on the queue of the worker that does not own it: the clients' SYNs of NAT and FULLNAT
/// connections, then the real servers' answers. Every packet still comes out, from its owner's
/// queue, all of them through the hand-off, and the counters say so.
fn every_packet_on_the_wrong_queue_is_handed_over(pool: &Mempool) {
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
    const LIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 201);
    const REAL_MAC: [u8; 6] = [0x02, 0x55, 0, 0, 0, 11];
    const FLOWS: u16 = 48;
    let ring = |name: String| MbufRing::new(&name, 512).unwrap();
    // to_rvs[port][queue], from_rvs[port][queue]
    let to_rvs: Vec<Vec<MbufRing>> = (0..2)
        .map(|p| (0..2).map(|q| ring(format!("w_in{p}{q}"))).collect())
        .collect();
    let from_rvs: Vec<Vec<MbufRing>> = (0..2)
        .map(|p| (0..2).map(|q| ring(format!("w_out{p}{q}"))).collect())
        .collect();
    let settings = PortSettings {
        rx_queues: 2,
        tx_queues: 2,
        rx_descriptors: 256,
        tx_descriptors: 256,
        promiscuous: false,
        rss: None,
    };
    let mut ports: Vec<Port> = (0..2)
        .map(|p| {
            let rx: Vec<&MbufRing> = to_rvs[p].iter().collect();
            let tx: Vec<&MbufRing> = from_rvs[p].iter().collect();
            let id = Port::from_rings(&format!("net_ring_wrong{p}"), &rx, &tx).unwrap();
            let mut port = Port::configure(id, &settings, pool).unwrap();
            port.start().unwrap();
            port
        })
        .collect();

    // What rvsd tries first, refused by this driver: flow rules and a redirection table.
    let rule = QueueRule {
        dst: LIP,
        protocol: 6,
        port_value: 1,
        port_mask: 1,
        queue: 1,
    };
    let refused = FlowRule::validate(ports[1].id(), &rule).unwrap_err();
    assert!(
        refused.to_string().contains("rte_flow_validate(port"),
        "{refused}"
    );
    assert!(
        ports[0].spread_reta(2).is_err(),
        "net_ring has no RSS table"
    );
    let steering = Arc::new(Steering::new(2, [0x3c; 40], FullnatShare::Hash));
    let mut snap = Snapshot::with_ports(vec![
        PortAddrs {
            mac: MAC[0],
            ipv4: vec![OWN[0], VIP],
            primary: Some(OWN[0]),
            mtu: 1500,
            kernel: vec![],
        },
        PortAddrs {
            mac: MAC[1],
            ipv4: vec![OWN[1], LIP],
            primary: Some(OWN[1]),
            mtu: 1500,
            kernel: vec![],
        },
    ]);
    snap.generation = 1;
    snap.steering = Some(steering.clone());
    for (port, network) in [(0, [198, 51, 100, 0]), (1, [203, 0, 113, 0])] {
        snap.add_route(Route {
            network: network.into(),
            prefix_len: 24,
            port,
            gateway: None,
        });
    }
    snap.neighbors.insert((1, PEER[1]), REAL_MAC);
    for (vport, mode) in [(80, ForwardMode::Nat), (81, ForwardMode::FullNat)] {
        snap.add_service(Service {
            protocol: ipv4::PROTO_TCP,
            vip: Endpoint::new(VIP, vport),
            mode,
            scheduler: SchedulerKind::Rr,
            flags: Default::default(),
            reals: vec![RealServer {
                addr: Endpoint::new(PEER[1], 8080),
                weight: 1,
                port: 1,
                next_hop_mac: None,
                upper_threshold: 0,
                lower_threshold: 0,
            }],
            local_addrs: if mode == ForwardMode::FullNat {
                vec![LIP]
            } else {
                vec![]
            },
            persistence: None,
            maglev: None,
            members: Vec::new(),
            sloppy_tcp: false,
            expire_nodest_conn: false,
        });
    }
    let snapshot = ArcSwap::new(Arc::new(snap));
    let counters = [WorkerCounters::new(2), WorkerCounters::new(2)];
    let stop = AtomicBool::new(false);
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .collect();
    let handoff = [
        [None, Some(MbufRing::new("w_ho01", 512).unwrap())],
        [Some(MbufRing::new("w_ho10", 512).unwrap()), None],
    ];
    let injected = 2 * 2 * usize::from(FLOWS);

    std::thread::scope(|scope| {
        let mut io: Vec<WorkerIo<'_>> = (0..2)
            .map(|w| WorkerIo {
                rx: Vec::new(),
                tx: Vec::new(),
                to_control: None,
                from_control: None,
                to_kernel: None,
                from_kernel: None,
                handoff_out: handoff[w].iter().map(Option::as_ref).collect(),
                handoff_in: vec![handoff[1 - w][w].as_ref().unwrap()],
                sync_out: None,
                sync_in: None,
                exports: None,
            })
            .collect();
        for port in &ports {
            let (rx, tx) = port.take_queues().unwrap();
            for (w, q) in rx.into_iter().enumerate() {
                io[w].rx.push(q);
            }
            for (w, q) in tx.into_iter().enumerate() {
                io[w].tx.push(q);
            }
        }
        let mut workers = Vec::new();
        for (w, io) in io.into_iter().enumerate() {
            let setup = WorkerSetup {
                core: cores[w % cores.len()],
                index: w,
                workers: 2,
                connections: 1024,
            };
            let (snapshot, counters, stop) = (&snapshot, &counters[w], &stop);
            workers.push(
                scope.spawn(move || worker::run_pinned(&setup, io, snapshot, counters, stop)),
            );
        }

        // A failed assertion below must still stop the workers, or the scope waits forever.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop_on_panic = StopOnDrop(&stop);
        let mut forwarded = [0usize; 2];
        for (vport, mode) in [(80u16, "NAT"), (81, "FULLNAT")] {
            for i in 0..FLOWS {
                let client = Endpoint::new(PEER[0], 40000 + i);
                let owner = steering.client_owner(client);
                let syn = tcp_frame(MAC[0], client, Endpoint::new(VIP, vport), tcp::FLAG_SYN);
                inject(pool, &to_rvs[0][1 - owner], &syn);
                let out = collect(&from_rvs[1][owner], 1);
                assert_eq!(out.len(), 1, "{mode} SYN of {client} out of worker {owner}");
                let (src, dst) = endpoints(out[0].data());
                assert_eq!(dst, Endpoint::new(PEER[1], 8080));
                if mode == "FULLNAT" {
                    assert_eq!(steering.local_owner(src), Some(owner));
                } else {
                    assert_eq!(src, client);
                }
                let reply = tcp_frame(MAC[1], dst, src, tcp::FLAG_SYN | tcp::FLAG_ACK);
                inject(pool, &to_rvs[1][1 - owner], &reply);
                let back = collect(&from_rvs[0][owner], 1);
                assert_eq!(
                    back.len(),
                    1,
                    "{mode} reply to {client} out of worker {owner}"
                );
                assert_eq!(
                    endpoints(back[0].data()),
                    (Endpoint::new(VIP, vport), client)
                );
                forwarded[owner] += 2;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap().unwrap();
        }
        assert!(
            from_rvs.iter().flatten().all(MbufRing::is_empty),
            "nothing else sent"
        );
        let handed_out: u64 = counters.iter().map(|c| c.handed_out.get()).sum();
        let handed_in: u64 = counters.iter().map(|c| c.handed_in.get()).sum();
        assert_eq!((handed_out, handed_in), (injected as u64, injected as u64));
        for (w, c) in counters.iter().enumerate() {
            let fwd: u64 = c.ports.iter().map(|p| p.read().forwarded).sum();
            assert_eq!(fwd as usize, forwarded[w], "worker {w} forwarded its own");
            assert_eq!(
                c.handed_in.get() as usize,
                forwarded[w],
                "all of them handed in"
            );
            for port in c.ports.iter() {
                assert_eq!(port.read().dropped(), 0);
            }
        }
        assert!(
            forwarded.iter().all(|n| *n > 0),
            "both workers own some: {forwarded:?}"
        );
    });
    for port in &mut ports {
        port.stop();
    }
    drop(ports);
}

/// The kernel path through a worker: TCP to the appliance's own address goes on the ring to
/// the kernel, untouched and marked with its port; once the ring is filled up to the room it
/// keeps, only BGP still gets in and the rest is counted (`kernel_full`); what the kernel sends
/// leaves through the port it was meant for.
fn the_kernel_path_is_bounded_and_keeps_room_for_bgp(pool: &Mempool) {
    let to_rvs = [
        MbufRing::new("kp0_in", 512).unwrap(),
        MbufRing::new("kp1_in", 512).unwrap(),
    ];
    let from_rvs = [
        MbufRing::new("kp0_out", 512).unwrap(),
        MbufRing::new("kp1_out", 512).unwrap(),
    ];
    let to_kernel = MbufRing::new("k_up", 256).unwrap();
    let from_kernel = [
        MbufRing::new("k_down0", 64).unwrap(),
        MbufRing::new("k_down1", 64).unwrap(),
    ];
    let settings = PortSettings {
        rx_queues: 1,
        tx_queues: 1,
        rx_descriptors: 256,
        tx_descriptors: 256,
        promiscuous: false,
        rss: None,
    };
    let mut ports: Vec<Port> = (0..2)
        .map(|i| {
            let id = Port::from_rings(&format!("net_ring_k{i}"), &[&to_rvs[i]], &[&from_rvs[i]])
                .unwrap();
            let mut port = Port::configure(id, &settings, pool).unwrap();
            port.start().unwrap();
            port
        })
        .collect();
    let snapshot = ArcSwap::new(Arc::new(Snapshot::with_ports(
        (0..2)
            .map(|i| PortAddrs {
                mac: MAC[i],
                ipv4: vec![OWN[i]],
                primary: Some(OWN[i]),
                mtu: 1500,
                kernel: vec![OWN[i]],
            })
            .collect(),
    )));
    let counters = WorkerCounters::new(2);
    let stop = AtomicBool::new(false);
    let core = core_affinity::get_core_ids()
        .and_then(|c| c.last().map(|c| c.id))
        .unwrap_or(0);
    const GENERAL: usize = 200;
    const BGP: usize = 10;
    let peer = |port| Endpoint::new(PEER[0], port);
    for i in 0..GENERAL {
        let f = tcp_frame(
            MAC[0],
            peer(40000 + i as u16),
            Endpoint::new(OWN[0], 22),
            0x02,
        );
        inject(pool, &to_rvs[0], &f);
    }
    for i in 0..BGP {
        let f = tcp_frame(
            MAC[0],
            peer(50000 + i as u16),
            Endpoint::new(OWN[0], 179),
            0x02,
        );
        inject(pool, &to_rvs[0], &f);
    }
    // The kernel's own frames, for port 1.
    for i in 0..3 {
        let f = tcp_frame(PEER_MAC, Endpoint::new(OWN[1], 33000 + i), peer(80), 0x02);
        inject(pool, &from_kernel[1], &f);
    }
    std::thread::scope(|scope| {
        let (mut rx, mut tx) = (Vec::new(), Vec::new());
        for port in &ports {
            let (r, t) = port.take_queues().expect("queues taken once");
            rx.extend(r);
            tx.extend(t);
        }
        let setup = WorkerSetup {
            core,
            index: 0,
            workers: 1,
            connections: 1024,
        };
        let io = WorkerIo {
            rx,
            tx,
            to_control: None,
            from_control: None,
            to_kernel: Some(&to_kernel),
            from_kernel: Some(&from_kernel[..]),
            handoff_out: Vec::new(),
            handoff_in: Vec::new(),
            sync_out: None,
            sync_in: None,
            exports: None,
        };
        let (snapshot, counters, stop) = (&snapshot, &counters, &stop);
        let worker = scope.spawn(move || worker::run_pinned(&setup, io, snapshot, counters, stop));
        let sent = collect(&from_rvs[1], 3);
        let deadline = Instant::now() + Duration::from_secs(10);
        while counters.ports[0].read().rx_packets < (GENERAL + BGP) as u64
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::Relaxed);
        worker.join().expect("worker thread").expect("worker");
        assert_eq!(sent.len(), 3, "the kernel's frames left through port 1");
        for (i, mbuf) in sent.iter().enumerate() {
            assert_eq!(
                endpoints(mbuf.data()).0,
                Endpoint::new(OWN[1], 33000 + i as u16)
            );
        }
    });
    let p0 = counters.ports[0].read();
    let general_room = to_kernel.capacity() - worker::KERNEL_RESERVED;
    assert_eq!(p0.rx_packets, (GENERAL + BGP) as u64);
    assert_eq!(p0.to_kernel, (general_room + BGP) as u64);
    assert_eq!(
        p0.drop_count(DropReason::KernelFull),
        (GENERAL - general_room) as u64
    );
    let up = collect(&to_kernel, general_room + BGP);
    assert_eq!(up.len(), general_room + BGP);
    for (i, mbuf) in up.iter().enumerate() {
        assert_eq!(
            mbuf.port(),
            ports[0].id(),
            "marked with the port it came in on"
        );
        let (src, dst) = endpoints(mbuf.data());
        if i < general_room {
            assert_eq!(
                (src, dst.port),
                (peer(40000 + i as u16), 22),
                "untouched, in order"
            );
        } else {
            assert_eq!(dst.port, 179);
        }
    }
    drop(up);
    for port in &mut ports {
        port.stop();
    }
    drop(ports);
}
