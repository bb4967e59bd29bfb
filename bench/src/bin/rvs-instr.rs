//! rvs-instr: the harness `scripts/instructions.sh` runs under `valgrind --tool=callgrind` to
//! count the instructions rvsd's worker spends per forwarded packet, a figure that does not
//! drift with the machine's load or clock.
//!
//! It loads an rvsd configuration (one TCP service; `bench/configs/instr-*.ron`), puts two
//! in-process `net_ring` ports in place of the configured devices, builds the snapshot as
//! rvsd does and drives rvsd's own loop body, [`Worker::poll`], on this thread. A synchronous
//! feeder plays the clients and the real servers between polls:
//!
//! 1. set-up: each of `--flows` flows sends its SYN, (NAT, FULLNAT) its real server answers
//!    with a SYN-ACK, the client ACKs: the connections are ESTABLISHED, 32 flows per poll;
//! 2. settling: a 3.3 s pause and empty polls, so that the timer wheel's one-off visit of
//!    every new connection (at its first, 2 s deadline) is over before the measurement,
//!    whatever its speed (see `SETTLE`);
//! 3. measurement, inside [`measure`] (the only function callgrind collects in, with
//!    `--collect-atstart=no --toggle-collect='rvs_instr::measure*'`): before every poll the
//!    feeder puts exactly one full burst (32 data packets of established flows, round robin)
//!    on the RX ring of each measured direction (`in`: client -> VIP, `out`: real server ->
//!    client, `both`), and after it takes what the worker sent off the TX rings.
//!
//! The feeder's copies and mbuf allocations happen outside `Worker::poll` (never inlined), so
//! the inclusive cost of `dpdk::worker::Worker::poll` divided by the packets forwarded
//! is the worker's cost per packet: receive, engine, transmit, counters, and its share of the
//! per-poll work (snapshot load, expiry walk, the control thread's injection rings, which
//! worker 0 of rvsd polls too). The run fails unless every fed packet was forwarded, every
//! poll got its full burst(s) and nothing was dropped.
//!
//! With `--workers 2`, two workers run in turn on this thread (rvsd's loop body each), ports
//! have two queues, the snapshot carries the owner function, and every measured flow belongs
//! to worker 1: `--placement owner` feeds its packets to worker 1's queue (the cost of the
//! owner check), `--placement other` to worker 0's, which hands each one over (the cost of the
//! hand-off). Both workers' `Worker::poll` count.
//!
//! `rvs-instr --config bench/configs/instr-nat.ron --direction in --packets 2000000`

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bench::frames::tcp_frame;
use clap::{Parser, ValueEnum};
use control::config::{self, Protocol};
use control::neigh::Neighbors;
use control::snapshot;
use dataplane::conn::Timeouts;
use dataplane::counters::{PortTotals, WorkerCounters};
use dataplane::engine::WorkerState;
use dataplane::flow::Endpoint;
use dataplane::steer::{FullnatShare, Steering};
use dataplane::wire::tcp::{FLAG_ACK, FLAG_PSH, FLAG_SYN};
use dataplane::wire::{ethernet, ipv4, tcp};
use dpdk::worker::{Worker, WorkerIo};
use dpdk::{Burst, Eal, EalArgs, Mbuf, MbufRing, Mempool, Port, PortSettings, BURST_SIZE};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "rvs-instr",
    about = "rvsd's worker on in-process ring ports, fed one full burst per poll: run it under \
             callgrind (scripts/instructions.sh) to count instructions per packet"
)]
struct Args {
    /// rvsd configuration: its first service (TCP) is measured; ports, devices and EAL
    /// settings are replaced by rvs-instr's own.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Established flows the measured packets cycle through.
    #[arg(long, default_value_t = 10_000)]
    flows: usize,
    /// Packets to feed in the measurement (rounded up to whole polls).
    #[arg(long, default_value_t = 2_000_000)]
    packets: u64,
    /// Which packets are measured: the clients' (`in`), the real servers' replies (`out`,
    /// NAT and FULLNAT only), or one burst of each per poll (`both`).
    #[arg(long, value_enum, default_value_t = Direction::In)]
    direction: Direction,
    /// EAL's --file-prefix (distinct per DPDK process).
    #[arg(long, default_value_t = format!("rvs-instr-{}", std::process::id()))]
    file_prefix: String,
    /// EAL's memory bound (-m), MiB, on ordinary pages (--no-huge).
    #[arg(long, default_value_t = 128)]
    memory_mb: u32,
    /// Workers (1 or 2): with 2, every measured flow belongs to worker 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=2))]
    workers: u16,
    /// With 2 workers, which queue the packets arrive on: their owner's, or the other
    /// worker's (which hands them over).
    #[arg(long, value_enum, default_value_t = Placement::Owner)]
    placement: Placement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Placement {
    Owner,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Direction {
    In,
    Out,
    Both,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Both => "both",
        }
    }
}

