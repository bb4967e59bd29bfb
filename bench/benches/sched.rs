//! Pick cost of every scheduler with 10 and 1000 real servers, as one worker sees it: varied
//! weights, varied per-worker loads, a different client (source address and port) on every
//! pick and the VIP as destination.
//!
//! For the schedulers that read the connection counts (lc, wlc, sed, nq, lblc, lblcr, ovf)
//! each pick also binds one active connection to the chosen server and ends one on another
//! server (walked in turn), so that the loads keep moving as on a live worker; that
//! bookkeeping is two counter updates. The others never read the counts (no thresholds are
//! set, so no server is overloaded) and run the pick alone.
//!
//! `cargo bench -p bench --bench sched`

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dataplane::flow::{Endpoint, ForwardMode};
use dataplane::sched::{
    Candidates, DestLoad, Loads, MaglevTable, SchedFlags, Scheduler, SchedulerKind,
};
use dataplane::snapshot::{RealServer, Service};

const SIZES: [usize; 2] = [10, 1000];
/// Distinct clients cycled through (a power of two: the index is a mask).
const CLIENTS: usize = 4096;
/// The worker's clock at the start; it advances 1 ms every 1024 picks (~1M new flows/s).
const START_MS: u64 = 3_600_000;

/// splitmix64: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

/// `n` real servers, weights 1..=4 cycling: 203.0.113.11.. for small services, 10.1.x.y
/// beyond.
fn reals(n: usize) -> Vec<RealServer> {
    (0..n)
        .map(|i| {
            let addr = if n <= 200 {
                Ipv4Addr::new(203, 0, 113, 11 + i as u8)
            } else {
                Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8)
            };
            RealServer {
                addr: Endpoint::new(addr, 80),
                weight: 1 + (i % 4) as u32,
                port: 0,
                next_hop_mac: Some([0x02, 0, 0, 0, (i >> 8) as u8, i as u8]),
                upper_threshold: 0,
                lower_threshold: 0,
            }
        })
        .collect()
}

fn service(kind: SchedulerKind, reals: Vec<RealServer>) -> Service {
    let maglev = (kind == SchedulerKind::Mh).then(|| Arc::new(MaglevTable::for_reals(&reals)));
    Service {
        protocol: 6,
        vip: Endpoint::new(Ipv4Addr::new(198, 51, 100, 100), 80),
        mode: ForwardMode::Nat,
        scheduler: kind,
        flags: SchedFlags::default(),
        reals,
        local_addrs: Vec::new(),
        persistence: None,
        maglev,
        members: Vec::new(),
        sloppy_tcp: false,
        expire_nodest_conn: false,
    }
}

/// Active 0..100 and inactive 0..400 connections per server on this worker.
fn loads(n: usize, rng: &mut Rng) -> Vec<DestLoad> {
    (0..n)
        .map(|_| DestLoad {
            active: rng.below(100),
            inactive: rng.below(400),
            ..DestLoad::default()
        })
        .collect()
}

fn clients(rng: &mut Rng) -> Vec<Endpoint> {
    (0..CLIENTS)
        .map(|_| {
            let addr = Ipv4Addr::from(rng.next() as u32);
            let port = 1024 + rng.below(65536 - 1024) as u16;
            Endpoint::new(addr, port)
        })
        .collect()
}

/// Whether the algorithm's pick reads the active/inactive counts.
fn reads_counts(kind: SchedulerKind) -> bool {
    use SchedulerKind::*;
    matches!(kind, Lc | Wlc | Sed | Nq | Lblc | Lblcr | Ovf)
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for kind in SchedulerKind::ALL {
        for n in SIZES {
            let mut rng = Rng(0x5eed_0000 + n as u64);
            let svc = service(kind, reals(n));
            let mut state = kind.new_state(&svc, 0);
            let mut table = loads(n, &mut rng);
            let ids: Vec<u32> = (0..n as u32).collect();
            let clients = clients(&mut rng);
            let evolve = reads_counts(kind);
            let mut k = 0usize;
            let mut done = 0usize;
            group.bench_function(BenchmarkId::new(kind.name(), n), |b| {
                b.iter(|| {
                    k = k.wrapping_add(1);
                    let candidates = Candidates {
                        reals: &svc.reals,
                        loads: Loads::new(&table, &ids),
                        src: black_box(clients[k % CLIENTS]),
                        dst: svc.vip,
                        now_ms: START_MS + (k >> 10) as u64,
                    };
                    let picked = state.pick(&candidates);
                    if evolve {
                        if let Some(i) = picked {
                            table[ids[i] as usize].active += 1;
                        }
                        let end = &mut table[ids[done] as usize].active;
                        *end = end.saturating_sub(1);
                        done += 1;
                        if done == n {
                            done = 0;
                        }
                    }
                    picked
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);
