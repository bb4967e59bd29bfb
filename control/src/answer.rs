//! What the control thread answers and publishes about the running state: rvsadm's requests
//! ([`api_request`]), the state as ipvsadm shows it ([`running_state`]: the workers' exports
//! summed), IPVS's rates, `rvsadm status`, reloads, and the DPDK telemetry tables. Channels
//! to the workers only, no DPDK object: rvsd wires them.

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use dataplane::engine::WorkerExport;
use dpdk::worker;
use hashbrown::HashMap;
use tracing::{info, warn};

use crate::control::Core;
use crate::{config, snapshot, stats};

/// The control thread's line to the workers for rvsadm and the metrics: a question on each
/// worker's channel, the answers on one.
pub struct Exports {
    asks: Vec<mpsc::SyncSender<worker::ExportRequest>>,
    inbox: mpsc::Receiver<WorkerExport>,
    next: u64,
}

impl Exports {
    /// One question channel per worker (in worker order), and the answers' channel.
    pub fn new(
        asks: Vec<mpsc::SyncSender<worker::ExportRequest>>,
        inbox: mpsc::Receiver<WorkerExport>,
    ) -> Self {
        Exports {
            asks,
            inbox,
            next: 0,
        }
    }
}

/// How long the control thread waits for every worker's answer (a worker answers in the turn
/// it sees the question: microseconds, a few milliseconds when workers share a core).
pub const EXPORT_DEADLINE: Duration = Duration::from_millis(500);

impl Exports {
    /// Every worker's loads and totals (and connections, up to `conns` each), after zeroing
    /// what `zero` says.
    pub fn ask(
        &mut self,
        conns: Option<usize>,
        zero: Option<worker::Zero>,
    ) -> Result<Vec<WorkerExport>, String> {
        self.next += 1;
        let id = self.next;
        for ask in &self.asks {
            let q = worker::ExportRequest {
                id,
                conns,
                zero: zero.clone(),
            };
            ask.try_send(q)
                .map_err(|_| "a worker has questions pending: try again".to_owned())?;
        }
        let deadline = Instant::now() + EXPORT_DEADLINE;
        let mut answers = Vec::with_capacity(self.asks.len());
        while answers.len() < self.asks.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(left) {
                Ok(a) if a.request == id => answers.push(a),
                // An answer to an earlier question that timed out.
                Ok(_) => {}
                Err(_) => {
                    return Err(format!(
                        "{} of {} workers did not answer within {} ms",
                        self.asks.len() - answers.len(),
                        self.asks.len(),
                        EXPORT_DEADLINE.as_millis()
                    ))
                }
            }
        }
        answers.sort_by_key(|a| a.worker);
        Ok(answers)
    }
}

/// A service or a real server of one, as IPVS's estimator keys them.
pub type RateKey = (
    crate::api::Protocol,
    std::net::Ipv4Addr,
    u16,
    Option<std::net::SocketAddrV4>,
);

fn api_protocol(protocol: config::Protocol) -> crate::api::Protocol {
    match protocol {
        config::Protocol::TCP => crate::api::Protocol::TCP,
        config::Protocol::UDP => crate::api::Protocol::UDP,
    }
}

pub fn rate_keys(state: &crate::api::State) -> Vec<(RateKey, crate::api::Stats)> {
    let mut keys = Vec::new();
    for s in &state.services {
        keys.push(((s.protocol, s.address, s.port, None), s.stats));
        for r in &s.real_servers {
            let rs = std::net::SocketAddrV4::new(r.address, r.port);
            keys.push(((s.protocol, s.address, s.port, Some(rs)), r.stats));
        }
    }
    keys
}

/// The estimator's rates into a state.
pub fn fill_rates(
    rates: &crate::api::rate::Estimators<RateKey>,
    mut state: crate::api::State,
) -> crate::api::State {
    for s in &mut state.services {
        s.rates = rates.rates(&(s.protocol, s.address, s.port, None));
        for r in &mut s.real_servers {
            let rs = std::net::SocketAddrV4::new(r.address, r.port);
            r.rates = rates.rates(&(s.protocol, s.address, s.port, Some(rs)));
        }
    }
    state
}

