//! The control thread's state that is not I/O: the running configuration (the file's, or the
//! file's with rvsadm's edits), the health checker, VRRP, connection sync and the neighbour
//! table, and the one place a snapshot is built from them ([`Core::build`]). A reload, an
//! rvsadm edit, a checker's verdict, a neighbour learnt and a VRRP state change all publish
//! through it. `rvsd` keeps the wiring: DPDK, rings, threads, signals and sockets.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::SystemTime;

use dataplane::snapshot::Snapshot;
use hashbrown::HashMap;
use serde::Serialize;
use tracing::{info, warn};

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
        let mut next = snapshot::build(
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
