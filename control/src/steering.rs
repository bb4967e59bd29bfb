//! How each port gets packets to the worker that owns them (see `dataplane::steer` for the
//! owner function), the best the port offers, chosen at start:
//!
//! 1. **RSS that agrees with the owner function**: the port hashes, with rvs's key, only the
//!    client-side endpoint of what it receives: the source address and port on a port that
//!    faces clients, the destination on one that faces NAT real servers or carries FULLNAT
//!    local addresses (their replies name the client, or the local pair, as destination), with
//!    a redirection table of `i mod W`. The NIC then puts every packet of a NAT or FULLNAT
//!    connection on its owner's queue. Needs W a power of two and a NIC that hashes
//!    "source only" / "destination only" (`RTE_ETH_RSS_L3_SRC_ONLY`, ...).
//! 2. **Flow rules** for FULLNAT replies where a port facing the real servers cannot hash that
//!    way but takes `rte_flow` rules (destination local address, destination port under the
//!    mask W - 1, to queue w): the local ports are then shared by their low bits.
//! 3. **Software hand-off** for the rest: a worker that receives a packet it does not own
//!    passes it to the owner on a ring.
//!
//! Whatever the hardware does, the software owner function decides; the hardware only spares
//! the hand-off. The roles come from the start configuration; a reload that adds services on
//! other ports is steered in software there until a restart.

use std::net::Ipv4Addr;

use dataplane::steer::LOCAL_PORT_FIRST;
use dpdk::{DeviceInfo, QueueRule};

use crate::config::{Config, LbKind};

/// What a port carries, as far as steering cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortRole {
    /// Clients reach NAT or FULLNAT VIPs through it.
    pub clients: bool,
    /// Replies of NAT real servers arrive on it.
    pub nat_servers: bool,
    /// FULLNAT local addresses on its subnets (their replies arrive on it).
    pub local_addrs: Vec<Ipv4Addr>,
}

/// Which endpoint a port's RSS hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Source address and port: the clients' packets.
    Source,
    /// Destination address and port: NAT and FULLNAT replies.
    Destination,
}

/// The roles of the configuration's ports (DR and TUN need no steering: the receiving worker
/// owns their flows).
pub fn roles(config: &Config) -> Vec<PortRole> {
    let port_of = |addr: Ipv4Addr| {
        config
            .ports
            .iter()
            .position(|p| p.addresses.iter().any(|a| a.contains(addr)))
    };
    let via = |addr: Ipv4Addr| {
        port_of(addr).or_else(|| {
            config
                .routes
                .iter()
                .filter(|r| r.destination.contains(addr))
                .max_by_key(|r| r.destination.prefix_len)
                .and_then(|r| config.ports.iter().position(|p| p.name == r.port))
        })
    };
    let mut roles = vec![PortRole::default(); config.ports.len()];
    for svc in &config.services {
        if !matches!(svc.lb_kind, LbKind::NAT | LbKind::FULLNAT) {
            continue;
        }
        if let Some(p) = port_of(svc.vip) {
            roles[p].clients = true;
        }
        if svc.lb_kind == LbKind::NAT {
            for rs in &svc.real_servers {
                if let Some(p) = via(rs.address) {
                    roles[p].nat_servers = true;
                }
            }
        }
        for lip in &svc.local_addresses {
            if let Some(p) = port_of(*lip) {
                if !roles[p].local_addrs.contains(lip) {
                    roles[p].local_addrs.push(*lip);
                }
            }
        }
    }
    roles
}

impl PortRole {
    /// The side this port's RSS must hash for the owner function (FULLNAT pairs shared by
    /// hash), `None` if it carries nothing to steer, and `Err` if it faces both clients and
    /// servers (one-armed): no single hash serves both.
    pub fn side(&self) -> Result<Option<Side>, &'static str> {
        let servers = self.nat_servers || !self.local_addrs.is_empty();
        match (self.clients, servers) {
            (true, true) => Err("it faces clients and real servers, no one hash serves both"),
            (true, false) => Ok(Some(Side::Source)),
            (false, true) => Ok(Some(Side::Destination)),
            (false, false) => Ok(None),
        }
    }
}

/// The RSS hash fields for `side`: IPv4 TCP and UDP, that side's address and port only.
pub fn rss_fields(side: Side) -> u64 {
    let base = dpdk::port::RSS_IPV4_TCP | dpdk::port::RSS_IPV4_UDP;
    base | match side {
        Side::Source => dpdk::port::RSS_L3_SRC_ONLY | dpdk::port::RSS_L4_SRC_ONLY,
        Side::Destination => dpdk::port::RSS_L3_DST_ONLY | dpdk::port::RSS_L4_DST_ONLY,
    }
}

/// Whether a device can hash `side` the way the owner function does for `workers` workers;
/// why not otherwise.
pub fn rss_agrees(info: &DeviceInfo, side: Side, workers: usize) -> Result<(), String> {
    if !workers.is_power_of_two() {
        return Err(format!(
            "{workers} workers is not a power of two, which a redirection table needs to agree"
        ));
    }
    if usize::from(info.reta_size) < workers || !info.reta_size.is_power_of_two() {
        return Err(format!(
            "driver {} has no redirection table for {workers} queues",
            info.driver
        ));
    }
    // The key must cover the 6 bytes hashed and the 4 that follow.
    if info.hash_key_size < 10 {
        return Err(format!("driver {} takes no RSS key", info.driver));
    }
    let fields = rss_fields(side);
    if info.rss_offloads & fields != fields {
        return Err(format!(
            "driver {} cannot hash the {} address and port only",
            info.driver,
            match side {
                Side::Source => "source",
                Side::Destination => "destination",
            }
        ));
    }
    Ok(())
}

