//! The sans-IO engine (`dataplane::engine::process`) on one worker, per forwarding mode:
//!
//! - `established/<mode>/<n>`: ns per packet of an established TCP connection (a 60-byte ACK
//!   frame with 6 bytes of payload, client -> VIP) among `n` = 1k or 1M connections, the
//!   connections visited in a random order;
//! - `established_reply/<mode>/<n>` (NAT, FULLNAT): the same for the real server's replies;
//! - `new_connection/<mode>/{fresh,1M}`: ns per SYN that creates a connection (parse,
//!   lookup miss, service lookup, `rr` pick, FULLNAT local port, rewrite, insert), into a
//!   fresh table (`NEW_BATCH` SYNs per table) or into the 1M-sized one while it fills from
//!   768k to its capacity of 1.25M;
//! - `frame_prep/<n>`: what every timed packet above pays besides the engine (see below), to
//!   subtract.
//!
//! The engine rewrites the frame in place, so each timed packet first copies a pristine
//! template (60 bytes) into one working buffer (headroom for TUN's outer header) and patches
//! the flow's addresses and ports into it with incremental checksum updates; the flows come
//! from a precomputed order array read sequentially (for 1M: a shuffled permutation of all
//! connections, so every packet finds its connection cold; for 1k: 64 shuffled rounds). Only
//! one frame buffer exists, as hot as a NIC's freshly DMA'd mbuf with DDIO.
//!
//! Connections are set up untimed: SYN, the real server's SYN-ACK (NAT, FULLNAT), ACK, all
//! through `process` at a fixed clock, each checked to be forwarded. The table holds
//! `n + n/4`. For new connections only the SYNs are timed, not building the tables.
//!
//! FULLNAT uses 17 local addresses: each gives the worker 64512 ports per real server, and
//! 1M connections over 3 real servers need at least 6. (Running this benchmark found that the
//! worker stepped address and port together and so reached only lcm(addresses, 64512) pairs;
//! fixed in the engine.)
//!
//! `cargo bench -p bench --bench engine`

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bench::frames::tcp_frame;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dataplane::conn::Timeouts;
use dataplane::engine::{prefetch, process, process_staged, stage, Staged, Verdict, WorkerState};
use dataplane::flow::{Endpoint, ForwardMode};
use dataplane::frame::{Frame, VecFrame};
use dataplane::sched::SchedulerKind;
use dataplane::snapshot::{PortAddrs, RealServer, Route, Service, Snapshot};
use dataplane::wire::checksum;
use dataplane::wire::tcp::{FLAG_ACK, FLAG_SYN};
use dpdk::BURST_SIZE;

const MAC0: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
const MAC1: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 2];
const CLIENT_MAC: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 1];
const OWN0: [u8; 4] = [198, 51, 100, 1];
const OWN1: [u8; 4] = [203, 0, 113, 1];
const VIP: [u8; 4] = [198, 51, 100, 100];
/// FULLNAT local addresses 203.0.113.201..=217.
const LOCAL_ADDRS: u8 = 17;
const REALS: [[u8; 4]; 3] = [[203, 0, 113, 11], [203, 0, 113, 12], [203, 0, 113, 13]];
const REAL_PORT: u16 = 8080;
const PROTO_TCP: u8 = 6;
/// 6 bytes of payload: a 60-byte frame, Ethernet's minimum without FCS.
const PAYLOAD: [u8; 6] = *b"bench!";
/// The worker's clock, fixed: nothing expires during a run.
const NOW_MS: u64 = 3_600_000;
const SIZES: [(usize, &str); 2] = [(1 << 10, "1k"), (1 << 20, "1M")];
/// Entries of the flow-order array at least (the 1M one holds every flow once).
const ORDER_MIN: usize = 1 << 16;
/// SYNs per fresh table in `new_connection/<mode>/fresh`.
const NEW_BATCH: usize = 1 << 16;
/// Connections in the 1M-sized table before `new_connection/<mode>/1M` fills it up (from
/// 768Ki to 1.25Mi connections, 1Mi on average).
const NEW_PRELOAD: usize = 3 << 18;
const HEADROOM: usize = 128;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Nat,
    FullNat,
    Dr,
    Tun,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Nat, Mode::FullNat, Mode::Dr, Mode::Tun];

    fn name(self) -> &'static str {
        match self {
            Mode::Nat => "nat",
            Mode::FullNat => "fullnat",
            Mode::Dr => "dr",
            Mode::Tun => "tun",
        }
    }

    fn forward_mode(self) -> ForwardMode {
        match self {
            Mode::Nat => ForwardMode::Nat,
            Mode::FullNat => ForwardMode::FullNat,
            Mode::Dr => ForwardMode::Dr,
            Mode::Tun => ForwardMode::Tun,
        }
    }

    /// The service's VIP port.
    fn vport(self) -> u16 {
        match self {
            Mode::Nat => 80,
            Mode::FullNat => 81,
            Mode::Dr => 82,
            Mode::Tun => 83,
        }
    }

    fn vip(self) -> Endpoint {
        Endpoint::new(VIP.into(), self.vport())
    }

    fn sees_replies(self) -> bool {
        self.forward_mode().sees_replies()
    }
}

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

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// One working packet buffer with an mbuf's headroom, refilled from a template per packet.
fn work_frame() -> VecFrame {
    VecFrame::with_room(&[], HEADROOM, 512 - HEADROOM)
}

