//! The Prometheus text exposition format (version 0.0.4) of the running state and the
//! counters report, sans-IO: [`render`] returns the text, [`super::http`] serves it.
//!
//! Three groups of families:
//!
//! - node_exporter's IPVS collector (`collector/ipvs_linux.go`), names, help texts and labels
//!   exactly, so its dashboards and alerts work unchanged: `node_ipvs_connections_total`,
//!   `node_ipvs_incoming_packets_total`, `node_ipvs_outgoing_packets_total`,
//!   `node_ipvs_incoming_bytes_total`, `node_ipvs_outgoing_bytes_total` (the totals over all
//!   services, node_exporter's `/proc/net/ip_vs_stats`), and
//!   `node_ipvs_backend_connections_active`, `node_ipvs_backend_connections_inactive`,
//!   `node_ipvs_backend_weight` with its labels `local_address`, `local_mark` (always empty:
//!   rvs has no fwmark services), `local_port`, `proto` (`TCP`, `UDP`), `remote_address`,
//!   `remote_port`, written in client_golang's order (sorted).
//! - keepalived's VRRP state as mehdy/keepalived-exporter (`internal/collector`) exports it:
//!   `keepalived_up` and `keepalived_vrrp_state{iname,intf,ip_address,vrid}` with keepalived's
//!   numbers (0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT; rvs's STOP is keepalived's
//!   `VRRP_STATE_STOP`, 98). As that exporter, one sample per virtual address, with the
//!   instance's port as `intf` and its VRID; for an instance without addresses one sample with
//!   `ip_address=""`. That exporter has no `realid` nor `wantstate`
//!   label, and knows the states INIT..FAULT (0..3) only (keepalived 2's `vrrp.h` has no
//!   other but DELETED 97 and STOP 98). (gen2brain/keepalived_exporter has no state gauge,
//!   only the state as a label of its `keepalived_vrrp_*` counters.)
//! - `rvs_*` for the rest, listed in [`render`].

use std::fmt::Write as _;

use super::state::{Protocol, Rates, State, Stats};
use crate::stats::{Counters, Report};

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Configuration reloads (SIGHUP), counted by the daemon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reloads {
    /// Reloads applied.
    pub ok: u64,
    /// Reloads refused (the new configuration did not validate; the old one runs on).
    pub refused: u64,
    /// When the last one was tried (Unix milliseconds; 0: none yet).
    pub last_unix_ms: u64,
    /// Whether the last one was applied.
    pub last_ok: bool,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

type Labels = Vec<(&'static str, String)>;

/// A number read from `T`, with its help text (and the family's name, for [`Field`]).
type Part<T> = (&'static str, fn(&T) -> u64);
type Field<T> = (&'static str, &'static str, fn(&T) -> u64);

/// The text, a family at a time.
struct Out {
    text: String,
    #[cfg(debug_assertions)]
    names: std::collections::HashSet<&'static str>,
}

impl Out {
    /// One family: its HELP and TYPE lines and its samples (`value` already formatted);
    /// nothing at all without samples.
    fn family(
        &mut self,
        name: &'static str,
        kind: Kind,
        help: &str,
        samples: impl IntoIterator<Item = (Labels, String)>,
    ) {
        #[cfg(debug_assertions)]
        assert!(self.names.insert(name), "family {name} written twice");
        debug_assert_eq!(
            name.ends_with("_total"),
            matches!(kind, Kind::Counter),
            "{name}"
        );
        let mut samples = samples.into_iter().peekable();
        if samples.peek().is_none() {
            return;
        }
        let t = &mut self.text;
        let _ = writeln!(t, "# HELP {name} {}", escape_help(help));
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(t, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            t.push_str(name);
            if !labels.is_empty() {
                t.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        t.push(',');
                    }
                    let _ = write!(t, "{k}=\"{}\"", escape_label(v));
                }
                t.push('}');
            }
            let _ = writeln!(t, " {value}");
        }
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &'static str, kind: Kind, help: &str, value: u64) {
        self.family(name, kind, help, [(Vec::new(), value.to_string())]);
    }
}

/// A label value: backslash, double quote and line feed escaped.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A HELP text: backslash and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Milliseconds as seconds, exactly: `1700000000.123`.
fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000)
    }
}

fn bool01(b: bool) -> String {
    u64::from(b).to_string()
}

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::TCP => "TCP",
        Protocol::UDP => "UDP",
    }
}

/// keepalived's number for a VRRP state (`vrrp.h`), as keepalived-exporter exports it.
fn vrrp_state_number(state: &str) -> Option<u64> {
    match state {
        "INIT" => Some(0),
        "BACKUP" => Some(1),
        "MASTER" => Some(2),
        "FAULT" => Some(3),
        "STOP" => Some(98),
        _ => None,
    }
}

/// `"203.0.113.1:80"` as address and port; the whole as the address if it is not that.
fn split_addr(s: &str) -> (String, String) {
    match s.rsplit_once(':') {
        Some((a, p)) if p.parse::<u16>().is_ok() => (a.to_owned(), p.to_owned()),
        _ => (s.to_owned(), String::new()),
    }
}

/// A health report's service name (`"TCP 203.0.113.100:80"`, `health::service_name`) as
/// the labels of the state's services.
fn health_service_labels(name: &str) -> Labels {
    let (p, addr) = name.split_once(' ').unwrap_or(("", name));
    let (a, port) = split_addr(addr);
    vec![
        ("local_address", a),
        ("local_port", port),
        ("proto", p.to_owned()),
    ]
}