/// The flow rules that send the replies to `local_addrs` to their owner when the local ports
/// are shared by their low bits: for each address, TCP and UDP, and each worker `w`, the
/// destination ports `p` with `p & (W - 1) == w` (which is `(p - 1024) mod W` for W a power of
/// two) to queue `w`.
pub fn fullnat_rules(local_addrs: &[Ipv4Addr], workers: usize) -> Vec<QueueRule> {
    debug_assert!(workers.is_power_of_two() && usize::from(LOCAL_PORT_FIRST) % workers == 0);
    let mut rules = Vec::new();
    for dst in local_addrs {
        for protocol in [6, 17] {
            for w in 0..workers {
                rules.push(QueueRule {
                    dst: *dst,
                    protocol,
                    port_value: w as u16,
                    port_mask: workers as u16 - 1,
                    queue: w as u16,
                });
            }
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(services: &str) -> Config {
        let source = format!(
            r#"(
    workers: [0, 1],
    ports: [
        (name: "client", device: "net_ring0", addresses: ["198.51.100.1/24"]),
        (name: "servers", device: "net_ring1", addresses: ["203.0.113.1/24"]),
    ],
    routes: [(destination: "192.0.2.0/24", via: "203.0.113.254", port: "servers")],
    services: [{services}],
)"#
        );
        ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
            .from_str(&source)
            .unwrap()
    }

    fn info(rss_offloads: u64) -> DeviceInfo {
        DeviceInfo {
            driver: "nic".into(),
            max_rx_queues: 64,
            max_tx_queues: 64,
            rss_offloads,
            hash_key_size: 52,
            reta_size: 512,
        }
    }

    #[test]
    fn roles_from_services() {
        let c = config(
            r#"(protocol: TCP, vip: "198.51.100.100", port: 80, lb_kind: NAT,
                real_servers: [(address: "192.0.2.7")]),
               (protocol: TCP, vip: "198.51.100.100", port: 81, lb_kind: FULLNAT,
                local_addresses: ["203.0.113.201"], real_servers: [(address: "203.0.113.11")]),
               (protocol: TCP, vip: "198.51.100.101", port: 80, lb_kind: DR,
                real_servers: [(address: "198.51.100.11")])"#,
        );
        let r = roles(&c);
        assert_eq!(
            r[0],
            PortRole {
                clients: true,
                nat_servers: false,
                local_addrs: vec![]
            }
        );
        assert_eq!(
            r[1],
            PortRole {
                clients: false,
                nat_servers: true,
                local_addrs: vec![[203, 0, 113, 201].into()]
            },
            "a routed NAT real server and a local address"
        );
        assert_eq!(r[0].side(), Ok(Some(Side::Source)));
        assert_eq!(r[1].side(), Ok(Some(Side::Destination)));
        // One-armed: clients and servers on the client port.
        let one_armed = config(
            r#"(protocol: TCP, vip: "198.51.100.100", port: 80, lb_kind: NAT,
                real_servers: [(address: "198.51.100.11")])"#,
        );
        assert!(roles(&one_armed)[0].side().is_err());
        assert_eq!(roles(&one_armed)[1].side(), Ok(None));
    }

    #[test]
    fn rss_agrees_only_where_the_nic_can() {
        use dpdk::port::*;
        let full = RSS_IPV4_TCP
            | RSS_IPV4_UDP
            | RSS_L3_SRC_ONLY
            | RSS_L4_SRC_ONLY
            | RSS_L3_DST_ONLY
            | RSS_L4_DST_ONLY;
        assert!(rss_agrees(&info(full), Side::Source, 4).is_ok());
        assert!(rss_agrees(&info(full), Side::Destination, 2).is_ok());
        assert!(rss_agrees(&info(full), Side::Source, 3)
            .unwrap_err()
            .contains("power of two"));
        let no_only = RSS_IPV4_TCP | RSS_IPV4_UDP;
        assert!(rss_agrees(&info(no_only), Side::Source, 2)
            .unwrap_err()
            .contains("cannot hash the source address and port only"));
        let mut af_packet = info(0);
        af_packet.driver = "net_af_packet".into();
        af_packet.reta_size = 0;
        assert!(rss_agrees(&af_packet, Side::Source, 2)
            .unwrap_err()
            .contains("no redirection table"));
    }

    #[test]
    fn fullnat_rules_cover_every_port_once() {
        let lips = [Ipv4Addr::new(203, 0, 113, 201)];
        let rules = fullnat_rules(&lips, 4);
        assert_eq!(rules.len(), 2 * 4);
        for port in LOCAL_PORT_FIRST..=u16::MAX {
            for protocol in [6, 17] {
                let matching: Vec<&QueueRule> = rules
                    .iter()
                    .filter(|r| r.protocol == protocol && port & r.port_mask == r.port_value)
                    .collect();
                assert_eq!(matching.len(), 1);
                let owner = usize::from(port - LOCAL_PORT_FIRST) % 4;
                assert_eq!(usize::from(matching[0].queue), owner, "port {port}");
            }
        }
    }
}
