//! Counters gathered for people and tools: per port (summed over workers), per worker and
//! port, and the devices' own counters beside them. Written as JSON to the stats file and as
//! a table to the log.

use std::fmt::Write as _;
use std::path::Path;

use dataplane::counters::{DropReason, PortTotals, WorkerCounters};
use dpdk::{LinkStatus, PortStats};
use serde::Serialize;

use crate::health::ServiceHealth;
use crate::kernel::KernelTotals;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ports: Vec<PortReport>,
    pub workers: Vec<WorkerReport>,
    /// Each service's real servers as the health checks see them (the caller fills it).
    pub services: Vec<ServiceHealth>,
    /// Health checks completed so far (each attempt, retries included).
    pub health_checks: u64,
    /// When the counters were read (Unix milliseconds): rates from two reports.
    pub unix_ms: u64,
    /// Each VRRP instance's state (the caller fills it).
    pub vrrp: Vec<crate::vrrp::InstanceReport>,
    /// The VIPs announce by health put on a kernel interface, or why not (`announce`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub announce: Vec<crate::announce::VipReport>,
    /// The VRRP path's counters, with VRRP configured.
    pub vrrp_counters: Option<crate::vrrp::Counters>,
    /// Connection sync's counters, with `lvs_sync_daemon` configured.
    pub sync: Option<crate::sync::Counters>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PortReport {
    pub name: String,
    pub link_up: bool,
    pub speed_mbps: u32,
    #[serde(flatten)]
    pub counters: Counters,
    /// What the device itself counted (rx_missed: dropped for want of a free descriptor).
    pub device: DeviceCounters,
    /// The port's kernel interface and what went through it, if it has one.
    pub kernel: Option<KernelReport>,
}

