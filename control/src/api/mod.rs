//! The control API: the typed messages `rvsadm` and rvsd exchange over the control socket,
//! and the running state one reply carries (`rvsadm dump` saves it; `rvsadm --from FILE`
//! renders any table from it).
//!
//! - [`state`]: services, real servers, counters, rates, connections, timeouts as ipvsadm
//!   shows them.
//! - this module: requests and replies.

pub mod client;
pub mod http;
pub mod ipvsadm;
pub mod metrics;
pub mod rate;
pub mod server;
pub mod state;

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

pub use state::{
    Connection, Forward, Protocol, Rates, RealServerState, ServiceState, State, Stats, Timeouts,
};

/// The largest request the daemon reads (a request is a line of JSON); longer ones are
/// refused and the connection closed.
pub const MAX_REQUEST: usize = 64 * 1024;

/// The default place of the control socket.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";

/// A virtual service as `-A/-E/-D -t|-u VIP:PORT` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceKey {
    pub protocol: Protocol,
    pub address: Ipv4Addr,
    pub port: u16,
}

/// `-A`/`-E`: the service's settings (`-s`, `-b`, `-p`, `-M`). `None` in an edit keeps
/// the running value; in an add takes the default (wlc, no flags, no persistence).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSettings {
    pub scheduler: Option<String>,
    /// `-b sh-port,sh-fallback`.
    pub flags: Option<Vec<String>>,
    /// `-p [TIMEOUT]`: seconds (`-p` alone is ipvsadm's 300).
    pub persistent: Option<u32>,
    /// `-M NETMASK`.
    pub netmask: Option<Ipv4Addr>,
}

/// `-a`/`-e`: a real server's settings (`-m|-g|-i|--fullnat`, `-w`, `-x`, `-y`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSettings {
    pub forward: Option<Forward>,
    pub weight: Option<u32>,
    pub upper_threshold: Option<u32>,
    pub lower_threshold: Option<u32>,
}

/// What `rvsadm` asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The running state; connections only when asked (`-c`), at most `limit` of them.
    State {
        connections: bool,
        limit: Option<usize>,
    },
    AddService {
        service: ServiceKey,
        settings: ServiceSettings,
    },
    EditService {
        service: ServiceKey,
        settings: ServiceSettings,
    },
    DeleteService {
        service: ServiceKey,
    },
    AddServer {
        service: ServiceKey,
        address: Ipv4Addr,
        port: Option<u16>,
        settings: ServerSettings,
    },
    EditServer {
        service: ServiceKey,
        address: Ipv4Addr,
        port: Option<u16>,
        settings: ServerSettings,
    },
    DeleteServer {
        service: ServiceKey,
        address: Ipv4Addr,
        port: Option<u16>,
    },
    /// `-C`: every service goes.
    Clear,
    /// `-Z [service]`: counters (and rates) back to zero.
    Zero {
        service: Option<ServiceKey>,
    },
    /// `--set TCP TCPFIN UDP` (0 keeps a value).
    SetTimeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
    /// Read the configuration file again (as SIGHUP).
    Reload,
    /// The running configuration as RON (`--save-ron`).
    SaveRon,
    /// Workers, ports, steering, checkers, VRRP, the last reload.
    Status,
}

/// What rvsd answers: one per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Done (an edit, a reload, -Z, --set, -C); the text says what changed, if anything.
    Done(String),
    State(Box<State>),
    Ron(String),
    Status(serde_json::Value),
    /// Refused: ipvsadm's message where it has one ("Service not defined", ...).
    Error(String),
}
