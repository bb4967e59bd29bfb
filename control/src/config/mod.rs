//! The rvsd configuration: one RON file. This module owns its schema (serde, unknown fields
//! refused), its validation, and errors that point at `FILE:LINE:COLUMN` with a reason.

pub mod health;
pub mod keepalived;
pub mod locate;
pub mod vrrp;

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use locate::{locate, Location, Step};
pub use vrrp::SyncDaemon;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How DPDK's EAL is started.
    #[serde(default)]
    pub eal: EalConfig,
    /// CPU cores, one worker each; the worker polls one RX queue of every port.
    pub workers: Vec<usize>,
    /// Let several workers share a core (a core listed twice in `workers`): they take turns,
    /// which is slow; for tests and labs on small machines, never for speed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oversubscribe: bool,
    /// Pin the control thread to this core; by default it may run on any core (it sleeps when
    /// idle, so on a small machine it does not take a worker's time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_core: Option<usize>,
    #[serde(default)]
    pub mempool: MempoolConfig,
    /// The appliance's ports, in the order workers index them.
    pub ports: Vec<PortConfig>,
    /// The control socket `rvsadm` talks to (mode 0600, for the user rvsd runs as). Default
    /// `/run/rvs/rvsd.sock`, or `/run/rvs/FILE_PREFIX.sock` when `eal.file_prefix` is set
    /// (several rvsd on one machine have distinct prefixes, so they get distinct sockets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_socket: Option<PathBuf>,
    /// Where Prometheus scrapes `/metrics` ("127.0.0.1:9477"); absent: no endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Counters as JSON, rewritten every `stats_interval_ms` and at exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_file: Option<PathBuf>,
    #[serde(default = "defaults::stats_interval_ms")]
    pub stats_interval_ms: u64,
    /// Virtual services (ipvsadm -A / keepalived `virtual_server`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceConfig>,
    /// Routes to real servers that are not on a port's subnet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
    /// Neighbours fixed by hand (otherwise rvsd resolves next hops with ARP itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbors: Vec<NeighborConfig>,
    /// The connection table: size and IPVS timeouts (`ipvsadm --set tcp tcpfin udp`).
    #[serde(default)]
    pub connections: ConnectionsConfig,
    /// Failover (keepalived's `vrrp_instance`): the addresses each holds are served only
    /// while it is MASTER.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_instances: Vec<vrrp::VrrpInstance>,
    /// Instances that change state together (`vrrp_sync_group`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_sync_groups: Vec<vrrp::VrrpSyncGroup>,
    /// Scripts instances track (`vrrp_script`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_scripts: Vec<vrrp::VrrpScript>,
    /// Connection sync with IPVS's protocol (keepalived's `lvs_sync_daemon`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lvs_sync_daemon: Option<vrrp::SyncDaemon>,
    /// Announce by health, for an ECMP cluster: each VIP as a /32 on a port's kernel
    /// interface while it may be served here, for a routing daemon (BIRD, FRR) to announce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce: Option<AnnounceConfig>,
}

/// `announce`: rvsd puts each VIP as a /32 address on `port`'s kernel interface while every
/// service of the VIP has its quorum (and, when a VRRP instance holds the VIP, while it is
/// MASTER), and takes it off otherwise. A withdrawal is at once; an announcement waits until
/// the VIP has been fit to serve for `hold_down_ms` without a break (also at start), so a
/// flapping service costs the routers one change per hold-down. At a clean stop the VIPs are
/// taken off first and rvsd keeps forwarding for `withdraw_wait_ms`, while the routers move
/// the traffic away. With `announce`, a VIP needs not be on a port's subnet: it is routed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceConfig {
    /// The port whose kernel interface carries the VIPs (it must have one: `kernel: true`).
    pub port: String,
    #[serde(default = "defaults::hold_down_ms")]
    pub hold_down_ms: u64,
    #[serde(default = "defaults::withdraw_wait_ms")]
    pub withdraw_wait_ms: u64,
}

/// One virtual service. Field names follow keepalived where it has them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub protocol: Protocol,
    /// The virtual IP: rvsd answers ARP for it on the port whose subnet holds it.
    #[serde(deserialize_with = "ipv4")]
    pub vip: Ipv4Addr,
    pub port: u16,
    /// Forwarding method: NAT, FULLNAT, DR or TUN.
    pub lb_kind: LbKind,
    /// Scheduler, by its IPVS name: rr, wrr, lc, wlc, sed, nq, sh, dh, lblc, lblcr, fo, ovf,
    /// mh.
    #[serde(default)]
    pub lb_algo: LbAlgo,
    /// IPVS scheduler flags (`ipvsadm -b`): "sh-port", "sh-fallback" (with sh),
    /// "mh-port", "mh-fallback" (with mh).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sched_flags: Vec<SchedFlagName>,
    /// Persistence (`ipvsadm -p`): seconds a client keeps its real server after its last
    /// new connection (and while connections it started live). Absent: no persistence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_timeout: Option<u32>,
    /// Persistence granularity (`ipvsadm -M`): clients in one network under this mask share
    /// a real server. Default 255.255.255.255 (per client address).
    #[serde(
        default,
        deserialize_with = "ipv4_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub persistence_netmask: Option<Ipv4Addr>,
    /// FULLNAT: the local addresses (LIPs) rvsd uses as source towards the real servers; rvsd
    /// answers ARP for them on the port whose subnet holds them.
    #[serde(
        default,
        deserialize_with = "ipv4_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub local_addresses: Vec<Ipv4Addr>,
    pub real_servers: Vec<RealServerConfig>,
    // Health checking, keepalived's virtual_server options (defaults of the real servers).
    /// Seconds between checks (keepalived's default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_loop: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_before_retry: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<u32>,
    /// Real servers start down until their checks pass.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alpha: bool,
    /// On stop, run the down notifications (quorum_down, notify_down) that apply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub omega: bool,
    /// Least total weight of the live real servers for the service to be up (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// Weight tolerated around the quorum before it is deemed lost or gained again.
    #[serde(default)]
    pub hysteresis: u32,
    /// Programs run when the quorum is gained and lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_up: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_down: Option<String>,
    /// A failed real server keeps its place at weight 0 (its connections drain) instead of
    /// leaving the scheduler.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inhibit_on_failure: bool,
    /// Takes the traffic while the quorum is not met (every real server is then out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<health::SorryServer>,
    /// IPVS's expire_nodest_conn: a packet of a connection whose real server left the service
    /// ends the connection (a TCP client gets a reset) instead of draining it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expire_nodest_conn: bool,
    /// IPVS's `sloppy_tcp`, per service: a TCP segment without SYN of a flow this node has
    /// never seen creates its connection with the scheduler's answer (instead of a reset), so
    /// that a flow the routers' ECMP moves here from another node of a cluster goes on. Only
    /// with a hashing scheduler (`mh`, `sh`: every node gives the same answer) and DR or TUN
    /// (NAT and FULLNAT replies return to the node that rewrote them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sloppy_tcp: bool,
    /// Host header of the service's HTTP_GET/SSL_GET checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RealServerConfig {
    #[serde(deserialize_with = "ipv4")]
    pub address: Ipv4Addr,
    /// Default: the service's port. DR and TUN cannot change the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// IPVS weight; 0 quiesces the server (no new connections, existing ones stay).
    #[serde(default = "defaults::weight")]
    pub weight: u32,
    /// `ipvsadm -x`: at this many connections the server takes no new ones (0: no limit).
    #[serde(default)]
    pub upper_threshold: u32,
    /// `ipvsadm -y`: it takes new ones again below this many (0: below 3/4 of the upper).
    #[serde(default)]
    pub lower_threshold: u32,
    /// Health checkers; the server is up while all of them pass (none: always up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<health::CheckConfig>,
    /// Programs run when the server goes up and down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_up: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_down: Option<String>,
    // keepalived's real_server options, defaults of its checkers (the service's otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibit_on_failure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_loop: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_before_retry: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum Protocol {
    TCP,
    UDP,
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::TCP => 6,
            Protocol::UDP => 17,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum LbKind {
    NAT,
    FULLNAT,
    DR,
    TUN,
}

impl LbKind {
    pub fn mode(self) -> dataplane::flow::ForwardMode {
        use dataplane::flow::ForwardMode;
        match self {
            LbKind::NAT => ForwardMode::Nat,
            LbKind::FULLNAT => ForwardMode::FullNat,
            LbKind::DR => ForwardMode::Dr,
            LbKind::TUN => ForwardMode::Tun,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub destination: Ipv4Cidr,
    /// The gateway; it must sit on the subnet of `port`.
    #[serde(deserialize_with = "ipv4")]
    pub via: Ipv4Addr,
    /// The name of the port the gateway is on.
    pub port: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborConfig {
    #[serde(deserialize_with = "ipv4")]
    pub address: Ipv4Addr,
    /// "02:00:00:00:00:01"
    pub mac: Mac,
    pub port: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Connections per worker; when full, new flows are dropped (`table_full`), established
    /// ones go on.
    #[serde(default = "defaults::capacity")]
    pub capacity: usize,
    /// Seconds, like `ipvsadm --set tcp tcpfin udp`: ESTABLISHED, FIN_WAIT, UDP.
    #[serde(default = "defaults::tcp_timeout")]
    pub tcp_timeout: u32,
    #[serde(default = "defaults::tcpfin_timeout")]
    pub tcpfin_timeout: u32,
    #[serde(default = "defaults::udp_timeout")]
    pub udp_timeout: u32,
    /// Answer a TCP segment to a virtual service that has no connection (not a SYN) with a
    /// reset, as the director's kernel does behind IPVS; `false` drops it (`no_connection`).
    #[serde(default = "defaults::yes")]
    pub reset_unknown: bool,
    /// At most this many such resets per second and worker (a flood of stray segments must
    /// not become a flood of resets).
    #[serde(default = "defaults::reset_rate")]
    pub reset_rate: u32,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            capacity: defaults::capacity(),
            tcp_timeout: defaults::tcp_timeout(),
            tcpfin_timeout: defaults::tcpfin_timeout(),
            udp_timeout: defaults::udp_timeout(),
            reset_unknown: true,
            reset_rate: defaults::reset_rate(),
        }
    }
}

/// Parses "02:00:5e:00:00:12".
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EalConfig {
    /// Upper bound of DPDK memory, MiB.
    #[serde(default = "defaults::memory_mb")]
    pub memory_mb: u32,
    /// `false` runs on ordinary pages (`--no-huge --no-shconf`): slower, for labs and tests.
    #[serde(default = "defaults::yes")]
    pub hugepages: bool,
    /// Distinct per DPDK process on a machine; default `rvs-<pid>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_prefix: Option<String>,
    /// Passed to EAL as they are (e.g. `["--log-level=pmd.net.af_packet:debug"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
}

impl Default for EalConfig {
    fn default() -> Self {
        EalConfig {
            memory_mb: defaults::memory_mb(),
            hugepages: true,
            file_prefix: None,
            extra_args: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    /// Packet buffers; default: enough for every descriptor ring and worker cache, doubled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mbufs: Option<u32>,
    /// Per-worker mbuf cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// What operators and counters call the port.
    pub name: String,
    /// A PCI address (`0000:03:00.0`, bound to vfio-pci) or a vdev string
    /// (`net_af_packet0,iface=lb0`, `net_memif0,role=server,...`, `net_tap0`, `net_null0`).
    pub device: String,
    /// The appliance's own IPv4 addresses on this port (`198.51.100.1/24`; `/32` if no prefix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Ipv4Cidr>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promiscuous: bool,
    #[serde(default = "defaults::descriptors")]
    pub rx_descriptors: u16,
    #[serde(default = "defaults::descriptors")]
    pub tx_descriptors: u16,
    /// Largest IPv4 packet sent on this port; TUN answers fragmentation-needed above it.
    #[serde(default = "defaults::mtu")]
    pub mtu: u16,
    /// The exception path: a kernel interface (TAP) holding the port's addresses, so that
    /// health checks, ssh, routing daemons and ping use kernel sockets on the data port.
    #[serde(default = "defaults::yes")]
    pub kernel: bool,
    /// That interface's name (default `rvs-` and the port's name, cut to 15 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_interface: Option<String>,
}

impl PortConfig {
    /// The name of the port's kernel interface.
    pub fn kernel_interface_name(&self) -> String {
        self.kernel_interface
            .clone()
            .unwrap_or_else(|| format!("rvs-{}", self.name).chars().take(15).collect())
    }
}

impl PortConfig {
    /// The name EAL gives the device: the devargs up to the first comma.
    pub fn device_name(&self) -> &str {
        dpdk::port::device_name(&self.device)
    }

    pub fn is_pci(&self) -> bool {
        is_pci_address(self.device_name())
    }
}

impl Config {
    /// Where the control socket is: `control_socket`, or its default.
    pub fn control_socket_path(&self) -> PathBuf {
        match (&self.control_socket, &self.eal.file_prefix) {
            (Some(path), _) => path.clone(),
            (None, Some(prefix)) => {
                Path::new(crate::api::DEFAULT_SOCKET).with_file_name(format!("{prefix}.sock"))
            }
            (None, None) => crate::api::DEFAULT_SOCKET.into(),
        }
    }
}

mod defaults {
    pub fn hold_down_ms() -> u64 {
        3000
    }
    pub fn withdraw_wait_ms() -> u64 {
        1000
    }
    pub fn memory_mb() -> u32 {
        512
    }
    pub fn yes() -> bool {
        true
    }
    pub fn descriptors() -> u16 {
        1024
    }
    pub fn stats_interval_ms() -> u64 {
        1000
    }
    pub fn weight() -> u32 {
        1
    }
    pub fn mtu() -> u16 {
        1500
    }
    pub fn capacity() -> usize {
        1 << 20
    }
    // IPVS's defaults.
    pub fn tcp_timeout() -> u32 {
        900
    }
    pub fn tcpfin_timeout() -> u32 {
        120
    }
    pub fn udp_timeout() -> u32 {
        300
    }
    pub fn reset_rate() -> u32 {
        1000
    }
}

/// An IPv4 address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| {
            format!("{s:?} is not an IPv4 address (expected e.g. \"198.51.100.1/24\")")
        })?;
        let prefix_len = match prefix {
            None => 32,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= 32 => n,
                _ => return Err(format!("{s:?}: prefix length must be 0..=32")),
            },
        };
        Ok(Ipv4Cidr { addr, prefix_len })
    }
}

