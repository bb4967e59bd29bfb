//! `rvsadm`'s runtime edits (ipvsadm's -A/-E/-D, -a/-e/-d, -C, --set) as changes to the
//! running configuration. An edit gives a new `Config`, validated like a file, that the daemon
//! then publishes through the same snapshot path as a reload: what stays keeps its
//! connections, what goes drains (or ends with `expire_nodest_conn`).
//!
//! ipvsadm sets the forwarding method per real server; rvs sets it per service (`lb_kind`),
//! so a service takes the method of its first real server and refuses a second one. A service
//! added with -A and no real server yet forwards with DR (ipvsadm's default, -g) until one is
//! added.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::api::{Forward, Protocol as ApiProtocol, Request, ServerSettings, ServiceKey};
use crate::config::{self, Config, LbKind, Protocol, RealServerConfig, ServiceConfig};

/// ipvsadm's default persistence timeout (`-p` without a value).
pub const DEFAULT_PERSISTENCE: u32 = 300;

fn protocol(p: ApiProtocol) -> Protocol {
    match p {
        ApiProtocol::TCP => Protocol::TCP,
        ApiProtocol::UDP => Protocol::UDP,
    }
}

fn kind(f: Forward) -> LbKind {
    match f {
        Forward::Masq => LbKind::NAT,
        Forward::Route => LbKind::DR,
        Forward::Tunnel => LbKind::TUN,
        Forward::FullNat => LbKind::FULLNAT,
    }
}

/// ipvsadm's word for a forwarding method.
pub fn forward_of(kind: LbKind) -> Forward {
    match kind {
        LbKind::NAT => Forward::Masq,
        LbKind::DR => Forward::Route,
        LbKind::TUN => Forward::Tunnel,
        LbKind::FULLNAT => Forward::FullNat,
    }
}

fn position(c: &Config, key: &ServiceKey) -> Option<usize> {
    c.services.iter().position(|s| {
        s.protocol == protocol(key.protocol) && s.vip == key.address && s.port == key.port
    })
}

fn name(key: &ServiceKey) -> String {
    format!(
        "{} {}:{}",
        match key.protocol {
            ApiProtocol::TCP => "TCP",
            ApiProtocol::UDP => "UDP",
        },
        key.address,
        key.port
    )
}

/// Applies an edit to `running`; the result is validated against `cores` as a file would
/// be. Returns the new configuration and what changed, or ipvsadm's message (or rvs's reason)
/// for a refusal. Requests that are not edits are refused.
pub fn apply(
    running: &Config,
    request: &Request,
    cores: &[usize],
) -> Result<(Config, String), String> {
    let mut c = running.clone();
    let done = match request {
        Request::AddService { service, settings } => {
            if position(&c, service).is_some() {
                return Err("Service already exists".to_owned());
            }
            let mut s = new_service(service);
            set_service(&mut s, settings)?;
            c.services.push(s);
            format!("added {}", name(service))
        }
        Request::EditService { service, settings } => {
            let i = position(&c, service).ok_or("No such service")?;
            set_service(&mut c.services[i], settings)?;
            format!("edited {}", name(service))
        }
        Request::DeleteService { service } => {
            let i = position(&c, service).ok_or("No such service")?;
            c.services.remove(i);
            format!("deleted {}", name(service))
        }
        Request::AddServer {
            service,
            address,
            port,
            settings,
        } => {
            let (s, port) = service_of(&mut c, service, *port)?;
            if find_server(s, *address, port).is_some() {
                return Err("Destination already exists".to_owned());
            }
            let wanted = settings.forward.map_or(LbKind::DR, kind);
            if s.real_servers.is_empty() {
                s.lb_kind = wanted;
            } else if s.lb_kind != wanted {
                return Err(format!(
                    "{} forwards with {:?} ({:?} for ipvsadm): rvs forwards all of a \
                     service's real servers one way",
                    name(service),
                    s.lb_kind,
                    forward_of(s.lb_kind)
                ));
            }
            let mut r = new_server(*address, port, s.port);
            set_server(&mut r, settings);
            s.real_servers.push(r);
            format!("added {address}:{port} to {}", name(service))
        }
        Request::EditServer {
            service,
            address,
            port,
            settings,
        } => {
            let (s, port) = service_of(&mut c, service, *port)?;
            let j = find_server(s, *address, port).ok_or("No such destination")?;
            if let Some(f) = settings.forward {
                if kind(f) != s.lb_kind && s.real_servers.len() > 1 {
                    return Err(format!(
                        "{} forwards with {:?}: rvs forwards all of a service's real servers \
                         one way",
                        name(service),
                        s.lb_kind
                    ));
                }
                s.lb_kind = kind(f);
            }
            set_server(&mut s.real_servers[j], settings);
            format!("edited {address}:{port} of {}", name(service))
        }
        Request::DeleteServer {
            service,
            address,
            port,
        } => {
            let (s, port) = service_of(&mut c, service, *port)?;
            let j = find_server(s, *address, port).ok_or("No such destination")?;
            s.real_servers.remove(j);
            format!("deleted {address}:{port} from {}", name(service))
        }
        Request::Clear => {
            let n = c.services.len();
            c.services.clear();
            format!("cleared {n} services")
        }
        Request::SetTimeouts { tcp, tcpfin, udp } => {
            // ipvsadm --set: 0 keeps a value.
            let t = &mut c.connections;
            for (v, new) in [
                (&mut t.tcp_timeout, tcp),
                (&mut t.tcpfin_timeout, tcpfin),
                (&mut t.udp_timeout, udp),
            ] {
                if *new > 0 {
                    *v = *new;
                }
            }
            format!(
                "timeouts (tcp tcpfin udp): {} {} {}",
                t.tcp_timeout, t.tcpfin_timeout, t.udp_timeout
            )
        }
        other => return Err(format!("not an edit: {other:?}")),
    };
    let c = validate(c, cores)?;
    Ok((c, done))
}

