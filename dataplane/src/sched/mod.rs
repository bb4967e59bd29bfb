//! Schedulers: one file per IPVS algorithm behind one trait, plus Maglev (`mh`).
//!
//! A scheduler sees the service's real servers (weights from the snapshot) and this worker's
//! load on each of them ([`Loads`]: active and inactive connections, overload flag), and the
//! new flow's addresses (for the hashing ones). State is per worker: no shared counters on the
//! per-packet path. Where IPVS breaks a tie by list order (lc, wlc, sed, nq, lblc, lblcr)
//! each worker walks the list from its own starting point, so that workers do not all send
//! their first connection to the same server; worker 0 walks it in IPVS's order.
//!
//! Picks allocate nothing. The state is built when a snapshot brings a service, and adjusted
//! ([`Scheduler::update`]) when a reload changes its real servers.

mod dh;
mod fo;
mod lblc;
mod lblcr;
mod lc;
mod load;
mod mh;
mod nq;
mod ovf;
mod rr;
mod sed;
mod sh;
mod wlc;
mod wrr;

pub use dh::DestinationHashing;
pub use fo::WeightedFailover;
pub use lblc::LocalityLeastConn;
pub use lblcr::LocalityLeastConnReplicated;
pub use lc::LeastConn;
pub use load::{share_of, DestExport, DestKey, DestLoad, DestStats, DestTable, Loads, NO_DEST};
pub use mh::{Maglev, MaglevTable, MH_TABLE_SIZE};
pub use nq::NeverQueue;
pub use ovf::WeightedOverflow;
pub use rr::RoundRobin;
pub use sed::ShortestExpectedDelay;
pub use sh::SourceHashing;
pub use wlc::WeightedLeastConn;
pub use wrr::WeightedRoundRobin;

use std::sync::Arc;

use crate::flow::Endpoint;
use crate::snapshot::{RealServer, Service};

/// The scheduler a service names (`lb_algo`), by its IPVS name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh,
    Dh,
    Lblc,
    Lblcr,
    Fo,
    Ovf,
    Mh,
}

impl SchedulerKind {
    /// Every scheduler, in the order of the README's table.
    pub const ALL: [SchedulerKind; 13] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Sh,
        SchedulerKind::Dh,
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
        SchedulerKind::Mh,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
            SchedulerKind::Mh => "mh",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Fresh state for this algorithm and `service`. `worker` staggers the starting point so
    /// that workers do not all send their first connection to the same server.
    pub fn new_state(self, service: &Service, worker: usize) -> SchedulerState {
        let reals = &service.reals;
        match self {
            SchedulerKind::Rr => SchedulerState::Rr(RoundRobin::new(reals, worker)),
            SchedulerKind::Wrr => SchedulerState::Wrr(WeightedRoundRobin::new(reals, worker)),
            SchedulerKind::Lc => SchedulerState::Lc(LeastConn::new(worker)),
            SchedulerKind::Wlc => SchedulerState::Wlc(WeightedLeastConn::new(worker)),
            SchedulerKind::Sed => SchedulerState::Sed(ShortestExpectedDelay::new(worker)),
            SchedulerKind::Nq => SchedulerState::Nq(NeverQueue::new(worker)),
            SchedulerKind::Sh => {
                SchedulerState::Sh(SourceHashing::new(&service.members(), reals, service.flags))
            }
            SchedulerKind::Dh => SchedulerState::Dh(DestinationHashing::new(reals)),
            SchedulerKind::Lblc => SchedulerState::Lblc(LocalityLeastConn::new(reals, worker)),
            SchedulerKind::Lblcr => {
                SchedulerState::Lblcr(LocalityLeastConnReplicated::new(reals, worker))
            }
            SchedulerKind::Fo => SchedulerState::Fo(WeightedFailover),
            SchedulerKind::Ovf => SchedulerState::Ovf(WeightedOverflow),
            SchedulerKind::Mh => SchedulerState::Mh(Maglev::new(
                service
                    .maglev
                    .clone()
                    .unwrap_or_else(|| Arc::new(MaglevTable::for_reals(reals))),
                reals,
                service.flags,
            )),
        }
    }
}

/// IPVS's scheduler flags (`ipvsadm -b`): `sh-port`/`mh-port` hash the source port too;
/// `sh-fallback`/`mh-fallback` move a flow whose server is unavailable (weight 0 or
/// overloaded) to another one instead of dropping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SchedFlags {
    pub port: bool,
    pub fallback: bool,
}

/// What one pick sees.
#[derive(Clone, Copy)]
pub struct Candidates<'a> {
    /// The service's real servers, in configuration order.
    pub reals: &'a [RealServer],
    /// This worker's load on each of them (same indices).
    pub loads: Loads<'a>,
    /// The new flow's source (client) and destination (VIP).
    pub src: Endpoint,
    pub dst: Endpoint,
    /// The worker's clock (lblc/lblcr age their cache with it).
    pub now_ms: u64,
}

