//! VRRP in the configuration, with keepalived's words: `vrrp_instance`s (here
//! `vrrp_instances`), `vrrp_sync_group`s (`vrrp_sync_groups`) and `vrrp_script`s
//! (`vrrp_scripts`). An instance runs on one port; the addresses it holds
//! (`virtual_ipaddress`: VIPs, the real servers' gateway, FULLNAT local addresses, any other
//! address rvs answers for) are served only while it is MASTER.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{ipv4_list, ipv4_opt, Ipv4Cidr};

/// The state an instance asks for at start (keepalived's `state`): with priority 255 (the
/// address owner, `MASTER`'s default) it starts MASTER; otherwise it starts BACKUP and waits
/// a whole down interval, as keepalived 2.2.7 does whatever its `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum InitialState {
    MASTER,
    #[default]
    BACKUP,
}

/// `authentication { auth_type PASS; auth_pass ... }` (VRRP version 2 only, as keepalived).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    pub auth_type: AuthType,
    /// Up to 8 characters (keepalived cuts longer ones; rvs refuses them).
    pub auth_pass: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum AuthType {
    PASS,
}

/// One `vrrp_instance`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstance {
    pub name: String,
    #[serde(default)]
    pub state: InitialState,
    /// The port (by name) the adverts go out of and come in on.
    pub interface: String,
    pub virtual_router_id: u8,
    /// 1..=255 (255: the address owner); keepalived's default: 255 with `state: MASTER`,
    /// else 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Seconds between adverts (v3: down to 0.01, in hundredths; v2: whole seconds).
    #[serde(default = "defaults::advert_int")]
    pub advert_int: Centis,
    /// VRRP version, 2 or 3 (keepalived's `version`; its default `vrrp_version` is 2).
    #[serde(default = "defaults::version")]
    pub version: u8,
    /// The addresses the instance holds, on its interface's port: `"198.51.100.100"`,
    /// `"203.0.113.1/24"`.
    pub virtual_ipaddress: Vec<Ipv4Cidr>,
    /// Do not take over from a lower-priority master (needs `state: BACKUP`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nopreempt: bool,
    /// Seconds after start during which a higher priority does not preempt (0..=1000).
    #[serde(default)]
    pub preempt_delay: Centis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
    /// The adverts' source in unicast mode (default: the port's first address).
    #[serde(
        default,
        deserialize_with = "ipv4_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub unicast_src_ip: Option<Ipv4Addr>,
    /// Send adverts to these peers instead of the multicast group, and hear only them.
    #[serde(
        default,
        deserialize_with = "ipv4_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub unicast_peer: Vec<Ipv4Addr>,
    /// Seconds after becoming MASTER before the second round of gratuitous ARPs (default 5;
    /// 0: none).
    #[serde(default = "defaults::garp_master_delay")]
    pub garp_master_delay: u32,
    /// Gratuitous ARPs per address in each round (default 5).
    #[serde(default = "defaults::garp_master_repeat")]
    pub garp_master_repeat: u32,
    /// Seconds between further rounds while MASTER (default 0: none).
    #[serde(default)]
    pub garp_master_refresh: u32,
    /// Ports whose link this instance needs: one down puts it in FAULT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_interface: Vec<String>,
    /// `vrrp_scripts` by name: one failing puts it in FAULT (or, with a weight, moves the
    /// priority).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_script: Vec<String>,
    /// Services (`"TCP 198.51.100.100:80"`) whose checkers' quorum this instance needs: lost,
    /// it goes to FAULT and a peer that has it takes over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_service: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_master: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_backup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fault: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_stop: Option<String>,
    /// Called with `INSTANCE NAME STATE PRIORITY` appended, as keepalived does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
}

/// keepalived's `lvs_sync_daemon INTERFACE VRRP_INSTANCE [id N] [maxlen N] [port N] [ttl N]
/// [group ADDR]`: connection sync over `interface`, sending while `vrrp_instance` is MASTER,
/// receiving otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncDaemon {
    /// The port (by name) the messages go out of and come in on.
    pub interface: String,
    pub vrrp_instance: String,
    /// The sync id (0..=255): a backup with id 0 takes every master's messages.
    #[serde(default)]
    pub id: u8,
    /// Largest message (UDP payload), the kernel's 1472 by default.
    #[serde(default = "defaults::sync_maxlen")]
    pub maxlen: u16,
    #[serde(default = "defaults::sync_port")]
    pub port: u16,
    #[serde(default = "defaults::sync_ttl")]
    pub ttl: u8,
    #[serde(default = "defaults::sync_group", deserialize_with = "super::ipv4")]
    pub group: Ipv4Addr,
}

