//! What the checkers' verdicts do to the services, as keepalived does it: a real server is up
//! while all its checkers pass; a failed one leaves the scheduler (or stays at weight 0 with
//! `inhibit_on_failure`); `MISC_CHECK` with `misc_dynamic` sets its weight; a service whose live
//! weight falls below its `quorum` (less `hysteresis`) runs `quorum_down` and takes its
//! `sorry_server`, and gives it back (running `quorum_up`) once the live weight reaches the
//! quorum (plus `hysteresis`). `notify_up`/`notify_down` run per real server, `omega` runs the
//! down scripts that apply when rvsd stops.
//!
//! The verdicts reach the workers through the same path as a reload: [`Health::apply`] gives
//! the configuration as the checks leave it, from which the control thread builds and publishes
//! a snapshot. State is kept per probe (identical probes, even of different services, run
//! once and share it) and survives a reload for every probe that stays.
//!
//! Timing is inherited as in keepalived: a checker's own setting, else its real server's, else
//! its service's, else keepalived's default (`delay_loop` 60 s, `connect_timeout` 5 s, `retry`
//! 1, `delay_before_retry` 1 s, `warmup` 0).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tracing::{info, warn};

use crate::check::{Checker, Event, Probe, ProbeKind, Report, UrlCheck};
use crate::config::health::{defaults, parse_hex, CheckConfig};
use crate::config::{Config, Protocol, RealServerConfig, ServiceConfig};

/// A service: protocol, VIP, port.
pub type ServiceKey = (Protocol, Ipv4Addr, u16);
/// A real server of a service: its address and port.
pub type ServerAddr = (Ipv4Addr, u16);

/// How long a notify or quorum script may run before it is killed.
pub const SCRIPT_TIMEOUT: Duration = crate::script::TIMEOUT;

/// How often one probe's local errors are logged.
const LOCAL_ERROR_LOG_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct ProbeState {
    up: bool,
    /// misc_dynamic: the weight its last exit code set.
    weight: Option<u32>,
    reason: String,
}

/// One checker of a real server: the probe it runs and what the log calls it.
#[derive(Debug, Clone)]
struct Check {
    probe: Probe,
    label: String,
}

#[derive(Debug, Clone)]
struct Server {
    checks: Vec<Check>,
    up: bool,
    /// misc_dynamic's weight, while one is set.
    weight: Option<u32>,
    reason: String,
    since: SystemTime,
    configured_weight: u32,
    inhibit: bool,
    notify_up: Option<String>,
    notify_down: Option<String>,
}

impl Server {
    /// The weight it counts with toward the quorum, and that the scheduler gets while up.
    fn live_weight(&self) -> u32 {
        self.weight.unwrap_or(self.configured_weight)
    }
}

#[derive(Debug, Clone)]
struct Service {
    /// In the configuration's order.
    servers: Vec<ServerAddr>,
    quorum: u32,
    hysteresis: u32,
    quorum_met: bool,
    sorry: Option<ServerAddr>,
    quorum_up: Option<String>,
    quorum_down: Option<String>,
    omega: bool,
    expire_nodest_conn: bool,
}

/// The health of every real server, and the checker that keeps it current.
#[derive(Default)]
pub struct Health {
    checker: Option<(Checker, Receiver<Report>)>,
    /// Checks completed by checkers that were stopped (the final count at exit keeps them).
    checks_before: u64,
    probes: HashMap<Probe, ProbeState>,
    /// Which servers each probe decides.
    users: HashMap<Probe, Vec<(ServiceKey, ServerAddr)>>,
    servers: HashMap<(ServiceKey, ServerAddr), Server>,
    services: HashMap<ServiceKey, Service>,
    /// Services in the configuration's order (reports).
    order: Vec<ServiceKey>,
    scripts: crate::script::Scripts,
    local_errors: HashMap<Probe, Instant>,
    /// Tests judge reports they make up: no checker runs.
    detached: bool,
}

fn service_key(s: &ServiceConfig) -> ServiceKey {
    (s.protocol, s.vip, s.port)
}

fn server_addr(s: &ServiceConfig, rs: &RealServerConfig) -> ServerAddr {
    (rs.address, rs.port.unwrap_or(s.port))
}

