//! The immutable state workers read: ports and their addresses, services, real servers with
//! their resolved next hops. Built by the control thread, published with one atomic pointer
//! swap, loaded by a worker once per RX burst. Connections keep what they need themselves, so
//! a new snapshot never breaks an established one.

use std::net::Ipv4Addr;
use std::sync::Arc;

use hashbrown::{HashMap, HashSet};

use crate::flow::{Endpoint, ForwardMode};
use crate::sched::{MaglevTable, SchedFlags, SchedulerKind};

/// What one port is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortAddrs {
    pub mac: [u8; 6],
    /// Every IPv4 address the appliance answers ARP and ping for on this port: its own
    /// addresses, the VIPs that face this port, the FULLNAT local addresses on it.
    pub ipv4: Vec<Ipv4Addr>,
    /// The source of packets rvs originates on this port (ICMP errors, tunnels): its first
    /// configured address.
    pub primary: Option<Ipv4Addr>,
    /// Largest IPv4 packet the port sends (without the Ethernet header).
    pub mtu: u16,
    /// The addresses the kernel holds on this port's exception interface (its configured own
    /// addresses; empty without one): what reaches them and is not for the fast path (TCP and
    /// UDP to the appliance, ICMP but the echo rvs answers) goes up to the kernel.
    pub kernel: Vec<Ipv4Addr>,
}

impl PortAddrs {
    #[inline]
    pub fn owns(&self, addr: Ipv4Addr) -> bool {
        self.ipv4.contains(&addr)
    }

    /// Whether a packet to `addr` that rvs does not handle itself belongs to the kernel.
    #[inline]
    pub fn for_kernel(&self, addr: Ipv4Addr) -> bool {
        self.kernel.contains(&addr)
    }
}

/// A real server as workers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    pub addr: Endpoint,
    /// IPVS weight: 0 quiesces (no new connections; existing ones stay).
    pub weight: u32,
    /// The port it is reached through.
    pub port: usize,
    /// MAC of the next hop towards it, once resolved; until then new connections to it are
    /// dropped and counted (`no_neighbor`).
    pub next_hop_mac: Option<[u8; 6]>,
    /// IPVS connection thresholds (`ipvsadm -x`, `-y`; 0: none): at `upper_threshold`
    /// connections the server is overloaded and takes no new ones until it is back below
    /// `lower_threshold` (3/4 of the upper one without it). Each worker enforces its share.
    pub upper_threshold: u32,
    pub lower_threshold: u32,
}

/// Which worker the connections of a VIP address's services belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VipKind {
    /// NAT and FULLNAT only: the worker their client names.
    ClientOwned,
    /// DR and TUN only: the worker that receives them.
    Receiver,
    /// Both kinds, on different ports: ask the service.
    Mixed,
}

/// IPVS persistence (`ipvsadm -p timeout -M netmask`): a client network keeps its real
/// server across connections while its template lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// Seconds a template outlives the last connection it started.
    pub timeout_s: u32,
    /// Which part of the client address makes the template's key.
    pub netmask: Ipv4Addr,
}