impl Ipv4Cidr {
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        dataplane::snapshot::prefix_contains(self.addr, self.prefix_len, addr)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Ipv4Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn parse_ipv4(text: &str) -> Result<Ipv4Addr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an IPv4 address (expected e.g. \"198.51.100.1\")"))
}

/// An IPv4 address field, refused with a message that names the value.
fn ipv4<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Addr, D::Error> {
    parse_ipv4(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn ipv4_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv4Addr>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|t| parse_ipv4(&t).map_err(serde::de::Error::custom))
        .transpose()
}

fn ipv4_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ipv4Addr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|t| parse_ipv4(t).map_err(serde::de::Error::custom))
        .collect()
}

fn is_pci_address(name: &str) -> bool {
    // dddd:bb:dd.f or bb:dd.f
    let parts: Vec<&str> = name.split([':', '.']).collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    match parts.as_slice() {
        [d, b, s, f] => hex(d, 4) && hex(b, 2) && hex(s, 2) && hex(f, 1),
        [b, s, f] => hex(b, 2) && hex(s, 2) && hex(f, 1),
        _ => false,
    }
}

/// A configuration error: where (when known) and why. Displays as `FILE:LINE:COLUMN: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub location: Option<Location>,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(l) => write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                l.line,
                l.column,
                self.reason
            ),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A parsed file with its source kept, so that later errors (a port that does not open) can
/// still be placed.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub file: PathBuf,
    pub source: String,
    pub config: Config,
}

impl LoadedConfig {
    /// An error about the value at `path` (or, if it is not written, its nearest parent).
    pub fn error_at(&self, path: &[Step<'_>], reason: impl Into<String>) -> ConfigError {
        let location = (0..=path.len())
            .rev()
            .find_map(|n| locate(&self.source, &path[..n]));
        ConfigError {
            file: self.file.clone(),
            location,
            reason: reason.into(),
        }
    }
}

/// Reads, parses and validates a file against the cores this process may use now.
pub fn load(file: &Path) -> Result<LoadedConfig, ConfigError> {
    load_with_cores(file, &available_cores())
}

/// Reads, parses and validates a file against `cores`. rvsd reads its usable cores once,
/// before EAL pins the control thread to one of them, and validates reloads against that list:
/// the control thread's later affinity would refuse every other worker core.
pub fn load_with_cores(file: &Path, cores: &[usize]) -> Result<LoadedConfig, ConfigError> {
    let source = std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_owned(),
        location: None,
        reason: format!("cannot read: {e}"),
    })?;
    parse_with_cores(file, source, cores)
}

/// Parses and validates `source` as if read from `file`, against the cores this process may
/// use now.
pub fn parse(file: &Path, source: String) -> Result<LoadedConfig, ConfigError> {
    parse_with_cores(file, source, &available_cores())
}

/// Parses and validates `source` as if read from `file`, against `cores`; also checks that
/// the stats file can be written.
pub fn parse_with_cores(
    file: &Path,
    source: String,
    cores: &[usize],
) -> Result<LoadedConfig, ConfigError> {
    let options =
        ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
    let config: Config = options.from_str(&source).map_err(|e| ConfigError {
        file: file.to_owned(),
        location: Some(Location {
            line: e.span.start.line,
            column: e.span.start.col,
        }),
        reason: e.code.to_string(),
    })?;
    let loaded = LoadedConfig {
        file: file.to_owned(),
        source,
        config,
    };
    validate(&loaded, cores)?;
    check_stats_file(&loaded)?;
    Ok(loaded)
}

/// The configuration as a RON file (`rvsadm --save-ron`): every value it holds, defaults
/// written out where the schema has no "absent", so that loading it gives the same
/// configuration (a reload of it changes nothing).
pub fn to_ron(config: &Config) -> String {
    let pretty = ron::ser::PrettyConfig::new()
        .indentor("    ".to_owned())
        .extensions(ron::extensions::Extensions::IMPLICIT_SOME);
    ron::ser::to_string_pretty(config, pretty).expect("a configuration always serializes")
}

/// The cores this process may run on.
pub fn available_cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// Whether `new` may replace `running` while rvsd runs: `None` if it differs only in what a
/// reload applies (services, routes, neighbors, connection timeouts); otherwise an error at the
/// first field, in the schema's order, that only a restart applies, naming both values. Fields
/// written in neither file compare by their defaults.
pub fn restart_only_change(running: &Config, new: &LoadedConfig) -> Option<ConfigError> {
    use Step::{Field, Index};
    // No `..`: a field added to the schema does not compile here until it is sorted into
    // live or restart-only.
    let Config {
        eal:
            EalConfig {
                memory_mb,
                hugepages,
                file_prefix,
                extra_args,
            },
        workers,
        oversubscribe,
        control_core,
        mempool: MempoolConfig { mbufs, cache },
        ports,
        control_socket,
        metrics,
        stats_file,
        stats_interval_ms,
        services: _,
        routes: _,
        neighbors: _,
        connections:
            ConnectionsConfig {
                capacity,
                tcp_timeout: _,
                tcpfin_timeout: _,
                udp_timeout: _,
                reset_unknown: _,
                reset_rate: _,
            },
        vrrp_instances,
        vrrp_sync_groups,
        vrrp_scripts,
        lvs_sync_daemon,
        // Live: a reload moves the addresses to the new port, with the new timings.
        announce: _,
    } = running;
    let n = &new.config;
    let count = |k: &usize| match k {
        1 => "1 port".to_owned(),
        k => format!("{k} ports"),
    };
    let cidrs = |v: &Vec<Ipv4Cidr>| {
        let texts: Vec<String> = v.iter().map(|c| format!("\"{c}\"")).collect();
        format!("[{}]", texts.join(", "))
    };
    let mut diffs = vec![
        (
            vec![Field("eal"), Field("memory_mb")],
            differ(memory_mb, &n.eal.memory_mb, debug),
        ),
        (
            vec![Field("eal"), Field("hugepages")],
            differ(hugepages, &n.eal.hugepages, debug),
        ),
        (
            vec![Field("eal"), Field("file_prefix")],
            differ(file_prefix, &n.eal.file_prefix, or_unset),
        ),
        (
            vec![Field("eal"), Field("extra_args")],
            differ(extra_args, &n.eal.extra_args, debug),
        ),
        (vec![Field("workers")], differ(workers, &n.workers, debug)),
        (
            vec![Field("oversubscribe")],
            differ(oversubscribe, &n.oversubscribe, debug),
        ),
        (
            vec![Field("control_core")],
            differ(control_core, &n.control_core, or_unset),
        ),
        (
            vec![Field("mempool"), Field("mbufs")],
            differ(mbufs, &n.mempool.mbufs, or_unset),
        ),
        (
            vec![Field("mempool"), Field("cache")],
            differ(cache, &n.mempool.cache, or_unset),
        ),
        (
            vec![Field("ports")],
            differ(&ports.len(), &n.ports.len(), count),
        ),
    ];
    for (i, (old, now)) in ports.iter().zip(&n.ports).enumerate() {
        let PortConfig {
            name,
            device,
            addresses,
            promiscuous,
            rx_descriptors,
            tx_descriptors,
            mtu,
            kernel,
            kernel_interface,
        } = old;
        let at = |f| vec![Field("ports"), Index(i), Field(f)];
        diffs.extend([
            (at("name"), differ(name, &now.name, debug)),
            (at("device"), differ(device, &now.device, debug)),
            (at("addresses"), differ(addresses, &now.addresses, cidrs)),
            (
                at("promiscuous"),
                differ(promiscuous, &now.promiscuous, debug),
            ),
            (
                at("rx_descriptors"),
                differ(rx_descriptors, &now.rx_descriptors, debug),
            ),
            (
                at("tx_descriptors"),
                differ(tx_descriptors, &now.tx_descriptors, debug),
            ),
            (at("mtu"), differ(mtu, &now.mtu, debug)),
            (at("kernel"), differ(kernel, &now.kernel, debug)),
            (
                at("kernel_interface"),
                differ(kernel_interface, &now.kernel_interface, or_unset),
            ),
        ]);
    }
    diffs.extend([
        (
            vec![Field("stats_file")],
            differ(stats_file, &n.stats_file, or_unset),
        ),
        (
            vec![Field("stats_interval_ms")],
            differ(stats_interval_ms, &n.stats_interval_ms, debug),
        ),
        (
            vec![Field("control_socket")],
            differ(control_socket, &n.control_socket, or_unset),
        ),
        (
            vec![Field("metrics")],
            differ(metrics, &n.metrics, or_unset),
        ),
        (
            vec![Field("connections"), Field("capacity")],
            differ(capacity, &n.connections.capacity, debug),
        ),
        (
            vec![Field("lvs_sync_daemon")],
            differ(lvs_sync_daemon, &n.lvs_sync_daemon, or_unset),
        ),
    ]);
    // VRRP: the first instance, group or script that differs, shown by name.
    fn first_change<T: PartialEq>(
        old: &[T],
        new: &[T],
        field: &'static str,
        name: impl Fn(&T) -> &str,
    ) -> (Vec<Step<'static>>, Option<(String, String)>) {
        let names = |v: &[T]| format!("[{}]", v.iter().map(&name).collect::<Vec<_>>().join(", "));
        match old.iter().zip(new).position(|(a, b)| a != b) {
            Some(i) => (
                vec![Step::Field(field), Step::Index(i)],
                Some((
                    format!("{} as it was", name(&old[i])),
                    format!("{} edited", name(&new[i])),
                )),
            ),
            None => (
                vec![Step::Field(field)],
                differ(&names(old), &names(new), String::clone),
            ),
        }
    }
    diffs.extend([
        first_change(vrrp_instances, &n.vrrp_instances, "vrrp_instances", |v| {
            &v.name
        }),
        first_change(
            vrrp_sync_groups,
            &n.vrrp_sync_groups,
            "vrrp_sync_groups",
            |v| &v.name,
        ),
        first_change(vrrp_scripts, &n.vrrp_scripts, "vrrp_scripts", |v| &v.name),
    ]);
    diffs.into_iter().find_map(|(path, diff)| {
        let (old, now) = diff?;
        Some(new.error_at(
            &path,
            format!(
                "{} changed ({old} -> {now}): only services, routes, neighbors and the \
                 connections' timeouts and resets change while running; restart rvsd for the rest",
                path_text(&path)
            ),
        ))
    })
}

