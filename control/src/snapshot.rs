//! Builds the immutable [`Snapshot`] the workers read from the configuration, the ports' MAC
//! addresses and the neighbour table, and says which next hops need resolving.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::flow::Endpoint;
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
    for svc in &config.services {
        let Some(scheduler) = config::scheduler(&svc.lb_algo) else {
            continue;
        };
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
}