impl Persistence {
    #[inline]
    pub fn client_net(&self, client: Ipv4Addr) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(client) & u32::from(self.netmask))
    }
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub protocol: u8,
    pub vip: Endpoint,
    pub mode: ForwardMode,
    pub scheduler: SchedulerKind,
    /// `sh-port`, `sh-fallback`, `mh-port`, `mh-fallback`.
    pub flags: SchedFlags,
    pub reals: Vec<RealServer>,
    /// FULLNAT: the local addresses rvs uses towards the real servers.
    pub local_addrs: Vec<Ipv4Addr>,
    pub persistence: Option<Persistence>,
    /// `mh`: the Maglev lookup table, built by the control thread and shared by the workers.
    /// [`Snapshot::add_service`] builds it from the current weights when it is `None`.
    pub maglev: Option<Arc<MaglevTable>>,
    /// `sh` and `mh`: the servers their table is laid out over, with the weights it uses, in
    /// canonical order ([`crate::sched::canonical`]). The control thread puts every configured
    /// server here, also one that failed its checks and is not in `reals`: it keeps its place
    /// in the table, and its flows alone go elsewhere. Empty: `reals` with their weights.
    pub members: Vec<crate::sched::Member>,
    /// IPVS's `sloppy_tcp` for this service: a TCP segment without SYN (and without RST) of
    /// no connection creates one with the scheduler's answer.
    pub sloppy_tcp: bool,
    /// IPVS's `expire_nodest_conn`, per service: a packet of a connection whose real server
    /// left the service ends that connection (the client's TCP segment is then answered with a
    /// reset, as one of no connection); without it, such connections drain.
    pub expire_nodest_conn: bool,
}

impl Service {
    /// The members of its hashing table, canonical: the `members` field, or the real servers
    /// with their weights when that is empty.
    pub fn members(&self) -> Vec<crate::sched::Member> {
        if self.members.is_empty() {
            crate::sched::canonical(
                &self
                    .reals
                    .iter()
                    .map(|r| (r.addr, r.weight))
                    .collect::<Vec<_>>(),
            )
        } else {
            crate::sched::canonical(&self.members)
        }
    }
}

/// Whether `addr` lies in `network/prefix_len`.
#[inline]
pub fn prefix_contains(network: Ipv4Addr, prefix_len: u8, addr: Ipv4Addr) -> bool {
    let mask = if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len.min(32)))
    };
    u32::from(addr) & mask == u32::from(network) & mask
}

/// The network and directed-broadcast addresses of the subnet `addr/prefix_len`, if it has
/// them: a /31 (RFC 3021) or a /32 has none, every address in it is a host's.
#[inline]
pub fn subnet_edges(addr: Ipv4Addr, prefix_len: u8) -> Option<(Ipv4Addr, Ipv4Addr)> {
    if prefix_len > 30 {
        return None;
    }
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0);
    let network = u32::from(addr) & mask;
    Some((network.into(), (network | !mask).into()))
}

/// An IPv4 prefix reached through a port, directly (connected) or via a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
    pub port: usize,
    /// `None`: on-link (the destination itself is the next hop).
    pub gateway: Option<Ipv4Addr>,
}

