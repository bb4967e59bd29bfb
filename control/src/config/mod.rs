//! The rvsd configuration: one RON file. This module owns its schema (serde, unknown fields
//! refused), its validation, and errors that point at `FILE:LINE:COLUMN` with a reason.

pub mod locate;

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

pub use locate::{locate, Location, Step};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How DPDK's EAL is started.
    #[serde(default)]
    pub eal: EalConfig,
    /// CPU cores, one worker each; the worker polls one RX queue of every port.
    pub workers: Vec<usize>,
    /// Pin the control thread to this core; by default it may run on any core (it sleeps when
    /// idle, so on a small machine it does not take a worker's time).
    #[serde(default)]
    pub control_core: Option<usize>,
    #[serde(default)]
    pub mempool: MempoolConfig,
    /// The appliance's ports, in the order workers index them.
    pub ports: Vec<PortConfig>,
    /// Counters as JSON, rewritten every `stats_interval_ms` and at exit.
    #[serde(default)]
    pub stats_file: Option<PathBuf>,
    #[serde(default = "defaults::stats_interval_ms")]
    pub stats_interval_ms: u64,
    /// Virtual services (ipvsadm -A / keepalived `virtual_server`).
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// Routes to real servers that are not on a port's subnet.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Neighbours fixed by hand (otherwise rvsd resolves next hops with ARP itself).
    #[serde(default)]
    pub neighbors: Vec<NeighborConfig>,
    /// The connection table: size and IPVS timeouts (`ipvsadm --set tcp tcpfin udp`).
    #[serde(default)]
    pub connections: ConnectionsConfig,
}

