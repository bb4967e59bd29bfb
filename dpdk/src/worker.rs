//! The run-to-completion loop of one worker on one pinned core, in the shape of DPDK's l3fwd:
//! load the snapshot, receive a burst on each port, run each packet through the engine, buffer
//! what goes out per port, flush, expire a few connections. No allocation, lock, syscall or log
//! line in the loop; counters only.
//!
//! With several workers, a packet whose connection another worker owns (the engine says so:
//! `Verdict::HandOff`, see `steer`) goes to that worker on a single-producer, single-consumer
//! ring of that ordered pair, untouched; each worker takes what the others handed it in the
//! same turn. Nothing is shared but those rings: no table, no lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::{Burst, DpdkError, LcoreRegistration, Mbuf, MbufRing, RxQueue, TxQueue};
use dataplane::conn::Timeouts;
use dataplane::counters::{DropReason, PortCounters, WorkerCounters};
use dataplane::engine::{self, Answer, Verdict, WorkerExport, WorkerState};
use dataplane::flow::Endpoint;
use dataplane::snapshot::Snapshot;
use dataplane::sync::SyncRecord;

/// Timer-wheel entries a worker visits per loop: expiry is spread over bursts, never a scan.
const EXPIRE_BUDGET: usize = 64;

/// Slots of the ring to the kernel that only BGP and BFD may take: however the rest floods
/// it, they find room.
pub const KERNEL_RESERVED: usize = 128;

/// The queues and rings one worker owns, indexed like the config's ports.
#[derive(Debug)]
pub struct WorkerIo<'p> {
    pub rx: Vec<RxQueue<'p>>,
    pub tx: Vec<TxQueue<'p>>,
    /// Packets for the control thread (this worker is the ring's only producer).
    pub to_control: Option<&'p MbufRing>,
    /// Packets the control thread wants sent, one ring per port (this worker is the only
    /// consumer). Only one worker is given them.
    pub from_control: Option<&'p [MbufRing]>,
    /// Packets for the kernel's interfaces (this worker is the ring's only producer).
    pub to_kernel: Option<&'p MbufRing>,
    /// Packets the kernel sends, one ring per port (this worker is the only consumer). Only
    /// one worker is given them.
    pub from_kernel: Option<&'p [MbufRing]>,
    /// To each other worker, by its index, the ring this worker hands its packets on
    /// (`None` for itself; empty with one worker). This worker is each ring's only producer.
    pub handoff_out: Vec<Option<&'p MbufRing>>,
    /// The rings the other workers hand this one packets on; it is their only consumer.
    pub handoff_in: Vec<&'p MbufRing>,
    /// Connection sync: this worker's connections for the backups (to the control thread),
    /// and the connections a master synced that this worker owns (from it). Bounded; a
    /// worker never waits on them.
    pub sync_out: Option<SyncSender<SyncRecord>>,
    pub sync_in: Option<Receiver<SyncRecord>>,
    /// The control thread's questions (rvsadm, metrics, rates) and where the answers go.
    /// Looked at once per turn; answered in the same turn.
    pub exports: Option<(Receiver<ExportRequest>, SyncSender<WorkerExport>)>,
}

/// `ipvsadm -Z`: whose totals start again from zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zero {
    All,
    /// One service's servers: (protocol, VIP).
    Service(u8, Endpoint),
}

/// What the control thread asks a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub id: u64,
    /// List up to this many connections and templates (`rvsadm -c`).
    pub conns: Option<usize>,
    /// Zero these totals first.
    pub zero: Option<Zero>,
}

/// Synced connections a worker installs per turn at most.
const SYNC_IN_BUDGET: usize = 256;

/// What a worker is, besides its queues.
#[derive(Debug, Clone)]
pub struct WorkerSetup {
    pub core: usize,
    /// This worker's index and the number of workers (FULLNAT port shares, scheduler offsets).
    pub index: usize,
    pub workers: usize,
    /// Connection-table capacity of this worker.
    pub connections: usize,
}