impl Route {
    #[inline]
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        prefix_contains(self.network, self.prefix_len, addr)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Changes with every publication; workers compare it to notice a new snapshot.
    pub generation: u64,
    /// Indexed like the config's ports (and the workers' queue tables).
    pub ports: Vec<PortAddrs>,
    pub services: Vec<Service>,
    /// (protocol, VIP endpoint) -> index into `services`.
    pub service_index: HashMap<(u8, Endpoint), u32>,
    /// Connected subnets and configured routes, longest prefix first.
    pub routes: Vec<Route>,
    /// The network and directed-broadcast addresses of the connected subnets (/30 and wider):
    /// never a packet's source (martians, as Linux's broadcast routes make them).
    pub subnet_edges: Vec<Ipv4Addr>,
    /// The host bits of the narrowest of those subnets: an edge address has them all 0 or all
    /// 1, which rules out almost every source before the list is looked at.
    pub subnet_edge_host_bits: u32,
    /// The (port, address) next hops the real servers need: the control thread resolves them,
    /// and a worker hands it every ARP one of them sends so that a changed MAC is learnt at once.
    pub next_hops: HashSet<(usize, Ipv4Addr)>,
    /// Resolved neighbours: (port, IPv4 address) -> MAC.
    pub neighbors: HashMap<(usize, Ipv4Addr), [u8; 6]>,
    /// The owner function of this run's workers (see `steer`); `None` with one worker. Fixed
    /// at start: every snapshot of a run carries the same one.
    pub steering: Option<Arc<crate::steer::Steering>>,
    /// Every FULLNAT local address of every service: packets to them are real servers'
    /// replies, owned by the worker whose share holds their destination port.
    pub local_addrs: Vec<Ipv4Addr>,
    /// Every VIP address, and whether its services' connections belong to their client's
    /// worker (NAT, FULLNAT), to the receiving worker (DR, TUN), or it depends on the port: what
    /// the owner check reads instead of a service lookup.
    pub vip_addrs: Vec<(Ipv4Addr, VipKind)>,
    /// Resets each worker may send per second for TCP segments to a virtual service that has
    /// no connection (0: none; such segments are then dropped as `no_connection`).
    pub tcp_resets_per_second: u32,
    /// Connection timeouts (`ipvsadm --set`); workers apply them when the snapshot changes.
    /// They govern timers set from then on, as in IPVS.
    pub timeouts: crate::conn::Timeouts,
    /// Some service has `expire_nodest_conn` (workers look further only then).
    pub expire_nodest_conn: bool,
    /// VRRP runs: adverts (IP protocol 112, to the group or to an address of ours) go to the
    /// control thread.
    pub vrrp: bool,
    /// Addresses whose VRRP instance is not MASTER here: their traffic is dropped
    /// (`not_master`), and no port answers for them.
    pub standby: Vec<Ipv4Addr>,
    /// VIPs on no port's subnet, routed to this appliance (`announce`: the routers send
    /// their traffic to a port's own address): served on any port, never answered for in ARP
    /// (nobody on a segment asks), answered for in ping.
    pub routed: Vec<Ipv4Addr>,
    /// This appliance sends its connections to backups (its sync instance is MASTER): workers
    /// count the clients' packets and note connections by IPVS's rule.
    pub sync_master: bool,
    /// This appliance takes connections from a master (`lvs_sync_daemon`): the sync group's
    /// datagrams go to the control thread.
    pub sync_backup: bool,
}

impl Snapshot {
    /// A snapshot with ports only (no services): what the appliance answers for itself.
    pub fn with_ports(ports: Vec<PortAddrs>) -> Self {
        Snapshot {
            ports,
            ..Snapshot::default()
        }
    }

    /// Whether `addr` is a FULLNAT local address of some service.
    #[inline]
    pub fn is_local_address(&self, addr: Ipv4Addr) -> bool {
        self.local_addrs.contains(&addr)
    }

    /// Adds a service and indexes it (and builds its Maglev table if it needs one).
    pub fn add_service(&mut self, mut service: Service) {
        self.expire_nodest_conn |= service.expire_nodest_conn;
        for addr in &service.local_addrs {
            if !self.local_addrs.contains(addr) {
                self.local_addrs.push(*addr);
            }
        }
        let kind = if service.mode.sees_replies() {
            VipKind::ClientOwned
        } else {
            VipKind::Receiver
        };
        match self
            .vip_addrs
            .iter_mut()
            .find(|(a, _)| *a == service.vip.addr)
        {
            Some((_, k)) if *k != kind => *k = VipKind::Mixed,
            Some(_) => {}
            None => self.vip_addrs.push((service.vip.addr, kind)),
        }
        if service.scheduler == SchedulerKind::Mh && service.maglev.is_none() {
            service.maglev = Some(Arc::new(MaglevTable::build(
                &service.members(),
                crate::sched::MH_TABLE_SIZE,
            )));
        }
        let index = self.services.len() as u32;
        self.service_index
            .insert((service.protocol, service.vip), index);
        self.services.push(service);
    }

