//! The sans-IO packet engine: (frame, ingress port, snapshot, worker state, now) -> verdict.
//! It performs no I/O and reads no clock; the worker loop only moves mbufs around it, and
//! every rule here is tested on byte arrays.
//!
//! Per packet: ARP and ICMP echo for the appliance's own addresses are answered in place;
//! TCP/UDP packets of a known connection are rewritten for its mode and direction; a new flow
//! to a virtual service is scheduled onto a real server and recorded; ICMP errors about a
//! connection are translated and passed on; everything else is dropped with a named reason.

use std::net::Ipv4Addr;

use crate::conn::{
    Conn, ConnId, ConnTable, Direction, InsertError, TcpState, TemplateKey, TemplateTable,
    Timeouts, NO_TEMPLATE,
};
use crate::counters::DropReason;
use crate::flow::{Endpoint, FlowKey, ForwardMode};
use crate::forward::icmp_error::{self, ErrorKind, QuotedFlow, Translation};
use crate::forward::{self, dr, fullnat, nat, tun, Parsed};
use crate::frame::Frame;
use crate::sched::{share_of, Candidates, DestExport, DestTable, Loads, Scheduler, SchedulerState};
use crate::snapshot::{PortAddrs, RealServer, Service, Snapshot, VipKind};
use crate::steer::{FlowKind, FullnatShare, Owner, Steering};
use crate::sync::{InstallError, SyncRecord};
use crate::wire::{arp, checksum, ethernet, icmp, ipv4, tcp};

/// TTL of the packets the appliance originates (replies), as Linux's default.
pub const REPLY_TTL: u8 = 64;

/// FULLNAT local ports: each worker owns the ports `p` with `p % workers == worker` in this
/// range, so the worker that owns a connection is computable from its reply alone.
const LOCAL_PORT_FIRST: u32 = crate::steer::LOCAL_PORT_FIRST as u32;
const LOCAL_PORT_COUNT: u32 = 65536 - LOCAL_PORT_FIRST;
/// Local ports tried per new FULLNAT connection before giving up (`no_local_port`).
const LOCAL_PORT_TRIES: u32 = 64;
/// The FULLNAT walk never falls behind the wall clock, which crosses a worker's whole share of
/// (local address, port) pairs in this many milliseconds: longer than the 60 s a Linux real
/// server keeps a closed connection in TIME_WAIT, so a pair comes back no sooner than that
/// unless connections arrive faster than the clock walks, and a restarted rvsd starts past
/// whatever its previous run handed out.
pub const LOCAL_WALK_PERIOD_MS: u64 = 64_000;

/// What the appliance answered itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Arp,
    IcmpEcho,
    /// ICMP time exceeded: the TTL ran out where rvs would have forwarded.
    TimeExceeded,
    /// ICMP fragmentation needed: too big for the tunnel with DF set.
    FragNeeded,
    /// A TCP reset: a segment for a virtual service that has no connection.
    Reset,
}

/// The engine's decision for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame was rewritten in place into a reply: send it back out of the ingress port.
    Reply(Answer),
    /// The frame was rewritten for its next hop: send it out of `port`.
    Forward {
        port: usize,
        /// This packet created a connection.
        created: bool,
    },
    /// For the control thread (ARP it did not answer itself: neighbours learn from it).
    SlowPath,
    /// For the kernel, untouched: it reached an address the kernel holds and is not rvs's to
    /// handle (TCP/UDP to the appliance itself, ICMP but the echo rvs answers, fragments and
    /// other protocols). `urgent` for the control protocols that get reserved room (BGP,
    /// BFD): a flood toward the appliance cannot crowd them out.
    ToKernel {
        urgent: bool,
    },
    /// Another worker owns this packet's connection (`steer`): hand it over, untouched.
    HandOff(usize),
    Drop(DropReason),
}

/// One service as a worker keeps it: what it was built for, the dest slots of its real
/// servers (same order), and its scheduler state.
struct ServiceState {
    protocol: u8,
    vip: Endpoint,
    reals: Vec<RealServer>,
    dest_ids: Vec<u32>,
    sched: SchedulerState,
}

/// What one worker owns besides its queues: its connection table, its load on every real
/// server, its persistence templates, its schedulers' state and its share of the FULLNAT
/// local ports.
pub struct WorkerState {
    pub conns: ConnTable,
    pub dests: DestTable,
    pub templates: TemplateTable,
    worker: usize,
    workers: usize,
    /// Generation of the snapshot the services below belong to.
    generation: Option<u64>,
    /// Indexed like the snapshot's services.
    services: Vec<ServiceState>,
    /// FULLNAT: position in the walk over this worker's (local address, port) pairs, never
    /// wrapped: pair `k mod (A × share)` is address `k mod A`, port index `(k mod (A × share))
    /// div A`, addresses varying fastest.
    local_cursor: u64,
    /// Wall-clock milliseconds (Unix time) at `now_ms` = 0: the walk's floor.
    wall_clock_origin_ms: u64,
    /// Resets sent for segments of no connection in the current one-second window, and when
    /// that window began: at most `Snapshot::tcp_resets_per_second` per window.
    resets_window_ms: u64,
    resets_in_window: u32,
    /// Connections ended because their real server left a service with
    /// `expire_nodest_conn`.
    nodest_expired: u64,
    /// Connections created from a segment without SYN (`sloppy_tcp`).
    sloppy_created: u64,
    /// Connection sync: what this worker has for the control thread to send to the backups
    /// (bounded: the worker loop drains it after every burst), and what did not fit.
    sync_out: Vec<SyncRecord>,
    sync_out_lost: u64,
    /// The fast path's next hop per dest slot (see `fast`), sized on every new snapshot.
    hops: Vec<fast::Hop>,
    /// Packets the fast path forwarded.
    fast_packets: u64,
}

/// One connection or persistence template as the control thread lists it (`rvsadm -c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnExport {
    pub protocol: u8,
    pub state: TcpState,
    /// Milliseconds until it expires.
    pub expires_in_ms: u64,
    pub client: Endpoint,
    pub vip: Endpoint,
    pub real: Endpoint,
    /// FULLNAT's local endpoint (the client otherwise).
    pub local: Endpoint,
    pub mode: ForwardMode,
    /// A template: `client` is the client network with port 0.
    pub template: bool,
}

/// What a worker hands the control thread when asked (never on the per-packet path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerExport {
    pub worker: usize,
    /// The request's number, echoed.
    pub request: u64,
    pub dests: Vec<DestExport>,
    /// Only when asked, at most the limit asked.
    pub conns: Option<Vec<ConnExport>>,
}

/// Sync records a worker keeps between two drains of its loop.
const SYNC_OUT: usize = 256;

impl WorkerState {
    /// The loads and totals of the configured real servers, and (with `conns`) up to that
    /// many connections and templates: what `rvsadm` and the metrics read. Walks the tables:
    /// for the worker loop between bursts, never per packet.
    pub fn export(&self, request: u64, conns: Option<usize>, now_ms: u64) -> WorkerExport {
        let conns = conns.map(|limit| {
            let mut out: Vec<ConnExport> = self
                .conns
                .iter()
                .take(limit)
                .map(|(id, c)| ConnExport {
                    protocol: c.protocol,
                    state: c.state,
                    expires_in_ms: self
                        .conns
                        .expires_at(id)
                        .map_or(0, |at| at.saturating_sub(now_ms)),
                    client: c.client,
                    vip: c.vip,
                    real: c.real,
                    local: c.local,
                    mode: c.mode,
                    template: false,
                })
                .collect();
            let room = limit.saturating_sub(out.len());
            out.extend(self.templates.iter().take(room).map(|(t, expires)| {
                let real = self
                    .dests
                    .key(t.dest)
                    .map_or(Endpoint::new(Ipv4Addr::UNSPECIFIED, 0), |k| k.2);
                ConnExport {
                    protocol: t.key.protocol,
                    state: TcpState::None,
                    expires_in_ms: expires.saturating_sub(now_ms),
                    client: Endpoint::new(t.key.client_net, 0),
                    vip: t.key.vip,
                    real,
                    local: Endpoint::new(t.key.client_net, 0),
                    mode: ForwardMode::Nat,
                    template: true,
                }
            }));
            out
        });
        WorkerExport {
            worker: self.worker,
            request,
            dests: self.dests.export(),
            conns,
        }
    }

