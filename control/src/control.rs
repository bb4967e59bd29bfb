//! The control thread's state that is not I/O: the running configuration (the file's, or the
//! file's with rvsadm's edits), the health checker, VRRP, connection sync and the neighbour
//! table, and the one place a snapshot is built from them ([`Core::build`]). A reload, an
//! rvsadm edit, a checker's verdict, a neighbour learnt and a VRRP state change all publish
//! through it. `rvsd` keeps the wiring: DPDK, rings, threads, signals and sockets.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use dataplane::snapshot::Snapshot;
use dataplane::wire::{arp, ethernet};
use hashbrown::HashMap;
use serde::Serialize;
use tracing::{info, warn};

use crate::announce::{Announcer, Change, Fitness};
use crate::config::{self, Config};
use crate::health::Health;
use crate::neigh::Neighbors;
use crate::snapshot::{self, ServiceReport};
use crate::sync::Sync;
use crate::vrrp::Vrrp;

/// Reloads and edits so far, and the last one (`rvsadm status`, metrics).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reloads {
    pub ok: u64,
    pub refused: u64,
    pub edits: u64,
    pub last_unix_ms: u64,
    pub last_ok: bool,
    /// What the last reload did, or why it was refused.
    pub last_result: String,
}

pub struct Core {
    pub file: PathBuf,
    /// The cores read at start; every reload and edit is checked against them.
    pub cores: Vec<usize>,
    /// What snapshots are built from.
    pub running: Config,
    pub macs: Vec<[u8; 6]>,
    pub health: Health,
    pub vrrp: Vrrp,
    pub sync: Option<Sync>,
    pub neighbors: Neighbors,
    pub generation: u64,
    pub reloads: Reloads,
    /// A snapshot is due (a neighbour learnt, a checker's verdict, a VRRP state change).
    pub changed: bool,
    /// The VIPs announced on a kernel interface (`announce`).
    pub announcer: Announcer,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Core {
    /// The snapshot of the running state: services as the checkers leave them, next hops as
    /// resolved, VIPs as VRRP holds them, the sync role.
    pub fn build(&self, previous: Option<&Snapshot>) -> Snapshot {
        let mut next = snapshot::build_checked(
            &self.running,
            &self.health.apply(&self.running),
            &self.macs,
            &self.neighbors.table(),
            self.generation,
            previous,
        );
        self.vrrp.apply(&mut next);
        if let Some(sync) = &self.sync {
            let master = self.vrrp.is_master(sync.instance());
            next.sync_master = master;
            next.sync_backup = !master;
        }
        next
    }

    /// A new snapshot after a change of health, neighbours or VRRP state.
    pub fn rebuild(&mut self, previous: &Snapshot) -> Snapshot {
        self.generation += 1;
        self.build(Some(previous))
    }

    /// Makes `new` the running configuration: the kernel interfaces' routes follow, the
    /// checkers are set up for its real servers, its static neighbours are added and its next
    /// hops resolved. Returns the snapshot to publish and what changed.
    pub fn reconfigure(&mut self, new: Config, previous: &Snapshot) -> (Snapshot, ServiceReport) {
        for pc in new.ports.iter().filter(|pc| pc.kernel) {
            let (old, wanted) = (
                crate::kernel::routes_of(&self.running, &pc.name),
                crate::kernel::routes_of(&new, &pc.name),
            );
            if old != wanted {
                let name = pc.kernel_interface_name();
                if let Err(e) = crate::kernel::set_routes(&name, &old, &wanted) {
                    warn!("kernel interface {name}: {e}");
                }
            }
        }
        self.running = new;
        match self.health.configure(&self.running) {
            Ok(()) if self.health.probes() > 0 => info!(
                "health: {} probes (identical ones shared) over {} real servers",
                self.health.probes(),
                self.running
                    .services
                    .iter()
                    .map(|s| s.real_servers.len())
                    .sum::<usize>()
            ),
            Ok(()) => {}
            Err(e) => warn!("cannot start the health checker: {e}; real servers keep their state"),
        }
        add_static_neighbors(&self.running, &mut self.neighbors);
        let next = self.rebuild(previous);
        self.neighbors.want(&self.wanted_hops());
        let report = snapshot::describe_services(Some(previous), &next);
        (next, report)
    }

    /// Reads the file again (SIGHUP, `rvsadm reload`): the new configuration, or why not
    /// (the file's own error, placed; or a field only a restart changes). Runtime edits are
    /// replaced by the file's contents, as keepalived's reload replaces ipvsadm's.
    pub fn read_file(&mut self) -> Result<Config, String> {
        let new = config::load_with_cores(&self.file, &self.cores).map_err(|e| e.to_string());
        let new = new.and_then(
            |new| match config::restart_only_change(&self.running, &new) {
                Some(e) => Err(e.to_string()),
                None => Ok(new.config),
            },
        );
        if let Err(e) = &new {
            self.note_reload(false, format!("refused: {e}"));
        }
        new
    }

    pub fn note_reload(&mut self, ok: bool, result: String) {
        if ok {
            self.reloads.ok += 1;
        } else {
            self.reloads.refused += 1;
        }
        self.reloads.last_ok = ok;
        self.reloads.last_unix_ms = unix_ms();
        self.reloads.last_result = result;
    }

    /// The next hops to keep resolved: those of every configured real server and sorry
    /// server, whatever their health (one coming back finds its neighbour known), and VRRP's
    /// unicast peers.
    pub fn wanted_hops(&self) -> Vec<(usize, Ipv4Addr)> {
        let all = snapshot::build(
            &self.health.everyone(&self.running),
            &self.macs,
            &HashMap::new(),
            0,
            None,
        );
        let mut hops = snapshot::next_hops(&all);
        for peer in self.vrrp.peers() {
            if !hops.contains(&peer) {
                hops.push(peer);
            }
        }
        hops
    }
}

/// The configuration's fixed neighbours.
pub fn add_static_neighbors(c: &Config, neighbors: &mut Neighbors) {
    for n in &c.neighbors {
        if let Some(port) = c.ports.iter().position(|p| p.name == n.port) {
            neighbors.add_static(port, n.address, n.mac.0);
        }
    }
}

/// A frame the control core wants sent on a port (VRRP adverts and gratuitous ARPs, ARP
/// requests for next hops, sync messages); rvsd puts it on the port's way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub port: usize,
    pub bytes: Vec<u8>,
}