/// Pins the calling thread, registers it with EAL, builds its state on its own core (so the
/// connection table's memory is local to it) and polls until `stop` is set.
pub fn run_pinned(
    setup: &WorkerSetup,
    io: WorkerIo<'_>,
    snapshots: &ArcSwap<Snapshot>,
    counters: &WorkerCounters,
    stop: &AtomicBool,
) -> Result<(), DpdkError> {
    let _lcore = LcoreRegistration::pin_and_register(setup.core)?;
    // Timeouts come with the snapshot (`WorkerState::sync`).
    let mut state = WorkerState::new(
        setup.index,
        setup.workers,
        setup.connections,
        Timeouts::default(),
    );
    run(io, snapshots, &mut state, counters, stop);
    Ok(())
}

/// The loop itself, on whatever thread calls it.
pub fn run(
    io: WorkerIo<'_>,
    snapshots: &ArcSwap<Snapshot>,
    state: &mut WorkerState,
    counters: &WorkerCounters,
    stop: &AtomicBool,
) {
    let mut worker = Worker::new(io, counters);
    state.set_wall_clock_origin(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    );
    counters
        .bytes_per_connection
        .set(state.conns.bytes_per_connection() as u64);
    while !stop.load(Ordering::Relaxed) {
        if worker.poll(snapshots, state, counters) == 0 {
            std::hint::spin_loop();
        }
    }
}

/// One worker's queues and the bursts it reuses: `poll` is one turn of the loop.
pub struct Worker<'p> {
    io: WorkerIo<'p>,
    start: Instant,
    rx: Burst,
    pending: Vec<Burst>,
    injected: Burst,
    /// Packets for each other worker, sent on its ring a burst at a time.
    handing: Vec<Burst>,
    /// DPDK port id -> the port's index (a packet handed in carries only the id).
    port_index: Vec<usize>,
    /// The current burst, parsed once (`engine::stage`).
    staged: engine::Staged,
}

impl<'p> Worker<'p> {
    pub fn new(io: WorkerIo<'p>, counters: &WorkerCounters) -> Self {
        assert_eq!(io.rx.len(), io.tx.len(), "one RX and one TX queue per port");
        assert_eq!(
            io.rx.len(),
            counters.ports.len(),
            "one counter block per port"
        );
        let pending = io.tx.iter().map(|_| Burst::new()).collect();
        let ids: Vec<u16> = io.rx.iter().map(RxQueue::port_id).collect();
        let mut port_index = vec![usize::MAX; ids.iter().max().map_or(0, |m| usize::from(*m) + 1)];
        for (index, id) in ids.iter().enumerate() {
            port_index[usize::from(*id)] = index;
        }
        let handing = io.handoff_out.iter().map(|_| Burst::new()).collect();
        Worker {
            io,
            start: Instant::now(),
            rx: Burst::new(),
            pending,
            injected: Burst::new(),
            handing,
            port_index,
            staged: engine::Staged::default(),
        }
    }