    /// `capacity` connections; persistence templates get a quarter of that (at least 1024):
    /// one per client network and persistent service.
    pub fn new(worker: usize, workers: usize, capacity: usize, timeouts: Timeouts) -> Self {
        WorkerState {
            conns: ConnTable::new(capacity, timeouts),
            dests: DestTable::new(),
            templates: TemplateTable::new((capacity / 4).max(1024)),
            worker,
            workers: workers.max(1),
            generation: None,
            services: Vec::new(),
            local_cursor: 0,
            wall_clock_origin_ms: 0,
            resets_window_ms: 0,
            resets_in_window: 0,
            nodest_expired: 0,
            sloppy_created: 0,
            sync_out: Vec::with_capacity(SYNC_OUT),
            sync_out_lost: 0,
            hops: Vec::new(),
            fast_packets: 0,
        }
    }

    /// Counts a client's packet of connection `id` (whose state was `old` before it) for
    /// sync, and notes the connection for the backups when IPVS's rule says so. Out of line:
    /// only a sync master's packets come here.
    #[cold]
    #[inline(never)]
    fn note_for_sync(&mut self, id: ConnId, old: TcpState, snapshot: &Snapshot) {
        let timeouts = *self.conns.timeouts();
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.in_pkts = (conn.in_pkts + 1) % crate::sync::PERIOD;
        if !crate::sync::worth_syncing(conn.protocol, old, conn.state, conn.in_pkts) {
            return;
        }
        let record = SyncRecord {
            protocol: conn.protocol,
            client: conn.client,
            vip: conn.vip,
            real: conn.real,
            local: (conn.mode == ForwardMode::FullNat).then_some(conn.local),
            mode: conn.mode,
            state: conn.state,
            timeout_s: if conn.protocol == ipv4::PROTO_TCP {
                timeouts.for_state(conn.state)
            } else {
                timeouts.udp
            },
            client_mac: conn.client_mac,
            template: false,
        };
        // Its persistence template travels with it (IPVS syncs a connection's controller
        // after it), with the service's persistence timeout.
        let template = (conn.template != NO_TEMPLATE).then(|| {
            let key = self.templates.get(conn.template).key;
            let timeout_s = snapshot
                .service(key.protocol, key.vip)
                .and_then(|(_, s)| s.persistence)
                .map_or(0, |p| p.timeout_s);
            SyncRecord {
                client: Endpoint::new(key.client_net, 0),
                state: TcpState::None,
                timeout_s,
                local: None,
                template: true,
                ..record
            }
        });
        for r in std::iter::once(record).chain(template) {
            if self.sync_out.len() < SYNC_OUT {
                self.sync_out.push(r);
            } else {
                self.sync_out_lost += 1;
            }
        }
    }