/// What to do with a slow-path frame once the core has seen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameVerdict {
    /// An ARP request for one of rvs's addresses: answer it (its sender is learnt).
    AnswerArp,
    /// An ARP reply on a port with a kernel interface: the kernel resolves its own next hops.
    ToKernel,
    /// Taken (VRRP, sync, a learnt ARP) or of no use.
    Done,
}

impl Core {
    /// A frame from the slow path, received on `port`: ARP teaches the neighbour table,
    /// sync messages go to the sync receiver, VRRP adverts to their instance. Frames to send
    /// are added to `out`; `self.changed` says whether a snapshot is due.
    pub fn on_frame(
        &mut self,
        port: usize,
        frame: &[u8],
        snapshot: &Snapshot,
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) -> FrameVerdict {
        let Some(arp) = ArpSeen::parse(frame) else {
            if let Some(sync) = &mut self.sync {
                if sync.receive(frame, snapshot) {
                    return FrameVerdict::Done;
                }
            }
            if !self.vrrp.is_empty() {
                let frames = self.vrrp.receive(port, frame, now);
                self.vrrp_out(&frames, out);
            }
            return FrameVerdict::Done;
        };
        if self.neighbors.learn(port, arp.sender, arp.sender_mac, now) {
            info!(
                "neighbor {} is at {} on port {}",
                arp.sender,
                crate::format_mac(&arp.sender_mac),
                self.running.ports[port].name
            );
            self.changed = true;
        }
        // A worker hands over the requests for rvs's own addresses whose sender it wants
        // learnt: answered by the caller, after learning.
        if snapshot.ports.get(port).is_some_and(|p| arp.request_for(p)) {
            FrameVerdict::AnswerArp
        } else if arp.operation == arp::OP_REPLY && self.running.ports[port].kernel {
            FrameVerdict::ToKernel
        } else {
            FrameVerdict::Done
        }
    }