/// Both values, shown, if they differ.
fn differ<T: PartialEq>(old: &T, new: &T, show: impl Fn(&T) -> String) -> Option<(String, String)> {
    (old != new).then(|| (show(old), show(new)))
}

fn debug<T: fmt::Debug>(value: &T) -> String {
    format!("{value:?}")
}

fn or_unset<T: fmt::Debug>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "unset".to_owned(), debug)
}

/// `ports[1].device`
fn path_text(path: &[Step<'_>]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Field(name) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(name);
            }
            Step::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    text
}

/// What cannot be said by the schema alone.
pub fn validate(loaded: &LoadedConfig, cores: &[usize]) -> Result<(), ConfigError> {
    use Step::{Field, Index};
    let c = &loaded.config;
    let cores_text = || {
        cores
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };

    if c.workers.is_empty() {
        return Err(loaded.error_at(&[Field("workers")], "at least one worker core is needed"));
    }
    let mut seen = HashSet::new();
    for (i, core) in c.workers.iter().enumerate() {
        if !cores.contains(core) {
            return Err(loaded.error_at(
                &[Field("workers"), Index(i)],
                format!(
                    "core {core} does not exist or is not allowed (this process may use cores {})",
                    cores_text()
                ),
            ));
        }
        if !seen.insert(core) && !c.oversubscribe {
            return Err(loaded.error_at(
                &[Field("workers"), Index(i)],
                format!(
                    "core {core} is listed twice (oversubscribe: true lets workers share a core, \
                     slowly: for tests)"
                ),
            ));
        }
    }
    if let Some(core) = c.control_core {
        if !cores.contains(&core) {
            return Err(loaded.error_at(
                &[Field("control_core")],
                format!(
                    "core {core} does not exist or is not allowed (cores {})",
                    cores_text()
                ),
            ));
        }
    }
    if c.eal.memory_mb < 64 {
        return Err(loaded.error_at(
            &[Field("eal"), Field("memory_mb")],
            "at least 64 MiB are needed",
        ));
    }
    if let Some(prefix) = &c.eal.file_prefix {
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        {
            return Err(loaded.error_at(
                &[Field("eal"), Field("file_prefix")],
                "file_prefix must be non-empty letters, digits, '-', '_' or '.'",
            ));
        }
    }
    if let Some(a) = &c.announce {
        match c.ports.iter().find(|p| p.name == a.port) {
            None => {
                return Err(loaded.error_at(
                    &[Field("announce"), Field("port")],
                    format!("announce.port {:?} is not a port of this file", a.port),
                ))
            }
            Some(p) if !p.kernel => {
                return Err(loaded.error_at(
                    &[Field("announce"), Field("port")],
                    format!(
                        "port {:?} has no kernel interface (kernel: false): the VIPs are \
                         announced from it",
                        a.port
                    ),
                ))
            }
            Some(_) => {}
        }
        if a.hold_down_ms > 3_600_000 || a.withdraw_wait_ms > 60_000 {
            return Err(loaded.error_at(
                &[Field("announce")],
                "hold_down_ms is at most 3600000 (an hour), withdraw_wait_ms at most 60000",
            ));
        }
    }
    if c.stats_interval_ms < 100 {
        return Err(loaded.error_at(
            &[Field("stats_interval_ms")],
            "stats_interval_ms must be at least 100",
        ));
    }

    if c.ports.is_empty() {
        return Err(loaded.error_at(&[Field("ports")], "at least one port is needed"));
    }
    let mut names = HashSet::new();
    let mut kernel_names = HashSet::new();
    let mut devices = HashSet::new();
    let mut addresses = HashSet::new();
    for (i, port) in c.ports.iter().enumerate() {
        let at = |field| [Field("ports"), Index(i), Field(field)];
        if port.name.is_empty() || !names.insert(port.name.as_str()) {
            return Err(loaded.error_at(
                &at("name"),
                format!("port name {:?} is empty or used twice", port.name),
            ));
        }
        let device = port.device_name();
        if device.is_empty() {
            return Err(loaded.error_at(&at("device"), "device is empty"));
        }
        if !port.is_pci() && !device.starts_with("net_") {
            return Err(loaded.error_at(
                &at("device"),
                format!("{device:?} is neither a PCI address (0000:03:00.0) nor a vdev (net_af_packet0,iface=...)"),
            ));
        }
        if !devices.insert(device) {
            return Err(loaded.error_at(
                &at("device"),
                format!("device {device:?} is used by two ports"),
            ));
        }
        for (j, cidr) in port.addresses.iter().enumerate() {
            let a = cidr.addr;
            let path = [Field("ports"), Index(i), Field("addresses"), Index(j)];
            if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() {
                return Err(
                    loaded.error_at(&path, format!("{a} cannot be an address of the appliance"))
                );
            }
            if !addresses.insert(a) {
                return Err(loaded.error_at(&path, format!("address {a} is configured twice")));
            }
        }
        if port.kernel {
            let name = port.kernel_interface_name();
            if name.is_empty()
                || name.len() > 15
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
            {
                return Err(loaded.error_at(
                    &at("kernel_interface"),
                    format!(
                        "kernel interface name {name:?} must be 1 to 15 letters, digits, '-', \
                         '_' or '.'"
                    ),
                ));
            }
            if !kernel_names.insert(name.clone()) {
                return Err(loaded.error_at(
                    &at("kernel_interface"),
                    format!("kernel interface {name:?} is used by two ports"),
                ));
            }
        }
        for (field, value) in [
            ("rx_descriptors", port.rx_descriptors),
            ("tx_descriptors", port.tx_descriptors),
        ] {
            if !(64..=16384).contains(&value) {
                return Err(loaded.error_at(&at(field), format!("{field} must be in 64..=16384")));
            }
        }
    }
    validate_network(loaded)
}

