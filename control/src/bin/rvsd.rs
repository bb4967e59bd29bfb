//! rvsd: the rvs daemon. Starts EAL, opens the configured ports, runs one pinned worker per
//! configured core, and keeps the control thread for signals, link watch and statistics.
//!
//! Exit codes: 0 clean stop, 1 runtime failure (EAL, a worker), 2 configuration error (one
//! line, `FILE:LINE:COLUMN: reason`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use clap::Parser;
use control::answer::{
    api_request, fill_rates, log_services, publish_telemetry, rate_keys, reload, reloads_of,
    running_state, status, Exports, RateKey, TELEMETRY,
};
use control::config::{self, LoadedConfig, Step};
use control::control::FrameVerdict;
use control::neigh::Neighbors;
use control::{snapshot, stats, steering};
use dataplane::counters::WorkerCounters;
use dataplane::engine::WorkerExport;
use dataplane::steer;
use dataplane::sync::SyncRecord;
use dpdk::worker::{self, WorkerIo, WorkerSetup};
use dpdk::{
    self, Burst, Eal, EalArgs, FlowRule, LinkStatus, MbufRing, Mempool, Port, PortSettings,
    RssSettings, BURST_SIZE,
};
use hashbrown::HashMap;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use std::sync::Arc;
use tracing::{error, info, warn};

#[derive(Parser, Debug)]
#[command(
    name = "rvsd",
    version,
    about = "rvs: a DPDK layer-4 load balancer (the daemon)"
)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["config", "check_config"])))]
struct Args {
    /// Run with this configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check this configuration file and exit (0 if it is valid).
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
}

enum Failure {
    Config(config::ConfigError),
    Runtime(String),
}

impl From<config::ConfigError> for Failure {
    fn from(e: config::ConfigError) -> Self {
        Failure::Config(e)
    }
}