    /// The connections noted for the backups since the last call.
    pub fn take_sync_records(&mut self) -> std::vec::Drain<'_, SyncRecord> {
        self.sync_out.drain(..)
    }

    /// Sync records that did not fit between two drains since the last call.
    pub fn take_sync_records_lost(&mut self) -> u64 {
        std::mem::take(&mut self.sync_out_lost)
    }

    /// A synced connection's client spoke: its last hop is the frame's source MAC and port.
    #[cold]
    #[inline(never)]
    fn learn_last_hop(&mut self, id: ConnId, in_port: usize, frame: &[u8]) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.client_mac.copy_from_slice(&frame[6..12]);
            conn.client_port = in_port as u8;
        }
    }

    /// Installs (or refreshes) a connection another appliance synced, in this worker's table
    /// (the caller chose the owner): bound to the real server of the same service here, in
    /// the master's state, with its timeout, marked synced. Its client's last hop is the
    /// snapshot's neighbour when known, else learnt from the client's first packet. Returns
    /// whether it is new.
    pub fn install_synced(
        &mut self,
        snapshot: &Snapshot,
        r: &SyncRecord,
        now_ms: u64,
    ) -> Result<bool, InstallError> {
        self.sync(snapshot);
        let (index, service) = snapshot
            .service(r.protocol, r.vip)
            .ok_or(InstallError::NoService)?;
        let real_index = service
            .reals
            .iter()
            .position(|rs| rs.addr == r.real)
            .ok_or(InstallError::NoRealServer)?;
        let dest = self.services[index as usize].dest_ids[real_index];
        let expires_ms = now_ms + u64::from(r.timeout_s.max(1)) * 1000;
        if r.template {
            return self.install_template(r, dest, now_ms);
        }
        // The connection's template, when its service is persistent and one was synced.
        let template = service
            .persistence
            .and_then(|p| {
                self.templates.lookup(&TemplateKey {
                    protocol: r.protocol,
                    vip: r.vip,
                    client_net: p.client_net(r.client.addr),
                })
            })
            .unwrap_or(NO_TEMPLATE);
        let key = FlowKey::new(r.protocol, r.client, r.vip);
        if let Some((id, Direction::Original)) = self.conns.lookup(&key) {
            let conn = *self.conns.get(id).ok_or(InstallError::Conflict)?;
            if conn.real == r.real && conn.mode == service.mode {
                // An update: the master's state and a fresh timeout (IPVS updates flags only,
                // its timer runs on the packets; here the backup sees none).
                let was = conn.is_active();
                if let Some(c) = self.conns.get_mut(id) {
                    c.state = r.state;
                }
                let now = crate::conn::counts_active(r.protocol, r.state);
                if was != now {
                    self.dests.set_active(conn.dest, now);
                }
                self.conns.set_expiry(id, expires_ms);
                return Ok(false);
            }
            // Another real server now (the master rescheduled the tuple): the old entry goes.
            self.remove(id);
        }
        // The client's last hop: the master's (same segment), else the neighbour table's,
        // else learnt from the client's first packet; out of the port its route names.
        let (client_port, client_mac) = match snapshot.next_hop(r.client.addr) {
            _ if r.client_mac != [0; 6] => (
                snapshot
                    .route(r.client.addr)
                    .map_or(0, |route| route.port as u8),
                r.client_mac,
            ),
            Some((port, mac)) => (port as u8, mac),
            None => (0, [0; 6]),
        };
        let conn = Conn {
            protocol: r.protocol,
            client: r.client,
            vip: r.vip,
            local: r.local.unwrap_or(r.client),
            real: r.real,
            mode: service.mode,
            dest,
            template,
            client_port,
            client_mac,
            state: r.state,
            in_pkts: 0,
            synced: true,
        };
        let id = match self.conns.insert(conn, now_ms) {
            Ok(id) => id,
            Err(InsertError::Full) => return Err(InstallError::TableFull),
            Err(InsertError::Exists) => return Err(InstallError::Conflict),
        };
        self.dests.bind(dest, conn.is_active());
        self.conns.set_expiry(id, expires_ms);
        if template != NO_TEMPLATE {
            // It controls the connection, and lives at least as long (as on the master).
            let timeout = u64::from(self.templates_timeout(snapshot, r)) * 1000;
            self.templates.control(template, timeout, now_ms);
        }
        Ok(true)
    }

    /// The persistence timeout of `r`'s service, seconds.
    fn templates_timeout(&self, snapshot: &Snapshot, r: &SyncRecord) -> u32 {
        snapshot
            .service(r.protocol, r.vip)
            .and_then(|(_, s)| s.persistence)
            .map_or(0, |p| p.timeout_s)
    }

    /// A synced persistence template: created pointing at `dest`, or pointed there and its
    /// timer set to the master's timeout.
    fn install_template(
        &mut self,
        r: &SyncRecord,
        dest: u32,
        now_ms: u64,
    ) -> Result<bool, InstallError> {
        let key = TemplateKey {
            protocol: r.protocol,
            vip: r.vip,
            client_net: r.client.addr,
        };
        // The kernel's default for a template that comes without a timeout: 180 s.
        let timeout_ms = u64::from(if r.timeout_s == 0 { 180 } else { r.timeout_s }) * 1000;
        match self.templates.lookup(&key) {
            Some(t) => {
                let old = self.templates.get(t).dest;
                if old != dest {
                    self.dests.release_template(old);
                    self.templates.retarget(t, dest);
                    self.dests.hold_template(dest);
                }
                self.templates.refresh(t, timeout_ms, now_ms);
                Ok(false)
            }
            None => {
                self.templates
                    .insert(key, dest, timeout_ms, now_ms)
                    .map_err(|_| InstallError::TableFull)?;
                self.dests.hold_template(dest);
                Ok(true)
            }
        }
    }

    /// Ties `now_ms` to the wall clock: `now_ms` = 0 is `unix_ms` milliseconds after the Unix
    /// epoch. The FULLNAT walk keeps up with it (see [`LOCAL_WALK_PERIOD_MS`]), so that every
    /// start of rvsd begins where the clock is, not where the previous run began.
    pub fn set_wall_clock_origin(&mut self, unix_ms: u64) {
        self.wall_clock_origin_ms = unix_ms;
    }

    /// Brings the schedulers and load slots in line with `snapshot`; call once per burst.
    /// Cheap when nothing changed. On a new snapshot a service keeps its scheduler state
    /// (same protocol, VIP, scheduler and flags), adjusted if its real servers changed: a
    /// neighbour update does not restart round robin, a reload does not forget lblc's cache.
    pub fn sync(&mut self, snapshot: &Snapshot) {
        if self.generation == Some(snapshot.generation) {
            return;
        }
        if *self.conns.timeouts() != snapshot.timeouts {
            self.conns.set_timeouts(snapshot.timeouts);
        }
        let (worker, workers) = (self.worker, self.workers);
        self.dests.begin_sync();
        let mut old = std::mem::take(&mut self.services);
        let mut services = Vec::with_capacity(snapshot.services.len());
        for s in &snapshot.services {
            let dest_ids = s
                .reals
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    self.dests.attach(
                        (s.protocol, s.vip, r.addr),
                        i,
                        share_of(r.upper_threshold, workers, worker),
                        share_of(r.lower_threshold, workers, worker),
                    )
                })
                .collect();
            let kept = old
                .iter()
                .position(|o| o.protocol == s.protocol && o.vip == s.vip)
                .map(|i| old.swap_remove(i))
                .filter(|o| o.sched.kind() == s.scheduler && same_flags(o, s));
            let sched = match kept {
                Some(mut o) => {
                    // The hashing schedulers' tables follow the members (a failed server is
                    // one though no longer a real server): rebuilt each snapshot (Maglev's is
                    // the snapshot's own; sh's is 256 buckets).
                    if !same_servers(&o.reals, &s.reals)
                        || matches!(
                            o.sched.kind(),
                            crate::sched::SchedulerKind::Mh | crate::sched::SchedulerKind::Sh
                        )
                    {
                        o.sched.reconfigure(&o.reals, s, worker);
                    }
                    o.sched
                }
                None => s.scheduler.new_state(s, worker),
            };
            services.push(ServiceState {
                protocol: s.protocol,
                vip: s.vip,
                reals: s.reals.clone(),
                dest_ids,
                sched,
            });
        }
        self.services = services;
        self.dests.end_sync();
        self.size_hops();
        self.generation = Some(snapshot.generation);
    }

    /// Expires connections and templates whose time is up, visiting at most `budget` timer
    /// entries of each; returns the connections removed. Call once per burst.
    pub fn expire(&mut self, now_ms: u64, budget: usize) -> usize {
        let (dests, templates) = (&mut self.dests, &mut self.templates);
        let removed = self
            .conns
            .expire_with(now_ms, budget, |conn| unbind(dests, templates, conn));
        let dests = &mut self.dests;
        self.templates
            .expire(now_ms, budget, |t| dests.release_template(t.dest));
        removed
    }

    /// This worker's load on real server `real` of service `service` of the current
    /// snapshot (statistics, tests).
    pub fn load(&self, service: usize, real: usize) -> Option<crate::sched::DestLoad> {
        let id = *self.services.get(service)?.dest_ids.get(real)?;
        Some(*self.dests.load(id))
    }

    /// Whether one more reset may leave this second (`limit` per second; 0: none at all).
    #[inline]
    fn may_reset(&mut self, limit: u32, now_ms: u64) -> bool {
        if now_ms.saturating_sub(self.resets_window_ms) >= 1000 {
            self.resets_window_ms = now_ms;
            self.resets_in_window = 0;
        }
        if self.resets_in_window >= limit {
            return false;
        }
        self.resets_in_window += 1;
        true
    }

    /// Removes a connection before its time (a new SYN reusing its ports).
    /// Whether `conn`'s real server left its service and the service expires such
    /// connections (`expire_nodest_conn`).
    #[inline]
    fn lost_its_server(&mut self, snapshot: &Snapshot, conn: &Conn) -> bool {
        self.sync(snapshot);
        self.dests.current_index(conn.dest).is_none()
            && snapshot
                .service(conn.protocol, conn.vip)
                .is_some_and(|(_, service)| service.expire_nodest_conn)
    }

    /// Packets the established fast path forwarded so far (the rest took the full path).
    pub fn fast_path_packets(&self) -> u64 {
        self.fast_packets
    }

    /// Connections created mid-flow (`sloppy_tcp`) so far.
    pub fn sloppy_created(&self) -> u64 {
        self.sloppy_created
    }

    /// Connections ended by `expire_nodest_conn` so far.
    pub fn nodest_expired(&self) -> u64 {
        self.nodest_expired
    }

    fn remove(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.remove(id) {
            unbind(&mut self.dests, &mut self.templates, &conn);
        }
    }

    /// A packet of connection `id`: state transition, timeout, and the active/inactive
    /// counts of its server when the state crosses that line.
    #[inline]
    fn update(&mut self, id: ConnId, conn: &Conn, direction: Direction, flags: u8, now_ms: u64) {
        if let Some(state) = self.conns.update(id, direction, flags, now_ms) {
            let was = conn.is_active();
            let now = crate::conn::counts_active(conn.protocol, state);
            if was != now {
                self.dests.set_active(conn.dest, now);
            }
        }
    }
    /// The real server for a new connection to `service` (index `index` in the snapshot
    /// this state is synced to): its position, its dest slot, and the persistence template
    /// that chose it (`NO_TEMPLATE` without persistence).
    ///
    /// With persistence, a live template whose server is still configured decides (even at
    /// weight 0: IPVS's default keeps quiesced servers' persistent clients); otherwise the
    /// scheduler picks and the template is created or re-pointed.
    #[inline]
    fn schedule(
        &mut self,
        index: usize,
        service: &Service,
        p: &Parsed,
        now_ms: u64,
    ) -> Result<(usize, u32, u32), DropReason> {
        let ss = self
            .services
            .get_mut(index)
            .ok_or(DropReason::NoRealServer)?;
        let template = match service.persistence {
            None => None,
            Some(persist) => {
                let key = TemplateKey {
                    protocol: p.protocol,
                    vip: p.dst,
                    client_net: persist.client_net(p.src.addr),
                };
                match self.templates.lookup(&key) {
                    Some(t) => {
                        let dest = self.templates.get(t).dest;
                        if let Some(i) = self.dests.current_index(dest) {
                            if ss.dest_ids.get(i) == Some(&dest) {
                                return Ok((i, dest, t));
                            }
                        }
                        Some((key, Some(t)))
                    }
                    None => Some((key, None)),
                }
            }
        };
        let candidates = Candidates {
            reals: &service.reals,
            loads: Loads::new(self.dests.loads(), &ss.dest_ids),
            src: p.src,
            dst: p.dst,
            now_ms,
        };
        let i = ss.sched.pick(&candidates).ok_or(DropReason::NoRealServer)?;
        let dest = ss.dest_ids[i];
        let template = match template {
            None => NO_TEMPLATE,
            Some((_, Some(t))) => {
                let old = self.templates.get(t).dest;
                self.dests.release_template(old);
                self.templates.retarget(t, dest);
                self.dests.hold_template(dest);
                t
            }
            Some((key, None)) => {
                let timeout = service
                    .persistence
                    .map_or(0, |p| u64::from(p.timeout_s) * 1000);
                let t = self
                    .templates
                    .insert(key, dest, timeout, now_ms)
                    .map_err(|_| DropReason::TemplatesFull)?;
                self.dests.hold_template(dest);
                t
            }
        };
        Ok((i, dest, template))
    }

    /// A free local endpoint on one of `addrs` towards `real` from this worker's share of the
    /// (local address, port) pairs: with `steering` shared by hash, the pairs whose endpoint
    /// hashes to this worker; otherwise the ports `p` with `(p - 1024) mod W` = this worker.
    ///
    /// The walk hands out every pair of the share in turn before it comes back to one (as
    /// DPVS's FIFO of free ports), skipping those in use towards `real`, and it never falls
    /// behind the wall clock's position in the walk: a real server may still hold a pair that
    /// rvs freed (TIME_WAIT, 60 s on Linux) and would answer a new SYN on it with a bare ACK,
    /// so neither churn nor a restart may bring a pair back early.
    fn local_endpoint(
        &mut self,
        protocol: u8,
        addrs: &[Ipv4Addr],
        real: Endpoint,
        now_ms: u64,
        steering: Option<&Steering>,
    ) -> Option<Endpoint> {
        if addrs.is_empty() {
            return None;
        }
        // By hash, every worker walks all pairs and keeps its own (1 in W); by modulo, the
        // walk steps over this worker's ports only.
        let by_hash = steering.filter(|s| s.fullnat_share() == FullnatShare::Hash);
        let (stride, offset, tries) = match by_hash {
            Some(_) => (1, 0, LOCAL_PORT_TRIES * self.workers as u32),
            None => (self.workers as u32, self.worker as u32, LOCAL_PORT_TRIES),
        };
        let share = u64::from(LOCAL_PORT_COUNT / stride);
        let pairs = share * addrs.len() as u64;
        let clock = u128::from(self.wall_clock_origin_ms.saturating_add(now_ms));
        let floor = (clock * u128::from(pairs) / u128::from(LOCAL_WALK_PERIOD_MS)) as u64;
        self.local_cursor = self.local_cursor.max(floor);
        for _ in 0..tries {
            // Every pair in turn: A addresses give A times the ports (stepping address and
            // port together would repeat after lcm(A, share) pairs, as few as one address's).
            self.local_cursor += 1;
            let pair = self.local_cursor % pairs;
            let addr = addrs[(pair % addrs.len() as u64) as usize];
            let index = (pair / addrs.len() as u64) as u32;
            let local = Endpoint::new(addr, (LOCAL_PORT_FIRST + index * stride + offset) as u16);
            if by_hash.is_some_and(|s| s.client_owner(local) != self.worker) {
                continue;
            }
            if self
                .conns
                .reply_key_free(&FlowKey::new(protocol, real, local))
            {
                return Some(local);
            }
        }
        None
    }
}

