//! Builds the immutable [`Snapshot`] the workers read from the configuration, the ports' MAC
//! addresses and the neighbour table, and says which next hops need resolving.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::flow::{Endpoint, ForwardMode};
use dataplane::sched::{canonical, MaglevTable, Member, SchedulerKind, MH_TABLE_SIZE};
use dataplane::snapshot::{Persistence, PortAddrs, RealServer, Route, Service, Snapshot};
use hashbrown::HashMap;

use crate::config::{self, Config};

/// `macs[i]` is the MAC of `config.ports[i]`; `neighbors` maps (port, address) to a MAC.
/// `previous` is the snapshot this one replaces: Maglev tables are carried over when their
/// members did not change. The configuration is also the one the hashing schedulers' tables
/// are laid out from (see [`build_checked`]).
pub fn build(
    config: &Config,
    macs: &[[u8; 6]],
    neighbors: &HashMap<(usize, Ipv4Addr), [u8; 6]>,
    generation: u64,
    previous: Option<&Snapshot>,
) -> Snapshot {
    build_checked(config, config, macs, neighbors, generation, previous)
}

/// [`build`] of `config` as the health checks leave it (`checked`: failed servers out or at
/// weight 0, dynamic weights), the `sh` and `mh` tables laid out over `config`'s servers
/// ([`members`]): a server that failed keeps its place, so that its flows alone move, and
/// nodes of a cluster whose checkers disagree for a while still agree on every other flow.
pub fn build_checked(
    config: &Config,
    checked: &Config,
    macs: &[[u8; 6]],
    neighbors: &HashMap<(usize, Ipv4Addr), [u8; 6]>,
    generation: u64,
    previous: Option<&Snapshot>,
) -> Snapshot {
    let configured = config;
    let config = checked;
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
    // With announce, a VIP off every subnet is routed here (checked at load: only then).
    if config.announce.is_some() {
        for svc in &config.services {
            if on_link(svc.vip).is_none() && !snapshot.routed.contains(&svc.vip) {
                snapshot.routed.push(svc.vip);
            }
        }
    }
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
        let hashing = matches!(scheduler, SchedulerKind::Mh | SchedulerKind::Sh);
        let members = if hashing {
            let configured = configured
                .services
                .iter()
                .find(|c| c.protocol == svc.protocol && c.vip == svc.vip && c.port == svc.port);
            members(configured.unwrap_or(svc), &reals, svc.port)
        } else {
            Vec::new()
        };
        let maglev = (scheduler == SchedulerKind::Mh).then(|| {
            let before = previous
                .and_then(|p| p.service(protocol, vip))
                .and_then(|(_, s)| s.maglev.as_ref());
            match before {
                Some(table) if table.servers() == members.as_slice() => table.clone(),
                _ => Arc::new(MaglevTable::build(&members, MH_TABLE_SIZE)),
            }
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
            members,
            sloppy_tcp: svc.sloppy_tcp,
            expire_nodest_conn: svc.expire_nodest_conn,
        });
    }
    snapshot.next_hops = next_hops(&snapshot).into_iter().collect();
    snapshot
}