    /// Adds a route, keeping the table ordered longest prefix first. A connected one (no
    /// gateway) of /30 or wider also gives its subnet's network and broadcast addresses.
    pub fn add_route(&mut self, route: Route) {
        let at = self
            .routes
            .partition_point(|r| r.prefix_len >= route.prefix_len);
        self.routes.insert(at, route);
        if let Some((network, broadcast)) =
            subnet_edges(route.network, route.prefix_len).filter(|_| route.gateway.is_none())
        {
            for edge in [network, broadcast] {
                if !self.subnet_edges.contains(&edge) {
                    self.subnet_edges.push(edge);
                }
            }
            let host_bits = u32::from(network) ^ u32::from(broadcast);
            if self.subnet_edge_host_bits == 0 || host_bits < self.subnet_edge_host_bits {
                self.subnet_edge_host_bits = host_bits;
            }
        }
    }

    /// Whether `addr` is the network or broadcast address of a connected subnet.
    #[inline]
    pub fn is_subnet_edge(&self, addr: Ipv4Addr) -> bool {
        let host = u32::from(addr) & self.subnet_edge_host_bits;
        (host == 0 || host == self.subnet_edge_host_bits) && self.subnet_edges.contains(&addr)
    }

    /// Whether ARP from `addr` at `mac` on `port` tells the control thread something new: it
    /// is a next hop rvs needs and the snapshot does not have it at that MAC.
    #[inline]
    pub fn neighbor_news(&self, port: usize, addr: Ipv4Addr, mac: [u8; 6]) -> bool {
        self.next_hops.contains(&(port, addr)) && self.neighbors.get(&(port, addr)) != Some(&mac)
    }

    /// The port and next-hop MAC towards `addr`: longest matching prefix, then its neighbour.
    /// `None` when no route matches or the next hop is not resolved yet.
    #[inline]
    pub fn next_hop(&self, addr: Ipv4Addr) -> Option<(usize, [u8; 6])> {
        let route = self.routes.iter().find(|r| r.contains(addr))?;
        let hop = route.gateway.unwrap_or(addr);
        let mac = self.neighbors.get(&(route.port, hop))?;
        Some((route.port, *mac))
    }

    /// The route towards `addr` without its neighbour (control plane: what to resolve).
    pub fn route(&self, addr: Ipv4Addr) -> Option<&Route> {
        self.routes.iter().find(|r| r.contains(addr))
    }

    #[inline]
    pub fn service(&self, protocol: u8, vip: Endpoint) -> Option<(u32, &Service)> {
        let index = *self.service_index.get(&(protocol, vip))?;
        Some((index, &self.services[index as usize]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_then_neighbour() {
        let mut s = Snapshot::default();
        s.add_route(Route {
            network: [0, 0, 0, 0].into(),
            prefix_len: 0,
            port: 1,
            gateway: Some([203, 0, 113, 254].into()),
        });
        s.add_route(Route {
            network: [203, 0, 113, 0].into(),
            prefix_len: 24,
            port: 1,
            gateway: None,
        });
        s.add_route(Route {
            network: [198, 51, 100, 0].into(),
            prefix_len: 24,
            port: 0,
            gateway: None,
        });
        assert_eq!(s.routes[2].prefix_len, 0, "default route last");
        assert_eq!(
            s.next_hop([203, 0, 113, 11].into()),
            None,
            "not resolved yet"
        );
        s.neighbors
            .insert((1, [203, 0, 113, 11].into()), [2, 0, 0, 0, 0, 11]);
        s.neighbors
            .insert((1, [203, 0, 113, 254].into()), [2, 0, 0, 0, 0, 254]);
        assert_eq!(
            s.next_hop([203, 0, 113, 11].into()),
            Some((1, [2, 0, 0, 0, 0, 11]))
        );
        assert_eq!(
            s.next_hop([192, 0, 2, 7].into()),
            Some((1, [2, 0, 0, 0, 0, 254])),
            "via the gateway"
        );
        assert_eq!(s.next_hop([198, 51, 100, 7].into()), None);
        assert!(Route {
            network: [10, 1, 2, 3].into(),
            prefix_len: 32,
            port: 0,
            gateway: None
        }
        .contains([10, 1, 2, 3].into()));
    }
}