fn main() -> ExitCode {
    // Before anything else runs code built for the baseline: one line instead of SIGILL.
    let missing = dpdk::cpu::missing_features();
    if !missing.is_empty() {
        eprintln!(
            "rvsd: this CPU lacks {} that this build of rvsd uses (its baseline: {}; Debian's \
             DPDK 22.11 needs SSE4.2 too); rebuild with another target-cpu in .cargo/config.toml",
            missing.join(", "),
            dpdk::cpu::baseline()
        );
        return ExitCode::from(2);
    }
    let args = Args::parse();
    if let Some(file) = args.check_config {
        return match config::load(&file) {
            Ok(loaded) => {
                println!(
                    "{}: ok ({} ports, {} workers on cores {:?})",
                    file.display(),
                    loaded.config.ports.len(),
                    loaded.config.workers.len(),
                    loaded.config.workers
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    let file = args
        .config
        .expect("clap requires --config or --check-config");
    // The cores this process may use, read once: EAL pins this thread (the control thread) to
    // `control_core`, after which its own affinity no longer says what the workers may use,
    // and every reload is checked against this list.
    let cores = config::available_cores();
    let loaded = match config::load_with_cores(&file, &cores) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RVS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(&loaded, &cores) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(e)) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            error!("{e}");
            eprintln!("rvsd: {e}");
            ExitCode::from(1)
        }
    }
}

/// Enough mbufs for every RX/TX descriptor, every worker's cache and bursts in flight, doubled.
fn mbufs_needed(loaded: &LoadedConfig, cache: u32) -> u32 {
    let c = &loaded.config;
    let workers = c.workers.len() as u32;
    let rings: u32 = c
        .ports
        .iter()
        .map(|p| {
            workers * u32::from(p.rx_descriptors) + (workers + 1) * u32::from(p.tx_descriptors)
        })
        .sum();
    let in_flight = (workers + 1) * (cache + 2 * BURST_SIZE as u32 * c.ports.len() as u32)
        + workers * workers.saturating_sub(1) * HANDOFF_RING;
    // A power of two minus one is what the ring under the mempool uses best.
    ((rings + in_flight) * 2).next_power_of_two() - 1
}

fn run(loaded: &LoadedConfig, cores: &[usize]) -> Result<(), Failure> {
    let c = &loaded.config;
    info!(
        "rvsd {} on {} ({} link, CPU baseline {}), config {}",
        env!("CARGO_PKG_VERSION"),
        dpdk::version(),
        dpdk::LINK_MODE,
        dpdk::cpu::baseline(),
        loaded.file.display()
    );

    // Signals first, so that a SIGTERM during start-up is not lost nor fatal.
    let (events, inbox) = mpsc::channel::<Event>();
    let api_events = events.clone();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1, SIGHUP])
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
    let signal_handle = signals.handle();
    let signal_thread = std::thread::Builder::new()
        .name("rvs-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if events.send(Event::Signal(signal)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| Failure::Runtime(format!("cannot start the signal thread: {e}")))?;

    let mut eal_args = EalArgs::new(
        c.eal
            .file_prefix
            .clone()
            .unwrap_or_else(|| format!("rvs-{}", std::process::id())),
    );
    eal_args.memory_mb = c.eal.memory_mb;
    eal_args.hugepages = c.eal.hugepages;
    eal_args.control_cpus = match c.control_core {
        Some(core) => vec![core],
        None => cores.to_vec(),
    };
    eal_args.pci_allow = c
        .ports
        .iter()
        .filter(|p| p.is_pci())
        .map(|p| p.device.clone())
        .collect();
    eal_args.extra = c.eal.extra_args.clone();
    eal_args.telemetry = true;
    let prefix_taken = |prefix: &str| {
        dpdk::eal::prefix_in_use(prefix).map(|pid| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            format!(
                "eal.file_prefix {prefix:?} is in use by another DPDK process (pid {pid} {}): \
                 give each rvsd its own file_prefix",
                name.trim()
            )
        })
    };
    if let Some(taken) = prefix_taken(&eal_args.file_prefix) {
        return Err(Failure::Config(loaded.error_at(
            &[Step::Field("eal"), Step::Field("file_prefix")],
            taken,
        )));
    }
    // The control socket, before EAL takes memory (after the file prefix check, which names
    // the process a second rvsd collides with): a second rvsd on the same socket is a
    // configuration mistake, said at once.
    let control_socket = c.control_socket_path();
    let api_listener = control::api::server::bind(&control_socket).map_err(|e| {
        loaded.error_at(
            &[Step::Field("control_socket")],
            format!("control socket {}: {e}", control_socket.display()),
        )
    })?;
    // However rvsd leaves from here on, its socket file goes with it.
    let _socket_file = SocketFile(control_socket.clone());
    let metrics_addr = c.metrics;
    let metrics_listener = match metrics_addr {
        Some(addr) => Some(std::net::TcpListener::bind(addr).map_err(|e| {
            loaded.error_at(
                &[Step::Field("metrics")],
                format!("metrics endpoint {addr}: {e}"),
            )
        })?),
        None => None,
    };

    let eal = Eal::init(&eal_args).map_err(|e| {
        let free = dpdk::eal::free_hugepages();
        let hint = if let Some(taken) = prefix_taken(&eal_args.file_prefix) {
            format!(" ({taken})")
        } else if c.eal.hugepages && free * 2 < u64::from(c.eal.memory_mb) {
            format!(
                " ({free} free hugepages of 2 MiB for eal.memory_mb = {}: run scripts/setup.sh, \
                 or set eal.hugepages: false)",
                c.eal.memory_mb
            )
        } else {
            String::new()
        };
        Failure::Runtime(format!("{e}{hint}"))
    })?;

    // rvs's DPDK telemetry commands (dpdk-telemetry.py -f PREFIX).
    for (command, help) in TELEMETRY {
        if let Err(e) = dpdk::telemetry::register(command, help) {
            warn!("telemetry: {e}");
        }
    }

    let cache = c.mempool.cache.unwrap_or(256).min(512);
    let mbufs = c
        .mempool
        .mbufs
        .unwrap_or_else(|| mbufs_needed(loaded, cache));
    let pool = Mempool::new("rvs_mbufs", mbufs, cache, 2048 + 128, -1).map_err(|e| {
        Failure::Config(loaded.error_at(
            &[Step::Field("mempool")],
            format!(
                "{e}: {mbufs} mbufs do not fit in eal.memory_mb = {}",
                c.eal.memory_mb
            ),
        ))
    })?;
    info!("mempool: {} mbufs, {} cached per lcore", pool.size(), cache);

    let workers = c.workers.len() as u16;
    // One owner function for the whole run (every snapshot carries it): with several workers,
    // every connection's packets go to one worker, computed from each packet. Its RSS key is
    // also the one ports that can agree with it are programmed with.
    let rss_key = steer::random_key().unwrap_or_else(|| {
        warn!("cannot read /dev/urandom: the RSS key is a fixed one, anyone may aim at a worker");
        FALLBACK_RSS_KEY
    });
    let roles = steering::roles(c);
    // Per port: the side its RSS hashes when it agrees with the owner function, else why not.
    let mut port_steering: Vec<Result<Option<steering::Side>, String>> = Vec::new();
    let mut ports = Vec::with_capacity(c.ports.len());
    for (i, pc) in c.ports.iter().enumerate() {
        let at = [Step::Field("ports"), Step::Index(i), Step::Field("device")];
        let id = Port::probe(&pc.device)
            .map_err(|e| loaded.error_at(&at, format!("port {:?}: {}", pc.name, e)))?;
        let info =
            Port::info(id).map_err(|e| loaded.error_at(&at, format!("port {:?}: {e}", pc.name)))?;
        if info.max_rx_queues < workers || info.max_tx_queues < workers {
            let hint = if pc.device_name().starts_with("net_af_packet") {
                format!(" (add qpairs={workers} to the device string)")
            } else {
                String::new()
            };
            return Err(loaded
                .error_at(
                    &at,
                    format!(
                        "port {:?}: driver {} has {} RX / {} TX queues, {} workers need one each{hint}",
                        pc.name, info.driver, info.max_rx_queues, info.max_tx_queues, workers
                    ),
                )
                .into());
        }
        // The control thread gets its own TX queue where the driver has one to spare.
        let tx_queues = if info.max_tx_queues > workers {
            workers + 1
        } else {
            workers
        };
        let plan = match roles[i].side() {
            _ if workers == 1 => Ok(None),
            Ok(Some(side)) => {
                steering::rss_agrees(&info, side, usize::from(workers)).map(|()| Some(side))
            }
            Ok(None) => Ok(None),
            Err(why) => Err(why.to_owned()),
        };
        let rss = match &plan {
            Ok(Some(side)) => Some(RssSettings {
                key: rss_key.to_vec(),
                hash_fields: steering::rss_fields(*side),
            }),
            _ => None,
        };
        port_steering.push(plan);
        let settings = PortSettings {
            rx_queues: workers,
            tx_queues,
            rx_descriptors: pc.rx_descriptors,
            tx_descriptors: pc.tx_descriptors,
            promiscuous: pc.promiscuous,
            rss,
        };
        let mut port = Port::configure(id, &settings, &pool)
            .map_err(|e| loaded.error_at(&at, format!("port {:?}: {e}", pc.name)))?;
        port.start()
            .map_err(|e| loaded.error_at(&at, format!("port {:?}: {e}", pc.name)))?;
        let mac = port.mac();
        let link = port.link();
        info!(
            "port {} = {} ({}, id {}): mac {}, {} RX / {} TX queues, {} RSS, link {}{}",
            pc.name,
            pc.device,
            info.driver,
            id,
            control::format_mac(&mac),
            settings.rx_queues,
            settings.tx_queues,
            if info.rss_offloads != 0 { "with" } else { "no" },
            if link.up { "up" } else { "down" },
            if link.up {
                format!(" {} Mb/s", link.speed_mbps)
            } else {
                String::new()
            },
        );
        for a in &pc.addresses {
            info!("port {}: address {}", pc.name, a);
        }
        if let Ok(Some(_)) = port_steering[i] {
            if let Err(e) = port.spread_reta(workers) {
                port_steering[i] = Err(e.to_string());
            }
        }
        ports.push(port);
    }
    let workers = usize::from(workers);
    let (share, flow_rules) = fullnat_share(&ports, &roles, &port_steering, workers);
    let mut port_steering_text =
        vec!["one worker: every packet is its own".to_owned(); c.ports.len()];
    for (i, ((pc, plan), role)) in c.ports.iter().zip(&port_steering).zip(&roles).enumerate() {
        if workers == 1 {
            break;
        }
        let rules = flow_rules.iter().filter(|(p, _)| *p == i).count();
        let how =
            match plan {
                Ok(Some(side)) => format!(
                "RSS on the {} address and port with rvs's key and a table of i mod {workers}: \
                 the NIC queues every NAT and FULLNAT packet on its owner",
                if *side == steering::Side::Source { "source" } else { "destination" }
            ),
                Ok(None) if role.local_addrs.is_empty() => {
                    "nothing needs it (no NAT or FULLNAT traffic at start); packets another worker \
                 owns are handed over"
                        .to_owned()
                }
                Ok(None) => "software hand-off".to_owned(),
                Err(why) => format!("software hand-off ({why})"),
            };
        let text = if rules > 0 {
            format!(
                "{rules} flow rules send FULLNAT replies to their owner by the local port's low \
                 bits; otherwise {how}"
            )
        } else {
            how
        };
        info!("port {}: steering: {text}", pc.name);
        port_steering_text[i] = text;
    }

    let macs: Vec<[u8; 6]> = ports.iter().map(Port::mac).collect();
    // The exception path: a kernel interface per port that asks for one.
    let mut taps: Vec<(usize, Port)> = Vec::new();
    for (i, pc) in c.ports.iter().enumerate().filter(|(_, pc)| pc.kernel) {
        let routes = control::kernel::routes_of(c, &pc.name);
        let tap = control::kernel::open(i, pc, &routes, macs[i], &pool).map_err(|e| {
            loaded.error_at(
                &[Step::Field("ports"), Step::Index(i), Step::Field("kernel")],
                e,
            )
        })?;
        info!(
            "port {}: kernel interface {} ({}), addresses {}",
            pc.name,
            pc.kernel_interface_name(),
            tap.name(),
            pc.addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
        taps.push((i, tap));
    }
    let kernel_counters: Vec<control::kernel::KernelCounters> = c
        .ports
        .iter()
        .map(|_| control::kernel::KernelCounters::default())
        .collect();
    let mut neighbors = Neighbors::new();
    control::control::add_static_neighbors(c, &mut neighbors);
    // Health checks: the first snapshot already leaves out what starts down (alpha).
    let mut health = control::health::Health::new();
    health
        .configure(c)
        .map_err(|e| Failure::Runtime(format!("cannot start the health checker: {e}")))?;
    if health.probes() > 0 {
        info!(
            "health: {} probes (identical ones shared) over {} real servers",
            health.probes(),
            c.services
                .iter()
                .map(|s| s.real_servers.len())
                .sum::<usize>()
        );
    }
    let vrrp = control::vrrp::Vrrp::new(c, &macs, Instant::now());
    // Connection sync: the workers' records for the backups on one bounded channel to the
    // control thread, and one bounded channel to each worker for what a master synced.
    let (sync_to_control, sync_from_workers) = mpsc::sync_channel::<SyncRecord>(SYNC_QUEUE);
    let mut sync_inboxes: Vec<Option<mpsc::Receiver<SyncRecord>>> = Vec::new();
    let sync_daemon = c.lvs_sync_daemon.as_ref().map(|d| {
        let port = c
            .ports
            .iter()
            .position(|p| p.name == d.interface)
            .unwrap_or(0);
        let (senders, receivers): (Vec<_>, Vec<_>) = c
            .workers
            .iter()
            .map(|_| mpsc::sync_channel::<SyncRecord>(SYNC_QUEUE))
            .unzip();
        sync_inboxes = receivers.into_iter().map(Some).collect();
        let src = c.ports[port]
            .addresses
            .first()
            .map_or(std::net::Ipv4Addr::UNSPECIFIED, |a| a.addr);
        info!(
            "lvs_sync_daemon on port {} with VRRP instance {}: sync id {}, group {}:{}, ttl {}, \
             messages of {} bytes at most",
            d.interface, d.vrrp_instance, d.id, d.group, d.port, d.ttl, d.maxlen
        );
        control::sync::Sync::new(d.clone(), port, macs[port], src, sync_from_workers, senders)
    });
    // What the snapshot is built from: the file's services, routes, neighbours and timeouts
    // may change on SIGHUP (and rvsadm's edits); the rest needs a restart.
    let mut core = control::control::Core {
        file: loaded.file.clone(),
        cores: cores.to_vec(),
        running: c.clone(),
        macs: macs.clone(),
        health,
        vrrp,
        sync: sync_daemon,
        neighbors,
        generation: 1,
        reloads: Default::default(),
        changed: false,
        announcer: Default::default(),
    };
    let mut first = core.build(None);
    first.steering = (workers > 1).then(|| Arc::new(steer::Steering::new(workers, rss_key, share)));
    let mut cores_used = c.workers.clone();
    cores_used.sort_unstable();
    cores_used.dedup();
    if cores_used.len() < workers {
        warn!(
            "{workers} workers on {} cores (oversubscribe): workers on one core take turns, each \
             at a fraction of its rate; for tests, not for speed",
            cores_used.len()
        );
    }
    let hops = core.wanted_hops();
    core.neighbors.want(&hops);
    let report = snapshot::describe_services(None, &first);
    info!("{}", report.summary);
    log_services(&report);
    let snapshots = ArcSwap::from_pointee(first);
    // rvsadm's questions to the workers, and their answers.
    let (export_answers, export_inbox) =
        mpsc::sync_channel::<WorkerExport>(4 * c.workers.len().max(1));
    let (export_asks, mut export_questions): (Vec<_>, Vec<_>) = c
        .workers
        .iter()
        .map(|_| {
            let (tx, rx) = mpsc::sync_channel::<worker::ExportRequest>(4);
            (tx, Some(rx))
        })
        .unzip();
    let mut exports = Exports::new(export_asks, export_inbox);
    let mut rates = control::api::rate::Estimators::<RateKey>::new();
    let metrics_body = Arc::new(ArcSwap::from_pointee(String::new()));
    let port_index: HashMap<u16, usize> =
        ports.iter().enumerate().map(|(i, p)| (p.id(), i)).collect();
    let ring = |name: String, size| {
        MbufRing::new(&name, size).map_err(|e| Failure::Runtime(e.to_string()))
    };
    let to_control: Vec<MbufRing> = (0..c.workers.len())
        .map(|w| ring(format!("rvs_slow{w}"), 1024))
        .collect::<Result<_, _>>()?;
    let from_control: Vec<MbufRing> = (0..ports.len())
        .map(|p| ring(format!("rvs_inject{p}"), 256))
        .collect::<Result<_, _>>()?;
    // The kernel path's rings: up from each worker and from the control thread (ARP
    // replies), down to worker 0 per port.
    let kernel_rings = !taps.is_empty();
    let to_kernel: Vec<MbufRing> = (0..c.workers.len())
        .filter(|_| kernel_rings)
        .map(|w| ring(format!("rvs_kup{w}"), KERNEL_RING))
        .collect::<Result<_, _>>()?;
    let arp_to_kernel = ring("rvs_karp".to_owned(), 256)?;
    let from_kernel: Vec<MbufRing> = (0..ports.len())
        .filter(|_| kernel_rings)
        .map(|p| ring(format!("rvs_kdown{p}"), 256))
        .collect::<Result<_, _>>()?;
    // handoff[from][to]: one single-producer, single-consumer ring per ordered pair.
    let handoff: Vec<Vec<Option<MbufRing>>> = (0..workers)
        .map(|from| {
            (0..workers)
                .map(|to| {
                    (from != to)
                        .then(|| ring(format!("rvs_ho{from}_{to}"), HANDOFF_RING))
                        .transpose()
                })
                .collect::<Result<_, _>>()
        })
        .collect::<Result<_, _>>()?;
    let counters: Vec<WorkerCounters> = c
        .workers
        .iter()
        .map(|_| WorkerCounters::new(ports.len()))
        .collect();
    let stop = AtomicBool::new(false);

    let result = std::thread::scope(|scope| {
        // Worker w owns RX queue w and TX queue w of every port.
        let mut per_worker: Vec<WorkerIo<'_>> = c
            .workers
            .iter()
            .enumerate()
            .map(|(w, _)| WorkerIo {
                rx: Vec::new(),
                tx: Vec::new(),
                to_control: Some(&to_control[w]),
                // The control thread's packets (ARP requests) leave through worker 0's queues.
                from_control: (w == 0).then_some(&from_control[..]),
                to_kernel: to_kernel.get(w),
                from_kernel: (w == 0 && kernel_rings).then_some(&from_kernel[..]),
                handoff_out: handoff[w].iter().map(Option::as_ref).collect(),
                handoff_in: handoff.iter().filter_map(|to| to[w].as_ref()).collect(),
                sync_out: c.lvs_sync_daemon.is_some().then(|| sync_to_control.clone()),
                sync_in: sync_inboxes.get_mut(w).and_then(Option::take),
                exports: export_questions[w]
                    .take()
                    .map(|q| (q, export_answers.clone())),
            })
            .collect();
        for port in &ports {
            let (rx, tx) = port.take_queues().expect("queues are taken once, here");
            for (w, q) in rx.into_iter().enumerate() {
                per_worker[w].rx.push(q);
            }
            for (w, q) in tx.into_iter().enumerate().take(c.workers.len()) {
                per_worker[w].tx.push(q);
            }
        }
        let mut handles = Vec::new();
        for (w, ((core, io), counters)) in
            c.workers.iter().zip(per_worker).zip(&counters).enumerate()
        {
            let setup = WorkerSetup {
                core: *core,
                index: w,
                workers: c.workers.len(),
                connections: c.connections.capacity,
            };
            let (snapshots, stop) = (&snapshots, &stop);
            let handle = std::thread::Builder::new()
                .name(format!("rvs-worker-{core}"))
                .spawn_scoped(scope, move || {
                    worker::run_pinned(&setup, io, snapshots, counters, stop)
                });
            match handle {
                Ok(h) => handles.push((*core, h)),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(format!("cannot start the worker for core {core}: {e}"));
                }
            }
            info!("worker on core {core} started");
        }
        let kernel_thread = if kernel_rings {
            let mut up: Vec<&MbufRing> = to_kernel.iter().collect();
            up.push(&arp_to_kernel);
            let path = control::kernel::Path {
                up,
                down: &from_kernel,
                taps: taps
                    .iter()
                    .map(|(i, tap)| {
                        let (mut rx, mut tx) = tap.take_queues().expect("queues are taken once");
                        control::kernel::Tap {
                            port: *i,
                            rx: rx.remove(0),
                            tx: tx.remove(0),
                        }
                    })
                    .collect(),
                port_index: port_index.iter().map(|(k, v)| (*k, *v)).collect(),
                counters: &kernel_counters,
            };
            let stop = &stop;
            match std::thread::Builder::new()
                .name("rvs-kernel".into())
                .spawn_scoped(scope, move || path.run(stop))
            {
                Ok(h) => Some(h),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(format!("cannot start the kernel path's thread: {e}"));
                }
            }
        } else {
            None
        };
        let servers_stop = Arc::new(AtomicBool::new(false));
        let api_thread = match control::api::server::spawn(
            api_listener,
            control_socket.clone(),
            api_events,
            Arc::clone(&servers_stop),
        ) {
            Ok(h) => h,
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                return Err(format!("cannot start the control socket's thread: {e}"));
            }
        };
        let metrics_thread = metrics_listener.map(|l| {
            control::api::http::serve(l, Arc::clone(&metrics_body), Arc::clone(&servers_stop))
        });
        if let Some(addr) = metrics_addr {
            info!("metrics: http://{addr}/metrics");
        }
        info!(
            "rvsd running: control socket {}; SIGHUP reloads services, SIGUSR1 logs counters, \
             SIGINT/SIGTERM stop",
            control_socket.display()
        );
        // systemd (Type=notify): started.
        if let Err(e) = control::notify::ready("running") {
            warn!("cannot tell systemd rvsd is ready: {e}");
        }

        let views = || -> Vec<stats::PortView<'_>> {
            c.ports
                .iter()
                .zip(&ports)
                .zip(&kernel_counters)
                .map(|((pc, p), k)| stats::PortView {
                    name: &pc.name,
                    link: link_of(p, pc),
                    device: p.stats(),
                    kernel: pc.kernel.then(|| (pc.kernel_interface_name(), k.read())),
                })
                .collect()
        };
        let mut links: Vec<bool> = ports
            .iter()
            .zip(&c.ports)
            .map(|(p, pc)| link_of(p, pc).up)
            .collect();
        let mut out = Vec::new();
        core.start_vrrp(&links, Instant::now(), &mut out);
        send(&out, &pool, &from_control);
        let interval = Duration::from_millis(c.stats_interval_ms);
        let mut next_tick = Instant::now() + interval;
        let mut next_estimate = Instant::now() + control::api::rate::INTERVAL;
        let mut slow = Burst::new();
        let gather = |core: &control::control::Core| {
            let mut report = stats::gather(&views(), &c.workers, &counters);
            report.services = core.health.report();
            report.health_checks = core.health.checks_done();
            report.vrrp = core.vrrp.report();
            report.vrrp_counters = (!core.vrrp.is_empty()).then(|| core.vrrp.counters());
            report.sync = core.sync.as_ref().map(control::sync::Sync::counters);
            report.announce = core.announcer.report();
            report
        };
        // A clean stop with VIPs announced: they are withdrawn first and the data plane
        // forwards until then, while the routers move the traffic to the other nodes.
        let mut draining: Option<Instant> = None;
        let outcome = loop {
            if draining.is_some_and(|until| Instant::now() >= until) {
                info!("stopping");
                break Ok(());
            }
            if let Some((lcore, _)) = handles.iter().find(|(_, h)| h.is_finished()) {
                break Err(format!("the worker on core {lcore} stopped unexpectedly"));
            }
            if kernel_thread.as_ref().is_some_and(|h| h.is_finished()) {
                break Err("the kernel path's thread stopped unexpectedly".to_owned());
            }
            // Sleep until a signal or the next poll of the workers' rings: the control thread
            // never spins, and ARP answers are learnt within a poll interval.
            let wait = core
                .vrrp
                .deadline()
                .into_iter()
                .chain(core.announce_deadline())
                .min()
                .map_or(CONTROL_POLL, |at| {
                    at.saturating_duration_since(Instant::now())
                })
                .min(CONTROL_POLL);
            match inbox.recv_timeout(wait) {
                Ok(Event::Signal(SIGINT | SIGTERM)) if draining.is_none() => {
                    let _ = control::notify::stopping("stopping");
                    let wait = c.announce.as_ref().map_or(0, |a| a.withdraw_wait_ms);
                    if core.withdraw_all(Instant::now()) && wait > 0 {
                        info!(
                            "stopping: VIPs withdrawn, forwarding {wait} ms more while the \
                             routers move their traffic (a second signal stops at once)"
                        );
                        draining = Some(Instant::now() + Duration::from_millis(wait));
                    } else {
                        info!("stopping");
                        break Ok(());
                    }
                }
                Ok(Event::Signal(SIGINT | SIGTERM)) => {
                    info!("stopping at once");
                    break Ok(());
                }
                Ok(Event::Signal(SIGUSR1)) => {
                    info!("counters:\n{}", gather(&core).table());
                }
                Ok(Event::Signal(SIGHUP)) => {
                    if let Err(e) = reload(&mut core, &snapshots) {
                        warn!("reload refused, the running configuration stays: {e}");
                    }
                }
                Ok(Event::Api(incoming)) => {
                    let reply = api_request(
                        &incoming.request,
                        &mut core,
                        &snapshots,
                        &mut exports,
                        &mut rates,
                        &|core: &control::control::Core| {
                            status(core, &gather(core), &port_steering_text)
                        },
                    );
                    // The client may have gone; nothing to do then.
                    let _ = incoming.reply.try_send(reply);
                }
                Ok(Event::Signal(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err("the signal thread died".to_owned())
                }
            }
            let now = Instant::now();
            let mut out = Vec::new();
            for ring in &to_control {
                // Bounded per poll: an ARP flood delays learning, it cannot hold the thread.
                for _ in 0..SLOW_PATH_BURSTS_PER_POLL {
                    if ring.dequeue_burst(&mut slow) == 0 {
                        break;
                    }
                    let snapshot = snapshots.load();
                    for mut mbuf in slow.drain() {
                        let Some(&port) = port_index.get(&mbuf.port()) else {
                            continue;
                        };
                        match core.on_frame(port, mbuf.data(), &snapshot, now, &mut out) {
                            FrameVerdict::AnswerArp => {
                                if dataplane::engine::answer_arp(mbuf.data_mut(), macs[port])
                                    .is_ok()
                                {
                                    // A full ring: the requester asks again.
                                    let _ = from_control[port].enqueue(mbuf);
                                }
                            }
                            FrameVerdict::ToKernel => {
                                let _ = arp_to_kernel.enqueue(mbuf);
                            }
                            FrameVerdict::Done => {}
                        }
                    }
                }
            }
            // The checkers, the neighbour table, VRRP, sync: what they send leaves through
            // worker 0. The links matter to VRRP only (the link watch below logs changes on
            // its own tick).
            let links_now: Vec<bool> = if core.vrrp.is_empty() {
                Vec::new()
            } else {
                ports
                    .iter()
                    .zip(&c.ports)
                    .map(|(p, pc)| link_of(p, pc).up)
                    .collect()
            };
            core.tick(&links_now, Instant::now(), &mut out);
            send(&out, &pool, &from_control);
            if draining.is_none() {
                core.announce(Instant::now());
            }
            let changed = core.take_changed();
            if changed {
                let next = core.rebuild(&snapshots.load());
                snapshots.store(Arc::new(next));
            }
            // Every 2 s the workers' totals feed IPVS's rate estimator; the metrics follow.
            if now >= next_estimate {
                // From now, not from the last due time: after a stall the estimator takes one
                // sample, not a burst of them with nothing between.
                next_estimate = now + control::api::rate::INTERVAL;
                match exports.ask(None, None) {
                    Ok(answers) => {
                        let state = running_state(&core, &snapshots.load(), &answers, false);
                        rates.sample(rate_keys(&state));
                        let state = fill_rates(&rates, state);
                        publish_telemetry(&core, &state, &gather(&core));
                        if metrics_addr.is_some() {
                            let body = control::api::metrics::render(
                                &state,
                                &gather(&core),
                                &reloads_of(&core),
                            );
                            metrics_body.store(Arc::new(body));
                        }
                    }
                    Err(e) => warn!("{e}"),
                }
            }
            if now >= next_tick {
                next_tick += interval;
                for ((pc, port), was_up) in c.ports.iter().zip(&ports).zip(links.iter_mut()) {
                    let link = link_of(port, pc);
                    if link.up != *was_up {
                        *was_up = link.up;
                        warn!(
                            "port {}: link {}",
                            pc.name,
                            if link.up { "up" } else { "down" }
                        );
                    }
                }
                if let Some(path) = &c.stats_file {
                    let report = gather(&core);
                    if let Err(e) = report.write_json(path) {
                        warn!("cannot write {}: {e}", path.display());
                    }
                }
            }
        };
        // VRRP says goodbye first (priority 0: a backup takes over after its skew time), while
        // worker 0 still transmits; then the checks stop (omega's scripts run now, while the
        // data plane still forwards).
        if !core.vrrp.is_empty() {
            let mut out = Vec::new();
            core.stop_vrrp(&mut out);
            send(&out, &pool, &from_control);
            std::thread::sleep(CONTROL_POLL);
            core.vrrp.finish(Duration::from_secs(5));
        }
        core.health.shutdown(Duration::from_secs(5));
        stop.store(true, Ordering::Relaxed);
        let mut failure = outcome.err();
        if let Some(h) = kernel_thread {
            if h.join().is_err() {
                failure = Some("the kernel path's thread panicked".to_owned());
            }
        }
        for (lcore, handle) in handles {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = Some(format!("worker on core {lcore}: {e}")),
                Err(_) => failure = Some(format!("worker on core {lcore} panicked")),
            }
        }
        // The control socket and the metrics endpoint close; a client waiting gets "rvsd is
        // stopping".
        servers_stop.store(true, Ordering::Relaxed);
        let _ = api_thread.join();
        if let Some(h) = metrics_thread {
            let _ = h.join();
        }
        drop(slow);
        let report = gather(&core);
        info!("final counters:\n{}", report.table());
        if let Some(path) = &c.stats_file {
            if let Err(e) = report.write_json(path) {
                warn!("cannot write {}: {e}", path.display());
            }
        }
        failure.map_or(Ok(()), Err)
    });

    // Rules first, then rings (they hold mbufs of the pool), then ports and pool.
    drop(flow_rules);
    drop(to_control);
    drop(from_control);
    drop(to_kernel);
    drop(arp_to_kernel);
    drop(from_kernel);
    for (_, tap) in &mut taps {
        tap.stop();
    }
    drop(taps);
    drop(handoff);
    signal_handle.close();
    let _ = signal_thread.join();
    for port in &mut ports {
        port.stop();
    }
    drop(ports);
    drop(pool);
    drop(eal);
    info!("stopped: ports closed, DPDK memory released");
    result.map_err(Failure::Runtime)
}