/// The members of a hashing scheduler's table, canonical: every server of the configured
/// service with its live weight (`reals`, as the checks leave them) or, when it has none (down,
/// inhibited, quiesced by a check), its configured one; then any live server the configuration
/// does not name (a sorry server in while the quorum is lost). A function of the configuration
/// and the servers' health alone, not of history: the same on every node.
pub fn members(configured: &config::ServiceConfig, reals: &[RealServer], port: u16) -> Vec<Member> {
    let mut live: HashMap<Endpoint, u32> = reals.iter().map(|r| (r.addr, r.weight)).collect();
    let mut out: Vec<Member> = configured
        .real_servers
        .iter()
        .map(|rs| {
            let ep = Endpoint::new(rs.address, rs.port.unwrap_or(port));
            let weight = live.remove(&ep).filter(|w| *w > 0);
            (ep, weight.unwrap_or(rs.weight))
        })
        .collect();
    // What the configuration does not name, in the list's order (canonical sorts it).
    out.extend(
        reals
            .iter()
            .filter_map(|r| live.remove(&r.addr).map(|w| (r.addr, w))),
    );
    canonical(&out)
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
        && (a.sloppy_tcp, a.expire_nodest_conn) == (b.sloppy_tcp, b.expire_nodest_conn)
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
    if svc.sloppy_tcp {
        sched += ", sloppy_tcp";
    }
    if svc.expire_nodest_conn {
        sched += ", expire_nodest_conn";
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
        parse(&source)
    }

    fn parse(source: &str) -> Config {
        ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
            .from_str(source)
            .unwrap()
    }

    fn table(s: &Snapshot) -> &Arc<MaglevTable> {
        s.services[0].maglev.as_ref().unwrap()
    }

    /// A reload that changes nothing reuses the table; a reweight rebuilds it; a server
    /// configured at weight 0 has no entries whatever its history (the table is a function of
    /// the configuration, the same on a node that just started).
    #[test]
    fn maglev_table_follows_the_configuration_alone() {
        let macs = [[2, 0, 0, 0, 0, 1]];
        let neighbors = HashMap::new();
        let first = build(&config(&[1, 1, 1]), &macs, &neighbors, 1, None);
        let same = build(&config(&[1, 1, 1]), &macs, &neighbors, 2, Some(&first));
        assert!(Arc::ptr_eq(table(&first), table(&same)));
        let heavier = build(&config(&[1, 2, 1]), &macs, &neighbors, 3, Some(&same));
        assert!(!Arc::ptr_eq(table(&first), table(&heavier)));
        let quiesced = build(&config(&[1, 0, 1]), &macs, &neighbors, 4, Some(&heavier));
        let fresh = build(&config(&[1, 0, 1]), &macs, &neighbors, 5, None);
        assert_eq!(**table(&quiesced), **table(&fresh));
        assert_ne!(**table(&first), **table(&fresh), "weight 0: no entries");
    }

    use dataplane::sched::{DestLoad, Loads, Scheduler};

    /// A hashing service over `servers` (last octet of 198.51.100.x, weight), in this order.
    fn hashing(algo: &str, flags: &str, servers: &[(u8, u32)]) -> Config {
        let reals: Vec<String> = servers
            .iter()
            .map(|(last, w)| format!("(address: \"198.51.100.{last}\", weight: {w})"))
            .collect();
        let source = format!(
            r#"(
    workers: [0],
    ports: [(name: "lan", device: "net_ring0", addresses: ["198.51.100.1/24"])],
    services: [(protocol: TCP, vip: "203.0.113.200", port: 80, lb_kind: DR, lb_algo: "{algo}",
                sched_flags: [{flags}], real_servers: [{}])],
    announce: (port: "lan"),
)"#,
            reals.join(", ")
        );
        parse(&source)
    }

    /// The clients of the tests: a fixed xorshift sequence of addresses and ports.
    fn clients(n: usize) -> Vec<Endpoint> {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                Endpoint::new(Ipv4Addr::from((x >> 20) as u32), (x >> 4) as u16)
            })
            .collect()
    }

    /// The server each client gets from a fresh scheduler state of the snapshot's service.
    fn picks(s: &Snapshot, clients: &[Endpoint]) -> Vec<Option<Endpoint>> {
        let svc = &s.services[0];
        let mut state = svc.scheduler.new_state(svc, 0);
        let table = vec![DestLoad::default(); svc.reals.len()];
        let ids: Vec<u32> = (0..svc.reals.len() as u32).collect();
        clients
            .iter()
            .map(|&src| {
                let c = dataplane::sched::Candidates {
                    reals: &svc.reals,
                    loads: Loads::new(&table, &ids),
                    src,
                    dst: svc.vip,
                    now_ms: 0,
                };
                state.pick(&c).map(|i| svc.reals[i].addr)
            })
            .collect()
    }

    /// A permutation of `v` from `seed` (Fisher-Yates over xorshift).
    fn shuffled<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
        let mut out = v.to_vec();
        let mut x = seed | 1;
        for i in (1..out.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.swap(i, (x % (i as u64 + 1)) as usize);
        }
        out
    }

    /// Every node of a cluster picks the same server for a flow: `mh` and `sh` (with and
    /// without the port in the hash) build the same table from the same servers whatever the
    /// order of the file's list (20 shuffles) or of the rvsadm edits that made it (servers
    /// added one by one in shuffled orders, one reweighted there and back, one deleted and
    /// added again), and whatever the snapshots before.
    #[test]
    fn hashing_tables_are_the_same_on_every_node() {
        use crate::api::{Forward, Protocol, Request, ServerSettings, ServiceKey};
        let macs = [[2, 0, 0, 0, 0, 1]];
        let neighbors = HashMap::new();
        let servers: Vec<(u8, u32)> = (0..12).map(|i| (11 + i, 1 + u32::from(i % 3))).collect();
        let clients = clients(20_000);
        let key = ServiceKey {
            protocol: Protocol::TCP,
            address: "203.0.113.200".parse().unwrap(),
            port: 80,
        };
        let add = |c: &Config, last: u8, weight: u32| {
            crate::edit::apply(
                c,
                &Request::AddServer {
                    service: key,
                    address: Ipv4Addr::new(198, 51, 100, last),
                    port: None,
                    settings: ServerSettings {
                        forward: Some(Forward::Route),
                        weight: Some(weight),
                        ..Default::default()
                    },
                },
                &[0],
            )
            .unwrap()
            .0
        };
        for (algo, flags) in [
            ("mh", ""),
            ("mh", "\"mh-port\""),
            ("sh", ""),
            ("sh", "\"sh-port\""),
        ] {
            let reference = picks(
                &build(&hashing(algo, flags, &servers), &macs, &neighbors, 1, None),
                &clients,
            );
            let mut seen = reference.clone();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), 12, "{algo} {flags}: every server gets flows");
            for seed in 1..=20u64 {
                let file = hashing(algo, flags, &shuffled(&servers, seed));
                // A node that ran other configurations before.
                let before = build(
                    &hashing(algo, flags, &servers[..5]),
                    &macs,
                    &neighbors,
                    1,
                    None,
                );
                let s = build(&file, &macs, &neighbors, 2, Some(&before));
                assert!(
                    picks(&s, &clients) == reference,
                    "{algo} {flags}: shuffle {seed}"
                );
                // The same set by edits: three in the file, the rest added one at a time.
                let order = shuffled(&servers, seed * 7919);
                let mut c = hashing(algo, flags, &order[..3]);
                let mut snap = build(&c, &macs, &neighbors, 1, None);
                for (i, &(last, w)) in order[3..].iter().enumerate() {
                    c = add(&c, last, w);
                    if i == 2 {
                        // Reweighted, deleted and added back on the way.
                        let (e, _) = crate::edit::apply(
                            &c,
                            &Request::DeleteServer {
                                service: key,
                                address: Ipv4Addr::new(198, 51, 100, last),
                                port: None,
                            },
                            &[0],
                        )
                        .unwrap();
                        snap = build(&e, &macs, &neighbors, 10 + i as u64, Some(&snap));
                        c = add(&e, last, w + 5);
                        snap = build(&c, &macs, &neighbors, 20 + i as u64, Some(&snap));
                        c = crate::edit::apply(
                            &c,
                            &Request::EditServer {
                                service: key,
                                address: Ipv4Addr::new(198, 51, 100, last),
                                port: None,
                                settings: ServerSettings {
                                    weight: Some(w),
                                    ..Default::default()
                                },
                            },
                            &[0],
                        )
                        .unwrap()
                        .0;
                    }
                    snap = build(&c, &macs, &neighbors, 30 + i as u64, Some(&snap));
                }
                assert!(
                    picks(&snap, &clients) == reference,
                    "{algo} {flags}: edits {seed}"
                );
            }
        }
    }

    /// A server that fails its checks keeps its place in the `mh` and `sh` tables: its own
    /// flows go to others, no other flow moves (rebuilding without it, as IPVS does when
    /// keepalived removes it, moves others too: counted and printed).
    #[test]
    fn a_failed_server_keeps_its_place() {
        let macs = [[2, 0, 0, 0, 0, 1]];
        let neighbors = HashMap::new();
        let servers: Vec<(u8, u32)> = (0..6).map(|i| (11 + i, 1)).collect();
        let clients = clients(20_000);
        for algo in ["mh", "sh"] {
            let file = hashing(algo, "", &servers);
            let healthy = picks(&build(&file, &macs, &neighbors, 1, None), &clients);
            // As the checks leave it: 198.51.100.14 out.
            let mut checked = file.clone();
            checked.services[0].real_servers.remove(3);
            let failed = Endpoint::new(Ipv4Addr::new(198, 51, 100, 14), 80);
            let kept = picks(
                &build_checked(&file, &checked, &macs, &neighbors, 2, None),
                &clients,
            );
            let rebuilt = picks(&build(&checked, &macs, &neighbors, 2, None), &clients);
            let (mut moved, mut moved_rebuilt, mut theirs) = (0, 0, 0);
            for ((h, k), r) in healthy.iter().zip(&kept).zip(&rebuilt) {
                let h = h.unwrap();
                assert!(
                    k.is_some_and(|k| k != failed),
                    "{algo}: every flow has a server"
                );
                if h == failed {
                    theirs += 1;
                    continue;
                }
                moved += usize::from(*k != Some(h));
                moved_rebuilt += usize::from(*r != Some(h));
            }
            println!(
                "{algo}: one of 6 failed: {theirs} of its flows moved; of the other {} flows, \
                 {moved} moved (rebuilt without it: {moved_rebuilt})",
                clients.len() - theirs
            );
            assert!(theirs > 0);
            assert_eq!(moved, 0, "{algo}: no other flow moves");
            assert!(moved_rebuilt > 0, "{algo}: the test tells the two apart");
        }
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
        parse(&source)
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
