//! The run-to-completion loop of one worker on one pinned core, in the shape of DPDK's l3fwd:
//! receive a burst on each port, run each packet through the engine, buffer what goes out per
//! port, flush. No allocation, lock, syscall or log line in the loop; counters only.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::counters::DropReason;
use crate::counters::{PortCounters, WorkerCounters};
use crate::dpdk::{Burst, DpdkError, LcoreRegistration, RxQueue, TxQueue};
use crate::engine::{self, Answer, Snapshot, Verdict};

/// The queues one worker owns: RX and TX queue of every port, indexed like the config's ports.
#[derive(Debug)]
pub struct WorkerQueues<'p> {
    pub rx: Vec<RxQueue<'p>>,
    pub tx: Vec<TxQueue<'p>>,
}

/// Pins the calling thread to `core`, registers it with EAL and polls until `stop` is set.
pub fn run_pinned(
    core: usize,
    queues: WorkerQueues<'_>,
    snapshot: &Snapshot,
    counters: &WorkerCounters,
    stop: &AtomicBool,
) -> Result<(), DpdkError> {
    let _lcore = LcoreRegistration::pin_and_register(core)?;
    run(queues, snapshot, counters, stop);
    Ok(())
}

/// The loop itself, on whatever thread calls it.
pub fn run(
    mut queues: WorkerQueues<'_>,
    snapshot: &Snapshot,
    counters: &WorkerCounters,
    stop: &AtomicBool,
) {
    assert_eq!(
        queues.rx.len(),
        queues.tx.len(),
        "one RX and one TX queue per port"
    );
    assert_eq!(
        queues.rx.len(),
        counters.ports.len(),
        "one counter block per port"
    );
    let mut rx = Burst::new();
    let mut pending: Vec<Burst> = queues.tx.iter().map(|_| Burst::new()).collect();

    while !stop.load(Ordering::Relaxed) {
        let mut received = 0;
        let lanes = queues
            .rx
            .iter_mut()
            .zip(&mut queues.tx)
            .zip(pending.iter_mut().zip(counters.ports.iter()));
        for (port, ((rx_queue, tx_queue), (out, port_counters))) in lanes.enumerate() {
            let n = rx_queue.rx_burst(&mut rx);
            if n == 0 {
                continue;
            }
            received += n;
            let mut bytes = 0u64;
            for mut mbuf in rx.drain() {
                bytes += u64::from(mbuf.pkt_len());
                if mbuf.segments() != 1 {
                    port_counters.drop(DropReason::MultiSegment);
                    continue;
                }
                match engine::process(mbuf.data_mut(), port, snapshot) {
                    Verdict::Reply(answer) => {
                        match answer {
                            Answer::Arp => port_counters.arp_replies.add(1),
                            Answer::IcmpEcho => port_counters.icmp_echo_replies.add(1),
                        }
                        if let Err(mbuf) = out.push(mbuf) {
                            flush(tx_queue, out, port_counters);
                            // An empty burst always has room.
                            let _ = out.push(mbuf);
                        }
                    }
                    Verdict::Drop(reason) => port_counters.drop(reason),
                }
            }
            port_counters.rx_packets.add(n as u64);
            port_counters.rx_bytes.add(bytes);
        }
        for ((tx_queue, out), port_counters) in queues
            .tx
            .iter_mut()
            .zip(&mut pending)
            .zip(counters.ports.iter())
        {
            if !out.is_empty() {
                flush(tx_queue, out, port_counters);
            }
        }
        if received == 0 {
            std::hint::spin_loop();
        }
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