/// One virtual service. Field names follow keepalived where it has them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
    #[serde(default = "defaults::lb_algo")]
    pub lb_algo: String,
    /// IPVS scheduler flags (`ipvsadm -b`): "sh-port", "sh-fallback" (with sh),
    /// "mh-port", "mh-fallback" (with mh).
    #[serde(default)]
    pub sched_flags: Vec<String>,
    /// Persistence (`ipvsadm -p`): seconds a client keeps its real server after its last
    /// new connection (and while connections it started live). Absent: no persistence.
    #[serde(default)]
    pub persistence_timeout: Option<u32>,
    /// Persistence granularity (`ipvsadm -M`): clients in one network under this mask share
    /// a real server. Default 255.255.255.255 (per client address).
    #[serde(default, deserialize_with = "ipv4_opt")]
    pub persistence_netmask: Option<Ipv4Addr>,
    /// FULLNAT: the local addresses (LIPs) rvsd uses as source towards the real servers; rvsd
    /// answers ARP for them on the port whose subnet holds them.
    #[serde(default, deserialize_with = "ipv4_list")]
    pub local_addresses: Vec<Ipv4Addr>,
    pub real_servers: Vec<RealServerConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServerConfig {
    #[serde(deserialize_with = "ipv4")]
    pub address: Ipv4Addr,
    /// Default: the service's port. DR and TUN cannot change the port.
    #[serde(default)]
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub destination: Ipv4Cidr,
    /// The gateway; it must sit on the subnet of `port`.
    #[serde(deserialize_with = "ipv4")]
    pub via: Ipv4Addr,
    /// The name of the port the gateway is on.
    pub port: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborConfig {
    #[serde(deserialize_with = "ipv4")]
    pub address: Ipv4Addr,
    /// "02:00:00:00:00:01"
    pub mac: String,
    pub port: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            capacity: defaults::capacity(),
            tcp_timeout: defaults::tcp_timeout(),
            tcpfin_timeout: defaults::tcpfin_timeout(),
            udp_timeout: defaults::udp_timeout(),
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

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EalConfig {
    /// Upper bound of DPDK memory, MiB.
    #[serde(default = "defaults::memory_mb")]
    pub memory_mb: u32,
    /// `false` runs on ordinary pages (`--no-huge --no-shconf`): slower, for labs and tests.
    #[serde(default = "defaults::yes")]
    pub hugepages: bool,
    /// Distinct per DPDK process on a machine; default `rvs-<pid>`.
    #[serde(default)]
    pub file_prefix: Option<String>,
    /// Passed to EAL as they are (e.g. `["--log-level=pmd.net.af_packet:debug"]`).
    #[serde(default)]
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

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    /// Packet buffers; default: enough for every descriptor ring and worker cache, doubled.
    #[serde(default)]
    pub mbufs: Option<u32>,
    /// Per-worker mbuf cache.
    #[serde(default)]
    pub cache: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// What operators and counters call the port.
    pub name: String,
    /// A PCI address (`0000:03:00.0`, bound to vfio-pci) or a vdev string
    /// (`net_af_packet0,iface=lb0`, `net_memif0,role=server,...`, `net_tap0`, `net_null0`).
    pub device: String,
    /// The appliance's own IPv4 addresses on this port (`198.51.100.1/24`; `/32` if no prefix).
    #[serde(default)]
    pub addresses: Vec<Ipv4Cidr>,
    #[serde(default)]
    pub promiscuous: bool,
    #[serde(default = "defaults::descriptors")]
    pub rx_descriptors: u16,
    #[serde(default = "defaults::descriptors")]
    pub tx_descriptors: u16,
    /// Largest IPv4 packet sent on this port; TUN answers fragmentation-needed above it.
    #[serde(default = "defaults::mtu")]
    pub mtu: u16,
}

impl PortConfig {
    /// The name EAL gives the device: the devargs up to the first comma.
    pub fn device_name(&self) -> &str {
        dataplane::dpdk::port::device_name(&self.device)
    }

    pub fn is_pci(&self) -> bool {
        is_pci_address(self.device_name())
    }
}

mod defaults {
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
    pub fn lb_algo() -> String {
        "rr".into()
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

/// Reads, parses and validates a file.
pub fn load(file: &Path) -> Result<LoadedConfig, ConfigError> {
    let source = std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_owned(),
        location: None,
        reason: format!("cannot read: {e}"),
    })?;
    parse(file, source)
}

/// Parses and validates `source` as if read from `file`.
pub fn parse(file: &Path, source: String) -> Result<LoadedConfig, ConfigError> {
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
    validate(&loaded, &available_cores())?;
    Ok(loaded)
}

/// The cores this process may run on.
pub fn available_cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect()
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
        if !seen.insert(core) {
            return Err(loaded.error_at(
                &[Field("workers"), Index(i)],
                format!("core {core} is listed twice"),
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
    let own = |addr: Ipv4Addr| {
        c.ports
            .iter()
            .any(|p| p.addresses.iter().any(|a| a.addr == addr))
    };

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
        if parse_mac(&n.mac).is_none() {
            return Err(loaded.error_at(
                &at("mac"),
                format!("{:?} is not a MAC address (02:00:00:00:00:01)", n.mac),
            ));
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

    let mut services = HashSet::new();
    let mut local_addresses = HashSet::new();
    for (i, svc) in c.services.iter().enumerate() {
        let at = |f| [Field("services"), Index(i), Field(f)];
        let Some(kind) = crate::config::scheduler(&svc.lb_algo) else {
            let names: Vec<&str> = dataplane::sched::SchedulerKind::ALL
                .iter()
                .map(|k| k.name())
                .collect();
            return Err(loaded.error_at(
                &at("lb_algo"),
                format!(
                    "unknown scheduler {:?} (one of {})",
                    svc.lb_algo,
                    names.join(", ")
                ),
            ));
        };
        for (j, flag) in svc.sched_flags.iter().enumerate() {
            let here = [Field("services"), Index(i), Field("sched_flags"), Index(j)];
            let Some((algo, _)) = sched_flag(flag) else {
                return Err(loaded.error_at(
                    &here,
                    format!(
                        "unknown scheduler flag {flag:?} (sh-port, sh-fallback, mh-port, \
                         mh-fallback)"
                    ),
                ));
            };
            if algo != kind.name() {
                return Err(loaded.error_at(
                    &here,
                    format!(
                        "{flag} is a flag of lb_algo \"{algo}\", not \"{}\"",
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
        if on_link(svc.vip).is_none() {
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
            local_addresses.insert(*lip);
        }
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
    }
    Ok(())
}

/// Real servers one service may have (schedulers' tables index them with 16 bits).
pub const MAX_REAL_SERVERS: usize = 65_000;

/// A scheduler flag: (the lb_algo it belongs to, which flag).
pub fn sched_flag(name: &str) -> Option<(&'static str, SchedFlag)> {
    Some(match name {
        "sh-port" => ("sh", SchedFlag::Port),
        "sh-fallback" => ("sh", SchedFlag::Fallback),
        "mh-port" => ("mh", SchedFlag::Port),
        "mh-fallback" => ("mh", SchedFlag::Fallback),
        _ => return None,
    })
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
        match sched_flag(f) {
            Some((_, SchedFlag::Port)) => flags.port = true,
            Some((_, SchedFlag::Fallback)) => flags.fallback = true,
            None => {}
        }
    }
    flags
}

/// The scheduler an `lb_algo` names.
pub fn scheduler(name: &str) -> Option<dataplane::sched::SchedulerKind> {
    dataplane::sched::SchedulerKind::from_name(name)
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
                "t.ron:3:18: core 1 is listed twice",
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