/// Copies `template` into the working buffer (the per-packet copy `frame_prep` measures).
#[inline(always)]
fn load(frame: &mut VecFrame, template: &[u8]) {
    let fits = frame.refill(HEADROOM, template);
    debug_assert!(fits);
}

/// Fills the burst with the template addressed from `originals[k..]` (wrapping): the next
/// `k`.
fn load_burst(
    frames: &mut [VecFrame],
    template: &[u8],
    originals: &[Endpoint],
    mut k: usize,
    vip: Endpoint,
) -> usize {
    for frame in frames.iter_mut() {
        load(frame, template);
        patch(frame.bytes_mut(), originals[k], vip);
        k += 1;
        if k == originals.len() {
            k = 0;
        }
    }
    k
}

fn real_mac(i: usize) -> [u8; 6] {
    [0x02, 0x55, 0, 0, 0, 11 + i as u8]
}

fn local_addrs() -> Vec<Ipv4Addr> {
    (0..LOCAL_ADDRS)
        .map(|i| Ipv4Addr::new(203, 0, 113, 201 + i))
        .collect()
}

/// As the engine's tests: port 0 (clients, VIP) and port 1 (real servers, local addresses),
/// both subnets connected, the three real servers' MACs resolved, one `rr` service per mode
/// on VIP ports 80 (NAT), 81 (FULLNAT), 82 (DR), 83 (TUN).
fn snapshot() -> Snapshot {
    let mut port1 = vec![OWN1.into()];
    port1.extend(local_addrs());
    let mut s = Snapshot::with_ports(vec![
        PortAddrs {
            mac: MAC0,
            ipv4: vec![OWN0.into(), VIP.into()],
            primary: Some(OWN0.into()),
            mtu: 1500,
            kernel: vec![],
        },
        PortAddrs {
            mac: MAC1,
            ipv4: port1,
            primary: Some(OWN1.into()),
            mtu: 1500,
            kernel: vec![],
        },
    ]);
    s.generation = 1;
    s.add_route(Route {
        network: [198, 51, 100, 0].into(),
        prefix_len: 24,
        port: 0,
        gateway: None,
    });
    s.add_route(Route {
        network: [203, 0, 113, 0].into(),
        prefix_len: 24,
        port: 1,
        gateway: None,
    });
    for (i, r) in REALS.iter().enumerate() {
        s.neighbors.insert((1, (*r).into()), real_mac(i));
    }
    for mode in Mode::ALL {
        let fm = mode.forward_mode();
        let port = if fm == ForwardMode::Dr || fm == ForwardMode::Tun {
            mode.vport()
        } else {
            REAL_PORT
        };
        s.add_service(Service {
            protocol: PROTO_TCP,
            vip: mode.vip(),
            mode: fm,
            scheduler: SchedulerKind::Rr,
            flags: Default::default(),
            persistence: None,
            maglev: None,
            members: Vec::new(),
            sloppy_tcp: false,
            expire_nodest_conn: false,
            reals: REALS
                .iter()
                .map(|r| RealServer {
                    addr: Endpoint::new((*r).into(), port),
                    weight: 1,
                    port: 1,
                    next_hop_mac: None,
                    upper_threshold: 0,
                    lower_threshold: 0,
                })
                .collect(),
            local_addrs: if fm == ForwardMode::FullNat {
                local_addrs()
            } else {
                Vec::new()
            },
        });
    }
    s
}

/// Client `i`: 10.0.0.0/8 (64 ports per address).
#[inline(always)]
fn client(i: usize) -> Endpoint {
    Endpoint::new(
        Ipv4Addr::from(0x0a00_0001 + (i >> 6) as u32),
        1024 + (i & 63) as u16,
    )
}