/// `TCP 198.51.100.100:80`.
pub fn service_name(key: &ServiceKey) -> String {
    format!("{:?} {}:{}", key.0, key.1, key.2)
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// The probe a checker of `rs` in `svc` runs, with keepalived's inheritance, and its label.
fn probe_of(svc: &ServiceConfig, rs: &RealServerConfig, check: &CheckConfig) -> Check {
    let t = check.timing();
    let pick = |own: Option<u32>, server: Option<u32>, service: Option<u32>, default: u32| {
        own.or(server).or(service).unwrap_or(default)
    };
    let delay_loop = pick(
        t.delay_loop,
        rs.delay_loop,
        svc.delay_loop,
        defaults::DELAY_LOOP,
    );
    let connect_timeout = pick(
        t.connect_timeout,
        rs.connect_timeout,
        svc.connect_timeout,
        defaults::CONNECT_TIMEOUT,
    );
    let target = SocketAddrV4::new(
        t.connect_ip.unwrap_or(rs.address),
        t.connect_port.unwrap_or(rs.port.unwrap_or(svc.port)),
    );
    let virtualhost = check
        .virtualhost()
        .or(rs.virtualhost.as_deref())
        .or(svc.virtualhost.as_deref())
        .map(str::to_owned);
    let (kind, what) = match check {
        CheckConfig::TCP_CHECK { .. } => (ProbeKind::Tcp, format!("{target}")),
        CheckConfig::HTTP_GET { url, .. } | CheckConfig::SSL_GET { url, .. } => {
            let tls = matches!(check, CheckConfig::SSL_GET { .. });
            let urls = url
                .iter()
                .map(|u| UrlCheck {
                    path: u.path.clone(),
                    status_code: u.status_code,
                    digest: u.digest.as_ref().map(|d| d.to_ascii_lowercase()),
                    virtualhost: u.virtualhost.clone(),
                })
                .collect::<Vec<_>>();
            let scheme = if tls { "https" } else { "http" };
            let first = urls.first().map_or("/", |u| u.path.as_str()).to_owned();
            let more = if urls.len() > 1 {
                format!(" (+{} URLs)", urls.len() - 1)
            } else {
                String::new()
            };
            (
                ProbeKind::Http {
                    tls,
                    urls,
                    virtualhost,
                },
                format!("{scheme}://{target}{first}{more}"),
            )
        }
        CheckConfig::MISC_CHECK {
            misc_path,
            misc_timeout,
            misc_dynamic,
            ..
        } => (
            ProbeKind::Misc {
                path: misc_path.clone(),
                timeout: secs(misc_timeout.unwrap_or(delay_loop)),
                dynamic: *misc_dynamic,
            },
            misc_path.clone(),
        ),
        CheckConfig::UDP_CHECK {
            payload,
            require_reply,
            ..
        } => (
            ProbeKind::Udp {
                // Checked when the file was read.
                payload: payload.as_deref().and_then(parse_hex).unwrap_or_default(),
                require_reply: require_reply.as_deref().and_then(parse_hex),
            },
            format!("{target}"),
        ),
        CheckConfig::PING_CHECK { .. } => (ProbeKind::Ping, format!("{}", target.ip())),
    };
    let probe = Probe {
        kind,
        target,
        bind: t.bindto,
        connect_timeout: secs(connect_timeout),
        delay_loop: secs(delay_loop),
        retry: pick(t.retry, rs.retry, svc.retry, defaults::RETRY),
        delay_before_retry: secs(pick(
            t.delay_before_retry,
            rs.delay_before_retry,
            svc.delay_before_retry,
            defaults::DELAY_BEFORE_RETRY,
        )),
        warmup: secs(pick(t.warmup, rs.warmup, svc.warmup, 0)),
        alpha: t.alpha.or(rs.alpha).unwrap_or(svc.alpha),
    };
    Check {
        probe,
        label: format!("{} {what}", check.name()),
    }
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    /// A `Health` that runs no checker: the caller feeds it reports ([`Health::take`]).
    pub fn detached() -> Health {
        Health {
            detached: true,
            ..Health::default()
        }
    }

    /// Takes `config`'s services, real servers and checkers: probes that stay keep their
    /// state, new ones start (down with `alpha`, else up until a check fails), gone ones stop.
    /// Starts the checker at the first probe.
    pub fn configure(&mut self, config: &Config) -> std::io::Result<()> {
        let mut probes: HashMap<Probe, ProbeState> = HashMap::new();
        let mut users: HashMap<Probe, Vec<(ServiceKey, ServerAddr)>> = HashMap::new();
        let mut servers = HashMap::new();
        let mut services = HashMap::new();
        let mut order = Vec::new();
        for svc in &config.services {
            let key = service_key(svc);
            let mut addrs = Vec::new();
            for rs in &svc.real_servers {
                let addr = server_addr(svc, rs);
                let checks: Vec<Check> = rs.checks.iter().map(|c| probe_of(svc, rs, c)).collect();
                for check in &checks {
                    let state = self.probes.get(&check.probe).cloned().unwrap_or_else(|| {
                        ProbeState {
                            up: !check.probe.alpha,
                            weight: None,
                            reason: if check.probe.alpha {
                                "alpha: down until a first check passes".to_owned()
                            } else {
                                // The checker reports changes only: a passing check says
                                // nothing until it fails.
                                "no check has failed".to_owned()
                            },
                        }
                    });
                    probes.insert(check.probe.clone(), state);
                    users
                        .entry(check.probe.clone())
                        .or_default()
                        .push((key, addr));
                }
                let old = self.servers.get(&(key, addr));
                let mut server = Server {
                    checks,
                    up: true,
                    weight: None,
                    reason: "no checker".to_owned(),
                    since: old.map_or_else(SystemTime::now, |o| o.since),
                    configured_weight: rs.weight,
                    inhibit: rs.inhibit_on_failure.unwrap_or(svc.inhibit_on_failure),
                    notify_up: rs.notify_up.clone(),
                    notify_down: rs.notify_down.clone(),
                };
                let (up, weight, reason) = verdict(&server.checks, &probes);
                server.up = up;
                server.weight = weight;
                if let Some(reason) = reason {
                    server.reason = reason;
                }
                if let Some(old) = old {
                    if old.up != server.up {
                        server.since = SystemTime::now();
                    }
                }
                servers.insert((key, addr), server);
                addrs.push(addr);
            }
            let quorum = svc.quorum.unwrap_or(defaults::QUORUM);
            let service = Service {
                servers: addrs,
                quorum,
                hysteresis: svc.hysteresis,
                quorum_met: true,
                sorry: svc
                    .sorry_server
                    .as_ref()
                    .map(|s| (s.address, s.port.unwrap_or(svc.port))),
                quorum_up: svc.quorum_up.clone(),
                quorum_down: svc.quorum_down.clone(),
                omega: svc.omega,
                expire_nodest_conn: svc.expire_nodest_conn,
            };
            let live = live_weight(&service, &servers, key);
            let met = match self.services.get(&key) {
                Some(old) => old.quorum_met,
                // A new service starts from what its servers say, and runs no script for it.
                None => live >= quorum,
            };
            services.insert(
                key,
                Service {
                    quorum_met: met,
                    ..service
                },
            );
            order.push(key);
        }
        self.probes = probes;
        self.users = users;
        self.servers = servers;
        self.services = services;
        self.order = order;
        self.local_errors.retain(|p, _| self.probes.contains_key(p));
        // A reload may have moved a service across its quorum.
        self.update_quorums();
        if self.checker.is_none() && !self.probes.is_empty() && !self.detached {
            self.checker = Some(Checker::start()?);
        }
        if let Some((checker, _)) = &self.checker {
            checker.set_probes(self.probes.keys().cloned().collect());
        }
        Ok(())
    }

    /// Takes the checker's reports: logs what changed, runs the scripts it calls for, reaps
    /// scripts that ended. Returns whether the services changed (a new snapshot is due).
    pub fn poll(&mut self) -> bool {
        let mut reports = Vec::new();
        if let Some((_, receiver)) = &self.checker {
            loop {
                match receiver.try_recv() {
                    Ok(report) => reports.push(report),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        warn!("the health checker stopped: real servers keep their last state");
                        self.checks_before = self.checks_done();
                        self.checker = None;
                        break;
                    }
                }
            }
        }
        let changed = self.take(reports);
        self.scripts.reap();
        changed
    }

    /// Judges `reports` (what [`Health::poll`] does with the checker's). Returns whether the
    /// services changed.
    pub fn take(&mut self, reports: impl IntoIterator<Item = Report>) -> bool {
        let mut touched: Vec<(ServiceKey, ServerAddr)> = Vec::new();
        for report in reports {
            let Some(state) = self.probes.get_mut(&report.probe) else {
                continue; // a probe of a configuration that is gone
            };
            match report.event {
                Event::Up { reason } => {
                    state.up = true;
                    state.reason = reason;
                }
                Event::Down { reason } => {
                    state.up = false;
                    state.weight = None;
                    state.reason = if report.probe.retry > 0 {
                        format!(
                            "{reason}, after {} {}",
                            report.probe.retry,
                            if report.probe.retry == 1 {
                                "retry"
                            } else {
                                "retries"
                            }
                        )
                    } else {
                        reason
                    };
                }
                Event::Weight { weight, reason } => {
                    state.up = true;
                    state.weight = Some(weight);
                    state.reason = reason;
                }
                Event::LocalError { reason } => {
                    self.local_error(&report.probe, &reason);
                    continue;
                }
            }
            if let Some(users) = self.users.get(&report.probe) {
                for user in users {
                    if !touched.contains(user) {
                        touched.push(*user);
                    }
                }
            }
        }
        if touched.is_empty() {
            // No server's verdict moved, so no service's live weight did: nothing to weigh
            // (a walk over every server, which the control loop must not do every turn).
            return false;
        }
        let mut changed = false;
        for key in touched {
            changed |= self.update_server(key);
        }
        changed | self.update_quorums()
    }

    /// Logs an error of the appliance's own, at most once a minute per probe.
    fn local_error(&mut self, probe: &Probe, reason: &str) {
        let now = Instant::now();
        let due = self
            .local_errors
            .get(probe)
            .is_none_or(|last| now.duration_since(*last) >= LOCAL_ERROR_LOG_EVERY);
        if !due {
            return;
        }
        self.local_errors.insert(probe.clone(), now);
        let who = self.users.get(probe).and_then(|u| u.first());
        let name = who.map_or_else(String::new, |(s, a)| {
            format!(" of {}:{} ({})", a.0, a.1, service_name(s))
        });
        warn!(
            "health check{name} cannot run: {reason}: an error of this appliance, not counted \
             against the real server (its state stays; logged once a minute)"
        );
    }

    /// Re-judges one server from its probes; logs and notifies a change.
    fn update_server(&mut self, key: (ServiceKey, ServerAddr)) -> bool {
        let Some(server) = self.servers.get_mut(&key) else {
            return false;
        };
        let (up, weight, reason) = verdict(&server.checks, &self.probes);
        let reason = reason.unwrap_or_else(|| server.reason.clone());
        let was = (server.up, server.live_weight());
        server.reason = reason.clone();
        server.weight = weight;
        if server.up == up {
            if up && was.1 != server.live_weight() {
                info!(
                    "real server {}:{} of {}: weight {} ({reason})",
                    key.1 .0,
                    key.1 .1,
                    service_name(&key.0),
                    server.live_weight()
                );
                return true;
            }
            return false;
        }
        server.up = up;
        server.since = SystemTime::now();
        let name = format!(
            "real server {}:{} of {}",
            key.1 .0,
            key.1 .1,
            service_name(&key.0)
        );
        let expire = self
            .services
            .get(&key.0)
            .is_some_and(|s| s.expire_nodest_conn);
        if up {
            info!(
                "{name}: up ({reason}): back in the scheduler at weight {}",
                server.live_weight()
            );
        } else if server.inhibit {
            warn!("{name}: down ({reason}): weight 0 (inhibit_on_failure), its connections drain");
        } else if expire {
            warn!(
                "{name}: down ({reason}): out of the scheduler, its connections are reset at \
                 their next packet (expire_nodest_conn)"
            );
        } else {
            warn!("{name}: down ({reason}): out of the scheduler, its connections drain");
        }
        let script = if up {
            server.notify_up.clone()
        } else {
            server.notify_down.clone()
        };
        if let Some(script) = script {
            let what = format!("{} of {name}", if up { "notify_up" } else { "notify_down" });
            self.scripts.run(&script, &[], what);
        }
        true
    }

    /// Moves every service across its quorum where its live weight says so; runs the scripts.
    fn update_quorums(&mut self) -> bool {
        let mut changed = false;
        let mut scripts = Vec::new();
        for key in &self.order {
            let Some(service) = self.services.get(key) else {
                continue;
            };
            let live = live_weight(service, &self.servers, *key);
            let met = if service.quorum_met {
                live + service.hysteresis >= service.quorum
            } else {
                live >= service.quorum + service.hysteresis
            };
            if met == service.quorum_met {
                continue;
            }
            let name = service_name(key);
            let sorry = service.sorry.map(|(a, p)| format!("{a}:{p}"));
            if met {
                info!(
                    "{name}: quorum gained (live weight {live}, quorum {}){}",
                    service.quorum,
                    sorry.map_or(String::new(), |s| format!("; the sorry server {s} leaves"))
                );
            } else {
                warn!(
                    "{name}: quorum lost (live weight {live}, quorum {}){}",
                    service.quorum,
                    sorry.map_or(String::new(), |s| format!(
                        "; the sorry server {s} takes the traffic"
                    ))
                );
            }
            let script = if met {
                service.quorum_up.clone()
            } else {
                service.quorum_down.clone()
            };
            if let Some(script) = script {
                let what = format!(
                    "{} of {name}",
                    if met { "quorum_up" } else { "quorum_down" }
                );
                scripts.push((script, what));
            }
            if let Some(service) = self.services.get_mut(key) {
                service.quorum_met = met;
            }
            changed = true;
        }
        for (script, what) in scripts {
            self.scripts.run(&script, &[], what);
        }
        changed
    }

    /// `config` as the checks leave it: down servers out (or at weight 0 with
    /// `inhibit_on_failure`), misc_dynamic weights, the sorry server in while the quorum is
    /// lost.
    pub fn apply(&self, config: &Config) -> Config {
        let mut out = config.clone();
        for svc in &mut out.services {
            let key = service_key(svc);
            let Some(service) = self.services.get(&key) else {
                continue;
            };
            let port = svc.port;
            svc.real_servers.retain_mut(|rs| {
                let addr = (rs.address, rs.port.unwrap_or(port));
                let Some(server) = self.servers.get(&(key, addr)) else {
                    return true;
                };
                if server.up {
                    rs.weight = server.live_weight();
                    true
                } else if server.inhibit {
                    rs.weight = 0;
                    true
                } else {
                    false
                }
            });
            if !service.quorum_met {
                if let Some((address, sorry_port)) = service.sorry {
                    let mut sorry = sorry_server(address, sorry_port);
                    // As any other: replaces a real server of the same address.
                    svc.real_servers.retain(|rs| {
                        (rs.address, rs.port.unwrap_or(port)) != (address, sorry_port)
                    });
                    sorry.port = Some(sorry_port);
                    svc.real_servers.push(sorry);
                }
            }
        }
        out
    }

    /// `config` with every sorry server among its service's real servers (at weight 0): the
    /// next hops to keep resolved, so that a server or a sorry server that comes in finds its
    /// neighbour known.
    pub fn everyone(&self, config: &Config) -> Config {
        let mut out = config.clone();
        for svc in &mut out.services {
            if let Some(sorry) = &svc.sorry_server {
                let mut rs = sorry_server(sorry.address, sorry.port.unwrap_or(svc.port));
                rs.weight = 0;
                svc.real_servers.push(rs);
            }
        }
        out
    }

    /// Every service's health, in the configuration's order.
    pub fn report(&self) -> Vec<ServiceHealth> {
        self.order
            .iter()
            .filter_map(|key| {
                let service = self.services.get(key)?;
                let real_servers = service
                    .servers
                    .iter()
                    .filter_map(|addr| {
                        let s = self.servers.get(&(*key, *addr))?;
                        Some(ServerHealth {
                            address: format!("{}:{}", addr.0, addr.1),
                            up: s.up,
                            weight: if s.up { s.live_weight() } else { 0 },
                            checks: s.checks.len(),
                            reason: s.reason.clone(),
                            since_unix: s
                                .since
                                .duration_since(SystemTime::UNIX_EPOCH)
                                .map_or(0, |d| d.as_secs()),
                        })
                    })
                    .collect();
                Some(ServiceHealth {
                    service: service_name(key),
                    quorum: service.quorum,
                    live_weight: live_weight(service, &self.servers, *key),
                    quorum_met: service.quorum_met,
                    sorry_server: (!service.quorum_met)
                        .then_some(service.sorry)
                        .flatten()
                        .map(|(a, p)| format!("{a}:{p}")),
                    real_servers,
                })
            })
            .collect()
    }

    /// Probes being run (identical ones counted once).
    pub fn probes(&self) -> usize {
        self.probes.len()
    }

    /// Checks the checker completed so far (retries included).
    pub fn checks_done(&self) -> u64 {
        self.checks_before + self.checker.as_ref().map_or(0, |(c, _)| c.completed())
    }

    /// Whether each service has its quorum (VRRP's `track_service`).
    pub fn quorums(&self) -> Vec<(ServiceKey, bool)> {
        self.services
            .iter()
            .map(|(k, s)| (*k, s.quorum_met))
            .collect()
    }

    /// Stops the checks. With `omega`, first runs the down scripts that apply (notify_down of
    /// each live server, quorum_down of each service with its quorum), and waits up to
    /// `wait` for every script to end.
    pub fn shutdown(&mut self, wait: Duration) {
        self.checks_before = self.checks_done();
        self.checker = None;
        let mut scripts = Vec::new();
        for key in &self.order {
            let Some(service) = self.services.get(key).filter(|s| s.omega) else {
                continue;
            };
            for addr in &service.servers {
                if let Some(s) = self.servers.get(&(*key, *addr)).filter(|s| s.up) {
                    if let Some(script) = &s.notify_down {
                        scripts.push((
                            script.clone(),
                            format!(
                                "notify_down (omega) of real server {}:{} of {}",
                                addr.0,
                                addr.1,
                                service_name(key)
                            ),
                        ));
                    }
                }
            }
            if service.quorum_met {
                if let Some(script) = &service.quorum_down {
                    scripts.push((
                        script.clone(),
                        format!("quorum_down (omega) of {}", service_name(key)),
                    ));
                }
            }
        }
        for (script, what) in scripts {
            self.scripts.run(&script, &[], what);
        }
        self.scripts.finish(wait);
    }
}