impl Candidates<'_> {
    /// Weight above 0 and not overloaded: the test every IPVS scheduler applies.
    #[inline]
    pub fn usable(&self, i: usize) -> bool {
        self.reals[i].weight > 0 && !self.loads.get(i).overloaded
    }

    #[inline]
    pub fn weight(&self, i: usize) -> u32 {
        self.reals[i].weight
    }

    /// IPVS's `ip_vs_dest_conn_overhead`: active × 256 + inactive.
    #[inline]
    pub fn overhead(&self, i: usize) -> u64 {
        self.loads.get(i).overhead()
    }

    /// `0..n` rotated to start at `start % n` (per-worker tie breaking).
    #[inline]
    pub fn rotated(&self, start: usize) -> impl Iterator<Item = usize> {
        let n = self.reals.len();
        let s = if n == 0 { 0 } else { start % n };
        (s..n).chain(0..s)
    }
}

/// Picks a real server for a new connection.
pub trait Scheduler {
    /// Index into `c.reals` of the chosen server, or `None` when none may take the connection.
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize>;

    /// The service's real servers changed (added, removed, reweighted, reordered) in a
    /// reload: adjust. `old` is the list the state was built or last updated for.
    fn update(&mut self, old: &[RealServer], new: &[RealServer]);
}

/// One service's scheduler state, per worker.
#[derive(Debug, Clone)]
pub enum SchedulerState {
    Rr(RoundRobin),
    Wrr(WeightedRoundRobin),
    Lc(LeastConn),
    Wlc(WeightedLeastConn),
    Sed(ShortestExpectedDelay),
    Nq(NeverQueue),
    Sh(SourceHashing),
    Dh(DestinationHashing),
    Lblc(LocalityLeastConn),
    Lblcr(LocalityLeastConnReplicated),
    Fo(WeightedFailover),
    Ovf(WeightedOverflow),
    Mh(Maglev),
}

impl SchedulerState {
    pub fn kind(&self) -> SchedulerKind {
        match self {
            SchedulerState::Rr(_) => SchedulerKind::Rr,
            SchedulerState::Wrr(_) => SchedulerKind::Wrr,
            SchedulerState::Lc(_) => SchedulerKind::Lc,
            SchedulerState::Wlc(_) => SchedulerKind::Wlc,
            SchedulerState::Sed(_) => SchedulerKind::Sed,
            SchedulerState::Nq(_) => SchedulerKind::Nq,
            SchedulerState::Sh(_) => SchedulerKind::Sh,
            SchedulerState::Dh(_) => SchedulerKind::Dh,
            SchedulerState::Lblc(_) => SchedulerKind::Lblc,
            SchedulerState::Lblcr(_) => SchedulerKind::Lblcr,
            SchedulerState::Fo(_) => SchedulerKind::Fo,
            SchedulerState::Ovf(_) => SchedulerKind::Ovf,
            SchedulerState::Mh(_) => SchedulerKind::Mh,
        }
    }

    /// A reload kept the service (same protocol, VIP, scheduler and flags) but changed its
    /// real servers from `old`: adjust in place (Maglev takes the snapshot's new table; both
    /// hashing schedulers lay their table over the service's members).
    pub fn reconfigure(&mut self, old: &[RealServer], service: &Service, worker: usize) {
        match self {
            SchedulerState::Mh(_) => *self = SchedulerKind::Mh.new_state(service, worker),
            SchedulerState::Sh(_) => *self = SchedulerKind::Sh.new_state(service, worker),
            other => other.inner().update(old, &service.reals),
        }
    }

    fn inner(&mut self) -> &mut dyn Scheduler {
        match self {
            SchedulerState::Rr(s) => s,
            SchedulerState::Wrr(s) => s,
            SchedulerState::Lc(s) => s,
            SchedulerState::Wlc(s) => s,
            SchedulerState::Sed(s) => s,
            SchedulerState::Nq(s) => s,
            SchedulerState::Sh(s) => s,
            SchedulerState::Dh(s) => s,
            SchedulerState::Lblc(s) => s,
            SchedulerState::Lblcr(s) => s,
            SchedulerState::Fo(s) => s,
            SchedulerState::Ovf(s) => s,
            SchedulerState::Mh(s) => s,
        }
    }
}

impl Scheduler for SchedulerState {
    #[inline]
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        if c.reals.is_empty() {
            return None;
        }
        match self {
            // The hot ones without the indirect call.
            SchedulerState::Rr(s) => s.pick(c),
            SchedulerState::Wrr(s) => s.pick(c),
            SchedulerState::Wlc(s) => s.pick(c),
            SchedulerState::Mh(s) => s.pick(c),
            other => other.inner().pick(c),
        }
    }

    fn update(&mut self, old: &[RealServer], new: &[RealServer]) {
        self.inner().update(old, new)
    }
}

/// A member of a hashing scheduler's (`sh`, `mh`) table: a real server and the weight its
/// entries are laid out with.
pub type Member = (Endpoint, u32);

