//! ARP resolution of next hops (real servers, gateways), owned by the control thread, in the
//! shape of the kernel's neighbour cycle (incomplete, reachable, probe, failed). Workers see
//! the result through the snapshot; they never wait for it.
//!
//! - **Incomplete**: a next hop the configuration needs and nobody has answered for is asked
//!   for by broadcast every [`RETRY`]; one that stays silent is reported (rate-limited).
//! - **Reachable**: any ARP frame the next hop sends (reply, request, gratuitous) confirms it
//!   and, if its MAC changed, replaces the MAC at once.
//! - **Probe**: [`REACHABLE`] after its last confirmation it is asked again: first by unicast
//!   to the MAC rvs has (as the kernel's `ucast_probes`), then by broadcast, [`PROBES`] times
//!   one [`PROBE_INTERVAL`] apart, so a host that moved to another MAC without a gratuitous ARP
//!   is found within `REACHABLE + PROBES × PROBE_INTERVAL`.
//! - **Failed**: no answer to any probe: the MAC is forgotten (new connections to the servers
//!   behind it are counted `no_neighbor` instead of vanishing into an old MAC) and the next hop
//!   is incomplete again.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

/// Ask again for an unresolved next hop this often.
pub const RETRY: Duration = Duration::from_secs(1);
/// A confirmed neighbour is trusted this long before it is probed.
pub const REACHABLE: Duration = Duration::from_secs(15);
/// Time between probes of a neighbour that has not confirmed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Probes (the first unicast, the rest broadcast) before a neighbour is forgotten.
pub const PROBES: u8 = 3;
/// An unresolved next hop is first reported after this long, then every [`REPORT_EVERY`].
pub const REPORT_AFTER: Duration = Duration::from_secs(3);
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

/// A next hop: the port it is on and its address.
pub type Hop = (usize, Ipv4Addr);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Fixed in the configuration: never probed, never forgotten, never overridden.
    Static([u8; 6]),
    Dynamic {
        mac: [u8; 6],
        confirmed: Instant,
        /// Probes sent since the last confirmation, and when the last one left.
        probes: u8,
        probed: Option<Instant>,
    },
}

impl Entry {
    fn mac(&self) -> [u8; 6] {
        match *self {
            Entry::Static(mac) | Entry::Dynamic { mac, .. } => mac,
        }
    }
}

/// A next hop that is wanted and has no MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unresolved {
    since: Instant,
    asked: Option<Instant>,
    requests: u32,
    reported: Option<Instant>,
}

/// An ARP request the control thread should send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub hop: Hop,
    /// `Some(mac)`: a unicast probe to the MAC rvs has; `None`: broadcast.
    pub unicast: Option<[u8; 6]>,
}

/// What [`Neighbors::poll`] found: requests to send, whether the table changed (a new
/// snapshot is due), and what to tell the operator.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Poll {
    pub requests: Vec<Request>,
    pub changed: bool,
    /// Resolved next hops that answered none of the probes: forgotten now.
    pub failed: Vec<Hop>,
    /// Next hops still unresolved, with how long and how many requests (rate-limited: each
    /// at most once per [`REPORT_EVERY`]).
    pub unresolved: Vec<(Hop, Duration, u32)>,
}

/// The neighbour table and what to resolve.
#[derive(Debug, Default)]
pub struct Neighbors {
    entries: HashMap<Hop, Entry>,
    /// Next hops the configuration needs and nobody has answered for.
    wanted: HashMap<Hop, Option<Unresolved>>,
}

impl Neighbors {
    pub fn new() -> Self {
        Self::default()
    }

    /// A neighbour fixed in the configuration.
    pub fn add_static(&mut self, port: usize, addr: Ipv4Addr, mac: [u8; 6]) {
        self.entries.insert((port, addr), Entry::Static(mac));
    }

    /// Sets the next hops to resolve (after a (re)load): keeps what is known of those still
    /// wanted, forgets the learnt neighbours no longer needed.
    pub fn want(&mut self, hops: &[Hop]) {
        let old = std::mem::take(&mut self.wanted);
        for hop in hops {
            self.wanted.insert(*hop, old.get(hop).copied().flatten());
        }
        let wanted = &self.wanted;
        self.entries
            .retain(|hop, e| matches!(e, Entry::Static(_)) || wanted.contains_key(hop));
    }