/// One `vrrp_sync_group`: its instances are MASTER together, or none of them is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpSyncGroup {
    pub name: String,
    pub group: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_master: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_backup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fault: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_stop: Option<String>,
    /// Called with `GROUP NAME STATE 0` appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
}

/// One `vrrp_script`: run every `interval` seconds; exit 0 is success.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpScript {
    pub name: String,
    /// The program and its arguments, split on blanks (no shell).
    pub script: String,
    #[serde(default = "defaults::script_interval")]
    pub interval: u32,
    /// Seconds before a run is killed and counts as a failure (default: `interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// 0: a failure puts the tracking instances in FAULT. Otherwise -253..=253: added to
    /// their priority while the script succeeds (positive) or fails (negative).
    #[serde(default)]
    pub weight: i32,
    /// Failures in a row before it counts as failed (default 1).
    #[serde(default = "defaults::one")]
    pub fall: u32,
    /// Successes in a row before it counts as succeeding (default 1).
    #[serde(default = "defaults::one")]
    pub rise: u32,
}

mod defaults {
    pub fn sync_maxlen() -> u16 {
        1472
    }
    pub fn sync_port() -> u16 {
        8848
    }
    pub fn sync_ttl() -> u8 {
        1
    }
    pub fn sync_group() -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::new(224, 0, 0, 81)
    }
    pub fn advert_int() -> super::Centis {
        super::Centis(100)
    }
    pub fn version() -> u8 {
        2
    }
    pub fn garp_master_delay() -> u32 {
        5
    }
    pub fn garp_master_repeat() -> u32 {
        5
    }
    pub fn script_interval() -> u32 {
        1
    }
    pub fn one() -> u32 {
        1
    }
}

impl VrrpInstance {
    /// The priority in force: as written, else keepalived's default for the state.
    pub fn priority(&self) -> u8 {
        self.priority.unwrap_or(match self.state {
            InitialState::MASTER => 255,
            InitialState::BACKUP => 100,
        })
    }
}

/// A time written in seconds (`1`, `0.5`), kept in hundredths of a second as VRRP v3 counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Centis(pub u32);

impl Centis {
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.0) * 10)
    }
}

impl std::fmt::Display for Centis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_multiple_of(100) {
            write!(f, "{}", self.0 / 100)
        } else {
            write!(f, "{:.2}", f64::from(self.0) / 100.0)
        }
    }
}

impl<'de> Deserialize<'de> for Centis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let seconds = f64::deserialize(d)?;
        if !(0.0..=4_000_000.0).contains(&seconds) {
            return Err(serde::de::Error::custom(format!(
                "{seconds} seconds is out of range"
            )));
        }
        let centis = (seconds * 100.0).round();
        if (centis - seconds * 100.0).abs() > 1e-6 {
            return Err(serde::de::Error::custom(format!(
                "{seconds} seconds: VRRP counts hundredths of a second"
            )));
        }
        Ok(Centis(centis as u32))
    }
}

impl Serialize for Centis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Seconds, as written.
        s.serialize_f64(f64::from(self.0) / 100.0)
    }
}

/// A service named as `track_service` writes it: `"TCP 198.51.100.100:80"`.
pub fn parse_service_name(text: &str) -> Option<(super::Protocol, Ipv4Addr, u16)> {
    let (proto, endpoint) = text.split_once(' ')?;
    let protocol = match proto {
        "TCP" | "tcp" => super::Protocol::TCP,
        "UDP" | "udp" => super::Protocol::UDP,
        _ => return None,
    };
    let (addr, port) = endpoint.trim().split_once(':')?;
    Some((protocol, addr.parse().ok()?, port.parse().ok()?))
}