/// The running state as ipvsadm shows it: the services of the running configuration with the
/// real servers the workers schedule to now (the checkers' verdicts applied), their loads and
/// totals summed over the workers; a service's totals are its servers'.
pub fn running_state(
    core: &Core,
    snap: &dataplane::snapshot::Snapshot,
    answers: &[WorkerExport],
    conns: bool,
) -> crate::api::State {
    use crate::api::{Connection, RealServerState, ServiceState, Stats};
    use dataplane::flow::Endpoint;
    let mut by_dest: HashMap<dataplane::sched::DestKey, (dataplane::sched::DestLoad, Stats)> =
        HashMap::new();
    for a in answers {
        for d in &a.dests {
            let (load, stats) = by_dest.entry(d.key).or_default();
            load.active += d.load.active;
            load.inactive += d.load.inactive;
            load.persistent += d.load.persistent;
            *stats += Stats::from(d.stats);
        }
    }
    let c = &core.running;
    let services = c
        .services
        .iter()
        .map(|sc| {
            let proto = sc.protocol.number();
            let vip = Endpoint::new(sc.vip, sc.port);
            let reals = snap
                .service(proto, vip)
                .map_or(&[][..], |(_, s)| &s.reals[..]);
            let real_servers: Vec<RealServerState> = reals
                .iter()
                .map(|r| {
                    let (load, st) = by_dest
                        .get(&(proto, vip, r.addr))
                        .copied()
                        .unwrap_or_default();
                    RealServerState {
                        address: r.addr.addr,
                        port: r.addr.port,
                        forward: crate::edit::forward_of(sc.lb_kind),
                        weight: r.weight,
                        upper_threshold: r.upper_threshold,
                        lower_threshold: r.lower_threshold,
                        active_conns: load.active,
                        inactive_conns: load.inactive,
                        persistent_conns: load.persistent,
                        stats: st,
                        rates: Default::default(),
                    }
                })
                .collect();
            let mut stats = Stats::default();
            for r in &real_servers {
                stats += r.stats;
            }
            ServiceState {
                protocol: api_protocol(sc.protocol),
                address: sc.vip,
                port: sc.port,
                scheduler: sc.lb_algo.name().to_owned(),
                flags: sc.sched_flags.iter().map(|f| f.name().to_owned()).collect(),
                persistent: sc.persistence_timeout,
                netmask: sc
                    .persistence_netmask
                    .unwrap_or(std::net::Ipv4Addr::BROADCAST),
                stats,
                rates: Default::default(),
                real_servers,
            }
        })
        .collect();
    let connections = conns.then(|| {
        answers
            .iter()
            .flat_map(|a| a.conns.iter().flatten())
            .map(|e| Connection {
                protocol: if e.protocol == 17 {
                    crate::api::Protocol::UDP
                } else {
                    crate::api::Protocol::TCP
                },
                state: if e.template {
                    "NONE".to_owned()
                } else if e.protocol == 17 {
                    "UDP".to_owned()
                } else {
                    e.state.name().to_owned()
                },
                expires_ms: e.expires_in_ms,
                source: std::net::SocketAddrV4::new(e.client.addr, e.client.port),
                virtual_: std::net::SocketAddrV4::new(e.vip.addr, e.vip.port),
                destination: std::net::SocketAddrV4::new(e.real.addr, e.real.port),
                local: (e.mode == dataplane::flow::ForwardMode::FullNat && !e.template)
                    .then(|| std::net::SocketAddrV4::new(e.local.addr, e.local.port)),
                template: e.template,
            })
            .collect()
    });
    crate::api::State {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        conn_tab_size: (c.connections.capacity * c.workers.len()) as u64,
        services,
        timeouts: crate::api::Timeouts {
            tcp: c.connections.tcp_timeout,
            tcpfin: c.connections.tcpfin_timeout,
            udp: c.connections.udp_timeout,
        },
        connections,
        taken_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    }
}

pub fn reloads_of(core: &Core) -> crate::api::metrics::Reloads {
    crate::api::metrics::Reloads {
        ok: core.reloads.ok,
        refused: core.reloads.refused,
        last_unix_ms: core.reloads.last_unix_ms,
        last_ok: core.reloads.last_ok,
    }
}

/// `rvsadm status`: workers, ports and their steering, checkers, VRRP, the last reload.
pub fn status(core: &Core, report: &stats::Report, steering: &[String]) -> serde_json::Value {
    let mut value = serde_json::to_value(report).unwrap_or_default();
    if let Some(ports) = value.get_mut("ports").and_then(|p| p.as_array_mut()) {
        for (port, how) in ports.iter_mut().zip(steering) {
            port["steering"] = serde_json::Value::String(how.clone());
        }
    }
    // `rvsadm -L --daemon`: the sync daemon's role, interface and id beside its counters.
    if let (Some(sync), Some(d)) = (&core.sync, &core.running.lvs_sync_daemon) {
        let state = if core.vrrp.is_master(sync.instance()) {
            "master"
        } else {
            "backup"
        };
        value["sync"]["state"] = state.into();
        value["sync"]["interface"] = d.interface.clone().into();
        value["sync"]["id"] = d.id.into();
    }
    value["config"] = serde_json::Value::String(core.file.display().to_string());
    value["reloads"] = serde_json::to_value(&core.reloads).unwrap_or_default();
    value["generation"] = core.generation.into();
    value
}