fn checksums_ok(f: &[u8]) -> bool {
    let src = Ipv4Addr::from(read32(f, 26));
    let dst = Ipv4Addr::from(read32(f, 30));
    let l4 = &f[34..];
    let pseudo = checksum::pseudo_header_sum(src, dst, PROTO_TCP, l4.len() as u16);
    checksum::verify(&f[14..34]) && checksum::combine(pseudo, checksum::sum(l4)) == 0xffff
}

#[inline(always)]
fn read32(f: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]])
}

#[inline(always)]
fn read16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

/// Rewrites a frame from `build` to `src` -> `dst`, updating both checksums incrementally.
#[inline(always)]
fn patch(f: &mut [u8], src: Endpoint, dst: Endpoint) {
    let mut ip_c = read16(f, 24);
    let mut tcp_c = read16(f, 50);
    for (at, new) in [(26, u32::from(src.addr)), (30, u32::from(dst.addr))] {
        let old = read32(f, at);
        if old != new {
            ip_c = checksum::update_u32(ip_c, old, new);
            tcp_c = checksum::update_u32(tcp_c, old, new);
            f[at..at + 4].copy_from_slice(&new.to_be_bytes());
        }
    }
    for (at, new) in [(34, src.port), (36, dst.port)] {
        let old = read16(f, at);
        if old != new {
            tcp_c = checksum::update_word(tcp_c, old, new);
            f[at..at + 2].copy_from_slice(&new.to_be_bytes());
        }
    }
    f[24..26].copy_from_slice(&ip_c.to_be_bytes());
    f[50..52].copy_from_slice(&tcp_c.to_be_bytes());
}

/// Source and destination of a rewritten (not encapsulated) frame.
fn endpoints(f: &[u8]) -> (Endpoint, Endpoint) {
    (
        Endpoint::new(read32(f, 26).into(), read16(f, 34)),
        Endpoint::new(read32(f, 30).into(), read16(f, 36)),
    )
}

/// Client data packet to `mode`'s VIP.
fn client_template(mode: Mode, flags: u8, payload: &[u8]) -> Vec<u8> {
    tcp_frame(MAC0, CLIENT_MAC, client(0), mode.vip(), flags, payload)
}

/// Real server's packet to rvs (port 1).
fn real_template(flags: u8, payload: &[u8]) -> Vec<u8> {
    tcp_frame(
        MAC1,
        real_mac(0),
        Endpoint::new(REALS[0].into(), REAL_PORT),
        client(0),
        flags,
        payload,
    )
}

/// Runs one packet; panics unless it is forwarded as expected (set-up only).
fn must_forward(
    frame: &mut VecFrame,
    in_port: usize,
    snap: &Snapshot,
    state: &mut WorkerState,
    created: bool,
    what: &str,
) {
    assert!(checksums_ok(frame.bytes()), "{what}: bad checksum in input");
    match process(frame, in_port, snap, state, NOW_MS) {
        Verdict::Forward { created: c, .. } if c == created => {}
        v => panic!("{what}: {v:?}"),
    }
}

/// One mode's table with `n` established connections, and what its replies look like.
struct Established {
    state: WorkerState,
    /// Per flow (NAT, FULLNAT): the reply's source (real server) and destination (client or
    /// local endpoint).
    replies: Vec<(Endpoint, Endpoint)>,
}

fn establish(mode: Mode, n: usize, snap: &Snapshot) -> Established {
    let mut state = WorkerState::new(0, 1, n + n / 4, Timeouts::ipvs_defaults());
    let syn = client_template(mode, FLAG_SYN, &[]);
    let ack = client_template(mode, FLAG_ACK, &PAYLOAD);
    let syn_ack = real_template(FLAG_SYN | FLAG_ACK, &[]);
    let mut replies = Vec::with_capacity(if mode.sees_replies() { n } else { 0 });
    let mut frame = work_frame();
    for i in 0..n {
        load(&mut frame, &syn);
        patch(frame.bytes_mut(), client(i), mode.vip());
        must_forward(&mut frame, 0, snap, &mut state, true, "SYN");
        if mode.sees_replies() {
            let (local, real) = endpoints(frame.bytes());
            replies.push((real, local));
            load(&mut frame, &syn_ack);
            patch(frame.bytes_mut(), real, local);
            must_forward(&mut frame, 1, snap, &mut state, false, "SYN-ACK");
        }
        load(&mut frame, &ack);
        patch(frame.bytes_mut(), client(i), mode.vip());
        must_forward(&mut frame, 0, snap, &mut state, false, "ACK");
    }
    assert_eq!(state.conns.len(), n);
    Established { state, replies }
}