/// A port's link: DPDK's word, and for `net_af_packet` and `net_af_xdp` ports (whose DPDK
/// 22.11 drivers always say up) also the carrier of the kernel interface they sit on, so a
/// pulled cable is seen there too (VRRP's tracked links, the log, the stats).
fn link_of(port: &Port, pc: &config::PortConfig) -> LinkStatus {
    let mut link = port.link();
    let name = pc.device_name();
    if link.up && (name.starts_with("net_af_packet") || name.starts_with("net_af_xdp")) {
        let iface = pc
            .device
            .split(',')
            .find_map(|kv| kv.strip_prefix("iface="));
        if let Some(iface) = iface {
            let carrier = std::fs::read_to_string(format!("/sys/class/net/{iface}/carrier"));
            // An interface that is down has no readable carrier: down too.
            link.up = carrier.is_ok_and(|c| c.trim() == "1");
        }
    }
    link
}

/// Puts the control core's frames on the control thread's transmit path (worker 0 sends
/// them); a full ring or an empty pool drops one (VRRP's next advert, the next ARP round
/// follow).
fn send(out: &[control::control::Outgoing], pool: &Mempool, rings: &[MbufRing]) {
    for f in out {
        if let (Some(mbuf), Some(ring)) = (pool.alloc_with(&f.bytes), rings.get(f.port)) {
            let _ = ring.enqueue(mbuf);
        }
    }
}