/// Reads the file again (SIGHUP, `rvsadm reload`) and publishes it; the message says what
/// changed.
pub fn reload(
    core: &mut Core,
    snapshots: &ArcSwap<dataplane::snapshot::Snapshot>,
) -> Result<String, String> {
    // systemd sees the reload begin and end (ExecReload waits for it).
    let _ = crate::notify::reloading("reloading");
    let new = core.read_file();
    let _ = crate::notify::ready("running");
    let new = new?;
    if new == core.running {
        let text = format!("reloaded {}: unchanged", core.file.display());
        info!("{text}");
        core.note_reload(true, "unchanged".to_owned());
        return Ok(text);
    }
    let (next, report) = core.reconfigure(new, &snapshots.load());
    log_services(&report);
    snapshots.store(Arc::new(next));
    let text = format!(
        "reloaded {}: {}; established connections keep their real servers",
        core.file.display(),
        report.summary
    );
    info!("{text}");
    core.note_reload(true, report.summary);
    Ok(text)
}

/// One rvsadm request, answered.
pub fn api_request(
    request: &crate::api::Request,
    core: &mut Core,
    snapshots: &ArcSwap<dataplane::snapshot::Snapshot>,
    exports: &mut Exports,
    rates: &mut crate::api::rate::Estimators<RateKey>,
    status_of: &dyn Fn(&Core) -> serde_json::Value,
) -> crate::api::Reply {
    use crate::api::{Reply, Request};
    match request {
        Request::State { connections, limit } => {
            let conns = connections.then(|| limit.unwrap_or(1_000_000));
            match exports.ask(conns, None) {
                Ok(answers) => {
                    let state = running_state(core, &snapshots.load(), &answers, *connections);
                    Reply::State(Box::new(fill_rates(rates, state)))
                }
                Err(e) => Reply::Error(e),
            }
        }
        Request::Zero { service } => {
            let zero = match service {
                None => worker::Zero::All,
                Some(k) => worker::Zero::Service(
                    match k.protocol {
                        crate::api::Protocol::TCP => 6,
                        crate::api::Protocol::UDP => 17,
                    },
                    dataplane::flow::Endpoint::new(k.address, k.port),
                ),
            };
            match exports.ask(None, Some(zero)) {
                Ok(_) => {
                    rates.zero_all(|_| crate::api::Stats::default());
                    Reply::Done("counters zeroed".to_owned())
                }
                Err(e) => Reply::Error(e),
            }
        }
        Request::Reload => match reload(core, snapshots) {
            Ok(text) => Reply::Done(text),
            Err(e) => {
                warn!("reload refused, the running configuration stays: {e}");
                Reply::Error(format!(
                    "reload refused, the running configuration stays: {e}"
                ))
            }
        },
        Request::SaveRon => Reply::Ron(config::to_ron(&core.running)),
        Request::Status => Reply::Status(status_of(core)),
        edit => match crate::edit::apply(&core.running, edit, &core.cores) {
            Ok((new, done)) => {
                let (next, report) = core.reconfigure(new, &snapshots.load());
                log_services(&report);
                snapshots.store(Arc::new(next));
                core.reloads.edits += 1;
                info!("rvsadm: {done}");
                Reply::Done(done)
            }
            Err(e) => Reply::Error(e),
        },
    }
}

/// rvs's telemetry commands and their help.
pub const TELEMETRY: [(&str, &str); 5] = [
    (
        "/rvs/info",
        "rvsd: version, workers, ports, services, reloads. No parameters",
    ),
    (
        "/rvs/stats",
        "Totals and rates over all virtual services (ipvsadm --stats/--rate). No parameters",
    ),
    (
        "/rvs/services",
        "Virtual services with their real servers' loads. No parameters",
    ),
    (
        "/rvs/drops",
        "Dropped packets by reason, over ports and workers. No parameters",
    ),
    ("/rvs/vrrp", "Each VRRP instance's state. No parameters"),
];

