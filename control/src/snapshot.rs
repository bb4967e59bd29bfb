//! Builds the immutable [`Snapshot`] the workers read from the configuration, the ports' MAC
//! addresses and the neighbour table, and says which next hops need resolving.

use std::net::Ipv4Addr;

use dataplane::flow::Endpoint;
use dataplane::snapshot::{PortAddrs, RealServer, Route, Service, Snapshot};
use hashbrown::HashMap;

use crate::config::{self, Config};

/// `macs[i]` is the MAC of `config.ports[i]`; `neighbors` maps (port, address) to a MAC.
pub fn build(
    config: &Config,
    macs: &[[u8; 6]],
    neighbors: &HashMap<(usize, Ipv4Addr), [u8; 6]>,
    generation: u64,
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
                }
            })
            .collect();
        snapshot.add_service(Service {
            protocol: svc.protocol.number(),
            vip: Endpoint::new(svc.vip, svc.port),
            mode: svc.lb_kind.mode(),
            scheduler,
            reals,
            local_addrs: svc.local_addresses.clone(),
        });
    }
    snapshot
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