/// Routes, neighbours, services and the connection table.
fn validate_network(loaded: &LoadedConfig) -> Result<(), ConfigError> {
    use Step::{Field, Index};
    let c = &loaded.config;
    let port_named = |name: &str| c.ports.iter().position(|p| p.name == name);
    let on_link = |addr: Ipv4Addr| {
        c.ports
            .iter()
            .position(|p| p.addresses.iter().any(|a| a.contains(addr)))
    };
    let own_port = |addr: Ipv4Addr| {
        c.ports
            .iter()
            .find(|p| p.addresses.iter().any(|a| a.addr == addr))
    };
    let own = |addr: Ipv4Addr| own_port(addr).is_some();

    for (i, port) in c.ports.iter().enumerate() {
        if !(576..=9216).contains(&port.mtu) {
            return Err(loaded.error_at(
                &[Field("ports"), Index(i), Field("mtu")],
                "mtu must be in 576..=9216",
            ));
        }
    }
    for (i, route) in c.routes.iter().enumerate() {
        let at = |f| [Field("routes"), Index(i), Field(f)];
        let Some(port) = port_named(&route.port) else {
            return Err(loaded.error_at(&at("port"), format!("no port is named {:?}", route.port)));
        };
        if !c.ports[port]
            .addresses
            .iter()
            .any(|a| a.contains(route.via))
        {
            return Err(loaded.error_at(
                &at("via"),
                format!(
                    "gateway {} is not on a subnet of port {:?}",
                    route.via, route.port
                ),
            ));
        }
    }
    for (i, n) in c.neighbors.iter().enumerate() {
        let at = |f| [Field("neighbors"), Index(i), Field(f)];
        if port_named(&n.port).is_none() {
            return Err(loaded.error_at(&at("port"), format!("no port is named {:?}", n.port)));
        }
    }
    let conns = &c.connections;
    if !(1..=1 << 28).contains(&conns.capacity) {
        return Err(loaded.error_at(
            &[Field("connections"), Field("capacity")],
            "capacity must be in 1..=268435456",
        ));
    }
    for (field, value) in [
        ("tcp_timeout", conns.tcp_timeout),
        ("tcpfin_timeout", conns.tcpfin_timeout),
        ("udp_timeout", conns.udp_timeout),
    ] {
        if value == 0 || value > 86400 * 7 {
            return Err(loaded.error_at(
                &[Field("connections"), Field(field)],
                format!("{field} must be 1..=604800 seconds"),
            ));
        }
    }

    if !(1..=1_000_000).contains(&conns.reset_rate) {
        return Err(loaded.error_at(
            &[Field("connections"), Field("reset_rate")],
            "reset_rate must be 1..=1000000 resets per second and worker (reset_unknown: false \
             sends none)",
        ));
    }

    let mut services = HashSet::new();
    let mut local_addresses = HashSet::new();
    // Each VIP and FULLNAT local address, with the first service that has it.
    let mut vips: std::collections::HashMap<Ipv4Addr, usize> = Default::default();
    let mut lips: std::collections::HashMap<Ipv4Addr, usize> = Default::default();
    for (k, svc) in c.services.iter().enumerate() {
        vips.entry(svc.vip).or_insert(k);
        for lip in &svc.local_addresses {
            lips.entry(*lip).or_insert(k);
        }
    }
    for (i, svc) in c.services.iter().enumerate() {
        let at = |f| [Field("services"), Index(i), Field(f)];
        let kind = svc.lb_algo.0;
        for (j, flag) in svc.sched_flags.iter().enumerate() {
            let here = [Field("services"), Index(i), Field("sched_flags"), Index(j)];
            if flag.scheduler() != kind {
                return Err(loaded.error_at(
                    &here,
                    format!(
                        "{} is a flag of lb_algo \"{}\", not \"{}\"",
                        flag.name(),
                        flag.scheduler().name(),
                        kind.name()
                    ),
                ));
            }
        }
        if let Some(t) = svc.persistence_timeout {
            if t == 0 || t > 31_536_000 {
                return Err(loaded.error_at(
                    &at("persistence_timeout"),
                    "persistence_timeout must be 1..=31536000 seconds",
                ));
            }
        }
        if let Some(mask) = svc.persistence_netmask {
            if svc.persistence_timeout.is_none() {
                return Err(loaded.error_at(
                    &at("persistence_netmask"),
                    "persistence_netmask needs persistence_timeout",
                ));
            }
            let m = u32::from(mask);
            if m.leading_ones() + m.trailing_zeros() != 32 {
                return Err(loaded.error_at(
                    &at("persistence_netmask"),
                    format!("{mask} is not a netmask (contiguous ones, like 255.255.255.0)"),
                ));
            }
        }
        if svc.real_servers.len() > MAX_REAL_SERVERS {
            return Err(loaded.error_at(
                &at("real_servers"),
                format!("at most {MAX_REAL_SERVERS} real servers per service"),
            ));
        }
        if svc.port == 0 {
            return Err(loaded.error_at(&at("port"), "port 0 is not a service port"));
        }
        if !services.insert((svc.protocol, svc.vip, svc.port)) {
            return Err(loaded.error_at(
                &at("vip"),
                format!(
                    "{:?} {}:{} is defined twice",
                    svc.protocol, svc.vip, svc.port
                ),
            ));
        }
        if on_link(svc.vip).is_none() && c.announce.is_none() {
            return Err(loaded.error_at(
                &at("vip"),
                format!(
                    "VIP {} is on no port's subnet: rvsd would not know where to answer ARP for it",
                    svc.vip
                ),
            ));
        }
        if own(svc.vip) {
            return Err(loaded.error_at(
                &at("vip"),
                format!("VIP {} is a port's own address", svc.vip),
            ));
        }
        if let Some(edge) = subnet_edge(&c.ports, svc.vip) {
            return Err(loaded.error_at(&at("vip"), format!("VIP {} is {edge}", svc.vip)));
        }
        if svc.sloppy_tcp {
            use dataplane::sched::SchedulerKind::{Mh, Sh};
            if !matches!(svc.lb_algo.0, Mh | Sh) {
                return Err(loaded.error_at(
                    &at("sloppy_tcp"),
                    format!(
                        "sloppy_tcp needs a hashing scheduler (lb_algo \"mh\" or \"sh\"): with \
                         \"{}\" another node would pick another real server for the flow",
                        svc.lb_algo.name()
                    ),
                ));
            }
            if matches!(svc.lb_kind, LbKind::NAT | LbKind::FULLNAT) {
                return Err(loaded.error_at(
                    &at("sloppy_tcp"),
                    format!(
                        "sloppy_tcp works with DR and TUN only: {:?} replies return to the node \
                         that rewrote the flow, which another node cannot take over; use a \
                         failover pair (vrrp_instances with lvs_sync_daemon) instead",
                        svc.lb_kind
                    ),
                ));
            }
            if svc.protocol != Protocol::TCP {
                return Err(loaded.error_at(
                    &at("sloppy_tcp"),
                    "sloppy_tcp is for TCP services (a UDP datagram always creates its connection)",
                ));
            }
        }
        let fullnat = svc.lb_kind == LbKind::FULLNAT;
        if fullnat && svc.local_addresses.is_empty() {
            return Err(loaded.error_at(
                &at("local_addresses"),
                "FULLNAT needs at least one local address",
            ));
        }
        if !fullnat && !svc.local_addresses.is_empty() {
            return Err(
                loaded.error_at(&at("local_addresses"), "only FULLNAT uses local addresses")
            );
        }
        for (j, lip) in svc.local_addresses.iter().enumerate() {
            let here = [
                Field("services"),
                Index(i),
                Field("local_addresses"),
                Index(j),
            ];
            if on_link(*lip).is_none() || own(*lip) {
                return Err(loaded.error_at(
                    &here,
                    format!("local address {lip} must be on a port's subnet and not a port's own address"),
                ));
            }
            if let Some(edge) = subnet_edge(&c.ports, *lip) {
                return Err(loaded.error_at(&here, format!("local address {lip} is {edge}")));
            }
            local_addresses.insert(*lip);
        }
        let mut reals = HashSet::new();
        for (j, rs) in svc.real_servers.iter().enumerate() {
            let here = |f| {
                [
                    Field("services"),
                    Index(i),
                    Field("real_servers"),
                    Index(j),
                    Field(f),
                ]
            };
            let routed = c.routes.iter().any(|r| r.destination.contains(rs.address));
            if on_link(rs.address).is_none() && !routed {
                return Err(loaded.error_at(
                    &here("address"),
                    format!(
                        "real server {} is on no port's subnet and no route leads to it",
                        rs.address
                    ),
                ));
            }
            if svc.lb_kind == LbKind::DR && on_link(rs.address).is_none() {
                return Err(loaded.error_at(
                    &here("address"),
                    format!(
                        "DR needs real server {} on a port's subnet (same link)",
                        rs.address
                    ),
                ));
            }
            if matches!(svc.lb_kind, LbKind::DR | LbKind::TUN)
                && rs.port.is_some_and(|p| p != svc.port)
            {
                return Err(loaded.error_at(&here("port"), "DR and TUN cannot change the port"));
            }
            if rs.port == Some(0) {
                return Err(loaded.error_at(&here("port"), "port 0 is not a real server port"));
            }
            // rvsd answers for these addresses itself, and hosts take a subnet's network and
            // broadcast addresses for no single host: traffic "to the real server" would loop
            // back into rvsd or go to every host of the link.
            // (The sets first: a linear search per real server is quadratic in a large file.)
            let collision = if let Some(other) = vips.get(&rs.address).map(|&k| &c.services[k]) {
                Some(format!(
                    "a VIP (service {:?} {}:{})",
                    other.protocol, other.vip, other.port
                ))
            } else if let Some(port) = own_port(rs.address) {
                Some(format!("an own address of port {:?}", port.name))
            } else if let Some(other) = lips.get(&rs.address).map(|&k| &c.services[k]) {
                Some(format!(
                    "a FULLNAT local address (service {:?} {}:{})",
                    other.protocol, other.vip, other.port
                ))
            } else {
                subnet_edge(&c.ports, rs.address)
            };
            if let Some(what) = collision {
                return Err(loaded.error_at(
                    &here("address"),
                    format!("real server {} is {what}", rs.address),
                ));
            }
            let port = rs.port.unwrap_or(svc.port);
            if !reals.insert((rs.address, port)) {
                return Err(loaded.error_at(
                    &here("address"),
                    format!(
                        "real server {}:{port} is listed twice in this service",
                        rs.address
                    ),
                ));
            }
            if rs.weight > MAX_WEIGHT {
                return Err(loaded.error_at(
                    &here("weight"),
                    format!(
                        "weight {} is above {MAX_WEIGHT} (ipvsadm's range is 0..={MAX_WEIGHT})",
                        rs.weight
                    ),
                ));
            }
            if rs.lower_threshold > rs.upper_threshold {
                return Err(loaded.error_at(
                    &here("lower_threshold"),
                    format!(
                        "lower_threshold {} is above upper_threshold {} (IPVS refuses it too)",
                        rs.lower_threshold, rs.upper_threshold
                    ),
                ));
            }
        }
    }
    for (i, svc) in c.services.iter().enumerate() {
        if local_addresses.contains(&svc.vip) {
            return Err(loaded.error_at(
                &[Field("services"), Index(i), Field("vip")],
                format!("{} is both a VIP and a FULLNAT local address", svc.vip),
            ));
        }
        validate_health(loaded, i)?;
    }
    vrrp::validate(loaded)
}

/// A service's health checking: timings in range, checkers that can run, a sorry server
/// rvsd can reach, scripts named.
fn validate_health(loaded: &LoadedConfig, i: usize) -> Result<(), ConfigError> {
    use health::CheckConfig;
    use Step::{Field, Index};
    let c = &loaded.config;
    let svc = &c.services[i];
    let timing_ok = |path: &[Step<'_>],
                     delay_loop: Option<u32>,
                     connect_timeout: Option<u32>,
                     retry: Option<u32>,
                     delay_before_retry: Option<u32>,
                     warmup: Option<u32>|
     -> Result<(), ConfigError> {
        for (field, value, range) in [
            ("delay_loop", delay_loop, 1..=86_400),
            ("connect_timeout", connect_timeout, 1..=3_600),
            ("retry", retry, 0..=100),
            ("delay_before_retry", delay_before_retry, 0..=3_600),
            ("warmup", warmup, 0..=86_400),
        ] {
            if let Some(v) = value {
                if !range.contains(&v) {
                    let mut at = path.to_vec();
                    at.push(Field(field));
                    return Err(loaded.error_at(
                        &at,
                        format!(
                            "{field} {v} is out of range ({}..={} seconds{})",
                            range.start(),
                            range.end(),
                            if field == "retry" { ", retries" } else { "" }
                        ),
                    ));
                }
            }
        }
        Ok(())
    };
    let service_at = [Field("services"), Index(i)];
    timing_ok(
        &service_at,
        svc.delay_loop,
        svc.connect_timeout,
        svc.retry,
        svc.delay_before_retry,
        svc.warmup,
    )?;
    let at = |f| [Field("services"), Index(i), Field(f)];
    if svc.quorum == Some(0) {
        return Err(loaded.error_at(&at("quorum"), "quorum must be at least 1"));
    }
    let quorum = svc.quorum.unwrap_or(health::defaults::QUORUM);
    if svc.hysteresis >= quorum {
        return Err(loaded.error_at(
            &at("hysteresis"),
            format!(
                "hysteresis {} must be below the quorum {quorum}",
                svc.hysteresis
            ),
        ));
    }
    for (field, script) in [
        ("quorum_up", &svc.quorum_up),
        ("quorum_down", &svc.quorum_down),
    ] {
        if script.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(loaded.error_at(&at(field), format!("{field} names no program")));
        }
    }
    if let Some(sorry) = &svc.sorry_server {
        let sorry_at = [Field("services"), Index(i), Field("sorry_server")];
        let on_link = c
            .ports
            .iter()
            .any(|p| p.addresses.iter().any(|a| a.contains(sorry.address)));
        let routed = c
            .routes
            .iter()
            .any(|r| r.destination.contains(sorry.address));
        if !on_link && !routed {
            return Err(loaded.error_at(
                &sorry_at,
                format!(
                    "sorry server {} is on no port's subnet and no route leads to it",
                    sorry.address
                ),
            ));
        }
        if svc.lb_kind == LbKind::DR && !on_link {
            return Err(loaded.error_at(
                &sorry_at,
                format!("DR needs sorry server {} on a port's subnet", sorry.address),
            ));
        }
        if matches!(svc.lb_kind, LbKind::DR | LbKind::TUN)
            && sorry.port.is_some_and(|p| p != svc.port)
        {
            return Err(loaded.error_at(&sorry_at, "DR and TUN cannot change the port"));
        }
    }
    for (j, rs) in svc.real_servers.iter().enumerate() {
        let rs_at = [Field("services"), Index(i), Field("real_servers"), Index(j)];
        timing_ok(
            &rs_at,
            rs.delay_loop,
            rs.connect_timeout,
            rs.retry,
            rs.delay_before_retry,
            rs.warmup,
        )?;
        for (field, script) in [
            ("notify_up", &rs.notify_up),
            ("notify_down", &rs.notify_down),
        ] {
            if script.as_deref().is_some_and(|s| s.trim().is_empty()) {
                let mut here = rs_at.to_vec();
                here.push(Field(field));
                return Err(loaded.error_at(&here, format!("{field} names no program")));
            }
        }
        for (k, check) in rs.checks.iter().enumerate() {
            let check_at = [
                Field("services"),
                Index(i),
                Field("real_servers"),
                Index(j),
                Field("checks"),
                Index(k),
            ];
            let field_at = |f: &'static str| {
                let mut p = check_at.to_vec();
                p.push(Field(f));
                p
            };
            let t = check.timing();
            timing_ok(
                &check_at,
                t.delay_loop,
                t.connect_timeout,
                t.retry,
                t.delay_before_retry,
                t.warmup,
            )?;
            if let Some(ip) = t.connect_ip {
                if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
                    return Err(
                        loaded.error_at(&field_at("connect_ip"), format!("{ip} cannot be checked"))
                    );
                }
            }
            if t.connect_port == Some(0) {
                return Err(loaded.error_at(&field_at("connect_port"), "port 0 cannot be checked"));
            }
            match check {
                CheckConfig::HTTP_GET { url, .. } | CheckConfig::SSL_GET { url, .. } => {
                    if url.is_empty() {
                        return Err(loaded.error_at(
                            &field_at("url"),
                            format!("{} needs at least one url", check.name()),
                        ));
                    }
                    for (u, one) in url.iter().enumerate() {
                        let mut here = field_at("url");
                        here.push(Index(u));
                        let in_url = |f: &'static str| {
                            let mut p = here.clone();
                            p.push(Field(f));
                            p
                        };
                        if !one.path.starts_with('/') {
                            return Err(loaded.error_at(
                                &in_url("path"),
                                format!("path {:?} must start with /", one.path),
                            ));
                        }
                        if one.status_code.is_some_and(|s| !(100..=599).contains(&s)) {
                            return Err(loaded.error_at(
                                &in_url("status_code"),
                                "status_code must be an HTTP status, 100..=599",
                            ));
                        }
                        if let Some(d) = &one.digest {
                            if d.len() != 32 || !d.chars().all(|ch| ch.is_ascii_hexdigit()) {
                                return Err(loaded.error_at(
                                    &in_url("digest"),
                                    format!(
                                        "digest {d:?} is not an MD5 (32 hex digits, as genhash \
                                         prints)"
                                    ),
                                ));
                            }
                        }
                    }
                }
                CheckConfig::MISC_CHECK {
                    misc_path,
                    misc_timeout,
                    ..
                } => {
                    if misc_path.split_whitespace().next().is_none() {
                        return Err(
                            loaded.error_at(&field_at("misc_path"), "misc_path names no program")
                        );
                    }
                    for (field, set) in [
                        ("connect_ip", t.connect_ip.is_some()),
                        ("connect_port", t.connect_port.is_some()),
                        ("bindto", t.bindto.is_some()),
                        ("connect_timeout", t.connect_timeout.is_some()),
                    ] {
                        if set {
                            return Err(loaded.error_at(
                                &field_at(field),
                                format!("MISC_CHECK takes no {field} (its program checks)"),
                            ));
                        }
                    }
                    if misc_timeout.is_some_and(|s| !(1..=3_600).contains(&s)) {
                        return Err(loaded.error_at(
                            &field_at("misc_timeout"),
                            "misc_timeout must be 1..=3600 seconds",
                        ));
                    }
                }
                CheckConfig::UDP_CHECK {
                    payload,
                    require_reply,
                    ..
                } => {
                    for (field, value) in [("payload", payload), ("require_reply", require_reply)] {
                        if let Some(text) = value {
                            if health::parse_hex(text).is_none() {
                                return Err(loaded.error_at(
                                    &field_at(field),
                                    format!("{field} {text:?} is not hex bytes (\"0a1b\")"),
                                ));
                            }
                        }
                    }
                }
                CheckConfig::TCP_CHECK { .. } | CheckConfig::PING_CHECK { .. } => {}
            }
        }
    }
    Ok(())
}

