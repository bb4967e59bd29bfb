//! rvs-gen: a DPDK traffic generator that plays both sides of a load balancer. On the clients'
//! link it opens flows toward the VIP; on the servers' link it receives what the device under
//! test sent to the real servers, checks it, and answers as those servers would (NAT and
//! FULLNAT: the answer crosses the device back to the clients' link, where it is checked
//! again). Flat out (the window kept full) or paced; latency of every crossing into an
//! hdrhistogram; one-second samples; and no report at all when a packet is unaccounted for.
//!
//! Runs on one core, both links polled by one thread (`scripts/bench.sh` gives it core 0 and
//! the device under test core 1). With `--queues K` each link has K queue pairs, as a NIC with
//! K RX queues: a flow's packets, both ways, always travel on queue `flow mod K` (the way
//! RSS keeps a flow on one queue, and not the device's owner function: a device with K workers
//! hands a share of them over).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use bench::gen::packet::{Addressing, Bad, Dut, Received, FRAME_LEN, STAMP_MASK};
use bench::gen::samples::Sampler;
use bench::gen::traffic::{Phase, Phases, Script, Traffic};
use clap::Parser;
use dpdk::{
    Burst, Eal, EalArgs, LcoreRegistration, Mempool, Port, PortSettings, TxQueue, BURST_SIZE,
};
use hdrhistogram::Histogram;

#[derive(Parser, Debug)]
#[command(about = "rvs's traffic generator: clients and real servers on two DPDK links")]
struct Args {
    /// What the device under test does: nat, fullnat, dr, tun, or passthrough (dpdk-testpmd
    /// io/macswap: nothing rewritten).
    #[arg(long)]
    dut: String,
    /// The clients' link (DPDK devargs).
    #[arg(
        long,
        default_value = "net_memif0,role=client,id=0,socket=/run/rvs-bench/client.sock,socket-abstract=no,mac=02:00:00:00:01:01"
    )]
    client_dev: String,
    /// The real servers' link.
    #[arg(
        long,
        default_value = "net_memif1,role=client,id=0,socket=/run/rvs-bench/servers.sock,socket-abstract=no,mac=02:00:00:00:01:02"
    )]
    server_dev: String,
    /// Whether the real servers' answers cross the device: `cross` (default for nat,
    /// fullnat) or `direct` (default otherwise: checked on arrival, not answered).
    #[arg(long)]
    replies: Option<String>,
    /// `established`: open every flow, then send data over them round robin;
    /// `connections`: new TCP connections over the flows' tuples in turn.
    #[arg(long, default_value = "established")]
    script: String,
    /// Packets per connection from the client (SYN, data..., FIN) for `connections`.
    #[arg(long, default_value_t = 3)]
    conn_packets: u8,
    /// UDP instead of TCP (`established` only).
    #[arg(long)]
    udp: bool,
    /// Concurrent flows (`established`) or tuples to cycle through (`connections`).
    #[arg(long, default_value_t = 10_000)]
    flows: u32,
    /// Client packets in flight at most; below every ring on the way, so none can overflow.
    #[arg(long, default_value_t = 512)]
    window: u32,
    /// Client packets per second once the flows are open; 0 = flat out (window full).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Seconds measured (one sample per second).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Milliseconds to wait for packets in flight at the end.
    #[arg(long, default_value_t = 500)]
    drain_ms: u64,
    /// The core to run on.
    #[arg(long, default_value_t = 0)]
    core: usize,
    #[arg(long, default_value = "rvs-gen")]
    file_prefix: String,
    #[arg(long, default_value_t = 256)]
    memory_mb: u32,
    /// Seconds to wait for both links to come up.
    #[arg(long, default_value_t = 10)]
    link_timeout: u64,
    /// Milliseconds to keep the links up after the run, idle: a memif peer's counters reset
    /// when its client leaves, so a test reading them needs this.
    #[arg(long, default_value_t = 0)]
    linger_ms: u64,
    /// No per-second lines.
    #[arg(long)]
    quiet: bool,
    /// Queue pairs per link (one per worker of the device under test).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    queues: u16,
}