/// A connection ended: its server's counters and its template's count.
#[inline]
fn unbind(dests: &mut DestTable, templates: &mut TemplateTable, conn: &Conn) {
    dests.unbind(conn.dest, conn.is_active());
    if conn.template != NO_TEMPLATE {
        templates.release(conn.template);
    }
}

/// Whether a scheduler would see the same servers: addresses and weights in the same order
/// (a resolved next hop or a new threshold changes nothing for it).
fn same_servers(a: &[RealServer], b: &[RealServer]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.addr == y.addr && x.weight == y.weight)
}

fn same_flags(old: &ServiceState, new: &Service) -> bool {
    match &old.sched {
        SchedulerState::Sh(_) | SchedulerState::Mh(_) => {
            // Flags live in the state; the kind check above is not enough.
            old_flags(&old.sched) == new.flags
        }
        _ => true,
    }
}

fn old_flags(s: &SchedulerState) -> crate::sched::SchedFlags {
    match s {
        SchedulerState::Sh(s) => s.flags(),
        SchedulerState::Mh(s) => s.flags(),
        _ => crate::sched::SchedFlags::default(),
    }
}

/// Prefetches the connections of a burst before any of its packets is processed, in two
/// passes: every packet's index bucket (computed from the hash alone), then, once those are
/// on their way, every packet's connection slot. At a million connections the cache misses of
/// 32 packets then overlap instead of following one another. Reads only the headers' fixed
/// fields and checks nothing (`process` checks everything); at most [`PREFETCH_BURST`].
///
/// Below [`PREFETCH_MIN_CONNECTIONS`] the table sits in the core's own cache and the passes
/// would only add work (about 10% per packet at 1k connections, measured), so it does nothing.
///
/// For [`process`] alone (the full path's tests and the engine benchmark's comparison): the
/// worker stages its bursts instead ([`stage`]), which parses and hashes each packet once for
/// both the prefetch and the processing.
#[inline]
pub fn prefetch<'a, F: Frame + 'a>(frames: impl Iterator<Item = &'a F>, state: &WorkerState) {
    if state.conns.len() < PREFETCH_MIN_CONNECTIONS {
        return;
    }
    let mut hashes = [0u64; PREFETCH_BURST];
    let mut n = 0;
    for frame in frames.take(PREFETCH_BURST) {
        if let Some(key) = flow_key(frame.bytes()) {
            hashes[n] = state.conns.prefetch_bucket(&key);
            n += 1;
        }
    }
    for &hash in &hashes[..n] {
        state.conns.prefetch_slot(hash);
    }
}

/// The most packets [`prefetch`] looks at (a DPDK burst).
pub const PREFETCH_BURST: usize = 32;

/// Connections from which [`prefetch`] pays: 16k connections are about 1.5 MiB of slots and
/// index, what a core's L2 holds on the machines rvs is measured on (2 MiB).
pub const PREFETCH_MIN_CONNECTIONS: usize = 16 * 1024;

/// The flow key of an IPv4 TCP/UDP frame, from fixed offsets, unchecked.
#[inline]
fn flow_key(b: &[u8]) -> Option<FlowKey> {
    if b.len() < L3 + 20 || b[12..14] != [0x08, 0x00] {
        return None;
    }
    let protocol = b[L3 + 9];
    let l4 = L3 + usize::from(b[L3] & 0x0f) * 4;
    if !(protocol == ipv4::PROTO_TCP || protocol == ipv4::PROTO_UDP) || b.len() < l4 + 4 {
        return None;
    }
    let addr = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
    let port = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    Some(FlowKey::new(
        protocol,
        Endpoint::new(addr(L3 + 12), port(l4)),
        Endpoint::new(addr(L3 + 16), port(l4 + 2)),
    ))
}

/// Decides what to do with `frame`, received on port `in_port`, rewriting it in place for
/// every verdict but `Drop`, `SlowPath` and `HandOff` (which leave it untouched). With several
/// workers (`snapshot.steering`), a packet whose connection another worker owns is handed to
/// it (`HandOff`) before anything looks for or decides about a connection.
#[inline(always)]
pub fn process(
    frame: &mut impl Frame,
    in_port: usize,
    snapshot: &Snapshot,
    state: &mut WorkerState,
    now_ms: u64,
) -> Verdict {
    decide(frame, in_port, snapshot, state, now_ms, true, None)
}

/// [`process`] for a packet another worker handed to this one: it is this worker's by the
/// owner function, so it is never handed on again (even if a reload changed the services in
/// between, which could otherwise bounce it).
#[inline(always)]
pub fn process_handed_in(
    frame: &mut impl Frame,
    in_port: usize,
    snapshot: &Snapshot,
    state: &mut WorkerState,
    now_ms: u64,
) -> Verdict {
    decide(frame, in_port, snapshot, state, now_ms, false, None)
}