/// `addr` as the network or broadcast address of a subnet of a port, described ("the
/// broadcast address of port \"client\"'s subnet 198.51.100.0/24").
fn subnet_edge(ports: &[PortConfig], addr: Ipv4Addr) -> Option<String> {
    ports.iter().find_map(|port| {
        port.addresses.iter().find_map(|cidr| {
            let (network, broadcast) =
                dataplane::snapshot::subnet_edges(cidr.addr, cidr.prefix_len)?;
            let which = if addr == network {
                "network"
            } else if addr == broadcast {
                "broadcast"
            } else {
                return None;
            };
            Some(format!(
                "the {which} address of port {:?}'s subnet {network}/{}",
                port.name, cidr.prefix_len
            ))
        })
    })
}

/// Whether rvsd can write `stats_file`: said at start, at the line of the file, rather than in
/// a warning at every interval. It touches the filesystem, so it is not part of `validate`.
pub fn check_stats_file(loaded: &LoadedConfig) -> Result<(), ConfigError> {
    let Some(path) = &loaded.config.stats_file else {
        return Ok(());
    };
    let refuse = |reason: String| Err(loaded.error_at(&[Step::Field("stats_file")], reason));
    let shown = path.display();
    if path.file_name().is_none() {
        return refuse(format!("stats_file {shown:?} does not name a file"));
    }
    if path.is_dir() {
        return refuse(format!("stats_file {shown} is a directory"));
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        // A bare file name is in the working directory.
        _ => Path::new("."),
    };
    // rvsd creates missing directories (as `mkdir -p`): the nearest one that exists decides.
    let Some(existing) = dir
        .ancestors()
        .find(|d| d.as_os_str().is_empty() || d.exists())
    else {
        return refuse(format!("no directory of stats_file {shown} exists"));
    };
    let existing = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    match std::fs::metadata(existing) {
        Err(e) => refuse(format!(
            "cannot use directory {} of stats_file {shown}: {e}",
            existing.display()
        )),
        Ok(meta) if !meta.is_dir() => refuse(format!(
            "{} (on the way to stats_file {shown}) is not a directory",
            existing.display()
        )),
        Ok(_) => probe_writable(existing).map_or(Ok(()), |e| {
            refuse(format!("stats_file {shown} cannot be written: {e}"))
        }),
    }
}

/// Creates and removes a file in `dir`; why not, if it cannot. Permission bits do not tell:
/// root ignores them, and a read-only filesystem refuses whatever they say.
fn probe_writable(dir: &Path) -> Option<String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Unique within the process too: tests probe from several threads at once.
    static PROBES: AtomicUsize = AtomicUsize::new(0);
    let mut last = None;
    for _ in 0..8 {
        let n = PROBES.fetch_add(1, Ordering::Relaxed);
        let probe = dir.join(format!(".rvsd-write-check-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
        {
            Ok(file) => {
                drop(file);
                return std::fs::remove_file(&probe)
                    .err()
                    .map(|e| format!("created {} but cannot remove it: {e}", probe.display()));
            }
            // Left by an rvsd that was killed with the same pid: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Some(format!("cannot create a file in {}: {e}", dir.display())),
        }
    }
    last.map(|e| format!("cannot create a file in {}: {e}", dir.display()))
}

/// Real servers one service may have (schedulers' tables index them with 16 bits).
pub const MAX_REAL_SERVERS: usize = 65_000;

/// The largest real server weight, as ipvsadm takes it.
pub const MAX_WEIGHT: u32 = 65_535;

/// `lb_algo`: an IPVS scheduler by its name (`"wlc"`), parsed once, with the file: an
/// unknown name is refused at its place by the parse itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LbAlgo(pub dataplane::sched::SchedulerKind);

impl Default for LbAlgo {
    fn default() -> Self {
        LbAlgo(dataplane::sched::SchedulerKind::Rr)
    }
}

impl LbAlgo {
    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

impl fmt::Display for LbAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LbAlgo {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        dataplane::sched::SchedulerKind::from_name(name)
            .map(LbAlgo)
            .ok_or_else(|| {
                let names: Vec<&str> = dataplane::sched::SchedulerKind::ALL
                    .iter()
                    .map(|k| k.name())
                    .collect();
                format!("unknown scheduler {name:?} (one of {})", names.join(", "))
            })
    }
}

impl<'de> Deserialize<'de> for LbAlgo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for LbAlgo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A scheduler flag (`ipvsadm -b`), by ipvsadm's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedFlagName {
    ShPort,
    ShFallback,
    MhPort,
    MhFallback,
}

impl SchedFlagName {
    pub const ALL: [SchedFlagName; 4] = [
        SchedFlagName::ShPort,
        SchedFlagName::ShFallback,
        SchedFlagName::MhPort,
        SchedFlagName::MhFallback,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SchedFlagName::ShPort => "sh-port",
            SchedFlagName::ShFallback => "sh-fallback",
            SchedFlagName::MhPort => "mh-port",
            SchedFlagName::MhFallback => "mh-fallback",
        }
    }

    /// The scheduler it belongs to.
    pub fn scheduler(self) -> dataplane::sched::SchedulerKind {
        use dataplane::sched::SchedulerKind;
        match self {
            SchedFlagName::ShPort | SchedFlagName::ShFallback => SchedulerKind::Sh,
            SchedFlagName::MhPort | SchedFlagName::MhFallback => SchedulerKind::Mh,
        }
    }

    pub fn flag(self) -> SchedFlag {
        match self {
            SchedFlagName::ShPort | SchedFlagName::MhPort => SchedFlag::Port,
            SchedFlagName::ShFallback | SchedFlagName::MhFallback => SchedFlag::Fallback,
        }
    }
}

impl FromStr for SchedFlagName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown scheduler flag {name:?} (sh-port, sh-fallback, mh-port, mh-fallback)"
                )
            })
    }
}

impl<'de> Deserialize<'de> for SchedFlagName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for SchedFlagName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedFlag {
    Port,
    Fallback,
}

/// A service's flags as the dataplane takes them.
pub fn sched_flags(svc: &ServiceConfig) -> dataplane::sched::SchedFlags {
    let mut flags = dataplane::sched::SchedFlags::default();
    for f in &svc.sched_flags {
        match f.flag() {
            SchedFlag::Port => flags.port = true,
            SchedFlag::Fallback => flags.fallback = true,
        }
    }
    flags
}