/// The exception path of one port: what reached the kernel interface (`up`) and what the
/// kernel sent out of the port (`down`), with what each side refused.
#[derive(Debug, Clone, Serialize)]
pub struct KernelReport {
    pub interface: String,
    #[serde(flatten)]
    pub counters: KernelTotals,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerReport {
    pub core: usize,
    /// Connections in the worker's table now, and expired so far.
    pub connections: u64,
    pub connections_expired: u64,
    /// Embryonic connections whose slot a new SYN took in a full table (SYN flood defence).
    pub connections_evicted: u64,
    /// Connections ended because their real server left a service with expire_nodest_conn.
    pub connections_expired_nodest: u64,
    /// Packets the established fast path forwarded (the rest took the full path).
    pub fast_path: u64,
    /// Connections created from a segment without SYN (`sloppy_tcp`).
    pub connections_sloppy: u64,
    /// Packets this worker received for another worker's connection and handed to it, and
    /// packets other workers handed to it (several workers; see `dataplane::steer`).
    pub handed_out: u64,
    pub handed_in: u64,
    /// Connection sync: records for the backups, lost ones; synced connections installed,
    /// refused.
    pub sync_sent: u64,
    pub sync_lost: u64,
    pub synced_in: u64,
    pub sync_refused: u64,
    /// The connection table's own accounting: its memory over its capacity.
    pub bytes_per_connection: u64,
    pub ports: Vec<Counters>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Counters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub arp_replies: u64,
    pub icmp_echo_replies: u64,
    pub icmp_errors_sent: u64,
    pub resets_sent: u64,
    pub forwarded: u64,
    pub connections_created: u64,
    pub to_control: u64,
    /// Handed to the kernel path by the workers (`kernel_full` among the drops: refused).
    pub to_kernel: u64,
    pub dropped: u64,
    /// Every reason, zero or not, so tools can rely on the keys.
    pub drops: std::collections::BTreeMap<&'static str, u64>,
}

impl From<&PortTotals> for Counters {
    fn from(t: &PortTotals) -> Self {
        Counters {
            rx_packets: t.rx_packets,
            rx_bytes: t.rx_bytes,
            tx_packets: t.tx_packets,
            tx_bytes: t.tx_bytes,
            arp_replies: t.arp_replies,
            icmp_echo_replies: t.icmp_echo_replies,
            icmp_errors_sent: t.icmp_errors_sent,
            resets_sent: t.resets_sent,
            forwarded: t.forwarded,
            connections_created: t.connections_created,
            to_control: t.to_control,
            to_kernel: t.to_kernel,
            dropped: t.dropped(),
            drops: DropReason::ALL
                .iter()
                .map(|r| (r.name(), t.drop_count(*r)))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceCounters {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_no_mbuf: u64,
}

impl From<&PortStats> for DeviceCounters {
    fn from(s: &PortStats) -> Self {
        DeviceCounters {
            rx_packets: s.rx_packets,
            tx_packets: s.tx_packets,
            rx_missed: s.rx_missed,
            rx_errors: s.rx_errors,
            tx_errors: s.tx_errors,
            rx_no_mbuf: s.rx_no_mbuf,
        }
    }
}

/// One port as the control thread sees it.
pub struct PortView<'a> {
    pub name: &'a str,
    pub link: LinkStatus,
    pub device: PortStats,
    /// Its kernel interface's name and counters.
    pub kernel: Option<(String, KernelTotals)>,
}

/// Reads every worker's counters (`workers[i]` runs on `cores[i]`).
pub fn gather(ports: &[PortView<'_>], cores: &[usize], workers: &[WorkerCounters]) -> Report {
    let per_worker: Vec<Vec<PortTotals>> = workers
        .iter()
        .map(|w| w.ports.iter().map(|p| p.read()).collect())
        .collect();
    let ports = ports
        .iter()
        .enumerate()
        .map(|(i, view)| {
            let mut total = PortTotals::default();
            for w in &per_worker {
                total.add(&w[i]);
            }
            PortReport {
                name: view.name.to_owned(),
                link_up: view.link.up,
                speed_mbps: view.link.speed_mbps,
                counters: Counters::from(&total),
                device: DeviceCounters::from(&view.device),
                kernel: view.kernel.as_ref().map(|(name, totals)| KernelReport {
                    interface: name.clone(),
                    counters: *totals,
                }),
            }
        })
        .collect();
    let workers = cores
        .iter()
        .zip(&per_worker)
        .zip(workers)
        .map(|((core, totals), w)| WorkerReport {
            core: *core,
            connections: w.connections.get(),
            connections_expired: w.connections_expired.get(),
            connections_evicted: w.connections_evicted.get(),
            connections_expired_nodest: w.connections_expired_nodest.get(),
            fast_path: w.fast_path.get(),
            connections_sloppy: w.connections_sloppy.get(),
            handed_out: w.handed_out.get(),
            handed_in: w.handed_in.get(),
            sync_sent: w.sync_sent.get(),
            sync_lost: w.sync_lost.get(),
            synced_in: w.synced_in.get(),
            sync_refused: w.sync_refused.get(),
            bytes_per_connection: w.bytes_per_connection.get(),
            ports: totals.iter().map(Counters::from).collect(),
        })
        .collect();
    Report {
        ports,
        workers,
        services: Vec::new(),
        health_checks: 0,
        vrrp: Vec::new(),
        announce: Vec::new(),
        vrrp_counters: None,
        sync: None,
        unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    }
}

/// Real server lines the table shows at most (the stats file has all).
const TABLE_SERVERS_MAX: usize = 1000;

/// One line of the counter table, in the header's columns.
fn row(out: &mut String, port: &str, worker: &str, c: &Counters) {
    let _ = writeln!(
        out,
        "{:<12} {:>6} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
        port,
        worker,
        c.rx_packets,
        c.tx_packets,
        c.forwarded,
        c.connections_created,
        c.arp_replies,
        c.icmp_echo_replies,
        c.dropped
    );
}

impl Report {
    /// A table for the log: one line per port and worker, then the non-zero drop reasons.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<12} {:>6} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
            "port",
            "worker",
            "rx_packets",
            "tx_packets",
            "forwarded",
            "new_conns",
            "arp_reply",
            "echo_reply",
            "dropped"
        );
        for (i, port) in self.ports.iter().enumerate() {
            let c = &port.counters;
            row(&mut out, &port.name, "all", c);
            for w in &self.workers {
                row(&mut out, "", &w.core.to_string(), &w.ports[i]);
            }
            let reasons: Vec<String> = c
                .drops
                .iter()
                .filter(|(_, n)| **n != 0)
                .map(|(r, n)| format!("{r}={n}"))
                .collect();
            if !reasons.is_empty() {
                let _ = writeln!(out, "{:<12} drops: {}", "", reasons.join(" "));
            }
            let d = &port.device;
            let _ = writeln!(
                out,
                "{:<12} device: rx={} tx={} rx_missed={} rx_errors={} tx_errors={} rx_no_mbuf={} link={}",
                "",
                d.rx_packets,
                d.tx_packets,
                d.rx_missed,
                d.rx_errors,
                d.tx_errors,
                d.rx_no_mbuf,
                if port.link_up { "up" } else { "down" }
            );
            if let Some(k) = &port.kernel {
                let _ = writeln!(
                    out,
                    "{:<12} kernel {}: up={} (refused by the ring {}, by the interface {}) \
                     down={} (dropped {})",
                    "",
                    k.interface,
                    k.counters.up,
                    c.drops.get("kernel_full").copied().unwrap_or(0),
                    k.counters.up_dropped,
                    k.counters.down,
                    k.counters.down_dropped
                );
            }
        }
        for w in &self.workers {
            let _ = writeln!(
                out,
                "worker {}: {} connections, {} expired, {} evicted (embryonic), {} ended by \
                 expire_nodest_conn, {} created mid-flow (sloppy_tcp), {} bytes per connection; \
                 fast path {} packets; handed out {}, handed in {}",
                w.core,
                w.connections,
                w.connections_expired,
                w.connections_evicted,
                w.connections_expired_nodest,
                w.connections_sloppy,
                w.bytes_per_connection,
                w.fast_path,
                w.handed_out,
                w.handed_in
            );
        }
        for v in &self.announce {
            let _ = writeln!(
                out,
                "announce: VIP {} {}",
                v.vip,
                match (&v.interface, &v.reason) {
                    (Some(i), _) => format!("on {i}"),
                    (None, Some(r)) => format!("not announced: {r}"),
                    (None, None) => "not announced".to_owned(),
                }
            );
        }
        for v in &self.vrrp {
            let _ = writeln!(
                out,
                "vrrp instance {}: {} (priority {})",
                v.name, v.state, v.priority
            );
        }
        if let Some(c) = &self.vrrp_counters {
            let refused: Vec<String> = c
                .refused
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(why, n)| format!("{why} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "vrrp: adverts received {}, sent {}, gratuitous ARPs sent {}, refused: {}",
                c.adverts_received,
                c.adverts_sent,
                c.gratuitous_arps_sent,
                if refused.is_empty() {
                    "none".to_owned()
                } else {
                    refused.join(", ")
                }
            );
        }
        if let Some(c) = &self.sync {
            let refused: Vec<String> = c
                .refused
                .iter()
                .map(|(why, n)| format!("{why} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "sync: sent {} connections in {} messages, received {} in {}, refused: {}",
                c.conns_sent,
                c.messages_sent,
                c.conns_received,
                c.messages_received,
                if refused.is_empty() {
                    "none".to_owned()
                } else {
                    refused.join(", ")
                }
            );
        }
        let mut lines = 0;
        if !self.services.is_empty() {
            let _ = writeln!(out, "health checks done: {}", self.health_checks);
        }
        for svc in &self.services {
            let _ = writeln!(
                out,
                "service {}: {}/{} real servers up, live weight {} (quorum {} {}){}",
                svc.service,
                svc.real_servers.iter().filter(|r| r.up).count(),
                svc.real_servers.len(),
                svc.live_weight,
                svc.quorum,
                if svc.quorum_met { "met" } else { "lost" },
                svc.sorry_server
                    .as_ref()
                    .map_or(String::new(), |s| format!(", sorry server {s} serving"))
            );
            for r in &svc.real_servers {
                lines += 1;
                if lines > TABLE_SERVERS_MAX {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "  {:<21} {:<4} weight {:<5} {}",
                    r.address,
                    if r.up { "up" } else { "DOWN" },
                    r.weight,
                    r.reason
                );
            }
        }
        if lines > TABLE_SERVERS_MAX {
            let _ = writeln!(
                out,
                "  ... and {} more real servers (all of them in the stats file)",
                lines - TABLE_SERVERS_MAX
            );
        }
        out
    }

    /// Writes the JSON report to `path` atomically (temporary file, then rename).
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text + "\n")?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_workers_and_names_every_reason() {
        let workers = [WorkerCounters::new(1), WorkerCounters::new(1)];
        workers[0].ports[0].rx_packets.add(2);
        workers[1].ports[0].rx_packets.add(3);
        workers[1].ports[0].drop(DropReason::Malformed);
        let view = PortView {
            name: "p",
            link: LinkStatus {
                up: true,
                speed_mbps: 10000,
                full_duplex: true,
            },
            device: PortStats::default(),
            kernel: Some((
                "rvs-p".to_owned(),
                KernelTotals {
                    up: 4,
                    ..Default::default()
                },
            )),
        };
        let report = gather(&[view], &[1, 2], &workers);
        assert_eq!(report.ports[0].counters.rx_packets, 5);
        assert_eq!(report.ports[0].counters.drops["malformed"], 1);
        assert_eq!(report.ports[0].counters.drops.len(), DropReason::COUNT);
        assert_eq!(report.workers[1].ports[0].rx_packets, 3);
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["ports"][0]["rx_packets"], 5);
        assert_eq!(json["ports"][0]["dropped"], 1);
        assert!(report.table().contains("malformed=1"));
        assert!(report.table().contains("kernel rvs-p: up=4"));
        assert_eq!(json["ports"][0]["kernel"]["up"], 4);
    }
}
