//! ARP resolution of next hops (real servers, gateways), owned by the control thread. It
//! learns from the ARP that workers hand it (replies, and requests others send), asks for
//! what it still lacks, refreshes what it has, and forgets what stops answering. Workers see
//! the result through the snapshot; they never wait for it.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

/// Ask again for an unresolved next hop this often.
const RETRY: Duration = Duration::from_secs(1);
/// Re-ask a resolved one this often, so a changed MAC is noticed.
const REFRESH: Duration = Duration::from_secs(30);
/// Forget an entry not confirmed for this long.
const STALE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    mac: [u8; 6],
    /// `None` for a static entry (never expires, never refreshed).
    confirmed: Option<Instant>,
}

/// The neighbour table and what to resolve.
#[derive(Debug, Default)]
pub struct Neighbors {
    entries: HashMap<(usize, Ipv4Addr), Entry>,
    /// Next hops the configuration needs, with the time of the last request for each.
    wanted: HashMap<(usize, Ipv4Addr), Option<Instant>>,
}

impl Neighbors {
    pub fn new() -> Self {
        Self::default()
    }

    /// A neighbour fixed in the configuration.
    pub fn add_static(&mut self, port: usize, addr: Ipv4Addr, mac: [u8; 6]) {
        self.entries.insert(
            (port, addr),
            Entry {
                mac,
                confirmed: None,
            },
        );
    }

    /// Sets the next hops to resolve (after a (re)load); keeps what is known.
    pub fn want(&mut self, hops: &[(usize, Ipv4Addr)]) {
        let old = std::mem::take(&mut self.wanted);
        for hop in hops {
            self.wanted.insert(*hop, old.get(hop).copied().flatten());
        }
    }

    /// What ARP says: `addr` is at `mac` on `port`. Learns it if it is a wanted next hop or
    /// already known (gratuitous ARP updates a moved address). Returns whether the table
    /// changed, i.e. a new snapshot is due.
    pub fn learn(&mut self, port: usize, addr: Ipv4Addr, mac: [u8; 6], now: Instant) -> bool {
        let key = (port, addr);
        if !self.wanted.contains_key(&key) && !self.entries.contains_key(&key) {
            return false;
        }
        match self.entries.get_mut(&key) {
            Some(Entry {
                confirmed: None, ..
            }) => false,
            Some(entry) => {
                let changed = entry.mac != mac;
                *entry = Entry {
                    mac,
                    confirmed: Some(now),
                };
                changed
            }
            None => {
                self.entries.insert(
                    key,
                    Entry {
                        mac,
                        confirmed: Some(now),
                    },
                );
                true
            }
        }
    }

    /// Next hops to send an ARP request for now (unresolved every second, resolved every
    /// 30 s); marks them asked.
    pub fn due(&mut self, now: Instant) -> Vec<(usize, Ipv4Addr)> {
        let mut due = Vec::new();
        for (key, asked) in self.wanted.iter_mut() {
            let interval = match self.entries.get(key) {
                Some(Entry {
                    confirmed: None, ..
                }) => continue,
                Some(_) => REFRESH,
                None => RETRY,
            };
            if asked.is_none_or(|t| now.duration_since(t) >= interval) {
                *asked = Some(now);
                due.push(*key);
            }
        }
        due.sort();
        due
    }

    /// Forgets entries not confirmed for two minutes; returns whether any went.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| e.confirmed.is_none_or(|t| now.duration_since(t) < STALE));
        self.entries.len() != before
    }

    /// The table as the snapshot carries it.
    pub fn table(&self) -> HashMap<(usize, Ipv4Addr), [u8; 6]> {
        self.entries.iter().map(|(k, e)| (*k, e.mac)).collect()
    }

    pub fn unresolved(&self) -> Vec<(usize, Ipv4Addr)> {
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

    #[test]
    fn asks_until_answered_then_refreshes() {
        let t0 = Instant::now();
        let mut n = Neighbors::new();
        n.want(&[(1, RS)]);
        assert_eq!(n.due(t0), vec![(1, RS)]);
        assert!(n.due(t0 + Duration::from_millis(500)).is_empty());
        assert_eq!(
            n.due(t0 + Duration::from_secs(1)),
            vec![(1, RS)],
            "retried every second"
        );
        assert!(n.learn(1, RS, MAC, t0 + Duration::from_secs(2)));
        assert!(
            !n.learn(1, RS, MAC, t0 + Duration::from_secs(2)),
            "same answer: no new snapshot"
        );
        assert_eq!(n.table().get(&(1, RS)), Some(&MAC));
        assert!(n.due(t0 + Duration::from_secs(10)).is_empty());
        assert_eq!(
            n.due(t0 + Duration::from_secs(31)),
            vec![(1, RS)],
            "refreshed every 30 s"
        );
        assert!(n.unresolved().is_empty());
    }

    #[test]
    fn ignores_strangers_and_forgets_the_silent() {
        let t0 = Instant::now();
        let mut n = Neighbors::new();
        assert!(!n.learn(1, RS, MAC, t0), "not a next hop we need");
        n.want(&[(1, RS)]);
        n.learn(1, RS, MAC, t0);
        assert!(!n.expire(t0 + Duration::from_secs(60)));
        assert!(n.expire(t0 + Duration::from_secs(121)));
        assert_eq!(n.unresolved(), vec![(1, RS)]);
    }

    #[test]
    fn static_entries_stay_and_are_not_asked_for() {
        let t0 = Instant::now();
        let mut n = Neighbors::new();
        n.add_static(1, RS, MAC);
        n.want(&[(1, RS)]);
        assert!(n.due(t0).is_empty());
        assert!(
            !n.learn(1, RS, [2, 0, 0, 0, 0, 99], t0),
            "a static entry is not overridden"
        );
        assert!(!n.expire(t0 + Duration::from_secs(1000)));
    }
}