/// Flow indices in a random order: a permutation of `0..n` repeated to `ORDER_MIN` entries.
fn order(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng(seed);
    let mut v: Vec<usize> = (0..ORDER_MIN.max(n)).map(|j| j % n).collect();
    rng.shuffle(&mut v);
    v
}

fn established(c: &mut Criterion) {
    let snap = snapshot();
    for (n, label) in SIZES {
        let flows = order(n, 0x5eed_0000 + n as u64);
        let originals: Vec<Endpoint> = flows.iter().map(|&i| client(i)).collect();

        let mut prep = c.benchmark_group("frame_prep");
        let template = client_template(Mode::Nat, FLAG_ACK, &PAYLOAD);
        let mut frame = work_frame();
        let mut k = 0usize;
        prep.bench_function(label, |b| {
            b.iter(|| {
                let src = originals[k];
                k += 1;
                if k == originals.len() {
                    k = 0;
                }
                load(&mut frame, &template);
                patch(frame.bytes_mut(), src, Mode::Nat.vip());
                black_box(&mut frame);
            })
        });
        prep.finish();

        for mode in Mode::ALL {
            let Established { mut state, replies } = establish(mode, n, &snap);
            if n == SIZES[1].0 {
                eprintln!(
                    "{} {label}: {} connections, {} bytes per connection (capacity {})",
                    mode.name(),
                    state.conns.len(),
                    state.conns.bytes_per_connection(),
                    state.conns.capacity(),
                );
            }
            let vip = mode.vip();
            let template = client_template(mode, FLAG_ACK, &PAYLOAD);
            let run = |frame: &mut VecFrame, state: &mut WorkerState, src: Endpoint| {
                load(frame, &template);
                patch(frame.bytes_mut(), src, vip);
                process(frame, 0, &snap, state, NOW_MS)
            };
            for &src in originals.iter().take(1000) {
                let v = run(&mut frame, &mut state, src);
                assert!(
                    matches!(v, Verdict::Forward { created: false, .. }),
                    "{v:?}"
                );
            }
            let mut group = c.benchmark_group("established");
            let mut k = 0usize;
            group.bench_function(BenchmarkId::new(mode.name(), label), |b| {
                b.iter(|| {
                    let src = originals[k];
                    k += 1;
                    if k == originals.len() {
                        k = 0;
                    }
                    run(&mut frame, &mut state, src)
                })
            });
            group.finish();

            // The worker's way: the burst staged (parsed and hashed once, buckets then slots
            // prefetched), then processed by the fast path. Beside it, the full path as the
            // worker ran it before the fast path: a prefetch pass that parses every packet
            // again, then `process`. Times are per burst of 32.
            let mut frames: Vec<VecFrame> = (0..BURST_SIZE).map(|_| work_frame()).collect();
            let mut staged = Staged::default();
            let mut group = c.benchmark_group("burst32_staged");
            let mut k = 0usize;
            group.bench_function(BenchmarkId::new(mode.name(), label), |b| {
                b.iter(|| {
                    k = load_burst(&mut frames, &template, &originals, k, vip);
                    stage(frames.iter(), 0, &snap, &state, &mut staged);
                    for (i, frame) in frames.iter_mut().enumerate() {
                        black_box(process_staged(
                            frame,
                            staged.get(i),
                            0,
                            &snap,
                            &mut state,
                            NOW_MS,
                            true,
                        ));
                    }
                })
            });
            group.finish();
            let before = state.fast_path_packets();
            load_burst(&mut frames, &template, &originals, 0, vip);
            stage(frames.iter(), 0, &snap, &state, &mut staged);
            for (i, frame) in frames.iter_mut().enumerate() {
                process_staged(frame, staged.get(i), 0, &snap, &mut state, NOW_MS, true);
            }
            assert_eq!(
                state.fast_path_packets(),
                before + BURST_SIZE as u64,
                "the staged burst took the fast path"
            );
            for (group_name, prefetching) in [
                ("burst32_full_path_prefetch", true),
                ("burst32_full_path", false),
            ] {
                let mut group = c.benchmark_group(group_name);
                let mut k = 0usize;
                group.bench_function(BenchmarkId::new(mode.name(), label), |b| {
                    b.iter(|| {
                        k = load_burst(&mut frames, &template, &originals, k, vip);
                        if prefetching {
                            prefetch(frames.iter(), &state);
                        }
                        for frame in frames.iter_mut() {
                            black_box(process(frame, 0, &snap, &mut state, NOW_MS));
                        }
                    })
                });
                group.finish();
            }

            if mode.sees_replies() {
                let pairs: Vec<(Endpoint, Endpoint)> = flows.iter().map(|&i| replies[i]).collect();
                drop(replies);
                let template = real_template(FLAG_ACK, &PAYLOAD);
                let run = |frame: &mut VecFrame,
                           state: &mut WorkerState,
                           (src, dst): (Endpoint, Endpoint)| {
                    load(frame, &template);
                    patch(frame.bytes_mut(), src, dst);
                    process(frame, 1, &snap, state, NOW_MS)
                };
                for &pair in pairs.iter().take(1000) {
                    let v = run(&mut frame, &mut state, pair);
                    assert!(
                        matches!(
                            v,
                            Verdict::Forward {
                                created: false,
                                port: 0
                            }
                        ),
                        "{v:?}"
                    );
                }
                let mut group = c.benchmark_group("established_reply");
                let mut k = 0usize;
                group.bench_function(BenchmarkId::new(mode.name(), label), |b| {
                    b.iter(|| {
                        let pair = pairs[k];
                        k += 1;
                        if k == pairs.len() {
                            k = 0;
                        }
                        run(&mut frame, &mut state, pair)
                    })
                });
                group.finish();
            }
        }
    }
}