    /// What an ARP frame from `addr` at `mac` on `port` says. Learnt if it is a next hop rvs
    /// needs: any frame confirms it, a new MAC replaces the old one at once. Returns whether the
    /// table changed, i.e. a new snapshot is due.
    pub fn learn(&mut self, port: usize, addr: Ipv4Addr, mac: [u8; 6], now: Instant) -> bool {
        let hop = (port, addr);
        if !self.wanted.contains_key(&hop) {
            return false;
        }
        let fresh = Entry::Dynamic {
            mac,
            confirmed: now,
            probes: 0,
            probed: None,
        };
        match self.entries.insert(hop, fresh) {
            Some(Entry::Static(fixed)) => {
                self.entries.insert(hop, Entry::Static(fixed));
                false
            }
            Some(old) => old.mac() != mac,
            None => true,
        }
    }

    /// One turn of the cycle at `now`: which requests to send, which neighbours failed.
    pub fn poll(&mut self, now: Instant) -> Poll {
        let mut poll = Poll::default();
        for (hop, entry) in self.entries.iter_mut() {
            let Entry::Dynamic {
                mac,
                confirmed,
                probes,
                probed,
            } = entry
            else {
                continue;
            };
            if now.duration_since(*confirmed) < REACHABLE
                || probed.is_some_and(|t| now.duration_since(t) < PROBE_INTERVAL)
            {
                continue;
            }
            if *probes == PROBES {
                poll.failed.push(*hop);
                continue;
            }
            poll.requests.push(Request {
                hop: *hop,
                unicast: (*probes == 0).then_some(*mac),
            });
            *probes += 1;
            *probed = Some(now);
        }
        for hop in &poll.failed {
            self.entries.remove(hop);
        }
        poll.changed = !poll.failed.is_empty();
        for (hop, state) in self.wanted.iter_mut() {
            if self.entries.contains_key(hop) {
                *state = None;
                continue;
            }
            let s = state.get_or_insert(Unresolved {
                since: now,
                asked: None,
                requests: 0,
                reported: None,
            });
            if s.asked.is_none_or(|t| now.duration_since(t) >= RETRY) {
                s.asked = Some(now);
                s.requests += 1;
                poll.requests.push(Request {
                    hop: *hop,
                    unicast: None,
                });
            }
            let silent = now.duration_since(s.since);
            let report = match s.reported {
                None => silent >= REPORT_AFTER,
                Some(t) => now.duration_since(t) >= REPORT_EVERY,
            };
            if report {
                s.reported = Some(now);
                poll.unresolved.push((*hop, silent, s.requests));
            }
        }
        poll.requests.sort_by_key(|r| r.hop);
        poll.failed.sort();
        poll.unresolved.sort_by_key(|u| u.0);
        poll
    }

    /// The MAC of one neighbour, if resolved.
    pub fn mac(&self, hop: Hop) -> Option<[u8; 6]> {
        self.entries.get(&hop).map(|e| e.mac())
    }

    /// The table as the snapshot carries it.
    pub fn table(&self) -> HashMap<Hop, [u8; 6]> {
        self.entries.iter().map(|(k, e)| (*k, e.mac())).collect()
    }