/// A server's verdict from its checks' states: up while all pass (keepalived's rule), the
/// weight a misc_dynamic check set, and the reason to show (the first failing check's, else
/// the last check's).
fn verdict(
    checks: &[Check],
    probes: &HashMap<Probe, ProbeState>,
) -> (bool, Option<u32>, Option<String>) {
    let mut weight = None;
    let mut last = None;
    for check in checks {
        let Some(state) = probes.get(&check.probe) else {
            continue;
        };
        if !state.up {
            return (
                false,
                None,
                Some(format!("{}: {}", check.label, state.reason)),
            );
        }
        weight = state.weight.or(weight);
        last = Some(format!("{}: {}", check.label, state.reason));
    }
    (true, weight, last)
}

/// The live weight of `service`: the weights of its servers that are up.
fn live_weight(
    service: &Service,
    servers: &HashMap<(ServiceKey, ServerAddr), Server>,
    key: ServiceKey,
) -> u32 {
    service
        .servers
        .iter()
        .filter_map(|a| servers.get(&(key, *a)))
        .filter(|s| s.up)
        .map(Server::live_weight)
        .sum()
}

fn sorry_server(address: Ipv4Addr, port: u16) -> RealServerConfig {
    RealServerConfig {
        address,
        port: Some(port),
        weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
        checks: Vec::new(),
        notify_up: None,
        notify_down: None,
        inhibit_on_failure: None,
        alpha: None,
        delay_loop: None,
        connect_timeout: None,
        retry: None,
        delay_before_retry: None,
        warmup: None,
        virtualhost: None,
    }
}