/// The telemetry commands' answers, refreshed with the rates (every 2 s).
pub fn publish_telemetry(core: &Core, state: &crate::api::State, report: &stats::Report) {
    use dpdk::telemetry::{publish, Answer, Value};
    let reals: usize = state.services.iter().map(|s| s.real_servers.len()).sum();
    let conns: u64 = report.workers.iter().map(|w| w.connections).sum();
    publish(
        "/rvs/info",
        Answer::Dict(vec![
            ("version".into(), Value::Str(state.version.clone())),
            ("config".into(), Value::Str(core.file.display().to_string())),
            ("workers".into(), Value::U64(report.workers.len() as u64)),
            ("ports".into(), Value::U64(report.ports.len() as u64)),
            ("services".into(), Value::U64(state.services.len() as u64)),
            ("real_servers".into(), Value::U64(reals as u64)),
            ("connections".into(), Value::U64(conns)),
            ("generation".into(), Value::U64(core.generation)),
            ("reloads_ok".into(), Value::U64(core.reloads.ok)),
            ("reloads_refused".into(), Value::U64(core.reloads.refused)),
            ("edits".into(), Value::U64(core.reloads.edits)),
        ]),
    );
    let mut totals = crate::api::Stats::default();
    let mut rates = crate::api::Rates::default();
    for s in &state.services {
        totals += s.stats;
        rates += s.rates;
    }
    publish(
        "/rvs/stats",
        Answer::Dict(vec![
            ("conns".into(), Value::U64(totals.conns)),
            ("inpkts".into(), Value::U64(totals.inpkts)),
            ("outpkts".into(), Value::U64(totals.outpkts)),
            ("inbytes".into(), Value::U64(totals.inbytes)),
            ("outbytes".into(), Value::U64(totals.outbytes)),
            ("cps".into(), Value::U64(rates.cps)),
            ("inpps".into(), Value::U64(rates.inpps)),
            ("outpps".into(), Value::U64(rates.outpps)),
            ("inbps".into(), Value::U64(rates.inbps)),
            ("outbps".into(), Value::U64(rates.outbps)),
        ]),
    );
    publish(
        "/rvs/services",
        Answer::List(
            state
                .services
                .iter()
                .map(|s| {
                    let active: u32 = s.real_servers.iter().map(|r| r.active_conns).sum();
                    let inactive: u32 = s.real_servers.iter().map(|r| r.inactive_conns).sum();
                    format!(
                        "{:?} {}:{} {}: {} real servers, {active} active, {inactive} inactive",
                        s.protocol,
                        s.address,
                        s.port,
                        s.scheduler,
                        s.real_servers.len()
                    )
                })
                .collect(),
        ),
    );
    let mut drops: std::collections::BTreeMap<&str, u64> = Default::default();
    for p in &report.ports {
        for (reason, n) in &p.counters.drops {
            *drops.entry(reason).or_default() += n;
        }
    }
    publish(
        "/rvs/drops",
        Answer::Dict(
            drops
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::U64(v)))
                .collect(),
        ),
    );
    publish(
        "/rvs/vrrp",
        Answer::Dict(
            report
                .vrrp
                .iter()
                .map(|i| (i.name.clone(), Value::Str(i.state.to_owned())))
                .collect(),
        ),
    );
}