/// Removes the control socket's file when dropped.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What wakes the control thread besides its timers.
enum Event {
    Signal(i32),
    Api(control::api::server::Incoming),
}

impl From<control::api::server::Incoming> for Event {
    fn from(incoming: control::api::server::Incoming) -> Self {
        Event::Api(incoming)
    }
}

/// How the FULLNAT (local address, port) pairs are shared out, and the flow rules that steer
/// their replies. By hash (what RSS on the destination agrees with), unless a port carrying
/// local addresses cannot hash that way: then by the port's low bits if every such port takes
/// the flow rules for them (W a power of two), which are installed; else by hash, and the
/// software hand-off does the rest.
fn fullnat_share(
    ports: &[Port],
    roles: &[steering::PortRole],
    plans: &[Result<Option<steering::Side>, String>],
    workers: usize,
) -> (steer::FullnatShare, Vec<(usize, FlowRule)>) {
    let carriers: Vec<usize> = (0..ports.len())
        .filter(|i| !roles[*i].local_addrs.is_empty())
        .collect();
    let rss_does_it = carriers.iter().all(|i| matches!(plans[*i], Ok(Some(_))));
    if workers < 2 || carriers.is_empty() || rss_does_it || !workers.is_power_of_two() {
        return (steer::FullnatShare::Hash, Vec::new());
    }
    let wanted: Vec<(usize, dpdk::QueueRule)> = carriers
        .iter()
        .flat_map(|i| {
            steering::fullnat_rules(&roles[*i].local_addrs, workers)
                .into_iter()
                .map(move |r| (*i, r))
        })
        .collect();
    if let Some((i, e)) = wanted
        .iter()
        .find_map(|(i, r)| FlowRule::validate(ports[*i].id(), r).err().map(|e| (i, e)))
    {
        info!(
            "port {}: no flow rules for FULLNAT replies ({e}): FULLNAT local ports are shared by \
             hash",
            ports[*i].name()
        );
        return (steer::FullnatShare::Hash, Vec::new());
    }
    let mut made = Vec::new();
    for (i, rule) in &wanted {
        match FlowRule::create(ports[*i].id(), rule) {
            Ok(r) => made.push((*i, r)),
            Err(e) => {
                warn!(
                    "port {}: a validated flow rule was refused ({e}): FULLNAT local ports are \
                     shared by hash",
                    ports[*i].name()
                );
                return (steer::FullnatShare::Hash, Vec::new());
            }
        }
    }
    (steer::FullnatShare::Modulo, made)
}

/// Slots of each hand-off ring between two workers: 16 bursts of slack for an owner that is
/// a few turns behind.
const HANDOFF_RING: u32 = 512;

/// The RSS key when /dev/urandom cannot be read (Microsoft's example key).
const FALLBACK_RSS_KEY: [u8; steer::KEY_LEN] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// Bursts taken from each worker's slow-path ring per poll (32 x 32 packets).
const SLOW_PATH_BURSTS_PER_POLL: usize = 32;

/// Slots of each worker's ring to the kernel ([`dpdk::worker::KERNEL_RESERVED`] of them
/// kept for BGP and BFD).
const KERNEL_RING: u32 = 1024;

/// How often the control thread looks at the workers' rings (ARP for the neighbour table).
/// Room for sync records between the workers and the control thread, each way.
const SYNC_QUEUE: usize = 8192;

const CONTROL_POLL: Duration = Duration::from_millis(20);