/// Validates an edited configuration as a file. It has no text to place a refusal in (it
/// is not written out for that: a large configuration takes a while to write), so a
/// refusal's reason is all that is reported.
pub fn validate(c: Config, cores: &[usize]) -> Result<Config, String> {
    let loaded = config::LoadedConfig {
        file: Path::new("<running configuration>").to_owned(),
        source: String::new(),
        config: c,
    };
    config::validate(&loaded, cores).map_err(|e| e.reason)?;
    Ok(loaded.config)
}

/// The service a real server edit names (ipvsadm's "Service not defined" otherwise), and the
/// server's port (the service's when not given).
fn service_of<'a>(
    c: &'a mut Config,
    key: &ServiceKey,
    port: Option<u16>,
) -> Result<(&'a mut ServiceConfig, u16), String> {
    let i = position(c, key).ok_or("Service not defined")?;
    let s = &mut c.services[i];
    let port = port.unwrap_or(s.port);
    Ok((s, port))
}

fn find_server(s: &ServiceConfig, address: Ipv4Addr, port: u16) -> Option<usize> {
    s.real_servers
        .iter()
        .position(|r| r.address == address && r.port.unwrap_or(s.port) == port)
}

fn new_service(key: &ServiceKey) -> ServiceConfig {
    let text = format!(
        "(protocol: {}, vip: \"{}\", port: {}, lb_kind: DR, lb_algo: \"wlc\", real_servers: [])",
        match key.protocol {
            ApiProtocol::TCP => "TCP",
            ApiProtocol::UDP => "UDP",
        },
        key.address,
        key.port
    );
    ron::from_str(&text).expect("a minimal service parses")
}

fn new_server(address: Ipv4Addr, port: u16, service_port: u16) -> RealServerConfig {
    let text = format!("(address: \"{address}\")");
    let mut r: RealServerConfig = ron::from_str(&text).expect("a minimal real server parses");
    r.port = (port != service_port).then_some(port);
    r
}

fn set_service(
    s: &mut ServiceConfig,
    settings: &crate::api::ServiceSettings,
) -> Result<(), String> {
    if let Some(sched) = &settings.scheduler {
        s.lb_algo = sched.parse()?;
    }
    if let Some(flags) = &settings.flags {
        s.sched_flags = flags.iter().map(|f| f.parse()).collect::<Result<_, _>>()?;
    }
    if let Some(p) = settings.persistent {
        s.persistence_timeout = (p > 0).then_some(p);
    }
    if let Some(mask) = settings.netmask {
        s.persistence_netmask = (mask != Ipv4Addr::BROADCAST).then_some(mask);
    }
    Ok(())
}

