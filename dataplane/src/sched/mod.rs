//! Schedulers: one file per IPVS algorithm behind one trait. State is per worker (no shared
//! counters on the per-packet path), kept across snapshots while the service's real-server
//! list is unchanged.

mod rr;
mod wrr;

pub use rr::RoundRobin;
pub use wrr::WeightedRoundRobin;

use crate::snapshot::RealServer;

/// The scheduler a service names (`lb_algo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    Rr,
    Wrr,
}

impl SchedulerKind {
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "rr" => Some(SchedulerKind::Rr),
            "wrr" => Some(SchedulerKind::Wrr),
            _ => None,
        }
    }

    /// Fresh state for this algorithm. `worker` staggers the starting point so that workers
    /// do not all send their first connection to the same server.
    pub fn new_state(self, reals: &[RealServer], worker: usize) -> SchedulerState {
        match self {
            SchedulerKind::Rr => SchedulerState::Rr(RoundRobin::new(reals, worker)),
            SchedulerKind::Wrr => SchedulerState::Wrr(WeightedRoundRobin::new(reals, worker)),
        }
    }
}

/// Picks a real server for a new connection.
pub trait Scheduler {
    /// Index into `reals` of the chosen server, or `None` when none may take connections
    /// (all weights 0).
    fn pick(&mut self, reals: &[RealServer]) -> Option<usize>;
}

/// One service's scheduler state, per worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedulerState {
    Rr(RoundRobin),
    Wrr(WeightedRoundRobin),
}

impl Scheduler for SchedulerState {
    #[inline]
    fn pick(&mut self, reals: &[RealServer]) -> Option<usize> {
        match self {
            SchedulerState::Rr(s) => s.pick(reals),
            SchedulerState::Wrr(s) => s.pick(reals),
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
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
            })
            .collect()
    }
}