/// What one run saw, beyond the traffic's own totals.
#[derive(Default)]
struct Seen {
    ignored: u64,
    bad: [u64; Bad::ALL.len()],
    /// Turns in which the window was full (the device is the bottleneck), and in which a link
    /// refused part of a burst (the link is).
    window_full: u64,
    tx_refused: u64,
    turns: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rvs-gen: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let dut = Dut::from_name(&args.dut).ok_or_else(|| {
        format!(
            "--dut {:?}: one of nat, fullnat, dr, tun, passthrough",
            args.dut
        )
    })?;
    let cross = match args.replies.as_deref() {
        None => dut.replies_cross_by_default(),
        Some("cross") => true,
        Some("direct") => false,
        Some(other) => return Err(format!("--replies {other:?}: cross or direct")),
    };
    if cross && dut == Dut::Tun {
        return Err("--replies cross: a TUN real server answers the client directly".into());
    }
    let script = match args.script.as_str() {
        "established" => Script::Established,
        "connections" => Script::Connections {
            packets: args.conn_packets,
        },
        other => return Err(format!("--script {other:?}: established or connections")),
    };
    let addressing = Addressing::bench_defaults(dut, args.udp);
    if u64::from(args.flows) > addressing.max_flows() {
        return Err(format!(
            "--flows {}: the client ranges hold {}",
            args.flows,
            addressing.max_flows()
        ));
    }
    let secs = |s: u64| s * 1_000_000_000;
    let mut traffic = Traffic::new(
        script,
        args.udp,
        args.flows,
        args.window,
        Phases {
            // Generous: opening 1M flows takes about a second on this machine.
            open_timeout: secs(10) + u64::from(args.flows) * 20_000,
            warmup: secs(args.warmup),
            measure: secs(args.duration),
            drain: args.drain_ms * 1_000_000,
        },
    )?;