    /// One turn: load the snapshot, a burst from each port through the engine, the packets
    /// other workers handed over, flush, expire a few connections. Returns the packets
    /// received and handed in. Never inlined, so that a profiler (`scripts/instructions.sh`)
    /// can count exactly this.
    #[inline(never)]
    pub fn poll(
        &mut self,
        snapshots: &ArcSwap<Snapshot>,
        state: &mut WorkerState,
        counters: &WorkerCounters,
    ) -> usize {
        let Worker {
            io,
            start,
            rx,
            pending,
            injected,
            handing,
            port_index,
            staged,
        } = self;
        let snapshot = snapshots.load();
        let now_ms = start.elapsed().as_millis() as u64;
        state.sync(&snapshot);
        let mut received = 0;
        for port in 0..io.rx.len() {
            let n = io.rx[port].rx_burst(rx);
            if n == 0 {
                continue;
            }
            received += n;
            engine::stage(rx.iter(), port, &snapshot, state, staged);
            let port_counters = &counters.ports[port];
            let mut bytes = 0u64;
            for (i, mut mbuf) in rx.drain().enumerate() {
                bytes += u64::from(mbuf.pkt_len());
                if mbuf.segments() != 1 {
                    port_counters.drop(DropReason::MultiSegment);
                    continue;
                }
                let verdict = engine::process_staged(
                    &mut mbuf,
                    staged.get(i),
                    port,
                    &snapshot,
                    state,
                    now_ms,
                    true,
                );
                dispatch(
                    io, pending, handing, port_index, verdict, mbuf, port, counters,
                );
            }
            port_counters.rx_packets.add(n as u64);
            port_counters.rx_bytes.add(bytes);
        }
        for (to, burst) in handing.iter_mut().enumerate() {
            if !burst.is_empty() {
                hand_over(io, to, burst, port_index, counters);
            }
        }
        // A peer hands over at most a burst per port per turn: take as many from each ring,
        // so that no ring grows while both keep pace.
        for from in 0..io.handoff_in.len() {
            for _ in 0..io.rx.len() {
                let n = io.handoff_in[from].dequeue_burst(injected);
                if n == 0 {
                    break;
                }
                received += n;
                counters.handed_in.add(n as u64);
                let ports = io.tx.len();
                let index_of = |mbuf: &Mbuf| {
                    port_index
                        .get(usize::from(mbuf.port()))
                        .copied()
                        .filter(|p| *p < ports)
                };
                engine::stage_each(injected.iter(), index_of, &snapshot, state, staged);
                for (i, mut mbuf) in injected.drain().enumerate() {
                    // Only this worker's ports hand packets over: every id has its index.
                    let Some(port) = index_of(&mbuf) else {
                        continue;
                    };
                    let verdict = engine::process_staged(
                        &mut mbuf,
                        staged.get(i),
                        port,
                        &snapshot,
                        state,
                        now_ms,
                        false,
                    );
                    dispatch(
                        io, pending, handing, port_index, verdict, mbuf, port, counters,
                    );
                }
            }
        }
        for rings in [io.from_control, io.from_kernel].into_iter().flatten() {
            for ((ring, tx_queue), port_counters) in
                rings.iter().zip(&mut io.tx).zip(counters.ports.iter())
            {
                if ring.dequeue_burst(injected) > 0 {
                    flush(tx_queue, injected, port_counters);
                }
            }
        }
        for ((tx_queue, out), port_counters) in io
            .tx
            .iter_mut()
            .zip(pending.iter_mut())
            .zip(counters.ports.iter())
        {
            if !out.is_empty() {
                flush(tx_queue, out, port_counters);
            }
        }
        if let Some(to_control) = &io.sync_out {
            for record in state.take_sync_records() {
                match to_control.try_send(record) {
                    Ok(()) => counters.sync_sent.add(1),
                    Err(_) => counters.sync_lost.add(1),
                }
            }
            let lost = state.take_sync_records_lost();
            if lost > 0 {
                counters.sync_lost.add(lost);
            }
        }
        if let Some(from_control) = &io.sync_in {
            for _ in 0..SYNC_IN_BUDGET {
                let Ok(record) = from_control.try_recv() else {
                    break;
                };
                match state.install_synced(&snapshot, &record, now_ms) {
                    Ok(true) => counters.synced_in.add(1),
                    Ok(false) => {}
                    Err(_) => counters.sync_refused.add(1),
                }
            }
        }
        if let Some((questions, answers)) = &io.exports {
            while let Ok(q) = questions.try_recv() {
                match &q.zero {
                    Some(Zero::All) => state.dests.zero(|_, _| true),
                    Some(Zero::Service(protocol, vip)) => {
                        state.dests.zero(|p, v| (p, v) == (*protocol, *vip))
                    }
                    None => {}
                }
                // The control thread waits for it; if it has gone, nobody reads it.
                let _ = answers.try_send(state.export(q.id, q.conns, now_ms));
            }
        }
        let expired = state.expire(now_ms, EXPIRE_BUDGET);
        if expired > 0 {
            counters.connections_expired.add(expired as u64);
        }
        counters.connections.set(state.conns.len() as u64);
        counters.connections_evicted.set(state.conns.evictions());
        counters.fast_path.set(state.fast_path_packets());
        counters.connections_sloppy.set(state.sloppy_created());
        counters
            .connections_expired_nodest
            .set(state.nodest_expired());
        received
    }
}

