//! Failover with VRRP, as keepalived speaks it: the instances of the configuration, their
//! sync groups and tracks, the adverts and gratuitous ARPs they send, the notify scripts they
//! run, and what their states mean for the data plane (`apply`: an address is served only
//! while its instance is MASTER). Sans-IO apart from the scripts: frames in (from the slow
//! path), frames out (for the control thread's transmit path), the time passed in.

pub mod machine;
pub mod wire;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::vrrp::{parse_service_name, VrrpInstance};
use crate::config::{Config, Protocol};
use dataplane::snapshot::Snapshot;
use machine::{Action, Instance, Params, State};
use wire::Refusal;

/// A frame to send out of `port`. `to` is the unicast peer whose MAC the caller fills in
/// (from its neighbour table); `None`: the frame is complete (multicast, broadcast).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub port: usize,
    pub to: Option<Ipv4Addr>,
    pub bytes: Vec<u8>,
}

/// Counters of the VRRP path.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    pub adverts_received: u64,
    pub adverts_sent: u64,
    pub gratuitous_arps_sent: u64,
    /// Adverts refused, by reason (`wire::Refusal::name`).
    pub refused: Vec<(&'static str, u64)>,
}

/// One instance as reported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstanceReport {
    pub name: String,
    /// The port it runs on (keepalived's `interface`), its VRID, the addresses it holds.
    pub interface: String,
    pub vrid: u8,
    pub addresses: Vec<String>,
    pub state: &'static str,
    pub priority: u8,
    pub since_unix_ms: u64,
}

type ServiceKey = (Protocol, Ipv4Addr, u16);

struct Inst {
    name: String,
    /// Its port's name (keepalived's `interface`) and its VRID, for the reports.
    interface: String,
    vrid: u8,
    port: usize,
    m: Instance,
    held: Vec<crate::config::Ipv4Cidr>,
    peers: Vec<Ipv4Addr>,
    src: Ipv4Addr,
    group: Option<usize>,
    garp_repeat: u32,
    garp_delay: Duration,
    garp_refresh: Duration,
    garp_round: Option<Instant>,
    garp_refresh_at: Option<Instant>,
    track_ports: Vec<usize>,
    track_scripts: Vec<usize>,
    track_services: Vec<ServiceKey>,
    notify_master: Option<String>,
    notify_backup: Option<String>,
    notify_fault: Option<String>,
    notify_stop: Option<String>,
    notify: Option<String>,
    ip_id: u16,
    since: std::time::SystemTime,
    /// Its own tracks are bad.
    faulty: bool,
}

struct Group {
    name: String,
    members: Vec<usize>,
    notify_master: Option<String>,
    notify_backup: Option<String>,
    notify_fault: Option<String>,
    notify_stop: Option<String>,
    notify: Option<String>,
    state: State,
}

struct TrackScript {
    name: String,
    script: String,
    interval: Duration,
    timeout: Duration,
    weight: i32,
    fall: u32,
    rise: u32,
    /// Counts toward fall (negative) or rise (positive).
    streak: i64,
    ok: bool,
    child: Option<(Child, Instant)>,
    next: Instant,
}

/// Every instance of the configuration.
pub struct Vrrp {
    insts: Vec<Inst>,
    groups: Vec<Group>,
    tracks: Vec<TrackScript>,
    macs: Vec<[u8; 6]>,
    /// Every address of every port: adverts from them are our own.
    own: Vec<Ipv4Addr>,
    links: Vec<bool>,
    quorums: HashMap<ServiceKey, bool>,
    scripts: crate::script::Scripts,
    counters: Counters,
    refused: HashMap<Refusal, u64>,
    changed: bool,
    started: bool,
}