/// `members` in the canonical order every node shares: by address, then port (one entry per
/// server, the first kept). A table laid out over it does not depend on the order of the
/// configuration's list or of the edits that made it.
pub fn canonical(members: &[Member]) -> Vec<Member> {
    let mut out = members.to_vec();
    out.sort_by_key(|(ep, _)| (u32::from(ep.addr), ep.port));
    out.dedup_by_key(|(ep, _)| *ep);
    out
}

/// Not among the service's real servers (failed its checks, or gone with a reload).
pub(crate) const GONE: u16 = u16::MAX;

/// Where each of the (canonical) `members` is in `reals`, [`GONE`] for those that are not.
pub(crate) fn member_map(members: &[Member], reals: &[RealServer]) -> Box<[u16]> {
    let mut map = vec![GONE; members.len()];
    for (i, r) in reals.iter().enumerate() {
        if let Ok(m) = members
            .binary_search_by_key(&(u32::from(r.addr.addr), r.addr.port), |(ep, _)| {
                (u32::from(ep.addr), ep.port)
            })
        {
            if map[m] == GONE {
                map[m] = i as u16;
            }
        }
    }
    map.into_boxed_slice()
}

/// Greatest common divisor (wrr's step, mh's weight scale), 0 for an empty fold.
pub(crate) fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// IPVS compares loads as `overhead_a * weight_b > overhead_b * weight_a` in 64 bits: whether
/// server `b` (overhead `ob`, weight `wb`) is less loaded per weight than `a`.
#[inline]
pub(crate) fn lighter(oa: u64, wa: u32, ob: u64, wb: u32) -> bool {
    u128::from(oa) * u128::from(wb) > u128::from(ob) * u128::from(wa)
}

/// The weighted-least-connection core shared by wlc, lblc and lblcr (IPVS's
/// `__ip_vs_lblc_schedule` and `ip_vs_wlc_schedule`): the first usable server in `order`,
/// then any later one whose overhead per weight is strictly lower.
#[inline]
pub(crate) fn weighted_least(
    c: &Candidates<'_>,
    order: impl Iterator<Item = usize>,
    overhead: impl Fn(usize) -> u64,
) -> Option<usize> {
    let mut least: Option<(usize, u64)> = None;
    for i in order {
        if !c.usable(i) {
            continue;
        }
        let oh = overhead(i);
        match least {
            None => least = Some((i, oh)),
            Some((l, loh)) if lighter(loh, c.weight(l), oh, c.weight(i)) => least = Some((i, oh)),
            _ => {}
        }
    }
    least.map(|(i, _)| i)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::flow::Endpoint;
    use crate::snapshot::RealServer;

    /// Real servers 203.0.113.11.. with these weights.
    pub fn reals(weights: &[u32]) -> Vec<RealServer> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| RealServer {
                addr: Endpoint::new([203, 0, 113, 11 + i as u8].into(), 80),
                weight: *w,
                port: 1,
                next_hop_mac: None,
                upper_threshold: 0,
                lower_threshold: 0,
            })
            .collect()
    }

    /// A service's servers with loads that tests set by hand.
    pub struct Fixture {
        pub reals: Vec<RealServer>,
        pub loads: Vec<DestLoad>,
        pub ids: Vec<u32>,
        pub src: Endpoint,
        pub dst: Endpoint,
        pub now_ms: u64,
    }

    impl Fixture {
        pub fn new(weights: &[u32]) -> Self {
            let reals = reals(weights);
            Fixture {
                loads: vec![DestLoad::default(); reals.len()],
                ids: (0..reals.len() as u32).collect(),
                reals,
                src: Endpoint::new([198, 51, 100, 10].into(), 40000),
                dst: Endpoint::new([198, 51, 100, 100].into(), 80),
                now_ms: 1_000_000,
            }
        }

        /// Sets (active, inactive) per server.
        pub fn with_conns(mut self, conns: &[(u32, u32)]) -> Self {
            for (load, &(a, i)) in self.loads.iter_mut().zip(conns) {
                load.active = a;
                load.inactive = i;
            }
            self
        }

        pub fn candidates(&self) -> Candidates<'_> {
            Candidates {
                reals: &self.reals,
                loads: Loads::new(&self.loads, &self.ids),
                src: self.src,
                dst: self.dst,
                now_ms: self.now_ms,
            }
        }

        /// Picks `n` times; after each pick the chosen server gains one connection, active
        /// when `active` (an established TCP connection), else inactive. Letters A, B, C...
        pub fn run(&mut self, s: &mut impl Scheduler, n: usize, active: bool) -> String {
            (0..n)
                .map(|_| match s.pick(&self.candidates()) {
                    Some(i) => {
                        if active {
                            self.loads[i].active += 1;
                        } else {
                            self.loads[i].inactive += 1;
                        }
                        char::from(b'A' + i as u8)
                    }
                    None => '-',
                })
                .collect()
        }
    }
}