/// The VRRP sections' rules, each refusal placed at its value.
pub(super) fn validate(loaded: &super::LoadedConfig) -> Result<(), super::ConfigError> {
    use super::Step::{Field, Index};
    let c = &loaded.config;
    let mut names = std::collections::HashSet::new();
    let mut routers = std::collections::HashSet::new();
    let mut held: Vec<(Ipv4Addr, &str)> = Vec::new();
    for (i, v) in c.vrrp_instances.iter().enumerate() {
        let at = |f| [Field("vrrp_instances"), Index(i), Field(f)];
        let fail = |f, reason: String| Err(loaded.error_at(&at(f), reason));
        if v.name.is_empty() || !names.insert(v.name.as_str()) {
            return fail(
                "name",
                format!("instance name {:?} is empty or taken", v.name),
            );
        }
        let Some(port) = c.ports.iter().find(|p| p.name == v.interface) else {
            return fail(
                "interface",
                format!("interface {:?} is not a port of this file", v.interface),
            );
        };
        if v.virtual_router_id == 0 {
            return fail(
                "virtual_router_id",
                "virtual_router_id must be 1..=255".into(),
            );
        }
        if !routers.insert((v.interface.as_str(), v.virtual_router_id)) {
            return fail(
                "virtual_router_id",
                format!(
                    "virtual_router_id {} is used twice on port {:?}",
                    v.virtual_router_id, v.interface
                ),
            );
        }
        if v.priority == Some(0) {
            return fail(
                "priority",
                "priority must be 1..=255 (0 is a master's farewell)".into(),
            );
        }
        match v.version {
            2 if v.advert_int.0 % 100 != 0 || !(100..=25_500).contains(&v.advert_int.0) => {
                return fail(
                    "advert_int",
                    format!(
                        "advert_int {}: VRRP version 2 sends whole seconds, 1..=255",
                        v.advert_int
                    ),
                );
            }
            3 if !(1..=4095).contains(&v.advert_int.0) => {
                return fail(
                    "advert_int",
                    format!(
                        "advert_int {}: VRRP version 3 allows 0.01..=40.95 seconds",
                        v.advert_int
                    ),
                );
            }
            2 | 3 => {}
            other => {
                return fail(
                    "version",
                    format!("version {other}: VRRP is version 2 or 3"),
                )
            }
        }
        if v.virtual_ipaddress.is_empty() {
            return fail(
                "virtual_ipaddress",
                "an instance holds at least one address".into(),
            );
        }
        for (k, a) in v.virtual_ipaddress.iter().enumerate() {
            let here = [
                Field("vrrp_instances"),
                Index(i),
                Field("virtual_ipaddress"),
                Index(k),
            ];
            if let Some(p) = c
                .ports
                .iter()
                .find(|p| p.addresses.iter().any(|x| x.addr == a.addr))
            {
                return Err(loaded.error_at(
                    &here,
                    format!(
                        "{} is port {:?}'s own address: a VRRP address moves between appliances, \
                         give each its own port address and float another",
                        a.addr, p.name
                    ),
                ));
            }
            if let Some((_, other)) = held.iter().find(|(x, _)| *x == a.addr) {
                return Err(loaded.error_at(
                    &here,
                    format!("{} is already held by instance {other:?}", a.addr),
                ));
            }
            held.push((a.addr, &v.name));
        }
        if v.nopreempt && v.state == InitialState::MASTER {
            return fail(
                "nopreempt",
                "nopreempt needs state: BACKUP (a MASTER start preempts by definition)".into(),
            );
        }
        if v.preempt_delay.0 > 100_000 {
            return fail(
                "preempt_delay",
                "preempt_delay must be 0..=1000 seconds".into(),
            );
        }
        if let Some(auth) = &v.authentication {
            if v.version != 2 {
                return fail(
                    "authentication",
                    "authentication is VRRP version 2's (RFC 5798 removed it)".into(),
                );
            }
            if auth.auth_pass.is_empty() || auth.auth_pass.len() > 8 {
                return fail(
                    "authentication",
                    "auth_pass must be 1 to 8 characters".into(),
                );
            }
        }
        if let Some(src) = v.unicast_src_ip {
            if !port.addresses.iter().any(|a| a.addr == src) {
                return fail(
                    "unicast_src_ip",
                    format!("{src} is not an address of port {:?}", port.name),
                );
            }
        } else if port.addresses.is_empty() {
            return fail(
                "interface",
                format!("port {:?} has no address to send adverts from", port.name),
            );
        }
        for (k, peer) in v.unicast_peer.iter().enumerate() {
            if port.addresses.iter().any(|a| a.addr == *peer) {
                return Err(loaded.error_at(
                    &[
                        Field("vrrp_instances"),
                        Index(i),
                        Field("unicast_peer"),
                        Index(k),
                    ],
                    format!("{peer} is this appliance's own address"),
                ));
            }
        }
        for (k, t) in v.track_interface.iter().enumerate() {
            if !c.ports.iter().any(|p| &p.name == t) {
                return Err(loaded.error_at(
                    &[
                        Field("vrrp_instances"),
                        Index(i),
                        Field("track_interface"),
                        Index(k),
                    ],
                    format!("track_interface {t:?} is not a port of this file"),
                ));
            }
        }
        for (k, t) in v.track_script.iter().enumerate() {
            if !c.vrrp_scripts.iter().any(|s| &s.name == t) {
                return Err(loaded.error_at(
                    &[
                        Field("vrrp_instances"),
                        Index(i),
                        Field("track_script"),
                        Index(k),
                    ],
                    format!("track_script {t:?} is not in vrrp_scripts"),
                ));
            }
        }
        for (k, t) in v.track_service.iter().enumerate() {
            let here = [
                Field("vrrp_instances"),
                Index(i),
                Field("track_service"),
                Index(k),
            ];
            let Some((protocol, vip, vport)) = parse_service_name(t) else {
                return Err(loaded.error_at(
                    &here,
                    format!("track_service {t:?}: expected e.g. \"TCP 198.51.100.100:80\""),
                ));
            };
            if !c
                .services
                .iter()
                .any(|s| s.protocol == protocol && s.vip == vip && s.port == vport)
            {
                return Err(loaded.error_at(
                    &here,
                    format!("track_service {t:?} is not a service of this file"),
                ));
            }
        }
        for (f, script) in [
            ("notify_master", &v.notify_master),
            ("notify_backup", &v.notify_backup),
            ("notify_fault", &v.notify_fault),
            ("notify_stop", &v.notify_stop),
            ("notify", &v.notify),
        ] {
            if script.as_deref().is_some_and(|s| s.trim().is_empty()) {
                return fail(f, format!("{f} is empty"));
            }
        }
    }
    let mut grouped = std::collections::HashSet::new();
    let mut group_names = std::collections::HashSet::new();
    for (i, g) in c.vrrp_sync_groups.iter().enumerate() {
        let at = |f| [Field("vrrp_sync_groups"), Index(i), Field(f)];
        if g.name.is_empty() || !group_names.insert(g.name.as_str()) {
            return Err(loaded.error_at(
                &at("name"),
                format!("group name {:?} is empty or taken", g.name),
            ));
        }
        if g.group.is_empty() {
            return Err(loaded.error_at(&at("group"), "a sync group needs at least one instance"));
        }
        for (k, name) in g.group.iter().enumerate() {
            let here = [
                Field("vrrp_sync_groups"),
                Index(i),
                Field("group"),
                Index(k),
            ];
            if !c.vrrp_instances.iter().any(|v| &v.name == name) {
                return Err(loaded.error_at(&here, format!("{name:?} is not in vrrp_instances")));
            }
            if !grouped.insert(name.as_str()) {
                return Err(loaded.error_at(&here, format!("{name:?} is in two sync groups")));
            }
        }
    }
    if let Some(d) = &c.lvs_sync_daemon {
        let at = |f| [Field("lvs_sync_daemon"), Field(f)];
        match c.ports.iter().find(|p| p.name == d.interface) {
            None => {
                return Err(loaded.error_at(
                    &at("interface"),
                    format!("interface {:?} is not a port of this file", d.interface),
                ))
            }
            Some(p) if p.addresses.is_empty() => {
                return Err(loaded.error_at(
                    &at("interface"),
                    format!(
                        "port {:?} has no address to send sync messages from",
                        p.name
                    ),
                ))
            }
            Some(_) => {}
        }
        if !c.vrrp_instances.iter().any(|v| v.name == d.vrrp_instance) {
            return Err(loaded.error_at(
                &at("vrrp_instance"),
                format!("{:?} is not in vrrp_instances", d.vrrp_instance),
            ));
        }
        if !(100..=65_000).contains(&d.maxlen) {
            return Err(loaded.error_at(&at("maxlen"), "maxlen must be 100..=65000 bytes"));
        }
        if d.ttl == 0 {
            return Err(loaded.error_at(&at("ttl"), "ttl must be 1..=255"));
        }
        if !d.group.is_multicast() {
            return Err(loaded.error_at(
                &at("group"),
                format!("{} is not a multicast group", d.group),
            ));
        }
    }
    let mut script_names = std::collections::HashSet::new();
    for (i, s) in c.vrrp_scripts.iter().enumerate() {
        let at = |f| [Field("vrrp_scripts"), Index(i), Field(f)];
        if s.name.is_empty() || !script_names.insert(s.name.as_str()) {
            return Err(loaded.error_at(
                &at("name"),
                format!("script name {:?} is empty or taken", s.name),
            ));
        }
        if s.script.trim().is_empty() {
            return Err(loaded.error_at(&at("script"), "script is empty"));
        }
        if !(1..=86_400).contains(&s.interval) {
            return Err(loaded.error_at(&at("interval"), "interval must be 1..=86400 seconds"));
        }
        if s.timeout.is_some_and(|t| !(1..=86_400).contains(&t)) {
            return Err(loaded.error_at(&at("timeout"), "timeout must be 1..=86400 seconds"));
        }
        if !(-253..=253).contains(&s.weight) {
            return Err(loaded.error_at(&at("weight"), "weight must be -253..=253"));
        }
        if s.fall == 0 || s.rise == 0 {
            return Err(loaded.error_at(
                &at(if s.fall == 0 { "fall" } else { "rise" }),
                "fall and rise are at least 1",
            ));
        }
    }
    Ok(())
}