    /// The periodic work of a turn: the checkers' verdicts, the neighbour table's probes,
    /// VRRP's links, tracked quorums and timers, connection sync's messages (a MASTER sends,
    /// others discard). `links` is each port's link now. Frames to send go to `out`.
    pub fn tick(&mut self, links: &[bool], now: Instant, out: &mut Vec<Outgoing>) {
        self.changed |= self.health.poll();
        let poll = self.neighbors.poll(now);
        self.changed |= poll.changed;
        let ports = &self.running.ports;
        for (port, addr) in &poll.failed {
            warn!(
                "neighbor {addr} on port {} answered none of {} ARP probes: forgotten; new \
                 connections to the real servers behind it are dropped (no_neighbor) until it \
                 answers",
                ports[*port].name,
                crate::neigh::PROBES
            );
        }
        for ((port, addr), silent, requests) in &poll.unresolved {
            warn!(
                "next hop {addr} on port {} does not answer ARP ({requests} requests in {} s): \
                 new connections to the real servers behind it are dropped (no_neighbor)",
                ports[*port].name,
                silent.as_secs()
            );
        }
        for request in &poll.requests {
            let (port, target) = request.hop;
            let source = ports[port]
                .addresses
                .iter()
                .find(|a| a.contains(target))
                .or(ports[port].addresses.first())
                .map(|a| a.addr);
            let Some(source) = source else { continue };
            let mut bytes = dataplane::engine::arp_request(self.macs[port], source, target);
            if let Some(mac) = request.unicast {
                bytes[..6].copy_from_slice(&mac);
            }
            out.push(Outgoing {
                port,
                bytes: bytes.to_vec(),
            });
        }
        if !self.vrrp.is_empty() {
            let mut frames = self.vrrp.set_links(links, now);
            frames.extend(self.vrrp.set_quorums(self.health.quorums(), now));
            frames.extend(self.vrrp.tick(now));
            self.vrrp_out(&frames, out);
            self.changed |= self.vrrp.take_changed();
        }
        if let Some(sync) = &mut self.sync {
            if self.vrrp.is_master(sync.instance()) {
                let port = sync.port();
                out.extend(
                    sync.frames_to_send()
                        .into_iter()
                        .map(|bytes| Outgoing { port, bytes }),
                );
            } else {
                sync.discard();
            }
        }
    }

    /// Whether each VIP may be served here: every service of it has its quorum, and the VRRP
    /// instance that holds it (if one does) is MASTER.
    pub fn fitness(&self) -> Vec<Fitness> {
        crate::announce::fitness(&self.running, &self.health.quorums(), |vip| {
            self.vrrp
                .holder(vip)
                .map(|(name, master)| (name.to_owned(), master))
        })
    }

    /// The kernel interface `announce` names, and its hold-down.
    fn announce_on(&self) -> Option<(String, std::time::Duration)> {
        let a = self.running.announce.as_ref()?;
        let port = self.running.ports.iter().find(|p| p.name == a.port)?;
        Some((
            port.kernel_interface_name(),
            std::time::Duration::from_millis(a.hold_down_ms),
        ))
    }

