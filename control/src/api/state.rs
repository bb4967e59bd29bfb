//! The running state as ipvsadm shows it: what `rvsadm -L`, `-c`, `--stats`, `--rate`,
//! `--timeout` and `-S` render, what `rvsadm dump` saves, and what the metrics report.

use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    TCP,
    UDP,
}

/// How a real server is reached (ipvsadm's `Masq`, `Route`, `Tunnel`; DPVS's `FullNat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Forward {
    Masq,
    Route,
    Tunnel,
    FullNat,
}

/// IPVS's `ip_vs_kstats`: totals since start (or the last `-Z`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.conns += o.conns;
        self.inpkts += o.inpkts;
        self.outpkts += o.outpkts;
        self.inbytes += o.inbytes;
        self.outbytes += o.outbytes;
    }
}

impl From<dataplane::sched::DestStats> for Stats {
    fn from(d: dataplane::sched::DestStats) -> Self {
        Stats {
            conns: d.conns,
            inpkts: d.inpkts,
            outpkts: d.outpkts,
            inbytes: d.inbytes,
            outbytes: d.outbytes,
        }
    }
}

/// Per-second rates from IPVS's estimator (`ip_vs_est`: a 2 s sample, averaged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

impl std::ops::AddAssign for Rates {
    fn add_assign(&mut self, o: Rates) {
        self.cps += o.cps;
        self.inpps += o.inpps;
        self.outpps += o.outpps;
        self.inbps += o.inbps;
        self.outbps += o.outbps;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServerState {
    pub address: Ipv4Addr,
    pub port: u16,
    pub forward: Forward,
    /// The weight the scheduler uses now (0 while a checker holds it down with
    /// `inhibit_on_failure`).
    pub weight: u32,
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    /// IPVS's `activeconns`, `inactconns`, `persistconns`, summed over the workers.
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persistent_conns: u32,
    pub stats: Stats,
    pub rates: Rates,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    pub protocol: Protocol,
    pub address: Ipv4Addr,
    pub port: u16,
    /// rr, wrr, lc, ... as ipvsadm names it.
    pub scheduler: String,
    /// `sh-port`, `sh-fallback`, `mh-port`, `mh-fallback`.
    pub flags: Vec<String>,
    /// Persistence timeout in seconds, if persistent.
    pub persistent: Option<u32>,
    /// The persistence netmask (255.255.255.255 unless `-M`).
    pub netmask: Ipv4Addr,
    pub stats: Stats,
    pub rates: Rates,
    /// In the order of the configuration (ipvsadm lists the kernel's order: the order added).
    pub real_servers: Vec<RealServerState>,
}

/// One connection (or persistence template) as `ipvsadm -L -c` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub protocol: Protocol,
    /// IPVS's state names: ESTABLISHED, SYN_RECV, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT,
    /// LAST_ACK, LISTEN, SYNACK, NONE; UDP for UDP; NONE for a template.
    pub state: String,
    /// Milliseconds until it expires.
    pub expires_ms: u64,
    pub source: SocketAddrV4,
    pub virtual_: SocketAddrV4,
    pub destination: SocketAddrV4,
    /// FULLNAT's local address and port toward the real server.
    pub local: Option<SocketAddrV4>,
    /// A persistence template (client network, port 0).
    pub template: bool,
}

/// `ipvsadm --set` / `-L --timeout`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcpfin: u32,
    pub udp: u32,
}

/// One reply of the running state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// rvs's version.
    pub version: String,
    /// The connection table's size (ipvsadm's `size=` in its first line): the total over
    /// the workers.
    pub conn_tab_size: u64,
    pub services: Vec<ServiceState>,
    pub timeouts: Timeouts,
    /// Only when asked for (`-c`).
    pub connections: Option<Vec<Connection>>,
    /// Unix time of the reply, milliseconds.
    pub taken_unix_ms: u64,
}