/// The five IPVS counters (`totals`: their families' names) and rates (`rates`) of the
/// services or real servers (`what`), `items` giving each one's labels, totals and rates.
fn stats_families(
    out: &mut Out,
    what: &str,
    totals: [&'static str; 5],
    rates: [&'static str; 5],
    items: &[(Labels, Stats, Rates)],
) {
    let counters: [Part<Stats>; 5] = [
        ("Connections", |s| s.conns),
        ("Incoming packets", |s| s.inpkts),
        ("Outgoing packets", |s| s.outpkts),
        ("Incoming bytes", |s| s.inbytes),
        ("Outgoing bytes", |s| s.outbytes),
    ];
    for (name, (help, get)) in totals.into_iter().zip(counters) {
        out.family(
            name,
            Kind::Counter,
            &format!("{help} of the {what} since start or its last zeroing (ipvsadm --stats)."),
            items
                .iter()
                .map(|(l, s, _)| (l.clone(), get(s).to_string())),
        );
    }
    let per_s: [Part<Rates>; 5] = [
        ("Connections per second", |r| r.cps),
        ("Incoming packets per second", |r| r.inpps),
        ("Outgoing packets per second", |r| r.outpps),
        ("Incoming bytes per second", |r| r.inbps),
        ("Outgoing bytes per second", |r| r.outbps),
    ];
    for (name, (help, get)) in rates.into_iter().zip(per_s) {
        out.family(
            name,
            Kind::Gauge,
            &format!("{help} of the {what}, IPVS's 2 s estimator (ipvsadm --rate)."),
            items
                .iter()
                .map(|(l, _, r)| (l.clone(), get(r).to_string())),
        );
    }
}

/// The text exposition of the running state, the counters report and the reloads.
///
/// The `rvs_*` families (besides node_exporter's and keepalived-exporter's, see the module):
///
/// - `rvs_build_info{version}`, `rvs_connection_table_size`;
/// - per worker (`worker`: its core) and port (`port`: its name), the data path's counters:
///   `rvs_rx_packets_total`, `rvs_rx_bytes_total`, `rvs_tx_packets_total`,
///   `rvs_tx_bytes_total`, `rvs_forwarded_packets_total`, `rvs_connections_created_total`,
///   `rvs_arp_replies_total`, `rvs_icmp_echo_replies_total`, `rvs_icmp_errors_sent_total`,
///   `rvs_resets_sent_total`, `rvs_to_control_packets_total`, `rvs_to_kernel_packets_total`,
///   and `rvs_drops_total{worker,port,reason}` with every reason of
///   `dataplane::counters::DropReason` (zero or not); sum over `worker` for a port's;
/// - per port: `rvs_port_up`, `rvs_port_speed_bytes`, the device's own counters
///   `rvs_port_device_{rx_packets,tx_packets,rx_missed,rx_errors,tx_errors,rx_no_mbuf}_total`,
///   and the kernel path `rvs_kernel_packets_total{port,interface,direction}` and
///   `rvs_kernel_dropped_total{port,interface,direction}` (`direction`: `up` to the kernel,
///   `down` from it);
/// - per worker: `rvs_connections`, `rvs_connections_expired_total`,
///   `rvs_connections_evicted_total`, `rvs_connections_expired_nodest_total`,
///   `rvs_connections_sloppy_total`,
///   `rvs_fast_path_packets_total`, `rvs_handed_out_packets_total`,
///   `rvs_handed_in_packets_total` (hand-offs refused are `rvs_drops_total{reason="handoff_full"}`), `rvs_sync_worker_sent_total`,
///   `rvs_sync_worker_lost_total`, `rvs_sync_worker_installed_total`,
///   `rvs_sync_worker_refused_total`, `rvs_connection_table_bytes_per_connection`;
/// - connection sync (with `lvs_sync_daemon`): `rvs_sync_messages_sent_total`,
///   `rvs_sync_connections_sent_total`, `rvs_sync_messages_received_total`,
///   `rvs_sync_connections_received_total`, `rvs_sync_refused_total{reason}`;
/// - VRRP: `rvs_vrrp_priority{iname}`, `rvs_vrrp_last_transition_timestamp_seconds{iname}`,
///   `rvs_vrrp_adverts_received_total`, `rvs_vrrp_adverts_sent_total`,
///   `rvs_vrrp_gratuitous_arps_sent_total`, `rvs_vrrp_adverts_refused_total{reason}`;
/// - announce by health: `rvs_vip_announced{vip}`;
/// - health checks: `rvs_health_checks_total`, per real server `rvs_real_server_up` and
///   `rvs_real_server_last_change_timestamp_seconds`, per service `rvs_service_quorum_up`,
///   `rvs_service_live_weight`, `rvs_service_sorry_server_active`;
/// - per service (`local_address`, `local_port`, `proto`) and real server (those and
///   `remote_address`, `remote_port`): `rvs_service_{connections,incoming_packets,
///   outgoing_packets,incoming_bytes,outgoing_bytes}_total`, `rvs_service_rate_{cps,inpps,
///   outpps,inbps,outbps}` (bps: bytes per second, as ipvsadm), the same as `rvs_real_server_*`,
///   and `rvs_real_server_persistent_connections`;
/// - reloads: `rvs_reloads_total{result="ok"|"refused"}`,
///   `rvs_last_reload_timestamp_seconds` (0: none yet), `rvs_last_reload_successful`.
pub fn render(state: &State, report: &Report, reloads: &Reloads) -> String {
    let mut out = Out {
        text: String::with_capacity(16 * 1024),
        #[cfg(debug_assertions)]
        names: Default::default(),
    };
    node_ipvs(&mut out, state);
    keepalived(&mut out, report);
    rvs_meta(&mut out, state);
    rvs_datapath(&mut out, report);
    rvs_workers(&mut out, report);
    rvs_sync(&mut out, report);
    rvs_vrrp(&mut out, report);
    rvs_announce(&mut out, report);
    rvs_health(&mut out, report);
    rvs_services(&mut out, state);
    rvs_reloads(&mut out, reloads);
    out.text
}

fn node_ipvs(out: &mut Out, state: &State) {
    let mut backends: Vec<(Labels, [u64; 3])> = Vec::new();
    for s in &state.services {
        for r in &s.real_servers {
            let labels = vec![
                ("local_address", s.address.to_string()),
                ("local_mark", String::new()),
                ("local_port", s.port.to_string()),
                ("proto", proto(s.protocol).to_owned()),
                ("remote_address", r.address.to_string()),
                ("remote_port", r.port.to_string()),
            ];
            let v = [
                u64::from(r.active_conns),
                u64::from(r.inactive_conns),
                u64::from(r.weight),
            ];
            // node_exporter sums the backends of equal labels (fwmark services).
            match backends.iter_mut().find(|(l, _)| *l == labels) {
                Some((_, sum)) => {
                    for (a, b) in sum.iter_mut().zip(v) {
                        *a += b;
                    }
                }
                None => backends.push((labels, v)),
            }
        }
    }
    let helps = [
        (
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
        ),
        (
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
        ),
        (
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
        ),
    ];
    for (i, (name, help)) in helps.into_iter().enumerate() {
        out.family(
            name,
            Kind::Gauge,
            help,
            backends.iter().map(|(l, v)| (l.clone(), v[i].to_string())),
        );
    }
    let mut total = Stats::default();
    for s in &state.services {
        total += s.stats;
    }
    let c = Kind::Counter;
    out.single(
        "node_ipvs_connections_total",
        c,
        "The total number of connections made.",
        total.conns,
    );
    out.single(
        "node_ipvs_incoming_packets_total",
        c,
        "The total number of incoming packets.",
        total.inpkts,
    );
    out.single(
        "node_ipvs_outgoing_packets_total",
        c,
        "The total number of outgoing packets.",
        total.outpkts,
    );
    out.single(
        "node_ipvs_incoming_bytes_total",
        c,
        "The total amount of incoming data.",
        total.inbytes,
    );
    out.single(
        "node_ipvs_outgoing_bytes_total",
        c,
        "The total amount of outgoing data.",
        total.outbytes,
    );
}

fn keepalived(out: &mut Out, report: &Report) {
    if report.vrrp.is_empty() && report.vrrp_counters.is_none() {
        return;
    }
    out.single("keepalived_up", Kind::Gauge, "Status", 1);
    out.family(
        "keepalived_vrrp_state",
        Kind::Gauge,
        "State of vrrp",
        // As the exporter: one sample per address an instance holds (one with an empty
        // address for an instance that holds none).
        report.vrrp.iter().flat_map(|v| {
            let n = vrrp_state_number(v.state);
            let addresses = if v.addresses.is_empty() {
                vec![String::new()]
            } else {
                v.addresses.clone()
            };
            addresses.into_iter().filter_map(move |ip| {
                Some((
                    vec![
                        ("iname", v.name.clone()),
                        ("intf", v.interface.clone()),
                        ("ip_address", ip),
                        ("vrid", v.vrid.to_string()),
                    ],
                    n?.to_string(),
                ))
            })
        }),
    );
}

fn rvs_meta(out: &mut Out, state: &State) {
    out.family(
        "rvs_build_info",
        Kind::Gauge,
        "rvs's version (the value is always 1).",
        [(vec![("version", state.version.clone())], "1".to_owned())],
    );
    out.single(
        "rvs_connection_table_size",
        Kind::Gauge,
        "The connection table's size: the total over the workers (ipvsadm's size=).",
        state.conn_tab_size,
    );
}

fn rvs_datapath(out: &mut Out, report: &Report) {
    let port_name = |i: usize| {
        report
            .ports
            .get(i)
            .map_or_else(|| i.to_string(), |p| p.name.clone())
    };
    // (worker, port, counters) for every worker and port.
    let cells: Vec<(String, String, &Counters)> = report
        .workers
        .iter()
        .flat_map(|w| {
            w.ports
                .iter()
                .enumerate()
                .map(move |(i, c)| (w.core.to_string(), i, c))
        })
        .map(|(w, i, c)| (w, port_name(i), c))
        .collect();
    let counters: [Field<Counters>; 12] = [
        (
            "rvs_rx_packets_total",
            "Packets received, by the worker that polled them and the port.",
            |c| c.rx_packets,
        ),
        (
            "rvs_rx_bytes_total",
            "Bytes received, by the worker that polled them and the port.",
            |c| c.rx_bytes,
        ),
        (
            "rvs_tx_packets_total",
            "Packets sent, by worker and port.",
            |c| c.tx_packets,
        ),
        (
            "rvs_tx_bytes_total",
            "Bytes sent, by worker and port.",
            |c| c.tx_bytes,
        ),
        (
            "rvs_forwarded_packets_total",
            "Packets of connections forwarded, counted on the ingress port.",
            |c| c.forwarded,
        ),
        (
            "rvs_connections_created_total",
            "Connections created by packets arriving on the port.",
            |c| c.connections_created,
        ),
        (
            "rvs_arp_replies_total",
            "ARP replies sent for the port's addresses.",
            |c| c.arp_replies,
        ),
        (
            "rvs_icmp_echo_replies_total",
            "ICMP echo replies sent for the port's addresses.",
            |c| c.icmp_echo_replies,
        ),
        (
            "rvs_icmp_errors_sent_total",
            "ICMP errors rvs originated (time exceeded, fragmentation needed).",
            |c| c.icmp_errors_sent,
        ),
        (
            "rvs_resets_sent_total",
            "TCP resets sent for segments to a virtual service of no connection.",
            |c| c.resets_sent,
        ),
        (
            "rvs_to_control_packets_total",
            "Packets handed to the control thread.",
            |c| c.to_control,
        ),
        (
            "rvs_to_kernel_packets_total",
            "Packets handed to the kernel path (refused ones: rvs_drops_total{reason=\"kernel_full\"}).",
            |c| c.to_kernel,
        ),
    ];
    for (name, help, get) in counters {
        out.family(
            name,
            Kind::Counter,
            help,
            cells.iter().map(|(w, p, c)| {
                (
                    vec![("worker", w.clone()), ("port", p.clone())],
                    get(c).to_string(),
                )
            }),
        );
    }
    out.family(
        "rvs_drops_total",
        Kind::Counter,
        "Packets dropped, by worker, port and reason.",
        cells.iter().flat_map(|(w, p, c)| {
            c.drops.iter().map(move |(reason, n)| {
                (
                    vec![
                        ("worker", w.clone()),
                        ("port", p.clone()),
                        ("reason", (*reason).to_owned()),
                    ],
                    n.to_string(),
                )
            })
        }),
    );

    let port = |name: &str| vec![("port", name.to_owned())];
    out.family(
        "rvs_port_up",
        Kind::Gauge,
        "Whether the port's link is up (1) or down (0).",
        report
            .ports
            .iter()
            .map(|p| (port(&p.name), bool01(p.link_up))),
    );
    out.family(
        "rvs_port_speed_bytes",
        Kind::Gauge,
        "The port's link speed in bytes per second (0: unknown).",
        report.ports.iter().map(|p| {
            (
                port(&p.name),
                (u64::from(p.speed_mbps) * 125_000).to_string(),
            )
        }),
    );
    let device: [Field<crate::stats::DeviceCounters>; 6] = [
        (
            "rvs_port_device_rx_packets_total",
            "Packets the device received.",
            |d| d.rx_packets,
        ),
        (
            "rvs_port_device_tx_packets_total",
            "Packets the device sent.",
            |d| d.tx_packets,
        ),
        (
            "rvs_port_device_rx_missed_total",
            "Packets the device dropped for want of a free receive descriptor (the workers are behind).",
            |d| d.rx_missed,
        ),
        (
            "rvs_port_device_rx_errors_total",
            "Receive errors the device counted.",
            |d| d.rx_errors,
        ),
        (
            "rvs_port_device_tx_errors_total",
            "Transmit errors the device counted.",
            |d| d.tx_errors,
        ),
        (
            "rvs_port_device_rx_no_mbuf_total",
            "Receive failures for want of an mbuf.",
            |d| d.rx_no_mbuf,
        ),
    ];
    for (name, help, get) in device {
        out.family(
            name,
            Kind::Counter,
            help,
            report
                .ports
                .iter()
                .map(|p| (port(&p.name), get(&p.device).to_string())),
        );
    }
    let kernel: Vec<_> = report
        .ports
        .iter()
        .filter_map(|p| p.kernel.as_ref().map(|k| (p, k)))
        .collect();
    let klabels = |p: &crate::stats::PortReport, k: &crate::stats::KernelReport, d: &str| {
        vec![
            ("port", p.name.clone()),
            ("interface", k.interface.clone()),
            ("direction", d.to_owned()),
        ]
    };
    out.family(
        "rvs_kernel_packets_total",
        Kind::Counter,
        "Packets through the port's kernel interface: up to the kernel, down from it.",
        kernel.iter().flat_map(|(p, k)| {
            [
                (klabels(p, k, "up"), k.counters.up.to_string()),
                (klabels(p, k, "down"), k.counters.down.to_string()),
            ]
        }),
    );
    out.family(
        "rvs_kernel_dropped_total",
        Kind::Counter,
        "Packets the kernel path dropped: up, refused by the interface; down, dropped on the way out.",
        kernel.iter().flat_map(|(p, k)| {
            [
                (klabels(p, k, "up"), k.counters.up_dropped.to_string()),
                (klabels(p, k, "down"), k.counters.down_dropped.to_string()),
            ]
        }),
    );
}

fn rvs_workers(out: &mut Out, report: &Report) {
    type Get = fn(&crate::stats::WorkerReport) -> u64;
    let per_worker: [(&'static str, Kind, &str, Get); 13] = [
        (
            "rvs_connections",
            Kind::Gauge,
            "Connections in the worker's table now.",
            |w| w.connections,
        ),
        (
            "rvs_connections_expired_total",
            Kind::Counter,
            "Connections expired by the worker's timers.",
            |w| w.connections_expired,
        ),
        (
            "rvs_connections_evicted_total",
            Kind::Counter,
            "Embryonic connections whose slot a new SYN took in a full table.",
            |w| w.connections_evicted,
        ),
        (
            "rvs_connections_expired_nodest_total",
            Kind::Counter,
            "Connections ended because their real server left a service with expire_nodest_conn.",
            |w| w.connections_expired_nodest,
        ),
        (
            "rvs_connections_sloppy_total",
            Kind::Counter,
            "Connections created from a TCP segment without SYN (sloppy_tcp): flows another node had.",
            |w| w.connections_sloppy,
        ),
        (
            "rvs_fast_path_packets_total",
            Kind::Counter,
            "Packets the established fast path forwarded (the rest took the full path).",
            |w| w.fast_path,
        ),
        (
            "rvs_handed_out_packets_total",
            Kind::Counter,
            "Packets the worker received for another worker's connection and handed to it (refused: rvs_drops_total{reason=\"handoff_full\"}).",
            |w| w.handed_out,
        ),
        (
            "rvs_handed_in_packets_total",
            Kind::Counter,
            "Packets other workers handed to this one.",
            |w| w.handed_in,
        ),
        (
            "rvs_sync_worker_sent_total",
            Kind::Counter,
            "Connection sync, master: connections the worker handed to the sync daemon.",
            |w| w.sync_sent,
        ),
        (
            "rvs_sync_worker_lost_total",
            Kind::Counter,
            "Connection sync, master: connections lost for want of room on the way to the sync daemon.",
            |w| w.sync_lost,
        ),
        (
            "rvs_sync_worker_installed_total",
            Kind::Counter,
            "Connection sync, backup: synced connections the worker installed.",
            |w| w.synced_in,
        ),
        (
            "rvs_sync_worker_refused_total",
            Kind::Counter,
            "Connection sync, backup: synced connections the worker refused.",
            |w| w.sync_refused,
        ),
        (
            "rvs_connection_table_bytes_per_connection",
            Kind::Gauge,
            "The worker's connection table memory divided by its capacity.",
            |w| w.bytes_per_connection,
        ),
    ];
    for (name, kind, help, get) in per_worker {
        out.family(
            name,
            kind,
            help,
            report
                .workers
                .iter()
                .map(|w| (vec![("worker", w.core.to_string())], get(w).to_string())),
        );
    }
}

fn rvs_sync(out: &mut Out, report: &Report) {
    let Some(c) = &report.sync else {
        return;
    };
    let k = Kind::Counter;
    out.single(
        "rvs_sync_messages_sent_total",
        k,
        "Connection sync, master: messages sent.",
        c.messages_sent,
    );
    out.single(
        "rvs_sync_connections_sent_total",
        k,
        "Connection sync, master: connections sent.",
        c.conns_sent,
    );
    out.single(
        "rvs_sync_messages_received_total",
        k,
        "Connection sync, backup: messages taken.",
        c.messages_received,
    );
    out.single(
        "rvs_sync_connections_received_total",
        k,
        "Connection sync, backup: connections handed to the workers.",
        c.conns_received,
    );
    out.family(
        "rvs_sync_refused_total",
        k,
        "Connection sync, backup: messages and connections refused, by reason.",
        c.refused
            .iter()
            .map(|(why, n)| (vec![("reason", (*why).to_owned())], n.to_string())),
    );
}

/// Announce by health: 1 while the VIP is on its kernel interface (announced), else 0.
fn rvs_announce(out: &mut Out, report: &Report) {
    out.family(
        "rvs_vip_announced",
        Kind::Gauge,
        "Whether the VIP is on its kernel interface for the routing daemon to announce (announce).",
        report.announce.iter().map(|v| {
            (
                vec![("vip", v.vip.clone())],
                u64::from(v.announced).to_string(),
            )
        }),
    );
}

fn rvs_vrrp(out: &mut Out, report: &Report) {
    let iname = |n: &str| vec![("iname", n.to_owned())];
    out.family(
        "rvs_vrrp_priority",
        Kind::Gauge,
        "The VRRP instance's priority now.",
        report
            .vrrp
            .iter()
            .map(|v| (iname(&v.name), v.priority.to_string())),
    );
    out.family(
        "rvs_vrrp_last_transition_timestamp_seconds",
        Kind::Gauge,
        "When the VRRP instance entered its state (Unix seconds).",
        report
            .vrrp
            .iter()
            .map(|v| (iname(&v.name), seconds(v.since_unix_ms))),
    );
    let Some(c) = &report.vrrp_counters else {
        return;
    };
    let k = Kind::Counter;
    out.single(
        "rvs_vrrp_adverts_received_total",
        k,
        "VRRP adverts received.",
        c.adverts_received,
    );
    out.single(
        "rvs_vrrp_adverts_sent_total",
        k,
        "VRRP adverts sent.",
        c.adverts_sent,
    );
    out.single(
        "rvs_vrrp_gratuitous_arps_sent_total",
        k,
        "Gratuitous ARPs sent for the virtual addresses.",
        c.gratuitous_arps_sent,
    );
    out.family(
        "rvs_vrrp_adverts_refused_total",
        k,
        "VRRP adverts refused, by reason.",
        c.refused
            .iter()
            .map(|(why, n)| (vec![("reason", (*why).to_owned())], n.to_string())),
    );
}

fn rvs_health(out: &mut Out, report: &Report) {
    out.single(
        "rvs_health_checks_total",
        Kind::Counter,
        "Health checks completed (each attempt, retries included).",
        report.health_checks,
    );
    let servers: Vec<(Labels, &crate::health::ServerHealth)> = report
        .services
        .iter()
        .flat_map(|s| {
            let svc = health_service_labels(&s.service);
            s.real_servers.iter().map(move |r| {
                let (a, p) = split_addr(&r.address);
                let mut l = svc.clone();
                l.push(("remote_address", a));
                l.push(("remote_port", p));
                (l, r)
            })
        })
        .collect();
    out.family(
        "rvs_real_server_up",
        Kind::Gauge,
        "Whether the health checks hold the real server up (1) or down (0).",
        servers.iter().map(|(l, r)| (l.clone(), bool01(r.up))),
    );
    out.family(
        "rvs_real_server_last_change_timestamp_seconds",
        Kind::Gauge,
        "When the real server last went up or down (Unix seconds).",
        servers
            .iter()
            .map(|(l, r)| (l.clone(), r.since_unix.to_string())),
    );
    let services = || {
        report
            .services
            .iter()
            .map(|s| (health_service_labels(&s.service), s))
    };
    out.family(
        "rvs_service_quorum_up",
        Kind::Gauge,
        "Whether the service's live real servers meet its quorum (1) or not (0).",
        services().map(|(l, s)| (l, bool01(s.quorum_met))),
    );
    out.family(
        "rvs_service_live_weight",
        Kind::Gauge,
        "The weights of the service's live real servers, summed.",
        services().map(|(l, s)| (l, s.live_weight.to_string())),
    );
    out.family(
        "rvs_service_sorry_server_active",
        Kind::Gauge,
        "Whether the service's sorry server takes its traffic (1) or not (0).",
        services().map(|(l, s)| (l, bool01(s.sorry_server.is_some()))),
    );
}

fn rvs_services(out: &mut Out, state: &State) {
    let svc_labels = |s: &super::state::ServiceState| -> Labels {
        vec![
            ("local_address", s.address.to_string()),
            ("local_port", s.port.to_string()),
            ("proto", proto(s.protocol).to_owned()),
        ]
    };
    let services: Vec<(Labels, Stats, Rates)> = state
        .services
        .iter()
        .map(|s| (svc_labels(s), s.stats, s.rates))
        .collect();
    stats_families(
        out,
        "virtual service",
        [
            "rvs_service_connections_total",
            "rvs_service_incoming_packets_total",
            "rvs_service_outgoing_packets_total",
            "rvs_service_incoming_bytes_total",
            "rvs_service_outgoing_bytes_total",
        ],
        [
            "rvs_service_rate_cps",
            "rvs_service_rate_inpps",
            "rvs_service_rate_outpps",
            "rvs_service_rate_inbps",
            "rvs_service_rate_outbps",
        ],
        &services,
    );
    let servers: Vec<(Labels, &super::state::RealServerState)> = state
        .services
        .iter()
        .flat_map(|s| {
            let l = svc_labels(s);
            s.real_servers.iter().map(move |r| {
                let mut l = l.clone();
                l.push(("remote_address", r.address.to_string()));
                l.push(("remote_port", r.port.to_string()));
                (l, r)
            })
        })
        .collect();
    let items: Vec<(Labels, Stats, Rates)> = servers
        .iter()
        .map(|(l, r)| (l.clone(), r.stats, r.rates))
        .collect();
    stats_families(
        out,
        "real server",
        [
            "rvs_real_server_connections_total",
            "rvs_real_server_incoming_packets_total",
            "rvs_real_server_outgoing_packets_total",
            "rvs_real_server_incoming_bytes_total",
            "rvs_real_server_outgoing_bytes_total",
        ],
        [
            "rvs_real_server_rate_cps",
            "rvs_real_server_rate_inpps",
            "rvs_real_server_rate_outpps",
            "rvs_real_server_rate_inbps",
            "rvs_real_server_rate_outbps",
        ],
        &items,
    );
    out.family(
        "rvs_real_server_persistent_connections",
        Kind::Gauge,
        "The real server's persistence templates (IPVS's persistconns).",
        servers
            .iter()
            .map(|(l, r)| (l.clone(), r.persistent_conns.to_string())),
    );
}

fn rvs_reloads(out: &mut Out, reloads: &Reloads) {
    out.family(
        "rvs_reloads_total",
        Kind::Counter,
        "Configuration reloads: applied (ok) or refused.",
        [
            (vec![("result", "ok".to_owned())], reloads.ok.to_string()),
            (
                vec![("result", "refused".to_owned())],
                reloads.refused.to_string(),
            ),
        ],
    );
    out.family(
        "rvs_last_reload_timestamp_seconds",
        Kind::Gauge,
        "When the last configuration reload was tried (Unix seconds; 0: none yet).",
        [(Vec::new(), seconds(reloads.last_unix_ms))],
    );
    out.single(
        "rvs_last_reload_successful",
        Kind::Gauge,
        "Whether the last configuration reload was applied (1) or refused (0); 1 before any.",
        u64::from(reloads.last_ok || reloads.last_unix_ms == 0),
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::api::state::{Forward, RealServerState, ServiceState, Timeouts};
    use crate::health::{ServerHealth, ServiceHealth};
    use crate::stats::{DeviceCounters, KernelReport, PortReport, WorkerReport};

    fn stats(n: u64) -> Stats {
        Stats {
            conns: n,
            inpkts: 10 * n,
            outpkts: 9 * n,
            inbytes: 600 * n,
            outbytes: 5000 * n,
        }
    }

    fn rates(n: u64) -> Rates {
        Rates {
            cps: n,
            inpps: 5 * n,
            outpps: 4 * n,
            inbps: 300 * n,
            outbps: 2500 * n,
        }
    }

    fn small_state() -> State {
        State {
            version: "0.1.0".to_owned(),
            conn_tab_size: 1 << 20,
            services: vec![ServiceState {
                protocol: Protocol::TCP,
                address: Ipv4Addr::new(203, 0, 113, 100),
                port: 80,
                scheduler: "rr".to_owned(),
                flags: Vec::new(),
                persistent: None,
                netmask: Ipv4Addr::BROADCAST,
                stats: stats(10),
                rates: rates(1),
                real_servers: vec![RealServerState {
                    address: Ipv4Addr::new(10, 0, 0, 1),
                    port: 8080,
                    forward: Forward::Masq,
                    weight: 1,
                    upper_threshold: 0,
                    lower_threshold: 0,
                    active_conns: 2,
                    inactive_conns: 3,
                    persistent_conns: 0,
                    stats: stats(10),
                    rates: rates(1),
                }],
            }],
            timeouts: Timeouts {
                tcp: 900,
                tcpfin: 120,
                udp: 300,
            },
            connections: None,
            taken_unix_ms: 1_700_000_000_000,
        }
    }

    fn empty_report() -> Report {
        Report {
            ports: Vec::new(),
            workers: Vec::new(),
            services: Vec::new(),
            health_checks: 0,
            unix_ms: 1_700_000_000_000,
            vrrp: Vec::new(),
            announce: Vec::new(),
            vrrp_counters: None,
            sync: None,
        }
    }

    fn counters(rx: u64, drops: &[(&'static str, u64)]) -> Counters {
        Counters {
            rx_packets: rx,
            rx_bytes: 64 * rx,
            tx_packets: rx - 1,
            tx_bytes: 64 * (rx - 1),
            forwarded: rx - 2,
            connections_created: 3,
            drops: drops.iter().copied().collect::<BTreeMap<_, _>>(),
            dropped: drops.iter().map(|(_, n)| n).sum(),
            ..Counters::default()
        }
    }

    fn full_report() -> Report {
        let drops = [("malformed", 1), ("no_service", 2)];
        Report {
            ports: vec![PortReport {
                name: "p0".to_owned(),
                link_up: true,
                speed_mbps: 10_000,
                counters: counters(20, &drops),
                device: DeviceCounters {
                    rx_packets: 21,
                    tx_packets: 19,
                    rx_missed: 1,
                    rx_errors: 0,
                    tx_errors: 0,
                    rx_no_mbuf: 0,
                },
                kernel: Some(KernelReport {
                    interface: "rvs-p0".to_owned(),
                    counters: crate::kernel::KernelTotals {
                        up: 4,
                        up_dropped: 1,
                        down: 5,
                        down_dropped: 0,
                    },
                }),
            }],
            workers: vec![WorkerReport {
                core: 2,
                connections: 7,
                connections_expired: 8,
                connections_evicted: 0,
                fast_path: 0,
                connections_sloppy: 0,
                connections_expired_nodest: 0,
                handed_out: 11,
                handed_in: 12,
                sync_sent: 0,
                sync_lost: 0,
                synced_in: 0,
                sync_refused: 0,
                bytes_per_connection: 96,
                ports: vec![counters(20, &drops)],
            }],
            services: vec![ServiceHealth {
                service: "TCP 203.0.113.100:80".to_owned(),
                quorum: 1,
                live_weight: 1,
                quorum_met: true,
                sorry_server: None,
                real_servers: vec![ServerHealth {
                    address: "10.0.0.1:8080".to_owned(),
                    up: true,
                    weight: 1,
                    checks: 1,
                    reason: "TCP_CHECK 10.0.0.1:8080: connected".to_owned(),
                    since_unix: 1_699_999_000,
                }],
            }],
            health_checks: 42,
            unix_ms: 1_700_000_000_000,
            announce: vec![crate::announce::VipReport {
                vip: "203.0.113.100".to_owned(),
                announced: true,
                interface: Some("rvs-client".to_owned()),
                reason: None,
            }],
            vrrp: vec![crate::vrrp::InstanceReport {
                name: "VI_1".to_owned(),
                interface: "client".to_owned(),
                vrid: 51,
                addresses: vec!["198.51.100.100".to_owned()],
                state: "MASTER",
                priority: 100,
                since_unix_ms: 1_699_999_999_500,
            }],
            vrrp_counters: Some(crate::vrrp::Counters {
                adverts_received: 3,
                adverts_sent: 600,
                gratuitous_arps_sent: 5,
                refused: vec![("ttl", 1)],
            }),
            sync: Some(crate::sync::Counters {
                messages_sent: 6,
                conns_sent: 50,
                messages_received: 0,
                conns_received: 0,
                refused: vec![("sync_id", 2)],
            }),
        }
    }

    /// The lines of one family.
    fn block(text: &str, name: &str) -> String {
        text.lines()
            .filter(|l| {
                l.strip_prefix("# HELP ")
                    .or_else(|| l.strip_prefix("# TYPE "))
                    .unwrap_or(l)
                    .split(['{', ' '])
                    .next()
                    == Some(name)
            })
            .map(|l| format!("{l}\n"))
            .collect()
    }

    const SMALL: &str = r#"# HELP node_ipvs_backend_connections_active The current active connections by local and remote address.
# TYPE node_ipvs_backend_connections_active gauge
node_ipvs_backend_connections_active{local_address="203.0.113.100",local_mark="",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 2
# HELP node_ipvs_backend_connections_inactive The current inactive connections by local and remote address.
# TYPE node_ipvs_backend_connections_inactive gauge
node_ipvs_backend_connections_inactive{local_address="203.0.113.100",local_mark="",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 3
# HELP node_ipvs_backend_weight The current backend weight by local and remote address.
# TYPE node_ipvs_backend_weight gauge
node_ipvs_backend_weight{local_address="203.0.113.100",local_mark="",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 1
# HELP node_ipvs_connections_total The total number of connections made.
# TYPE node_ipvs_connections_total counter
node_ipvs_connections_total 10
# HELP node_ipvs_incoming_packets_total The total number of incoming packets.
# TYPE node_ipvs_incoming_packets_total counter
node_ipvs_incoming_packets_total 100
# HELP node_ipvs_outgoing_packets_total The total number of outgoing packets.
# TYPE node_ipvs_outgoing_packets_total counter
node_ipvs_outgoing_packets_total 90
# HELP node_ipvs_incoming_bytes_total The total amount of incoming data.
# TYPE node_ipvs_incoming_bytes_total counter
node_ipvs_incoming_bytes_total 6000
# HELP node_ipvs_outgoing_bytes_total The total amount of outgoing data.
# TYPE node_ipvs_outgoing_bytes_total counter
node_ipvs_outgoing_bytes_total 50000
# HELP rvs_build_info rvs's version (the value is always 1).
# TYPE rvs_build_info gauge
rvs_build_info{version="0.1.0"} 1
# HELP rvs_connection_table_size The connection table's size: the total over the workers (ipvsadm's size=).
# TYPE rvs_connection_table_size gauge
rvs_connection_table_size 1048576
# HELP rvs_health_checks_total Health checks completed (each attempt, retries included).
# TYPE rvs_health_checks_total counter
rvs_health_checks_total 0
# HELP rvs_service_connections_total Connections of the virtual service since start or its last zeroing (ipvsadm --stats).
# TYPE rvs_service_connections_total counter
rvs_service_connections_total{local_address="203.0.113.100",local_port="80",proto="TCP"} 10
# HELP rvs_service_incoming_packets_total Incoming packets of the virtual service since start or its last zeroing (ipvsadm --stats).
# TYPE rvs_service_incoming_packets_total counter
rvs_service_incoming_packets_total{local_address="203.0.113.100",local_port="80",proto="TCP"} 100
# HELP rvs_service_outgoing_packets_total Outgoing packets of the virtual service since start or its last zeroing (ipvsadm --stats).
# TYPE rvs_service_outgoing_packets_total counter
rvs_service_outgoing_packets_total{local_address="203.0.113.100",local_port="80",proto="TCP"} 90
# HELP rvs_service_incoming_bytes_total Incoming bytes of the virtual service since start or its last zeroing (ipvsadm --stats).
# TYPE rvs_service_incoming_bytes_total counter
rvs_service_incoming_bytes_total{local_address="203.0.113.100",local_port="80",proto="TCP"} 6000
# HELP rvs_service_outgoing_bytes_total Outgoing bytes of the virtual service since start or its last zeroing (ipvsadm --stats).
# TYPE rvs_service_outgoing_bytes_total counter
rvs_service_outgoing_bytes_total{local_address="203.0.113.100",local_port="80",proto="TCP"} 50000
# HELP rvs_service_rate_cps Connections per second of the virtual service, IPVS's 2 s estimator (ipvsadm --rate).
# TYPE rvs_service_rate_cps gauge
rvs_service_rate_cps{local_address="203.0.113.100",local_port="80",proto="TCP"} 1
# HELP rvs_service_rate_inpps Incoming packets per second of the virtual service, IPVS's 2 s estimator (ipvsadm --rate).
# TYPE rvs_service_rate_inpps gauge
rvs_service_rate_inpps{local_address="203.0.113.100",local_port="80",proto="TCP"} 5
# HELP rvs_service_rate_outpps Outgoing packets per second of the virtual service, IPVS's 2 s estimator (ipvsadm --rate).
# TYPE rvs_service_rate_outpps gauge
rvs_service_rate_outpps{local_address="203.0.113.100",local_port="80",proto="TCP"} 4
# HELP rvs_service_rate_inbps Incoming bytes per second of the virtual service, IPVS's 2 s estimator (ipvsadm --rate).
# TYPE rvs_service_rate_inbps gauge
rvs_service_rate_inbps{local_address="203.0.113.100",local_port="80",proto="TCP"} 300
# HELP rvs_service_rate_outbps Outgoing bytes per second of the virtual service, IPVS's 2 s estimator (ipvsadm --rate).
# TYPE rvs_service_rate_outbps gauge
rvs_service_rate_outbps{local_address="203.0.113.100",local_port="80",proto="TCP"} 2500
# HELP rvs_real_server_connections_total Connections of the real server since start or its last zeroing (ipvsadm --stats).
# TYPE rvs_real_server_connections_total counter
rvs_real_server_connections_total{local_address="203.0.113.100",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 10
# HELP rvs_real_server_incoming_packets_total Incoming packets of the real server since start or its last zeroing (ipvsadm --stats).
# TYPE rvs_real_server_incoming_packets_total counter
rvs_real_server_incoming_packets_total{local_address="203.0.113.100",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 100
# HELP rvs_real_server_outgoing_packets_total Outgoing packets of the real server since start or its last zeroing (ipvsadm --stats).
# TYPE rvs_real_server_outgoing_packets_total counter
rvs_real_server_outgoing_packets_total{local_address="203.0.113.100",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 90
# HELP rvs_real_server_incoming_bytes_total Incoming bytes of the real server since start or its last zeroing (ipvsadm --stats).
# TYPE rvs_real_server_incoming_bytes_total counter
rvs_real_server_incoming_bytes_total{local_address="203.0.113.100",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 6000
# HELP rvs_real_server_outgoing_bytes_total Outgoing bytes of the real server since start or its last zeroing (ipvsadm --stats).
# TYPE rvs_real_server_outgoing_bytes_total counter
rvs_real_server_outgoing_bytes_total{local_address="203.0.113.100",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 50000
# HELP rvs_real_server_rate_cps Connections per second of the real server, IPVS's 2 s estimator (ipvsadm --rate).
# TYPE rvs_real_server_rate_cps gauge
rvs_real_server_rate_cps{local_address="203.0.113.100",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 1
# HELP rvs_real_server_rate_inpps Incoming packets per second of the real server, IPVS's 2 s estimator (ipvsadm --rate).
# TYPE rvs_real_server_rate_inpps gauge
rvs_real_server_rate_inpps{local_address="203.0.113.100",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 5
# HELP rvs_real_server_rate_outpps Outgoing packets per second of the real server, IPVS's 2 s estimator (ipvsadm --rate).
# TYPE rvs_real_server_rate_outpps gauge
rvs_real_server_rate_outpps{local_address="203.0.113.100",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 4
# HELP rvs_real_server_rate_inbps Incoming bytes per second of the real server, IPVS's 2 s estimator (ipvsadm --rate).
# TYPE rvs_real_server_rate_inbps gauge
rvs_real_server_rate_inbps{local_address="203.0.113.100",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 300
# HELP rvs_real_server_rate_outbps Outgoing bytes per second of the real server, IPVS's 2 s estimator (ipvsadm --rate).
# TYPE rvs_real_server_rate_outbps gauge
rvs_real_server_rate_outbps{local_address="203.0.113.100",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 2500
# HELP rvs_real_server_persistent_connections The real server's persistence templates (IPVS's persistconns).
# TYPE rvs_real_server_persistent_connections gauge
rvs_real_server_persistent_connections{local_address="203.0.113.100",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 0
# HELP rvs_reloads_total Configuration reloads: applied (ok) or refused.
# TYPE rvs_reloads_total counter
rvs_reloads_total{result="ok"} 2
rvs_reloads_total{result="refused"} 1
# HELP rvs_last_reload_timestamp_seconds When the last configuration reload was tried (Unix seconds; 0: none yet).
# TYPE rvs_last_reload_timestamp_seconds gauge
rvs_last_reload_timestamp_seconds 1700000000.123
# HELP rvs_last_reload_successful Whether the last configuration reload was applied (1) or refused (0); 1 before any.
# TYPE rvs_last_reload_successful gauge
rvs_last_reload_successful 0
"#;

    #[test]
    fn exact_text_of_a_small_state() {
        let reloads = Reloads {
            ok: 2,
            refused: 1,
            last_unix_ms: 1_700_000_000_123,
            last_ok: false,
        };
        let text = render(&small_state(), &empty_report(), &reloads);
        assert_eq!(text, SMALL);
    }

    #[test]
    fn the_report_families() {
        let text = render(&small_state(), &full_report(), &Reloads::default());
        let wp = r#"{worker="2",port="p0"}"#;
        assert_eq!(
            block(&text, "rvs_rx_packets_total"),
            format!(
                "# HELP rvs_rx_packets_total Packets received, by the worker that polled them \
                 and the port.\n# TYPE rvs_rx_packets_total counter\nrvs_rx_packets_total{wp} 20\n"
            )
        );
        assert_eq!(
            block(&text, "rvs_drops_total"),
            "# HELP rvs_drops_total Packets dropped, by worker, port and reason.\n\
             # TYPE rvs_drops_total counter\n\
             rvs_drops_total{worker=\"2\",port=\"p0\",reason=\"malformed\"} 1\n\
             rvs_drops_total{worker=\"2\",port=\"p0\",reason=\"no_service\"} 2\n"
        );
        assert!(text.contains(&format!("\nrvs_tx_bytes_total{wp} 1216\n")));
        assert!(text.contains(&format!("\nrvs_forwarded_packets_total{wp} 18\n")));
        assert!(text.contains(&format!("\nrvs_connections_created_total{wp} 3\n")));
        assert!(text.contains("\nrvs_port_up{port=\"p0\"} 1\n"));
        assert!(text.contains("\nrvs_port_speed_bytes{port=\"p0\"} 1250000000\n"));
        assert!(text.contains("\nrvs_port_device_rx_missed_total{port=\"p0\"} 1\n"));
        assert_eq!(
            block(&text, "rvs_kernel_packets_total"),
            "# HELP rvs_kernel_packets_total Packets through the port's kernel interface: up to \
             the kernel, down from it.\n\
             # TYPE rvs_kernel_packets_total counter\n\
             rvs_kernel_packets_total{port=\"p0\",interface=\"rvs-p0\",direction=\"up\"} 4\n\
             rvs_kernel_packets_total{port=\"p0\",interface=\"rvs-p0\",direction=\"down\"} 5\n"
        );
        assert!(text.contains(
            "\nrvs_kernel_dropped_total{port=\"p0\",interface=\"rvs-p0\",direction=\"up\"} 1\n"
        ));
        assert!(text.contains("\nrvs_connections{worker=\"2\"} 7\n"));
        assert!(text.contains("\nrvs_connections_expired_total{worker=\"2\"} 8\n"));
        assert!(text.contains("\nrvs_handed_out_packets_total{worker=\"2\"} 11\n"));
        assert!(text.contains("\nrvs_handed_in_packets_total{worker=\"2\"} 12\n"));
        assert!(text.contains("\nrvs_connection_table_bytes_per_connection{worker=\"2\"} 96\n"));
        assert_eq!(
            block(&text, "keepalived_vrrp_state"),
            "# HELP keepalived_vrrp_state State of vrrp\n\
             # TYPE keepalived_vrrp_state gauge\n\
             keepalived_vrrp_state{iname=\"VI_1\",intf=\"client\",ip_address=\"198.51.100.100\",vrid=\"51\"} 2\n"
        );
        assert_eq!(
            block(&text, "keepalived_up"),
            "# HELP keepalived_up Status\n# TYPE keepalived_up gauge\nkeepalived_up 1\n"
        );
        assert!(text.contains("\nrvs_vrrp_priority{iname=\"VI_1\"} 100\n"));
        assert!(text.contains(
            "\nrvs_vrrp_last_transition_timestamp_seconds{iname=\"VI_1\"} 1699999999.500\n"
        ));
        assert!(text.contains("\nrvs_vrrp_adverts_sent_total 600\n"));
        assert!(text.contains("\nrvs_vrrp_adverts_refused_total{reason=\"ttl\"} 1\n"));
        assert!(text.contains("\nrvs_sync_connections_sent_total 50\n"));
        assert!(text.contains("\nrvs_sync_refused_total{reason=\"sync_id\"} 2\n"));
        assert!(text.contains("\nrvs_health_checks_total 42\n"));
        let rs = r#"{local_address="203.0.113.100",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"}"#;
        assert!(text.contains(&format!("\nrvs_real_server_up{rs} 1\n")));
        assert!(text.contains(&format!(
            "\nrvs_real_server_last_change_timestamp_seconds{rs} 1699999000\n"
        )));
        let svc = r#"{local_address="203.0.113.100",local_port="80",proto="TCP"}"#;
        assert!(text.contains(&format!("\nrvs_service_quorum_up{svc} 1\n")));
        assert!(text.contains(&format!("\nrvs_service_sorry_server_active{svc} 0\n")));
        // Never reloaded: no time, and not a failure.
        assert!(text.contains("\nrvs_reloads_total{result=\"ok\"} 0\n"));
        assert!(text.contains("\nrvs_last_reload_timestamp_seconds 0\n"));
        assert!(text.contains("\nrvs_last_reload_successful 1\n"));
        well_formed(&text);
    }

    /// Every family once, its HELP then TYPE then samples of its name only; counters and
    /// only counters end in `_total`.
    fn well_formed(text: &str) {
        let mut seen = std::collections::HashSet::new();
        let mut current = "";
        let mut lines = text.lines().peekable();
        while let Some(l) = lines.next() {
            if let Some(help) = l.strip_prefix("# HELP ") {
                current = help.split(' ').next().unwrap();
                assert!(seen.insert(current), "{current} twice");
                let t = lines.next().unwrap();
                let kind = t
                    .strip_prefix(&format!("# TYPE {current} "))
                    .unwrap_or_else(|| panic!("{t}"));
                assert_eq!(current.ends_with("_total"), kind == "counter", "{current}");
                assert!(
                    lines.peek().is_some_and(|l| !l.starts_with('#')),
                    "{current}"
                );
            } else {
                assert_eq!(l.split(['{', ' ']).next(), Some(current), "{l}");
                let value = l.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{l}");
            }
        }
    }

    #[test]
    fn labels_and_help_are_escaped() {
        let mut report = full_report();
        report.ports[0].name = "a\"b\\c\nd".to_owned();
        report.vrrp[0].name = "VI \"1\"".to_owned();
        report.vrrp[0].state = "STOP";
        let text = render(&small_state(), &report, &Reloads::default());
        assert!(text.contains(r#"rvs_port_up{port="a\"b\\c\nd"} 1"#));
        assert!(text.contains(
            r#"keepalived_vrrp_state{iname="VI \"1\"",intf="client",ip_address="198.51.100.100",vrid="51"} 98"#
        ));
        assert_eq!(escape_help("a\\b\nc \"d\""), "a\\\\b\\nc \"d\"");
        well_formed(&text);
        well_formed(SMALL);
    }

    #[test]
    fn without_vrrp_nor_sync_their_families_are_absent() {
        let mut report = full_report();
        report.vrrp.clear();
        report.vrrp_counters = None;
        report.sync = None;
        let text = render(&small_state(), &report, &Reloads::default());
        assert!(!text.contains("keepalived_"));
        assert!(!text.contains("rvs_vrrp_"));
        assert!(!text.contains("rvs_sync_messages"));
        // The workers' sync counters stay (zero).
        assert!(text.contains("\nrvs_sync_worker_sent_total{worker=\"2\"} 0\n"));
        well_formed(&text);
    }

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(1_700_000_000_000), "1700000000");
        assert_eq!(seconds(1_700_000_000_005), "1700000000.005");
        assert_eq!(health_service_labels("UDP 10.0.0.1:53")[2].1, "UDP");
        assert_eq!(
            split_addr("nonsense"),
            ("nonsense".to_owned(), String::new())
        );
    }
}