/// The per-service lines of a report (none beyond `snapshot::SERVICE_LINES_MAX`: the summary
/// says it), and what several workers cannot do yet.
pub fn log_services(report: &snapshot::ServiceReport) {
    for line in &report.lines {
        info!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::conn::TcpState;
    use dataplane::engine::ConnExport;
    use dataplane::flow::{Endpoint, ForwardMode};
    use dataplane::sched::{DestExport, DestLoad, DestStats};
    use std::path::Path;

    fn core() -> Core {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/lab-nat.ron"),
        )
        .unwrap()
        .replace("stats_file: \"/run/rvs/lab-stats.json\",", "");
        let running = config::parse_with_cores(Path::new("lab-nat.ron"), text, &[0, 1, 2])
            .unwrap()
            .config;
        let macs = vec![[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]];
        Core {
            file: "lab-nat.ron".into(),
            cores: vec![0, 1, 2],
            vrrp: crate::vrrp::Vrrp::new(&running, &macs, Instant::now()),
            running,
            macs,
            health: crate::health::Health::new(),
            sync: None,
            neighbors: crate::neigh::Neighbors::new(),
            generation: 1,
            reloads: Default::default(),
            changed: false,
            announcer: Default::default(),
        }
    }

    /// The core learns a neighbour from an ARP request for one of rvs's addresses (a snapshot
    /// is then due) and has the caller answer it; a reply on a port with a kernel interface
    /// goes to the kernel; a frame of no use is dropped.
    #[test]
    fn slow_path_frames_teach_the_core() {
        let mut core = core();
        let hops = core.wanted_hops();
        core.neighbors.want(&hops);
        let snap = core.build(None);
        let mut out = Vec::new();
        let rs_mac = [2, 0x55, 0, 0, 0, 11];
        // An ARP frame from real server 203.0.113.11 (port 1) for `target`.
        let arp = |op: u16, target: [u8; 4]| {
            let mut f =
                dataplane::engine::arp_request(rs_mac, [203, 0, 113, 11].into(), target.into())
                    .to_vec();
            f[20..22].copy_from_slice(&op.to_be_bytes());
            f
        };
        let now = Instant::now();
        assert_eq!(
            core.on_frame(1, &arp(1, [203, 0, 113, 1]), &snap, now, &mut out),
            crate::control::FrameVerdict::AnswerArp
        );
        assert!(core.take_changed(), "a next hop learnt");
        assert_eq!(
            core.neighbors.mac((1, [203, 0, 113, 11].into())),
            Some(rs_mac)
        );
        assert_eq!(
            core.on_frame(1, &arp(2, [203, 0, 113, 1]), &snap, now, &mut out),
            crate::control::FrameVerdict::ToKernel
        );
        assert!(!core.take_changed(), "the same neighbour again");
        assert_eq!(
            core.on_frame(1, &arp(1, [203, 0, 113, 77]), &snap, now, &mut out),
            crate::control::FrameVerdict::Done,
            "not one of ours"
        );
        assert_eq!(
            core.on_frame(1, &[0u8; 60], &snap, now, &mut out),
            crate::control::FrameVerdict::Done
        );
        assert!(out.is_empty(), "nothing to send without VRRP");
    }

    fn ep(a: [u8; 4], port: u16) -> Endpoint {
        Endpoint::new(a.into(), port)
    }

    /// Two workers' exports summed per real server, a service's totals its servers', the
    /// configuration's names; connections with IPVS's state names (UDP's "UDP", a template's
    /// "NONE").
    #[test]
    fn the_workers_exports_become_ipvsadms_state() {
        let core = core();
        let snap = core.build(None);
        let vip = ep([198, 51, 100, 100], 80);
        let rs1 = ep([203, 0, 113, 11], 80);
        let dest = |active, conns, inpkts| DestExport {
            key: (6, vip, rs1),
            load: DestLoad {
                active,
                inactive: 1,
                ..Default::default()
            },
            stats: DestStats {
                conns,
                inpkts,
                outpkts: inpkts - 1,
                inbytes: 100 * inpkts,
                outbytes: 1000,
            },
        };
        let conn = |protocol, template| ConnExport {
            protocol,
            state: TcpState::Established,
            expires_in_ms: 899_000,
            client: ep([198, 51, 100, 10], if template { 0 } else { 40000 }),
            vip,
            real: rs1,
            local: ep([198, 51, 100, 10], 40000),
            mode: ForwardMode::Nat,
            template,
        };
        let answers = vec![
            WorkerExport {
                worker: 0,
                request: 1,
                dests: vec![dest(2, 10, 50)],
                conns: Some(vec![conn(6, false), conn(17, false)]),
            },
            WorkerExport {
                worker: 1,
                request: 1,
                dests: vec![dest(3, 5, 20)],
                conns: Some(vec![conn(6, true)]),
            },
        ];
        let state = running_state(&core, &snap, &answers, true);
        assert_eq!(state.conn_tab_size, 1_048_576, "one worker's table");
        assert_eq!(state.services.len(), 2);
        let tcp = &state.services[0];
        assert_eq!(
            (tcp.scheduler.as_str(), tcp.port, tcp.real_servers.len()),
            ("rr", 80, 3)
        );
        let r = &tcp.real_servers[0];
        assert_eq!(
            (r.forward, r.weight, r.active_conns, r.inactive_conns),
            (crate::api::Forward::Masq, 1, 5, 2)
        );
        assert_eq!(
            (
                r.stats.conns,
                r.stats.inpkts,
                r.stats.outpkts,
                r.stats.inbytes
            ),
            (15, 70, 68, 7000)
        );
        assert_eq!(tcp.stats, r.stats, "the service's totals are its servers'");
        assert_eq!(state.services[1].stats, Default::default());
        let states: Vec<&str> = state
            .connections
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.state.as_str())
            .collect();
        assert_eq!(states, ["ESTABLISHED", "UDP", "NONE"]);
        assert_eq!(
            (
                state.timeouts.tcp,
                state.timeouts.tcpfin,
                state.timeouts.udp
            ),
            (900, 120, 300)
        );
        assert!(running_state(&core, &snap, &answers, false)
            .connections
            .is_none());
    }
}