#[inline(always)]
fn decide(
    frame: &mut impl Frame,
    in_port: usize,
    snapshot: &Snapshot,
    state: &mut WorkerState,
    now_ms: u64,
    steer: bool,
    hashed: Option<(FlowKey, u64)>,
) -> Verdict {
    let Some(port) = snapshot.ports.get(in_port) else {
        return Verdict::Drop(DropReason::NotForUs);
    };
    let at = At {
        in_port,
        port,
        snapshot,
        now_ms,
        steer,
        hashed,
    };
    if let Some(owner) = at.owner_by_headers(frame.bytes(), state.worker) {
        return Verdict::HandOff(owner);
    }
    match handle(frame, &at, state) {
        Ok(verdict) => verdict,
        Err(reason) => Verdict::Drop(reason),
    }
}

/// Where and when a packet is being decided.
struct At<'a> {
    in_port: usize,
    port: &'a PortAddrs,
    snapshot: &'a Snapshot,
    now_ms: u64,
    /// Whether to hand a packet another worker owns to it.
    steer: bool,
    /// A flow key and its connection-table hash the staged burst computed for this packet
    /// (used only if the packet's own key is that one).
    hashed: Option<(FlowKey, u64)>,
}

impl At<'_> {
    /// The worker other than `me` that owns the TCP/UDP packet in `b`, read from where its
    /// headers put the protocol, addresses and ports, before anything is verified (its owner
    /// verifies everything): a hand-off costs the receiver no more than this. `None` for what
    /// the receiver handles itself (ARP, ICMP: an error is steered once its quote is parsed,
    /// fragments without ports).
    #[inline]
    fn owner_by_headers(&self, b: &[u8], me: usize) -> Option<usize> {
        if !self.steer || self.snapshot.steering.is_none() {
            return None;
        }
        let key = flow_key(b)?;
        if u16::from_be_bytes([b[L3 + 6], b[L3 + 7]]) & 0x1fff != 0 {
            return None;
        }
        self.owner_elsewhere(me, key.protocol, key.src, key.dst)
    }

    /// The worker other than `me` that owns a TCP/UDP packet `src -> dst`, if any (see
    /// `steer`). Only with several workers, and never for a packet already handed over.
    #[inline]
    fn owner_elsewhere(
        &self,
        me: usize,
        protocol: u8,
        src: Endpoint,
        dst: Endpoint,
    ) -> Option<usize> {
        if !self.steer {
            return None;
        }
        let steering = self.snapshot.steering.as_deref()?;
        let snapshot = self.snapshot;
        let vip = snapshot.vip_addrs.iter().find(|(a, _)| *a == dst.addr);
        let kind = match vip.map(|(_, kind)| *kind) {
            Some(VipKind::ClientOwned) => FlowKind::ToService,
            Some(VipKind::Receiver) => FlowKind::ToReceiver,
            Some(VipKind::Mixed) => match snapshot.service(protocol, dst) {
                Some((_, service)) if service.mode.sees_replies() => FlowKind::ToService,
                _ => FlowKind::ToReceiver,
            },
            None if snapshot.is_local_address(dst.addr) => FlowKind::ToLocalAddress,
            None if self.port.owns(dst.addr) => FlowKind::ToReceiver,
            None => FlowKind::ToElsewhere,
        };
        match steering.flow_owner(kind, src, dst) {
            Owner::Worker(w) if w != me => Some(w),
            _ => None,
        }
    }
}

type Outcome = Result<Verdict, DropReason>;

#[inline(always)]
fn handle(frame: &mut impl Frame, at: &At<'_>, state: &mut WorkerState) -> Outcome {
    let (in_port, port, snapshot) = (at.in_port, at.port, at.snapshot);
    let eth = ethernet::Frame::new_checked(frame.bytes()).map_err(|_| DropReason::Malformed)?;
    let dst = eth.dst();
    if dst != port.mac && dst != ethernet::BROADCAST {
        // VRRP adverts to the group: the control thread checks and counts them.
        return if (snapshot.vrrp && dst == VRRP_GROUP_MAC && is_vrrp(frame.bytes()))
            || (snapshot.sync_backup && is_multicast_udp(&dst, frame.bytes()))
        {
            Ok(Verdict::SlowPath)
        } else {
            Err(DropReason::NotForUs)
        };
    }
    if ethernet::is_multicast(&eth.src()) {
        return Err(DropReason::MartianSource);
    }
    match eth.ethertype() {
        ethernet::ETHERTYPE_ARP => arp_packet(frame.bytes_mut(), in_port, port, snapshot),
        ethernet::ETHERTYPE_IPV4 if dst == port.mac => ipv4_packet(frame, at, state),
        // A broadcast IPv4 frame is for no connection and no address of ours.
        ethernet::ETHERTYPE_IPV4 => Err(DropReason::NotForUs),
        _ => Err(DropReason::UnsupportedEthertype),
    }
}

/// ARP, by Linux's `arp_process` rules. A sender address no host can have (zero, loopback,
/// multicast, broadcast, class E, a connected subnet's network or broadcast address, one of
/// rvs's own) is neither answered nor learnt; the one exception is a duplicate-address probe
/// (sender 0.0.0.0, RFC 5227) for one of rvs's addresses, which is answered so that the
/// prober does not take the address, and teaches nothing. A request for one of rvs's addresses
/// is answered here, unless its sender is a next hop whose MAC the snapshot does not have:
/// then the control thread learns it and answers (`SlowPath`). Replies, announcements and
/// requests for others go to the control thread, which learns next hops from them.
fn arp_packet(frame: &mut [u8], in_port: usize, port: &PortAddrs, snapshot: &Snapshot) -> Outcome {
    let (operation, sender, sender_mac, target) = {
        let packet = arp::Packet::new_checked(&frame[ethernet::HEADER_LEN..])
            .map_err(|_| DropReason::Malformed)?;
        (
            packet.operation(),
            packet.sender_ip(),
            packet.sender_mac(),
            packet.target_ip(),
        )
    };
    if ethernet::is_multicast(&sender_mac) {
        return Err(DropReason::MartianSource);
    }
    let request_for_us = operation == arp::OP_REQUEST && sender != target && port.owns(target);
    if sender.is_unspecified() {
        return if request_for_us {
            answer_arp(frame, port.mac)
        } else {
            Err(DropReason::MartianSource)
        };
    }
    if is_martian(sender) || snapshot.is_subnet_edge(sender) || port.owns(sender) {
        return Err(DropReason::MartianSource);
    }
    if !request_for_us || snapshot.neighbor_news(in_port, sender, sender_mac) {
        return Ok(Verdict::SlowPath);
    }
    answer_arp(frame, port.mac)
}

/// Turns an ARP request for one of rvs's addresses (checked by the caller) into its reply,
/// from `mac`, in place. Also for the control thread, which answers the requests it learns
/// from.
pub fn answer_arp(frame: &mut [u8], mac: [u8; 6]) -> Outcome {
    let mut eth = ethernet::Frame::new_checked(frame).map_err(|_| DropReason::Malformed)?;
    let requester = eth.src();
    let mut packet =
        arp::Packet::new_checked(eth.payload_mut()).map_err(|_| DropReason::Malformed)?;
    let (target, sender) = (packet.target_ip(), packet.sender_ip());
    packet.set_operation(arp::OP_REPLY);
    packet.set_target(packet.sender_mac(), sender);
    packet.set_sender(mac, target);
    eth.set_dst(requester);
    eth.set_src(mac);
    Ok(Verdict::Reply(Answer::Arp))
}

/// VRRP's IP protocol number and the Ethernet address of its group 224.0.0.18.
const PROTO_VRRP: u8 = 112;
const VRRP_GROUP_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];

/// An IPv4 frame carrying VRRP (the control thread checks the rest).
fn is_vrrp(frame: &[u8]) -> bool {
    frame.len() > L3 + 9 && frame[12..14] == [0x08, 0x00] && frame[L3 + 9] == PROTO_VRRP
}