/// The clients' side of the network, behind the client port: one router's MAC.
const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x02, 0x01];
/// Client flows come from 198.51.100.10..=89 (80 addresses), ports from 10000 up.
const CLIENT_BASE: u8 = 10;
const CLIENT_ADDRS: usize = 80;
const CLIENT_PORT_BASE: usize = 10_000;
/// 6 bytes of data: 60-byte frames, Ethernet's minimum without FCS.
const PAYLOAD: [u8; 6] = *b"instr!";
const FRAME_LEN: usize = ethernet::HEADER_LEN + 20 + tcp::HEADER_LEN + PAYLOAD.len();
/// Ring slots: a poll never sees more than two bursts per ring.
const RING_SIZE: u32 = 256;
/// Mbufs: what is in flight (a few bursts) plus the per-lcore cache, with room to spare.
const MBUFS: u32 = 4095;
const MBUF_CACHE: u32 = 256;
/// After the set-up, how long to wait for the timer wheel to reach the connections' first
/// deadlines (NONE's 2 s, rounded up to the wheel's 1 s tick), with a margin.
const SETTLE: Duration = Duration::from_millis(3_300);
/// The measurement must end before the connections' ESTABLISHED deadlines (900 s after the
/// set-up) fall due, or the wheel would walk them inside measured polls.
const ESTABLISHED_TIMEOUT_S: f64 = 900.0;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvs-instr: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One flow: the client's endpoint and, where the mode sees replies, the reply's endpoints as
/// the real server sends it (from the real server to the client or FULLNAT's local endpoint).
#[derive(Debug, Clone, Copy)]
struct Flow {
    client: Endpoint,
    reply_src: Endpoint,
    reply_dst: Endpoint,
    real_mac: [u8; 6],
}

fn client(i: usize) -> Endpoint {
    Endpoint::new(
        Ipv4Addr::new(198, 51, 100, CLIENT_BASE + (i % CLIENT_ADDRS) as u8),
        (CLIENT_PORT_BASE + i / CLIENT_ADDRS) as u16,
    )
}

/// Destination MAC, source and destination of a forwarded (not encapsulated) TCP frame.
fn forwarded_tuple(frame: &[u8]) -> Result<([u8; 6], Endpoint, Endpoint), String> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|e| format!("{e:?}"))?;
    let ip = ipv4::Packet::new_checked(eth.payload()).map_err(|e| format!("{e:?}"))?;
    if ip.protocol() != ipv4::PROTO_TCP {
        return Err(format!("protocol {} forwarded, not TCP", ip.protocol()));
    }
    let seg = tcp::Packet::new_checked(ip.payload()).map_err(|e| format!("{e:?}"))?;
    Ok((
        eth.dst(),
        Endpoint::new(ip.src(), seg.src_port()),
        Endpoint::new(ip.dst(), seg.dst_port()),
    ))
}