    let mut eal_args = EalArgs::new(args.file_prefix.clone());
    eal_args.memory_mb = args.memory_mb;
    eal_args.control_cpus = vec![args.core];
    let _eal = Eal::init(&eal_args).map_err(|e| e.to_string())?;
    let _lcore = LcoreRegistration::pin_and_register(args.core).map_err(|e| e.to_string())?;
    // Every ring on the way (2 links x 2 directions x 1024) plus the window, doubled.
    let pool = Mempool::new("rvs_gen", 16383, 256, 2048 + 128, 0).map_err(|e| e.to_string())?;
    let settings = PortSettings {
        rx_queues: args.queues,
        tx_queues: args.queues,
        rx_descriptors: 1024,
        tx_descriptors: 1024,
        promiscuous: true,
        rss: None,
    };
    let mut ports = Vec::new();
    for dev in [&args.client_dev, &args.server_dev] {
        let id = Port::probe(dev).map_err(|e| e.to_string())?;
        let mut port = Port::configure(id, &settings, &pool).map_err(|e| e.to_string())?;
        port.start().map_err(|e| e.to_string())?;
        ports.push(port);
    }
    let deadline = Instant::now() + Duration::from_secs(args.link_timeout);
    while !ports.iter().all(|p| p.link().up) {
        if Instant::now() > deadline {
            return Err(format!(
                "links not up after {} s (is the device under test listening on the memif sockets?)",
                args.link_timeout
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut client_rx, mut client_tx) = ports[0].take_queues().expect("fresh port");
    let (mut server_rx, mut server_tx) = ports[1].take_queues().expect("fresh port");
    let queues = usize::from(args.queues);
    let queue_of = |flow: u32| flow as usize % queues;

    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())?;
    let mut sampler = Sampler::default();
    let mut seen = Seen::default();
    let mut rx = Burst::new();
    let mut fresh = Burst::new();
    // Per queue: the real servers' answers and the clients' packets on their way out.
    let mut replies: Vec<Burst> = (0..queues).map(|_| Burst::new()).collect();
    let mut out: Vec<Burst> = (0..queues).map(|_| Burst::new()).collect();
    let mut next = [(0u32, 0u8); BURST_SIZE];
    let start = Instant::now();
    let mut run_start: Option<(u64, u64)> = None;
    let mut measuring = false;

    println!(
        "rvs-gen: dut {}, {} {} over {} flows, replies {}, window {}, {}",
        dut.name(),
        args.script,
        if args.udp { "UDP" } else { "TCP" },
        args.flows,
        if cross { "cross" } else { "direct" },
        args.window,
        if args.rate == 0 {
            "flat out".to_owned()
        } else {
            format!("{} packets/s", args.rate)
        }
    );
    loop {
        let now = start.elapsed().as_nanos() as u64;
        let counts = |t: &Traffic| [t.totals.arrived, t.totals.built, t.totals.connections];
        // Sampled before the phase moves on, so the last second of the run is kept.
        if measuring {
            if let Some(s) = sampler.tick(now, counts(&traffic)) {
                if !args.quiet {
                    println!(
                        "  {:>3} s  forwarded {:6.3} Mpps  sent {:6.3} Mpps  connections {:8.0}/s",
                        sampler.samples.len(),
                        s[0] / 1e6,
                        s[1] / 1e6,
                        s[2]
                    );
                }
            }
        }
        match traffic.tick(now) {
            Some(Phase::Warmup) => {
                run_start = Some((now, traffic.totals.built));
                if !args.quiet {
                    println!(
                        "  {} flows open after {:.1} s",
                        traffic.totals.flows_opened,
                        now as f64 / 1e9
                    );
                }
            }
            Some(Phase::Measure) => {
                if run_start.is_none() {
                    run_start = Some((now, traffic.totals.built));
                }
                measuring = true;
                latency.reset();
                sampler.start(now, counts(&traffic));
            }
            Some(Phase::Drain) => measuring = false,
            Some(Phase::Done) => break,
            _ => {}
        }
        seen.turns += 1;
        let stamp = now & STAMP_MASK;

        // The real servers: check, then answer (or end the journey here). An answer leaves on
        // its flow's queue. A queue is read only when every answer so far has left (a burst
        // then holds what one RX gives); one the link refused waits for the next turn.
        for queue in server_rx.iter_mut() {
            send_all(&mut replies, &mut server_tx, &mut seen);
            if replies.iter().any(|r| !r.is_empty()) {
                break;
            }
            if queue.rx_burst(&mut rx) == 0 {
                continue;
            }
            for mut mbuf in rx.drain() {
                match addressing.check_at_server(mbuf.data()) {
                    Received::Packet(a) => {
                        traffic.arrived();
                        if measuring {
                            latency.saturating_record(stamp.wrapping_sub(a.stamp) & STAMP_MASK);
                        }
                        if cross {
                            addressing.write_reply(mbuf.data_mut(), stamp);
                            let _ = replies[queue_of(a.flow)].push(mbuf);
                        } else {
                            traffic.completed(a.flow, a.step);
                        }
                    }
                    Received::Ignored => seen.ignored += 1,
                    Received::Bad(b) => seen.bad[b as usize] += 1,
                }
            }
        }
        send_all(&mut replies, &mut server_tx, &mut seen);

        // The clients: answers that crossed back.
        for queue in client_rx.iter_mut() {
            if queue.rx_burst(&mut rx) == 0 {
                continue;
            }
            for mbuf in rx.drain() {
                match addressing.check_at_client(mbuf.data()) {
                    Received::Packet(a) => {
                        traffic.arrived();
                        if measuring {
                            latency.saturating_record(stamp.wrapping_sub(a.stamp) & STAMP_MASK);
                        }
                        traffic.completed(a.flow, a.step);
                    }
                    Received::Ignored => seen.ignored += 1,
                    Received::Bad(b) => seen.bad[b as usize] += 1,
                }
            }
        }

        // New client packets, as many as the window, the pacing and a burst allow, each on its
        // flow's queue.
        if out.iter().all(Burst::is_empty) {
            let mut budget = BURST_SIZE as u64;
            if let (Some((t0, built0)), true) = (run_start, args.rate > 0) {
                let due = (u128::from(now - t0) * u128::from(args.rate) / 1_000_000_000) as u64;
                budget = budget.min(due.saturating_sub(traffic.totals.built - built0));
            }
            if traffic.room() == 0 {
                seen.window_full += 1;
            }
            let mut n = 0;
            while n < budget as usize {
                let Some(p) = traffic.next_packet() else {
                    break;
                };
                next[n] = p;
                n += 1;
            }
            if n > 0 {
                if !pool.alloc_bulk(&mut fresh, n) {
                    return Err("mempool exhausted (mbufs leaked?)".into());
                }
                for (mut mbuf, &(flow, step)) in fresh.drain().zip(&next[..n]) {
                    let data = mbuf
                        .append(FRAME_LEN as u16)
                        .expect("a fresh mbuf has room");
                    addressing.write_client(data, flow, step, traffic.flags(step), stamp);
                    // All bursts were empty and n fits in one.
                    let _ = out[queue_of(flow)].push(mbuf);
                }
            }
        }
        send_all(&mut out, &mut client_tx, &mut seen);
    }
    // Unsent packets count as built and outstanding; there are none once drained, but a
    // drain that timed out may leave some: they are part of the loss below.
    drop(out);
    drop(replies);
    let code = report(args, dut, cross, &traffic, &sampler, &latency, &seen);
    std::thread::sleep(Duration::from_millis(args.linger_ms));
    code
}

/// Sends each queue's burst on its queue; what a link refuses stays for the next turn.
fn send_all(bursts: &mut [Burst], queues: &mut [TxQueue<'_>], seen: &mut Seen) {
    for (burst, queue) in bursts.iter_mut().zip(queues.iter_mut()) {
        if !burst.is_empty() {
            queue.tx_burst(burst);
            if !burst.is_empty() {
                seen.tx_refused += 1;
            }
        }
    }
}

fn report(
    args: &Args,
    dut: Dut,
    cross: bool,
    traffic: &Traffic,
    sampler: &Sampler,
    latency: &Histogram<u64>,
    seen: &Seen,
) -> Result<ExitCode, String> {
    let t = &traffic.totals;
    let lost = t.built - t.completed;
    let bad: u64 = seen.bad.iter().sum();
    println!(
        "  accounting: {} client packets built = {} journeys completed + {} unaccounted; \
         {} arrivals checked, {} ignored (ARP), {} failed their checks",
        t.built, t.completed, lost, t.arrived, seen.ignored, bad
    );
    if bad > 0 {
        let reasons: Vec<String> = Bad::ALL
            .iter()
            .filter(|b| seen.bad[**b as usize] > 0)
            .map(|b| format!("{} {}", b.name(), seen.bad[*b as usize]))
            .collect();
        println!("  failed checks: {}", reasons.join(", "));
    }
    if lost > 0 || bad > 0 {
        println!(
            "rvs-gen: REFUSED: {lost} packets lost and {bad} malformed, which the window cannot \
             explain (no ring on the way can overflow); look at the device's drop counters"
        );
        return Ok(ExitCode::from(3));
    }
    let n = sampler.samples.len();
    if n == 0 {
        return Err("no one-second sample was taken (--duration 0?)".into());
    }
    let q = |us: f64| latency.value_at_quantile(us) as f64 / 1000.0;
    let (fwd50, fwd90) = (sampler.percentile(0, 50.0), sampler.percentile(0, 90.0));
    let (sent50, sent90) = (sampler.percentile(1, 50.0), sampler.percentile(1, 90.0));
    let (cps50, cps90) = (sampler.percentile(2, 50.0), sampler.percentile(2, 90.0));
    let turns = seen.turns.max(1) as f64;
    println!(
        "  {n} samples of 1 s: forwarded p50 {:.3} / p90 {:.3} Mpps; sent p50 {:.3} / p90 {:.3} Mpps; connections p50 {:.0} / p90 {:.0} per s",
        fwd50 / 1e6, fwd90 / 1e6, sent50 / 1e6, sent90 / 1e6, cps50, cps90
    );
    println!(
        "  latency of one crossing ({} packets): p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        latency.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        latency.max() as f64 / 1000.0
    );
    println!(
        "  window full in {:.1}% of turns (device-bound), a link refused part of a burst in {:.1}%",
        100.0 * seen.window_full as f64 / turns,
        100.0 * seen.tx_refused as f64 / turns
    );
    println!(
        "RESULT dut={} script={} proto={} flows={} replies={} rate={} samples={n} \
         fwd_mpps_p50={:.4} fwd_mpps_p90={:.4} sent_mpps_p50={:.4} sent_mpps_p90={:.4} \
         cps_p50={:.0} cps_p90={:.0} lat_us_p50={:.2} lat_us_p99={:.2} lat_us_p999={:.2} \
         lat_us_max={:.2} built={} lost=0 bad=0 window_full_pct={:.1}",
        dut.name(),
        args.script,
        if args.udp { "udp" } else { "tcp" },
        args.flows,
        if cross { "cross" } else { "direct" },
        args.rate,
        fwd50 / 1e6,
        fwd90 / 1e6,
        sent50 / 1e6,
        sent90 / 1e6,
        cps50,
        cps90,
        q(0.5),
        q(0.99),
        q(0.999),
        latency.max() as f64 / 1000.0,
        t.built,
        100.0 * seen.window_full as f64 / turns,
    );
    Ok(ExitCode::SUCCESS)
}