fn set_server(r: &mut RealServerConfig, settings: &ServerSettings) {
    if let Some(w) = settings.weight {
        r.weight = w;
    }
    if let Some(x) = settings.upper_threshold {
        r.upper_threshold = x;
    }
    if let Some(y) = settings.lower_threshold {
        r.lower_threshold = y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ServiceSettings;

    fn running() -> Config {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/lab-nat.ron"),
        )
        .unwrap()
        .replace("stats_file: \"/run/rvs/lab-stats.json\",", "");
        config::parse_with_cores(Path::new("lab-nat.ron"), text, &[0, 1, 2])
            .unwrap()
            .config
    }

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            protocol: ApiProtocol::TCP,
            address: "198.51.100.100".parse().unwrap(),
            port,
        }
    }

    /// -A, -a (twice, the second method refused), -e, -E, -d, -D, in the order an operator
    /// types them; each result is a valid configuration and says what it did.
    #[test]
    fn ipvsadm_edits_change_the_running_configuration() {
        let cores = [0, 1, 2];
        let c = running();
        let (c, msg) = apply(
            &c,
            &Request::AddService {
                service: key(8080),
                settings: ServiceSettings {
                    scheduler: Some("rr".into()),
                    ..Default::default()
                },
            },
            &cores,
        )
        .unwrap();
        assert_eq!(msg, "added TCP 198.51.100.100:8080");
        let s = c.services.last().unwrap();
        assert_eq!(
            (s.lb_algo.name(), s.lb_kind, s.real_servers.len()),
            ("rr", LbKind::DR, 0)
        );
        let add = |c: &Config, addr: &str, f: Forward| {
            apply(
                c,
                &Request::AddServer {
                    service: key(8080),
                    address: addr.parse().unwrap(),
                    port: None,
                    settings: ServerSettings {
                        forward: Some(f),
                        weight: Some(3),
                        ..Default::default()
                    },
                },
                &cores,
            )
        };
        let (c, msg) = add(&c, "203.0.113.11", Forward::Masq).unwrap();
        assert_eq!(msg, "added 203.0.113.11:8080 to TCP 198.51.100.100:8080");
        let s = c.services.last().unwrap();
        assert_eq!(
            (s.lb_kind, s.real_servers[0].weight, s.real_servers[0].port),
            (LbKind::NAT, 3, None)
        );
        let err = add(&c, "203.0.113.12", Forward::Route).unwrap_err();
        assert!(err.contains("one way"), "{err}");
        assert_eq!(
            add(&c, "203.0.113.11", Forward::Masq).unwrap_err(),
            "Destination already exists"
        );
        let (c, _) = apply(
            &c,
            &Request::EditServer {
                service: key(8080),
                address: "203.0.113.11".parse().unwrap(),
                port: Some(8080),
                settings: ServerSettings {
                    weight: Some(0),
                    upper_threshold: Some(100),
                    ..Default::default()
                },
            },
            &cores,
        )
        .unwrap();
        let r = &c.services.last().unwrap().real_servers[0];
        assert_eq!((r.weight, r.upper_threshold), (0, 100));
        let (c, _) = apply(
            &c,
            &Request::EditService {
                service: key(8080),
                settings: ServiceSettings {
                    persistent: Some(DEFAULT_PERSISTENCE),
                    netmask: Some("255.255.255.0".parse().unwrap()),
                    ..Default::default()
                },
            },
            &cores,
        )
        .unwrap();
        let s = c.services.last().unwrap();
        assert_eq!(s.persistence_timeout, Some(300));
        assert_eq!(
            s.persistence_netmask,
            Some("255.255.255.0".parse().unwrap())
        );
        // A scheduler rvs does not know is refused by validation, the running one stays.
        let err = apply(
            &c,
            &Request::EditService {
                service: key(8080),
                settings: ServiceSettings {
                    scheduler: Some("nope".into()),
                    ..Default::default()
                },
            },
            &cores,
        )
        .unwrap_err();
        assert!(err.contains("nope"), "{err}");
        let (c, _) = apply(
            &c,
            &Request::DeleteServer {
                service: key(8080),
                address: "203.0.113.11".parse().unwrap(),
                port: None,
            },
            &cores,
        )
        .unwrap();
        assert!(c.services.last().unwrap().real_servers.is_empty());
        let (c, _) = apply(&c, &Request::DeleteService { service: key(8080) }, &cores).unwrap();
        assert_eq!(c, running(), "back where it started");
        assert_eq!(
            apply(&c, &Request::DeleteService { service: key(8080) }, &cores).unwrap_err(),
            "No such service"
        );
        let (c, msg) = apply(
            &c,
            &Request::SetTimeouts {
                tcp: 100,
                tcpfin: 0,
                udp: 5,
            },
            &cores,
        )
        .unwrap();
        assert_eq!(msg, "timeouts (tcp tcpfin udp): 100 120 5");
        let (c, msg) = apply(&c, &Request::Clear, &cores).unwrap();
        assert_eq!((msg.as_str(), c.services.len()), ("cleared 2 services", 0));
    }
}