/// Carries out the engine's verdict on `mbuf`, which arrived on port `port` (or was handed in
/// for it): counted on that port, queued for its way out, handed over or dropped. Inlined in
/// both loops: out of line, its call cost 40 instructions a packet.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dispatch(
    io: &mut WorkerIo<'_>,
    pending: &mut [Burst],
    handing: &mut [Burst],
    port_index: &[usize],
    verdict: Verdict,
    mbuf: Mbuf,
    port: usize,
    counters: &WorkerCounters,
) {
    let port_counters = &counters.ports[port];
    let out = match verdict {
        Verdict::Reply(answer) => {
            match answer {
                Answer::Arp => port_counters.arp_replies.add(1),
                Answer::IcmpEcho => port_counters.icmp_echo_replies.add(1),
                Answer::TimeExceeded | Answer::FragNeeded => port_counters.icmp_errors_sent.add(1),
                Answer::Reset => port_counters.resets_sent.add(1),
            }
            port
        }
        Verdict::Forward { port: out, created } => {
            port_counters.forwarded.add(1);
            if created {
                port_counters.connections_created.add(1);
            }
            out
        }
        Verdict::SlowPath => {
            let mut mbuf = mbuf;
            mbuf.set_port(io.rx[port].port_id());
            match io.to_control.map(|ring| ring.enqueue(mbuf)) {
                Some(Ok(())) => port_counters.to_control.add(1),
                _ => port_counters.drop(DropReason::SlowPathFull),
            }
            return;
        }
        Verdict::ToKernel { urgent } => {
            let mut mbuf = mbuf;
            mbuf.set_port(io.rx[port].port_id());
            let taken = io.to_kernel.is_some_and(|ring| {
                (urgent || ring.len() + KERNEL_RESERVED < ring.capacity())
                    && ring.enqueue(mbuf).is_ok()
            });
            if taken {
                port_counters.to_kernel.add(1);
            } else {
                port_counters.drop(DropReason::KernelFull);
            }
            return;
        }
        Verdict::HandOff(owner) => {
            // The owner learns the port from the mbuf: say it, whatever the driver did.
            let mut mbuf = mbuf;
            mbuf.set_port(io.rx[port].port_id());
            match handing.get_mut(owner) {
                Some(burst) => {
                    if let Err(mbuf) = burst.push(mbuf) {
                        hand_over(io, owner, burst, port_index, counters);
                        // An empty burst always has room.
                        let _ = burst.push(mbuf);
                    }
                }
                // No ring to that worker: a configuration that cannot happen in rvsd.
                None => port_counters.drop(DropReason::HandoffFull),
            }
            return;
        }
        Verdict::Drop(reason) => {
            port_counters.drop(reason);
            return;
        }
    };
    let burst = &mut pending[out];
    if let Err(mbuf) = burst.push(mbuf) {
        flush(&mut io.tx[out], burst, &counters.ports[out]);
        // An empty burst always has room.
        let _ = burst.push(mbuf);
    }
}

/// Puts `burst` on the ring to worker `to`; what does not fit is freed and counted as
/// `handoff_full` on the port it came in on (`port_index` maps its id; without it, the first
/// port).
#[inline]
fn hand_over(
    io: &WorkerIo<'_>,
    to: usize,
    burst: &mut Burst,
    port_index: &[usize],
    counters: &WorkerCounters,
) {
    let sent = match io.handoff_out.get(to).copied().flatten() {
        Some(ring) => ring.enqueue_burst(burst),
        None => 0,
    };
    counters.handed_out.add(sent as u64);
    for mbuf in burst.drain() {
        let port = port_index
            .get(usize::from(mbuf.port()))
            .copied()
            .filter(|p| *p < counters.ports.len())
            .unwrap_or(0);
        counters.ports[port].drop(DropReason::HandoffFull);
    }
}

/// Sends what the device takes; what it refuses is freed and counted as `tx_full`.
#[inline]
fn flush(queue: &mut TxQueue<'_>, burst: &mut Burst, counters: &PortCounters) {
    let queued = burst.len() as u64;
    let queued_bytes: u64 = burst.iter().map(|m| u64::from(m.pkt_len())).sum();
    queue.tx_burst(burst);
    let refused = burst.len() as u64;
    let refused_bytes: u64 = burst.iter().map(|m| u64::from(m.pkt_len())).sum();
    counters.tx_packets.add(queued - refused);
    counters.tx_bytes.add(queued_bytes - refused_bytes);
    if refused != 0 {
        counters.drops[DropReason::TxFull as usize].add(refused);
        burst.clear();
    }
}