/// SYNs from clients `first..first + count`, each of which must create a connection; the
/// time they took.
fn syns(
    frame: &mut VecFrame,
    syn: &[u8],
    vip: Endpoint,
    snap: &Snapshot,
    state: &mut WorkerState,
    first: usize,
    count: usize,
) -> Duration {
    let mut created = 0usize;
    let start = Instant::now();
    for i in first..first + count {
        load(frame, syn);
        patch(frame.bytes_mut(), client(i), vip);
        let v = process(frame, 0, snap, state, NOW_MS);
        created += usize::from(matches!(v, Verdict::Forward { created: true, .. }));
    }
    let took = start.elapsed();
    assert_eq!(created, count, "SYNs not forwarded");
    took
}

/// A table the size of the 1M benchmarks (capacity 1M + 1M/4) holding `NEW_PRELOAD`
/// connections (SYN_RECV), and the next unused client.
fn preloaded(mode: Mode, snap: &Snapshot) -> (WorkerState, usize) {
    let n = SIZES[1].0;
    let mut state = WorkerState::new(0, 1, n + n / 4, Timeouts::ipvs_defaults());
    let syn = client_template(mode, FLAG_SYN, &[]);
    syns(
        &mut work_frame(),
        &syn,
        mode.vip(),
        snap,
        &mut state,
        0,
        NEW_PRELOAD,
    );
    (state, NEW_PRELOAD)
}

fn new_connection(c: &mut Criterion) {
    let snap = snapshot();
    let mut group = c.benchmark_group("new_connection");
    for mode in Mode::ALL {
        let vip = mode.vip();
        let syn = client_template(mode, FLAG_SYN, &[]);
        let mut frame = work_frame();
        // A fresh table per `NEW_BATCH` SYNs: it stays within the last-level cache.
        group.bench_function(BenchmarkId::new(mode.name(), "fresh"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(NEW_BATCH as u64) as usize;
                    let mut state = WorkerState::new(
                        0,
                        1,
                        NEW_BATCH + NEW_BATCH / 4,
                        Timeouts::ipvs_defaults(),
                    );
                    state.sync(&snap);
                    total += syns(&mut frame, &syn, vip, &snap, &mut state, 0, batch);
                    left -= batch as u64;
                }
                total
            })
        });
        // The 1M-sized table, filled from NEW_PRELOAD up to its capacity, then rebuilt
        // (untimed).
        let mut big: Option<(WorkerState, usize)> = None;
        group.bench_function(BenchmarkId::new(mode.name(), "1M"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let (state, next) = big.get_or_insert_with(|| preloaded(mode, &snap));
                    let room = state.conns.capacity() - state.conns.len();
                    if room == 0 {
                        big = None;
                        continue;
                    }
                    let batch = left.min(room as u64) as usize;
                    total += syns(&mut frame, &syn, vip, &snap, state, *next, batch);
                    *next += batch;
                    left -= batch as u64;
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, established, new_connection);
criterion_main!(benches);