/// Puts copies of `frames` on `ring` (a port's RX side).
fn feed<'a>(
    pool: &Mempool,
    ring: &MbufRing,
    frames: impl Iterator<Item = &'a [u8]>,
) -> Result<(), String> {
    for frame in frames {
        let mbuf = pool
            .alloc_with(frame)
            .ok_or("mempool exhausted while feeding")?;
        ring.enqueue(mbuf)
            .map_err(|_| "RX ring full while feeding".to_owned())?;
    }
    Ok(())
}

/// Takes everything off `ring` (a port's TX side) into `out`.
fn take_all(ring: &MbufRing, out: &mut Vec<Mbuf>) {
    let mut burst = Burst::new();
    while ring.dequeue_burst(&mut burst) > 0 {
        out.extend(burst.drain());
    }
}

/// The ports' counters summed over the workers.
fn totals(counters: &[WorkerCounters]) -> Vec<PortTotals> {
    (0..counters[0].ports.len())
        .map(|port| {
            let mut t = PortTotals::default();
            for c in counters {
                t.add(&c.ports[port].read());
            }
            t
        })
        .collect()
}

/// The RSS key of the measured owner function (any fixed key will do).
const KEY: [u8; dataplane::steer::KEY_LEN] = [0x6d; dataplane::steer::KEY_LEN];

fn dropped(totals: &[PortTotals]) -> Vec<String> {
    totals
        .iter()
        .enumerate()
        .flat_map(|(port, t)| {
            t.nonzero_drops()
                .map(move |(reason, n)| format!("port {port}: {reason} {n}"))
        })
        .collect()
}

/// What the measured packets need: a port's RX ring and the frames it gets, round robin.
struct Lane<'a> {
    ring: &'a MbufRing,
    frames: Vec<Vec<u8>>,
    next: usize,
}

/// The measurement's own tally (the worker's counters are read around it).
#[derive(Debug, Default)]
struct Tally {
    polls: u64,
    fed: u64,
    received: u64,
    /// Polls that did not receive a full burst on every measured lane (must stay 0).
    short_polls: u64,
    sent: u64,
}