impl Vrrp {
    /// The instances of `c` (none: an empty, idle `Vrrp`). Validation has checked names.
    pub fn new(c: &Config, macs: &[[u8; 6]], now: Instant) -> Self {
        let port_of = |name: &str| c.ports.iter().position(|p| p.name == name);
        let mut insts: Vec<Inst> = c
            .vrrp_instances
            .iter()
            .map(|v| {
                let port = port_of(&v.interface).unwrap_or(0);
                let src = v
                    .unicast_src_ip
                    .or_else(|| c.ports[port].addresses.first().map(|a| a.addr))
                    .unwrap_or(Ipv4Addr::UNSPECIFIED);
                Inst {
                    name: v.name.clone(),
                    interface: v.interface.clone(),
                    vrid: v.virtual_router_id,
                    port,
                    m: Instance::new(params(v, src)),
                    held: v.virtual_ipaddress.clone(),
                    peers: v.unicast_peer.clone(),
                    src,
                    group: None,
                    garp_repeat: v.garp_master_repeat,
                    garp_delay: Duration::from_secs(u64::from(v.garp_master_delay)),
                    garp_refresh: Duration::from_secs(u64::from(v.garp_master_refresh)),
                    garp_round: None,
                    garp_refresh_at: None,
                    track_ports: v
                        .track_interface
                        .iter()
                        .filter_map(|t| port_of(t))
                        .collect(),
                    track_scripts: v
                        .track_script
                        .iter()
                        .filter_map(|t| c.vrrp_scripts.iter().position(|s| &s.name == t))
                        .collect(),
                    track_services: v
                        .track_service
                        .iter()
                        .filter_map(|t| parse_service_name(t))
                        .collect(),
                    notify_master: v.notify_master.clone(),
                    notify_backup: v.notify_backup.clone(),
                    notify_fault: v.notify_fault.clone(),
                    notify_stop: v.notify_stop.clone(),
                    notify: v.notify.clone(),
                    ip_id: 0,
                    since: std::time::SystemTime::now(),
                    faulty: false,
                }
            })
            .collect();
        let groups = c
            .vrrp_sync_groups
            .iter()
            .enumerate()
            .map(|(g, sg)| {
                let members: Vec<usize> = sg
                    .group
                    .iter()
                    .filter_map(|n| insts.iter().position(|i| &i.name == n))
                    .collect();
                for &m in &members {
                    insts[m].group = Some(g);
                }
                Group {
                    name: sg.name.clone(),
                    members,
                    notify_master: sg.notify_master.clone(),
                    notify_backup: sg.notify_backup.clone(),
                    notify_fault: sg.notify_fault.clone(),
                    notify_stop: sg.notify_stop.clone(),
                    notify: sg.notify.clone(),
                    state: State::Init,
                }
            })
            .collect();
        let tracks = c
            .vrrp_scripts
            .iter()
            .map(|s| TrackScript {
                name: s.name.clone(),
                script: s.script.clone(),
                interval: Duration::from_secs(u64::from(s.interval)),
                timeout: Duration::from_secs(u64::from(s.timeout.unwrap_or(s.interval))),
                weight: s.weight,
                fall: s.fall,
                rise: s.rise,
                streak: 0,
                // keepalived starts a script as failed until it has run, unless weighted.
                ok: s.weight != 0,
                child: None,
                next: now,
            })
            .collect();
        Vrrp {
            insts,
            groups,
            tracks,
            macs: macs.to_vec(),
            own: c
                .ports
                .iter()
                .flat_map(|p| p.addresses.iter().map(|a| a.addr))
                .collect(),
            links: vec![true; c.ports.len()],
            quorums: HashMap::new(),
            scripts: crate::script::Scripts::default(),
            counters: Counters::default(),
            refused: HashMap::new(),
            changed: false,
            started: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.insts.is_empty()
    }

    /// Starts every instance: BACKUP (or MASTER for an address owner, or FAULT where a track
    /// is already bad).
    pub fn start(&mut self, links: &[bool], now: Instant) -> Vec<Frame> {
        let mut out = Vec::new();
        self.links = links.to_vec();
        self.started = true;
        for i in 0..self.insts.len() {
            let actions = self.insts[i].m.start(now);
            self.act(i, actions, now, true, &mut out);
        }
        self.refresh_faults(now, &mut out);
        out
    }

    /// When `tick` next has work (an advert, a down timer, a gratuitous ARP round, a script
    /// to start). A running script is looked at on every tick, which the caller makes at
    /// least every turn of its loop (20 ms), so it sets no deadline.
    pub fn deadline(&self) -> Option<Instant> {
        let timers = self.insts.iter().flat_map(|i| {
            [i.m.deadline(), i.garp_round, i.garp_refresh_at]
                .into_iter()
                .flatten()
        });
        let scripts = self
            .tracks
            .iter()
            .filter(|t| t.child.is_none())
            .map(|t| t.next);
        timers.chain(scripts).min()
    }

    /// Runs the timers that are due, the gratuitous ARP rounds, the tracked scripts.
    pub fn tick(&mut self, now: Instant) -> Vec<Frame> {
        let mut out = Vec::new();
        if !self.started {
            return out;
        }
        for i in 0..self.insts.len() {
            // keepalived's sync group rule: a member whose master went silent moves only when
            // every member's has (one still hearing a master holds the group back).
            if self.insts[i].m.due(now) {
                if let Some(g) = self.insts[i].group {
                    let ready = self.groups[g].members.iter().all(|&m| {
                        m == i
                            || self.insts[m].m.ready_for_master(now)
                            || self.insts[m].m.state() == State::Master
                    });
                    if !ready {
                        self.insts[i].m.hold(now);
                        continue;
                    }
                }
            }
            if self.insts[i].m.state() == State::Backup && self.insts[i].m.due(now) {
                // keepalived's words for a master gone silent.
                info!("({}) Receive advertisement timeout", self.insts[i].name);
            }
            let actions = self.insts[i].m.tick(now);
            self.act(i, actions, now, true, &mut out);
            let inst = &mut self.insts[i];
            if inst.m.state() == State::Master {
                let due_round = inst.garp_round.is_some_and(|t| now >= t);
                let due_refresh = inst.garp_refresh_at.is_some_and(|t| now >= t);
                if due_round {
                    inst.garp_round = None;
                }
                if due_refresh {
                    inst.garp_refresh_at = Some(now + inst.garp_refresh);
                }
                if due_round || due_refresh {
                    self.garps(i, &mut out);
                }
            }
        }
        if self.run_tracks(now) {
            self.refresh_faults(now, &mut out);
        }
        self.scripts.reap();
        out
    }

    /// An advert from the slow path, received on `port`.
    pub fn receive(&mut self, port: usize, frame: &[u8], now: Instant) -> Vec<Frame> {
        let mut out = Vec::new();
        let got = match wire::parse(frame) {
            Ok(got) => got,
            Err(why) => {
                *self.refused.entry(why).or_default() += 1;
                return out;
            }
        };
        match self.accept(port, &got) {
            Ok(i) => {
                self.counters.adverts_received += 1;
                let actions = self.insts[i].m.advert(now, got.src, &got.advert);
                self.act(i, actions, now, true, &mut out);
            }
            Err(why) => *self.refused.entry(why).or_default() += 1,
        }
        out
    }

    /// The instance an advert is for, or why none takes it (RFC 5798 7.1, keepalived's order).
    fn accept(&self, port: usize, got: &wire::Received) -> Result<usize, Refusal> {
        if self.own.contains(&got.src) || self.macs.contains(&got.src_mac) {
            return Err(Refusal::FromSelf);
        }
        let i = self
            .insts
            .iter()
            .position(|i| i.port == port && i.m.p.vrid == got.advert.vrid)
            .ok_or(Refusal::Vrid)?;
        let inst = &self.insts[i];
        if got.advert.version != inst.m.p.version {
            return Err(Refusal::Version);
        }
        if inst.peers.is_empty() {
            if got.dst != wire::GROUP {
                return Err(Refusal::NotPeer);
            }
            // One hop only; keepalived checks it on the group, not for unicast peers.
            if got.ttl != wire::TTL {
                return Err(Refusal::Ttl);
            }
        } else if !inst.peers.contains(&got.src) {
            return Err(Refusal::NotPeer);
        }
        if inst.m.p.version == 2 {
            if got.advert.password != inst.m.p.password {
                return Err(Refusal::Auth);
            }
            if got.advert.interval != inst.m.p.interval {
                return Err(Refusal::Interval);
            }
        }
        let mine = &inst.m.p.addresses;
        if got.advert.addresses.len() != mine.len()
            || mine.iter().any(|a| !got.advert.addresses.contains(a))
        {
            return Err(Refusal::Addresses);
        }
        Ok(i)
    }

    /// The ports' links as the control thread last read them.
    pub fn set_links(&mut self, links: &[bool], now: Instant) -> Vec<Frame> {
        let mut out = Vec::new();
        if links != self.links.as_slice() {
            self.links = links.to_vec();
            self.refresh_faults(now, &mut out);
        }
        out
    }

    /// Whether each tracked service has its checkers' quorum.
    pub fn set_quorums(
        &mut self,
        quorums: impl IntoIterator<Item = (ServiceKey, bool)>,
        now: Instant,
    ) -> Vec<Frame> {
        let mut out = Vec::new();
        let new: HashMap<ServiceKey, bool> = quorums.into_iter().collect();
        if new != self.quorums {
            self.quorums = new;
            self.refresh_faults(now, &mut out);
        }
        out
    }

    /// A clean stop: every master says goodbye (priority 0); notify_stop runs.
    pub fn stop(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        let now = Instant::now();
        for i in 0..self.insts.len() {
            let actions = self.insts[i].m.stop();
            self.act(i, actions, now, false, &mut out);
        }
        for g in 0..self.groups.len() {
            self.group_notify(g, State::Stopped);
        }
        out
    }

    /// Waits for the notify scripts of the stop (bounded), then kills what still runs.
    pub fn finish(&mut self, wait: Duration) {
        for t in &mut self.tracks {
            if let Some((mut child, _)) = t.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.scripts.finish(wait);
    }

    /// Whether a state changed since the last call (the data plane needs a new snapshot).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The data plane as the states say: an address of an instance that is not MASTER is
    /// nobody's on this appliance (no ARP, no ping, its traffic dropped as `not_master`); a
    /// MASTER's addresses are answered for on its port.
    pub fn apply(&self, snapshot: &mut Snapshot) {
        if self.insts.is_empty() {
            return;
        }
        snapshot.vrrp = true;
        snapshot.standby.clear();
        for inst in &self.insts {
            let master = inst.m.state() == State::Master;
            for cidr in &inst.held {
                let a = cidr.addr;
                if master {
                    if let Some(port) = snapshot.ports.get_mut(inst.port) {
                        if !port.ipv4.contains(&a) {
                            port.ipv4.push(a);
                        }
                    }
                } else {
                    for port in &mut snapshot.ports {
                        port.ipv4.retain(|x| *x != a);
                    }
                    snapshot.standby.push(a);
                }
            }
        }
    }

    /// The instance that holds `addr` (one of its virtual addresses), and whether it is
    /// MASTER here.
    pub fn holder(&self, addr: Ipv4Addr) -> Option<(&str, bool)> {
        self.insts
            .iter()
            .find(|i| i.held.iter().any(|c| c.addr == addr))
            .map(|i| (i.name.as_str(), i.m.state() == State::Master))
    }

    /// Whether instance `name` is MASTER here.
    pub fn is_master(&self, name: &str) -> bool {
        self.insts
            .iter()
            .any(|i| i.name == name && i.m.state() == State::Master)
    }

    /// The unicast peers (port, address) whose MAC the adverts need.
    pub fn peers(&self) -> Vec<(usize, Ipv4Addr)> {
        self.insts
            .iter()
            .flat_map(|i| i.peers.iter().map(move |p| (i.port, *p)))
            .collect()
    }

    pub fn counters(&self) -> Counters {
        let mut c = self.counters.clone();
        c.refused = Refusal::ALL
            .iter()
            .map(|r| (r.name(), self.refused.get(r).copied().unwrap_or(0)))
            .collect();
        c
    }

    pub fn report(&self) -> Vec<InstanceReport> {
        self.insts
            .iter()
            .map(|i| InstanceReport {
                name: i.name.clone(),
                interface: i.interface.clone(),
                vrid: i.vrid,
                addresses: i.held.iter().map(|a| a.addr.to_string()).collect(),
                state: i.m.state().name(),
                priority: i.m.priority(),
                since_unix_ms: i
                    .since
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
            })
            .collect()
    }

    /// Carries out an instance's actions: adverts, and for a state change the log line, the
    /// scripts, gratuitous ARPs, the data plane, and (when `spread`) its sync group.
    fn act(
        &mut self,
        i: usize,
        actions: Vec<Action>,
        now: Instant,
        spread: bool,
        out: &mut Vec<Frame>,
    ) {
        for action in actions {
            match action {
                Action::Send { priority } => self.advert(i, priority, out),
                Action::Garp => self.garps(i, out),
                Action::Became(state) => {
                    self.changed = true;
                    let inst = &mut self.insts[i];
                    inst.since = std::time::SystemTime::now();
                    info!("({}) Entering {} STATE", inst.name, state.name());
                    if state == State::Master {
                        inst.garp_round =
                            (!inst.garp_delay.is_zero()).then(|| now + inst.garp_delay);
                        inst.garp_refresh_at =
                            (!inst.garp_refresh.is_zero()).then(|| now + inst.garp_refresh);
                        self.garps(i, out);
                    } else {
                        inst.garp_round = None;
                        inst.garp_refresh_at = None;
                    }
                    self.notify(i, state);
                    if spread {
                        self.spread(i, state, now, out);
                    }
                }
            }
        }
    }

    /// keepalived's sync group rule: the members follow one that became MASTER or BACKUP
    /// (FAULT is handled by `refresh_faults`, which faults them all).
    fn spread(&mut self, i: usize, state: State, now: Instant, out: &mut Vec<Frame>) {
        let Some(g) = self.insts[i].group else {
            return;
        };
        for m in self.groups[g].members.clone() {
            if m == i {
                continue;
            }
            let actions = match state {
                State::Master => self.insts[m].m.force_master(now),
                State::Backup => self.insts[m].m.force_backup(now),
                _ => Vec::new(),
            };
            self.act(m, actions, now, false, out);
        }
        self.group_state(g);
    }

    /// Puts instances whose tracks (or whose sync group's tracks) are bad in FAULT and brings
    /// the others out of it; applies weighted scripts to priorities.
    fn refresh_faults(&mut self, now: Instant, out: &mut Vec<Frame>) {
        for i in 0..self.insts.len() {
            let inst = &self.insts[i];
            let links = inst
                .track_ports
                .iter()
                .all(|&p| self.links.get(p).copied().unwrap_or(true))
                && self.links.get(inst.port).copied().unwrap_or(true);
            let scripts = inst
                .track_scripts
                .iter()
                .all(|&s| self.tracks[s].weight != 0 || self.tracks[s].ok);
            let services = inst
                .track_services
                .iter()
                .all(|k| self.quorums.get(k).copied().unwrap_or(true));
            let mut priority = i32::from(inst.m.p.priority);
            if priority != 255 {
                for &s in &inst.track_scripts {
                    let t = &self.tracks[s];
                    match (t.weight, t.ok) {
                        (w, true) if w > 0 => priority += w,
                        (w, false) if w < 0 => priority += w,
                        _ => {}
                    }
                }
                priority = priority.clamp(1, 254);
            }
            self.insts[i].m.set_priority(priority as u8);
            self.insts[i].faulty = !(links && scripts && services);
        }
        for i in 0..self.insts.len() {
            let faulty = match self.insts[i].group {
                Some(g) => self.groups[g].members.iter().any(|&m| self.insts[m].faulty),
                None => self.insts[i].faulty,
            };
            let actions = self.insts[i].m.fault(now, faulty);
            self.act(i, actions, now, false, out);
        }
        for g in 0..self.groups.len() {
            self.group_state(g);
        }
    }

    /// The group's state once all its members agree: logged and notified once.
    fn group_state(&mut self, g: usize) {
        let members = &self.groups[g].members;
        let all = |s: State| members.iter().all(|&m| self.insts[m].m.state() == s);
        if let Some(s) = [State::Master, State::Backup, State::Fault]
            .into_iter()
            .find(|s| all(*s))
        {
            if self.groups[g].state != s {
                self.groups[g].state = s;
                info!(
                    "VRRP_Group({}) Syncing instances to {} state",
                    self.groups[g].name,
                    s.name()
                );
                self.group_notify(g, s);
            }
        }
    }

    /// Runs the tracked scripts that are due, reaps those that ended; whether one changed its
    /// verdict.
    fn run_tracks(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for t in &mut self.tracks {
            if let Some((child, started)) = &mut t.child {
                let status = match child.try_wait() {
                    Ok(Some(status)) => Some(status.success()),
                    Ok(None) if now >= *started + t.timeout => {
                        let _ = child.kill();
                        let _ = child.wait();
                        warn!(
                            "vrrp_script {}: timed out after {} s",
                            t.name,
                            t.timeout.as_secs()
                        );
                        Some(false)
                    }
                    Ok(None) => None,
                    Err(_) => Some(false),
                };
                let Some(success) = status else { continue };
                t.child = None;
                t.streak = match (success, t.streak) {
                    (true, s) if s > 0 => s + 1,
                    (true, _) => 1,
                    (false, s) if s < 0 => s - 1,
                    (false, _) => -1,
                };
                let now_ok = if t.ok {
                    t.streak > -i64::from(t.fall)
                } else {
                    t.streak >= i64::from(t.rise)
                };
                if now_ok != t.ok {
                    t.ok = now_ok;
                    changed = true;
                    info!(
                        "VRRP_Script({}) {}",
                        t.name,
                        if now_ok { "succeeded" } else { "failed" }
                    );
                }
            } else if now >= t.next {
                t.next = now + t.interval;
                let mut words = t.script.split_whitespace();
                let Some(program) = words.next() else {
                    continue;
                };
                match Command::new(program)
                    .args(words)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                {
                    Ok(child) => t.child = Some((child, now)),
                    Err(e) => {
                        warn!("vrrp_script {}: cannot run {}: {e}", t.name, t.script);
                        if t.ok {
                            t.ok = false;
                            changed = true;
                        }
                    }
                }
            }
        }
        changed
    }

    fn advert(&mut self, i: usize, priority: u8, out: &mut Vec<Frame>) {
        let inst = &mut self.insts[i];
        let advert = inst.m.advert_of(priority);
        let mac = self.macs.get(inst.port).copied().unwrap_or_default();
        let targets: Vec<(Option<Ipv4Addr>, Ipv4Addr, [u8; 6])> = if inst.peers.is_empty() {
            vec![(None, wire::GROUP, wire::GROUP_MAC)]
        } else {
            inst.peers.iter().map(|p| (Some(*p), *p, [0; 6])).collect()
        };
        for (to, dst, dst_mac) in targets {
            inst.ip_id = inst.ip_id.wrapping_add(1);
            out.push(Frame {
                port: inst.port,
                to,
                bytes: wire::build(&advert, mac, dst_mac, inst.src, dst, inst.ip_id),
            });
            self.counters.adverts_sent += 1;
        }
    }

    fn garps(&mut self, i: usize, out: &mut Vec<Frame>) {
        let inst = &self.insts[i];
        let mac = self.macs.get(inst.port).copied().unwrap_or_default();
        for _ in 0..inst.garp_repeat.max(1) {
            for cidr in &inst.held {
                out.push(Frame {
                    port: inst.port,
                    to: None,
                    bytes: wire::gratuitous_arp(mac, cidr.addr).to_vec(),
                });
                self.counters.gratuitous_arps_sent += 1;
            }
        }
    }

    /// keepalived's order: the state's own script, then `notify` with
    /// `INSTANCE NAME STATE PRIORITY`.
    fn notify(&mut self, i: usize, state: State) {
        let inst = &self.insts[i];
        let own = match state {
            State::Master => &inst.notify_master,
            State::Backup => &inst.notify_backup,
            State::Fault => &inst.notify_fault,
            State::Stopped => &inst.notify_stop,
            State::Init => &None,
        };
        let priority = inst.m.priority().to_string();
        let name = inst.name.clone();
        if let Some(script) = own.clone() {
            self.scripts.run(
                &script,
                &[],
                format!("({name}) notify_{}", state.name().to_lowercase()),
            );
        }
        if let Some(script) = inst.notify.clone() {
            self.scripts.run(
                &script,
                &["INSTANCE", &name, state.name(), &priority],
                format!("({name}) notify"),
            );
        }
    }

    fn group_notify(&mut self, g: usize, state: State) {
        let group = &self.groups[g];
        let own = match state {
            State::Master => &group.notify_master,
            State::Backup => &group.notify_backup,
            State::Fault => &group.notify_fault,
            State::Stopped => &group.notify_stop,
            State::Init => &None,
        };
        let name = group.name.clone();
        if let Some(script) = own.clone() {
            self.scripts.run(
                &script,
                &[],
                format!("VRRP_Group({name}) notify_{}", state.name().to_lowercase()),
            );
        }
        if let Some(script) = group.notify.clone() {
            self.scripts.run(
                &script,
                &["GROUP", &name, state.name(), "0"],
                format!("VRRP_Group({name}) notify"),
            );
        }
    }
}

fn params(v: &VrrpInstance, src: Ipv4Addr) -> Params {
    Params {
        version: v.version,
        vrid: v.virtual_router_id,
        priority: v.priority(),
        interval: v.advert_int.0 as u16,
        preempt: !v.nopreempt,
        preempt_delay: v.preempt_delay.duration(),
        primary: src,
        addresses: v.virtual_ipaddress.iter().map(|c| c.addr).collect(),
        password: v
            .authentication
            .as_ref()
            .map(|a| wire::password(&a.auth_pass)),
    }
}

#[cfg(test)]
mod tests;