    pub fn unresolved(&self) -> Vec<Hop> {
        let mut v: Vec<_> = self
            .wanted
            .keys()
            .filter(|k| !self.entries.contains_key(*k))
            .copied()
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RS: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 11);
    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 11];
    const MOVED: [u8; 6] = [2, 0, 0, 0, 0, 99];

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn broadcast(hop: Hop) -> Request {
        Request { hop, unicast: None }
    }

    #[test]
    fn asks_every_second_until_answered() {
        let t0 = Instant::now();
        let mut n = Neighbors::new();
        n.want(&[(1, RS)]);
        assert_eq!(n.poll(t0).requests, vec![broadcast((1, RS))]);
        assert!(n.poll(at(t0, 500)).requests.is_empty());
        assert_eq!(n.poll(at(t0, 1000)).requests, vec![broadcast((1, RS))]);
        assert!(n.learn(1, RS, MAC, at(t0, 1200)));
        assert!(
            !n.learn(1, RS, MAC, at(t0, 1300)),
            "same answer: no new snapshot"
        );
        assert_eq!(n.table().get(&(1, RS)), Some(&MAC));
        assert!(n.unresolved().is_empty());
        assert_eq!(n.poll(at(t0, 10_000)), Poll::default(), "reachable: quiet");
    }

    #[test]
    fn a_changed_mac_is_learnt_from_any_frame_at_once() {
        let t0 = Instant::now();
        let mut n = Neighbors::new();
        n.want(&[(1, RS)]);
        n.learn(1, RS, MAC, t0);
        assert!(n.learn(1, RS, MOVED, at(t0, 100)), "a new MAC is news");
        assert_eq!(n.table().get(&(1, RS)), Some(&MOVED));
        assert!(
            !n.learn(1, [203, 0, 113, 77].into(), MAC, t0),
            "not a next hop we need"
        );
        assert!(!n.learn(0, RS, MAC, t0), "the same address on another port");
    }

    /// Reachable for 15 s, then one unicast probe and two broadcast ones a second apart; an
    /// answer to any of them keeps the neighbour; silence forgets it at 18 s.
    #[test]
    fn a_silent_neighbour_is_probed_then_forgotten() {
        let t0 = Instant::now();
        let mut n = Neighbors::new();
        n.want(&[(1, RS)]);
        n.learn(1, RS, MAC, t0);
        assert!(n.poll(at(t0, 14_999)).requests.is_empty());
        assert_eq!(
            n.poll(at(t0, 15_000)).requests,
            vec![Request {
                hop: (1, RS),
                unicast: Some(MAC)
            }]
        );
        assert!(n.poll(at(t0, 15_500)).requests.is_empty());
        assert_eq!(n.poll(at(t0, 16_000)).requests, vec![broadcast((1, RS))]);
        assert_eq!(n.poll(at(t0, 17_000)).requests, vec![broadcast((1, RS))]);
        let failed = n.poll(at(t0, 18_000));
        assert_eq!(failed.failed, vec![(1, RS)]);
        assert!(failed.changed);
        assert_eq!(
            failed.requests,
            vec![broadcast((1, RS))],
            "incomplete again: asked for every second"
        );
        assert_eq!(n.table().get(&(1, RS)), None);
        assert_eq!(n.unresolved(), vec![(1, RS)]);

        // An answer during probing confirms it: the cycle starts again.
        n.learn(1, RS, MAC, at(t0, 20_000));
        assert_eq!(n.poll(at(t0, 35_000)).requests.len(), 1);
        assert!(!n.learn(1, RS, MAC, at(t0, 35_200)));
        assert!(n.poll(at(t0, 36_000)).requests.is_empty());
        assert!(n.poll(at(t0, 50_000)).requests.is_empty());
    }

    #[test]
    fn an_unresolved_next_hop_is_reported_rate_limited() {
        let t0 = Instant::now();
        let mut n = Neighbors::new();
        n.want(&[(1, RS)]);
        let mut reports = Vec::new();
        for s in 0..=130 {
            reports.extend(n.poll(at(t0, s * 1000)).unresolved);
        }
        assert_eq!(
            reports,
            vec![
                ((1, RS), Duration::from_secs(3), 4),
                ((1, RS), Duration::from_secs(63), 64),
                ((1, RS), Duration::from_secs(123), 124),
            ]
        );
    }

    #[test]
    fn static_entries_stay_and_are_not_asked_for() {
        let t0 = Instant::now();
        let mut n = Neighbors::new();
        n.add_static(1, RS, MAC);
        n.want(&[(1, RS)]);
        assert_eq!(n.poll(t0), Poll::default());
        assert!(
            !n.learn(1, RS, MOVED, t0),
            "a static entry is not overridden"
        );
        assert_eq!(n.table().get(&(1, RS)), Some(&MAC));
        assert_eq!(n.poll(at(t0, 1_000_000)), Poll::default());
    }

    #[test]
    fn a_reload_forgets_neighbours_no_longer_needed() {
        let t0 = Instant::now();
        let mut n = Neighbors::new();
        n.want(&[(1, RS)]);
        n.learn(1, RS, MAC, t0);
        n.want(&[]);
        assert!(n.table().is_empty());
        assert!(!n.learn(1, RS, MAC, t0));
    }
}