/// An IPv4 multicast frame carrying UDP (connection sync, to the control thread).
fn is_multicast_udp(dst: &[u8; 6], frame: &[u8]) -> bool {
    dst[..3] == [0x01, 0x00, 0x5e]
        && frame.len() > L3 + 9
        && frame[12..14] == [0x08, 0x00]
        && frame[L3 + 9] == ipv4::PROTO_UDP
}

/// A source no host can have: 0.0.0.0/8, 127.0.0.0/8, multicast 224.0.0.0/4, and the
/// reserved 240.0.0.0/4 with the limited broadcast 255.255.255.255 in it.
#[inline]
fn is_martian(addr: Ipv4Addr) -> bool {
    let first = addr.octets()[0];
    first == 0 || first == 127 || first >= 224
}

const L3: usize = ethernet::HEADER_LEN;

#[inline(always)]
fn ipv4_packet(frame: &mut impl Frame, at: &At<'_>, state: &mut WorkerState) -> Outcome {
    let (in_port, port, snapshot, now_ms) = (at.in_port, at.port, at.snapshot, at.now_ms);
    let (src, dst, protocol, header_len, total_len, fragment) = {
        let ip =
            ipv4::Packet::new_checked(&frame.bytes()[L3..]).map_err(|_| DropReason::Malformed)?;
        if !frame
            .rx_ip_checksum()
            .unwrap_or_else(|| ip.verify_checksum())
        {
            return Err(DropReason::IpChecksum);
        }
        if ip.header_len() > ipv4::MIN_HEADER_LEN {
            ipv4::check_options(ip.options()).map_err(|e| match e {
                ipv4::OptionsError::Malformed => DropReason::IpOptions,
                ipv4::OptionsError::SourceRoute => DropReason::SourceRoute,
            })?;
        }
        (
            ip.src(),
            ip.dst(),
            ip.protocol(),
            ip.header_len(),
            ip.total_len(),
            ip.is_fragment(),
        )
    };
    if is_martian(src) || port.owns(src) || snapshot.is_subnet_edge(src) {
        return Err(DropReason::MartianSource);
    }
    if !snapshot.standby.is_empty() && snapshot.standby.contains(&dst) {
        return Err(DropReason::NotMaster);
    }
    let l4 = L3 + header_len;
    let end = L3 + total_len;
    if fragment && port.for_kernel(dst) {
        // rvs reassembles nothing; the kernel does, for its own sockets.
        return Ok(Verdict::ToKernel { urgent: false });
    }
    match protocol {
        ipv4::PROTO_TCP | ipv4::PROTO_UDP => {
            if fragment {
                return Err(DropReason::Fragment);
            }
            // Its owner was decided from its headers before (`owner_by_headers`).
            let p = parse_l4(frame.bytes(), protocol, l4, end, src, dst)?;
            transport(frame, in_port, port, snapshot, state, now_ms, &p, at.hashed)
        }
        ipv4::PROTO_ICMP => {
            if fragment {
                return Err(DropReason::Fragment);
            }
            icmp_packet(frame, at, state, l4, end, dst)
        }
        // Unicast VRRP adverts (`unicast_peer`).
        PROTO_VRRP if snapshot.vrrp && port.owns(dst) => Ok(Verdict::SlowPath),
        _ if port.for_kernel(dst) => Ok(Verdict::ToKernel { urgent: false }),
        _ if port.owns(dst) => Err(DropReason::UnsupportedProtocol),
        _ => Err(DropReason::NotForUs),
    }
}

/// BGP (TCP 179, either side) and BFD (UDP 3784 single hop, 3785 echo): what keeps the
/// appliance's routes, and so its traffic, alive.
#[inline]
fn is_control_protocol(p: &Parsed) -> bool {
    match p.protocol {
        ipv4::PROTO_TCP => p.dst.port == 179 || p.src.port == 179,
        _ => matches!(p.dst.port, 3784 | 3785),
    }
}