/// One service's health, for the stats file and the counters table.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceHealth {
    pub service: String,
    pub quorum: u32,
    /// The weights of its live real servers.
    pub live_weight: u32,
    pub quorum_met: bool,
    /// The sorry server, while it takes the traffic.
    pub sorry_server: Option<String>,
    pub real_servers: Vec<ServerHealth>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerHealth {
    pub address: String,
    pub up: bool,
    /// What the scheduler gives it now (0 while down).
    pub weight: u32,
    /// Checkers it has (0: always up).
    pub checks: usize,
    /// The last verdict, e.g. "HTTP_GET http://203.0.113.12:80/: status 500".
    pub reason: String,
    /// When it last went up or down (Unix seconds).
    pub since_unix: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    /// Three real servers with an HTTP_GET each (one of them also a TCP_CHECK on another
    /// port), a sorry server, quorum 2 with hysteresis 1; a second service shares rs1's probe.
    const CONFIG: &str = r#"(
        workers: [0],
        ports: [(name: "p", device: "net_null0", addresses: ["203.0.113.1/24"], kernel: false)],
        services: [
            (protocol: TCP, vip: "203.0.113.100", port: 80, lb_kind: NAT, lb_algo: "rr",
             delay_loop: 3, quorum: 2, hysteresis: 1,
             quorum_up: "/bin/true up", quorum_down: "/bin/true down",
             sorry_server: (address: "203.0.113.50", port: 8080),
             real_servers: [
                (address: "203.0.113.11", weight: 2,
                 checks: [HTTP_GET(url: [(path: "/", status_code: 200)])]),
                (address: "203.0.113.12",
                 checks: [HTTP_GET(url: [(path: "/", status_code: 200)]),
                          TCP_CHECK(connect_port: 22)]),
                (address: "203.0.113.13", inhibit_on_failure: true,
                 checks: [MISC_CHECK(misc_path: "/bin/check 13", misc_dynamic: true)]),
             ]),
            (protocol: UDP, vip: "203.0.113.100", port: 80, lb_kind: NAT, lb_algo: "rr",
             delay_loop: 3,
             real_servers: [
                (address: "203.0.113.11",
                 checks: [HTTP_GET(url: [(path: "/", status_code: 200)])]),
             ]),
        ],
    )"#;

    fn config(text: &str) -> Config {
        config::parse_with_cores(std::path::Path::new("t.ron"), text.to_owned(), &[0])
            .unwrap_or_else(|e| panic!("{e}"))
            .config
    }

    fn probe(h: &Health, target: &str, tcp: bool) -> Probe {
        h.probes
            .keys()
            .find(|p| p.target.to_string() == target && matches!(p.kind, ProbeKind::Tcp) == tcp)
            .cloned()
            .unwrap_or_else(|| panic!("no probe for {target}"))
    }

    fn down(probe: &Probe, reason: &str) -> Report {
        Report {
            probe: probe.clone(),
            event: Event::Down {
                reason: reason.to_owned(),
            },
        }
    }

    fn up(probe: &Probe) -> Report {
        Report {
            probe: probe.clone(),
            event: Event::Up {
                reason: "status 200".to_owned(),
            },
        }
    }

    /// The real servers of service `i` in `c`: (address, weight).
    fn reals(c: &Config, i: usize) -> Vec<(String, u32)> {
        c.services[i]
            .real_servers
            .iter()
            .map(|rs| {
                (
                    format!("{}:{}", rs.address, rs.port.unwrap_or(c.services[i].port)),
                    rs.weight,
                )
            })
            .collect()
    }

    fn names(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter().map(|(a, w)| (a.to_string(), *w)).collect()
    }

    #[test]
    fn probes_inherit_timing_and_identical_ones_are_shared() {
        let c = config(CONFIG);
        let mut h = Health::detached();
        h.configure(&c).unwrap();
        // rs1's HTTP_GET is the same probe in both services; rs2 has two.
        assert_eq!(h.probes(), 4);
        let p = probe(&h, "203.0.113.11:80", false);
        assert_eq!(h.users[&p].len(), 2);
        assert_eq!(
            p.delay_loop,
            Duration::from_secs(3),
            "the service's delay_loop"
        );
        assert_eq!(
            p.connect_timeout,
            Duration::from_secs(5),
            "keepalived's default"
        );
        assert_eq!((p.retry, p.alpha), (1, false));
        let tcp = probe(&h, "203.0.113.12:22", true);
        assert_eq!(tcp.target.port(), 22, "connect_port");
        let misc = h
            .probes
            .keys()
            .find(|p| matches!(p.kind, ProbeKind::Misc { .. }))
            .unwrap();
        assert_eq!(
            misc.kind,
            ProbeKind::Misc {
                path: "/bin/check 13".into(),
                timeout: Duration::from_secs(3),
                dynamic: true
            },
            "misc_timeout defaults to the delay_loop"
        );
        // Nothing failed yet: everyone in, as configured.
        assert_eq!(
            reals(&h.apply(&c), 0),
            names(&[
                ("203.0.113.11:80", 2),
                ("203.0.113.12:80", 1),
                ("203.0.113.13:80", 1)
            ])
        );
    }

    #[test]
    fn a_server_is_up_while_all_its_checks_pass() {
        let c = config(CONFIG);
        let mut h = Health::detached();
        h.configure(&c).unwrap();
        let tcp = probe(&h, "203.0.113.12:22", true);
        assert!(h.take([down(&tcp, "refused")]));
        let applied = h.apply(&c);
        assert_eq!(
            reals(&applied, 0),
            names(&[("203.0.113.11:80", 2), ("203.0.113.13:80", 1)])
        );
        let report = h.report();
        let rs2 = &report[0].real_servers[1];
        assert!(!rs2.up);
        assert_eq!(
            rs2.reason,
            "TCP_CHECK 203.0.113.12:22: refused, after 1 retry"
        );
        // The HTTP check passing again changes nothing while the TCP one fails.
        let http = probe(&h, "203.0.113.12:80", false);
        assert!(!h.take([up(&http)]));
        assert!(h.take([up(&tcp)]));
        assert_eq!(reals(&h.apply(&c), 0).len(), 3);
    }

    #[test]
    fn inhibit_keeps_a_failed_server_at_weight_0_and_misc_dynamic_sets_weights() {
        let c = config(CONFIG);
        let mut h = Health::detached();
        h.configure(&c).unwrap();
        let misc = h
            .probes
            .keys()
            .find(|p| matches!(p.kind, ProbeKind::Misc { .. }))
            .cloned()
            .unwrap();
        assert!(h.take([Report {
            probe: misc.clone(),
            event: Event::Weight {
                weight: 5,
                reason: "exit 7".into()
            },
        }]));
        assert_eq!(reals(&h.apply(&c), 0)[2], ("203.0.113.13:80".into(), 5));
        assert!(h.take([down(&misc, "exit code 1")]));
        assert_eq!(
            reals(&h.apply(&c), 0)[2],
            ("203.0.113.13:80".into(), 0),
            "inhibit_on_failure: stays at weight 0"
        );
    }

    #[test]
    fn quorum_with_hysteresis_and_the_sorry_server() {
        let c = config(CONFIG);
        let mut h = Health::detached();
        h.configure(&c).unwrap();
        let rs1 = probe(&h, "203.0.113.11:80", false);
        let rs2 = probe(&h, "203.0.113.12:80", false);
        let misc = h
            .probes
            .keys()
            .find(|p| matches!(p.kind, ProbeKind::Misc { .. }))
            .cloned()
            .unwrap();
        // Live weight 4 (2 + 1 + 1), quorum 2, hysteresis 1: lost below 1, gained at 3.
        h.take([down(&rs1, "refused")]);
        assert!(h.report()[0].quorum_met, "live weight 2");
        h.take([down(&rs2, "refused")]);
        assert!(
            h.report()[0].quorum_met,
            "live weight 1: within the hysteresis"
        );
        assert!(h.take([down(&misc, "exit code 1")]));
        let report = h.report();
        assert!(!report[0].quorum_met);
        assert_eq!(report[0].sorry_server.as_deref(), Some("203.0.113.50:8080"));
        assert_eq!(
            reals(&h.apply(&c), 0),
            names(&[("203.0.113.13:80", 0), ("203.0.113.50:8080", 1)]),
            "the sorry server takes the traffic (the inhibited server stays at 0)"
        );
        assert_eq!(h.scripts.len(), 1, "quorum_down ran once");
        // Back: weight 2 is not enough (quorum + hysteresis = 3), 2 + 1 is.
        h.take([up(&rs1)]);
        assert!(!h.report()[0].quorum_met);
        h.take([up(&rs2)]);
        assert!(h.report()[0].quorum_met);
        assert_eq!(
            reals(&h.apply(&c), 0),
            names(&[
                ("203.0.113.11:80", 2),
                ("203.0.113.12:80", 1),
                ("203.0.113.13:80", 0)
            ])
        );
        h.shutdown(Duration::from_secs(5));
        assert!(h.scripts.is_empty());
    }

    #[test]
    fn state_survives_a_reload_for_the_probes_that_stay() {
        let c = config(CONFIG);
        let mut h = Health::detached();
        h.configure(&c).unwrap();
        let rs1 = probe(&h, "203.0.113.11:80", false);
        let tcp = probe(&h, "203.0.113.12:22", true);
        h.take([down(&rs1, "refused"), down(&tcp, "refused")]);
        // The reload changes rs2's TCP check (a new probe, state afresh) and keeps rs1's.
        let reloaded = config(&CONFIG.replace("connect_port: 22", "connect_port: 2222"));
        h.configure(&reloaded).unwrap();
        let report = h.report();
        assert!(!report[0].real_servers[0].up, "rs1 stays down");
        assert!(report[0].real_servers[1].up, "rs2's new check starts up");
        assert!(
            !report[1].real_servers[0].up,
            "the UDP service shares rs1's probe"
        );
        assert_eq!(h.probes(), 4);
        // A report of the old probe is ignored.
        assert!(!h.take([up(&tcp)]));
    }

    #[test]
    fn alpha_starts_down_until_a_first_success() {
        let c = config(&CONFIG.replace(
            "delay_loop: 3, quorum",
            "delay_loop: 3, alpha: true, quorum",
        ));
        let mut h = Health::detached();
        h.configure(&c).unwrap();
        let report = h.report();
        assert!(report[0].real_servers.iter().all(|s| !s.up));
        assert!(!report[0].quorum_met);
        assert_eq!(
            reals(&h.apply(&c), 0),
            names(&[("203.0.113.13:80", 0), ("203.0.113.50:8080", 1)]),
            "nobody but the sorry server (and the inhibited server at 0)"
        );
        assert!(
            h.scripts.is_empty(),
            "a service starting without quorum runs no script"
        );
        // alpha is the first service's: its probe of rs1 is not the UDP service's any more.
        assert_eq!(h.probes(), 5);
        let rs1 = h
            .probes
            .keys()
            .find(|p| p.alpha && p.target.to_string() == "203.0.113.11:80")
            .cloned()
            .unwrap();
        h.take([up(&rs1)]);
        assert_eq!(
            reals(&h.apply(&c), 0),
            names(&[
                ("203.0.113.11:80", 2),
                ("203.0.113.13:80", 0),
                ("203.0.113.50:8080", 1)
            ]),
            "rs1, rs3 at 0 and still the sorry server (live weight 2 < quorum + hysteresis)"
        );
        assert_eq!(
            reals(&h.apply(&c), 1).len(),
            1,
            "rs1 in the UDP service, never down"
        );
    }

    #[test]
    fn local_errors_change_nothing() {
        let c = config(CONFIG);
        let mut h = Health::detached();
        h.configure(&c).unwrap();
        let rs1 = probe(&h, "203.0.113.11:80", false);
        let error = Report {
            probe: rs1,
            event: Event::LocalError {
                reason: "connect: Too many open files".into(),
            },
        };
        assert!(!h.take([error.clone(), error]));
        assert!(h.report()[0].real_servers[0].up);
    }

    #[test]
    fn omega_runs_the_down_scripts_at_stop() {
        let dir = std::env::temp_dir().join(format!("rvs-omega-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mark = dir.join("down");
        let text = CONFIG
            .replace(
                "delay_loop: 3, quorum",
                "delay_loop: 3, omega: true, quorum",
            )
            .replace(
                "quorum_down: \"/bin/true down\"",
                &format!("quorum_down: \"/usr/bin/touch {}\"", mark.display()),
            );
        let c = config(&text);
        let mut h = Health::detached();
        h.configure(&c).unwrap();
        h.shutdown(Duration::from_secs(5));
        assert!(mark.exists(), "quorum_down ran at stop");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