/// A MAC address written `"02:00:00:00:00:01"`, parsed with the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_mac(&text).map(Mac).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not a MAC address (02:00:00:00:00:01)"))
        })
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::format_mac(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"(
    eal: (memory_mb: 256, hugepages: false),
    workers: [0],
    ports: [
        (
            name: "client",
            device: "net_ring0",
            addresses: ["198.51.100.1/24"],
        ),
    ],
)
"#;

    fn check(source: &str) -> Result<LoadedConfig, String> {
        let loaded = LoadedConfig {
            file: "t.ron".into(),
            source: source.to_owned(),
            config: ron::Options::default()
                .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
                .from_str(source)
                .map_err(|e| {
                    format!(
                        "t.ron:{}:{}: {}",
                        e.span.start.line, e.span.start.col, e.code
                    )
                })?,
        };
        validate(&loaded, &[0, 1]).map_err(|e| e.to_string())?;
        Ok(loaded)
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = check(GOOD).unwrap().config;
        assert_eq!(c.workers, vec![0]);
        assert_eq!(
            c.ports[0].addresses,
            vec![Ipv4Cidr {
                addr: Ipv4Addr::new(198, 51, 100, 1),
                prefix_len: 24
            }]
        );
        assert_eq!(c.ports[0].rx_descriptors, 1024);
        assert!(!c.eal.hugepages);
        assert_eq!(c.stats_file, None);
    }

    #[test]
    fn implicit_some() {
        let c = check(&GOOD.replace(
            "workers: [0],",
            "workers: [0], stats_file: \"/tmp/s.json\", control_core: 1,",
        ))
        .unwrap()
        .config;
        assert_eq!(c.stats_file, Some(PathBuf::from("/tmp/s.json")));
        assert_eq!(c.control_core, Some(1));
    }

    #[test]
    fn workers_share_a_core_only_when_asked() {
        let shared = GOOD.replace(
            "workers: [0],",
            "workers: [1, 1, 0, 0], oversubscribe: true,",
        );
        assert_eq!(check(&shared).unwrap().config.workers, vec![1, 1, 0, 0]);
    }

    #[test]
    fn unknown_field_is_placed() {
        let err = check(
            &GOOD
                .replace("promiscuous", "x")
                .replace("name: \"client\",", "name: \"client\", colour: 3,"),
        )
        .unwrap_err();
        assert!(err.starts_with("t.ron:6:29: "), "{err}");
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn bad_address_is_placed() {
        let err = check(&GOOD.replace("198.51.100.1/24", "198.51.100.300/24")).unwrap_err();
        assert!(err.starts_with("t.ron:8:"), "{err}");
        assert!(
            err.contains("198.51.100.300/24") && err.contains("not an IPv4 address"),
            "{err}"
        );
        let err = check(&GOOD.replace("198.51.100.1/24", "198.51.100.1/33")).unwrap_err();
        assert!(err.contains("prefix length"), "{err}");
    }

    #[test]
    fn wrong_type_is_placed() {
        let err = check(&GOOD.replace("memory_mb: 256", "memory_mb: \"lots\"")).unwrap_err();
        assert!(err.starts_with("t.ron:2:"), "{err}");
    }

    #[test]
    fn semantic_errors_are_placed() {
        let cases = [
            (
                GOOD.replace("workers: [0]", "workers: [0, 9]"),
                "t.ron:3:18: core 9 does not exist",
            ),
            (
                GOOD.replace("workers: [0]", "workers: [1, 1]"),
                "t.ron:3:18: core 1 is listed twice (oversubscribe: true lets workers share",
            ),
            (
                GOOD.replace("workers: [0]", "workers: []"),
                "t.ron:3:14: at least one worker",
            ),
            (
                GOOD.replace("net_ring0", "eth0"),
                "t.ron:7:21: \"eth0\" is neither a PCI address",
            ),
            (
                GOOD.replace("198.51.100.1/24", "224.0.0.1"),
                "t.ron:8:25: 224.0.0.1 cannot be",
            ),
            (
                GOOD.replace("memory_mb: 256", "memory_mb: 16"),
                "t.ron:2:22: at least 64 MiB",
            ),
            (
                GOOD.replace("workers: [0],", "workers: [0], control_core: 5,"),
                "t.ron:3:33: core 5",
            ),
            (
                GOOD.replace(
                    "workers: [0],",
                    "workers: [0], connections: (reset_unknown: true, reset_rate: 0),",
                ),
                "t.ron:3:66: reset_rate must be 1..=1000000",
            ),
        ];
        for (source, want) in cases {
            let err = check(&source).unwrap_err();
            assert!(err.starts_with(want), "got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn duplicate_devices_and_addresses() {
        let two = GOOD.replace(
            "    ],\n)",
            "        (name: \"b\", device: \"net_ring0,x=1\", addresses: [\"198.51.100.1\"]),\n    ],\n)",
        );
        let err = check(&two).unwrap_err();
        assert!(
            err.starts_with("t.ron:10:29: device \"net_ring0\" is used by two ports"),
            "{err}"
        );
    }

    fn with_service(fields: &str, real: &str) -> String {
        GOOD.replace(
            "    ],\n)",
            &format!(
                "    ],\n    services: [(protocol: TCP, vip: \"198.51.100.100\", port: 80, \
                 lb_kind: NAT, {fields} real_servers: [(address: \"198.51.100.11\", {real})])],\n)"
            ),
        )
    }

    /// sloppy_tcp: hashing schedulers, DR/TUN, TCP only; announce: a port with a kernel
    /// interface, and then a VIP may be off every port's subnet.
    #[test]
    fn sloppy_tcp_and_announce() {
        let dr = |fields: &str| with_service(fields, "").replace("lb_kind: NAT", "lb_kind: DR");
        check(&dr("lb_algo: \"mh\", sloppy_tcp: true,")).unwrap();
        check(&dr("lb_algo: \"sh\", sloppy_tcp: true,").replace("DR", "TUN")).unwrap();
        for (source, want) in [
            (
                dr("lb_algo: \"rr\", sloppy_tcp: true,"),
                "sloppy_tcp needs a hashing scheduler (lb_algo \"mh\" or \"sh\"): with \"rr\"",
            ),
            (
                with_service("lb_algo: \"mh\", sloppy_tcp: true,", ""),
                "sloppy_tcp works with DR and TUN only: NAT replies return to the node",
            ),
            (
                dr("lb_algo: \"mh\", sloppy_tcp: true,").replace("TCP", "UDP"),
                "sloppy_tcp is for TCP services",
            ),
        ] {
            let err = check(&source).unwrap_err();
            assert!(err.contains(want), "got {err:?}, want {want:?}");
            assert!(err.starts_with("t.ron:"), "placed: {err}");
        }
        let routed = dr("lb_algo: \"mh\",").replace("198.51.100.100", "203.0.113.200");
        let err = check(&routed).unwrap_err();
        assert!(
            err.contains("VIP 203.0.113.200 is on no port's subnet"),
            "{err}"
        );
        let announced = routed.replace(
            "    ],\n    services",
            "    ],\n    announce: (port: \"client\"),\n    services",
        );
        let loaded = check(&announced).unwrap();
        let a = loaded.config.announce.unwrap();
        assert_eq!((a.hold_down_ms, a.withdraw_wait_ms), (3000, 1000));
        for (from, want) in [
            (
                "port: \"client\"",
                "announce.port \"nowhere\" is not a port of this file",
            ),
            (
                "kernel: false",
                "port \"client\" has no kernel interface (kernel: false)",
            ),
        ] {
            let source = if from.starts_with("port") {
                announced.replace(from, "port: \"nowhere\"")
            } else {
                announced.replace(
                    "addresses: [\"198.51.100.1/24\"],",
                    "addresses: [\"198.51.100.1/24\"], kernel: false,",
                )
            };
            let err = check(&source).unwrap_err();
            assert!(err.contains(want), "got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn schedulers_flags_persistence_and_thresholds() {
        let ok = with_service(
            "lb_algo: \"mh\", sched_flags: [\"mh-port\", \"mh-fallback\"], \
             persistence_timeout: 300, persistence_netmask: \"255.255.255.0\",",
            "upper_threshold: 10, lower_threshold: 5",
        );
        let loaded = check(&ok).unwrap();
        let svc = &loaded.config.services[0];
        assert_eq!(
            svc.persistence_netmask,
            Some(Ipv4Addr::new(255, 255, 255, 0))
        );
        let flags = sched_flags(svc);
        assert!(flags.port && flags.fallback);
        for name in dataplane::sched::SchedulerKind::ALL.map(|k| k.name()) {
            check(&with_service(&format!("lb_algo: \"{name}\","), "")).unwrap();
        }
        let cases = [
            (
                with_service("lb_algo: \"lru\",", ""),
                "unknown scheduler \"lru\" (one of rr, wrr, lc, wlc, sed, nq, sh, dh, lblc, \
                 lblcr, fo, ovf, mh)",
            ),
            (
                with_service("sched_flags: [\"sh-port\"],", ""),
                "sh-port is a flag of lb_algo \"sh\", not \"rr\"",
            ),
            (
                with_service("lb_algo: \"sh\", sched_flags: [\"sh-sticky\"],", ""),
                "unknown scheduler flag \"sh-sticky\"",
            ),
            (
                with_service("persistence_netmask: \"255.255.255.0\",", ""),
                "persistence_netmask needs persistence_timeout",
            ),
            (
                with_service(
                    "persistence_timeout: 60, persistence_netmask: \"255.0.255.0\",",
                    "",
                ),
                "255.0.255.0 is not a netmask",
            ),
            (
                with_service("persistence_timeout: 0,", ""),
                "persistence_timeout must be 1..=31536000 seconds",
            ),
            (
                with_service("", "upper_threshold: 5, lower_threshold: 6"),
                "lower_threshold 6 is above upper_threshold 5",
            ),
        ];
        for (source, want) in cases {
            let err = check(&source).unwrap_err();
            assert!(
                err.starts_with("t.ron:") && err.contains(want),
                "got {err:?}, want {want:?}"
            );
        }
    }

    /// GOOD with services, one a line, each `(protocol: TCP, port: 80, ...)` followed by its
    /// real servers, one a line.
    fn with_services(services: &[(&str, &[&str])]) -> String {
        let mut text = String::from("    ],\n    services: [\n");
        for (fields, reals) in services {
            text += &format!("        (protocol: TCP, port: 80, {fields}\n");
            text += "            real_servers: [\n";
            for real in *reals {
                text += &format!("                ({real}),\n");
            }
            text += "            ]),\n";
        }
        GOOD.replace("    ],\n)", &(text + "    ],\n)"))
    }

    #[test]
    fn duplicate_real_servers_and_weights() {
        let vip = "lb_kind: NAT, vip: \"198.51.100.100\",";
        let ok = [
            with_services(&[(
                vip,
                &[
                    "address: \"198.51.100.11\"",
                    "address: \"198.51.100.11\", port: 8080",
                    "address: \"198.51.100.12\", weight: 65535",
                ],
            )]),
            // The same real server in two services.
            with_services(&[
                (vip, &["address: \"198.51.100.11\""]),
                (
                    "lb_kind: NAT, vip: \"198.51.100.101\",",
                    &["address: \"198.51.100.11\""],
                ),
            ]),
        ];
        for source in ok {
            check(&source).unwrap();
        }
        let cases = [
            (
                with_services(&[(
                    vip,
                    &["address: \"198.51.100.11\"", "address: \"198.51.100.11\""],
                )]),
                "t.ron:15:27: real server 198.51.100.11:80 is listed twice in this service",
            ),
            // The port written or not: the same real server.
            (
                with_services(&[(
                    vip,
                    &[
                        "address: \"198.51.100.11\", port: 8080",
                        "address: \"198.51.100.12\"",
                        "address: \"198.51.100.11\", port: 8080",
                    ],
                )]),
                "t.ron:16:27: real server 198.51.100.11:8080 is listed twice in this service",
            ),
            (
                with_services(&[(
                    vip,
                    &[
                        "address: \"198.51.100.11\"",
                        "address: \"198.51.100.11\", port: 80",
                    ],
                )]),
                "t.ron:15:27: real server 198.51.100.11:80 is listed twice",
            ),
            (
                with_services(&[(vip, &["address: \"198.51.100.11\", weight: 65536"])]),
                "t.ron:14:52: weight 65536 is above 65535 (ipvsadm's range is 0..=65535)",
            ),
        ];
        for (source, want) in cases {
            let err = check(&source).unwrap_err();
            assert!(err.starts_with(want), "got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn real_servers_where_rvsd_answers_or_no_host_is() {
        // Port "client" on 198.51.100.0/24, port "p2p" on a /31 and "small" on a /30.
        let ports = |source: String| {
            source.replace(
                "    ],\n    services",
                "        (name: \"p2p\", device: \"net_ring1\", addresses: [\"192.0.2.0/31\"]),\n        \
                 (name: \"small\", device: \"net_ring2\", addresses: [\"192.0.2.9/30\"]),\n    \
                 ],\n    services",
            )
        };
        let vip = "lb_kind: NAT, vip: \"198.51.100.100\",";
        let fullnat = "lb_kind: FULLNAT, vip: \"198.51.100.101\", \
                       local_addresses: [\"198.51.100.50\"],";
        let one = |fields: &str, real: &str| {
            ports(with_services(&[
                (fields, &[real]),
                (fullnat, &["address: \"198.51.100.12\""]),
            ]))
        };
        // Both addresses of a /31 are hosts; a /30 has two.
        for real in ["192.0.2.1", "192.0.2.10"] {
            check(&one(vip, &format!("address: \"{real}\""))).unwrap();
        }
        let cases = [
            (
                one(vip, "address: \"198.51.100.101\""),
                "t.ron:16:27: real server 198.51.100.101 is a VIP (service TCP \
                 198.51.100.101:80)",
            ),
            (
                one(vip, "address: \"198.51.100.100\""),
                "t.ron:16:27: real server 198.51.100.100 is a VIP (service TCP \
                 198.51.100.100:80)",
            ),
            (
                one(vip, "address: \"198.51.100.1\""),
                "t.ron:16:27: real server 198.51.100.1 is an own address of port \"client\"",
            ),
            (
                one(vip, "address: \"192.0.2.9\""),
                "t.ron:16:27: real server 192.0.2.9 is an own address of port \"small\"",
            ),
            (
                one(vip, "address: \"198.51.100.50\""),
                "t.ron:16:27: real server 198.51.100.50 is a FULLNAT local address (service \
                 TCP 198.51.100.101:80)",
            ),
            (
                one(vip, "address: \"198.51.100.0\""),
                "t.ron:16:27: real server 198.51.100.0 is the network address of port \
                 \"client\"'s subnet 198.51.100.0/24",
            ),
            (
                one(vip, "address: \"198.51.100.255\""),
                "t.ron:16:27: real server 198.51.100.255 is the broadcast address of port \
                 \"client\"'s subnet 198.51.100.0/24",
            ),
            (
                one(vip, "address: \"192.0.2.11\""),
                "t.ron:16:27: real server 192.0.2.11 is the broadcast address of port \
                 \"small\"'s subnet 192.0.2.8/30",
            ),
            (
                one(
                    "lb_kind: NAT, vip: \"198.51.100.255\",",
                    "address: \"198.51.100.11\"",
                ),
                "t.ron:14:54: VIP 198.51.100.255 is the broadcast address of port \"client\"'s \
                 subnet 198.51.100.0/24",
            ),
            (
                one(vip, "address: \"198.51.100.11\"").replace(
                    "[\"198.51.100.50\"]",
                    "[\"198.51.100.50\", \"198.51.100.0\"]",
                ),
                "t.ron:18:111: local address 198.51.100.0 is the network address of port \
                 \"client\"'s subnet 198.51.100.0/24",
            ),
        ];
        for (source, want) in cases {
            let err = check(&source).unwrap_err();
            assert!(
                err.starts_with(want),
                "got {err:?}, want {want:?}\n{source}"
            );
        }
    }

    /// A directory of its own under the temporary directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("rvs-config-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn stats_file_must_be_writable() {
        let tmp = TempDir::new("stats");
        let with_stats = |path: &Path| {
            GOOD.replace(
                "workers: [0],",
                &format!(
                    "workers: [0], stats_file: {:?},",
                    path.display().to_string()
                ),
            )
        };
        let parse_at = |path: &Path| parse_with_cores(Path::new("t.ron"), with_stats(path), &[0]);

        let good = tmp.0.join("stats.json");
        let loaded = parse_at(&good).unwrap();
        assert_eq!(loaded.config.stats_file.as_deref(), Some(good.as_path()));
        assert_eq!(
            std::fs::read_dir(&tmp.0).unwrap().count(),
            0,
            "the probe file is removed"
        );
        // Without a stats file nothing is checked.
        parse_with_cores(Path::new("t.ron"), GOOD.to_owned(), &[0]).unwrap();

        let file = tmp.0.join("file");
        std::fs::write(&file, "").unwrap();
        // A missing directory is created at start (mkdir -p): fine where it can be.
        parse_at(&tmp.0.join("missing/deeper/stats.json")).unwrap();
        let cases = [
            (
                tmp.0.clone(),
                format!("stats_file {} is a directory", tmp.0.display()),
            ),
            (
                file.join("stats.json"),
                format!(
                    "{} (on the way to stats_file {}/stats.json) is not a directory",
                    file.display(),
                    file.display()
                ),
            ),
            (
                PathBuf::from("/proc/rvs/stats.json"),
                "stats_file /proc/rvs/stats.json cannot be written: cannot create a file in /proc: "
                    .to_owned(),
            ),
            // /proc refuses new files, also to root.
            (
                PathBuf::from("/proc/rvs-stats.json"),
                "stats_file /proc/rvs-stats.json cannot be written: cannot create a file in /proc: "
                    .to_owned(),
            ),
        ];
        for (path, want) in cases {
            let err = parse_at(&path).unwrap_err().to_string();
            let want = format!("t.ron:3:31: {want}");
            assert!(err.starts_with(&want), "got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn explicit_cores() {
        let source = GOOD.replace("workers: [0]", "workers: [7]");
        let file = Path::new("t.ron");
        parse_with_cores(file, source.clone(), &[3, 7]).unwrap();
        let err = parse_with_cores(file, source.clone(), &[0, 1])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "t.ron:3:15: core 7 does not exist or is not allowed (this process may use cores 0,1)"
        );
        let tmp = TempDir::new("cores");
        let path = tmp.0.join("c.ron");
        std::fs::write(&path, &source).unwrap();
        load_with_cores(&path, &[7]).unwrap();
        let err = load_with_cores(&path, &[0]).unwrap_err();
        assert_eq!(err.file, path);
        assert!(err.reason.starts_with("core 7 does not exist"), "{err}");
    }

    const TWO_PORTS: &str = r#"(
    eal: (memory_mb: 256, hugepages: false),
    workers: [0],
    ports: [
        (name: "client", device: "net_af_packet0,iface=lb0", addresses: ["198.51.100.1/24"]),
        (name: "servers", device: "net_af_packet1,iface=lb1", addresses: ["203.0.113.1/24"]),
    ],
)
"#;

    /// Every example in configs/ is a valid configuration (its stats file moved to a
    /// temporary directory, its cores taken as they are).
    #[test]
    fn the_examples_in_configs_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let tmp = std::env::temp_dir().join(format!("rvs-config-examples-{}", std::process::id()));
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("ron") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let text = match text.find("stats_file: \"") {
                Some(i) => {
                    let end = i + text[i + 13..].find('"').unwrap() + 14;
                    format!(
                        "{}stats_file: {:?}{}",
                        &text[..i],
                        tmp.join("stats.json").display().to_string(),
                        &text[end..]
                    )
                }
                None => text,
            };
            let cores: Vec<usize> = (0..256).collect();
            let loaded = parse_with_cores(&path, text, &cores).unwrap_or_else(|e| panic!("{e}"));
            // --save-ron gives the same configuration back.
            let saved = to_ron(&loaded.config);
            let again = parse_with_cores(&path, saved.clone(), &cores)
                .unwrap_or_else(|e| panic!("{e}\n{saved}"));
            assert_eq!(again.config, loaded.config, "{}:\n{saved}", path.display());
            if path.ends_with("lab-failover-1.ron") {
                eprintln!("{saved}");
            }
            seen += 1;
        }
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(seen >= 9, "{seen} examples");
    }

    /// VRRP mistakes, each refused where it is written.
    #[test]
    fn vrrp_mistakes_are_placed() {
        let with = |instances: &str, extra: &str| {
            TWO_PORTS.replace(
                "    ],\n)",
                &format!("    ],\n    vrrp_instances: [{instances}],\n{extra})"),
            )
        };
        let vi = |fields: &str| {
            format!(
                "(name: \"VI_1\", interface: \"client\", virtual_router_id: 51, \
                 virtual_ipaddress: [\"198.51.100.100\"]{fields})"
            )
        };
        assert!(check(&with(&vi(""), "")).is_ok());
        let cases = [
            (
                with(&vi(", version: 4"), ""),
                "version 4: VRRP is version 2 or 3",
            ),
            (
                with(&vi(", advert_int: 0.5"), ""),
                "VRRP version 2 sends whole seconds",
            ),
            (
                with(&vi(", version: 3, advert_int: 41"), ""),
                "0.01..=40.95 seconds",
            ),
            (
                with(&vi(", advert_int: 1.005"), ""),
                "VRRP counts hundredths",
            ),
            (with(&vi(", priority: 0"), ""), "priority must be 1..=255"),
            (
                with(
                    &vi("").replace("\"198.51.100.100\"", "\"198.51.100.1/24\""),
                    "",
                ),
                "198.51.100.1 is port \"client\"'s own address",
            ),
            (
                with(&vi("").replace("client", "uplink"), ""),
                "interface \"uplink\" is not a port",
            ),
            (
                with(
                    &format!("{}, {}", vi(""), vi("").replace("VI_1", "VI_2")),
                    "",
                ),
                "virtual_router_id 51 is used twice on port \"client\"",
            ),
            (
                with(&vi(", state: MASTER, nopreempt: true"), ""),
                "nopreempt needs state: BACKUP",
            ),
            (
                with(
                    &vi(", version: 3, authentication: (auth_type: PASS, auth_pass: \"x\")"),
                    "",
                ),
                "authentication is VRRP version 2's",
            ),
            (
                with(
                    &vi(", authentication: (auth_type: PASS, auth_pass: \"123456789\")"),
                    "",
                ),
                "auth_pass must be 1 to 8 characters",
            ),
            (
                with(&vi(", unicast_src_ip: \"203.0.113.1\""), ""),
                "203.0.113.1 is not an address of port \"client\"",
            ),
            (
                with(&vi(", track_interface: [\"eth9\"]"), ""),
                "track_interface \"eth9\" is not a port",
            ),
            (
                with(&vi(", track_script: [\"chk\"]"), ""),
                "track_script \"chk\" is not in vrrp_scripts",
            ),
            (
                with(&vi(", track_service: [\"TCP 198.51.100.100:80\"]"), ""),
                "track_service \"TCP 198.51.100.100:80\" is not a service",
            ),
            (
                with(
                    &vi(""),
                    "    vrrp_sync_groups: [(name: \"G\", group: [\"VI_9\"])],\n",
                ),
                "\"VI_9\" is not in vrrp_instances",
            ),
            (
                with(
                    &vi(""),
                    "    vrrp_scripts: [(name: \"chk\", script: \"/bin/true\", weight: 300)],\n",
                ),
                "weight must be -253..=253",
            ),
        ];
        for (text, want) in cases {
            let got = check(&text).map(|_| ()).unwrap_err();
            assert!(got.contains(want), "{got}\nwanted: {want}");
            assert!(got.starts_with("t.ron:"), "placed: {got}");
        }
    }

    /// `restart_only_change` of `new` over `running`, as text.
    fn restart_only(running: &str, new: &str) -> Option<String> {
        let running = check(running).unwrap().config;
        let new = check(new).unwrap();
        restart_only_change(&running, &new).map(|e| e.to_string())
    }

    const RESTART: &str = "only services, routes, neighbors and the connections' timeouts and \
                           resets change while running; restart rvsd for the rest";

    #[test]
    fn live_changes_reload() {
        let live = TWO_PORTS.replace(
            "    ],\n)",
            "    ],\n    \
             services: [(protocol: UDP, vip: \"198.51.100.100\", port: 53, lb_kind: NAT, \
             real_servers: [(address: \"10.0.0.1\")])],\n    \
             routes: [(destination: \"10.0.0.0/8\", via: \"203.0.113.254\", port: \"servers\")],\n    \
             neighbors: [(address: \"203.0.113.254\", mac: \"02:00:00:00:00:01\", port: \"servers\")],\n    \
             connections: (tcp_timeout: 60, tcpfin_timeout: 10, udp_timeout: 30),\n)",
        );
        assert_eq!(restart_only(TWO_PORTS, &live), None);
        assert_eq!(restart_only(&live, TWO_PORTS), None);
        // Defaults written out are no change.
        let explicit = TWO_PORTS
            .replace("hugepages: false", "hugepages: false, extra_args: []")
            .replace(
                "iface=lb1\",",
                "iface=lb1\", promiscuous: false, mtu: 1500, rx_descriptors: 1024,",
            )
            .replace(
                "    ],\n)",
                "    ],\n    stats_interval_ms: 1000, connections: (capacity: 1048576),\n)",
            );
        assert_eq!(restart_only(TWO_PORTS, &explicit), None);
        assert_eq!(restart_only(&explicit, TWO_PORTS), None);
    }

    #[test]
    fn restart_only_changes_are_placed() {
        let cases = [
            (
                TWO_PORTS.replace("iface=lb1", "iface=lb2"),
                "t.ron:6:35: ports[1].device changed (\"net_af_packet1,iface=lb1\" -> \
                 \"net_af_packet1,iface=lb2\")",
            ),
            (
                TWO_PORTS.replace("203.0.113.1/24", "203.0.113.2/24"),
                "t.ron:6:74: ports[1].addresses changed ([\"203.0.113.1/24\"] -> \
                 [\"203.0.113.2/24\"])",
            ),
            // Not written: placed at the nearest parent written.
            (
                TWO_PORTS.replace("memory_mb: 256, ", ""),
                "t.ron:2:10: eal.memory_mb changed (256 -> 512)",
            ),
            (
                TWO_PORTS.replace("lb0\", ", "lb0\", mtu: 9000, "),
                "t.ron:5:67: ports[0].mtu changed (1500 -> 9000)",
            ),
            (
                TWO_PORTS.replace("workers: [0],", "workers: [0], control_core: 1,"),
                "t.ron:3:33: control_core changed (unset -> 1)",
            ),
            (
                TWO_PORTS.replace(
                    "    ],\n)",
                    "    ],\n    stats_file: \"/tmp/rvs.json\",\n)",
                ),
                "t.ron:8:17: stats_file changed (unset -> \"/tmp/rvs.json\")",
            ),
            (
                TWO_PORTS.replace(
                    "    ],\n)",
                    "    ],\n    connections: (capacity: 1000, tcp_timeout: 5),\n)",
                ),
                "t.ron:8:29: connections.capacity changed (1048576 -> 1000)",
            ),
            (
                TWO_PORTS.replace(
                    "        (name: \"servers\"",
                    "        (name: \"backup\", device: \"net_ring0\"),\n        (name: \"servers\"",
                ),
                "t.ron:4:12: ports changed (2 ports -> 3 ports)",
            ),
            // The first field in schema order is named.
            (
                TWO_PORTS
                    .replace("iface=lb1", "iface=lb2")
                    .replace("workers: [0]", "workers: [1]"),
                "t.ron:3:14: workers changed ([0] -> [1])",
            ),
        ];
        for (new, want) in cases {
            let err = restart_only(TWO_PORTS, &new).expect(want);
            let want = format!("{want}: {RESTART}");
            assert_eq!(err, want);
        }
        let jumbo = TWO_PORTS.replace("lb0\", ", "lb0\", mtu: 9000, ");
        assert_eq!(
            restart_only(&jumbo, TWO_PORTS),
            Some(format!(
                "t.ron:5:9: ports[0].mtu changed (9000 -> 1500): {RESTART}"
            ))
        );
    }

    /// Every restart-only field, changed alone, is refused. `changed` is written without `..`,
    /// so a field added to `Config` (or to one of its parts) does not compile here until it is
    /// given a value; `restart_only_change` has the same guard.
    #[test]
    fn every_restart_only_field_is_caught() {
        let base = check(TWO_PORTS).unwrap().config;
        let changed = Config {
            eal: EalConfig {
                memory_mb: 1024,
                hugepages: true,
                file_prefix: Some("other".into()),
                extra_args: vec!["--log-level=8".into()],
            },
            workers: vec![1],
            oversubscribe: true,
            control_core: Some(0),
            mempool: MempoolConfig {
                mbufs: Some(8191),
                cache: Some(64),
            },
            ports: vec![
                base.ports[0].clone(),
                PortConfig {
                    name: "backends".into(),
                    device: "net_af_packet1,iface=lb2".into(),
                    addresses: vec!["203.0.113.2/24".parse().unwrap()],
                    promiscuous: true,
                    rx_descriptors: 512,
                    tx_descriptors: 256,
                    mtu: 9000,
                    kernel: false,
                    kernel_interface: Some("lb2-kernel".into()),
                },
            ],
            control_socket: Some("/tmp/other.sock".into()),
            metrics: Some("127.0.0.1:9477".parse().unwrap()),
            stats_file: Some("/tmp/rvs.json".into()),
            stats_interval_ms: 250,
            // Live: changing them alone must pass.
            services: vec![ServiceConfig {
                protocol: Protocol::UDP,
                vip: Ipv4Addr::new(198, 51, 100, 100),
                port: 53,
                lb_kind: LbKind::NAT,
                lb_algo: "wrr".parse().unwrap(),
                sched_flags: vec![],
                persistence_timeout: None,
                persistence_netmask: None,
                local_addresses: vec![],
                real_servers: vec![],
                delay_loop: None,
                connect_timeout: None,
                retry: None,
                delay_before_retry: None,
                warmup: None,
                alpha: false,
                omega: false,
                quorum: None,
                hysteresis: 0,
                quorum_up: None,
                quorum_down: None,
                inhibit_on_failure: false,
                sorry_server: None,
                expire_nodest_conn: false,
                sloppy_tcp: false,
                virtualhost: None,
            }],
            routes: vec![RouteConfig {
                destination: "10.0.0.0/8".parse().unwrap(),
                via: Ipv4Addr::new(203, 0, 113, 254),
                port: "servers".into(),
            }],
            neighbors: vec![NeighborConfig {
                address: Ipv4Addr::new(203, 0, 113, 254),
                mac: Mac([2, 0, 0, 0, 0, 1]),
                port: "servers".into(),
            }],
            connections: ConnectionsConfig {
                capacity: 4096,
                tcp_timeout: 1,
                tcpfin_timeout: 2,
                udp_timeout: 3,
                reset_unknown: false,
                reset_rate: 10,
            },
            vrrp_instances: vec![ron::from_str(
                "(name: \"VI_1\", interface: \"servers\", virtual_router_id: 51, \
                 virtual_ipaddress: [\"203.0.113.1/24\"])",
            )
            .unwrap()],
            vrrp_sync_groups: vec![ron::from_str("(name: \"G\", group: [\"VI_1\"])").unwrap()],
            vrrp_scripts: vec![ron::from_str("(name: \"chk\", script: \"/bin/true\")").unwrap()],
            lvs_sync_daemon: Some(
                ron::from_str("(interface: \"servers\", vrrp_instance: \"VI_1\")").unwrap(),
            ),
            announce: Some(AnnounceConfig {
                port: "servers".into(),
                hold_down_ms: 1,
                withdraw_wait_ms: 2,
            }),
        };
        type Take = fn(&mut Config, &Config);
        let restart_only: [(&str, Take); 27] = [
            ("eal.memory_mb", |c, d| c.eal.memory_mb = d.eal.memory_mb),
            ("eal.hugepages", |c, d| c.eal.hugepages = d.eal.hugepages),
            ("eal.file_prefix", |c, d| {
                c.eal.file_prefix.clone_from(&d.eal.file_prefix)
            }),
            ("eal.extra_args", |c, d| {
                c.eal.extra_args.clone_from(&d.eal.extra_args)
            }),
            ("workers", |c, d| c.workers.clone_from(&d.workers)),
            ("oversubscribe", |c, d| c.oversubscribe = d.oversubscribe),
            ("control_core", |c, d| c.control_core = d.control_core),
            ("mempool.mbufs", |c, d| c.mempool.mbufs = d.mempool.mbufs),
            ("mempool.cache", |c, d| c.mempool.cache = d.mempool.cache),
            ("ports[1].name", |c, d| {
                c.ports[1].name.clone_from(&d.ports[1].name)
            }),
            ("ports[1].device", |c, d| {
                c.ports[1].device.clone_from(&d.ports[1].device)
            }),
            ("ports[1].addresses", |c, d| {
                c.ports[1].addresses.clone_from(&d.ports[1].addresses)
            }),
            ("ports[1].promiscuous", |c, d| {
                c.ports[1].promiscuous = d.ports[1].promiscuous
            }),
            ("ports[1].rx_descriptors", |c, d| {
                c.ports[1].rx_descriptors = d.ports[1].rx_descriptors
            }),
            ("ports[1].tx_descriptors", |c, d| {
                c.ports[1].tx_descriptors = d.ports[1].tx_descriptors
            }),
            ("ports[1].mtu", |c, d| c.ports[1].mtu = d.ports[1].mtu),
            ("ports[1].kernel", |c, d| {
                c.ports[1].kernel = d.ports[1].kernel
            }),
            ("ports[1].kernel_interface", |c, d| {
                c.ports[1]
                    .kernel_interface
                    .clone_from(&d.ports[1].kernel_interface)
            }),
            ("stats_file", |c, d| c.stats_file.clone_from(&d.stats_file)),
            ("stats_interval_ms", |c, d| {
                c.stats_interval_ms = d.stats_interval_ms
            }),
            ("control_socket", |c, d| {
                c.control_socket.clone_from(&d.control_socket)
            }),
            ("metrics", |c, d| c.metrics = d.metrics),
            ("connections.capacity", |c, d| {
                c.connections.capacity = d.connections.capacity
            }),
            ("vrrp_instances", |c, d| {
                c.vrrp_instances.clone_from(&d.vrrp_instances)
            }),
            ("vrrp_sync_groups", |c, d| {
                c.vrrp_sync_groups.clone_from(&d.vrrp_sync_groups)
            }),
            ("vrrp_scripts", |c, d| {
                c.vrrp_scripts.clone_from(&d.vrrp_scripts)
            }),
            ("lvs_sync_daemon", |c, d| {
                c.lvs_sync_daemon.clone_from(&d.lvs_sync_daemon)
            }),
        ];
        let live: [Take; 9] = [
            |c, d| c.services.clone_from(&d.services),
            |c, d| c.announce.clone_from(&d.announce),
            |c, d| c.routes.clone_from(&d.routes),
            |c, d| c.neighbors.clone_from(&d.neighbors),
            |c, d| c.connections.tcp_timeout = d.connections.tcp_timeout,
            |c, d| c.connections.tcpfin_timeout = d.connections.tcpfin_timeout,
            |c, d| c.connections.udp_timeout = d.connections.udp_timeout,
            |c, d| c.connections.reset_unknown = d.connections.reset_unknown,
            |c, d| c.connections.reset_rate = d.connections.reset_rate,
        ];
        let loaded = |config: Config| LoadedConfig {
            file: "t.ron".into(),
            source: TWO_PORTS.to_owned(),
            config,
        };
        for (path, take) in restart_only {
            let mut new = base.clone();
            take(&mut new, &changed);
            assert_ne!(new, base, "{path}: changed has the base's value");
            let err = restart_only_change(&base, &loaded(new.clone()))
                .unwrap_or_else(|| panic!("{path} changed but was taken live"));
            assert!(
                err.reason.starts_with(&format!("{path} changed (")),
                "{path}: {err}"
            );
            // And back.
            assert!(restart_only_change(&new, &loaded(base.clone())).is_some());
        }
        let mut all_live = base.clone();
        for take in live {
            let mut new = base.clone();
            take(&mut new, &changed);
            assert_ne!(new, base, "a live field of changed has the base's value");
            assert_eq!(restart_only_change(&base, &loaded(new)), None);
            take(&mut all_live, &changed);
        }
        assert_eq!(restart_only_change(&base, &loaded(all_live.clone())), None);
        // The lists cover every field: all of them together give `changed`.
        for (_, take) in restart_only {
            take(&mut all_live, &changed);
        }
        assert_eq!(all_live, changed, "a field of Config is in neither list");
        let mut fewer = base.clone();
        fewer.ports.pop();
        let err = restart_only_change(&base, &loaded(fewer)).unwrap();
        assert!(
            err.reason.starts_with("ports changed (2 ports -> 1 port)"),
            "{err}"
        );
    }

    #[test]
    fn health_checking_mistakes_are_placed() {
        let ok = with_service(
            "delay_loop: 2, quorum: 2, hysteresis: 1, sorry_server: (address: \"198.51.100.50\"), \
             inhibit_on_failure: true, expire_nodest_conn: true,",
            "checks: [HTTP_GET(url: [(path: \"/\", status_code: 200)]), TCP_CHECK(retry: 3), \
             MISC_CHECK(misc_path: \"/bin/true\", misc_dynamic: true)], notify_up: \"/bin/true\"",
        );
        let svc = check(&ok).unwrap().config.services.remove(0);
        assert_eq!(svc.real_servers[0].checks.len(), 3);
        assert_eq!(svc.quorum, Some(2));
        let cases = [
            (
                with_service("", "checks: [HTTP_GET(url: [(path: \"health\")])]"),
                "path \"health\" must start with /",
            ),
            (
                with_service("", "checks: [HTTP_GET(url: [])]"),
                "HTTP_GET needs at least one url",
            ),
            (
                with_service(
                    "",
                    "checks: [HTTP_GET(url: [(path: \"/\", digest: \"abc\")])]",
                ),
                "digest \"abc\" is not an MD5",
            ),
            (
                with_service(
                    "",
                    "checks: [MISC_CHECK(misc_path: \"/bin/true\", connect_port: 80)]",
                ),
                "MISC_CHECK takes no connect_port",
            ),
            (
                with_service("", "checks: [UDP_CHECK(payload: \"xyz\")]"),
                "payload \"xyz\" is not hex bytes",
            ),
            (
                with_service("", "checks: [TCP_CHECK(connect_timeout: 0)]"),
                "connect_timeout 0 is out of range",
            ),
            (
                with_service("delay_loop: 0,", ""),
                "delay_loop 0 is out of range",
            ),
            (
                with_service("quorum: 2, hysteresis: 2,", ""),
                "hysteresis 2 must be below the quorum 2",
            ),
            (
                with_service("sorry_server: (address: \"192.0.2.9\"),", ""),
                "sorry server 192.0.2.9 is on no port's subnet and no route leads to it",
            ),
            (
                with_service("quorum_down: \" \",", ""),
                "quorum_down names no program",
            ),
        ];
        for (source, want) in cases {
            let err = check(&source).unwrap_err();
            assert!(
                err.starts_with("t.ron:") && err.contains(want),
                "got {err:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn pci_addresses() {
        assert!(is_pci_address("0000:03:00.0"));
        assert!(is_pci_address("03:00.1"));
        assert!(!is_pci_address("net_ring0"));
        assert!(!is_pci_address("0000:03:00"));
    }

    #[test]
    fn example_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "ron") {
                let source = std::fs::read_to_string(&path).unwrap();
                let config: Config = ron::Options::default()
                    .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
                    .from_str(&source)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(!config.ports.is_empty());
                seen += 1;
            }
        }
        assert!(
            seen >= 2,
            "configs/ has the lab and the bare-metal template"
        );
    }
}