/// The measured loop: one full burst per lane, one poll (`poll` calls `Worker::poll`), the TX
/// rings emptied. Never inlined: callgrind collects only in here (`--toggle-collect`), and
/// reads `Worker::poll`'s inclusive cost out of it.
#[inline(never)]
fn measure(
    polls: u64,
    lanes: &mut [Lane<'_>],
    tx_rings: &[&MbufRing],
    pool: &Mempool,
    handed_over: bool,
    mut poll: impl FnMut() -> usize,
) -> Result<Tally, String> {
    let mut tally = Tally::default();
    let per_poll = BURST_SIZE * lanes.len();
    // A packet handed over is received twice: by the worker that hands it and its owner.
    let received_per_poll = if handed_over { 2 * per_poll } else { per_poll };
    let mut out = Burst::new();
    for _ in 0..polls {
        for lane in lanes.iter_mut() {
            for _ in 0..BURST_SIZE {
                let mbuf = pool
                    .alloc_with(&lane.frames[lane.next])
                    .ok_or("mempool exhausted while feeding")?;
                lane.ring
                    .enqueue(mbuf)
                    .map_err(|_| "RX ring full while feeding".to_owned())?;
                lane.next += 1;
                if lane.next == lane.frames.len() {
                    lane.next = 0;
                }
            }
        }
        tally.fed += per_poll as u64;
        let received = poll();
        tally.polls += 1;
        tally.received += received as u64;
        if received != received_per_poll {
            tally.short_polls += 1;
        }
        for ring in tx_rings {
            while ring.dequeue_burst(&mut out) > 0 {
                tally.sent += out.len() as u64;
                out.clear();
            }
        }
    }
    Ok(tally)
}

fn run(args: &Args) -> Result<(), String> {
    let loaded = config::load(&args.config).map_err(|e| e.to_string())?;
    let c = &loaded.config;
    let svc = c
        .services
        .first()
        .ok_or("the configuration has no service to measure")?;
    if svc.protocol != Protocol::TCP {
        return Err("the first service must be TCP".to_owned());
    }
    let mode = svc.lb_kind.mode();
    let sees_replies = mode.sees_replies();
    if args.direction != Direction::In && !sees_replies {
        return Err(format!(
            "--direction {}: {:?} sends no replies through rvs",
            args.direction.name(),
            svc.lb_kind
        ));
    }
    if args.flows == 0 || args.flows > CLIENT_ADDRS * (usize::from(u16::MAX) - CLIENT_PORT_BASE) {
        return Err("--flows must be in 1..=4,442,800".to_owned());
    }
    if args.flows > c.connections.capacity {
        return Err(format!(
            "--flows {} exceeds connections.capacity {}",
            args.flows, c.connections.capacity
        ));
    }
    let vip = Endpoint::new(svc.vip, svc.port);
    if args.workers == 2 && args.placement == Placement::Other && !sees_replies {
        return Err(format!(
            "--placement other: {:?} flows belong to the worker that receives them, nothing \
             would be handed over",
            svc.lb_kind
        ));
    }

    let mut eal_args = EalArgs::new(args.file_prefix.clone());
    eal_args.memory_mb = args.memory_mb;
    eal_args.hugepages = false;
    // Drop order matters from here: ports, then rings, then the pool, then EAL (reverse of
    // declaration).
    let _eal = Eal::init(&eal_args).map_err(|e| e.to_string())?;
    let pool =
        Mempool::new("instr_pool", MBUFS, MBUF_CACHE, 2048 + 128, -1).map_err(|e| e.to_string())?;
    let ring = |name: String| MbufRing::new(&name, RING_SIZE).map_err(|e| e.to_string());
    let n_ports = c.ports.len();
    let workers = usize::from(args.workers);
    let handed_over = workers == 2 && args.placement == Placement::Other;
    // Queue q of a port is worker q's. With two workers, every measured flow is worker 1's:
    // its packets arrive on queue 1 (its owner's) or on queue 0 (handed over).
    let (owner_q, feed_q) = match (workers, args.placement) {
        (1, _) => (0, 0),
        (_, Placement::Owner) => (1, 1),
        (_, Placement::Other) => (1, 0),
    };
    // rx_rings[port][queue], tx_rings[port][queue].
    let rings = |dir: &str| -> Result<Vec<Vec<MbufRing>>, String> {
        (0..n_ports)
            .map(|i| {
                (0..workers)
                    .map(|q| ring(format!("instr_{dir}{i}_{q}")))
                    .collect()
            })
            .collect()
    };
    let rx_rings = rings("rx")?;
    let tx_rings = rings("tx")?;
    let all_tx: Vec<&MbufRing> = tx_rings.iter().flatten().collect();
    // As rvsd gives its workers: a slow-path ring each, and to worker 0 one injection ring
    // per port; with two workers, a hand-off ring each way.
    let to_control: Vec<MbufRing> = (0..workers)
        .map(|w| MbufRing::new(&format!("instr_slow{w}"), 1024).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let from_control: Vec<MbufRing> = (0..n_ports)
        .map(|i| ring(format!("instr_inject{i}")))
        .collect::<Result<_, _>>()?;
    let handoff: Vec<Vec<Option<MbufRing>>> = (0..workers)
        .map(|from| {
            (0..workers)
                .map(|to| {
                    (from != to)
                        .then(|| ring(format!("instr_ho{from}{to}")))
                        .transpose()
                })
                .collect()
        })
        .collect::<Result<_, _>>()?;
    let mut ports = Vec::with_capacity(n_ports);
    for (i, pc) in c.ports.iter().enumerate() {
        let rx: Vec<&MbufRing> = rx_rings[i].iter().collect();
        let tx: Vec<&MbufRing> = tx_rings[i].iter().collect();
        let id =
            Port::from_rings(&format!("net_ring_instr{i}"), &rx, &tx).map_err(|e| e.to_string())?;
        let settings = PortSettings {
            rx_queues: workers as u16,
            tx_queues: workers as u16,
            rx_descriptors: pc.rx_descriptors,
            tx_descriptors: pc.tx_descriptors,
            promiscuous: pc.promiscuous,
            rss: None,
        };
        let mut port = Port::configure(id, &settings, &pool).map_err(|e| e.to_string())?;
        port.start().map_err(|e| e.to_string())?;
        ports.push(port);
    }

    let macs: Vec<[u8; 6]> = ports.iter().map(Port::mac).collect();
    let mut neighbors = Neighbors::new();
    control::control::add_static_neighbors(c, &mut neighbors);
    let mut snap = snapshot::build(c, &macs, &neighbors.table(), 1, None);
    let steering = Arc::new(Steering::new(workers, KEY, FullnatShare::Hash));
    if workers > 1 {
        snap.steering = Some(steering.clone());
    }
    let client_port = snap
        .route(svc.vip)
        .map(|r| r.port)
        .ok_or("the VIP is on no port")?;
    let service = &snap
        .service(ipv4::PROTO_TCP, vip)
        .ok_or("the service is not in the snapshot")?
        .1;
    let server_port = service.reals.first().ok_or("no real server")?.port;
    if server_port == client_port {
        return Err("the real servers must be on another port than the clients".to_owned());
    }
    if let Some(real) = service.reals.iter().find(|r| r.next_hop_mac.is_none()) {
        return Err(format!(
            "real server {} has no static neighbour entry (rvs-instr sends no ARP)",
            real.addr.addr
        ));
    }
    let snapshots = ArcSwap::from_pointee(snap);
    let counters: Vec<WorkerCounters> =
        (0..workers).map(|_| WorkerCounters::new(n_ports)).collect();
    let mut states: Vec<WorkerState> = (0..workers)
        .map(|w| WorkerState::new(w, workers, c.connections.capacity, Timeouts::default()))
        .collect();

    let mut io: Vec<WorkerIo<'_>> = (0..workers)
        .map(|w| WorkerIo {
            rx: Vec::new(),
            tx: Vec::new(),
            to_control: Some(&to_control[w]),
            from_control: (w == 0).then_some(&from_control[..]),
            to_kernel: None,
            from_kernel: None,
            handoff_out: handoff[w].iter().map(Option::as_ref).collect(),
            handoff_in: handoff.iter().filter_map(|to| to[w].as_ref()).collect(),
            sync_out: None,
            sync_in: None,
            exports: None,
        })
        .collect();
    for port in &ports {
        let (r, t) = port.take_queues().ok_or("queues taken twice")?;
        for (w, q) in r.into_iter().enumerate() {
            io[w].rx.push(q);
        }
        for (w, q) in t.into_iter().enumerate() {
            io[w].tx.push(q);
        }
    }
    let started = Instant::now();
    let mut workers_loop: Vec<Worker<'_>> = io
        .into_iter()
        .zip(&counters)
        .map(|(io, counters)| Worker::new(io, counters))
        .collect();
    // One turn of every worker, in order: what each received (a packet handed over counts
    // at both ends).
    let mut poll_all = || -> usize {
        workers_loop
            .iter_mut()
            .zip(states.iter_mut())
            .zip(&counters)
            .map(|((worker, state), counters)| worker.poll(&snapshots, state, counters))
            .sum()
    };

    // Set-up: SYN, (SYN-ACK), ACK for every flow, a burst of flows per poll. With two workers
    // the flows are clients that worker 1 owns.
    let mut flows: Vec<Flow> = (0..)
        .map(client)
        .filter(|c| workers == 1 || steering.client_owner(*c) == 1)
        .take(args.flows)
        .map(|client| Flow {
            client,
            reply_src: vip,
            reply_dst: client,
            real_mac: [0; 6],
        })
        .collect();
    let client_mac = macs[client_port];
    let server_mac = macs[server_port];
    let mut out = Vec::with_capacity(BURST_SIZE);
    let received_per_frame = if handed_over { 2 } else { 1 };
    let mut step = |what: &str,
                    in_port: usize,
                    out_port: usize,
                    frames: Vec<Vec<u8>>,
                    out: &mut Vec<Mbuf>|
     -> Result<(), String> {
        feed(
            &pool,
            &rx_rings[in_port][feed_q],
            frames.iter().map(Vec::as_slice),
        )?;
        let received = poll_all();
        out.clear();
        take_all(&tx_rings[out_port][owner_q], out);
        let stray: usize = all_tx.iter().map(|r| r.len()).sum();
        if received != received_per_frame * frames.len() || out.len() != frames.len() || stray != 0
        {
            return Err(format!(
                "set-up {what}: {} fed, {received} received, {} forwarded, {stray} elsewhere; \
                 drops: {:?}",
                frames.len(),
                out.len(),
                dropped(&totals(&counters))
            ));
        }
        Ok(())
    };
    for batch in flows.chunks_mut(BURST_SIZE) {
        let syns = batch
            .iter()
            .map(|f| tcp_frame(client_mac, CLIENT_MAC, f.client, vip, FLAG_SYN, &[]))
            .collect();
        step("SYN", client_port, server_port, syns, &mut out)?;
        for (flow, mbuf) in batch.iter_mut().zip(&out) {
            if sees_replies {
                let (mac, src, dst) = forwarded_tuple(mbuf.data())?;
                flow.real_mac = mac;
                flow.reply_src = dst;
                flow.reply_dst = src;
            }
        }
        if sees_replies {
            let syn_acks = batch
                .iter()
                .map(|f| {
                    tcp_frame(
                        server_mac,
                        f.real_mac,
                        f.reply_src,
                        f.reply_dst,
                        FLAG_SYN | FLAG_ACK,
                        &[],
                    )
                })
                .collect();
            step("SYN-ACK", server_port, client_port, syn_acks, &mut out)?;
        }
        let acks = batch
            .iter()
            .map(|f| tcp_frame(client_mac, CLIENT_MAC, f.client, vip, FLAG_ACK, &[]))
            .collect();
        step("ACK", client_port, server_port, acks, &mut out)?;
    }
    drop(out);

    let connections: u64 = counters.iter().map(|c| c.connections.get()).sum();
    if connections != args.flows as u64 {
        return Err(format!(
            "set-up: {connections} connections in the table, {} flows",
            args.flows
        ));
    }
    let setup_s = started.elapsed().as_secs_f64();

    // A connection is armed on the timer wheel at its first state's short deadline (NONE,
    // 2 s) and stays in that bucket when its deadline moves later (refreshes are lazy): about
    // 2 s after its SYN the wheel visits it once and re-arms it at its ESTABLISHED deadline.
    // Let that happen here, outside the measurement, so that the figure does not depend on
    // whether the measurement (much slower under callgrind) lasts past it: wait until every
    // set-up deadline's tick has come, then poll (no packets) until the wheel has visited
    // every connection, even at one entry per poll.
    std::thread::sleep(SETTLE);
    for _ in 0..args.flows + 100 {
        poll_all();
    }
    let measure_start_s = started.elapsed().as_secs_f64();

    // The measured packets: data segments of the established flows.
    let mut lanes = Vec::new();
    if args.direction != Direction::Out {
        lanes.push(Lane {
            ring: &rx_rings[client_port][feed_q],
            frames: flows
                .iter()
                .map(|f| {
                    tcp_frame(
                        client_mac,
                        CLIENT_MAC,
                        f.client,
                        vip,
                        FLAG_ACK | FLAG_PSH,
                        &PAYLOAD,
                    )
                })
                .collect(),
            next: 0,
        });
    }
    if args.direction != Direction::In {
        lanes.push(Lane {
            ring: &rx_rings[server_port][feed_q],
            frames: flows
                .iter()
                .map(|f| {
                    tcp_frame(
                        server_mac,
                        f.real_mac,
                        f.reply_src,
                        f.reply_dst,
                        FLAG_ACK | FLAG_PSH,
                        &PAYLOAD,
                    )
                })
                .collect(),
            next: 0,
        });
    }
    debug_assert!(lanes.iter().all(|l| l.frames[0].len() == FRAME_LEN));
    let per_poll = (BURST_SIZE * lanes.len()) as u64;
    let polls = args.packets.div_ceil(per_poll).max(1);
    let before = totals(&counters);
    let tally = measure(polls, &mut lanes, &all_tx, &pool, handed_over, poll_all)?;
    let after = totals(&counters);
    let elapsed_s = started.elapsed().as_secs_f64();
    drop(workers_loop);

    let delta = |f: fn(&PortTotals) -> u64, port: usize| f(&after[port]) - f(&before[port]);
    let forwarded_in = delta(|t| t.forwarded, client_port);
    let forwarded_out = delta(|t| t.forwarded, server_port);
    let forwarded: u64 = (0..n_ports).map(|p| delta(|t| t.forwarded, p)).sum();
    let drops = dropped(&after);
    let lb = format!("{:?}", svc.lb_kind);
    println!(
        "rvs-instr: {lb} ({}), direction {}, {} established flows, {workers} worker(s){}",
        args.config.display(),
        args.direction.name(),
        args.flows,
        match (workers, args.placement) {
            (1, _) => "",
            (_, Placement::Owner) => ", on their owner's queue",
            (_, Placement::Other) => ", on the other worker's queue (handed over)",
        }
    );
    println!(
        "set-up: {} flows opened (SYN{}, ACK)",
        args.flows,
        if sees_replies { ", SYN-ACK" } else { "" }
    );
    println!(
        "measured: {} polls, {} packets per poll ({} short polls)",
        tally.polls, per_poll, tally.short_polls
    );
    println!(
        "packets: fed {}, received {}, forwarded {} (client->servers {forwarded_in}, \
         servers->client {forwarded_out}), sent {}",
        tally.fed, tally.received, forwarded, tally.sent
    );
    println!(
        "drops: {}",
        if drops.is_empty() {
            "none".to_owned()
        } else {
            drops.join(", ")
        }
    );
    println!(
        "wall time: set-up {setup_s:.1} s, settled at {measure_start_s:.1} s, measured until \
         {elapsed_s:.1} s"
    );
    let mut failures = Vec::new();
    if !drops.is_empty() {
        failures.push("packets were dropped".to_owned());
    }
    if tally.short_polls != 0 {
        failures.push(format!("{} polls without full bursts", tally.short_polls));
    }
    let received_per_fed = if handed_over { 2 } else { 1 };
    if forwarded != tally.fed
        || tally.sent != tally.fed
        || tally.received != received_per_fed * tally.fed
    {
        failures.push(format!(
            "fed {}, received {}, forwarded {forwarded}, sent {}",
            tally.fed, tally.received, tally.sent
        ));
    }
    let expired: u64 = counters.iter().map(|c| c.connections_expired.get()).sum();
    if expired != 0 {
        failures.push(format!("{expired} connections expired"));
    }
    let handed: u64 = counters.iter().map(|c| c.handed_out.get()).sum();
    if handed_over && handed < tally.fed {
        failures.push(format!("{handed} packets handed over, {} fed", tally.fed));
    }
    if elapsed_s >= ESTABLISHED_TIMEOUT_S - 10.0 {
        // Not a failure of rvs, but the figure would include the timer wheel re-arming every
        // connection (their ESTABLISHED deadline falls due): fewer packets are needed.
        failures.push(format!(
            "the run took {elapsed_s:.0} s, close to the connections' ESTABLISHED deadlines \
             ({ESTABLISHED_TIMEOUT_S} s): use fewer --packets"
        ));
    }
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    println!(
        "RESULT mode={} direction={} flows={} polls={} packets={forwarded} in={forwarded_in} \
         out={forwarded_out}",
        lb.to_lowercase(),
        args.direction.name(),
        args.flows,
        tally.polls
    );
    Ok(())
}
