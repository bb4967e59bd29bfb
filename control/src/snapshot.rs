//! Builds the immutable [`Snapshot`] the workers read from the configuration, the ports' MAC
//! addresses and the neighbour table, and says which next hops need resolving.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::flow::{Endpoint, ForwardMode};
use dataplane::sched::{MaglevTable, SchedulerKind, MH_TABLE_SIZE};
use dataplane::snapshot::{Persistence, PortAddrs, RealServer, Route, Service, Snapshot};
use hashbrown::HashMap;

use crate::config::{self, Config};

/// `macs[i]` is the MAC of `config.ports[i]`; `neighbors` maps (port, address) to a MAC.
/// `previous` is the snapshot this one replaces: Maglev tables are carried over when their
/// servers did not change, and a server reweighted to 0 keeps its place in the table (IPVS's
/// `last_weight`), so quiescing it moves no other flow.
pub fn build(
    config: &Config,
    macs: &[[u8; 6]],
    neighbors: &HashMap<(usize, Ipv4Addr), [u8; 6]>,
    generation: u64,
    previous: Option<&Snapshot>,
) -> Snapshot {
    let on_link = |addr: Ipv4Addr| {
        config
            .ports
            .iter()
            .position(|p| p.addresses.iter().any(|a| a.contains(addr)))
    };
    let mut ports: Vec<PortAddrs> = config
        .ports
        .iter()
        .zip(macs)
        .map(|(port, mac)| PortAddrs {
            mac: *mac,
            ipv4: port.addresses.iter().map(|c| c.addr).collect(),
            primary: port.addresses.first().map(|c| c.addr),
            mtu: port.mtu,
            kernel: if port.kernel {
                port.addresses.iter().map(|c| c.addr).collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    // The appliance answers ARP and ping for VIPs and local addresses on their subnet's port.
    for svc in &config.services {
        for addr in std::iter::once(svc.vip).chain(svc.local_addresses.iter().copied()) {
            if let Some(i) = on_link(addr) {
                if !ports[i].ipv4.contains(&addr) {
                    ports[i].ipv4.push(addr);
                }
            }
        }
    }
    let mut snapshot = Snapshot::with_ports(ports);
    snapshot.generation = generation;
    // The owner function is the run's, fixed at start: carried over from snapshot to snapshot.
    snapshot.steering = previous.and_then(|p| p.steering.clone());
    for (i, port) in config.ports.iter().enumerate() {
        for cidr in &port.addresses {
            snapshot.add_route(Route {
                network: cidr.addr,
                prefix_len: cidr.prefix_len,
                port: i,
                gateway: None,
            });
        }
    }
    for route in &config.routes {
        if let Some(i) = config.ports.iter().position(|p| p.name == route.port) {
            snapshot.add_route(Route {
                network: route.destination.addr,
                prefix_len: route.destination.prefix_len,
                port: i,
                gateway: Some(route.via),
            });
        }
    }
    snapshot.neighbors = neighbors.clone();
    let c = &config.connections;
    snapshot
        .timeouts
        .set(c.tcp_timeout, c.tcpfin_timeout, c.udp_timeout);
    snapshot.tcp_resets_per_second = if c.reset_unknown { c.reset_rate } else { 0 };
    for svc in &config.services {
        let scheduler = svc.lb_algo.0;
        let reals = svc
            .real_servers
            .iter()
            .map(|rs| {
                let route = snapshot.route(rs.address).copied();
                let port = route.map_or(0, |r| r.port);
                let hop = route.and_then(|r| r.gateway).unwrap_or(rs.address);
                RealServer {
                    addr: Endpoint::new(rs.address, rs.port.unwrap_or(svc.port)),
                    weight: rs.weight,
                    port,
                    next_hop_mac: neighbors.get(&(port, hop)).copied(),
                    upper_threshold: rs.upper_threshold,
                    lower_threshold: rs.lower_threshold,
                }
            })
            .collect::<Vec<_>>();
        let protocol = svc.protocol.number();
        let vip = Endpoint::new(svc.vip, svc.port);
        let maglev = (scheduler == SchedulerKind::Mh).then(|| {
            let before = previous
                .and_then(|p| p.service(protocol, vip))
                .map(|(_, s)| s);
            maglev_table(&reals, before)
        });
        snapshot.add_service(Service {
            protocol,
            vip,
            mode: svc.lb_kind.mode(),
            scheduler,
            flags: config::sched_flags(svc),
            reals,
            local_addrs: svc.local_addresses.clone(),
            persistence: svc.persistence_timeout.map(|timeout_s| Persistence {
                timeout_s,
                netmask: svc.persistence_netmask.unwrap_or(Ipv4Addr::BROADCAST),
            }),
            maglev,
            expire_nodest_conn: svc.expire_nodest_conn,
        });
    }
    snapshot.next_hops = next_hops(&snapshot).into_iter().collect();
    snapshot
}

/// The Maglev table for `reals`: each server with its weight, or, at weight 0, the weight it
/// had in `before` (its last non-zero one). The previous table when nothing changed.
fn maglev_table(reals: &[RealServer], before: Option<&Service>) -> Arc<MaglevTable> {
    let last_weights: Vec<(Endpoint, u32)> = reals
        .iter()
        .map(|r| {
            let last = before
                .and_then(|b| b.maglev.as_ref())
                .and_then(|t| t.servers().iter().find(|(ep, _)| *ep == r.addr))
                .map_or(0, |(_, w)| *w);
            (r.addr, if r.weight > 0 { r.weight } else { last })
        })
        .collect();
    if let Some(table) = before.and_then(|b| b.maglev.as_ref()) {
        if table.servers() == last_weights.as_slice() {
            return table.clone();
        }
    }
    Arc::new(MaglevTable::build(&last_weights, MH_TABLE_SIZE))
}

/// The (port, address) next hops the real servers need: what the control thread resolves.
pub fn next_hops(snapshot: &Snapshot) -> Vec<(usize, Ipv4Addr)> {
    let mut hops: Vec<(usize, Ipv4Addr)> = snapshot
        .services
        .iter()
        .flat_map(|s| s.reals.iter())
        .filter_map(|r| {
            let route = snapshot.route(r.addr.addr)?;
            Some((route.port, route.gateway.unwrap_or(r.addr.addr)))
        })
        .collect();
    hops.sort();
    hops.dedup();
    hops
}

/// Services described one per line while there are at most this many to describe.
pub const SERVICE_LINES_MAX: usize = 16;

/// What the log says of the services of a snapshot (and, after a reload, how they differ from
/// the previous one): one summary line, and one line per service added, changed or removed
/// (every service at start) when there are at most [`SERVICE_LINES_MAX`] of them, so that a
/// reload of a thousand services logs one line, not a thousand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceReport {
    pub summary: String,
    pub lines: Vec<String>,
}

pub fn describe_services(before: Option<&Snapshot>, after: &Snapshot) -> ServiceReport {
    let mut counts = [0usize; 4];
    for svc in &after.services {
        counts[svc.mode as usize] += 1;
    }
    let reals: usize = after.services.iter().map(|s| s.reals.len()).sum();
    let modes: Vec<String> = [
        ForwardMode::Nat,
        ForwardMode::FullNat,
        ForwardMode::Dr,
        ForwardMode::Tun,
    ]
    .iter()
    .filter(|m| counts[**m as usize] > 0)
    .map(|m| format!("{} {}", counts[*m as usize], mode_name(*m)))
    .collect();
    let mut summary = format!(
        "{} services ({}), {reals} real servers",
        after.services.len(),
        if modes.is_empty() {
            "none".to_owned()
        } else {
            modes.join(", ")
        }
    );
    let mut lines = Vec::new();
    match before {
        None => lines.extend(after.services.iter().map(|s| describe(s, ""))),
        Some(before) => {
            let (mut added, mut changed, mut unchanged) = (0, 0, 0);
            for svc in &after.services {
                match before.service(svc.protocol, svc.vip) {
                    None => {
                        added += 1;
                        lines.push(describe(svc, " (added)"));
                    }
                    Some((_, old)) if !same_service(old, svc) => {
                        changed += 1;
                        lines.push(describe(svc, " (changed)"));
                    }
                    Some(_) => unchanged += 1,
                }
            }
            let mut removed = 0;
            for svc in &before.services {
                if after.service(svc.protocol, svc.vip).is_none() {
                    removed += 1;
                    lines.push(describe(svc, " (removed)"));
                }
            }
            summary += &format!(
                ": {added} added, {removed} removed, {changed} changed, {unchanged} unchanged"
            );
        }
    }
    if lines.len() > SERVICE_LINES_MAX {
        lines.clear();
    }
    ServiceReport { summary, lines }
}

/// What an operator configured of a service (not the next hops rvs resolved, nor the Maglev
/// table it built from the rest).
fn same_service(a: &Service, b: &Service) -> bool {
    let reals = |s: &Service| -> Vec<(Endpoint, u32, u32, u32)> {
        s.reals
            .iter()
            .map(|r| (r.addr, r.weight, r.upper_threshold, r.lower_threshold))
            .collect()
    };
    (a.mode, a.scheduler, a.flags, &a.local_addrs, a.persistence)
        == (b.mode, b.scheduler, b.flags, &b.local_addrs, b.persistence)
        && reals(a) == reals(b)
}

fn mode_name(mode: ForwardMode) -> &'static str {
    match mode {
        ForwardMode::Nat => "NAT",
        ForwardMode::FullNat => "FULLNAT",
        ForwardMode::Dr => "DR",
        ForwardMode::Tun => "TUN",
    }
}

fn describe(svc: &Service, tag: &str) -> String {
    let name = svc.scheduler.name();
    let mut sched = name.to_owned();
    if svc.flags.port {
        sched += &format!(" {name}-port");
    }
    if svc.flags.fallback {
        sched += &format!(" {name}-fallback");
    }
    if let Some(p) = svc.persistence {
        sched += &format!(", persistent {} s per {} network", p.timeout_s, p.netmask);
    }
    let weights: Vec<String> = svc
        .reals
        .iter()
        .map(|r| format!("{} weight {}", r.addr, r.weight))
        .take(8)
        .collect();
    let more = svc.reals.len().saturating_sub(weights.len());
    format!(
        "service {} {} {} {sched}: {} real servers ({}{}){tag}",
        if svc.protocol == 6 { "TCP" } else { "UDP" },
        svc.vip,
        mode_name(svc.mode),
        svc.reals.len(),
        weights.join(", "),
        if more > 0 {
            format!(", {more} more")
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(weights: &[u32]) -> Config {
        let reals: Vec<String> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| format!("(address: \"198.51.100.{}\", weight: {w})", 11 + i))
            .collect();
        let source = format!(
            r#"(
    workers: [0],
    ports: [(name: "client", device: "net_ring0", addresses: ["198.51.100.1/24"])],
    services: [(protocol: TCP, vip: "198.51.100.100", port: 80, lb_kind: NAT, lb_algo: "mh",
                real_servers: [{}])],
)"#,
            reals.join(", ")
        );
        ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
            .from_str(&source)
            .unwrap()
    }

    fn table(s: &Snapshot) -> &Arc<MaglevTable> {
        s.services[0].maglev.as_ref().unwrap()
    }

    /// IPVS's last_weight: quiescing a server keeps the Maglev table (no other flow moves);
    /// a reload that changes nothing reuses it; a real reweight rebuilds it.
    #[test]
    fn maglev_table_keeps_last_weights() {
        let macs = [[2, 0, 0, 0, 0, 1]];
        let neighbors = HashMap::new();
        let first = build(&config(&[1, 1, 1]), &macs, &neighbors, 1, None);
        let same = build(&config(&[1, 1, 1]), &macs, &neighbors, 2, Some(&first));
        assert!(Arc::ptr_eq(table(&first), table(&same)));
        let quiesced = build(&config(&[1, 0, 1]), &macs, &neighbors, 3, Some(&same));
        assert!(Arc::ptr_eq(table(&first), table(&quiesced)));
        assert_eq!(quiesced.services[0].reals[1].weight, 0);
        // Still quiesced one reload later: the last non-zero weight is remembered.
        let still = build(&config(&[1, 0, 1]), &macs, &neighbors, 4, Some(&quiesced));
        assert!(Arc::ptr_eq(table(&first), table(&still)));
        let heavier = build(&config(&[1, 2, 1]), &macs, &neighbors, 5, Some(&still));
        assert!(!Arc::ptr_eq(table(&first), table(&heavier)));
        let fresh = build(&config(&[1, 0, 1]), &macs, &neighbors, 6, None);
        assert!(!Arc::ptr_eq(table(&first), table(&fresh)));
        assert_ne!(
            **table(&first),
            **table(&fresh),
            "weight 0 from the start: no entries"
        );
    }

    fn many(n: usize, weight: u32) -> Config {
        let services: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "(protocol: TCP, vip: \"198.51.100.100\", port: {}, lb_kind: NAT, \
                     real_servers: [(address: \"198.51.100.11\", weight: {weight})])",
                    1000 + i
                )
            })
            .collect();
        let source = format!(
            r#"(
    workers: [0],
    ports: [(name: "client", device: "net_ring0", addresses: ["198.51.100.1/24"])],
    services: [{}],
)"#,
            services.join(", ")
        );
        ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
            .from_str(&source)
            .unwrap()
    }

    /// A reload of a thousand services logs a summary, not a line each; a small change names
    /// the services it touched.
    #[test]
    fn a_reload_is_summed_up() {
        let macs = [[2, 0, 0, 0, 0, 1]];
        let neighbors = HashMap::new();
        let three = build(&many(3, 1), &macs, &neighbors, 1, None);
        let start = describe_services(None, &three);
        assert_eq!(start.summary, "3 services (3 NAT), 3 real servers");
        assert_eq!(
            start.lines[0],
            "service TCP 198.51.100.100:1000 NAT rr: 1 real servers (198.51.100.11:1000 weight 1)"
        );
        let big = build(&many(1002, 1), &macs, &neighbors, 2, Some(&three));
        let report = describe_services(Some(&three), &big);
        assert_eq!(
            report.summary,
            "1002 services (1002 NAT), 1002 real servers: 999 added, 0 removed, 0 changed, 3 unchanged"
        );
        assert!(report.lines.is_empty(), "no line per service");
        let reweighted = build(&many(2, 2), &macs, &neighbors, 3, Some(&three));
        let report = describe_services(Some(&three), &reweighted);
        assert_eq!(
            report.summary,
            "2 services (2 NAT), 2 real servers: 0 added, 1 removed, 2 changed, 0 unchanged"
        );
        assert_eq!(report.lines.len(), 3);
        assert!(report.lines[0].ends_with("(198.51.100.11:1000 weight 2) (changed)"));
        assert!(report.lines[2].ends_with("(removed)"));
    }
}