fn parse_l4(
    b: &[u8],
    protocol: u8,
    l4: usize,
    end: usize,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Result<Parsed, DropReason> {
    let segment = &b[l4..end];
    let (sport, dport, flags) = if protocol == ipv4::PROTO_TCP {
        let t = tcp::Packet::new_checked(segment).map_err(|_| DropReason::Malformed)?;
        (t.src_port(), t.dst_port(), t.flags())
    } else {
        if segment.len() < 8 {
            return Err(DropReason::Malformed);
        }
        let len = usize::from(u16::from_be_bytes([segment[4], segment[5]]));
        if len < 8 || len > segment.len() {
            return Err(DropReason::Malformed);
        }
        (
            u16::from_be_bytes([segment[0], segment[1]]),
            u16::from_be_bytes([segment[2], segment[3]]),
            0,
        )
    };
    if sport == 0 || dport == 0 {
        return Err(DropReason::Malformed);
    }
    Ok(Parsed {
        l3: L3,
        l4,
        end,
        protocol,
        src: Endpoint::new(src, sport),
        dst: Endpoint::new(dst, dport),
        tcp_flags: flags,
    })
}

#[allow(clippy::too_many_arguments)]
fn transport(
    frame: &mut impl Frame,
    in_port: usize,
    port: &PortAddrs,
    snapshot: &Snapshot,
    state: &mut WorkerState,
    now_ms: u64,
    p: &Parsed,
    hashed: Option<(FlowKey, u64)>,
) -> Outcome {
    let key = p.key();
    let found = match hashed {
        Some((staged, hash)) if staged == key => state
            .conns
            .find_hashed(hash, &key)
            .map(|(index, direction)| (state.conns.id_at(index), direction)),
        _ => state.conns.lookup(&key),
    };
    if let Some((id, direction)) = found {
        let conn = *state.conns.get(id).ok_or(DropReason::NoConnection)?;
        if snapshot.expire_nodest_conn && state.lost_its_server(snapshot, &conn) {
            // IPVS's expire_nodest_conn: the connection ends here; a reply is dropped, and
            // the client's packet goes on as one of no connection (a segment is answered
            // with a reset, a SYN or datagram is scheduled afresh).
            state.remove(id);
            state.nodest_expired += 1;
            if direction == Direction::Reply {
                return Err(DropReason::NoConnection);
            }
        } else if direction == Direction::Original && is_lone_syn(p) && reusable(&conn) {
            // The client reuses the ports of a connection that is over: as IPVS's
            // conn_reuse_mode, end the old entry and schedule the new connection afresh.
            state.remove(id);
        } else {
            if conn.synced && direction == Direction::Original {
                // A connection synced from the previous master learns its client's last hop
                // from the client's packets (before they are rewritten).
                state.learn_last_hop(id, in_port, frame.bytes());
            }
            // Forward first: a packet that cannot leave does not advance the state machine.
            let verdict = forward(frame, port, snapshot, &conn, direction, p, false)?;
            state.dests.count(
                conn.dest,
                direction == Direction::Original,
                ip_length(frame.bytes()),
            );
            state.update(id, &conn, direction, p.tcp_flags, now_ms);
            if snapshot.sync_master && direction == Direction::Original {
                state.note_for_sync(id, conn.state, snapshot);
            }
            // A connection that was ESTABLISHED before this packet (UDP always is) gets its
            // rewrite for the fast path: its next packets this way take it. Not sooner: a
            // short connection (SYN, data, FIN) would pay for a rewrite it never uses.
            if matches!(verdict, Verdict::Forward { .. })
                && conn.state == TcpState::Established
                && !conn.synced
                && !state
                    .conns
                    .fast_ready(id, direction, snapshot.generation as u32, in_port)
            {
                state.prepare_fast(id, direction, in_port, snapshot);
            }
            return Ok(verdict);
        }
    }
    if !port.owns(p.dst.addr) && !snapshot.routed.contains(&p.dst.addr) {
        return Err(DropReason::NotForUs);
    }
    let Some((service_index, service)) = snapshot.service(p.protocol, p.dst) else {
        // The appliance's own traffic: ssh, a checker's or a BGP session's answers.
        return if port.for_kernel(p.dst.addr) {
            Ok(Verdict::ToKernel {
                urgent: is_control_protocol(p),
            })
        } else {
            Err(DropReason::NoService)
        };
    };
    // As IPVS: only a SYN (no ACK, RST or FIN) may start a TCP connection. Anything else is
    // answered with a reset, as the director's kernel does behind IPVS, so that a client whose
    // connection rvs lost (a restart, an eviction) hears it at once. This worker owns the
    // flow (requests reach the worker that created their connection), so "no connection" is
    // its to say. With `sloppy_tcp` (a hashing scheduler, DR or TUN), any segment but a reset
    // creates the connection: in an ECMP cluster it is a flow the routers moved here from
    // another node, and the scheduler gives it the server that node gave it.
    let sloppy = p.protocol == ipv4::PROTO_TCP
        && !is_lone_syn(p)
        && service.sloppy_tcp
        && p.tcp_flags & tcp::FLAG_RST == 0;
    if p.protocol == ipv4::PROTO_TCP && !is_lone_syn(p) && !sloppy {
        if p.tcp_flags & tcp::FLAG_RST == 0
            && state.may_reset(snapshot.tcp_resets_per_second, now_ms)
            && forward::reset::answer_with_reset(frame, p, port.mac)
        {
            return Ok(Verdict::Reply(Answer::Reset));
        }
        return Err(DropReason::NoConnection);
    }
    state.sync(snapshot);
    let (real_index, dest, template) =
        state.schedule(service_index as usize, service, p, now_ms)?;
    let real = service.reals[real_index].addr;
    let local = match service.mode {
        ForwardMode::FullNat => state
            .local_endpoint(
                p.protocol,
                &service.local_addrs,
                real,
                now_ms,
                snapshot.steering.as_deref(),
            )
            .ok_or(DropReason::NoLocalPort)?,
        _ => p.src,
    };
    let client_mac: [u8; 6] = frame.bytes()[6..12].try_into().expect("Ethernet source");
    let conn = Conn {
        protocol: p.protocol,
        client: p.src,
        vip: p.dst,
        local,
        real,
        mode: service.mode,
        dest,
        template,
        client_port: in_port as u8,
        client_mac,
        state: TcpState::None,
        in_pkts: 1,
        synced: false,
    };
    let verdict = forward(frame, port, snapshot, &conn, Direction::Original, p, true)?;
    if !matches!(verdict, Verdict::Forward { .. }) {
        // Answered instead (TTL ran out, too big for the tunnel): no connection.
        return Ok(verdict);
    }
    let mut inserted = state.conns.insert(conn, now_ms);
    if inserted == Err(InsertError::Full) && p.protocol == ipv4::PROTO_TCP {
        // A SYN flood cannot lock new clients out: the oldest half-open connection gives way.
        if let Some(evicted) = state.conns.evict_embryonic() {
            unbind(&mut state.dests, &mut state.templates, &evicted);
            inserted = state.conns.insert(conn, now_ms);
        }
    }
    match inserted {
        Ok(id) => {
            let conn = *state.conns.get(id).ok_or(DropReason::NoConnection)?;
            state.dests.bind(dest, conn.is_active());
            state.dests.count_new(dest, ip_length(frame.bytes()));
            if template != NO_TEMPLATE {
                let timeout = service
                    .persistence
                    .map_or(0, |p| u64::from(p.timeout_s) * 1000);
                state.templates.control(template, timeout, now_ms);
            }
            state.update(id, &conn, Direction::Original, p.tcp_flags, now_ms);
            state.sloppy_created += u64::from(sloppy);
            Ok(verdict)
        }
        Err(InsertError::Full) => Err(DropReason::TableFull),
        Err(InsertError::Exists) => Err(DropReason::NoLocalPort),
    }
}

/// The IP length of a frame as it leaves (what IPVS counts as bytes: `skb->len`).
#[inline]
fn ip_length(frame: &[u8]) -> u64 {
    frame.len().saturating_sub(ethernet::HEADER_LEN) as u64
}

/// A TCP segment that opens a connection: SYN without ACK, RST or FIN.
#[inline]
fn is_lone_syn(p: &Parsed) -> bool {
    let f = p.tcp_flags;
    p.protocol == ipv4::PROTO_TCP
        && f & tcp::FLAG_SYN != 0
        && f & (tcp::FLAG_ACK | tcp::FLAG_RST | tcp::FLAG_FIN) == 0
}

/// Whether a new SYN may replace this connection (IPVS `conn_reuse_mode` 3): it is closing
/// down (TIME_WAIT, CLOSE) or, where rvs sees only the client side (DR, TUN), the client has
/// already sent its FIN.
#[inline]
fn reusable(conn: &Conn) -> bool {
    match conn.state {
        TcpState::TimeWait | TcpState::Close => true,
        TcpState::FinWait => !conn.mode.sees_replies(),
        _ => false,
    }
}

/// Rewrites a packet of `conn` travelling `direction` for its next hop.
#[allow(clippy::too_many_arguments)]
fn forward(
    frame: &mut impl Frame,
    port: &PortAddrs,
    snapshot: &Snapshot,
    conn: &Conn,
    direction: Direction,
    p: &Parsed,
    created: bool,
) -> Outcome {
    let (out_port, next_mac) = match direction {
        Direction::Original => snapshot
            .next_hop(conn.real.addr)
            .ok_or(DropReason::NoNeighbor)?,
        // A synced connection whose client has not spoken yet has no last hop.
        Direction::Reply if conn.synced && conn.client_mac == [0; 6] => {
            return Err(DropReason::NoNeighbor)
        }
        Direction::Reply => (usize::from(conn.client_port), conn.client_mac),
    };
    let out = snapshot.ports.get(out_port).ok_or(DropReason::NoNeighbor)?;
    if !forward::decrement_ttl(frame.bytes_mut(), p.l3) {
        return time_exceeded(frame, p.l3, p.ip_len(), port);
    }
    let buf = frame.bytes_mut();
    match (conn.mode, direction) {
        (ForwardMode::Nat, Direction::Original) => nat::to_real(buf, p, conn.real),
        (ForwardMode::Nat, Direction::Reply) => nat::to_client(buf, p, conn.vip),
        (ForwardMode::FullNat, Direction::Original) => {
            fullnat::to_real(buf, p, conn.local, conn.real)
        }
        (ForwardMode::FullNat, Direction::Reply) => {
            fullnat::to_client(buf, p, conn.vip, conn.client)
        }
        (ForwardMode::Dr, Direction::Original) => {}
        (ForwardMode::Tun, Direction::Original) => {
            let outer_src = out.primary.ok_or(DropReason::NoNeighbor)?;
            if let Some(answer) = encapsulate(
                frame,
                port,
                p.l3,
                p.ip_len(),
                outer_src,
                conn.real.addr,
                out.mtu,
            )? {
                return Ok(answer);
            }
        }
        // DR and TUN replies never pass through rvs and are not indexed.
        (ForwardMode::Dr | ForwardMode::Tun, Direction::Reply) => {
            return Err(DropReason::NoConnection)
        }
    }
    dr::to_real(frame.bytes_mut(), out.mac, next_mac);
    Ok(Verdict::Forward {
        port: out_port,
        created,
    })
}

/// Wraps the datagram for a TUN real server. `Ok(Some(reply))` when it does not fit with DF
/// set: the frame became an ICMP fragmentation-needed for the sender (`port` is the ingress).
#[allow(clippy::too_many_arguments)]
fn encapsulate(
    frame: &mut impl Frame,
    port: &PortAddrs,
    l3: usize,
    ip_len: usize,
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    mtu: u16,
) -> Result<Option<Verdict>, DropReason> {
    match tun::encapsulate(frame, l3, ip_len, outer_src, outer_dst, mtu) {
        Ok(()) => Ok(None),
        Err(tun::TunError::NeedsFragNeeded { mtu }) => {
            let src = port.primary.ok_or(DropReason::TooBig)?;
            if icmp_error::answer_with_error(
                frame,
                l3,
                ip_len,
                ErrorKind::frag_needed(mtu),
                src,
                port.mac,
            ) {
                Ok(Some(Verdict::Reply(Answer::FragNeeded)))
            } else {
                Err(DropReason::TooBig)
            }
        }
        Err(tun::TunError::TooBig | tun::TunError::NoHeadroom) => Err(DropReason::TooBig),
    }
}

fn time_exceeded(frame: &mut impl Frame, l3: usize, ip_len: usize, port: &PortAddrs) -> Outcome {
    let src = port.primary.ok_or(DropReason::TtlExceeded)?;
    if icmp_error::answer_with_error(frame, l3, ip_len, ErrorKind::TIME_EXCEEDED, src, port.mac) {
        Ok(Verdict::Reply(Answer::TimeExceeded))
    } else {
        Err(DropReason::TtlExceeded)
    }
}

fn icmp_packet(
    frame: &mut impl Frame,
    at: &At<'_>,
    state: &mut WorkerState,
    l4: usize,
    end: usize,
    dst: Ipv4Addr,
) -> Outcome {
    let (port, snapshot) = (at.port, at.snapshot);
    let (msg_type, code, is_error) = {
        let m = icmp::Packet::new_checked(&frame.bytes()[l4..end])
            .map_err(|_| DropReason::Malformed)?;
        (m.msg_type(), m.code(), m.is_error())
    };
    if msg_type == icmp::TYPE_ECHO_REQUEST && (port.owns(dst) || snapshot.routed.contains(&dst)) {
        if code != 0 {
            return Err(DropReason::UnsupportedProtocol);
        }
        return answer_echo(frame.bytes_mut(), l4, end, port);
    }
    let kernel = port.for_kernel(dst);
    if !is_error {
        // Echo replies to the kernel's pings, timestamps, ...
        return if kernel {
            Ok(Verdict::ToKernel { urgent: false })
        } else if port.owns(dst) {
            Err(DropReason::UnsupportedProtocol)
        } else {
            Err(DropReason::NotForUs)
        };
    }
    // An error about no connection of rvs's, to an address the kernel holds, is about the
    // kernel's own traffic (a checker's datagram to a closed port).
    let not_ours = || {
        if kernel {
            Ok(Verdict::ToKernel { urgent: false })
        } else {
            Err(DropReason::NoConnection)
        }
    };
    let Some(quoted) = icmp_error::parse(frame.bytes(), L3, l4, end) else {
        return not_ours();
    };
    // The quote is a packet the error's sender received; its reverse is a packet of the
    // connection, and names the owner.
    let key = quoted.reply_key();
    if let Some(owner) = at.owner_elsewhere(state.worker, key.protocol, key.src, key.dst) {
        return Ok(Verdict::HandOff(owner));
    }
    let Some((id, direction)) = state.conns.lookup(&key) else {
        return not_ours();
    };
    let conn = *state.conns.get(id).ok_or(DropReason::NoConnection)?;
    translate_error(frame, port, snapshot, &conn, direction, &quoted)
}

/// Passes an ICMP error about `conn` on to the other side with the addresses it knows.
/// `direction` is that of the packets the error's sender sends: `Reply` means the real
/// server complains about what rvs sent it; `Original` the client side about a reply.
fn translate_error(
    frame: &mut impl Frame,
    port: &PortAddrs,
    snapshot: &Snapshot,
    conn: &Conn,
    direction: Direction,
    q: &QuotedFlow,
) -> Outcome {
    let t = match (conn.mode, direction) {
        (ForwardMode::Nat, Direction::Reply) => Translation {
            outer_src: Some(conn.vip.addr),
            quoted_dst: Some(conn.vip),
            ..Default::default()
        },
        (ForwardMode::FullNat, Direction::Reply) => Translation {
            outer_src: Some(conn.vip.addr),
            outer_dst: Some(conn.client.addr),
            quoted_src: Some(conn.client),
            quoted_dst: Some(conn.vip),
        },
        (ForwardMode::Nat, Direction::Original) => Translation {
            outer_dst: Some(conn.real.addr),
            quoted_src: Some(conn.real),
            ..Default::default()
        },
        (ForwardMode::FullNat, Direction::Original) => Translation {
            outer_src: Some(conn.local.addr),
            outer_dst: Some(conn.real.addr),
            quoted_src: Some(conn.real),
            quoted_dst: Some(conn.local),
        },
        // DR/TUN: the client side's error about a reply goes to the real server unchanged.
        (ForwardMode::Dr | ForwardMode::Tun, Direction::Original) => Translation::default(),
        (ForwardMode::Dr | ForwardMode::Tun, Direction::Reply) => {
            return Err(DropReason::NoConnection)
        }
    };
    let (out_port, next_mac) = match direction {
        Direction::Reply => (usize::from(conn.client_port), conn.client_mac),
        Direction::Original => snapshot
            .next_hop(conn.real.addr)
            .ok_or(DropReason::NoNeighbor)?,
    };
    let out = snapshot.ports.get(out_port).ok_or(DropReason::NoNeighbor)?;
    let ip_len = q.end - q.l3;
    if !forward::decrement_ttl(frame.bytes_mut(), q.l3) {
        // No error about an error (RFC 1122 3.2.2).
        return Err(DropReason::TtlExceeded);
    }
    icmp_error::translate(frame.bytes_mut(), q, t);
    if conn.mode == ForwardMode::Tun && direction == Direction::Original {
        let outer_src = out.primary.ok_or(DropReason::NoNeighbor)?;
        if let Some(answer) = encapsulate(
            frame,
            port,
            q.l3,
            ip_len,
            outer_src,
            conn.real.addr,
            out.mtu,
        )? {
            return Ok(answer);
        }
    }
    dr::to_real(frame.bytes_mut(), out.mac, next_mac);
    Ok(Verdict::Forward {
        port: out_port,
        created: false,
    })
}

fn answer_echo(frame: &mut [u8], l4: usize, end: usize, port: &PortAddrs) -> Outcome {
    {
        let mut echo =
            icmp::Packet::new_checked(&mut frame[l4..end]).map_err(|_| DropReason::Malformed)?;
        if !echo.verify_checksum() {
            return Err(DropReason::IcmpChecksum);
        }
        echo.set_msg_type(icmp::TYPE_ECHO_REPLY);
        // A full sum, not RFC 1624: an all-zero echo (ident, sequence and data 0) needs 0xffff,
        // which the incremental update would give as 0x0000. Echo is not the fast path.
        echo.fill_checksum();
    }
    let mut eth = ethernet::Frame::new_unchecked(frame);
    let requester = eth.src();
    let mut ip = ipv4::Packet::new_unchecked(eth.payload_mut());
    let (src, dst) = (ip.src(), ip.dst());
    // Swapping the addresses leaves the header sum as it was; only the TTL word changes.
    let old = u16::from_be_bytes([ip.ttl(), ipv4::PROTO_ICMP]);
    ip.set_src(dst);
    ip.set_dst(src);
    ip.set_ttl(REPLY_TTL);
    let new = u16::from_be_bytes([REPLY_TTL, ipv4::PROTO_ICMP]);
    ip.set_checksum(checksum::update_word(ip.checksum(), old, new));
    eth.set_dst(requester);
    eth.set_src(port.mac);
    Ok(Verdict::Reply(Answer::IcmpEcho))
}

/// A broadcast ARP request from `mac`/`ip` for `target` (the control thread resolves
/// next hops with it), padded to the Ethernet minimum.
pub fn arp_request(mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) -> [u8; 60] {
    let mut f = [0u8; 60];
    ethernet::Repr {
        dst: ethernet::BROADCAST,
        src: mac,
        ethertype: ethernet::ETHERTYPE_ARP,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
    arp::Repr {
        operation: arp::OP_REQUEST,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: [0; 6],
        target_ip: target,
    }
    .emit(&mut arp::Packet::new_unchecked(&mut f[14..42]));
    f
}

mod fast;
pub use fast::{process_staged, stage, stage_each, Desc, Staged, BURST};

#[cfg(test)]
mod sched_tests;
#[cfg(test)]
mod tests;