    /// Puts the VIPs fit to serve on the kernel interface `announce` names and takes the
    /// others off (see [`crate::announce`]), logging each change and why.
    pub fn announce(&mut self, now: Instant) {
        let on = self.announce_on();
        if on.is_none() && !self.announcer.any() {
            return;
        }
        let fitness = self.fitness();
        let changes =
            self.announcer
                .update(on.as_ref().map(|(i, h)| (i.as_str(), *h)), &fitness, now);
        self.apply_announce(&changes, now);
    }

    /// When the next hold-down ends.
    pub fn announce_deadline(&self) -> Option<Instant> {
        let (_, hold_down) = self.announce_on()?;
        self.announcer.deadline(hold_down)
    }

    /// A clean stop: every VIP off its interface (the routing daemon withdraws the routes).
    /// Whether any was announced.
    pub fn withdraw_all(&mut self, now: Instant) -> bool {
        let any = self.announcer.any();
        let changes = self.announcer.stop(now);
        self.apply_announce(&changes, now);
        any
    }

    fn apply_announce(&mut self, changes: &[Change], now: Instant) {
        for change in changes {
            let result = match change {
                Change::Add { interface, vip } => crate::kernel::add_vip(interface, *vip),
                Change::Remove { interface, vip, .. } => crate::kernel::remove_vip(interface, *vip),
            };
            match (result, change) {
                (Ok(()), Change::Add { interface, vip }) => {
                    info!("announce: VIP {vip}/32 on {interface} (its services fit to serve)");
                    self.announcer.done(change);
                }
                (
                    Ok(()),
                    Change::Remove {
                        interface,
                        vip,
                        why,
                    },
                ) => {
                    warn!("announce: VIP {vip}/32 off {interface}: {why}");
                    self.announcer.done(change);
                }
                (Err(e), _) => {
                    warn!("announce: {e}");
                    self.announcer.failed(change, now);
                }
            }
        }
    }

    /// VRRP's start (the ports' links now).
    pub fn start_vrrp(&mut self, links: &[bool], now: Instant, out: &mut Vec<Outgoing>) {
        if !self.vrrp.is_empty() {
            let frames = self.vrrp.start(links, now);
            self.vrrp_out(&frames, out);
        }
    }

    /// VRRP's goodbye (priority 0) on a clean stop.
    pub fn stop_vrrp(&mut self, out: &mut Vec<Outgoing>) {
        if !self.vrrp.is_empty() {
            let frames = self.vrrp.stop();
            self.vrrp_out(&frames, out);
        }
    }

    /// Whether a snapshot is due (and forgets it).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// VRRP's frames with a unicast peer's MAC from the neighbour table; until the peer
    /// answers ARP its advert is not sent (the neighbour module is resolving it).
    fn vrrp_out(&self, frames: &[crate::vrrp::Frame], out: &mut Vec<Outgoing>) {
        for f in frames {
            let mut bytes = f.bytes.clone();
            if let Some(peer) = f.to {
                let Some(mac) = self.neighbors.mac((f.port, peer)) else {
                    continue;
                };
                bytes[..6].copy_from_slice(&mac);
            }
            out.push(Outgoing {
                port: f.port,
                bytes,
            });
        }
    }
}

/// What the control core reads of an ARP frame.
struct ArpSeen {
    operation: u16,
    sender: Ipv4Addr,
    sender_mac: [u8; 6],
    target: Ipv4Addr,
}

impl ArpSeen {
    fn parse(frame: &[u8]) -> Option<ArpSeen> {
        let eth = ethernet::Frame::new_checked(frame).ok()?;
        if eth.ethertype() != ethernet::ETHERTYPE_ARP {
            return None;
        }
        let packet = arp::Packet::new_checked(eth.payload()).ok()?;
        Some(ArpSeen {
            operation: packet.operation(),
            sender: packet.sender_ip(),
            sender_mac: packet.sender_mac(),
            target: packet.target_ip(),
        })
    }

    fn request_for(&self, port: &dataplane::snapshot::PortAddrs) -> bool {
        self.operation == arp::OP_REQUEST && self.sender != self.target && port.owns(self.target)
    }
}
